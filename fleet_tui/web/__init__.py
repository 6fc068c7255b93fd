"""`fleet-tui web`: the dashboard served to browsers, behind our own login (DESIGN.md "Web").

- `tokens`: the web tokens (`web token create|list|revoke`), stored hashed in
  `<state dir>/web/tokens.json` (mode 0600, written atomically under a lock).
- `server`: the aiohttp server: `/login`, `/logout`, the page, textual-serve's browser client
  (`/static`) and the WebSocket `/ws` that runs one dashboard process per browser session.
- `appproc`: that process: argv (never a shell), its own environment, its own process session, ended
  with its children when the socket closes.

A layer beside `server` (the gateway): it imports config and below, never ui or control (the app it
serves is a separate process). Only `cli/web.py` imports it; aiohttp and textual-serve (the `web`
extra) are imported by `server` and `appproc` only.
"""
