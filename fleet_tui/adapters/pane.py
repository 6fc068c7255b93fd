"""Which agent a hook runs for: the tmux pane in `$TMUX_PANE`, asked of the server in `$TMUX`."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from fleet_tui.adapters.common import log_problem, valid_name
from fleet_tui.tmux import TmuxRunner

TMUX_TIMEOUT_S = 1.0
_PANE_RE = re.compile(r"^%[0-9]{1,9}$")
# Marker values of the @mosaic_agent option (control.new_agent_session sets "1"): not a name.
_MARKERS = frozenset({"", "1", "on", "yes", "true"})


class PathTmuxRunner(TmuxRunner):
    """A TmuxRunner that also takes an absolute socket path (what `$TMUX` names)."""

    def socket_path(self, socket: str) -> Path:
        if socket.startswith("/"):
            return Path(socket)
        return super().socket_path(socket)


def socket_of(tmux_env: str) -> str | None:
    """The server's socket path: the first field of `$TMUX` ("path,server pid,session")."""
    path = tmux_env.rsplit(",", 2)[0] if tmux_env.count(",") >= 2 else tmux_env
    return path if path.startswith("/") else None


def agent_from_tmux(environ: Mapping[str, str], state_dir: Path | None = None) -> str | None:
    """The agent whose pane runs this hook. The session's `@mosaic_agent` option names it when
    it holds a name (not a mere marker such as "1"); otherwise the session name does."""
    found = pane_agent(environ, state_dir)
    return found.name if found is not None else None


class PaneAgent(NamedTuple):
    name: str
    marked: bool  # the session carries @mosaic_agent: an agent whatever its socket
    socket: str  # the server's socket name (the basename of its path)


def pane_agent(environ: Mapping[str, str], state_dir: Path | None = None) -> PaneAgent | None:
    """`agent_from_tmux`, with what tells whether that session is a fleet agent at all."""
    pane = environ.get("TMUX_PANE", "")
    socket = socket_of(environ.get("TMUX", ""))
    if not pane or socket is None:
        return None
    if not _PANE_RE.match(pane):
        log_problem(state_dir, "TMUX_PANE is not a pane id")
        return None
    try:
        runner = PathTmuxRunner(timeout=TMUX_TIMEOUT_S, env=dict(os.environ))
        out = runner.run(
            socket, "display-message", "-p", "-t", pane, "#{session_name}\x1f#{@mosaic_agent}"
        ).stdout
    except Exception as exc:
        log_problem(state_dir, f"tmux lookup of pane {pane} failed: {exc}")
        return None
    session, _, option = out.rstrip("\n").partition("\x1f")
    option = option.strip()
    where = os.path.basename(socket)
    if option.lower() not in _MARKERS and valid_name(option):
        return PaneAgent(option, True, where)
    if valid_name(session):
        return PaneAgent(session, bool(option), where)
    log_problem(state_dir, "the pane's session name is not a valid agent name")
    return None
