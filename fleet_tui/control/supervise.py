"""`supervise`: restart the always-on agents that are down, missing or unresponsive, within
limits (DESIGN.md "Lifecycle and supervision").

One pass: a snapshot (the collector, as `ps` takes it), then `plan_pass`, a pure function from
the snapshot, the roster, the supervisor's state (`lifecycle/supervise.json`), the operator stops
(`lifecycle/stopped.json`) and `now` to a plan; then `run_pass` carries it out through the same
calls as `restart`/`up` (`control.lifecycle.restart_agent`, surface `supervise`, audited).

Who is restarted: a roster agent of this host, `always-on`, that is `down` (its pane's process
exited), has no session (drift `missing_session`; started, audited `start`), or has been
`unresponsive` for longer than `unresponsive_after_s` (since its last heartbeat, or since the
first pass that saw it unresponsive when it still writes heartbeats but answers no ping).

Never: an ephemeral agent; an agent an operator stopped on purpose; one a human is attached to
right now (tmux `attached_clients` > 0); one without a `command` (not startable); an agent of
another host; a held one.

Limits: one agent at most `AGENT_LIMIT` (3) restarts per `AGENT_WINDOW_S` (15 min): past it the
agent is HELD (no more restarts until an operator's `up NAME` / `restart NAME` / `supervise
--release NAME`); the fleet at most one restart per `FLEET_GAP_S` (a minute): the others wait
for a later pass. The restart times, the holds and "unresponsive since" are kept in
supervise.json, changed under a flock (`control.lifecycle.update_supervise`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.control import lifecycle as lc
from fleet_tui.core.sanitize import clean_text
from fleet_tui.errors import BadInput
from fleet_tui.model.records import AgentRecord, FleetSnapshot, Health, Lifecycle, Roster
from fleet_tui.protocol.clock import format_ts, parse_ts, utcnow

AGENT_LIMIT = 3
AGENT_WINDOW_S = 15 * 60.0
FLEET_GAP_S = 60.0
DEFAULT_EVERY_S = 30.0
DEFAULT_UNRESPONSIVE_AFTER_S = 300.0
SURFACE = "supervise"

# What a step does: restart (a session exists), start (none), hold (past the agent's limit),
# wait (the fleet's limit: a later pass), skip (left alone: `key` says why).
RESTART, START, HOLD, WAIT, SKIP = "restart", "start", "hold", "wait", "skip"


@dataclass(frozen=True)
class Step:
    agent: str
    do: str
    why: str = ""  # what is wrong with the agent ("down: ...", "missing its session", ...)
    note: str = ""  # why not now, why held, why left alone
    key: str = ""  # a skip's kind: attached | stopped | held | not_startable
    restarts: int = 0  # a hold's: the restarts in the window


@dataclass
class Plan:
    now: datetime
    steps: list[Step] = field(default_factory=list)
    # agent -> since when it has been seen unresponsive (None: forget it), to record
    unresponsive_since: dict[str, str | None] = field(default_factory=dict)

    def actions(self) -> list[Step]:
        return [s for s in self.steps if s.do in (RESTART, START)]


def _times(values: object) -> list[datetime]:
    out = []
    for v in values if isinstance(values, list) else []:
        t = parse_ts(v)
        if t is not None:
            out.append(t)
    return out


def recent_restarts(entry: Mapping[str, Any], now: datetime) -> list[datetime]:
    """An agent's restarts within the agent window before `now`."""
    start = now - timedelta(seconds=AGENT_WINDOW_S)
    return [t for t in _times(entry.get("restarts")) if start < t <= now]


def last_fleet_restart(state: Mapping[str, Any]) -> datetime | None:
    """The fleet's last restart by the supervisor (its own field, or any agent's times)."""
    times = _times([state.get("last_restart")])
    for entry in state.get("agents", {}).values():
        times += _times(entry.get("restarts"))
    return max(times, default=None)


def _is_local(record: AgentRecord, snapshot: FleetSnapshot) -> bool:
    return not record.remote and record.host == snapshot.host


NOTHING: tuple[str | None, str, str | None] = (None, "", None)


