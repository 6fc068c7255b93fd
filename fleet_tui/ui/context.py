"""What the screens and the palette may ask of the dashboard: a Protocol the app satisfies.

Screens sit below the app (the app builds them); they read the app's latest poll and call its
navigation through this Protocol, never through `ui.app`, so no screen imports the app."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget

from fleet_tui.config.surface import Surface
from fleet_tui.control.actions import OperatorActions
from fleet_tui.model.records import FleetSnapshot
from fleet_tui.present.view import PollDigest
from fleet_tui.service.budgets import BudgetSource
from fleet_tui.service.poll import SnapshotSource
from fleet_tui.ui.alerting import OpenAlert, TerminalAlerts

if TYPE_CHECKING:
    from fleet_tui.ui.widgets.fleet_table import RowBooks


class Dashboard(Protocol):
    """The app, as its screens see it: the latest poll, the sources, and where to go."""

    source: SnapshotSource
    actions: OperatorActions | None
    budget_source: BudgetSource | None
    clock: Callable[[], datetime]
    ascii_only: bool  # draw present.glyphs.to_ascii(text), not Unicode glyphs
    view_file: Path | None  # the fleet screen's remembered sort (a JSON file), None: not kept
    alerts: TerminalAlerts | None  # the `terminal` alert channel (None: alerts are off)
    open_alerts: tuple[OpenAlert, ...]  # its open episodes after the last poll, oldest first
    surface: Surface  # the terminal, or a browser session of `fleet-tui web` (its scope)
    digest: PollDigest  # what the fleet screen shows of each snapshot, made in the poll thread
    row_books: RowBooks  # the fleet table's rows of each snapshot, made there too

    @property
    def snapshot(self) -> FleetSnapshot | None: ...
    @property
    def poll_error(self) -> str | None: ...
    @property
    def polled_at(self) -> datetime | None: ...
    @property
    def polling_paused(self) -> bool: ...

    def heartbeat_history(self, key: str) -> list[float]: ...
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
    def action_message(self) -> None: ...
    def action_inbox(self) -> None: ...
    def silence_alert(self, alert: OpenAlert, until: datetime) -> None: ...


class ActionHost(Protocol):
    """What the operator's pane actions (ui.operator) and the lifecycle keys (ui.lifecycle) need
    of the dashboard besides the App itself: the latest poll, its source, a poll now, a screen
    shown with a callback, and the surface it runs on (a browser session refuses some)."""

    source: SnapshotSource
    surface: Surface

    @property
    def snapshot(self) -> FleetSnapshot | None: ...

    def request_poll(self, *, heartbeats_only: bool = False) -> None: ...
    def show_screen(
        self, screen: Screen[Any], callback: Callable[[Any], None] | None = None
    ) -> None: ...


class InApp(Protocol):
    """A widget, a screen or a palette provider: anything that knows its running app."""

    @property
    def app(self) -> App[object]: ...


def dashboard_of(node: InApp) -> Dashboard:
    """The dashboard `node` runs in (the running app, seen through `Dashboard`)."""
    return cast(Dashboard, node.app)


def on_stack(screen: Screen[Any]) -> bool:
    """True while `screen` is on the app's stack and the app is not exiting. A popped screen
    leaves the stack at once and loses its widgets a few turns of the loop later, while it is
    removed; from then on nothing may query them. An exiting app (`q`, a signal, the end of a
    test) stops running before it closes its screens, which stay on the stack while their
    widgets go: a poll landing then finds no widgets."""
    app = screen.app
    return app.is_running and screen.is_attached and screen in app.screen_stack


class PollScreen(Screen[None]):
    """A screen that shows the app's polls: `receive_snapshot()` is called by the app on each
    one (`FleetApp._publish`) while `widgets_ready()`; the screen reads the latest poll again
    in its own `on_mount`, so nothing published before that is lost."""

    _composed = False

    async def mount_composed_widgets(self, widgets: list[Widget]) -> None:
        await super().mount_composed_widgets(widgets)
        self._composed = True  # before on_mount: a subclass's on_mount runs before its bases'

    def widgets_ready(self) -> bool:
        """True from the end of its compose (so in its own `on_mount`) while it is on the
        stack: the only time its widgets can be queried. A screen just pushed has not composed
        yet (its compose runs on a later turn of the loop); a popped one loses its widgets
        while it is removed. Not Textual's `is_mounted`, set only once `on_mount` has returned:
        the inbox drew nothing at its mount, and a key typed right behind `i` found it empty."""
        return self._composed and on_stack(self)

    def receive_snapshot(self) -> None:
        """The app published a poll: show it (from `dashboard_of(self)`)."""


def pane_action_bindings(scope: str) -> list[Binding]:
    """The keys of the operator's pane actions (the app's, on the agent in view), with the ids
    `scope.stream`, `scope.watch`, `scope.attach`, `scope.message` for the keymap."""
    return [
        Binding("s", "app.stream", "Stream", id=f"{scope}.stream"),
        Binding("w", "app.watch", "Watch", id=f"{scope}.watch"),
        Binding("a", "app.attach", "Attach…", id=f"{scope}.attach"),
        Binding("m", "app.message", "Send…", id=f"{scope}.message"),
    ]


def lifecycle_bindings(scope: str) -> list[Binding]:
    """The lifecycle keys (the app's, on the agent in view; ui.lifecycle), with the ids
    `scope.start`, `scope.restart`, `scope.stop` for the keymap. Lowercase (k9s/lazygit habits;
    the uppercase letters are the fleet's sort keys); out of the footer, which has no room for
    them at 80 columns: `?` and the palette list them."""
    return [
        Binding("u", "app.start", "Start (up)…", show=False, id=f"{scope}.start"),
        Binding("r", "app.restart", "Restart…", show=False, id=f"{scope}.restart"),
        Binding("x", "app.stop", "Stop…", show=False, id=f"{scope}.stop"),
    ]
