"""Heartbeat spool v1 in the state dir: `heartbeats/<agent>.json` and `pings/<agent>.json`.

Readers never raise on a bad file: they return why it is unreadable, so one broken heartbeat
degrades one agent and nothing else. Writers replace files atomically (temp file, then rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from fleet_tui.errors import StateDirError
from fleet_tui.model import Heartbeat, Ping, SpoolRead

MAX_HEARTBEAT_BYTES = 64 * 1024


def _read_limited(path: Path, limit: int) -> bytes:
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise _TooLarge(os.path.getsize(path))
    return data


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "record"
    return f"{loc}: {err['msg']}"


class HeartbeatSpool:
    """The spool of one state dir (one tenant)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.heartbeats = state_dir / "heartbeats"
        self.pings = state_dir / "pings"

    # -- reading -------------------------------------------------------------------------
    def heartbeat_path(self, agent: str) -> Path:
        return self.heartbeats / f"{agent}.json"

    def ping_path(self, agent: str) -> Path:
        return self.pings / f"{agent}.json"

    def read_heartbeat(self, agent: str) -> SpoolRead:
        path = self.heartbeat_path(agent)
        try:
            mtime = path.stat().st_mtime
            raw = _read_limited(path, MAX_HEARTBEAT_BYTES)
        except FileNotFoundError:
            return SpoolRead(None)
        except _TooLarge as exc:
            return SpoolRead(
                None, f"heartbeat file is {exc.size} bytes (limit {MAX_HEARTBEAT_BYTES})"
            )
        except OSError as exc:
            return SpoolRead(None, f"heartbeat file unreadable: {exc.strerror}")
        if not raw.strip():
            return SpoolRead(None, "heartbeat file is empty", mtime)
        try:
            data = json.loads(raw)
        except UnicodeDecodeError:
            return SpoolRead(None, "heartbeat file is not UTF-8", mtime)
        except json.JSONDecodeError as exc:
            # A cut object: the error is at the end, or the text stops before its closing brace
            # (a cut inside a string or a literal reports an earlier position).
            body = exc.doc.strip()
            truncated = body.startswith("{") and (
                exc.pos >= len(exc.doc.rstrip()) or not body.endswith("}")
            )
            why = "truncated (JSON ends early)" if truncated else "not JSON"
            return SpoolRead(None, f"heartbeat file is {why}", mtime)
        if not isinstance(data, dict):
            return SpoolRead(None, "heartbeat file is not a JSON object", mtime)
        if data.get("v") not in (1, None):
            return SpoolRead(None, f"heartbeat version {data.get('v')!r} is not 1", mtime)
        try:
            hb = Heartbeat.model_validate(data)
        except ValidationError as exc:
            return SpoolRead(None, f"heartbeat invalid: {_first_error(exc)}", mtime)
        if hb.agent != agent:
            return SpoolRead(None, f"heartbeat names agent '{hb.agent[:40]}', not '{agent}'", mtime)
        return SpoolRead(hb, None, mtime)

    def read_ping(self, agent: str) -> Ping | None:
        try:
            raw = _read_limited(self.ping_path(agent), 4096)
            return Ping.model_validate_json(raw)
        except (OSError, _TooLarge, ValidationError, ValueError):
            return None

    # -- writing -------------------------------------------------------------------------
    def ensure_writable(self) -> None:
        """Create the spool folders or raise `StateDirError` naming the state dir."""
        for folder in (self.heartbeats, self.pings):
            try:
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            except FileExistsError:
                raise StateDirError(
                    f"state dir {self.state_dir}: {folder} is not a directory"
                ) from None
            except NotADirectoryError:
                raise StateDirError(
                    f"state dir {self.state_dir} is not writable: a parent is not a directory"
                ) from None
            except OSError as exc:
                raise StateDirError(
                    f"state dir {self.state_dir} is not writable: {exc.strerror}"
                ) from None
            if not os.access(folder, os.W_OK | os.X_OK):
                raise StateDirError(
                    f"state dir {self.state_dir} is not writable: permission denied"
                )

    def write_heartbeat(self, hb: Heartbeat) -> Path:
        self.ensure_writable()
        path = self.heartbeat_path(hb.agent)
        atomic_write(path, hb.model_dump_json(exclude_none=False).encode())
        return path

    def write_ping(self, agent: str, nonce: str, ts: datetime) -> Ping:
        self.ensure_writable()
        ping = Ping(nonce=nonce, ts=ts)
        atomic_write(self.ping_path(agent), ping.model_dump_json().encode())
        return ping


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never a part."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StateDirError(f"cannot write in {path.parent}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
