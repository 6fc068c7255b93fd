"""Fleet table columns, shared by `fleet-tui ps` and the dashboard: one definition of what each
column shows, its priority when the screen is narrow, and the status symbols.

Pure: records in, plain strings out (already sanitized by the join). Status is a symbol AND a
word; colour is added by the renderers, never the only signal.

STATE says where the state comes from: `busy` from the runtime's own heartbeat, `busyʰ` from a
runtime hook adapter, `~busy` inferred from the pane (a guess; never makes an agent healthy).
BUDGET shows the used share of the agent's account window, `▲` when spending ahead of the even
pace, `✖` when exhausted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fleet_tui.core.timefmt import human_bytes, human_duration
from fleet_tui.model.records import (
    AgentRecord,
    AgentState,
    BudgetBrief,
    BudgetStatus,
    Health,
    StateSource,
)

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


@dataclass(frozen=True)
class Column:
    """One column: its title, a stable key, its drop priority (0 never drops) and its cell."""

    title: str
    key: str
    priority: int  # 0 is never dropped; larger drops first
    cell: Callable[[AgentRecord], str]
    right: bool = False
    flexible: bool = False
    sort: Callable[[AgentRecord], Any] | None = None
    # The first sort is by `sort` ascending, or descending when this is set (ages, CPU, memory,
    # tokens: the biggest first, as in top); a second press reverses it.
    descending: bool = False

    def sort_key(self, r: AgentRecord) -> Any:
        return self.sort(r) if self.sort is not None else self.cell(r)


def figure(
    title: str,
    key: str,
    priority: int,
    cell: Callable[[AgentRecord], str],
    sort: Callable[[AgentRecord], Any],
) -> Column:
    """A figure column (an age, CPU, memory, tokens): right-aligned, the biggest first."""
    return Column(title, key, priority, cell, right=True, sort=sort, descending=True)


def health_cell(r: AgentRecord, ascii_only: bool = False) -> str:
    symbols = HEALTH_ASCII if ascii_only else HEALTH_SYMBOL
    return f"{symbols[r.health]} {r.health.value}"


HOOK_MARK = "ʰ"
INFERRED_MARK = "~"
SOURCE_WORD = {
    StateSource.HEARTBEAT: "heartbeat",
    StateSource.HOOK: "hook",
    StateSource.INFERRED: "inferred",
}
STATE_LEGEND = (
    f"STATE: busy = the runtime's heartbeat, busy{HOOK_MARK} = a runtime hook's, "
    f"{INFERRED_MARK}busy = inferred from the pane (a guess: never healthy)."
)
BUDGET_LEGEND = "BUDGET: share of the account window used; ▲ ahead of the even pace, ✖ exhausted."


def shown_state(r: AgentRecord) -> tuple[AgentState | None, StateSource | None]:
    """The state an agent is shown with and where it comes from: its heartbeat (the runtime's
    or a hook's), else the state inferred from its pane, else nothing."""
    if r.heartbeat is not None:
        return r.heartbeat.state, r.state_source or StateSource.HEARTBEAT
    if r.inferred is not None:
        return r.inferred.state, StateSource.INFERRED
    return None, None


def needs_attention(r: AgentRecord) -> bool:
    """Waiting for the operator (waiting_input or blocked), reported or inferred."""
    return shown_state(r)[0] in ATTENTION_STATES


def _state(r: AgentRecord) -> str:
    state, source = shown_state(r)
    if state is None:
        return "-"
    mark = "★ " if state in ATTENTION_STATES else ""
    if source is StateSource.INFERRED:
        return f"{mark}{INFERRED_MARK}{state.value}"
    if source is StateSource.HOOK:
        return f"{mark}{state.value}{HOOK_MARK}"
    return f"{mark}{state.value}"


_SOURCE_ORDER = {StateSource.HEARTBEAT: 0, StateSource.HOOK: 1, StateSource.INFERRED: 2, None: 3}


def _state_sort(r: AgentRecord) -> tuple[int, str, int]:
    """Agents waiting for the operator first, then by state; reported before inferred."""
    state, source = shown_state(r)
    return (
        0 if state in ATTENTION_STATES else 1,
        state.value if state is not None else "~",
        _SOURCE_ORDER[source],
    )


def _source(r: AgentRecord) -> str:
    source = shown_state(r)[1]
    return SOURCE_WORD[source] if source is not None else "-"


def human_tokens(n: int | None) -> str:
    """Compact token counts: 950, 12.3k, 123k, 1.2M, 3.4B ("-" when unknown)."""
    if n is None:
        return "-"
    if abs(n) < 1000:
        return str(n)
    value = float(n)
    for unit in ("k", "M", "B"):
        value /= 1000
        text = f"{value:.1f}" if abs(value) < 99.95 else f"{value:.0f}"
        if abs(float(text)) < 1000 or unit == "B":
            return text + unit
    return str(n)  # unreachable


BUDGET_MARK = {BudgetStatus.AHEAD: " ▲", BudgetStatus.EXHAUSTED: " ✖"}
# Sort order of the BUDGET column: what needs a look first.
BUDGET_SEVERITY = {
    BudgetStatus.EXHAUSTED: 0,
    BudgetStatus.AHEAD: 1,
    BudgetStatus.UNKNOWN: 2,
    BudgetStatus.ON_PACE: 3,
    BudgetStatus.BEHIND: 4,
}


def budget_cell(b: BudgetBrief | None) -> str:
    if b is None:
        return "-"
    used = f"{b.used_percent:.0f}%" if b.used_percent is not None else "?"
    return used + BUDGET_MARK.get(b.status, "")


def _budget_sort(r: AgentRecord) -> tuple[int, float]:
    b = r.budget
    if b is None:
        return (len(BUDGET_SEVERITY) + 1, 0.0)
    return (BUDGET_SEVERITY[b.status], -(b.used_percent or 0.0))


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


HEALTH_SEVERITY = {
    Health.DOWN: 0,
    Health.UNRESPONSIVE: 1,
    Health.UNKNOWN: 2,
    Health.STALE: 3,
    Health.HEALTHY: 4,
}
_BIG = float("inf")


AHEAD_S = -1.0  # an age below this is a timestamp ahead of our clock, not jitter


def age_cell(age_s: float | None) -> str:
    """A heartbeat's age for a table cell. One dated ahead of this host's clock (a remote host's
    clock running fast, a bad timestamp) says "ahead": never a negative age like "-1123 d"."""
    if age_s is None:
        return "-"
    return "ahead" if age_s < AHEAD_S else human_duration(max(age_s, 0.0))


def age_ago(age_s: float) -> str:
    """A heartbeat's age in a sentence: "45 s ago", or "dated in the future" (clock skew)."""
    if age_s < AHEAD_S:
        return "dated in the future (clock skew?)"
    return f"{human_duration(max(age_s, 0.0))} ago"


def _hb_age(r: AgentRecord) -> float:
    return r.heartbeat.age_s if r.heartbeat else _BIG


def _idle(r: AgentRecord) -> float:
    return r.tmux.idle_s if r.tmux and r.tmux.idle_s is not None else _BIG


def _cpu(r: AgentRecord) -> float:
    return r.process.cpu_percent if r.process and r.process.cpu_percent is not None else -1.0


def _mem(r: AgentRecord) -> float:
    return float(r.process.rss_bytes) if r.process and r.process.rss_bytes is not None else -1.0


def _cpu_cell(r: AgentRecord) -> str:
    return (
        f"{r.process.cpu_percent:.1f}" if r.process and r.process.cpu_percent is not None else "-"
    )


def _drift(r: AgentRecord) -> str:
    return ",".join(DRIFT_SHORT.get(d.value, d.value) for d in r.drift) or "-"


COLUMNS: list[Column] = [
    Column("TENANT", "tenant", 7, lambda r: r.tenant_id),
    Column("HOST", "host", 6, lambda r: r.host),
    Column("AGENT", "agent", 0, _agent, sort=lambda r: r.name),
    Column("ROLE", "role", 3, lambda r: r.role or "-"),
    Column("HEALTH", "health", 0, health_cell, sort=lambda r: HEALTH_SEVERITY[r.health]),
    Column("STATE", "state", 1, _state, sort=_state_sort),
    Column("SRC", "src", 7, _source),
    figure("HB", "hb", 1, lambda r: age_cell(r.heartbeat.age_s if r.heartbeat else None), _hb_age),
    figure("IDLE", "idle", 4, lambda r: human_duration(r.tmux.idle_s) if r.tmux else "-", _idle),
    figure(
        "TOKENS",
        "tokens",
        3,
        lambda r: human_tokens(r.tokens_today),
        lambda r: r.tokens_today if r.tokens_today is not None else -1,
    ),
    Column("BUDGET", "budget", 2, lambda r: budget_cell(r.budget), sort=_budget_sort),
    Column("RUNTIME", "runtime", 4, _runtime),
    Column("SOCKET", "socket", 5, lambda r: r.socket or "-"),
    Column(
        "PID",
        "pid",
        8,
        lambda r: str(r.process.pid) if r.process else "-",
        right=True,
        sort=lambda r: r.process.pid if r.process else -1,
    ),
    figure("CPU", "cpu", 6, _cpu_cell, _cpu),
    figure("MEM", "mem", 6, lambda r: human_bytes(r.process.rss_bytes) if r.process else "-", _mem),
    Column("SYSTEMD", "systemd", 7, _systemd),
    Column("DRIFT", "drift", 2, _drift, sort=lambda r: (-len(r.drift), _drift(r))),
    Column("REASON", "reason", 9, lambda r: r.health_reason, flexible=True),
]
COLUMNS_BY_KEY = {c.key: c for c in COLUMNS}
GAP = 2
FLEX_MIN = 30


def visible_columns(agents: list[AgentRecord], columns: list[Column] = COLUMNS) -> list[Column]:
    """Tenant and host columns only when the view spans several tenants or hosts."""
    multi_tenant = len({a.tenant_id for a in agents}) > 1
    multi_host = len({a.host for a in agents}) > 1
    return [
        c
        for c in columns
        if (c.key != "tenant" or multi_tenant) and (c.key != "host" or multi_host)
    ]


def fit_columns(
    columns: list[Column], widths: dict[str, int], width: int | None
) -> tuple[list[Column], dict[str, int]]:
    """Drop the least important columns until the table fits `width`; size the flexible one.

    `widths` holds each column's natural width (title and cells); returns the columns kept, in
    their order, and the width each gets.
    """
    out = dict(widths)
    chosen = list(columns)
    if width is None:
        return chosen, out

    def total(cs: list[Column]) -> int:
        return sum(min(out[c.key], FLEX_MIN) if c.flexible else out[c.key] for c in cs) + GAP * (
            len(cs) - 1
        )

    # One column at a time, least important first (rightmost first within a priority): a
    # whole priority group dropping at once would leave room a kept column could have used.
    drop_order = sorted(
        (c for c in columns if c.priority > 0),
        key=lambda c: (-c.priority, -columns.index(c)),
    )
    for c in drop_order:
        if total(chosen) <= width:
            break
        chosen.remove(c)
    while total(chosen) > width and out.get("agent", 0) > 12:
        out["agent"] -= 1
    fixed = sum(out[c.key] for c in chosen if not c.flexible) + GAP * (len(chosen) - 1)
    for c in chosen:
        if c.flexible:
            out[c.key] = max(width - fixed, 6)
    return chosen, out
