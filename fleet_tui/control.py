"""Control: the ONLY code that creates agent sessions, types into panes, attaches or pipes.

Everything here changes a tmux server, so every call uses exact targets (`=NAME:` or ids) through
the one runner. Observation code never imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fleet_tui.errors import TmuxServerGone
from fleet_tui.tmux import TmuxRunner, check_session_name, session_target


def new_agent_session(
    runner: TmuxRunner,
    socket: str,
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    width: int = 160,
    height: int = 48,
    cwd: str | None = None,
) -> None:
    """Start `argv` in a new detached session `name`, marked as an agent.

    The window gets a fixed size once, now (`window-size manual`), so that later watchers never
    resize the agent; the pane stays visible after its process exits (`remain-on-exit`), which
    is how a crash shows up as `pane_dead` instead of a silently vanished session.
    """
    check_session_name(name)
    runner.ensure_socket_dir()
    args = ["new-session", "-d", "-s", name, "-x", str(width), "-y", str(height)]
    if cwd:
        args += ["-c", cwd]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    target = session_target(name)
    # One tmux command list: the options are set before the server can reap a process that
    # exits at once (separate calls lost such a session, and with it the server).
    runner.run(
        socket,
        *args,
        *(_literal(a) for a in argv),
        ";",
        "set-option", "-t", target, "@mosaic_agent", "1",
        ";",
        "set-option", "-w", "-t", target, "window-size", "manual",
        ";",
        "set-option", "-w", "-t", target, "remain-on-exit", "on",
    )  # fmt: skip


def _literal(arg: str) -> str:
    """tmux ends a command at an argument ending in ';' unless it ends in '\\;'."""
    return arg[:-1] + "\\;" if arg.endswith(";") else arg


def kill_server(runner: TmuxRunner, socket: str) -> bool:
    """Stop the server on `socket`; False when none was running."""
    try:
        runner.run(socket, "kill-server")
    except TmuxServerGone:
        return False
    return True