def _trouble(
    record: AgentRecord,
    entry: Mapping[str, Any],
    now: datetime,
    unresponsive_after_s: float,
) -> tuple[str | None, str, str | None]:
    """(what to do: restart | start | None, why, unresponsive-since to record or None)."""
    if record.tmux is None:
        # down: no session (drift missing_session, or stopped); unknown: its socket is hung or
        # could not be listed, so nobody can tell: never started on a guess
        return (START, "missing its session", None) if record.health is Health.DOWN else NOTHING
    if record.health is Health.DOWN:
        return RESTART, f"down: {record.health_reason}", None
    if record.health is not Health.UNRESPONSIVE:
        return NOTHING
    seen = parse_ts(entry.get("unresponsive_since")) or now
    beat = record.heartbeat.ts if record.heartbeat is not None else None
    since = min(seen, beat) if beat is not None else seen
    for_s = max(0.0, (now - since).total_seconds())
    why = f"unresponsive for {for_s:.0f} s ({record.health_reason})"
    if for_s < unresponsive_after_s:
        return None, why, format_ts(seen)
    return RESTART, why, format_ts(seen)


def plan_pass(
    snapshot: FleetSnapshot,
    roster: Roster,
    state: Mapping[str, Any],
    stopped: Mapping[str, Mapping[str, object]] | Collection[str],
    *,
    now: datetime,
    unresponsive_after_s: float = DEFAULT_UNRESPONSIVE_AFTER_S,
) -> Plan:
    """What one pass does (pure: no I/O). `state` is supervise.json (`{"agents", "last_restart"}`),
    `stopped` the operator stops by name."""
    plan = Plan(now)
    agents: Mapping[str, Mapping[str, Any]] = state.get("agents", {})
    by_name = {a.name: a for a in roster.agents}
    candidates: list[tuple[int, int, Step]] = []
    for index, record in enumerate(snapshot.agents):
        ragent = by_name.get(record.name)
        if ragent is None or not record.in_roster or not _is_local(record, snapshot):
            continue
        if ragent.lifecycle is not Lifecycle.ALWAYS_ON:
            continue  # ephemeral: never restarted
        if record.socket is not None and record.socket != roster.agent_socket(ragent):
            continue  # a session on another socket (socket_mismatch): not ours to replace
        entry = agents.get(record.name, {})
        do, why, since = _trouble(record, entry, now, unresponsive_after_s)
        if since != entry.get("unresponsive_since"):
            plan.unresponsive_since[record.name] = since
        if do is None:
            if why:  # unresponsive, not for long enough yet
                note = f"restarted once unresponsive for {unresponsive_after_s:g} s"
                plan.steps.append(Step(record.name, WAIT, why, note))
            continue
        held = entry.get("held")
        if record.name in stopped:
            who = stopped[record.name] if isinstance(stopped, Mapping) else {}
            user, ts = clean_text(str(who.get("user"))), clean_text(str(who.get("ts")))
            by = f" by {user} at {ts}" if who else ""
            note = f"stopped on purpose{by}; 'fleet-tui up {record.name}' starts it"
            plan.steps.append(Step(record.name, SKIP, why, note, "stopped"))
        elif isinstance(held, Mapping):
            since, reason = clean_text(str(held.get("since"))), clean_text(str(held.get("reason")))
            note = f"held since {since}: {reason}; 'fleet-tui up {record.name}' releases it"
            plan.steps.append(Step(record.name, SKIP, why, note, "held"))
        elif record.tmux is not None and record.tmux.attached_clients > 0:
            n = record.tmux.attached_clients
            note = f"attached, {n} client{'s' if n > 1 else ''}"
            plan.steps.append(Step(record.name, SKIP, why, note, "attached"))
        elif not (ragent.command and ragent.command.strip()):
            note = "no command in the roster"
            plan.steps.append(Step(record.name, SKIP, why, note, "not_startable"))
        else:
            recent = recent_restarts(entry, now)
            if len(recent) >= AGENT_LIMIT:
                note = f"{len(recent)} restarts in {AGENT_WINDOW_S / 60:.0f} min"
                plan.steps.append(Step(record.name, HOLD, why, note, restarts=len(recent)))
            else:
                candidates.append((len(recent), index, Step(record.name, do, why)))
    candidates.sort(key=lambda c: (c[0], c[1]))
    last = last_fleet_restart(state)
    free = last is None or (now - last).total_seconds() >= FLEET_GAP_S
    for _, _, step in candidates:
        if free:
            plan.steps.append(step)
            free = False
            continue
        if last is not None and (now - last).total_seconds() < FLEET_GAP_S:
            at = format_ts(last + timedelta(seconds=FLEET_GAP_S))
            note = f"fleet limit, one restart a minute: waits for a pass after {at}"
        else:
            note = "fleet limit, one restart a minute: waits for a later pass"
        plan.steps.append(Step(step.agent, WAIT, step.why, note))
    return plan


