"""Claude Code's session status files as a state source (sources/claude_sessions.py): real files
in a temporary CLAUDE_CONFIG_DIR naming real processes, in real tmux panes on a private socket.

What an operator notices: a Claude agent without hooks shows `waiting_inputˢ` as soon as the
file says so (not after the 60 s idle hook), never healthy; a heartbeat still wins; a file left
by a dead process or naming a reused pid changes nothing; a broken file breaks nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import FleetEnv, wait_until

from fleet_tui.adapters.claude import claude_event
from fleet_tui.config.fleet import FleetConfig
from fleet_tui.core.join import build_snapshot, inference_targets
from fleet_tui.model.records import (
    AgentRecord,
    AgentState,
    FleetSnapshot,
    Heartbeat,
    InferredState,
    StateSource,
    TreeSample,
)
from fleet_tui.present.columns import COLUMNS, question, shown_state
from fleet_tui.service.collector import FleetCollector
from fleet_tui.sources import claude_sessions as cs
from fleet_tui.sources.claude_sessions import ClaudeSessionFiles, alive, pane_states, parse_session
from fleet_tui.sources.procs import Member, read_stat
from fleet_tui.sources.spool import HeartbeatSpool
from fleet_tui.testing.fleets import agent, beats, heartbeat, inputs, pane, roster, socket

SOCK = "mosaic-fleet"
PROMPT = (
    "printf '● Bash(alembic upgrade head)\\n│ Do you want to proceed?\\n│ ❯ 1. Yes\\n│   2. No\\n'"
)


def start_ticks(pid: int) -> int:
    st = read_stat(pid)
    assert st is not None, f"no process {pid}"
    return st.start_ticks


def record(pid: int, status: str = "waiting", **extra: Any) -> dict[str, Any]:
    """A current-generation record as Claude Code 2.1.2xx writes it (procStart a string)."""
    return {
        "pid": pid,
        "sessionId": "0b6c2f1e-5a7d-4c39-9a51-1f2e3d4c5b6a",
        "cwd": "/w/app",
        "startedAt": 1781290000000,
        "procStart": str(start_ticks(pid)),
        "version": "2.1.278",
        "peerProtocol": 1,
        "kind": "interactive",
        "entrypoint": "cli",
        "status": status,
        "statusUpdatedAt": 1781290001000,
        "updatedAt": 1781290001000,
        **extra,
    }


def write(folder: Path, pid: int, data: dict[str, Any] | str) -> Path:
    path = folder / "sessions" / f"{pid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


# -- the file, read alone --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "state", "reason"),
    [
        ("waiting", AgentState.WAITING_INPUT, "claude session file: waiting"),
        ("busy", AgentState.BUSY, "claude session file: busy"),
        ("idle", AgentState.IDLE, "claude session file: idle"),
        # turn over, a background shell still runs: the agent is at its prompt, not busy
        ("shell", AgentState.IDLE, "claude session file: shell (idle, a background shell runs)"),
        (" Busy ", AgentState.BUSY, "claude session file: busy"),
    ],
)
def test_each_status_means_a_fleet_state(status: str, state: AgentState, reason: str) -> None:
    raw = json.dumps({"pid": 77, "procStart": "12345", "status": status, "future": [1]})
    got = parse_session(raw.encode(), 77)
    assert got is not None and (got.state, got.reason, got.proc_start) == (state, reason, 12345)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"pid": 77, "procStart": "12345", "status": "thinking"}',  # a status of a later build
        b'{"pid": 77, "procStart": "12345"}',  # headless sessions write no status
        b'{"pid": 77, "status": "busy"}',  # no pid guard: cannot be trusted
        b'{"pid": 77, "procStart": "Tue Dec  1 09:00:00 2026", "status": "busy"}',  # not ticks
        b'{"pid": 78, "procStart": "12345", "status": "busy"}',  # names another pid
        b'{"session_id": "x", "cwd": "/w"}',  # the legacy generation
        b'{"pid": 77, "procStart": "12345", "status": "bu',  # caught mid-write
        b'{"pid": 77, "procStart": "\\u00b2", "status": "busy"}',  # a digit int() refuses
        b'{"pid": 77, "procStart": "' + b"9" * 5000 + b'", "status": "busy"}',  # too long for int
        b'{"pid": 77, "procStart": 12.5, "status": "busy"}',
        b'["busy"]',
        b"\xff\xfe",
    ],
)
def test_a_record_that_cannot_be_trusted_is_ignored(raw: bytes) -> None:
    assert parse_session(raw, 77) is None


def test_the_pid_guard_needs_the_same_live_process(sleeper: subprocess.Popen[bytes]) -> None:
    ok = parse_session(json.dumps(record(sleeper.pid)).encode(), sleeper.pid)
    assert ok is not None and alive(ok)
    reused = parse_session(
        json.dumps(record(sleeper.pid, procStart=str(start_ticks(sleeper.pid) + 1))).encode(),
        sleeper.pid,
    )
    assert reused is not None and not alive(reused)  # same pid, another process
    sleeper.kill()
    sleeper.wait()
    assert not alive(ok)  # the process is gone, its file is not


def test_a_pane_gets_the_record_of_its_process_nearest_the_pane(tmp_path: Path) -> None:
    outer = subprocess.Popen(["sleep", "600"])
    inner = subprocess.Popen(["sleep", "600"])  # as a `claude -p` its shell ran would be
    try:
        sessions = {
            p.pid: parse_session(json.dumps(record(p.pid, s)).encode(), p.pid)
            for p, s in ((outer, "waiting"), (inner, "busy"))
        }
        members = {
            outer.pid: Member(100, start_ticks(outer.pid), 1),
            inner.pid: Member(100, start_ticks(inner.pid), 4),
        }
        got = pane_states({k: v for k, v in sessions.items() if v}, members)
        assert {k: v.state for k, v in got.items()} == {100: AgentState.WAITING_INPUT}
        # a process outside every pane's tree gives no pane anything
        assert pane_states({k: v for k, v in sessions.items() if v}, {}) == {}
    finally:
        for p in (outer, inner):
            p.kill()
            p.wait()


def test_files_are_opened_only_when_they_change_and_junk_is_skipped(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "claude"
    pid = sleeper.pid
    path = write(cfg, pid, record(pid, "busy"))
    write(cfg, 4_000_000, "{not json")  # another process's broken file: not ours to read
    (cfg / "sessions" / "pid-12.json").write_text('{"session_id": "x"}')  # legacy generation
    (cfg / "sessions" / "99.json").mkdir()  # not a file
    big = write(cfg, 98, "x" * (cs.MAX_BYTES + 1))
    files = ClaudeSessionFiles([tmp_path / "missing", cfg])  # a folder that is not there
    first = files.read()
    assert {k: v.status for k, v in first.items()} == {pid: "busy"}
    assert files.files_read == 2  # the record and the broken one; the big one is not opened
    # while fresh, a file is opened on each read (a same-size rewrite in the same clock tick
    # would keep its stat); once settled, only a change opens it again
    files.read()
    assert files.files_read == 4
    monkeypatch.setattr(cs, "SETTLED_NS", 0)
    files.read()
    opened, listed = files.files_read, files.folders_listed
    for _ in range(3):
        assert {k: v.status for k, v in files.read().items()} == {pid: "busy"}
    assert (files.files_read, files.folders_listed) == (opened, listed)
    path.write_text(json.dumps(record(pid, "waiting")))
    assert files.read()[pid].state is AgentState.WAITING_INPUT
    assert (files.files_read, files.folders_listed) == (opened + 1, listed)
    # a file gone or added: the folder is listed again; only the pids asked for are read
    big.unlink()
    assert files.read(pids={pid + 1}) == {}
    assert (files.files_read, files.folders_listed) == (opened + 1, listed + 1)


def test_a_fresh_file_caught_mid_write_keeps_the_last_good_record(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    cfg = tmp_path / "claude"
    path = write(cfg, sleeper.pid, record(sleeper.pid, "waiting"))
    files = ClaudeSessionFiles([cfg])
    assert files.read()[sleeper.pid].status == "waiting"
    path.write_text('{"pid": ' + str(sleeper.pid) + ', "status": "bu')
    assert files.read()[sleeper.pid].status == "waiting"


# -- the join: where the state comes from ---------------------------------------------------


def test_the_join_puts_the_session_file_below_heartbeats_and_above_the_pane() -> None:
    waiting = InferredState(state=AgentState.WAITING_INPUT, reason="claude session file: waiting")
    busy = InferredState(state=AgentState.BUSY, reason="claude session file: busy")
    rows = [
        pane("declared", pid=11, command="sleep"),  # roster runtime claude
        pane("detected", pid=12, command="sh"),  # a claude process under the pane, no roster
        pane("beating", pid=13, command="claude"),  # hooks installed
        pane("codex", pid=14, command="codex"),  # a codex whose shell ran `claude -p`
        pane("drifted", pid=15, command="codex"),  # the roster says claude, codex runs
    ]
    fleet = inputs(
        socket(SOCK, *rows),
        roster=roster(
            agent("declared", runtime="claude"),
            agent("beating", runtime="claude"),
            agent("codex", runtime="codex"),
            agent("drifted", runtime="claude"),
        ),
        heartbeats=beats(heartbeat("beating", state=AgentState.IDLE, via="hook:claude")),
        processes={
            12: TreeSample(99, "claude", 0.0, 0, 2),
            14: TreeSample(98, "codex", 0.0, 0, 3),
            15: TreeSample(97, "codex", 0.0, 0, 3),
        },
        claude_sessions={11: waiting, 12: busy, 13: waiting, 14: busy, 15: busy},
    )
    snap = build_snapshot(fleet)
    got = {a.name: (a.state_source, shown_state(a)[0]) for a in snap.agents}
    assert got["declared"] == (StateSource.SESSION, AgentState.WAITING_INPUT)
    assert got["detected"] == (StateSource.SESSION, AgentState.BUSY)
    assert got["beating"] == (StateSource.HOOK, AgentState.IDLE)  # the heartbeat wins
    for name in ("codex", "drifted"):  # not Claude agents: their panes are guessed
        assert got[name][0] is StateSource.INFERRED, name
    assert all(a.health.value != "healthy" for a in snap.agents if a.name != "beating")
    # the pane of a Claude agent the file says is busy is not read for a guess; a waiting one
    # is (what it asks is on its screen)
    assert {pane_id for _, pane_id in inference_targets(fleet)} == {
        rows[0].pane_id,
        rows[3].pane_id,
        rows[4].pane_id,
    }


# -- in the fleet: real panes, the collector, ps ----------------------------------------------


def _pid_in_pane(env: FleetEnv, session: str, comm: str) -> int:
    def find() -> int | None:
        todo = [env.pane_pid(SOCK, session)]
        while todo:
            pid = todo.pop(0)
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                    return pid
                todo += [
                    int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                ]
            except OSError:
                continue
        return None

    return wait_until(find, timeout=5, message=f"{comm} in {session}'s pane")


def _agent(snap: FleetSnapshot, name: str) -> AgentRecord:
    return next(a for a in snap.agents if a.name == name)


def _state_cells(r: AgentRecord) -> tuple[str, str]:
    cells = {c.key: c.cell(r) for c in COLUMNS}
    return cells["state"], cells["src"]


@pytest.mark.tmux
def test_a_claude_agent_without_hooks_shows_the_session_files_state_and_a_heartbeat_wins(
    fleet_env: FleetEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = fleet_env
    cfg = tmp_path / "claude"
    env.write_roster([{"name": "planner", "role": "board", "runtime": "claude"}])
    env.start(SOCK, "planner", ["sh", "-c", f"{PROMPT}; exec sleep 600"])
    pid = _pid_in_pane(env, "planner", "sleep")
    files = ClaudeSessionFiles([cfg])
    collector = FleetCollector(FleetConfig.from_flags(), runner=env.runner, claude_sessions=files)

    # no file: the pane is guessed from its screen
    snap = wait_until(
        lambda: (s := collector.collect()) and _agent(s, "planner").inferred and s,
        message="planner inferred",
    )
    assert _agent(snap, "planner").state_source is StateSource.INFERRED

    # the file says busy: shown at once, marked as the session file's, never healthy, and the
    # pane is no longer read for a guess
    path = write(cfg, pid, record(pid, "busy", unknownField={"a": 1}))
    captures = collector.captures_made
    a = _agent(collector.collect(), "planner")
    assert (a.state_source, a.inferred and a.inferred.state) == (
        StateSource.SESSION,
        AgentState.BUSY,
    )
    assert a.health.value == "unknown" and a.heartbeat is None
    assert _state_cells(a) == ("busyˢ", "session")
    # waiting: the operator sees it needs them, and what it asks (read off the pane)
    path.write_text(json.dumps(record(pid, "waiting")))
    a = _agent(collector.collect(), "planner")
    assert shown_state(a) == (AgentState.WAITING_INPUT, StateSource.SESSION)
    assert _state_cells(a) == ("★ waiting_inputˢ", "session")
    assert question(a) == "Do you want to proceed?"
    assert collector.captures_made >= captures
    # heartbeat-only polls read it too (cheaply: a settled file is not opened again)
    path.write_text(json.dumps(record(pid, "shell")))
    a = _agent(collector.collect(heartbeats_only=True), "planner")
    assert (a.inferred and a.inferred.state, a.state_source) == (
        AgentState.IDLE,
        StateSource.SESSION,
    )
    monkeypatch.setattr(cs, "SETTLED_NS", 0)
    collector.collect()
    opened = files.files_read
    for _ in range(3):
        collector.collect()
        collector.collect(heartbeats_only=True)
    assert files.files_read == opened

    # a hook's heartbeat wins over the file
    HeartbeatSpool(env.state_dir).write_heartbeat(
        Heartbeat(
            tenant_id="acme",
            host="h1",
            agent="planner",
            seq=1,
            ts=datetime.now(UTC),
            interval_s=10,
            state=AgentState.BUSY,
            detail="tool: Bash",
            runtime="claude",
            pid=pid,
            via="hook:claude",
        )
    )
    a = _agent(collector.collect(), "planner")
    assert (a.state_source, a.inferred, a.health.value) == (StateSource.HOOK, None, "healthy")
    assert _state_cells(a) == ("busyʰ", "hook")


@pytest.mark.tmux
def test_a_file_of_a_dead_or_other_process_and_a_broken_file_change_nothing(
    fleet_env: FleetEnv, tmp_path: Path
) -> None:
    env = fleet_env
    cfg = tmp_path / "claude"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # no roster: the runtime is known from the process (named `claude`), as Claude Code is
    claude = bin_dir / "claude"
    sleep = shutil.which("sleep")
    assert sleep is not None
    claude.symlink_to(sleep)
    env.start(SOCK, "worker", ["sh", "-c", f"{claude} 600; sleep 600"])
    env.start(SOCK, "reused", ["sh", "-c", f"{claude} 600; sleep 600"])
    env.start(SOCK, "broken", ["sh", "-c", f"{claude} 600; sleep 600"])
    worker = _pid_in_pane(env, "worker", "claude")
    reused = _pid_in_pane(env, "reused", "claude")
    broken = _pid_in_pane(env, "broken", "claude")
    write(cfg, worker, record(worker, "waiting"))
    write(cfg, reused, record(reused, "waiting", procStart=str(start_ticks(reused) + 7)))
    write(cfg, broken, '{"pid": ' + str(broken) + ', "procStart": [], "status": 5}')
    collector = FleetCollector(
        FleetConfig.from_flags(), runner=env.runner, claude_sessions=ClaudeSessionFiles([cfg])
    )
    snap = collector.collect()
    assert _agent(snap, "worker").state_source is StateSource.SESSION
    assert _agent(snap, "worker").runtime == "claude"
    for name in ("reused", "broken"):  # guessed from the pane as before
        assert _agent(snap, name).state_source is StateSource.INFERRED, name

    # the process dies and leaves its file (a crash skips Claude Code's cleanup); on the next
    # heartbeat-only poll the tree is the last full poll's, and the guard still refuses it
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{worker}").exists(), message="worker's claude gone")
    a = _agent(collector.collect(heartbeats_only=True), "worker")
    assert a.state_source is not StateSource.SESSION
    a = _agent(collector.collect(), "worker")
    assert a.state_source is StateSource.INFERRED


@pytest.mark.tmux
def test_ps_json_shows_the_session_files_state_from_claude_config_dir(
    fleet_env: FleetEnv, tmp_path: Path
) -> None:
    env = fleet_env
    cfg = tmp_path / "claude"
    env.write_roster([{"name": "planner", "role": "board", "runtime": "claude"}])
    env.start(SOCK, "planner", ["sh", "-c", "exec sleep 600"])
    pid = _pid_in_pane(env, "planner", "sleep")
    write(cfg, pid, record(pid, "waiting"))
    dirs = {"CLAUDE_CONFIG_DIR": f"{tmp_path / 'other'},{cfg}"}  # several folders, commas
    data = env.ps_json(env=dirs)
    (a,) = [x for x in data["agents"] if x["name"] == "planner"]
    assert a["state_source"] == "session"
    assert a["inferred"] == {"state": "waiting_input", "reason": "claude session file: waiting"}
    assert a["health"] == "unknown" and a["heartbeat"] is None
    res = env.cli("ps", env={**dirs, "COLUMNS": "120"})
    line = next(x for x in res.stdout.splitlines() if x.startswith("planner"))
    assert "★ waiting_inputˢ" in line and "unknown" in line


# -- the hook adapter: Notification ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "message", "detail"),
    [
        (
            "permission_prompt",
            "Claude needs your permission to use Bash",
            "permission prompt: Claude needs your permission to use Bash",
        ),
        ("elicitation_dialog", "Which database?", "question for the operator: Which database"),
        ("elicitation_dialog", None, "question for the operator"),
    ],
)
def test_a_notification_that_needs_the_operator_is_waiting_input_with_its_message(
    kind: str, message: str | None, detail: str
) -> None:
    payload: dict[str, object] = {"hook_event_name": "Notification", "notification_type": kind}
    if message is not None:
        payload["message"] = message
    event = claude_event(payload)
    assert event is not None and (event.state, event.detail) == ("waiting_input", detail)
    idle = claude_event({**payload, "notification_type": "idle_prompt"})
    assert idle is not None and idle.state == "idle"


def test_the_detail_screen_explains_a_state_from_the_session_file() -> None:
    """`enter` on such an agent: the detail names the source (it once raised KeyError)."""
    from fleet_tui.model.records import InferredState, StateSource
    from fleet_tui.testing.fleets import big_snapshot
    from fleet_tui.ui.screens.detail import summary_text

    base = big_snapshot(1).agents[0]
    r = base.model_copy(
        update={
            "heartbeat": None,
            "state_source": StateSource.SESSION,
            "inferred": InferredState(
                state=AgentState.WAITING_INPUT, reason="claude session file: waiting"
            ),
        }
    )
    text = summary_text(r).plain
    assert "waiting_inputˢ — claude session file: waiting" in text
    assert "from Claude Code's session file" in text


def test_a_gateway_row_with_a_source_this_version_does_not_know_keeps_its_state() -> None:
    from fleet_tui.remote.client import _agent_data
    from fleet_tui.testing.fleets import big_snapshot

    row = json.loads(big_snapshot(1).agents[0].model_dump_json())
    row["state_source"] = "telepathy"  # a newer host's value
    kept = _agent_data(row)
    assert isinstance(kept, dict) and kept["state_source"] is None
    assert kept["heartbeat"]["state"] == row["heartbeat"]["state"]
