"""Fleet table columns, shared by `fleet-tui ps` and the dashboard: one definition of what each
column shows, its priority when the screen is narrow, and the status symbols.

Pure: records in, plain strings out (already sanitized by the join). Status is a symbol AND a
word; colour is added by the renderers, never the only signal.

STATE says where the state comes from: `busy` from the runtime's own heartbeat, `busyʰ` from a
runtime hook adapter, `busyˢ` from Claude Code's own session status file, `~busy` inferred from
the pane (a guess). Only a heartbeat makes an agent healthy.
BUDGET shows the used share of the agent's account window, `»` when spending ahead of the even
pace, `✖` when exhausted (`▲`/`▼` are only ever the sort arrows). ASKS shows what an agent waiting
for the operator asks: its heartbeat's detail, or the prompt read off its pane.

Glyphs mean one thing each: `★` (and its own colour) is "needs you" and nothing else.

The default order (no sort chosen) is `urgency`: agents needing a human first, then the sick ones,
then the rest; `ps` and the dashboard share it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import compress
from operator import is_, is_not
from typing import Any

from fleet_tui.core.timefmt import human_bytes, human_duration
from fleet_tui.model.records import (
    AgentRecord,
    AgentState,
    BudgetBrief,
    BudgetStatus,
    Health,
    Lifecycle,
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
    "held": "held",
    "stopped": "stopped",
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
SESSION_MARK = "ˢ"
INFERRED_MARK = "~"
SOURCE_WORD = {
    StateSource.HEARTBEAT: "heartbeat",
    StateSource.HOOK: "hook",
    StateSource.SESSION: "session",
    StateSource.INFERRED: "inferred",
}
STATE_LEGEND = (
    f"STATE: busy = the runtime's heartbeat, busy{HOOK_MARK} = a runtime hook's, "
    f"busy{SESSION_MARK} = Claude Code's session file, "
    f"{INFERRED_MARK}busy = inferred from the pane (a guess). Only heartbeats make healthy."
)
AHEAD_MARK = "»"  # spending ahead of the even pace (never ▲: that is the sort arrow)
ATTENTION_MARK = "★"  # needs you: waiting_input or blocked, and nothing else
BUDGET_LEGEND = (
    f"BUDGET: share of the account window used; {AHEAD_MARK} ahead of the even pace, ✖ exhausted."
)


def shown_state(r: AgentRecord) -> tuple[AgentState | None, StateSource | None]:
    """The state an agent is shown with and where it comes from: its heartbeat (the runtime's
    or a hook's), else Claude Code's session file, else the state inferred from its pane, else
    nothing."""
    if r.heartbeat is not None:
        return r.heartbeat.state, r.state_source or StateSource.HEARTBEAT
    if r.inferred is not None:
        session = r.state_source is StateSource.SESSION
        return r.inferred.state, StateSource.SESSION if session else StateSource.INFERRED
    return None, None


def needs_attention(r: AgentRecord) -> bool:
    """Waiting for the operator (waiting_input or blocked), reported or inferred."""
    # shown_state(r)[0] in ATTENTION_STATES, without the tuple (counted for every agent in
    # the sort, the header, the title at every poll)
    hb = r.heartbeat
    if hb is not None:
        return hb.state in ATTENTION_STATES
    inferred = r.inferred
    return inferred is not None and inferred.state in ATTENTION_STATES


# core.infer spells an inferred prompt's reason "<runtime> prompt: '<the matched text>'".
_INFERRED_PROMPT = re.compile(r"\bprompt: '(.*)'\Z", re.DOTALL)


def question(r: AgentRecord) -> str | None:
    """What an agent waiting for the operator asks: its heartbeat's `detail`, else the prompt
    read off its pane; None when it waits for nothing or says nothing (already sanitized by the
    join; callers still clean it for their width)."""
    state, source = shown_state(r)
    if state not in ATTENTION_STATES:
        return None
    if source not in (StateSource.INFERRED, StateSource.SESSION):
        detail = r.heartbeat.detail if r.heartbeat is not None else None
        return (detail.strip() or None) if detail else None
    if r.inferred is None:
        return None
    m = _INFERRED_PROMPT.search(r.inferred.reason)
    if m:
        return m.group(1).strip() or None
    # a session file says that it waits, not for what (unless the pane showed the prompt)
    return r.inferred.reason if source is StateSource.INFERRED else None


def is_unhealthy(r: AgentRecord) -> bool:
    """Sick in a way a human should look at: unresponsive, stale, or down while the roster says
    it is always on (an ephemeral agent that is down is just done)."""
    if not r.is_agent:
        return False
    if r.health in (Health.UNRESPONSIVE, Health.STALE):
        return True
    return r.health is Health.DOWN and r.lifecycle is Lifecycle.ALWAYS_ON


def urgency(r: AgentRecord) -> int:
    """The default order's group: 0 waiting for the operator (waiting_input or blocked),
    1 unresponsive, 2 stale, 3 down but always on, 4 the rest."""
    if not r.is_agent:
        return 4
    if needs_attention(r):
        return 0
    if r.health is Health.UNRESPONSIVE:
        return 1
    if r.health is Health.STALE:
        return 2
    if r.health is Health.DOWN and r.lifecycle is Lifecycle.ALWAYS_ON:
        return 3
    return 4


def urgency_order(records: list[AgentRecord]) -> list[AgentRecord]:
    """The default order of `ps` and the dashboard: urgency first; within a group, the
    snapshot's own order (agents before plain sessions, orchestrator and enhancer first, then
    by name) is kept: the sort is stable."""
    return sorted(records, key=urgency)


def _asks(r: AgentRecord) -> str:
    return question(r) or ""


def _state(r: AgentRecord) -> str:
    state, source = shown_state(r)
    if state is None:
        return "-"
    mark = f"{ATTENTION_MARK} " if state in ATTENTION_STATES else ""
    if source is StateSource.INFERRED:
        return f"{mark}{INFERRED_MARK}{state.value}"
    if source is StateSource.HOOK:
        return f"{mark}{state.value}{HOOK_MARK}"
    if source is StateSource.SESSION:
        return f"{mark}{state.value}{SESSION_MARK}"
    return f"{mark}{state.value}"


_SOURCE_ORDER = {
    StateSource.HEARTBEAT: 0,
    StateSource.HOOK: 1,
    StateSource.SESSION: 2,
    StateSource.INFERRED: 3,
    None: 4,
}


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


BUDGET_MARK = {BudgetStatus.AHEAD: f" {AHEAD_MARK}", BudgetStatus.EXHAUSTED: " ✖"}
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


# Priorities (larger drops first): at 80 columns the glance keeps who, health, state, heartbeat,
# IDLE (the best "is it stuck" signal) and TOKENS before BUDGET and DRIFT. The flexible columns
# (ASKS, REASON) take what room is left, each at least its FLEX_MIN.
COLUMNS: list[Column] = [
    Column("TENANT", "tenant", 8, lambda r: r.tenant_id),
    Column("HOST", "host", 7, lambda r: r.host),
    Column("AGENT", "agent", 0, _agent, sort=lambda r: r.name),
    Column("ROLE", "role", 5, lambda r: r.role or "-"),
    Column("HEALTH", "health", 0, health_cell, sort=lambda r: HEALTH_SEVERITY[r.health]),
    Column("STATE", "state", 1, _state, sort=_state_sort),
    Column("SRC", "src", 8, _source),
    figure("HB", "hb", 1, lambda r: age_cell(r.heartbeat.age_s if r.heartbeat else None), _hb_age),
    figure("IDLE", "idle", 2, lambda r: human_duration(r.tmux.idle_s) if r.tmux else "-", _idle),
    figure(
        "TOKENS",
        "tokens",
        2,
        lambda r: human_tokens(r.tokens_today),
        lambda r: r.tokens_today if r.tokens_today is not None else -1,
    ),
    Column("BUDGET", "budget", 3, lambda r: budget_cell(r.budget), sort=_budget_sort),
    Column("RUNTIME", "runtime", 6, _runtime),
    Column("SOCKET", "socket", 6, lambda r: r.socket or "-"),
    Column(
        "PID",
        "pid",
        9,
        lambda r: str(r.process.pid) if r.process else "-",
        right=True,
        sort=lambda r: r.process.pid if r.process else -1,
    ),
    figure("CPU", "cpu", 7, _cpu_cell, _cpu),
    figure("MEM", "mem", 7, lambda r: human_bytes(r.process.rss_bytes) if r.process else "-", _mem),
    Column("SYSTEMD", "systemd", 8, _systemd),
    Column("DRIFT", "drift", 4, _drift, sort=lambda r: (-len(r.drift), _drift(r))),
    Column("ASKS", "asks", 4, _asks, flexible=True),
    Column("REASON", "reason", 10, lambda r: r.health_reason, flexible=True),
]
COLUMNS_BY_KEY = {c.key: c for c in COLUMNS}

# What each column's cell reads of a record: its fields, or "heartbeat.age_s" / "tmux.idle_s" when
# only that age of the heartbeat or of the pane moved (`changed_inputs`), so a table can remake
# only the cells whose inputs changed at a poll where every age ticks. A column missing here, or a
# field no column and no `UNSHOWN_FIELDS` names, counts as read by every column (all remade).
_STATE_INPUTS = ("heartbeat", "inferred", "state_source")
CELL_INPUTS: dict[str, tuple[str, ...]] = {
    "tenant": ("tenant_id",),
    "host": ("host",),
    "agent": ("name", "alias"),
    "role": ("role",),
    "health": ("health",),
    "state": _STATE_INPUTS,
    "src": _STATE_INPUTS,
    "hb": ("heartbeat", "heartbeat.age_s"),
    "idle": ("tmux", "tmux.idle_s"),
    "tokens": ("tokens_today",),
    "budget": ("budget",),
    "runtime": ("runtime", "model", "process"),
    "socket": ("socket",),
    "pid": ("process",),
    "cpu": ("process",),
    "mem": ("process",),
    "systemd": ("systemd",),
    "drift": ("drift",),
    "asks": _STATE_INPUTS,
    "reason": ("health_reason",),
}
# Fields of a record that no cell shows.
UNSHOWN_FIELDS = ("lifecycle", "in_roster", "is_agent", "session", "cache_read_today", "remote")
# The sub-record fields whose age alone can move (the join's kept records, `core.join`).
AGE_FIELDS = {"heartbeat": "age_s", "tmux": "idle_s"}
_AGES = {name: (sub, f"{name}.{sub}") for name, sub in AGE_FIELDS.items()}
_FIELDS: tuple[str, ...] = tuple(AgentRecord.model_fields)
_fields_of = operator.itemgetter(*_FIELDS)


_OTHERS: dict[tuple[type, str], Callable[[dict[str, Any]], tuple[Any, ...]]] = {}


def _others_of(cls: type, sub: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A getter of every field of the model `cls` but `sub`, as a tuple."""
    getter = _OTHERS.get((cls, sub))
    if getter is None:
        names = [f for f in cls.model_fields if f != sub]  # type: ignore[attr-defined]
        get_all = operator.itemgetter(*names)
        getter = get_all if len(names) > 1 else (lambda d: (get_all(d),))
        _OTHERS[(cls, sub)] = getter
    return getter


