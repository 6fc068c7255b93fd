"""Append-only JSON-lines ledgers of the state dir: `usage.jsonl` and `spend.jsonl` (DESIGN.md).

Writers append whole lines with one `write` on an `O_APPEND` descriptor, so concurrent writers
(hooks of several agents, the statusLine of several sessions) never interleave within a line.
Readers live with the code that needs them (budgets, gateway publisher).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from fleet_tui.protocol.files import open_append

USAGE_FILE = "usage.jsonl"
SPEND_FILE = "spend.jsonl"


def append_records(path: Path, records: Iterable[BaseModel]) -> int:
    """Append each record as one JSON line; returns how many were written. Creates the folder."""
    lines = [r.model_dump_json(exclude_none=False).encode() + b"\n" for r in records]
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


def usage_path(state_dir: Path) -> Path:
    return state_dir / USAGE_FILE


def spend_path(state_dir: Path) -> Path:
    return state_dir / SPEND_FILE
