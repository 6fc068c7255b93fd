"""Plain-text rendering of a snapshot for `fleet-tui ps`: readable at 80 columns, better wider.

Columns drop by priority when the terminal is narrow; status is a symbol AND a word, colour only
adds to it (and is off with NO_COLOR, TERM=dumb, or when not writing to a terminal). Every
agent-controlled string was already sanitized by the join; cells are cut, never wrapped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from fleet_tui.core.sanitize import clean_text
from fleet_tui.core.timefmt import human_bytes, human_duration
from fleet_tui.model import AgentRecord, AgentState, FleetSnapshot, Health, SocketState

HEALTH_SYMBOL = {
    Health.HEALTHY: "●",
    Health.STALE: "◐",
    Health.UNRESPONSIVE: "✖",
    Health.UNKNOWN: "?",
    Health.DOWN: "○",
}
HEALTH_ASCII = {
    Health.HEALTHY: "+",
    Health.STALE: "~",
    Health.UNRESPONSIVE: "x",
    Health.UNKNOWN: "?",
    Health.DOWN: "-",
}
HEALTH_SGR = {
    Health.HEALTHY: "32",
    Health.STALE: "33",
    Health.UNRESPONSIVE: "1;31",
    Health.UNKNOWN: "35",
    Health.DOWN: "31",
}
ATTENTION_STATES = (AgentState.WAITING_INPUT, AgentState.BLOCKED)
DRIFT_SHORT = {
    "missing_session": "missing",
    "not_in_roster": "unlisted",
    "socket_mismatch": "socket",
    "duplicate": "dup",
    "pane_dead": "dead-pane",
    "unit_inactive": "unit-off",
    "unit_without_session": "unit-only",
    "boot_disabled": "no-boot",
    "runtime_mismatch": "runtime",
}


def use_color(stream_isatty: bool) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    return stream_isatty


@dataclass(frozen=True)
class Column:
    title: str
    priority: int  # 0 is never dropped; larger drops first
    cell: Callable[[AgentRecord], str]
    right: bool = False
    flexible: bool = False


def _health(r: AgentRecord, ascii_only: bool = False) -> str:
    symbols = HEALTH_ASCII if ascii_only else HEALTH_SYMBOL
    return f"{symbols[r.health]} {r.health.value}"


def _state(r: AgentRecord) -> str:
    if r.heartbeat is None:
        return "-"
    mark = "★ " if r.heartbeat.state in ATTENTION_STATES else ""
    return f"{mark}{r.heartbeat.state.value}"


def _runtime(r: AgentRecord) -> str:
    rt = r.runtime or (r.process.runtime_detected if r.process else None) or "-"
    return f"{rt}/{r.model}" if r.model else rt


def _agent(r: AgentRecord) -> str:
    return f"{r.name} ({r.alias})" if r.alias else r.name


def _systemd(r: AgentRecord) -> str:
    if r.systemd is None:
        return "-"
    active = r.systemd.active_state or "?"
    boot = {True: "boot", False: "no-boot", None: "?"}[
        None
        if r.systemd.enabled is None
        else bool(r.systemd.enabled and r.systemd.linger is not False)
    ]
    return f"{active},{boot}"


COLUMNS: list[Column] = [
    Column("TENANT", 7, lambda r: r.tenant_id),
    Column("HOST", 6, lambda r: r.host),
    Column("AGENT", 0, _agent),
    Column("ROLE", 3, lambda r: r.role or "-"),
    Column("HEALTH", 0, _health),
    Column("STATE", 1, _state),
    Column(
        "HB", 1, lambda r: human_duration(r.heartbeat.age_s) if r.heartbeat else "-", right=True
    ),
    Column("IDLE", 4, lambda r: human_duration(r.tmux.idle_s) if r.tmux else "-", right=True),
    Column("RUNTIME", 4, _runtime),
    Column("SOCKET", 5, lambda r: r.socket or "-"),
    Column("PID", 8, lambda r: str(r.process.pid) if r.process else "-", right=True),
    Column(
        "CPU",
        6,
        lambda r: (
            f"{r.process.cpu_percent:.1f}"
            if r.process and r.process.cpu_percent is not None
            else "-"
        ),
        right=True,
    ),
    Column("MEM", 6, lambda r: human_bytes(r.process.rss_bytes) if r.process else "-", right=True),
    Column("SYSTEMD", 7, _systemd),
    Column(
        "DRIFT", 2, lambda r: ",".join(DRIFT_SHORT.get(d.value, d.value) for d in r.drift) or "-"
    ),
    Column("REASON", 9, lambda r: r.health_reason, flexible=True),
]


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
    """The agents as an aligned table. `width=None` means no limit (not a terminal)."""
    multi_tenant = len({a.tenant_id for a in agents}) > 1
    multi_host = len({a.host for a in agents}) > 1
    cols = [
        c
        for c in COLUMNS
        if (c.title != "TENANT" or multi_tenant) and (c.title != "HOST" or multi_host)
    ]
    cells = {
        c.title: [
            clean_text(c.cell(a) if c.title != "HEALTH" else _health(a, ascii_only)) for a in agents
        ]
        for c in cols
    }
    widths = {c.title: max([len(c.title), *(len(v) for v in cells[c.title])]) for c in cols}
    chosen = list(cols)
    if width is not None:
        # drop the least important columns until the table fits
        def total(cs: list[Column]) -> int:
            return sum(
                min(widths[c.title], 30 if c.flexible else widths[c.title]) for c in cs
            ) + 2 * (len(cs) - 1)

        for prio in sorted({c.priority for c in cols}, reverse=True):
            if total(chosen) <= width or prio == 0:
                break
            chosen = [c for c in chosen if c.priority != prio]
        while total(chosen) > width and widths["AGENT"] > 12:
            widths["AGENT"] -= 1
    used = sum(widths[c.title] for c in chosen if not c.flexible) + 2 * (len(chosen) - 1)
    for c in chosen:
        if c.flexible:
            widths[c.title] = (
                widths[c.title] if width is None else max(min(widths[c.title], width - used), 6)
            )

    def line(values: dict[str, str], styles: dict[str, str] | None = None) -> str:
        parts = []
        for c in chosen:
            text = _fit(values[c.title], widths[c.title])
            pad = text.rjust(widths[c.title]) if c.right else text.ljust(widths[c.title])
            if c is chosen[-1] and not c.right:
                pad = text
            sgr = styles.get(c.title) if styles else None
            parts.append(f"\x1b[{sgr}m{pad}\x1b[0m" if color and sgr else pad)
        return "  ".join(parts).rstrip()

    out = [line({c.title: c.title for c in chosen}, {c.title: "1" for c in chosen})]
    for i, a in enumerate(agents):
        styles = {"HEALTH": HEALTH_SGR[a.health]}
        if a.heartbeat and a.heartbeat.state in ATTENTION_STATES:
            styles["STATE"] = "1;33"
        if a.drift:
            styles["DRIFT"] = "33"
        out.append(line({c.title: cells[c.title][i] for c in chosen}, styles))
    return "\n".join(out)


def render_summary(snapshot: FleetSnapshot, agents: list[AgentRecord]) -> str:
    counts: dict[Health, int] = {}
    for a in agents:
        counts[a.health] = counts.get(a.health, 0) + 1
    health = ", ".join(f"{counts[h]} {h.value}" for h in Health if counts.get(h))
    waiting = sum(1 for a in agents if a.heartbeat and a.heartbeat.state in ATTENTION_STATES)
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
