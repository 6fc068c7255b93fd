"""What the screens and the palette may ask of the dashboard: a Protocol the app satisfies.

Screens sit below the app (the app builds them); they read the app's latest poll and call its
navigation through this Protocol, never through `ui.app`, so no screen imports the app."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol, cast

from textual.app import App

from fleet_tui.control.actions import OperatorActions
from fleet_tui.model.records import AgentRecord, FleetSnapshot
from fleet_tui.service.budgets import BudgetSource
from fleet_tui.service.poll import SnapshotSource


class OutputTarget(Protocol):
    """A screen that shows a captured pane (lines, or why there are none) of agent `key`."""

    def show_output(
        self, lines: list[str] | None, error: str | None = None, key: str | None = None
    ) -> None: ...


class Dashboard(Protocol):
    """The app, as its screens see it: the latest poll, the sources, and where to go."""

    source: SnapshotSource
    actions: OperatorActions | None
    budget_source: BudgetSource | None
    clock: Callable[[], datetime]

    @property
    def snapshot(self) -> FleetSnapshot | None: ...
    @property
    def poll_error(self) -> str | None: ...
    @property
    def polled_at(self) -> datetime | None: ...
    @property
    def polling_paused(self) -> bool: ...

    def heartbeat_history(self, key: str) -> list[float]: ...
    def request_capture(self, screen: OutputTarget, record: AgentRecord) -> None: ...
    def open_detail(self, key: str) -> None: ...
    def go_to_agent(self, key: str) -> None: ...
    def binding_rows(self) -> list[tuple[str, str, str]]: ...
    def action_waiting(self) -> None: ...
    def action_clear_filter(self) -> None: ...
    def action_toggle_all(self) -> None: ...
    def action_show_fleet(self) -> None: ...
    def action_help(self) -> None: ...
    def action_warnings(self) -> None: ...
    def action_sort(self, column: str) -> None: ...


class InApp(Protocol):
    """A widget, a screen or a palette provider: anything that knows its running app."""

    @property
    def app(self) -> App[object]: ...


def dashboard_of(node: InApp) -> Dashboard:
    """The dashboard `node` runs in (the running app, seen through `Dashboard`)."""
    return cast(Dashboard, node.app)
