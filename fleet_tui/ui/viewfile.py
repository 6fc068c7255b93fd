"""The fleet screen's remembered sort: `<state_dir>/dashboard.json`, `{"version": 1, "sort":
{"key": "hb", "reverse": false}}` (`"sort": null` is the default, urgency-first order).

A missing, unreadable or malformed file, or a sort key this version does not know, means the
default: never a crash. Written with protocol.files.atomic_write (readers see the old file or the
new one). Both calls do file I/O: the screen runs them in a thread worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from fleet_tui.present.columns import COLUMNS_BY_KEY
from fleet_tui.protocol.files import atomic_write

VERSION = 1


@dataclass(frozen=True)
class SavedSort:
    key: str | None = None  # None: the default order
    reverse: bool = False


def load_sort(path: Path) -> SavedSort:
    """The sort saved at `path`, or the default one when there is none that makes sense."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return SavedSort()
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        return SavedSort()
    sort = doc.get("sort")
    if not isinstance(sort, dict):
        return SavedSort()
    key, reverse = sort.get("key"), sort.get("reverse", False)
    if not isinstance(key, str) or key not in COLUMNS_BY_KEY or not isinstance(reverse, bool):
        return SavedSort()
    return SavedSort(key, reverse)


def save_sort(path: Path, sort: SavedSort) -> None:
    """Remember `sort` at `path` (its folder made 0700 when missing). Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = {"key": sort.key, "reverse": sort.reverse} if sort.key else None
    atomic_write(path, json.dumps({"version": VERSION, "sort": body}) + "\n", mode=0o600)


class SortLoaded(Message):
    """The remembered sort was read (or the default, when there was none)."""

    def __init__(self, sort: SavedSort | None, error: str | None) -> None:
        super().__init__()
        self.sort = sort
        self.error = error


class SortSaved(Message):
    def __init__(self, result: None, error: str | None) -> None:
        super().__init__()
        self.error = error
