"""`supervise` (issue 17): the decision (pure: `plan_pass` from a snapshot, the state and `now`)
and passes on real tmux (private sockets; `fleet-tui stub` as the runtime): what it restarts,
what it leaves alone, its limits, the hold, the `held`/`stopped` drift flags in `ps --json`, the
audit lines, and `up NAME` releasing a hold.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, FleetEnv, unavailable, wait_until

from fleet_tui.control.supervise import HOLD, RESTART, SKIP, START, WAIT, plan_pass
from fleet_tui.model.records import (
    AgentRecord,
    AgentState,
    Drift,
    FleetSnapshot,
    Health,
    HeartbeatInfo,
    Lifecycle,
    Roster,
    RosterAgent,
    TmuxInfo,
)
from fleet_tui.protocol.clock import format_ts
from fleet_tui.tmux import session_target

SOCK = "mosaic-fleet"
NOW = datetime(2026, 12, 6, 1, 0, 0, tzinfo=UTC)


# -- the decision, pure -----------------------------------------------------------------------------


def ragent(name: str, **kw: Any) -> RosterAgent:
    return RosterAgent(name=name, role="coder", runtime="stub", command="run-it", **kw)


def record(
    name: str,
    health: Health = Health.HEALTHY,
    *,
    session: bool = True,
    attached: int = 0,
    hb_age_s: float | None = None,
    lifecycle: Lifecycle = Lifecycle.ALWAYS_ON,
    host: str = "h1",
    remote: bool = False,
    drift: list[Drift] | None = None,
) -> AgentRecord:
    tmux = (
        TmuxInfo(
            session_id="$1",
            pane_id="%1",
            pane_pid=1,
            pane_dead=health is Health.DOWN,
            current_command="x",
            attached_clients=attached,
            activity_at=None,
            idle_s=None,
        )
        if session
        else None
    )
    hb = (
        HeartbeatInfo(
            ts=NOW - timedelta(seconds=hb_age_s),
            age_s=hb_age_s,
            seq=1,
            state=AgentState.IDLE,
            detail=None,
        )
        if hb_age_s is not None
        else None
    )
    flags = drift if drift is not None else ([] if session else [Drift.MISSING_SESSION])
    return AgentRecord(
        tenant_id="acme",
        host=host,
        name=name,
        role="coder",
        alias=None,
        runtime="stub",
        model=None,
        lifecycle=lifecycle,
        in_roster=True,
        socket=SOCK,
        session=name if session else None,
        tmux=tmux,
        systemd=None,
        process=None,
        heartbeat=hb,
        health=health,
        health_reason=f"{health.value} for a test",
        drift=flags,
        remote=remote,
    )


def snap(*records: AgentRecord) -> FleetSnapshot:
    return FleetSnapshot(
        generated_at=NOW,
        host="h1",
        tenant_id="acme",
        heartbeat_timeout_s=30,
        sockets=[],
        agents=list(records),
        warnings=[],
    )


def roster_of(*agents: RosterAgent) -> Roster:
    return Roster(version=1, tenant_id="acme", host="h1", socket_name=SOCK, agents=list(agents))


def state(**agents: dict[str, Any]) -> dict[str, Any]:
    return {"agents": agents, "last_restart": None}


def ago(seconds: float) -> str:
    return format_ts(NOW - timedelta(seconds=seconds))


def steps(plan: Any) -> dict[str, tuple[str, str]]:
    return {s.agent: (s.do, s.key or s.note) for s in plan.steps}


def test_plan_restarts_a_down_agent_and_starts_a_missing_one() -> None:
    ros = roster_of(ragent("a"), ragent("b"))
    plan = plan_pass(
        snap(record("a", Health.DOWN), record("b", Health.DOWN, session=False)),
        ros,
        state(),
        {},
        now=NOW,
    )
    # the fleet's limit: one restart a pass (a minute); the other waits for the next pass
    assert [(s.agent, s.do) for s in plan.steps] == [("a", RESTART), ("b", WAIT)]
    assert "fleet limit, one restart a minute" in plan.steps[1].note
    plan = plan_pass(snap(record("b", Health.DOWN, session=False)), ros, state(), {}, now=NOW)
    assert [(s.agent, s.do, s.why) for s in plan.steps] == [("b", START, "missing its session")]
    # a socket that could not be listed (hung): no session seen, health unknown: not started
    hung = record("b", Health.UNKNOWN, session=False, drift=[])
    assert plan_pass(snap(hung), ros, state(), {}, now=NOW).steps == []
    # healthy, stale and unknown agents are left as they are, and nothing is said of them
    plan = plan_pass(
        snap(record("a"), record("b", Health.STALE, hb_age_s=40)), ros, state(), {}, now=NOW
    )
    assert plan.steps == []


def test_plan_unresponsive_only_past_the_threshold() -> None:
    ros = roster_of(ragent("a"))
    before = plan_pass(
        snap(record("a", Health.UNRESPONSIVE, hb_age_s=200)),
        ros,
        state(),
        {},
        now=NOW,
        unresponsive_after_s=300,
    )
    assert steps(before) == {"a": (WAIT, "restarted once unresponsive for 300 s")}
    assert "unresponsive for 200 s" in before.steps[0].why
    # first seen now: recorded, so that one still writing heartbeats is timed from here
    assert before.unresponsive_since == {"a": format_ts(NOW)}
    past = plan_pass(
        snap(record("a", Health.UNRESPONSIVE, hb_age_s=301)),
        ros,
        state(),
        {},
        now=NOW,
        unresponsive_after_s=300,
    )
    assert steps(past) == {"a": (RESTART, "")}
    # fresh heartbeats but unanswered pings: timed from the first pass that saw it
    seen = state(a={"unresponsive_since": ago(400)})
    plan = plan_pass(snap(record("a", Health.UNRESPONSIVE, hb_age_s=2)), ros, seen, {}, now=NOW)
    assert steps(plan) == {"a": (RESTART, "")}
    assert "unresponsive for 400 s" in plan.steps[0].why
    # back to healthy: the mark is forgotten
    plan = plan_pass(snap(record("a", hb_age_s=1)), ros, seen, {}, now=NOW)
    assert plan.steps == [] and plan.unresponsive_since == {"a": None}


def test_plan_never_touches_who_it_must_not() -> None:
    ros = roster_of(
        ragent("eph", lifecycle=Lifecycle.EPHEMERAL),
        ragent("stopped"),
        ragent("attached"),
        RosterAgent(name="nocmd", role="board"),
        ragent("remote"),
        ragent("held"),
    )
    plan = plan_pass(
        snap(
            record("eph", Health.DOWN, session=False, lifecycle=Lifecycle.EPHEMERAL, drift=[]),
            record("stopped", Health.DOWN, session=False),
            record("attached", Health.DOWN, attached=1),
            record("nocmd", Health.DOWN),
            record("remote", Health.DOWN, host="elsewhere", remote=True),
            record("held", Health.DOWN),
        ),
        ros,
        state(held={"held": {"since": ago(60), "reason": "3 restarts in 15 min", "restarts": 3}}),
        {"stopped": {"user": "ops", "ts": ago(100)}},
        now=NOW,
    )
    assert steps(plan) == {
        "stopped": (SKIP, "stopped"),
        "attached": (SKIP, "attached"),
        "nocmd": (SKIP, "not_startable"),
        "held": (SKIP, "held"),
    }
    assert plan.actions() == []


def test_plan_per_agent_limit_holds() -> None:
    ros = roster_of(ragent("a"))
    three = state(a={"restarts": [ago(800), ago(500), ago(120)]})
    plan = plan_pass(snap(record("a", Health.DOWN)), ros, three, {}, now=NOW)
    assert steps(plan) == {"a": (HOLD, "3 restarts in 15 min")}
    # one of them older than 15 minutes: a restart is still allowed
    older = state(a={"restarts": [ago(901), ago(500), ago(120)]})
    plan = plan_pass(snap(record("a", Health.DOWN)), ros, older, {}, now=NOW)
    assert steps(plan) == {"a": (RESTART, "")}


def test_plan_fleet_limit_one_restart_a_minute() -> None:
    ros = roster_of(ragent("a"), ragent("b"))
    down = snap(record("a", Health.DOWN), record("b", Health.DOWN))
    recent = {"agents": {}, "last_restart": ago(30)}
    plan = plan_pass(down, ros, recent, {}, now=NOW)
    assert [s.do for s in plan.steps] == [WAIT, WAIT]
    assert f"waits for a pass after {ago(-30)}" in plan.steps[0].note
    plan = plan_pass(down, ros, {"agents": {}, "last_restart": ago(61)}, {}, now=NOW)
    assert [s.do for s in plan.steps] == [RESTART, WAIT]
    # the agent restarted least lately goes first (a crash loop does not starve the others)
    looping = state(a={"restarts": [ago(200)]})
    plan = plan_pass(down, ros, looping, {}, now=NOW)
    assert [(s.agent, s.do) for s in plan.steps] == [("b", RESTART), ("a", WAIT)]


# -- the incremental join and the new flags ---------------------------------------------------------


def test_incremental_join_follows_the_lifecycle_files() -> None:
    from dataclasses import replace

    from fleet_tui.core.join import JoinCache, build_snapshot
    from fleet_tui.model.lifecycle import Hold, LifecycleMarks, StopMark
    from fleet_tui.testing.fleets import fleet_inputs

    base = fleet_inputs()
    assert base.roster is not None
    names = [a.name for a in base.roster.agents]
    cache = JoinCache()

    def both(marks: LifecycleMarks) -> FleetSnapshot:
        inputs = replace(base, lifecycle=marks)
        got = build_snapshot(inputs, cache)
        assert got == build_snapshot(inputs)
        return got

    both(LifecycleMarks())
    hold = Hold(format_ts(NOW), "3 restarts in 15 min", 3)
    held = both(LifecycleMarks(held={names[0]: hold}))
    rec = next(a for a in held.agents if a.name == names[0])
    assert Drift.HELD in rec.drift
    assert any(w.startswith(f"{names[0]} held by supervise since ") for w in held.warnings)
    stop = StopMark(format_ts(NOW), "ops", "cli")
    both(LifecycleMarks(held={names[0]: hold}, stopped={n: stop for n in names}))
    cleared = both(LifecycleMarks())
    assert all(Drift.HELD not in a.drift and Drift.STOPPED not in a.drift for a in cleared.agents)
    assert not any("held by supervise" in w for w in cleared.warnings)


def test_built_in_alert_rules_catch_a_held_agent() -> None:
    from fleet_tui.core.alerts import AlertBook, evaluate
    from fleet_tui.model.alerts import DEFAULT_RULES

    book = AlertBook()
    held = record("a", Health.DOWN, drift=[Drift.PANE_DEAD, Drift.HELD])
    events = evaluate(DEFAULT_RULES.rules, [held], NOW, book)
    assert [(e.status, e.rule.name, e.episode.agent, e.rule.to) for e in events] == [
        ("firing", "agent-held", "a", ["terminal"])
    ]
    # released (`up a`): the episode resolves
    events = evaluate(DEFAULT_RULES.rules, [record("a")], NOW + timedelta(seconds=5), book)
    assert [(e.status, e.rule.name) for e in events] == [("resolved", "agent-held")]


def _bump(state_dir: str, who: str, times: int) -> None:
    from pathlib import Path

    from fleet_tui.control.lifecycle import update_supervise

    for i in range(times):

        def change(doc: dict[str, Any], i: int = i) -> None:
            entry = doc["agents"].setdefault("shared", {"restarts": []})
            entry["restarts"].append(f"{who}-{i}")

        update_supervise(Path(state_dir), change)


def test_state_updates_are_not_lost_between_processes(fleet_env: FleetEnv) -> None:
    """Two supervisors, or a supervisor and an operator's `up`, write supervise.json at once:
    every change survives (read-modify-write under the flock)."""
    import multiprocessing

    from fleet_tui.control.lifecycle import read_supervise

    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_bump, args=(str(fleet_env.state_dir), f"p{n}", 25)) for n in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    got = read_supervise(fleet_env.state_dir)["agents"]["shared"]["restarts"]
    assert sorted(got) == sorted(f"p{n}-{i}" for n in range(4) for i in range(25))


def test_marks_reader_sees_every_change(fleet_env: FleetEnv) -> None:
    """The collector's reader of the lifecycle files (cached on the files' identity) gives
    what the files say after each write, also two writes within one clock tick."""
    from fleet_tui.control.lifecycle import forget_stops, remember_stop, update_supervise
    from fleet_tui.sources.lifecycle_state import read_lifecycle_marks

    sd = fleet_env.state_dir
    assert read_lifecycle_marks(sd).held == {} and read_lifecycle_marks(sd).stopped == {}
    for n in range(5):

        def hold(doc: dict[str, Any], n: int = n) -> None:
            doc["agents"][f"a{n}"] = {"held": {"since": ago(0), "reason": "r", "restarts": 3}}

        update_supervise(sd, hold)
        assert sorted(read_lifecycle_marks(sd).held) == [f"a{i}" for i in range(n + 1)]
    remember_stop(sd, "s1", now=NOW, surface="cli")
    assert list(read_lifecycle_marks(sd).stopped) == ["s1"]
    forget_stops(sd, ["s1"])
    assert read_lifecycle_marks(sd).stopped == {}
    (sd / "lifecycle" / "supervise.json").write_text("{broken")
    marks = read_lifecycle_marks(sd)
    assert marks.held == {} and len(marks.warnings) == 1


# -- real tmux ----------------------------------------------------------------------------------------


def stub_command(name: str) -> str:
    argv = [sys.executable, "-m", "fleet_tui", "stub", name, "--interval", "0.5"]
    return shlex.join(argv)


def stub_agent(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "role": "coder", "command": stub_command(name), **kw}


CRASH = "echo 'config broken'; exit 3"


def has_session(env: FleetEnv, name: str) -> bool:
    try:
        env.tmux(SOCK, "has-session", "-t", f"={name}")
    except Exception:
        return False
    return True


def pane(env: FleetEnv, name: str, fmt: str) -> str:
    out = env.tmux(SOCK, "display-message", "-p", "-t", session_target(name), fmt).stdout
    return out.strip()


def dead_session(env: FleetEnv, name: str) -> None:
    """A session whose pane's process exited (remain-on-exit keeps it: health down)."""
    env.start(SOCK, name, ["sh", "-c", "exit 7"])
    wait_until(lambda: pane(env, name, "#{pane_dead}") == "1", timeout=10, message="dead pane")


