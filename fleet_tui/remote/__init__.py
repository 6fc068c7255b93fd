"""The gateway client: the cross-host register read (and written by the publisher)."""