def changed_inputs(old: AgentRecord, new: AgentRecord) -> set[str]:
    """The fields of `new` that differ from `old` (by identity, else by value), with
    "heartbeat.age_s" / "tmux.idle_s" instead of "heartbeat" / "tmux" when only that age moved."""
    od, nd = old.__dict__, new.__dict__
    moved: Iterable[str]
    try:  # the fields whose objects differ, found in C (most are the same objects)
        moved = compress(_FIELDS, map(is_not, _fields_of(od), _fields_of(nd)))
    except KeyError:  # (not a full record)
        moved = _FIELDS
    out: set[str] = set()
    for name in moved:
        a, b = od.get(name), nd.get(name)
        age = _AGES.get(name)
        if age is not None and a is not None and b is not None and type(a) is type(b):
            sub = age[0]
            others = _OTHERS.get((type(a), sub)) or _others_of(type(a), sub)
            ad, bd = a.__dict__, b.__dict__
            try:
                va, vb = others(ad), others(bd)
                same = all(map(is_, va, vb)) or va == vb  # only the age may have moved
            except KeyError:
                same = False
            if same and sub in ad and sub in bd:
                if ad[sub] != bd[sub]:
                    out.add(age[1])
                continue
        if a is b or a == b:
            continue
        out.add(name)
    return out