def supervise(env: FleetEnv, *args: str, **kw: Any) -> CliResult:
    return env.cli("supervise", *args, **kw)


def lines(res: CliResult) -> dict[str, str]:
    out = {}
    for line in res.stdout.splitlines():
        if ": " in line and not line.startswith(" "):
            name, rest = line.split(": ", 1)
            out[name] = rest
    return out


def sup_state(env: FleetEnv) -> dict[str, Any]:
    path = env.state_dir / "lifecycle" / "supervise.json"
    return json.loads(path.read_text()) if path.exists() else {}


def write_state(env: FleetEnv, doc: dict[str, Any]) -> None:
    path = env.state_dir / "lifecycle" / "supervise.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"v": 1, **doc}))


def audits(env: FleetEnv) -> list[tuple[str, str, str, str | None]]:
    return [(a["action"], a["agent"], a["outcome"], a.get("surface")) for a in env.audit_lines()]


def real_ago(seconds: float) -> str:
    return format_ts(datetime.now(UTC) - timedelta(seconds=seconds))


@pytest.mark.tmux
def test_down_agent_restarted_and_missing_one_started(fleet_env: FleetEnv) -> None:
    env = fleet_env
    env.write_roster([stub_agent("alpha"), stub_agent("beta"), stub_agent("gamma")])
    dead_session(env, "alpha")
    env.stub(SOCK, "gamma")  # healthy: left alone
    gamma_pid = env.stub_pid(SOCK, "gamma")
    res = supervise(env, "--once")
    assert res.rc == 0, res
    said = lines(res)
    assert said["alpha"].startswith("restarted (down: ")
    assert "running (socket mosaic-fleet, pane %" in said["alpha"]
    assert "beta" not in said and "gamma" not in said  # beta waits: one restart a minute
    env.wait_heartbeat("alpha")
    assert pane(env, "alpha", "#{pane_dead}") == "0"
    assert env.stub_pid(SOCK, "gamma") == gamma_pid
    assert audits(env) == [
        ("restart", "alpha", "started", "supervise"),
        ("restart", "alpha", "running", "supervise"),
    ]
    saved = sup_state(env)
    assert len(saved["agents"]["alpha"]["restarts"]) == 1 and saved["last_restart"]
    # verbose says who waits; a minute later (seeded) beta is started (no session: `start`)
    res = supervise(env, "--once", "--verbose")
    assert "beta: waits (missing its session): fleet limit, one restart a minute" in res.stdout
    assert not has_session(env, "beta")
    write_state(env, {"agents": {}, "last_restart": real_ago(61)})
    res = supervise(env, "--once")
    assert res.rc == 0, res
    assert lines(res)["beta"].startswith("started (missing its session): running")
    env.wait_heartbeat("beta")
    assert audits(env)[-2:] == [
        ("start", "beta", "started", "supervise"),
        ("start", "beta", "running", "supervise"),
    ]


