"""Heartbeat spool v1 in the state dir, read and written with the models: `heartbeats/<agent>.json`
and `pings/<agent>.json` (the files, limits and write lock are `protocol.heartbeat`'s).

Readers never raise on a bad file: they return why it is unreadable, so one broken heartbeat
degrades one agent and nothing else. A FIFO, a device or a link to one is never opened for a
blocking read (`protocol.files.read_regular`): it reads as "heartbeats/x.json: not a regular file
(a FIFO)". Agent text is made valid Unicode before the models see it.

Writers replace files atomically (`protocol.files.atomic_write`); a failure is a `StateDirError`
naming the folder. `update_heartbeat` is the locked read-modify-write: it holds the agent's
write lock (the one the hook adapters and the keepalive take) from the read of the previous
heartbeat to the rename of the new one, so concurrent writers never lose a `seq` increment.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet_tui.errors import StateDirError
from fleet_tui.model.records import SpoolRead
from fleet_tui.protocol import heartbeat as protocol

if TYPE_CHECKING:
    from pydantic import ValidationError

    from fleet_tui.model.validated import Heartbeat, Ping

LOCK_WAIT_S = 5.0  # a writer stuck longer than this holding the lock is not waited for


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "record"
    return f"{loc}: {err['msg']}"


class HeartbeatSpool:
    """The spool of one state dir (one tenant)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.heartbeats = protocol.heartbeats_dir(state_dir)
        self.pings = protocol.pings_dir(state_dir)

    # -- reading -------------------------------------------------------------------------
    def heartbeat_path(self, agent: str) -> Path:
        return protocol.heartbeat_path(self.state_dir, agent)

    def ping_path(self, agent: str) -> Path:
        return protocol.ping_path(self.state_dir, agent)

    def read_heartbeat(self, agent: str) -> SpoolRead:
        got = self.heartbeat_bytes(agent)
        return got if isinstance(got, SpoolRead) else self.decode_heartbeat(agent, *got)

    def heartbeat_bytes(
        self, agent: str, path: str | None = None
    ) -> tuple[bytes, float] | SpoolRead:
        """The first half of `read_heartbeat`: the file's bytes and mtime, or the `SpoolRead`
        that says why there are none (`path`: the file's, when the caller listed the folder).
        A reader that keeps the bytes of its last read can tell a file read again with the
        same bytes (no need to decode them again) from a change."""
        got = protocol.heartbeat_bytes(self.state_dir, agent, path)
        return (
            SpoolRead(None, got.error, got.mtime)
            if isinstance(got, protocol.HeartbeatFile)
            else got
        )

    def decode_heartbeat(self, agent: str, raw: bytes, mtime: float | None = None) -> SpoolRead:
        """The second half of `read_heartbeat`: the agent's heartbeat file's bytes as a record,
        or why they are none (the same bytes always give the same answer)."""
        data, error, _ = protocol.decode_heartbeat(raw, mtime)
        if data is None:
            return SpoolRead(None, error, mtime)
        problem = protocol.version_problem(data)
        if problem is not None:
            return SpoolRead(None, problem, mtime)
        # pydantic only once there is a heartbeat to validate (issue 16, start-up)
        from pydantic import ValidationError

        from fleet_tui.model.validated import Heartbeat

        try:
            hb = Heartbeat.model_validate(data)
        except ValidationError as exc:
            return SpoolRead(None, f"heartbeat invalid: {_first_error(exc)}", mtime)
        if hb.agent != agent:
            return SpoolRead(None, f"heartbeat names agent '{hb.agent[:40]}', not '{agent}'", mtime)
        return SpoolRead(hb, None, mtime)

    def read_ping(self, agent: str) -> Ping | None:
        data = protocol.read_ping(self.state_dir, agent)
        if data is None:
            return None
        from pydantic import ValidationError

        from fleet_tui.model.validated import Ping

        try:
            return Ping.model_validate(data)
        except ValidationError:
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

    def write_heartbeat(self, hb: Heartbeat | Mapping[str, Any]) -> Path:
        """Write a heartbeat: a model, or a `protocol.heartbeat.heartbeat_record` (validated by
        the readers)."""
        self.ensure_writable()
        agent = str(hb["agent"]) if isinstance(hb, Mapping) else hb.agent
        with _state_dir_error(self.heartbeats):
            return protocol.write_heartbeat(self.state_dir, agent, hb)

    def lock_path(self, agent: str) -> Path:
        """The agent's write lock; the same file the hook adapters lock."""
        return protocol.write_lock_path(self.state_dir, agent)

    @contextlib.contextmanager
    def locked(self, agent: str, wait_s: float = LOCK_WAIT_S) -> Iterator[bool]:
        """Hold the agent's write lock (flock) for a read-modify-write; yields whether it was
        taken (after `wait_s` the writer goes on without it rather than hang)."""
        with protocol.write_lock(self.state_dir, agent, wait_s) as locked:
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
        from fleet_tui.model.validated import Ping

        self.ensure_writable()
        ping = Ping(nonce=nonce, ts=ts)
        with _state_dir_error(self.pings):
            protocol.write_ping(self.state_dir, agent, ping)
        return ping


@contextlib.contextmanager
def _state_dir_error(folder: Path) -> Iterator[None]:
    """An OSError of a write in `folder` as a StateDirError naming it."""
    try:
        yield
    except OSError as exc:
        raise StateDirError(f"cannot write in {folder}: {exc.strerror or exc}") from None
