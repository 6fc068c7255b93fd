"""The audit log: `audit.jsonl` in the state dir, one line per operator action.

Messages are logged by hash and length, never by text (DESIGN.md "Audit log").

The log FAILS CLOSED: an action whose audit record cannot be written is not carried out.
`record_action` (called with outcome "started" BEFORE the action, then with its outcome) raises
`AuditUnavailable` (a `Refused`, exit 5) with one line naming the file and the reason when the
state dir is read-only, `audit.jsonl` is a directory, a FIFO, a device (`/dev/full`) or a link to
one, or the disk is full. Opening never blocks (`O_NONBLOCK`: a FIFO without a reader fails at
once, one with a reader is refused by `fstat`), and a line is written whole or reported failed.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fleet_tui.config.surface import web_label
from fleet_tui.errors import AuditUnavailable
from fleet_tui.protocol.clock import format_ts
from fleet_tui.protocol.files import APPEND_FLAGS, NotRegularFile, ensure_regular
from fleet_tui.sources.systemd import current_user

if TYPE_CHECKING:  # the records' module is pydantic: not imported for the hooks' sake
    from fleet_tui.model.records import AgentRecord

SURFACE_ENV = "MOSAIC_FLEET_SURFACE"


def cli_surface(surface: str, environ: Mapping[str, str] | None = None) -> str:
    """The surface an audit line says: `ssh` for a `cli` verb that another host's dashboard
    ran over SSH (control.remote_hands puts `env MOSAIC_FLEET_SURFACE=ssh` in the remote
    command line; any other value is ignored), else `surface` as given."""
    env = os.environ if environ is None else environ
    return "ssh" if surface == "cli" and env.get(SURFACE_ENV) == "ssh" else surface


def audit_path(state_dir: Path) -> Path:
    return state_dir / "audit.jsonl"


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def append_line(path: Path, data: bytes) -> None:
    """Append `data` (one whole line) to the regular file `path`, creating it 0600.

    Never blocks on a special file; raises `AuditUnavailable` on any failure."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = ensure_regular(os.open(path, APPEND_FLAGS, 0o600), path)
    except NotRegularFile as exc:
        raise AuditUnavailable(
            f"audit log {path}: {exc.kind}, not a regular file; action refused"
        ) from None
    except OSError as exc:
        raise AuditUnavailable(f"audit log {path}: {_why(exc)}; action refused") from None
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise OSError("short write")
            view = view[written:]
        try:
            os.fsync(fd)  # cheap for one short line; a failing fsync is a failing disk
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # a file system without sync
                raise
    except OSError as exc:
        raise AuditUnavailable(f"audit log {path}: {_why(exc)}; action refused") from None
    finally:
        os.close(fd)


def record_action(
    state_dir: Path,
    *,
    now: datetime,
    tenant_id: str,
    host: str,
    action: str,
    agent: str,
    outcome: str,
    detail: str = "",
    surface: str | None = None,
    label: str | None = None,
) -> None:
    """Append one line. `label` names the web token that acted (a `web` line without one
    takes the web session's own, config.surface.web_label). Raises `AuditUnavailable` (exit 5, one line) when it cannot: the
    caller must then NOT carry out the action (write its "started" record first)."""
    line: dict[str, object] = {
        "ts": format_ts(now),
        "tenant_id": tenant_id,
        "host": host,
        "uid": os.getuid(),
        "user": current_user(),
        "action": action,
        "agent": agent,
        "outcome": outcome,
        "detail": detail,
    }
    if surface is not None:
        line["surface"] = cli_surface(surface)
    label = label or web_label(surface)
    if label:
        line["label"] = label
    data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
    append_line(audit_path(state_dir), data)


def record_agent_action(
    state_dir: Path, record: AgentRecord, action: str, outcome: str, detail: str, *, surface: str
) -> None:
    """`record_action` for an operator's action on `record`'s agent, now (its tenant, host and
    name); raises `AuditUnavailable` as record_action does."""
    record_action(
        state_dir,
        now=datetime.now(UTC),
        tenant_id=record.tenant_id,
        host=record.host,
        action=action,
        agent=record.name,
        outcome=outcome,
        detail=detail,
        surface=surface,
    )