def old_heartbeat(env: FleetEnv, name: str, age_s: float) -> None:
    """A heartbeat written `age_s` ago by a runtime that then went silent."""
    path = env.heartbeat_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    hb = {
        "v": 1,
        "tenant_id": "acme",
        "host": "h1",
        "agent": name,
        "seq": 5,
        "ts": real_ago(age_s),
        "interval_s": 10,
        "state": "busy",
        "runtime": "stub",
    }
    path.write_text(json.dumps(hb))


@pytest.mark.tmux
def test_unresponsive_restarted_only_past_the_threshold(fleet_env: FleetEnv) -> None:
    env = fleet_env
    env.write_roster([stub_agent("alpha")])
    env.start(SOCK, "alpha", ["sleep", "600"])  # silent: no heartbeat of its own
    old_heartbeat(env, "alpha", 200)
    assert env.ps_json()["agents"][0]["health"] == "unresponsive"
    res = supervise(env, "--once", "--verbose", "--unresponsive-after", "300")
    assert res.rc == 0, res
    assert re.search(r"^alpha: waits \(unresponsive for 20\d s \(last heartbeat ", res.stdout)
    assert res.stdout.rstrip().endswith(": restarted once unresponsive for 300 s")
    assert pane(env, "alpha", "#{pane_current_command}") == "sleep"
    assert audits(env) == []
    res = supervise(env, "--once", "--unresponsive-after", "120")
    assert res.rc == 0, res
    assert lines(res)["alpha"].startswith("restarted (unresponsive for 20")
    wait_until(
        lambda: (hb := env.heartbeat("alpha")) and hb["seq"] != 5,
        timeout=10,
        message="the restarted stub's heartbeat",
    )
    assert [a[:3] for a in audits(env)] == [
        ("restart", "alpha", "started"),
        ("restart", "alpha", "running"),
    ]


