"""Plain-text rendering of a snapshot for `fleet-tui ps`: readable at 80 columns, better wider.

Rows come in the dashboard's default order (`urgency_order`: who needs a human first); `--json`
keeps the snapshot's order. Columns drop by priority when the terminal is narrow; status is a
symbol AND a word, colour only adds to it (and is off with NO_COLOR, TERM=dumb, or when not writing to a terminal). Every
agent-controlled string was already sanitized by the join; cells are cut, never wrapped.
"""

from __future__ import annotations

import os

from fleet_tui.core.sanitize import clean_text
from fleet_tui.core.timefmt import human_duration
from fleet_tui.model.records import AgentRecord, FleetSnapshot, Health, SocketState
from fleet_tui.present.columns import (
    GAP,
    fit_columns,
    health_cell,
    needs_attention,
    urgency_order,
    visible_columns,
)
from fleet_tui.present.glyphs import to_ascii

ATTENTION_SGR = "1;36"  # "needs you" has its own colour (bright cyan), never stale's yellow

HEALTH_SGR = {
    Health.HEALTHY: "32",
    Health.STALE: "33",
    Health.UNRESPONSIVE: "1;31",
    Health.UNKNOWN: "35",
    Health.DOWN: "31",
}


def use_color(stream_isatty: bool) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    return stream_isatty


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def render_table(
    snapshot: FleetSnapshot,
    agents: list[AgentRecord],
    *,
    width: int | None,
    color: bool,
    ascii_only: bool = False,
) -> str:
    """The agents as an aligned table, most urgent first. `width=None` means no limit (not a
    terminal)."""
    agents = urgency_order(agents)
    cols = visible_columns(agents)
    cells = {
        c.key: [
            clean_text(health_cell(a, ascii_only) if c.key == "health" else c.cell(a))
            for a in agents
        ]
        for c in cols
    }
    natural = {c.key: max([len(c.title), *(len(v) for v in cells[c.key])]) for c in cols}
    chosen, widths = fit_columns(cols, natural, width)
    if width is None:
        widths = natural

    def line(values: dict[str, str], styles: dict[str, str] | None = None) -> str:
        parts = []
        for c in chosen:
            w = widths[c.key]
            text = _fit(values[c.key], w)
            pad = text.rjust(w) if c.right else (text if c is chosen[-1] else text.ljust(w))
            sgr = styles.get(c.key) if styles else None
            parts.append(f"\x1b[{sgr}m{pad}\x1b[0m" if color and sgr else pad)
        out = (" " * GAP).join(parts).rstrip()
        return to_ascii(out) if ascii_only else out

    out = [line({c.key: c.title for c in chosen}, {c.key: "1" for c in chosen})]
    for i, a in enumerate(agents):
        styles = {"health": HEALTH_SGR[a.health]}
        if needs_attention(a):
            styles["state"] = styles["agent"] = styles["asks"] = ATTENTION_SGR
        if a.drift:
            styles["drift"] = "33"
        out.append(line({c.key: cells[c.key][i] for c in chosen}, styles))
    return "\n".join(out)


def render_summary(snapshot: FleetSnapshot, agents: list[AgentRecord]) -> str:
    counts: dict[Health, int] = {}
    for a in agents:
        counts[a.health] = counts.get(a.health, 0) + 1
    health = ", ".join(f"{counts[h]} {h.value}" for h in Health if counts.get(h))
    waiting = sum(1 for a in agents if needs_attention(a))
    socks = []
    for s in snapshot.sockets:
        if s.state is SocketState.LIVE:
            socks.append(f"{s.name} live ({s.sessions})")
        else:
            socks.append(f"{s.name} {s.state.value}")
    parts = [f"{len(agents)} agents" + (f": {health}" if health else "")]
    if waiting:
        parts.append(f"★ {waiting} waiting for you")
    parts.append("sockets: " + (", ".join(socks) if socks else "none"))
    parts.append(f"timeout {human_duration(snapshot.heartbeat_timeout_s)}")
    return clean_text(" · ".join(parts))