GAP = 2
FLEX_MIN = {"asks": 28, "reason": 24}


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
    """The columns that fit `width`, most important first, and the width each gets.

    `widths` holds each column's natural width (title and cells). Columns are taken by priority
    (0 first; left to right within one); one that does not fit is left out and a less important
    narrower one may still take the room, so the row uses the whole width. The flexible columns
    count as their FLEX_MIN and share what is left, whatever their text (so the layout does not
    move when an agent starts asking). Returns the kept columns in their order.
    """
    out = dict(widths)
    if width is None:
        return list(columns), out

    def need(c: Column) -> int:
        return FLEX_MIN.get(c.key, 12) if c.flexible else out[c.key]

    def total(cs: list[Column]) -> int:
        return sum(need(c) for c in cs) + GAP * (len(cs) - 1)

    must = [c for c in columns if c.priority == 0]
    while total(must) > width and out.get("agent", 0) > 12:
        out["agent"] -= 1
    kept = set(must)
    for c in sorted(
        (c for c in columns if c.priority > 0), key=lambda c: (c.priority, columns.index(c))
    ):
        trial = [x for x in columns if x in kept or x is c]
        if total(trial) <= width:
            kept.add(c)
    chosen = [c for c in columns if c in kept]
    flexible = [c for c in chosen if c.flexible]
    spare = width - total(chosen)
    if flexible:
        # the room left, shared evenly (the last one takes the odd cells)
        share, odd = divmod(spare, len(flexible))
        for i, c in enumerate(flexible):
            out[c.key] = need(c) + share + (odd if i == len(flexible) - 1 else 0)
    return chosen, out