@pytest.mark.tmux
def test_ephemeral_and_stopped_agents_never(fleet_env: FleetEnv) -> None:
    env = fleet_env
    env.write_roster([stub_agent("alpha"), stub_agent("temp", lifecycle="ephemeral")])
    assert env.cli("up").rc == 0
    env.wait_heartbeat("alpha")
    assert env.cli("stop", "alpha", "--yes").rc == 0
    # ps shows the stop on purpose instead of a missing session that would cry wolf
    rec = {a["name"]: a for a in env.ps_json()["agents"]}
    assert rec["alpha"]["drift"] == ["stopped"]
    assert rec["alpha"]["health"] == "down"
    assert rec["temp"]["drift"] == []
    before = len(env.audit_lines())
    res = supervise(env, "--once")
    assert res.rc == 0, res
    assert lines(res) == {
        "alpha": "left alone: stopped on purpose by "
        f"{lines_user()} at {json_ts(env, 'alpha')}; 'fleet-tui up alpha' starts it "
        "(missing its session)"
    }
    assert not has_session(env, "alpha") and not has_session(env, "temp")
    assert len(env.audit_lines()) == before
    # the table says it too
    table = env.cli("ps")
    assert "stopped" in table.stdout and "missing" not in table.stdout


def lines_user() -> str:
    from fleet_tui.sources.systemd import current_user

    return current_user()


