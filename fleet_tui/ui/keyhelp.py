"""The key help (`?`): every documented binding, with the operator's keymap applied."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from textual.app import App
from textual.binding import Binding


def binding_rows(
    app: App[object], keymap: Mapping[str, str], groups: Iterable[Iterable[object]]
) -> list[tuple[str, str, str]]:
    """(keys, description, id) of every binding of `groups` that has an id, in their order."""
    rows: list[tuple[str, str, str]] = []
    for group in groups:
        for b in group:
            if isinstance(b, Binding) and b.id:
                keys = keymap.get(b.id, b.key).split(",")
                shown = ", ".join(app.get_key_display(Binding(k.strip(), "")) for k in keys)
                rows.append((shown, b.description, b.id))
    return rows