# -- carrying a plan out ------------------------------------------------------------------------


def describe(step: Step, *, dry_run: bool) -> str:
    """The line a step prints (before it is carried out, for `--dry-run` and waits/skips)."""
    if step.do in (RESTART, START):
        verb = {RESTART: "restart", START: "start"}[step.do]
        return f"{step.agent}: would {verb} ({step.why})" if dry_run else f"{step.agent}: {verb}"
    if step.do == HOLD:
        pre = "would hold" if dry_run else "held"
        return (
            f"{step.agent}: {pre}: {step.note} ({step.why}); "
            f"'fleet-tui up {step.agent}' releases it"
        )
    if step.do == WAIT:
        return f"{step.agent}: waits ({step.why}): {step.note}"
    if step.key == "not_startable":
        return f"{step.agent}: not startable: {step.note} ({step.why})"
    return f"{step.agent}: left alone: {step.note} ({step.why})"


def _started_line(res: lc.StartResult) -> str:
    if res.outcome == "started":
        pane = f", pane {res.pane.pane_id}" if res.pane is not None else ""
        return f"running (socket {res.socket}{pane})"
    if res.outcome == "already_running":
        return "already running"
    if res.outcome == "down":
        last = "".join(f" | {x}" for x in res.last)
        return f"down again: {res.detail}{last}"
    return f"error: {clean_text(res.detail, max_len=300)}"


@dataclass
class PassResult:
    plan: Plan
    lines: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # agents whose restart did not come up


def _record_restart(state_dir: Path, name: str, now: datetime) -> None:
    def change(doc: dict[str, Any]) -> None:
        entry = doc["agents"].setdefault(name, {})
        keep = [format_ts(t) for t in recent_restarts(entry, now)]
        entry["restarts"] = [*keep, format_ts(now)]
        entry.pop("unresponsive_since", None)
        doc["last_restart"] = format_ts(now)

    lc.update_supervise(state_dir, change)


def _record_hold(state_dir: Path, name: str, now: datetime, reason: str, count: int) -> bool:
    """Hold `name`; False when someone held it meanwhile (nothing to say again)."""

    def change(doc: dict[str, Any]) -> bool:
        entry = doc["agents"].setdefault(name, {})
        if entry.get("held") is not None:
            return False
        entry["held"] = {"since": format_ts(now), "reason": reason, "restarts": count}
        return True

    return lc.update_supervise(state_dir, change)


def _record_unresponsive(state_dir: Path, changes: Mapping[str, str | None]) -> None:
    def change(doc: dict[str, Any]) -> None:
        for name, since in changes.items():
            entry = doc["agents"].get(name)
            if since is None:
                if entry is not None:
                    entry.pop("unresponsive_since", None)
                    if not entry:
                        doc["agents"].pop(name)
            else:
                doc["agents"].setdefault(name, {})["unresponsive_since"] = since

    lc.update_supervise(state_dir, change)


