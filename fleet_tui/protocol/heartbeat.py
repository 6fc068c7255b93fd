"""Heartbeat protocol v1 in the state dir (DESIGN.md): the one definition of its files, its
record, its limits and its write lock, for every side that speaks it.

- `heartbeats/<agent>.json`: the agent's latest record (`heartbeat_record`), replaced atomically.
- `pings/<agent>.json`: `{"nonce", "ts"}` an observer writes; the runtime answers by writing a
  heartbeat whose `echo` is that nonce.
- `hooks/<agent>.write.lock`: the flock a writer holds from reading the previous heartbeat to
  renaming the next one, so concurrent writers (hooks, the keepalive, `fleet-tui heartbeat`)
  never lose a `seq` increment or an ack.
- `acks`: the hashes of the last (up to 16) accepted messages: `protocol.acks` holds the rule
  (the pane writer checks deliveries by it too).

The hook adapters, their keepalive and the stub runtime write through this module; the spool
reader (`sources.spool`) reads through it and validates with the pydantic models. Standard
library only: the hook path imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from fleet_tui.protocol.clock import format_ts
from fleet_tui.protocol.files import (
    FileTooLarge,
    JsonObject,
    JsonRecord,
    NotRegularFile,
    atomic_write,
    exclusive_lock,
    json_bytes,
    loads_valid,
    read_regular,
)

VERSION = 1
STATES = ("starting", "idle", "busy", "waiting_input", "blocked", "error", "stopping")
MAX_HEARTBEAT_BYTES = 64 * 1024
MAX_PING_BYTES = 4096


# -- where ----------------------------------------------------------------------------------


def heartbeats_dir(state_dir: Path) -> Path:
    return state_dir / "heartbeats"


def pings_dir(state_dir: Path) -> Path:
    return state_dir / "pings"


def hooks_dir(state_dir: Path) -> Path:
    """The hook adapters' folder: write locks, the hooks log, their caches."""
    return state_dir / "hooks"


def heartbeat_path(state_dir: Path, agent: str) -> Path:
    return heartbeats_dir(state_dir) / f"{agent}.json"


def ping_path(state_dir: Path, agent: str) -> Path:
    return pings_dir(state_dir) / f"{agent}.json"


def write_lock_path(state_dir: Path, agent: str) -> Path:
    return hooks_dir(state_dir) / f"{agent}.write.lock"


@contextlib.contextmanager
def write_lock(state_dir: Path, agent: str, wait_s: float) -> Iterator[bool]:
    """Hold the agent's write lock for a read-modify-write of its heartbeat; yields whether it
    was taken (after `wait_s`, a writer stuck holding it, the caller goes on without it)."""
    path = write_lock_path(state_dir, agent)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with exclusive_lock(path, wait_s) as locked:
        yield locked


# -- the record -----------------------------------------------------------------------------


def heartbeat_record(
    *,
    tenant_id: str,
    host: str,
    agent: str,
    seq: int,
    ts: datetime,
    interval_s: float,
    state: str,
    detail: str | None = None,
    runtime: str | None = None,
    model: str | None = None,
    pid: int | None = None,
    echo: str | None = None,
    acks: Iterable[str] = (),
    usage: Mapping[str, Any] | None = None,
    via: str | None = None,
) -> JsonObject:
    """A heartbeat v1 record, its keys in the order `model.records.Heartbeat` dumps them.
    `via` (grown after v1) names who wrote it when not the runtime itself ("hook:claude")."""
    return {
        "v": VERSION,
        "tenant_id": tenant_id,
        "host": host,
        "agent": agent,
        "seq": seq,
        "ts": format_ts(ts),
        "interval_s": float(interval_s),
        "state": str(state),
        "detail": detail,
        "runtime": runtime,
        "model": model,
        "pid": pid,
        "echo": echo,
        "acks": list(acks),
        "usage": dict(usage) if usage is not None else None,
        "via": via,
    }


# -- reading --------------------------------------------------------------------------------


class HeartbeatFile(NamedTuple):
    """A heartbeat file as read: its JSON object, or why there is none (both None: no file).
    The record is not validated here (the version, the fields): readers do that."""

    data: JsonObject | None
    error: str | None = None
    mtime: float | None = None


