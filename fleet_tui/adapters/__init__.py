"""Runtime adapters: Claude Code and Codex hooks, the statusLine command, install-hooks.

The hook path (`common`, `claude`, `codex`, `pane`, `keepalive`, `event`, `statusline`) uses the
standard library only: a hook runs on every runtime event and must start fast, so it never
imports pydantic, Rich or Textual. Imports point one way: `common` at the bottom; `pane` and
`keepalive` on it; `event` (one hook event end to end) on those. Nothing is imported here on
purpose.
"""