def json_ts(env: FleetEnv, name: str) -> str:
    data = json.loads((env.state_dir / "lifecycle" / "stopped.json").read_text())
    return str(data["agents"][name]["ts"])


class AttachedClient:
    """A human's tmux client attached to the agent's session, on a pseudo-terminal."""

    def __init__(self, env: FleetEnv, name: str) -> None:
        self.master, slave = pty.openpty()
        sock = str(env.socket_dir / SOCK)
        self.proc = subprocess.Popen(
            ["tmux", "-S", sock, "attach-session", "-t", f"={name}"],
            env={**env.env, "TERM": "xterm"},
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        os.close(self.master)


@pytest.mark.tmux
def test_attached_agent_left_alone(fleet_env: FleetEnv) -> None:
    env = fleet_env
    env.write_roster([stub_agent("alpha")])
    dead_session(env, "alpha")
    client = AttachedClient(env, "alpha")
    try:
        wait_until(
            lambda: pane(env, "alpha", "#{session_attached}") == "1",
            timeout=10,
            message="a client attached",
        )
        res = supervise(env, "--once")
        assert res.rc == 0, res
        assert lines(res)["alpha"].startswith("left alone: attached, 1 client (down: ")
        assert pane(env, "alpha", "#{pane_dead}") == "1"
        assert audits(env) == []
    finally:
        client.close()
    wait_until(
        lambda: pane(env, "alpha", "#{session_attached}") == "0", timeout=10, message="detached"
    )
    res = supervise(env, "--once")
    assert lines(res)["alpha"].startswith("restarted (down: ")


@pytest.mark.tmux
def test_crash_loop_restarted_then_held_then_released_by_up(fleet_env: FleetEnv) -> None:
    env = fleet_env
    env.write_roster([{"name": "crashy", "role": "coder", "command": CRASH}])
    res = env.cli("up")
    assert res.rc == 1 and "exit status 3" in res.stdout
    # within the limits: restarted, and said to be down again with its last words
    res = supervise(env, "--once")
    assert res.rc == 1, res  # --once: a restarted agent that did not come up
    said = lines(res)["crashy"]
    assert said.startswith("restarted (down: ")
    # (tmux 3.3a now and then misses the exit of a command that exits at once: the status is
    # then read from the unreaped process, control.lifecycle.zombie_status)
    assert "down again: the command exited at once (exit status 3) | config broken" in said, said
    assert ("restart", "crashy", "down", "supervise") in audits(env)
    # three restarts in the last 15 minutes (the last more than a minute ago): held
    write_state(
        env,
        {
            "agents": {"crashy": {"restarts": [real_ago(600), real_ago(300), real_ago(90)]}},
            "last_restart": real_ago(90),
        },
    )
    pid_before = pane(env, "crashy", "#{pane_id}")
    res = supervise(env, "--once")
    assert res.rc == 0, res
    assert lines(res)["crashy"].startswith("held: 3 restarts in 15 min (down: ")
    assert res.stdout.rstrip().endswith("'fleet-tui up crashy' releases it")
    assert pane(env, "crashy", "#{pane_id}") == pid_before  # not restarted
    held = sup_state(env)["agents"]["crashy"]["held"]
    assert held["restarts"] == 3 and held["reason"] == "3 restarts in 15 min"
    assert audits(env)[-1] == ("restart", "crashy", "held", "supervise")
    # ps --json: drift `held` and the warning
    data = env.ps_json()
    assert data["agents"][0]["drift"] == ["pane_dead", "held"]
    assert (
        f"crashy held by supervise since {held['since']}: 3 restarts in 15 min; "
        "'fleet-tui up crashy' releases it"
    ) in data["warnings"]
    # held: not restarted again, and said once (the loop's later passes say nothing)
    write_state(env, {**sup_state(env), "last_restart": real_ago(120)})
    res = supervise(env, "--once")
    assert lines(res)["crashy"].startswith("left alone: held since ")
    assert pane(env, "crashy", "#{pane_id}") == pid_before
    # the operator acts: `up crashy` releases the hold (and its restart count)
    res = env.cli("up", "crashy")
    assert "crashy" not in sup_state(env)["agents"]
    assert "held" not in env.ps_json()["agents"][0]["drift"]


@pytest.mark.tmux
def test_release_flag(fleet_env: FleetEnv) -> None:
    env = fleet_env
    env.write_roster([stub_agent("alpha")])
    hold = {"since": real_ago(10), "reason": "3 restarts in 15 min", "restarts": 3}
    write_state(env, {"agents": {"alpha": {"held": hold}}})
    res = supervise(env, "--release", "alpha")
    assert res.rc == 0, res
    assert res.stdout == "alpha: released\n"
    assert sup_state(env)["agents"] == {}
    assert ("restart", "alpha", "released", "cli") in audits(env)
    assert supervise(env, "--release", "alpha").stdout == "alpha: was not held\n"
    assert supervise(env, "--release", "nobody").rc == 3
    # an operator's restart releases a hold too
    write_state(env, {"agents": {"alpha": {"held": hold}}})
    assert "held" in env.ps_json()["agents"][0]["drift"]
    res = env.cli("restart", "alpha", "--yes")
    assert res.rc == 0, res
    assert sup_state(env)["agents"] == {}
    assert "held" not in env.ps_json()["agents"][0]["drift"]


@pytest.mark.tmux
def test_dry_run_changes_nothing(fleet_env: FleetEnv) -> None:
    env = fleet_env
    env.write_roster([stub_agent("alpha"), stub_agent("beta")])
    dead_session(env, "alpha")
    before = pane(env, "alpha", "#{pane_id}")
    res = supervise(env, "--dry-run")
    assert res.rc == 0, res
    said = lines(res)
    assert said["alpha"].startswith("would restart (down: ")
    assert said["beta"].startswith("waits (missing its session): fleet limit")
    assert pane(env, "alpha", "#{pane_id} #{pane_dead}") == f"{before} 1"
    assert not has_session(env, "beta")
    assert not (env.state_dir / "lifecycle" / "supervise.json").exists()
    assert env.audit_lines() == []


@pytest.mark.tmux
def test_loop_until_sigterm_and_a_failing_pass_is_one_line(fleet_env: FleetEnv) -> None:
    env = fleet_env
    env.write_roster([stub_agent("alpha")])
    # no tmux on PATH: every pass fails, one line each, and the loop goes on
    full = {**env.env, "PATH": "/nonexistent"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet_tui", "supervise", "--every", "0.2"],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(env.base),
    )
    try:
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    failed = [x for x in err.splitlines() if x]
    assert len(failed) >= 2
    assert all(x.startswith("supervise: pass failed: ") for x in failed), err
    assert "Traceback" not in err


@pytest.mark.tmux
def test_loop_restarts_and_stops_on_sigint(fleet_env: FleetEnv) -> None:
    env = fleet_env
    env.write_roster([stub_agent("alpha")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet_tui", "supervise", "--every", "0.5"],
        env=env.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(env.base),
    )
    try:
        env.wait_heartbeat("alpha", timeout=20)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.startswith("alpha: started (missing its session): running")
    assert out.count("alpha:") == 1, out  # one action; later passes find it healthy


@pytest.mark.tmux
def test_supervise_state_file_corrupt(fleet_env: FleetEnv) -> None:
    env = fleet_env
    env.write_roster([stub_agent("alpha")])
    path = env.state_dir / "lifecycle" / "supervise.json"
    path.parent.mkdir(parents=True)
    path.write_text("{nope")
    res = supervise(env, "--once")
    assert res.rc == 2
    assert res.stderr.strip() == (
        f"fleet-tui: {path}: not a supervise state file (JSON with 'agents')"
    )
    # ps still works, and says it once
    data = env.ps_json()
    assert f"{path}: not a supervise file: agents held by supervise unknown" in data["warnings"]


def test_readme_supervise_unit_verifies(tmp_path: Any) -> None:
    """The README's systemd --user unit for `supervise` is one systemd accepts."""
    import shutil

    from fleet_tui.control.units import verify

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    m = re.search(r"fleet-tui-supervise\.service` \(.*?```ini\n(.*?)```", readme, re.S)
    assert m, "README has no supervise unit"
    text = m.group(1)
    assert "ExecStart=/home/you/.local/bin/fleet-tui supervise --every 30" in text
    exe = shutil.which("fleet-tui") or str(Path(sys.executable).with_name("fleet-tui"))
    unit = tmp_path / "fleet-tui-supervise.service"
    unit.write_text(text.replace("/home/you/.local/bin/fleet-tui", exe))
    got = verify([unit])
    if got is None:
        unavailable("systemd-analyze is not installed (apt package 'systemd')")
    assert got[0], got[1]


@pytest.mark.tmux
def test_passes_with_an_injected_clock_restart_wait_then_hold(fleet_env: FleetEnv) -> None:
    """One loop's passes in-process, `now` moved by hand: the fleet's minute, the agent's three
    restarts in 15 minutes, then held; "not startable" is said once, not every pass."""
    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.control.supervise import run_pass
    from fleet_tui.service.collector import FleetCollector

    env = fleet_env
    env.write_roster(
        [
            {"name": "crashy", "role": "coder", "runtime": "other", "command": CRASH},
            {"name": "board", "role": "board"},  # no command: not startable
        ]
    )
    config = FleetConfig.from_flags()
    collector = FleetCollector(config)
    said: dict[str, str] = {}
    t0 = datetime.now(UTC)

    def at(seconds: float) -> list[str]:
        out: list[str] = []
        run_pass(config, collector.collect, now=t0 + timedelta(seconds=seconds), said=said,
                 settle_s=3.0, out=out.append)  # fmt: skip
        return out

    first = at(0)
    assert first[0] == "board: not startable: no command in the roster (missing its session)"
    assert first[1].startswith("crashy: started (missing its session): down again: ")
    assert at(30) == []  # the fleet's minute: crashy waits (said with -v); board not again
    assert at(61)[0].startswith("crashy: restarted (down: ")
    assert at(122)[0].startswith("crashy: restarted (down: ")
    held = at(183)
    assert held == [
        "crashy: held: 3 restarts in 15 min (down: pane's process exited); "
        "'fleet-tui up crashy' releases it"
    ]
    assert at(300) == []  # held, said once
    assert [a[:3] for a in audits(env) if a[2] in ("started", "held")] == [
        ("start", "crashy", "started"),
        ("restart", "crashy", "started"),
        ("restart", "crashy", "started"),
        ("restart", "crashy", "held"),
    ]
    # 15 minutes after the first restarts the hold still stands: only an operator releases it
    assert at(2000) == []
    drift = {a["name"]: a["drift"] for a in env.ps_json()["agents"]}
    assert drift == {"board": ["missing_session"], "crashy": ["pane_dead", "held"]}


@pytest.mark.tmux
def test_alerts_run_delivers_a_held_agent_to_a_webhook(fleet_env: FleetEnv) -> None:
    """A rule `when: {drift: [held]}` to a webhook (README's alerts example): `alerts run`
    delivers the hold with nothing of supervise's own."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    env = fleet_env
    posts: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env.write_roster([{"name": "crashy", "role": "coder", "command": CRASH}])
        alerts = env.config_home / "mosaic" / "alerts.yaml"
        alerts.write_text(
            "version: 1\nrules:\n  - name: agent-held\n    when: {drift: [held]}\n"
            "    to: [ops]\nchannels:\n"
            f'  - {{name: ops, type: webhook, url: "http://127.0.0.1:{server.server_port}/h"}}\n'
        )
        hold = {"since": real_ago(5), "reason": "3 restarts in 15 min", "restarts": 3}
        write_state(env, {"agents": {"crashy": {"held": hold}}})
        res = env.cli("alerts", "run", "--once")
        assert res.rc == 0, res
        assert [(p["status"], p["rule"], p["agent"]) for p in posts] == [
            ("firing", "agent-held", "crashy")
        ]
    finally:
        server.shutdown()
        server.server_close()
