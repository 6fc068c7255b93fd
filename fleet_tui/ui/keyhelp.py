"""The key help (`?`): every documented binding of every screen, with the operator's keymap
applied (the help screen groups them by the screen they work on)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from textual.app import App
from textual.binding import Binding


def documented_groups() -> list[Iterable[object]]:
    """The BINDINGS of every screen and widget with keys of its own, read from the classes
    (so a key added to a screen shows in `?` without a list to keep up to date)."""
    from fleet_tui.ui.copy import CopyScreen
    from fleet_tui.ui.dialogs import (
        AuditScreen,
        ComposeMessageScreen,
        ConfirmAttachScreen,
        ConfirmLifecycleScreen,
    )
    from fleet_tui.ui.screens import AgentDetailScreen, FleetScreen, HelpScreen, WarningsScreen
    from fleet_tui.ui.screens.budget import BudgetScreen
    from fleet_tui.ui.screens.inbox import InboxList, InboxScreen, SilenceScreen
    from fleet_tui.ui.screens.stream import StreamScreen
    from fleet_tui.ui.widgets import FleetTable
    from fleet_tui.ui.widgets.stream_log import StreamLog

    classes: list[type] = [
        FleetScreen,
        FleetTable,
        AgentDetailScreen,
        StreamScreen,
        StreamLog,
        BudgetScreen,
        InboxScreen,
        InboxList,
        SilenceScreen,
        ComposeMessageScreen,
        ConfirmAttachScreen,
        ConfirmLifecycleScreen,
        CopyScreen,
        AuditScreen,
        WarningsScreen,
        HelpScreen,
    ]
    return [getattr(cls, "BINDINGS", []) for cls in classes]


def binding_rows(
    app: App[object], keymap: Mapping[str, str], groups: Iterable[Iterable[object]]
) -> list[tuple[str, str, str]]:
    """(keys, description, id) of every binding of `groups` that has an id, in their order; a
    binding id listed twice (the same key class in two groups) is listed once."""
    rows: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for group in groups:
        for b in group:
            if isinstance(b, Binding) and b.id and b.id not in seen:
                seen.add(b.id)
                keys = keymap.get(b.id, b.key).split(",")
                shown = ", ".join(app.get_key_display(Binding(k.strip(), "")) for k in keys)
                rows.append((shown, b.description, b.id))
    return rows
