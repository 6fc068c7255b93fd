"""FleetHeader: two lines above the table: the fleet at a glance, sockets and freshness.

Only this small widget repaints each second (ages of the data); the table does not.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import Static

from fleet_tui.core.sanitize import clean_text
from fleet_tui.core.timefmt import human_duration
from fleet_tui.model.records import FleetSnapshot, Health, SocketState
from fleet_tui.present.columns import HEALTH_SYMBOL
from fleet_tui.present.view import FleetCounts, fleet_counts

HEALTH_STYLE = {
    Health.HEALTHY: "green",
    Health.STALE: "yellow",
    Health.UNRESPONSIVE: "bold red",
    Health.UNKNOWN: "magenta",
    Health.DOWN: "red",
}
# Without colour (NO_COLOR, TERM=dumb) the urgent counts stand out by weight and reverse, not by
# a grey (red turned the darkest grey of all); the rest is plain.
HEALTH_STYLE_NO_COLOUR = {
    Health.HEALTHY: "",
    Health.STALE: "bold",
    Health.UNRESPONSIVE: "bold reverse",
    Health.UNKNOWN: "",
    Health.DOWN: "bold",
}
STALE_AFTER_S = 10.0
SOCKET_MARK = {
    SocketState.LIVE: "●",
    SocketState.STALE: "○",
    SocketState.HUNG: "✖",
    SocketState.DENIED: "⊘",
}


def header_text(
    snapshot: FleetSnapshot | None,
    now: datetime,
    *,
    shown: int | None = None,
    view: str = "",
    error: str | None = None,
    polled_at: datetime | None = None,
    compact: int = 0,
    no_colour: bool = False,
    counts: FleetCounts | None = None,
) -> Text:
    """Both header lines as plain, styled text (no markup is parsed).

    `compact` shortens the first line for narrow screens, so the health counts stay whole:
    1 drops "for you", 2 also the health words (the symbols stay: never colour alone).
    `no_colour`: the terminal shows no colour; what is urgent is bold or reverse instead.
    `counts`: `fleet_counts(snapshot.agents)`, when the caller has it already.
    """
    health_style = HEALTH_STYLE_NO_COLOUR if no_colour else HEALTH_STYLE
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("◆ fleet-tui", style="bold")
    if snapshot is None:
        t.append("  collecting the fleet…" if error is None else "  no data yet", style="dim")
        if error:
            t.append("\n⚠ ", style="bold red")
            t.append(clean_text(error, max_len=300), style="red")
        return t
    if counts is None:
        counts = fleet_counts(snapshot.agents)
    t.append(f"  {clean_text(snapshot.tenant_id)}@{clean_text(snapshot.host)}  ", style="bold")
    t.append(f"{counts.agents} agents")
    if shown is not None and shown != counts.agents:
        t.append(f" ({shown} shown)", style="dim")
    waiting = counts.waiting
    if waiting:
        t.append("  ")
        t.append(
            f"★ {waiting} waiting" + ("" if compact else " for you"),
            style="bold reverse" if no_colour else "bold cyan",
        )
    by_health = counts.health
    for h in Health:
        if by_health.get(h):
            t.append("  ")
            word = "" if compact >= 2 else f" {h.value}"
            t.append(f"{HEALTH_SYMBOL[h]} {by_health[h]}{word}", style=health_style[h])
    t.append("\n")
    t.append("sockets ", style="dim")
    if not snapshot.sockets:
        t.append("none", style="yellow")
    for s in snapshot.sockets:
        style = {SocketState.LIVE: "", SocketState.STALE: "dim"}.get(s.state, "bold red")
        label = f"{SOCKET_MARK[s.state]} {s.name}"
        label += f" ({s.sessions})" if s.state is SocketState.LIVE else f" {s.state.value}"
        t.append(label + "  ", style=style)
    if snapshot.sources:
        # per source: how old its data is; a failing source is marked and keeps its last age
        for src in snapshot.sources:
            if (src.name in ("roster", "systemd") and src.ok) or src.name == "processes":
                continue
            age = (now - src.observed_at).total_seconds() if src.observed_at else None
            late = age is not None and age > STALE_AFTER_S
            t.append(f"· {src.name} ", style="dim")
            text = "never" if age is None else human_duration(max(age, 0.0))
            if age is None and src.ok and src.detail == "reading":
                text = "reading…"  # a first read still running (the token use of a big history)
            if not src.ok:
                label = (
                    "degraded"
                    if src.name != "systemd"
                    else clean_text(src.detail or "off").split(" (")[0]
                )
                t.append(
                    f"{text} {label}" if src.name != "systemd" else label,
                    style="bold red" if src.name != "systemd" else "dim",
                )
            else:
                t.append(text, style="bold red" if late else "")
            t.append(" ")
    else:
        age = (now - (polled_at or snapshot.generated_at)).total_seconds()
        t.append("· data ", style="dim")
        t.append(
            f"{human_duration(max(age, 0))} old", style="bold red" if age > STALE_AFTER_S else ""
        )
        if snapshot.systemd and snapshot.systemd != "available":
            t.append("  · systemd: ", style="dim")
            t.append(snapshot.systemd.split(" (")[0], style="dim")
    if view:
        t.append("  · ", style="dim")
        t.append(clean_text(view, max_len=80), style="bold cyan")
    if error:
        t.append("\n⚠ ", style="bold red")
        t.append(clean_text(error, max_len=300), style="red")
    elif snapshot.warnings:
        t.append("\n⚠ ", style="yellow")
        t.append(clean_text(snapshot.warnings[0], max_len=300), style="yellow")
        if len(snapshot.warnings) > 1:
            t.append(f"  (+{len(snapshot.warnings) - 1} more: W)", style="dim")
    return t


class FleetHeader(Static):
    """Renders `header_text` for the screen's current snapshot, view and clock."""

    DEFAULT_CSS = """
    FleetHeader { height: auto; max-height: 4; padding: 0 1; }
    """

    def __init__(self, clock: Callable[[], datetime], *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.clock = clock
        self.snapshot: FleetSnapshot | None = None
        self.shown: int | None = None
        self.view = ""
        self.error: str | None = None
        self.polled_at: datetime | None = None
        self._painted: tuple[Text, int, int] | None = None  # text on screen, lines, width
        self._counts: tuple[FleetSnapshot, FleetCounts] | None = None  # counted once a snapshot

    def show(
        self,
        snapshot: FleetSnapshot | None,
        *,
        shown: int | None = None,
        view: str = "",
        error: str | None = None,
        polled_at: datetime | None = None,
    ) -> None:
        self.snapshot, self.shown, self.view, self.error = snapshot, shown, view, error
        self.polled_at = polled_at
        self.tick()

    def counted(self, snapshot: FleetSnapshot, counts: FleetCounts) -> None:
        """The counts of `snapshot`, worked out already (the poll thread's `PollDigest`)."""
        self._counts = (snapshot, counts)

    def counts(self) -> FleetCounts | None:
        """The agents of the snapshot shown, counted once per snapshot (the header is drawn
        again every second, and up to three times to fit)."""
        snapshot = self.snapshot
        if snapshot is None:
            return None
        kept = self._counts
        if kept is not None and kept[0] is snapshot:
            return kept[1]
        counts = fleet_counts(snapshot.agents)
        self._counts = (snapshot, counts)
        return counts

    def tick(self) -> None:
        width = self.content_size.width
        now = self.clock()
        counts = self.counts()
        for compact in range(3):
            text = header_text(
                self.snapshot,
                now,
                shown=self.shown,
                view=self.view,
                error=self.error,
                polled_at=self.polled_at,
                compact=compact,
                no_colour=self.app.no_color,
                counts=counts,
            )
            if width <= 0 or cell_len(text.plain.split("\n", 1)[0]) <= width:
                break
        if width > 0:
            # one line per line: cut with an ellipsis, never wrap (rows below would move)
            lines = text.split("\n", allow_blank=True)
            for line in lines:
                line.truncate(width, overflow="ellipsis")
            # the joined text must not wrap either: a wrapped line would make the header
            # taller than its lines after a resize, leaving a blank line above the table
            text = Text("\n", no_wrap=True, overflow="ellipsis").join(lines)
        # Polls come several times a second (each heartbeat) and ages tick once a second:
        # repaint only when the text changed, and lay the screen out again only when the
        # header's height (its line count) changed. A layout pass costs several ms.
        height = text.plain.count("\n") + 1
        painted = self._painted
        if painted == (text, height, width):
            return
        self._painted = (text, height, width)
        self.update(text, layout=painted is None or painted[1:] != (height, width))

    def on_resize(self) -> None:
        self.tick()
