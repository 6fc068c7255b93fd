"""HelpScreen (`?`): every key, its binding id (for remapping in fleet-tui.yaml), and the filter."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from fleet_tui.core.sanitize import clean_text
from fleet_tui.present import view as view_module
from fleet_tui.present.columns import BUDGET_LEGEND, STATE_LEGEND
from fleet_tui.ui.context import dashboard_of

FILTER_HELP = (view_module.__doc__ or "").split("\n\n", 1)[-1]


def help_table(rows: list[tuple[str, str, str]]) -> Table:
    table = Table(box=None, padding=(0, 2), show_header=True, header_style="bold")
    table.add_column("key")
    table.add_column("does")
    table.add_column("binding id", style="dim")
    for keys, desc, bid in rows:
        table.add_row(Text(keys), Text(desc), Text(bid))
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        app = dashboard_of(self)
        with VerticalScroll(id="help-body"):
            yield Static(Text("fleet-tui keys", style="bold"))
            yield Static(help_table(app.binding_rows()))
            yield Static(Text("remap a binding id under keymap: in fleet-tui.yaml", style="dim"))
            yield Static(Text("\nFilter (/)", style="bold"))
            yield Static(Text(FILTER_HELP.strip()))
            yield Static(
                Text(
                    "\nHealth is liveness from heartbeats only: ● healthy, ◐ stale, ✖ unresponsive, "
                    "? unknown, ○ down. ★ marks agents waiting for you (waiting_input or blocked).",
                    style="dim",
                )
            )
            yield Static(Text(STATE_LEGEND + "\n" + BUDGET_LEGEND, style="dim"))
            yield Static(Text("esc closes this help", style="dim"))


class WarningsScreen(ModalScreen[None]):
    """`W`: every warning of the current snapshot (sockets, roster, heartbeat files...)."""

    BINDINGS = [Binding("escape,q,W", "dismiss", "Close", id="warnings.close")]

    def compose(self) -> ComposeResult:
        app = dashboard_of(self)
        warnings = app.snapshot.warnings if app.snapshot else []
        with VerticalScroll(id="help-body"):
            yield Static(Text(f"Warnings ({len(warnings)})", style="bold"))
            text = Text()
            for w in warnings or ["none"]:
                text.append("⚠ ", style="yellow")
                text.append(clean_text(w, max_len=500) + "\n")
            yield Static(text)
            yield Static(Text("esc closes this list", style="dim"))
