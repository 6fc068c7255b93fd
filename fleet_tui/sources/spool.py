"""Heartbeat spool v1 in the state dir: `heartbeats/<agent>.json` and `pings/<agent>.json`.

Readers never raise on a bad file: they return why it is unreadable, so one broken heartbeat
degrades one agent and nothing else. A FIFO, a device or a link to one is never opened for a
blocking read (`sources.files.read_regular`): it reads as "heartbeats/x.json: not a regular file
(a FIFO)". Agent text is made valid Unicode (`valid_text`) before the models see it.

Writers replace files atomically (temp file, then rename). `update_heartbeat` is the locked
read-modify-write: it holds the agent's write lock (`hooks/<agent>.write.lock`, the one the hook
adapters and the keepalive take) from the read of the previous heartbeat to the rename of the
new one, so concurrent writers never lose a `seq` increment.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from fleet_tui.errors import StateDirError
from fleet_tui.model.records import Heartbeat, Ping, SpoolRead
from fleet_tui.protocol.files import (
    FileTooLarge,
    NotRegularFile,
    exclusive_lock,
    read_regular,
    valid_text,
)

MAX_HEARTBEAT_BYTES = 64 * 1024
MAX_PING_BYTES = 4096
LOCK_WAIT_S = 5.0  # a writer stuck longer than this holding the lock is not waited for


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
            raw = read_regular(path, MAX_HEARTBEAT_BYTES)
        except FileNotFoundError:
            return SpoolRead(None)
        except NotRegularFile as exc:
            return SpoolRead(None, f"heartbeats/{agent}.json: not a regular file ({exc.kind})")
        except FileTooLarge as exc:
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
            hb = Heartbeat.model_validate(valid_text(data))
        except ValidationError as exc:
            return SpoolRead(None, f"heartbeat invalid: {_first_error(exc)}", mtime)
        if hb.agent != agent:
            return SpoolRead(None, f"heartbeat names agent '{hb.agent[:40]}', not '{agent}'", mtime)
        return SpoolRead(hb, None, mtime)

    def read_ping(self, agent: str) -> Ping | None:
        try:
            data = json.loads(read_regular(self.ping_path(agent), MAX_PING_BYTES))
            return Ping.model_validate(valid_text(data))
        except (OSError, ValidationError, ValueError):
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

    def lock_path(self, agent: str) -> Path:
        """The agent's write lock; the same file the hook adapters lock
        (`adapters.common.heartbeat_lock`)."""
        return self.state_dir / "hooks" / f"{agent}.write.lock"

    @contextlib.contextmanager
    def locked(self, agent: str, wait_s: float = LOCK_WAIT_S) -> Iterator[bool]:
        """Hold the agent's write lock (flock) for a read-modify-write; yields whether it was
        taken (after `wait_s` the writer goes on without it rather than hang)."""
        path = self.lock_path(agent)
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with exclusive_lock(path, wait_s) as locked:
            yield locked

    def update_heartbeat(
        self, agent: str, build: Callable[[Heartbeat | None, Ping | None], Heartbeat]
    ) -> Heartbeat:
        """Read the previous heartbeat and the ping, `build` the next one, write it: all under
        the agent's write lock, so concurrent writers never lose an increment."""
        self.ensure_writable()
        with self.locked(agent):
            prev = self.read_heartbeat(agent).heartbeat
            hb = build(prev, self.read_ping(agent))
            self.write_heartbeat(hb)
        return hb

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