def heartbeat_bytes(
    state_dir: Path, agent: str, path: str | None = None
) -> tuple[bytes, float] | HeartbeatFile:
    """The bytes of `heartbeats/<agent>.json` and its mtime, read without ever raising or
    blocking (a regular file of at most MAX_HEARTBEAT_BYTES); or, when there are none, the
    `HeartbeatFile` that says why (both None: no file). `path`: that file's path when the
    caller has it already (a folder listing's), which spares building it."""
    if path is None:
        path = str(heartbeat_path(state_dir, agent))
    try:
        mtime = os.stat(path).st_mtime
        raw = read_regular(path, MAX_HEARTBEAT_BYTES)
    except FileNotFoundError:
        return HeartbeatFile(None)
    except NotRegularFile as exc:
        return HeartbeatFile(None, f"heartbeats/{agent}.json: not a regular file ({exc.kind})")
    except FileTooLarge as exc:
        return HeartbeatFile(
            None, f"heartbeat file is {exc.size} bytes (limit {MAX_HEARTBEAT_BYTES})"
        )
    except OSError as exc:
        return HeartbeatFile(None, f"heartbeat file unreadable: {exc.strerror}")
    return raw, mtime


def decode_heartbeat(raw: bytes, mtime: float | None = None) -> HeartbeatFile:
    """A heartbeat file's bytes as its JSON object, its text made valid Unicode, or why they
    are none. Depends on the bytes alone: the same bytes always decode the same."""
    if not raw.strip():
        return HeartbeatFile(None, "heartbeat file is empty", mtime)
    try:
        data = loads_valid(raw)
    except UnicodeDecodeError:
        return HeartbeatFile(None, "heartbeat file is not UTF-8", mtime)
    except json.JSONDecodeError as exc:
        # A cut object: the error is at the end, or the text stops before its closing brace
        # (a cut inside a string or a literal reports an earlier position).
        body = exc.doc.strip()
        truncated = body.startswith("{") and (
            exc.pos >= len(exc.doc.rstrip()) or not body.endswith("}")
        )
        why = "truncated (JSON ends early)" if truncated else "not JSON"
        return HeartbeatFile(None, f"heartbeat file is {why}", mtime)
    if not isinstance(data, dict):
        return HeartbeatFile(None, "heartbeat file is not a JSON object", mtime)
    return HeartbeatFile(data, None, mtime)


def load_heartbeat(state_dir: Path, agent: str) -> HeartbeatFile:
    """Read `heartbeats/<agent>.json` without ever raising or blocking: a regular file of at
    most MAX_HEARTBEAT_BYTES holding a JSON object, its text made valid Unicode."""
    got = heartbeat_bytes(state_dir, agent)
    if isinstance(got, HeartbeatFile):
        return got
    return decode_heartbeat(*got)


def version_problem(data: Mapping[str, Any]) -> str | None:
    """Why a record is not one of this version (absent `v` reads as 1), or None."""
    if data.get("v") not in (VERSION, None):
        return f"heartbeat version {data.get('v')!r} is not {VERSION}"
    return None


def read_heartbeat(state_dir: Path, agent: str) -> JsonObject | None:
    """The agent's heartbeat as a plain object when it is one and names this agent; None for
    anything else (the writers' look at the previous record, which never fails them)."""
    data = load_heartbeat(state_dir, agent).data
    return data if data is not None and data.get("agent") == agent else None


def read_ping(state_dir: Path, agent: str) -> JsonObject | None:
    """The agent's ping as a plain object (not validated); None when there is no usable one."""
    try:
        data = loads_valid(read_regular(ping_path(state_dir, agent), MAX_PING_BYTES))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def ping_nonce(state_dir: Path, agent: str) -> str | None:
    """The nonce of the agent's pending ping, or None."""
    ping = read_ping(state_dir, agent)
    nonce = ping.get("nonce") if ping else None
    return nonce if isinstance(nonce, str) else None


# -- writing --------------------------------------------------------------------------------


def write_heartbeat(state_dir: Path, agent: str, record: JsonRecord) -> Path:
    """Replace `heartbeats/<agent>.json` atomically with `record` (a `heartbeat_record` dict
    or a `Heartbeat` model). Raises OSError; the folder must exist."""
    path = heartbeat_path(state_dir, agent)
    atomic_write(path, json_bytes(record))
    return path


def write_ping(state_dir: Path, agent: str, record: JsonRecord) -> Path:
    """Replace `pings/<agent>.json` atomically with `record` (`{"nonce", "ts"}`)."""
    path = ping_path(state_dir, agent)
    atomic_write(path, json_bytes(record))
    return path
