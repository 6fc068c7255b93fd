"""Alert rules over a joined fleet (DESIGN.md "Alerts, version 1"): pure, time is a parameter.

An EPISODE is one agent meeting one rule without a break. `evaluate` walks the agents once per
snapshot and moves each episode along:

    (condition starts) -> pending --for_s held, gap passed, not silenced--> fired --> resolved
                                                  ^                          |
                                                  +------ repeat_s ----------+

- It fires once, when the condition has held `for_s` seconds; with `repeat_s` it fires again
  every `repeat_s` while it holds; it resolves once, when the condition stops holding, and only
  an episode that fired sends "resolved" (a pending one ends quietly).
- Flapping: a condition must hold `for_s` before anything is sent, and after an episode of a
  rule resolves for an agent, the next episode of that rule for that agent fires no sooner than
  `gap_s` (default 60 s) after the resolution. An agent that flaps every poll thus alerts at most
  once per `gap_s` per rule, and one that flaps faster than `for_s` never alerts.
- A silenced episode is tracked but sends nothing; when the silence ends while the condition
  still holds, it fires then.
- `rung_changed` (in `budget_status`) is an event: the condition holds on the one evaluation that
  sees the agent's ladder rung change, and such an episode ends without a "resolved" message.
- An agent whose host sent no data this time (a gateway host that did not answer) keeps its
  episodes as they are: no data is not "the condition cleared".

The whole state of an evaluator is an `AlertBook`, which serialises to JSON (`to_json`,
`from_json`) so the service can keep it in the state dir: a restart neither fires again nor
forgets. Cost: a dict lookup and a few set tests per agent and rule; episodes exist only for
agents that meet a rule (`benchmarks/bench_alerts.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import translate
from typing import Any, Literal

from fleet_tui.model.alerts import ALERT_SCHEMA, RUNG_CHANGED, Rule, Silence
from fleet_tui.model.records import AgentRecord
from fleet_tui.protocol.clock import format_ts, parse_ts

Status = Literal["firing", "resolved"]
EpisodeKey = tuple[str, str]  # (rule name, AgentRecord.key)
DETAIL_MAX = 300


@dataclass(slots=True)
class Episode:
    """One agent meeting one rule without a break."""

    rule: str
    key: str  # AgentRecord.key: tenant/host/socket/name
    agent: str
    tenant_id: str
    host: str
    since: datetime  # when the condition was first seen holding
    health: str = ""
    state: str | None = None
    detail: str = ""
    fired_at: datetime | None = None  # first message sent (None: pending or silenced so far)
    last_sent: datetime | None = None
    sends: int = 0
    silenced: bool = False  # held back by a silence on the last evaluation
    momentary: bool = False  # opened by a rung change only: ends without "resolved"
    seen: int = field(default=0, compare=False, repr=False)  # the evaluation that last saw it

    @property
    def fired(self) -> bool:
        return self.fired_at is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "key": self.key,
            "agent": self.agent,
            "tenant_id": self.tenant_id,
            "host": self.host,
            "since": format_ts(self.since),
            "health": str(self.health),
            "state": None if self.state is None else str(self.state),
            "detail": self.detail,
            "fired_at": format_ts(self.fired_at) if self.fired_at else None,
            "last_sent": format_ts(self.last_sent) if self.last_sent else None,
            "sends": self.sends,
            "silenced": self.silenced,
            "momentary": self.momentary,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Episode:
        def ts(v: Any) -> datetime | None:
            return parse_ts(v) if isinstance(v, str) else None

        since = ts(d["since"])
        if since is None:
            raise ValueError("since")
        return cls(
            rule=str(d["rule"]),
            key=str(d["key"]),
            agent=str(d["agent"]),
            tenant_id=str(d["tenant_id"]),
            host=str(d["host"]),
            since=since,
            health=str(d.get("health") or ""),
            state=d.get("state") if isinstance(d.get("state"), str) else None,
            detail=str(d.get("detail") or "")[:DETAIL_MAX],
            fired_at=ts(d.get("fired_at")),
            last_sent=ts(d.get("last_sent")),
            sends=int(d.get("sends") or 0),
            silenced=bool(d.get("silenced")),
            momentary=bool(d.get("momentary")),
        )


@dataclass(frozen=True)
class AlertEvent:
    """One message to send: an episode fired (again, with `repeat`) or resolved."""

    status: Status
    rule: Rule
    episode: Episode
    ts: datetime
    repeat: bool = False

    def body(self) -> dict[str, Any]:
        """The webhook body of DESIGN.md (`mosaic.fleet.alert/v1`)."""
        e = self.episode
        return {
            "schema": ALERT_SCHEMA,
            "status": self.status,
            "rule": e.rule,
            "tenant_id": e.tenant_id,
            "host": e.host,
            "agent": e.agent,
            "health": str(e.health),
            "state": None if e.state is None else str(e.state),
            "detail": e.detail,
            "since": format_ts(e.since),
            "ts": format_ts(self.ts),
        }


@dataclass
class AlertBook:
    """Everything an evaluator remembers between snapshots (and across restarts)."""

    episodes: dict[EpisodeKey, Episode] = field(default_factory=dict)
    resolved: dict[EpisodeKey, datetime] = field(default_factory=dict)  # for gap_s
    rungs: dict[str, str] = field(default_factory=dict)  # agent key -> last ladder rung
    changed: bool = False  # something to save since the last `to_json`
    generation: int = 0  # evaluations so far (in memory only: marks the episodes seen)

    def open_episodes(self) -> list[Episode]:
        """Every episode that has fired or is held back by a silence, oldest first."""
        shown = [e for e in self.episodes.values() if e.fired or e.silenced]
        return sorted(shown, key=lambda e: (e.since, e.agent, e.rule))

    def to_json(self) -> dict[str, Any]:
        self.changed = False
        return {
            "version": 1,
            "episodes": [e.to_json() for e in self.episodes.values()],
            "resolved": [[r, k, format_ts(t)] for (r, k), t in self.resolved.items()],
            "rungs": dict(self.rungs),
        }

    @classmethod
    def from_json(cls, data: Any) -> AlertBook:
        """A book read back; what cannot be read is dropped item by item, never an error."""
        book = cls()
        if not isinstance(data, dict) or data.get("version") != 1:
            return book
        for raw in data.get("episodes") or []:
            try:
                e = Episode.from_json(raw)
            except (KeyError, TypeError, ValueError):
                continue
            book.episodes[(e.rule, e.key)] = e
        for raw in data.get("resolved") or []:
            try:
                rule, key, t = raw
            except (TypeError, ValueError):
                continue
            when = parse_ts(t)
            if when is not None:
                book.resolved[(str(rule), str(key))] = when
        rungs = data.get("rungs")
        if isinstance(rungs, dict):
            book.rungs = {str(k): str(v) for k, v in rungs.items() if isinstance(v, str)}
        return book


# -- matching -------------------------------------------------------------------------------


class _Globs:
    """Agent-name globs compiled once, with the answer per name kept (names repeat each poll)."""

    __slots__ = ("_re", "_seen")

    def __init__(self, globs: Iterable[str]) -> None:
        self._re = re.compile("|".join(translate(g) for g in globs))
        self._seen: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        hit = self._seen.get(name)
        if hit is None:
            if len(self._seen) > 10_000:
                self._seen.clear()
            hit = self._seen[name] = self._re.match(name) is not None
        return hit


_GLOBS: dict[tuple[str, ...], _Globs] = {}


def globs(patterns: Sequence[str]) -> _Globs:
    key = tuple(patterns)
    g = _GLOBS.get(key)
    if g is None:
        if len(_GLOBS) > 256:
            _GLOBS.clear()
        g = _GLOBS[key] = _Globs(key)
    return g


@dataclass(frozen=True)
class _Compiled:
    """A rule ready to test: its value sets hold the enum members themselves (an enum member's
    hash is not its value's, so a set of strings would never match)."""

    rule: Rule
    agents: _Globs | None  # None: every agent ("*")
    states: frozenset[object] | None
    healths: frozenset[object] | None
    drifts: frozenset[object] | None
    budgets: frozenset[object] | None
    rung: bool


_COMPILED: dict[int, tuple[Rule, _Compiled]] = {}


def _compile(rule: Rule) -> _Compiled:
    hit = _COMPILED.get(id(rule))
    if hit is not None and hit[0] is rule:
        return hit[1]
    w = rule.when

    def values(items: Sequence[object] | None) -> frozenset[object] | None:
        return None if items is None else frozenset(items)

    budgets = values(w.budget_status)
    c = _Compiled(
        rule=rule,
        agents=None if "*" in rule.agents else globs(rule.agents),
        states=values(w.state),
        healths=values(w.health),
        drifts=values(w.drift),
        budgets=None if budgets is None else (budgets - {RUNG_CHANGED}) or None,
        rung=budgets is not None and RUNG_CHANGED in budgets,
    )
    if len(_COMPILED) > 256:
        _COMPILED.clear()
    _COMPILED[id(rule)] = (rule, c)
    return c


def agent_state(r: AgentRecord) -> str | None:
    """The state an agent is shown with: its heartbeat's (the runtime's or a hook's), else the
    one read from its runtime's status or its pane; None when nothing is known."""
    if r.heartbeat is not None:
        return str(r.heartbeat.state)
    if r.inferred is not None:
        return str(r.inferred.state)
    return None


def _detail(c: _Compiled, r: AgentRecord, state: object, rung: tuple[str, str] | None) -> str:
    if rung is not None:
        text = f"ladder rung {rung[0]} -> {rung[1]}"
    elif c.states is not None:
        hb = r.heartbeat
        text = (hb.detail if hb is not None else None) or (
            r.inferred.reason if r.inferred is not None else ""
        )
        text = text or (str(state) if state is not None else "")
    elif c.healths is not None:
        text = r.health_reason
    elif c.drifts is not None:
        text = "drift: " + ", ".join(str(d) for d in r.drift if d in c.drifts)
    elif r.budget is not None:
        b = r.budget
        used = f" {b.used_percent:.0f}% used" if b.used_percent is not None else ""
        text = f"budget {b.account}{'/' + b.window if b.window else ''}: {b.status}{used}"
    else:
        text = ""
    text = " ".join(text.split())  # agent text is sanitized by the join; one line here
    return text[:DETAIL_MAX]


def silenced(silences: Sequence[Silence], rule: str, agent: str, now: datetime) -> bool:
    return _quiet_now(silences, now)(rule, agent)


class _Quiet:
    """The silences in force at one moment, with the answer per (rule, agent) kept: the same
    episodes are asked about every poll, and the set in force changes only when a silence is
    added or ends."""

    __slots__ = ("active", "memo")

    def __init__(self, active: list[tuple[str, _Globs]]) -> None:
        self.active = active
        self.memo: dict[tuple[str, str], bool] = {}

    def __call__(self, rule: str, agent: str) -> bool:
        k = (rule, agent)
        hit = self.memo.get(k)
        if hit is None:
            if len(self.memo) > 50_000:
                self.memo.clear()
            hit = False
            for on, names in self.active:
                if (on == "*" or on == rule) and names(agent):
                    hit = True
                    break
            self.memo[k] = hit
        return hit


_NO_SILENCE = _Quiet([])
_QUIET: dict[tuple[tuple[str, tuple[str, ...]], ...], _Quiet] = {}


def _quiet_now(silences: Sequence[Silence], now: datetime) -> _Quiet:
    """The silences in force now, ready to test (the same object while that set holds)."""
    key = tuple((s.rule, tuple(s.agents)) for s in silences if s.until > now)
    if not key:
        return _NO_SILENCE
    q = _QUIET.get(key)
    if q is None:
        if len(_QUIET) > 64:
            _QUIET.clear()
        q = _QUIET[key] = _Quiet([(rule, globs(agents)) for rule, agents in key])
    return q


# -- the evaluation ----------------------------------------------------------------------------


def evaluate(
    rules: Sequence[Rule],
    agents: Sequence[AgentRecord],
    now: datetime,
    book: AlertBook,
    *,
    silences: Sequence[Silence] = (),
    hosts: Iterable[str] | None = None,
) -> list[AlertEvent]:
    """Move every episode along for one snapshot; returns the messages to send, in order.

    `hosts`: the hosts this snapshot has data for (default: the hosts of `agents`). Episodes of
    other hosts are left untouched. An episode's `detail` is written when it sends (its text
    then); the steady state (episodes open, nothing to send) costs a few tests per episode."""
    compiled = [_compile(r) for r in rules]
    by_name = {c.rule.name: c for c in compiled}
    fresh = set(hosts) if hosts is not None else {a.host for a in agents}
    quiet = _quiet_now(silences, now) if silences else _NO_SILENCE
    silencing, memo = bool(quiet.active), quiet.memo
    events: list[AlertEvent] = []
    book.generation = gen = book.generation + 1
    episodes = book.episodes
    want_rungs = any(c.rung for c in compiled)
    # the rules' fields unpacked once: this loop runs agents x rules times per snapshot
    tests = [
        (
            c,
            c.rule.name,
            c.states,
            c.healths,
            c.drifts,
            c.agents,
            c.budgets,
            c.rung,
            c.budgets is not None or c.rung,
            c.rule.repeat_s,
        )
        for c in compiled
    ]
    rungs = book.rungs
    for r in agents:
        if not r.is_agent:
            continue
        hb, inferred, budget = r.heartbeat, r.inferred, r.budget
        state = hb.state if hb is not None else inferred.state if inferred is not None else None
        health, drift, name = r.health, r.drift, r.name
        status = budget.status if budget is not None else None
        key: str | None = None
        rung_move: tuple[str, str] | None = None
        if want_rungs and budget is not None and budget.rung is not None:
            key = r.key
            before = rungs.get(key)
            if before != budget.rung:
                rungs[key] = budget.rung
                book.changed = True
                if before is not None:
                    rung_move = (before, budget.rung)
        for c, rule_name, states, healths, drifts, names, budgets, rung, on_budget, every in tests:
            # the rule's test, inline
            if states is not None and state not in states:
                continue
            if healths is not None and health not in healths:
                continue
            if drifts is not None and drifts.isdisjoint(drift):
                continue
            if names is not None and not names(name):
                continue
            holds: bool | None = True
            if on_budget:
                if budgets is not None and status in budgets:
                    pass
                elif rung and rung_move is not None:
                    holds = None  # only through the rung change
                else:
                    continue
            if key is None:
                key = r.key
            ek = (rule_name, key)
            e = episodes.get(ek)
            if e is None:
                e = episodes[ek] = Episode(
                    rule=rule_name,
                    key=key,
                    agent=r.name,
                    tenant_id=r.tenant_id,
                    host=r.host,
                    since=now,
                    momentary=holds is None,
                )
                book.changed = True
            elif holds is not None:
                e.momentary = False
            # StrEnum members are str: kept as they are, no conversion per poll (and compared
            # by identity: a state read back from the book is a plain str, so it counts as moved)
            moved = e.state is not state or e.health is not health
            e.seen, e.health, e.state = gen, health, state
            if e.fired_at is not None:
                if silencing or e.silenced:
                    held = memo.get((rule_name, e.agent))
                    if held is None:
                        held = quiet(rule_name, e.agent)
                    if held != e.silenced:
                        e.silenced = held
                        book.changed = True
                    if held:
                        continue
                if every <= 0 or e.last_sent is None:
                    continue
                if (now - e.last_sent).total_seconds() < every:
                    continue
                e.last_sent, e.sends = now, e.sends + 1
                repeat = True
            else:
                if not e.momentary and (now - e.since).total_seconds() < c.rule.for_s:
                    continue
                last = book.resolved.get(ek)
                if last is not None and (now - last).total_seconds() < c.rule.gap_s:
                    continue
                held = False
                if silencing:
                    held = memo.get((rule_name, e.agent))
                    if held is None:
                        held = quiet(rule_name, e.agent)
                if held != e.silenced:
                    e.silenced = moved = held
                    book.changed = True
                if held:
                    # held back: `alerts list` says what it asks, as of when the silence took
                    # it or its state last moved (the inbox reads the live row)
                    if moved:
                        detail = _detail(c, r, state, rung_move if holds is None else None)
                        if detail != e.detail:
                            e.detail = detail
                            book.changed = True
                    continue
                e.fired_at = e.last_sent = now
                e.sends, repeat = 1, False
            book.changed = True
            e.detail = _detail(c, r, state, rung_move if holds is None else None)
            events.append(AlertEvent("firing", c.rule, e, now, repeat=repeat))
    # episodes whose condition stopped holding (or whose rule is gone): resolve them, with
    # the agent's state now (what "resolved" reports), when it is still there
    ending = [k for k, e in episodes.items() if e.seen != gen]
    now_by_key = {a.key: a for a in agents} if ending else {}
    for ek in ending:
        e = episodes[ek]
        current = now_by_key.get(e.key)
        if current is not None:
            e.health, e.state = current.health, agent_state(current)
        gone = by_name.get(ek[0])
        if gone is not None and e.host not in fresh and not e.momentary:
            continue  # no data from its host this time
        del episodes[ek]
        book.changed = True
        if e.fired:
            book.resolved[ek] = now
            if gone is not None and not e.momentary:
                events.append(AlertEvent("resolved", gone.rule, e, now))
    _prune(book, by_name, now)
    return events


def _prune(book: AlertBook, rules: Mapping[str, _Compiled], now: datetime) -> None:
    """Forget resolutions older than their rule's gap (and those of rules that are gone)."""
    if not book.resolved:
        return
    stale = []
    for ek, t in book.resolved.items():
        known = rules.get(ek[0])
        if known is None or now - t > timedelta(seconds=known.rule.gap_s):
            stale.append(ek)
    for ek in stale:
        del book.resolved[ek]
        book.changed = True
