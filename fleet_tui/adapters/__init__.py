"""Runtime adapters: Claude Code and Codex hooks, the statusLine command, install-hooks.

The hook path (`common`, `claude`, `codex`, `keepalive`) uses the standard library only: a hook
runs on every runtime event and must start fast, so it never imports pydantic, Rich or Textual.
Nothing is imported here on purpose.
"""
