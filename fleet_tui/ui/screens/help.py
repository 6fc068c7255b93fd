"""HelpScreen (`?`): every key, its binding id (for remapping in fleet-tui.yaml), and the filter."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from fleet_tui.core.sanitize import clean_text
from fleet_tui.core.timefmt import human_duration
from fleet_tui.model.records import Drift, FleetSnapshot, Health
from fleet_tui.present import view as view_module
from fleet_tui.present.columns import BUDGET_LEGEND, STATE_LEGEND
from fleet_tui.present.glyphs import to_ascii
from fleet_tui.ui.context import dashboard_of

FILTER_HELP = (view_module.__doc__ or "").split("\n\n", 1)[-1]


# A binding id's scope (`fleet.filter` -> "fleet") and the heading it is listed under, in the
# order `?` lists them. A scope not named here is listed last under its own name.
SCOPES: dict[str, str] = {
    "app": "Everywhere",
    "fleet": "Fleet",
    "table": "Fleet table",
    "detail": "Agent detail",
    "stream": "Stream",
    "budget": "Budgets",
    "inbox": "Inbox (i)",
    "silence": "Silence, in the inbox (z)",
    "compose": "Send a message (m)",
    "confirm": "Attach confirmation (a)",
    "lifecycle": "Start, restart, stop confirmation (u, r, x)",
    "copy": "Copy (y)",
    "audit": "Audit log (L)",
    "warnings": "Warnings (W)",
    "help": "This help (?)",
}


def grouped(rows: Iterable[tuple[str, str, str]]) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """`rows` under their screen's heading (SCOPES order, then unknown scopes as met)."""
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for row in rows:
        scope = row[2].split(".", 1)[0]
        groups.setdefault(scope, []).append(row)
    order = [s for s in SCOPES if s in groups] + [s for s in groups if s not in SCOPES]
    return [(SCOPES.get(s, s), groups[s]) for s in order]


def help_table(rows: list[tuple[str, str, str]], *, ascii_only: bool = False) -> Text:
    """Every key, under the heading of the screen it works on (`grouped`), in three aligned
    columns (no leading spaces: Textual drops them from a line of a wrapped Text): key, what it does, binding id. One Text, not a Rich Table: a table of ~90 rows
    was re-rendered for every line drawn, and `?` took a third of a second at 160x48."""
    key_w = max([len("key"), *(len(r[0]) for r in rows)]) + 2
    does = [to_ascii(r[1]) if ascii_only else r[1] for r in rows]
    desc_w = max([len("does"), *(len(d) for d in does)]) + 2
    text = Text()
    text.append(f"{'key':<{key_w}}{'does':<{desc_w}}binding id\n", style="bold")
    shown = dict(zip((r[2] for r in rows), does, strict=True))
    for i, (heading, group) in enumerate(grouped(rows)):
        if i:
            text.append("\n")
        text.append(heading, style="bold underline")
        text.append("\n")
        for keys, _desc, bid in group:
            text.append(f"{keys:<{key_w}}{shown[bid]:<{desc_w}}")
            text.append(bid, style="dim")
            text.append("\n")
    text.rstrip()
    return text


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        app = dashboard_of(self)
        glyphs = to_ascii if app.ascii_only else str
        with VerticalScroll(id="help-body"):
            yield Static(Text("fleet-tui keys", style="bold"))
            yield Static(help_table(app.binding_rows(), ascii_only=app.ascii_only))
            yield Static(Text("remap a binding id under keymap: in fleet-tui.yaml", style="dim"))
            yield Static(Text("\nFilter (/)", style="bold"))
            yield Static(Text(FILTER_HELP.strip()))
            yield Static(
                Text(
                    glyphs(
                        "\nHealth is liveness from heartbeats only: ● healthy, ◐ stale, "
                        "✖ unresponsive, ? unknown, ○ down. ★ marks agents waiting for you "
                        "(waiting_input or blocked)."
                    ),
                    style="dim",
                )
            )
            yield Static(Text(glyphs(STATE_LEGEND + "\n" + BUDGET_LEGEND), style="dim"))
            yield Static(Text(TOKENS_LEGEND, style="dim"))
            yield Static(Text("esc closes this help", style="dim"))


TOKENS_LEGEND = (
    "TOKENS: token use today without prompt-cache reads (input, output, cache writes); "
    "enter shows the cache reads beside them."
)
UNRESPONSIVE_WARN_S = 600.0  # an agent unresponsive this long is listed under `W`


def agent_problems(snapshot: FleetSnapshot | None) -> list[str]:
    """The agents that need a look, one line each: unresponsive for ten minutes or more (its
    last heartbeat that old), missing (in the roster, no session), a dead pane (it exited).
    (The model has no "held" agent: nothing to list for it.)"""
    out: list[str] = []
    for a in snapshot.agents if snapshot else []:
        if not a.is_agent:
            continue
        name = clean_text(a.name, max_len=64)
        age = a.heartbeat.age_s if a.heartbeat else None
        if a.health == Health.UNRESPONSIVE and age is not None and age >= UNRESPONSIVE_WARN_S:
            out.append(f"{name}: unresponsive, last heartbeat {human_duration(age)} ago")
        if Drift.MISSING_SESSION in a.drift:
            out.append(f"{name}: missing, in the roster but no tmux session runs")
        if Drift.PANE_DEAD in a.drift:
            out.append(f"{name}: its pane is dead (the program exited)")
    return out


class WarningsScreen(ModalScreen[None]):
    """`W`: the agents that need a look (`agent_problems`), then every warning of the current
    snapshot's sources (sockets, roster, heartbeat files...)."""

    BINDINGS = [Binding("escape,q,W", "dismiss", "Close", id="warnings.close")]

    def compose(self) -> ComposeResult:
        app = dashboard_of(self)
        glyphs = to_ascii if app.ascii_only else str
        agents = agent_problems(app.snapshot)
        sources = app.snapshot.warnings if app.snapshot else []
        with VerticalScroll(id="help-body"):
            yield Static(
                Text(
                    f"Warnings ({len(agents)} agent{'' if len(agents) == 1 else 's'}, "
                    f"{len(sources)} source{'' if len(sources) == 1 else 's'})",
                    style="bold",
                )
            )
            for title, lines in (("Agents", agents), ("Sources", sources)):
                text = Text()
                text.append(title, style="bold underline")
                text.append("\n")
                for w in lines:
                    text.append(glyphs("⚠ "), style="yellow")
                    text.append(glyphs(clean_text(w, max_len=500)) + "\n")
                if not lines:
                    text.append("none\n", style="dim")
                yield Static(text)
            yield Static(Text("esc closes this list", style="dim"))
