"""Read-only tmux source: discover every socket of this user and list each live server in ONE call.

A socket that is stale, hung or denied becomes a degraded `SocketScan`, never an exception and
never an empty fleet: the join then reports its agents as unknown, not down.
"""

from __future__ import annotations

import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fleet_tui.errors import TmuxError, TmuxServerGone, TmuxTimeout
from fleet_tui.model.records import PaneRow, SocketScan, SocketState
from fleet_tui.tmux import (
    FIELD_SEP,
    Liveness,
    TmuxRunner,
    check_socket_dir,
    field_format,
    list_panes,
    probe_socket,
)

# pane_title stays last: it is agent-controlled and split with a bounded maxsplit (tmux keeps no
# control character in a title). The command name and the working directory are agent-controlled
# too and tmux prints them raw: they are scrubbed by tmux itself (`field_format`), so a path still
# matches what the runtime records as its cwd.
PANE_FIELDS = (
    "session_name",
    "session_id",
    "session_created",
    "session_activity",
    "session_attached",
    "window_index",
    "window_active",
    "pane_active",
    "pane_id",
    "pane_pid",
    "pane_current_command",
    "pane_dead",
    "pane_pipe",
    "pane_in_mode",
    "window_activity",
    "@mosaic_agent",
    "window-size",
    "pane_current_path",
    "pane_title",
)
PANE_FORMAT = field_format(PANE_FIELDS, scrubbed=("pane_current_command", "pane_current_path"))


def _int(s: str) -> int | None:
    try:
        return int(s)
    except ValueError:
        return None


def parse_panes(out: str) -> list[PaneRow]:
    """Parse `list-panes -a -F PANE_FORMAT` output; malformed lines are skipped."""
    rows: list[PaneRow] = []
    n = len(PANE_FIELDS)
    for line in out.splitlines():
        parts = line.split(FIELD_SEP, n - 1)
        if len(parts) != n:
            continue
        (
            name,
            sid,
            created,
            activity,
            attached,
            widx,
            wact,
            pact,
            pid_,
            ppid,
            cmd,
            dead,
            pipe,
            inmode,
            wactivity,
            agent_opt,
            wsize,
            cwd,
            title,
        ) = parts
        rows.append(
            PaneRow(
                session_name=name,
                session_id=sid,
                session_created=_int(created),
                session_activity=_int(activity),
                session_attached=_int(attached) or 0,
                window_index=_int(widx),
                window_active=wact == "1",
                pane_active=pact == "1",
                pane_id=pid_,
                pane_pid=_int(ppid),
                current_command=cmd,
                pane_dead=dead == "1",
                pane_pipe=pipe == "1",
                pane_in_mode=inmode == "1",
                window_activity=_int(wactivity),
                mosaic_agent=agent_opt,
                window_size=wsize,
                pane_title=title,
                current_path=cwd,
            )
        )
    return rows


def discover_sockets(runner: TmuxRunner) -> list[tuple[str, Path]]:
    """Every socket file in this user's tmux folder, by name. A missing folder is no socket.

    Raises `SocketDirError` when the folder is not ours.
    """
    folder = runner.socket_dir
    if not check_socket_dir(folder):
        return []
    found: list[tuple[str, Path]] = []
    with os.scandir(folder) as it:
        for entry in it:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISSOCK(st.st_mode):
                found.append((entry.name, Path(entry.path)))
    found.sort()
    return found


def scan_socket(runner: TmuxRunner, name: str, path: Path, *, timeout: float) -> SocketScan:
    """Probe one socket and, when a server answers, list all its panes in one call."""
    live = probe_socket(path)
    if live == Liveness.DENIED:
        return SocketScan(name, str(path), SocketState.DENIED, reason="permission denied")
    if live != Liveness.LIVE:
        return SocketScan(name, str(path), SocketState.STALE, reason="no server (stale socket)")
    for attempt in (1, 2):
        t0 = time.perf_counter()
        try:
            res = runner.run(name, *list_panes(PANE_FORMAT), timeout=timeout)
        except TmuxTimeout:
            return SocketScan(
                name,
                str(path),
                SocketState.HUNG,
                reason=f"tmux did not answer within {timeout:g} s",
            )
        except TmuxServerGone:
            return SocketScan(name, str(path), SocketState.STALE, reason="server exited")
        except TmuxError as exc:
            if probe_socket(path) != Liveness.LIVE:
                return SocketScan(name, str(path), SocketState.STALE, reason="server exited")
            if attempt == 2:
                return SocketScan(name, str(path), SocketState.LIVE, reason=str(exc))
            continue
        ms = (time.perf_counter() - t0) * 1000
        panes = parse_panes(res.stdout)
        if panes:
            return SocketScan(name, str(path), SocketState.LIVE, panes, listed_in_ms=ms)
        if res.stdout.strip():
            # Lines came back but none parsed (a tmux that rewrote the field separator): say
            # so, never report the server's sessions as gone.
            return SocketScan(
                name,
                str(path),
                SocketState.LIVE,
                listed_in_ms=ms,
                reason="tmux answered in a format that could not be read "
                f"({len(res.stdout.splitlines())} lines; locale or tmux version?)",
            )
        # An empty answer is what a server that is shutting down gives: never conclude
        # "all agents gone" from it. Confirm with a liveness probe, then ask once more.
        if probe_socket(path) != Liveness.LIVE:
            return SocketScan(name, str(path), SocketState.STALE, reason="server exited")
        if attempt == 2:
            return SocketScan(
                name,
                str(path),
                SocketState.LIVE,
                listed_in_ms=ms,
                reason="server answered with no sessions twice (shutting down?)",
            )
    raise AssertionError("unreachable")


def scan_all(runner: TmuxRunner, *, timeout: float | None = None) -> list[SocketScan]:
    """Scan every socket of the folder in parallel, so one hung server costs one timeout."""
    sockets = discover_sockets(runner)
    limit = runner.timeout if timeout is None else timeout
    if not sockets:
        return []
    if len(sockets) == 1:
        return [scan_socket(runner, *sockets[0], timeout=limit)]
    with ThreadPoolExecutor(max_workers=min(8, len(sockets))) as pool:
        return list(pool.map(lambda s: scan_socket(runner, s[0], s[1], timeout=limit), sockets))
