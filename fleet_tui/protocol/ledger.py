"""Append-only JSON-lines ledgers of the state dir: `usage.jsonl` and `spend.jsonl` (DESIGN.md).

Writers append whole lines with one `write` on an `O_APPEND` descriptor, so concurrent writers
(hooks of several agents, the statusLine of several sessions) never interleave within a line.
Readers live with the code that needs them (budgets, gateway publisher) and validate each line
with the pydantic models (`UsageSample`, `SpendRecord`).

Standard library only: the statusLine command appends usage samples without importing pydantic,
through `usage_sample`, which builds the line `UsageSample.model_dump_json` would write and
refuses what that model would refuse.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from fleet_tui.protocol.clock import format_ts
from fleet_tui.protocol.files import JsonObject, JsonRecord, json_bytes, open_append
from fleet_tui.protocol.names import HOST_RE, LEDGER_TEXT_RE, TENANT_RE, row_name_problem

USAGE_FILE = "usage.jsonl"
SPEND_FILE = "spend.jsonl"


def record_line(record: JsonRecord) -> bytes:
    """One JSON line of `record`: a model's own dump, or a dict as compact UTF-8 JSON."""
    return json_bytes(record) + b"\n"


def append_records(path: Path, records: Iterable[JsonRecord]) -> int:
    """Append each record as one JSON line; returns how many were written. Creates the folder."""
    lines = [record_line(r) for r in records]
    if not lines:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = open_append(path)  # a FIFO or a device raises NotRegularFile, never blocks
    try:
        for line in lines:
            os.write(fd, line)
    finally:
        os.close(fd)
    return len(lines)


def _name_problem(field: str, value: str) -> str | None:
    if not re.fullmatch(LEDGER_TEXT_RE, value):
        return f"{field}: must be 1-255 characters without control characters"
    problem = row_name_problem(value)
    return None if problem is None else f"{field}: {problem}"


def usage_sample(
    *,
    tenant_id: str,
    host: str,
    account: str,
    window: str,
    window_minutes: int | None,
    used_percent: float,
    resets_at: datetime | None,
    reset_confidence: str,
    observed_at: datetime,
    source: str,
) -> JsonObject:
    """A `usage.jsonl` record with the keys and values `UsageSample.model_dump_json` writes.

    Raises ValueError naming the field for what `UsageSample` would refuse: a tenant or host
    outside its pattern, an account or window name with control or invisible characters, a
    window length out of range, a percentage that is not finite, a naive time."""
    problems = [
        None if re.fullmatch(TENANT_RE, tenant_id) else "tenant_id: not a tenant name",
        None if re.fullmatch(HOST_RE, host) else "host: not a host name",
        _name_problem("account", account),
        _name_problem("window", window),
    ]
    if window_minutes is not None and not 1 <= window_minutes <= 2**31 - 1:
        problems.append("window_minutes: out of range")
    if used_percent != used_percent or used_percent in (float("inf"), float("-inf")):
        problems.append("used_percent: not a finite number")
    if len(reset_confidence) > 64 or len(source) > 255:
        problems.append("reset_confidence or source: too long")
    for name, ts in (("resets_at", resets_at), ("observed_at", observed_at)):
        if ts is not None and ts.tzinfo is None:
            problems.append(f"{name}: no timezone")
    found = [p for p in problems if p]
    if found:
        raise ValueError(f"usage sample refused: {found[0]}")
    return {
        "tenant_id": tenant_id,
        "host": host,
        "account": account,
        "window": window,
        "window_minutes": window_minutes,
        "used_percent": float(used_percent),
        "resets_at": format_ts(resets_at) if resets_at is not None else None,
        "reset_confidence": reset_confidence,
        "observed_at": format_ts(observed_at),
        "source": source,
    }


def usage_path(state_dir: Path) -> Path:
    return state_dir / USAGE_FILE


def spend_path(state_dir: Path) -> Path:
    return state_dir / SPEND_FILE
