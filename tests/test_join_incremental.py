"""The incremental join (core/join.py `JoinCache`): a join with the last join's records gives the
same snapshot as a join from scratch, at every moment and after every kind of change; a record
whose inputs did not change is not built again, and is the same object when nothing moved."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from fleet_tui.core.infer import compile_rules
from fleet_tui.core.join import FleetInputs, JoinCache, build_snapshot, inference_targets
from fleet_tui.model.records import (
    AgentRecord,
    AgentState,
    FleetSnapshot,
    InferredState,
    Ping,
    SpoolRead,
    StateSource,
)
from fleet_tui.testing.fleets import big_snapshot, fleet_inputs, heartbeat


def both(inputs: FleetInputs, cache: JoinCache) -> FleetSnapshot:
    """The incremental snapshot, checked against the one built from scratch."""
    got = build_snapshot(inputs, cache)
    assert got == build_snapshot(inputs)
    assert got.model_dump(mode="json") == build_snapshot(inputs).model_dump(mode="json")
    return got


@pytest.mark.parametrize(
    "kw",
    [{}, {"roster": False}, {"hung": True}, {"systemd": False}, {"heartbeats": False}],
)
def test_same_snapshot_as_from_scratch_as_the_clock_moves(kw: dict[str, bool]) -> None:
    base = fleet_inputs(**kw)
    cache = JoinCache()
    # healthy -> stale -> unresponsive (3x the timeout), and back in time (clock skew)
    for dt in (0, 0, 0.04, 1, 1.5, 29, 31, 95, 400, -120, 0):
        both(replace(base, now=base.now + timedelta(seconds=dt)), cache)
    assert cache.reused > 0


def test_changed_inputs_are_built_again_and_the_rest_kept() -> None:
    base = fleet_inputs()
    cache = JoinCache()
    first = both(base, cache)
    again = both(base, cache)
    for a, b in zip(first.agents, again.agents, strict=True):
        assert a is b, a.name  # inferred states too: nothing moved
    # one heartbeat rewritten (a new seq): that agent's record changes, the others are kept
    name = next(a.name for a in first.agents if a.state_source is StateSource.HEARTBEAT)
    read = base.heartbeats[name]
    assert read.heartbeat is not None
    newer = read.heartbeat.model_copy(update={"seq": read.heartbeat.seq + 1})
    beats = {**base.heartbeats, name: SpoolRead(newer, mtime=read.mtime)}
    third = both(replace(base, heartbeats=beats), cache)
    for a, b in zip(again.agents, third.agents, strict=True):
        if a.name == name:
            assert a is not b and b.heartbeat is not None and b.heartbeat.seq == newer.seq
        else:
            assert a is b, a.name
    # a ping that goes unanswered, a pid that died, a process sample and token use that moved
    later = base.now + timedelta(seconds=45)
    pings = {name: Ping(nonce="n1", ts=base.now)}
    both(replace(base, heartbeats=beats, now=later, pings=pings), cache)
    pids = {r.heartbeat.pid for r in beats.values() if r.heartbeat and r.heartbeat.pid}
    both(replace(base, heartbeats=beats, now=later, dead_pids=pids), cache)
    procs = {pid: replace(s, cpu_percent=s.cpu_percent + 1) for pid, s in base.processes.items()}
    both(replace(base, heartbeats=beats, processes=procs), cache)
    tokens = {k: v + 1 for k, v in base.tokens_today.items()}
    both(replace(base, heartbeats=beats, tokens_today=tokens), cache)
    # a session gone, the roster gone, another host: nothing stale survives
    both(replace(base, sockets=base.sockets[:1]), cache)
    both(replace(base, roster=None), cache)
    both(replace(base, host="elsewhere"), cache)
    both(base, cache)


def state(record: AgentRecord) -> AgentState | None:
    """The state a record without a heartbeat shows (inferred, or Claude Code's)."""
    return record.inferred.state if record.inferred else None


def test_states_without_a_heartbeat_follow_the_clock_the_screen_and_the_session_file() -> None:
    base = fleet_inputs(heartbeats=False)
    targets = inference_targets(base)
    assert len(targets) >= 5
    cache = JoinCache()
    # the clock: output 2 s ago is busy (most panes wrote 5 s before `base.now`), 58 s later
    # the same panes are idle
    first = both(replace(base, now=base.now - timedelta(seconds=3)), cache)
    guessed = [a for a in first.agents if a.state_source is StateSource.INFERRED]
    assert len(guessed) >= 5
    assert any(state(a) is AgentState.BUSY for a in guessed if a.tmux and a.tmux.idle_s == 2)
    built = cache.built
    later = both(replace(base, now=base.now + timedelta(seconds=55)), cache)
    assert cache.built == built  # worked out again from the kept records, none built anew
    names = {g.name for g in guessed}
    assert {a.name: state(a) for a in later.agents if a.name in names} != {
        g.name: state(g) for g in guessed
    }
    # the screen: a prompt shows on one pane, then goes
    ask = {targets[0]: ["Do you want to proceed?", "> 1. Yes", "  2. No"]}
    asked = both(replace(base, now=base.now + timedelta(seconds=61), captures=ask), cache)
    who = next(a for a in asked.agents if a.tmux and (a.socket, a.tmux.pane_id) == targets[0])
    assert state(who) is AgentState.WAITING_INPUT, who.inferred
    both(replace(base, now=base.now + timedelta(seconds=62)), cache)
    # Claude Code's session file for a Claude pane: its state, then none again
    pid = next(a.tmux.pane_pid for a in guessed if a.runtime == "claude" and a.tmux)
    sessions = {pid: InferredState(state=AgentState.BLOCKED, reason="session: rate limited")}
    blocked = both(replace(base, claude_sessions=sessions), cache)
    assert any(
        a.state_source is StateSource.SESSION and state(a) is AgentState.BLOCKED
        for a in blocked.agents
    )
    again = both(base, cache)
    assert all(a.state_source is not StateSource.SESSION for a in again.agents)


def test_kept_guesses_follow_the_rules_the_runtime_and_whose_heartbeat_it_is() -> None:
    base = fleet_inputs(heartbeats=False)
    cache = JoinCache()
    first = both(base, cache)
    # new rules: every record is built again, and a screen's text now reads as busy
    words = {"busy": ["plain words"]}
    rules, notices = compile_rules(dict.fromkeys(("claude", "codex", "shell"), words))
    assert notices == []
    target = inference_targets(base)[0]
    screen = {target: ["plain words on the screen"]}
    built = cache.built
    later = base.now + timedelta(seconds=120)
    both(replace(base, now=later, captures=screen), cache)
    busy = both(replace(base, now=later, captures=screen, inference=rules), cache)
    assert cache.built - built == len(first.agents)  # the rules changed: none kept
    who = next(a for a in busy.agents if a.tmux and (a.socket, a.tmux.pane_id) == target)
    assert state(who) is AgentState.BUSY, who.inferred
    # a session file under a pane whose process is Codex says nothing of that agent's state
    codex = next(a for a in first.agents if a.process and a.process.runtime_detected == "codex")
    assert codex.tmux is not None and codex.tmux.pane_pid is not None
    sessions = {codex.tmux.pane_pid: InferredState(state=AgentState.BLOCKED, reason="s")}
    kept = both(replace(base, claude_sessions=sessions), cache)
    assert next(a for a in kept.agents if a.name == codex.name).state_source is not (
        StateSource.SESSION
    )
    # a Claude pane whose session file says it waits: the prompt read off the pane joins the
    # reason while it shows, and leaves it when it goes
    claude = next(a for a in first.agents if a.process and a.process.runtime_detected == "claude")
    assert claude.tmux is not None and claude.tmux.pane_pid is not None
    waits = {claude.tmux.pane_pid: InferredState(state=AgentState.WAITING_INPUT, reason="s")}
    where = (claude.socket, claude.tmux.pane_id)
    prompt = {where: ["Do you want to proceed?", "> 1. Yes", "  2. No"]}
    for screen, asks in ((prompt, True), ({}, False), (prompt, True)):
        shown = both(replace(base, claude_sessions=waits, captures=screen), cache)
        got = next(a for a in shown.agents if a.name == claude.name)
        assert got.state_source is StateSource.SESSION and got.inferred is not None
        assert ("prompt: '" in got.inferred.reason) is asks, got.inferred.reason
    # a heartbeat of another tenant is no heartbeat: the state is still a guess, kept
    other = {codex.name: SpoolRead(heartbeat(codex.name, 3, now=base.now, tenant_id="other"))}
    built = cache.built
    both(replace(base, heartbeats=other), cache)
    both(replace(base, heartbeats=other, now=base.now + timedelta(seconds=1)), cache)
    assert cache.built - built == 1  # built when the file appeared, kept after
    guessed = both(replace(base, heartbeats=other, now=base.now + timedelta(seconds=2)), cache)
    assert next(a for a in guessed.agents if a.name == codex.name).state_source is (
        StateSource.INFERRED
    )


SCREENS: list[list[str] | None] = [
    None,
    ["Do you want to proceed?", "> 1. Yes", "  2. No"],
    ["esc to interrupt"],
    ["$ "],
    ["Allow command? (y/n)"],
]


def _step(rng: random.Random, base: FleetInputs, now: datetime) -> FleetInputs:
    """`base` at `now`, with a random share of what a poll may change for states without a
    heartbeat: screens, session files, the runtime seen under a pane, titles and activity."""
    rows = [(scan, row) for scan in base.sockets for row in scan.panes]
    captures = {
        (scan.name, row.pane_id): list(screen)
        for scan, row in rows
        if (screen := rng.choice(SCREENS)) is not None
    }
    sessions = {
        row.pane_pid: InferredState(state=rng.choice(list(AgentState)), reason="session: x")
        for _, row in rows
        if row.pane_pid and rng.random() < 0.3
    }
    processes = {
        pid: replace(sample, runtime=rng.choice(["claude", "codex", None]))
        if rng.random() < 0.2
        else sample
        for pid, sample in base.processes.items()
    }
    t = int(now.timestamp())
    sockets = [
        replace(
            scan,
            panes=[
                replace(row, window_activity=t - rng.randint(0, 9), pane_title="⠙ busy")
                if rng.random() < 0.2
                else row
                for row in scan.panes
            ],
        )
        for scan in base.sockets
    ]
    return replace(
        base,
        now=now,
        captures=captures,
        claude_sessions=sessions,
        processes=processes,
        sockets=sockets,
    )


@pytest.mark.parametrize("heartbeats", [False, True])
def test_random_polls_give_the_snapshot_of_a_join_from_scratch(heartbeats: bool) -> None:
    rng = random.Random(16)
    base = fleet_inputs(heartbeats=heartbeats)
    cache = JoinCache()
    now = base.now
    for _ in range(150):
        now += timedelta(seconds=rng.choice([0, 0.05, 1, 2, 3, 40]))
        # half the polls change nothing but the clock: the kept records are refreshed
        inputs = _step(rng, base, now) if rng.random() < 0.5 else replace(base, now=now)
        both(inputs, cache)
    assert cache.reused > 0 and cache.built > 0


def test_a_big_fleet_rebuilds_nothing_when_only_the_clock_moves() -> None:
    from fleet_tui.testing import fleets

    captured: list[FleetInputs] = []
    real = fleets.build_snapshot

    def keep(inputs: FleetInputs, cache: JoinCache | None = None) -> FleetSnapshot:
        captured.append(inputs)
        return real(inputs, cache)

    fleets.build_snapshot = keep  # type: ignore[assignment]
    try:
        big_snapshot(300)
    finally:
        fleets.build_snapshot = real
    base = captured[0]
    cache = JoinCache()
    both(base, cache)
    built = cache.built
    assert built == 300
    for dt in (1, 2, 3):
        both(replace(base, now=base.now + timedelta(seconds=dt)), cache)
    assert cache.built == built  # every record refreshed from the kept one, none built again