def run_pass(
    config: FleetConfig,
    collect: Callable[[], FleetSnapshot],
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    unresponsive_after_s: float = DEFAULT_UNRESPONSIVE_AFTER_S,
    grace_s: float = lc.DEFAULT_GRACE_S,
    settle_s: float = lc.DEFAULT_SETTLE_S,
    said: MutableMapping[str, str] | None = None,
    verbose: bool = False,
    out: Callable[[str], None] = print,
    warn: lc.Warn = lc._ignore,
) -> PassResult:
    """One pass: snapshot, plan, act. `said` (kept across a loop's passes) holds the skip each
    agent was last reported for, so that "left alone" and "not startable" are said once, not
    every pass. `dry_run` prints every step and changes nothing (no tmux writes, no state, no
    audit). Raises `FleetError` for a pass that cannot be made (no roster, tmux gone, an
    unreadable state file)."""
    fleet = lc.load_fleet_roster(config, "supervise")
    snapshot = collect()
    now = now or utcnow()
    state_dir = config.state_dir
    plan = plan_pass(
        snapshot,
        fleet.roster,
        lc.read_supervise(state_dir),
        lc.read_stopped(state_dir),
        now=now,
        unresponsive_after_s=unresponsive_after_s,
    )
    result = PassResult(plan)

    def say(line: str) -> None:
        result.lines.append(line)
        out(line)

    said = {} if said is None else said
    for name in [n for n in said if n not in {s.agent for s in plan.steps}]:
        del said[name]  # back to normal: said again when it comes back
    if dry_run:
        for step in plan.steps:
            say(describe(step, dry_run=True))
        if not plan.steps and verbose:
            say("nothing to do")
        return result
    if plan.unresponsive_since:
        _record_unresponsive(state_dir, plan.unresponsive_since)
    if not plan.steps and verbose:
        say(f"nothing to do ({len(snapshot.agents)} sessions and roster agents looked at)")
    for step in plan.steps:
        if step.do == SKIP or step.do == WAIT:
            key = f"{step.do}:{step.key or step.note}"
            if verbose or (step.do == SKIP and said.get(step.agent) != key):
                say(describe(step, dry_run=False))
            said[step.agent] = key
        elif step.do == HOLD:
            if _record_hold(state_dir, step.agent, now, step.note, step.restarts):
                lc.audit_action(
                    fleet,
                    action="restart",
                    agent=step.agent,
                    outcome="held",
                    detail=f"{step.note}; {step.why}",
                    surface=SURFACE,
                    now=now,
                    warn=warn,
                )
                say(describe(step, dry_run=False))
            said[step.agent] = "skip:held"
        else:
            _act(
                fleet,
                step,
                now=now,
                grace_s=grace_s,
                settle_s=settle_s,
                say=say,
                said=said,
                result=result,
                warn=warn,
            )
    return result


def _act(
    fleet: lc.FleetRoster,
    step: Step,
    *,
    now: datetime,
    grace_s: float,
    settle_s: float,
    say: Callable[[str], None],
    said: MutableMapping[str, str],
    result: PassResult,
    warn: lc.Warn,
) -> None:
    """Restart (or start) one agent: checked again just before (an operator's stop since the
    snapshot wins, and so does an operator's `up` of a missing or dead one; a roster entry that
    cannot be started is said once), the restart counted, then `restart_agent` with surface
    `supervise`."""
    state_dir = fleet.config.state_dir
    if step.agent in lc.read_stopped(state_dir):
        return  # stopped on purpose since the snapshot: the next pass says so
    agent = fleet.agent(step.agent)
    if agent is not None and (step.do == START or step.why.startswith("down")):
        runner = lc.lifecycle_runner()
        now_state = lc.session_state(runner, fleet.roster.agent_socket(agent), step.agent)
        if now_state is not None and not now_state.dead:
            return  # started meanwhile (an operator's `up`): the next pass looks again
    try:
        if agent is None or fleet.plan(agent) is None:
            raise BadInput("not startable (no command in the roster)")
    except BadInput as exc:
        key = f"skip:cannot:{exc}"
        if said.get(step.agent) != key:
            say(f"{step.agent}: cannot {step.do} ({step.why}): {exc}")
        said[step.agent] = key
        return
    _record_restart(state_dir, step.agent, now)
    verb = "restarted" if step.do == RESTART else "started"
    try:
        res = lc.restart_agent(
            fleet.config,
            step.agent,
            grace_s=grace_s,
            surface=SURFACE,
            settle_s=settle_s,
            action=step.do,
            now=now,
            warn=warn,
            fleet=fleet,
        )
    except BadInput as exc:
        result.failed.append(step.agent)
        say(f"{step.agent}: cannot {step.do} ({step.why}): {exc}")
        return
    said.pop(step.agent, None)
    if res.failed:
        result.failed.append(step.agent)
    say(f"{step.agent}: {verb} ({step.why}): {_started_line(res.start)}")


def release(config: FleetConfig, names: Collection[str], *, surface: str = "cli") -> list[str]:
    """`supervise --release NAME...`: lift the supervisor's holds (audited); returns those held."""
    fleet = lc.load_fleet_roster(config, "supervise")
    for name in names:
        lc.find_agent(fleet, name, action="restart", surface=surface)
    held = lc.release_holds(config.state_dir, names)
    for name in held:
        lc.audit_action(
            fleet,
            action="restart",
            agent=name,
            outcome="released",
            detail="supervise hold released",
            surface=surface,
        )
    return held
