"""What the fleet table shows: the filter (k9s style, `!` inverts) and the sort. Pure.

Filter syntax: words separated by spaces, all must match. A bare word matches name, alias,
role, runtime, model, socket, health, state, its source or drift flags (substring,
case-insensitive); `tenant:T`, `host:H`, `role:R`, `health:H`, `socket:S`, `state:S`,
`src:S` (heartbeat, hook, inferred), `runtime:R` match one field. A state reads as the STATE
column shows it: `state:~` finds the inferred ones, `state:busy` every busy agent.
A leading `!` inverts the whole filter. The `*` key shows only agents waiting for you
(state waiting_input or blocked). A `word:` that is no field, or a field with no value, is a
mistake `filter_problem` names (the dashboard keeps the last filter that made sense).

With no sort chosen the rows come in `urgency_order` (who needs a human first).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from fleet_tui.model.records import AgentRecord, FleetSnapshot, Health, StateSource
from fleet_tui.present.columns import (
    COLUMNS_BY_KEY,
    HOOK_MARK,
    INFERRED_MARK,
    SOURCE_WORD,
    needs_attention,
    shown_state,
    urgency_order,
)

FIELDS = (
    "tenant",
    "host",
    "role",
    "health",
    "socket",
    "state",
    "src",
    "runtime",
    "name",
    "drift",
)


def _field(r: AgentRecord, name: str) -> str:
    match name:
        case "tenant":
            return r.tenant_id
        case "host":
            return r.host
        case "role":
            return r.role or ""
        case "health":
            return r.health.value
        case "socket":
            return r.socket or ""
        case "state":
            # as the STATE column spells it: `~busy` inferred, `busyʰ` from a hook, so
            # `state:busy` finds them all and `state:~` only the guesses
            state, source = shown_state(r)
            if state is None:
                return ""
            if source is StateSource.INFERRED:
                return INFERRED_MARK + state.value
            return state.value + (HOOK_MARK if source is StateSource.HOOK else "")
        case "src":
            source = shown_state(r)[1]
            return SOURCE_WORD[source] if source is not None else ""
        case "runtime":
            return " ".join(
                x
                for x in (r.runtime, r.model, r.process.runtime_detected if r.process else None)
                if x
            )
        case "name":
            return f"{r.name} {r.alias or ''}"
        case "drift":
            return " ".join(d.value for d in r.drift)
    return ""


def filter_problem(text: str) -> str | None:
    """What is wrong with a filter, in one line, or None: a `word:` that names no field, or a
    field with nothing after its colon."""
    for w in text.strip().lstrip("!").lower().split():
        key, sep, value = w.partition(":")
        if not sep:
            continue
        if key not in FIELDS:
            return f"{key or '(nothing)'}: is not a field; fields: {', '.join(FIELDS)}"
        if not value:
            return f"{key}: needs a value, e.g. {key}:{_EXAMPLE.get(key, 'x')}"
    return None


_EXAMPLE = {
    "tenant": "jarvis",
    "host": "w-1",
    "role": "coder",
    "health": "stale",
    "socket": "default",
    "state": "waiting",
    "src": "hook",
    "runtime": "claude",
    "name": "coder",
    "drift": "missing",
}


def _haystack(r: AgentRecord) -> str:
    return " ".join(_field(r, f) for f in FIELDS).lower()


@dataclass(frozen=True)
class FleetView:
    filter: str = ""
    only_waiting: bool = False
    show_all: bool = False
    sort_key: str | None = None
    sort_reverse: bool = False

    @property
    def inverted(self) -> bool:
        return self.filter.strip().startswith("!")

    def matches(self, r: AgentRecord) -> bool:
        if not self.show_all and not r.is_agent:
            return False
        if self.only_waiting and not needs_attention(r):
            return False
        text = self.filter.strip()
        if not text or text == "!":
            return True
        invert = text.startswith("!")
        words = text.lstrip("!").lower().split()
        hay = _haystack(r)
        ok = True
        for w in words:
            key, sep, value = w.partition(":")
            if sep and key in FIELDS:
                if value not in _field(r, key).lower():
                    ok = False
                    break
            elif w not in hay:
                ok = False
                break
        return ok != invert

    def apply(self, records: list[AgentRecord]) -> list[AgentRecord]:
        text = self.filter.strip()
        if (not text or text == "!") and not self.only_waiting:  # no filter: what matches does
            shown = list(records) if self.show_all else [r for r in records if r.is_agent]
        else:
            shown = [r for r in records if self.matches(r)]
        column = COLUMNS_BY_KEY.get(self.sort_key or "")
        if column is not None:
            # Rows without a value ("-": no heartbeat, no process, no budget) go last in both
            # directions: reversing a sort must not bury the real values under dashes.
            known = [r for r in shown if column.cell(r) != "-"]
            unknown = [r for r in shown if column.cell(r) == "-"]
            known.sort(key=column.sort_key, reverse=self.descending)
            shown = known + unknown
        else:
            shown = urgency_order(shown)
        return shown

    @property
    def descending(self) -> bool:
        """True when the chosen sort runs biggest/last first (shown as ▼), False for ▲."""
        column = COLUMNS_BY_KEY.get(self.sort_key or "")
        return column is not None and column.descending != self.sort_reverse

    @property
    def problem(self) -> str | None:
        return filter_problem(self.filter)

    def describe(self) -> str:
        parts = []
        if self.filter.strip():
            parts.append(f"filter {self.filter.strip()}")
        if self.only_waiting:
            parts.append("★ waiting only")
        if self.show_all:
            parts.append("all sessions")
        column = COLUMNS_BY_KEY.get(self.sort_key or "")
        if column is not None:
            parts.append(f"sort: {column.title} {'▼' if self.descending else '▲'}")
        return " · ".join(parts)


@dataclass(frozen=True)
class FleetCounts:
    """What the header and the terminal's title count of a fleet's agents (plain sessions left
    out), counted in one pass per snapshot (`fleet_counts`) instead of once per caller and tick."""

    agents: int = 0
    waiting: int = 0
    health: dict[Health, int] = field(default_factory=dict)
    tenants: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()


def fleet_counts(records: list[AgentRecord]) -> FleetCounts:
    agents = waiting = 0
    health: dict[Health, int] = {}
    tenants: set[str] = set()
    hosts: set[str] = set()
    for a in records:
        if not a.is_agent:
            continue
        agents += 1
        if needs_attention(a):
            waiting += 1
        health[a.health] = health.get(a.health, 0) + 1
        tenants.add(a.tenant_id)
        hosts.add(a.host)
    return FleetCounts(agents, waiting, health, frozenset(tenants), frozenset(hosts))


class PollDigest:
    """What the fleet screen works out of each snapshot (the header's counts, the records its view
    shows and those its columns are fitted to), worked out in the poll thread as each poll ends,
    so the event loop takes them ready (1,000 agents: the view's filter and sort ~1.3 ms, the
    counts ~0.75 ms of each update). Asked on the event loop, it answers from what the poll
    thread left for that snapshot and that view, or works it out there and then (a snapshot
    given by other means, a view changed since). Kept for the last few snapshots; the lists it
    gives are shared: read them, never change them.

    Safe across the two threads: a deque's append and `list()` each run whole under the GIL."""

    KEEP = 4

    def __init__(self) -> None:
        self._counts: deque[tuple[FleetSnapshot, FleetCounts]] = deque(maxlen=self.KEEP)
        self._views: deque[
            tuple[FleetSnapshot, FleetView, list[AgentRecord], list[AgentRecord]]
        ] = deque(maxlen=self.KEEP)

    def prepare(
        self, snapshot: FleetSnapshot, view: FleetView
    ) -> tuple[list[AgentRecord], list[AgentRecord]]:
        """In the poll thread: work out what the screen will ask of `snapshot` under `view`;
        returns `shown(snapshot, view)`."""
        self.counts(snapshot)
        return self.shown(snapshot, view)

    def counts(self, snapshot: FleetSnapshot) -> FleetCounts:
        for kept, counts in list(self._counts):
            if kept is snapshot:
                return counts
        counts = fleet_counts(snapshot.agents)
        self._counts.append((snapshot, counts))
        return counts

    def shown(
        self, snapshot: FleetSnapshot, view: FleetView
    ) -> tuple[list[AgentRecord], list[AgentRecord]]:
        """(the records `view` shows, in its order; every record it could show, whatever its
        filter: what the columns are fitted to)."""
        for kept, kept_view, shown, fleet in list(self._views):
            if kept is snapshot and kept_view == view:
                return shown, fleet
        shown = view.apply(snapshot.agents)
        fleet = [a for a in snapshot.agents if view.show_all or a.is_agent]
        self._views.append((snapshot, view, shown, fleet))
        return shown, fleet
