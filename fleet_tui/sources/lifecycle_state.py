"""The lifecycle files in the state dir, read (DESIGN.md "Lifecycle and supervision").

- `lifecycle/stopped.json`: `{"v": 1, "agents": {NAME: {"ts", "user", "uid", "surface"}}}`, the
  agents an operator stopped on purpose (`stop`; `up NAME` forgets).
- `lifecycle/supervise.json`: `{"v": 1, "last_restart": TS, "agents": {NAME: {"restarts":
  [TS, ...], "held": {"since", "reason", "restarts"}, "unresponsive_since": TS}}}`, the
  supervisor's restart times (the fleet's last, each agent's in the last 15 minutes), the agents
  it holds (`up NAME`, `restart NAME`, `supervise --release NAME` release them) and since when it
  has seen an agent unresponsive.

`parse_*` are strict (ValueError for a file that is not one): the writers (`control`) refuse to
act on "cannot tell". `read_lifecycle_marks` is tolerant, for the collector: a missing file is
nothing, an unreadable or invalid one is nothing plus one warning naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fleet_tui.model.lifecycle import Hold, LifecycleMarks, StopMark
from fleet_tui.protocol.files import read_regular

STOPPED_FILE = "stopped.json"
SUPERVISE_FILE = "supervise.json"
MAX_BYTES = 1 << 20


def lifecycle_dir(state_dir: Path) -> Path:
    return state_dir / "lifecycle"


def stopped_path(state_dir: Path) -> Path:
    return lifecycle_dir(state_dir) / STOPPED_FILE


def supervise_path(state_dir: Path) -> Path:
    return lifecycle_dir(state_dir) / SUPERVISE_FILE


def _agents(raw: bytes) -> dict[str, dict[str, Any]]:
    data = json.loads(raw)
    agents = data["agents"]
    if not isinstance(agents, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) for k, v in agents.items()
    ):
        raise ValueError("agents")
    return agents


def parse_stopped(raw: bytes) -> dict[str, dict[str, Any]]:
    """stopped.json's agents: name -> {ts, user, uid, surface}. ValueError when it is not one."""
    try:
        return _agents(raw)
    except (KeyError, TypeError) as exc:
        raise ValueError(str(exc)) from None


def parse_supervise(raw: bytes) -> dict[str, Any]:
    """supervise.json as `{"agents": {name: {"restarts": [TS...], "held": {...}?,
    "unresponsive_since": TS?}}, "last_restart": TS | None}`, checked: restart times are
    strings, a hold has a string `since`. ValueError when it is not one."""
    try:
        agents = _agents(raw)
        for entry in agents.values():
            restarts = entry.get("restarts", [])
            if not isinstance(restarts, list) or not all(isinstance(t, str) for t in restarts):
                raise ValueError("restarts")
            held = entry.get("held")
            if held is not None and not (
                isinstance(held, dict) and isinstance(held.get("since"), str)
            ):
                raise ValueError("held")
        last = json.loads(raw).get("last_restart")
        if last is not None and not isinstance(last, str):
            raise ValueError("last_restart")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(str(exc)) from None
    return {"agents": agents, "last_restart": last}


def _read(path: Path) -> bytes | None:
    try:
        return read_regular(path, MAX_BYTES)
    except FileNotFoundError:
        return None


def _text(value: object, default: str = "?") -> str:
    return value if isinstance(value, str) else default


_FileKey = tuple[int, int, int, int] | None
# state dir -> (the two files' identities, the marks read from them): every poll of the
# dashboard asks, the files change when an operator or the supervisor acts. Both are replaced
# by a rename (a new inode), so (inode, size, mtime, ctime) in nanoseconds tells a change.
_cache: dict[Path, tuple[tuple[str, str], tuple[_FileKey, _FileKey], LifecycleMarks]] = {}


def _key(path: str) -> _FileKey:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read_lifecycle_marks(state_dir: Path) -> LifecycleMarks:
    """Stopped and held agents (tolerant: see the module's doc); read again only when one of
    the two files changed (two `stat` calls a poll otherwise)."""
    cached = _cache.get(state_dir)
    paths = cached[0] if cached else (str(stopped_path(state_dir)), str(supervise_path(state_dir)))
    keys = (_key(paths[0]), _key(paths[1]))
    if cached is not None and cached[1] == keys:
        return cached[2]
    marks = _read_marks(state_dir)
    if len(_cache) > 16:
        _cache.clear()
    _cache[state_dir] = (paths, keys, marks)
    return marks


def _read_marks(state_dir: Path) -> LifecycleMarks:
    warnings: list[str] = []
    stopped: dict[str, StopMark] = {}
    held: dict[str, Hold] = {}
    path = stopped_path(state_dir)
    try:
        raw = _read(path)
        for name, e in (parse_stopped(raw) if raw is not None else {}).items():
            stopped[name] = StopMark(
                _text(e.get("ts")), _text(e.get("user")), _text(e.get("surface"))
            )
    except (OSError, ValueError) as exc:
        why = (
            exc.strerror
            if isinstance(exc, OSError) and exc.strerror
            else "not a stopped-agents file"
        )
        warnings.append(f"{path}: {why}: stops on purpose unknown")
    path = supervise_path(state_dir)
    try:
        raw = _read(path)
        doc = parse_supervise(raw) if raw is not None else {"agents": {}}
        for name, e in doc["agents"].items():
            h = e.get("held")
            if h is None:
                continue
            count = h.get("restarts")
            held[name] = Hold(
                _text(h.get("since")),
                _text(h.get("reason"), ""),
                count if isinstance(count, int) and not isinstance(count, bool) else 0,
            )
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a supervise file"
        warnings.append(f"{path}: {why}: agents held by supervise unknown")
    return LifecycleMarks(stopped, held, tuple(warnings))
