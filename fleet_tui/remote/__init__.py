"""The gateway, seen from a host: `client` reads the cross-host register (the dashboard's and
`ps --gateway`'s merged view), `push` writes to it (the publisher), `connection` is what both share
(settings, the token, bounded requests, typed errors, backoff)."""
