"""The audit log: `audit.jsonl` in the state dir, one line per operator action.

Messages are logged by hash and length, never by text (DESIGN.md "Audit log").
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from fleet_tui.model import format_ts
from fleet_tui.sources.systemd import current_user


def audit_path(state_dir: Path) -> Path:
    return state_dir / "audit.jsonl"


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
) -> None:
    """Append one line; a failure to audit is reported by raising OSError to the caller."""
    line = {
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
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
    fd = os.open(audit_path(state_dir), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
