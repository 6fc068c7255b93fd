"""The `fleet-tui` command line, run as a subprocess against REAL tmux servers and stub agents.

One fleet of stub agents is shared by the tests that only read it (`fleet`); the others build
their own world (conftest's `fleet_env`).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, FleetEnv, wait_until

from fleet_tui.model.records import PS_SCHEMA, Heartbeat
from fleet_tui.protocol.acks import message_hash
from fleet_tui.tmux import session_target

pytestmark = pytest.mark.tmux

SOCK = "mosaic-fleet"
# Lives until teardown reaps it: a fleet member must not expire on a wall clock in a slow run.
SLEEP = ["sleep", "infinity"]
STUBS = ("orchestrator", "enhancer", "coder0-0")
ROSTER = [
    {"name": "orchestrator", "role": "orchestrator", "alias": "Mos"},
    {"name": "enhancer", "role": "enhancer"},
    {"name": "coder0-0", "role": "coder"},
    {"name": "coder1", "role": "coder"},  # no session: missing_session
    {"name": "crasher", "role": "coder"},  # its command exits: pane_dead
]


@pytest.fixture(scope="module")
def fleet(module_env: FleetEnv) -> Iterator[FleetEnv]:
    """orchestrator, enhancer and coder0-0 run the stub (0.5 s heartbeats) on mosaic-fleet;
    coder1 has no session; crasher's pane died; `rogue` runs there outside the roster; the
    operator's own `shell` runs on the default socket."""
    env = module_env
    env.write_roster(ROSTER)
    for name in STUBS:
        env.stub(SOCK, name, wait=False, wrapped=name == "coder0-0")
    env.start(SOCK, "crasher", ["sh", "-c", "exit 3"])
    env.start(SOCK, "rogue", SLEEP, agent=False)
    env.start("default", "shell", SLEEP, agent=False)
    # Fully up before any test looks: every stub heartbeats, crasher's pane is dead (its
    # `sh` exits at once, but on a loaded machine "at once" is after a first `ps`).
    for name in STUBS:
        env.wait_heartbeat(name)
    wait_until(lambda: _pane_dead(env, "crasher"), message="crasher's pane to die")
    yield env


def _pane_dead(env: FleetEnv, name: str) -> bool:
    target = session_target(name)
    return env.tmux(SOCK, "display-message", "-p", "-t", target, "#{pane_dead}").stdout == "1\n"


def _agents(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in data["agents"]}


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _one_line(res: CliResult) -> str:
    assert len(res.stderr.splitlines()) == 1, res.stderr
    assert "Traceback" not in res.stderr
    return res.stderr


# -- ps ------------------------------------------------------------------------------------------


def test_ps_json_v1_on_a_live_fleet(fleet: FleetEnv) -> None:
    data = fleet.ps_json()
    assert data["schema"] == PS_SCHEMA == "mosaic.fleet.ps/v1"
    assert data["host"] == "h1"
    assert data["heartbeat_timeout_s"] == 30
    socks = {s["name"]: s for s in data["sockets"]}
    assert socks[SOCK]["state"] == "live"
    assert socks[SOCK]["sessions"] == 5
    assert socks["default"]["state"] == "live"

    agents = _agents(data)
    assert set(agents) == {*STUBS, "coder1", "crasher", "rogue"}  # not the operator's shell
    for rec in data["agents"]:
        assert (rec["tenant_id"], rec["host"]) == ("acme", "h1"), rec["name"]
    for name in STUBS:
        a = agents[name]
        assert a["health"] == "healthy", a
        assert a["in_roster"] and a["socket"] == SOCK and a["session"] == name
        assert a["process"]["runtime_detected"] == "stub"
        assert a["heartbeat"]["seq"] >= 0 and a["heartbeat"]["age_s"] < 30
        assert a["tmux"]["pane_dead"] is False and a["tmux"]["pane_id"].startswith("%")
        assert a["drift"] == []
        assert "timeout" in a["health_reason"]
    assert agents["orchestrator"]["alias"] == "Mos"
    assert agents["rogue"]["drift"] == ["not_in_roster"]
    assert agents["rogue"]["in_roster"] is False
    assert agents["coder1"]["health"] == "down"
    assert agents["coder1"]["drift"] == ["missing_session"]
    assert agents["coder1"]["tmux"] is None
    assert agents["crasher"]["health"] == "down"
    assert agents["crasher"]["drift"] == ["pane_dead"]
    assert agents["crasher"]["tmux"]["pane_dead"] is True


def test_ps_all_shows_the_operators_own_session(fleet: FleetEnv) -> None:
    hidden = _agents(fleet.ps_json())
    shown = _agents(fleet.ps_json("--all"))
    assert "shell" not in hidden
    shell = shown["shell"]
    assert shell["socket"] == "default" and shell["in_roster"] is False
    assert (shell["tenant_id"], shell["host"]) == ("acme", "h1")
    assert shell["drift"] == []  # not an agent: no roster drift for it
    assert "shell" not in fleet.cli("ps").stdout
    assert "shell" in fleet.cli("ps", "--all").stdout


def _who(data: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """Which agents a `ps --json` showed, where, and how they were (for failure messages)."""
    return sorted((a["name"], a["socket"], a["health"]) for a in data["agents"])


def test_ps_tenant_and_host_filters(fleet: FleetEnv) -> None:
    first = fleet.ps_json()
    everyone = len(first["agents"])
    assert everyone == 6, (_who(first), first["sockets"], first["warnings"])
    for args in (("--tenant", "acme"), ("--host", "h1"), ("--tenant", "acme", "--host", "h1")):
        data = fleet.ps_json(*args)
        assert len(data["agents"]) == everyone, (args, _who(data), _who(first), data["sockets"])
    assert fleet.ps_json("--tenant", "other")["agents"] == []
    assert fleet.ps_json("--host", "elsewhere")["agents"] == []
    for flag, value in (("--tenant", "other"), ("--host", "nosuch")):
        res = fleet.cli("ps", flag, value)
        assert res.rc == 0, res
        assert f"No agent matches {flag} '{value}'" in res.stdout
        assert "tenants: acme; hosts: h1" in res.stdout
        assert "demo" not in res.stdout  # a filter that matches nothing is not an empty fleet


def _run_on_pty(env: FleetEnv, args: list[str], extra: dict[str, str]) -> tuple[int, bytes]:
    """Run the CLI with stdout on a terminal (80x24), returning (rc, raw bytes written)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet_tui", *args],
        env={**env.env, **extra},
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.DEVNULL,
        cwd=str(env.base),
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=10), out


def test_ps_table_fits_80_columns_and_words_survive_no_color(fleet: FleetEnv) -> None:
    res = fleet.cli("ps", env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert res.rc == 0, res
    lines = res.stdout.splitlines()
    assert len(lines) >= 8
    too_long = [line for line in lines if len(line) > 80]
    assert too_long == [], too_long
    assert "\x1b" not in res.stdout
    for word in ("healthy", "down", "AGENT", "HEALTH"):
        assert word in res.stdout

    # On a terminal: colour by default, none with NO_COLOR, the status words either way.
    rc, colored = _run_on_pty(fleet, ["ps"], {"COLUMNS": "80"})
    assert rc == 0 and b"\x1b[" in colored
    rc, plain = _run_on_pty(fleet, ["ps"], {"COLUMNS": "80", "NO_COLOR": "1"})
    assert rc == 0
    assert b"\x1b" not in plain
    text = plain.decode()
    for word in ("healthy", "down"):
        assert word in text
    too_long = [line for line in text.splitlines() if len(line.rstrip("\r")) > 80]
    assert too_long == [], too_long


# -- probe ---------------------------------------------------------------------------------------


def test_probe_round_trip_timeout_and_not_found_are_audited(fleet: FleetEnv) -> None:
    before = len(fleet.audit_lines())

    res = fleet.cli("probe", "coder0-0", "--timeout", "5")
    assert res.rc == 0, res
    assert "answered in" in res.stdout and "ms" in res.stdout

    for name in ("nosuch", "coder0"):  # unknown, and a prefix of coder0-0
        res = fleet.cli("probe", name, "--timeout", "1")
        assert res.rc == 3, res
        assert name in _one_line(res)

    pid = fleet.stub_pid(SOCK, "coder0-0")
    os.kill(pid, signal.SIGSTOP)
    try:
        res = fleet.cli("probe", "coder0-0", "--timeout", "1")
        assert res.rc == 4, res
        assert "coder0-0" in _one_line(res)
        ping = json.loads((fleet.state_dir / "pings" / "coder0-0.json").read_text())
    finally:
        os.kill(pid, signal.SIGCONT)

    every = fleet.audit_lines()[before:]
    # each probe that pings is recorded BEFORE its ping (no record, no ping), then its outcome
    assert [x["outcome"] for x in every].count("started") == 2
    assert all(x["surface"] == "cli" for x in every)
    lines = [x for x in every if x["outcome"] != "started"]
    assert [(x["action"], x["agent"]) for x in lines] == [
        ("probe", "coder0-0"),
        ("probe", "nosuch"),
        ("probe", "coder0"),
        ("probe", "coder0-0"),
    ]
    outcomes = [x["outcome"] for x in lines]
    assert outcomes[0] == "answered" and outcomes[3] == "unanswered"
    # It gave up after its 1 s, timed on the probe's own clock: from the ping it wrote to the
    # audit line it wrote on giving up (both ms-truncated). A stopwatch around the whole CLI
    # would also time its start-up and exit, which took 6-8 s on a loaded 2-core machine while
    # the wait itself stayed at ~1.0 s.
    waited = (_ts(lines[3]["ts"]) - _ts(ping["ts"])).total_seconds()
    assert 0.999 <= waited < 5, waited
    assert len(set(outcomes)) == 3, outcomes  # not-found is its own outcome
    for x in lines:
        assert (x["tenant_id"], x["host"], x["uid"]) == ("acme", "h1", os.getuid())
        assert x["ts"].endswith("Z")


def test_probe_and_send_on_a_down_agent_say_so_at_once(fleet: FleetEnv) -> None:
    for args in (
        ["probe", "coder1", "--timeout", "60"],  # a wait would outlast the CLI's 30 s limit
        ["send", "coder1", "hello"],
        ["watch", "coder1"],
    ):
        res = fleet.cli(*args)
        assert res.rc == 3, res
        assert "agent 'coder1' is in the roster but has no session (down)" in _one_line(res)
    assert not (fleet.state_dir / "pings" / "coder1.json").exists()  # no ping into the void
    res = fleet.cli("probe", "crasher", "--timeout", "60")
    assert res.rc == 3, res
    assert "agent 'crasher': the process in its pane has exited (down)" in _one_line(res)


# -- messages typed into a stub ------------------------------------------------------------------


def _acks(env: FleetEnv, name: str) -> list[str]:
    hb = env.heartbeat(name)
    return list(hb["acks"]) if hb else []


def test_stub_acks_a_typed_message(fleet: FleetEnv) -> None:
    text = "-fix the flaky test: then report back"  # a leading '-' must not be a flag
    target = session_target("enhancer")
    fleet.tmux(SOCK, "send-keys", "-t", target, "-l", "--", text)
    fleet.tmux(SOCK, "send-keys", "-t", target, "Enter")
    wait_until(
        lambda: message_hash(text) in _acks(fleet, "enhancer"), message="the ack of the message"
    )
    hb = fleet.heartbeat("enhancer")
    assert hb is not None and hb["state"] == "busy"


def test_stub_acks_a_pasted_multiline_message_as_one(fleet: FleetEnv) -> None:
    text = "first line of the task\nsecond line\n  third, indented"
    before = _acks(fleet, "orchestrator")
    target = session_target("orchestrator")
    fleet.tmux(SOCK, "load-buffer", "-b", "ftmsg", "-", input=text)
    fleet.tmux(SOCK, "paste-buffer", "-p", "-r", "-d", "-b", "ftmsg", "-t", target)
    fleet.tmux(SOCK, "send-keys", "-t", target, "Enter")
    acks = wait_until(
        lambda: (a := _acks(fleet, "orchestrator")) and message_hash(text) in a and a,
        message="the ack of the pasted message",
    )
    assert [a for a in acks if a not in before] == [message_hash(text)]
    for part in text.splitlines():
        assert message_hash(part) not in acks


# -- heartbeat -----------------------------------------------------------------------------------


def test_heartbeat_writes_v1_with_acks_and_growing_seq(fleet_env: FleetEnv) -> None:
    fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}])
    res = fleet_env.cli("heartbeat", "solo", "--state", "busy", "--ack", "hello")
    assert (res.rc, res.stdout, res.stderr) == (0, "", "")
    raw = json.loads(fleet_env.heartbeat_path("solo").read_text())
    hb = Heartbeat.model_validate(raw)
    assert (hb.v, hb.tenant_id, hb.host, hb.agent) == (1, "acme", "h1", "solo")
    assert (hb.seq, hb.state.value) == (0, "busy")
    assert hb.acks == [message_hash("hello")]
    assert raw["ts"].endswith("Z")
    assert abs((datetime.now(UTC) - hb.ts).total_seconds()) < 10

    # The same message again (normalised: CRLF, trailing blanks) is not a second ack.
    assert fleet_env.cli("heartbeat", "solo", "--state", "idle", "--ack", "hello \r\n").rc == 0
    assert fleet_env.cli("heartbeat", "solo", "--state", "busy", "--ack", "world").rc == 0
    hb = Heartbeat.model_validate_json(fleet_env.heartbeat_path("solo").read_text())
    assert hb.seq == 2
    assert hb.acks == [message_hash("hello"), message_hash("world")]
    leftovers = [p.name for p in fleet_env.heartbeat_path("solo").parent.iterdir()]
    assert leftovers == ["solo.json"], "atomic writes leave no temp files"


def test_heartbeat_refuses_a_name_tmux_would_rewrite(fleet_env: FleetEnv) -> None:
    res = fleet_env.cli("heartbeat", "a.b", "--state", "busy")
    assert res.rc == 2, res
    assert "a.b" in _one_line(res)
    assert not (fleet_env.state_dir / "heartbeats" / "a.b.json").exists()


def test_heartbeat_into_an_unwritable_state_dir_is_exit_2(fleet_env: FleetEnv) -> None:
    blocker = fleet_env.base / "file"
    blocker.write_text("a regular file, not a folder\n")
    res = fleet_env.cli(
        "heartbeat", "solo", "--state", "busy", "--state-dir", str(blocker / "state")
    )
    assert res.rc == 2, res
    assert "state dir" in _one_line(res)


# -- bad input files -----------------------------------------------------------------------------


def test_two_orchestrators_is_exit_2_with_file_and_line(fleet_env: FleetEnv) -> None:
    path = fleet_env.write_roster(
        text=(
            "version: 1\n"
            "tenant_id: acme\n"
            "agents:\n"
            "  - name: alpha\n"
            "    role: orchestrator\n"
            "  - name: beta\n"
            "    role: orchestrator\n"
        )
    )
    res = fleet_env.cli("ps")
    assert res.rc == 2, res
    assert f"{path}:7" in _one_line(res)
    assert res.stdout == ""


def test_corrupt_roster_yaml_is_exit_2(fleet_env: FleetEnv) -> None:
    path = fleet_env.write_roster(text="version: 1\ntenant_id: acme\nagents: [\n  - name: x\n")
    res = fleet_env.cli("ps", "--json")
    assert res.rc == 2, res
    line = _one_line(res)
    assert str(path) in line and "YAML" in line
    assert res.stdout == ""


def test_named_roster_that_is_missing_is_exit_2(fleet_env: FleetEnv) -> None:
    missing = fleet_env.base / "nope.yaml"
    res = fleet_env.cli("ps", "--roster", str(missing))
    assert res.rc == 2, res
    assert str(missing) in _one_line(res)
    res = fleet_env.cli("ps", env={"MOSAIC_FLEET_ROSTER": str(missing)})
    assert res.rc == 2, res


def test_unreadable_heartbeats_make_unknown_agents_not_a_crash(fleet_env: FleetEnv) -> None:
    names = ("trunc", "garbage", "future", "huge")
    fleet_env.write_roster(
        [{"name": "orchestrator", "role": "orchestrator"}]
        + [{"name": n, "role": "coder"} for n in names]
    )
    for n in ("orchestrator", *names):
        fleet_env.start(SOCK, n, SLEEP)
    beats = fleet_env.state_dir / "heartbeats"
    beats.mkdir(parents=True)
    good = {
        "v": 1,
        "tenant_id": "acme",
        "host": "h1",
        "seq": 3,
        "interval_s": 10,
        "state": "busy",
    }
    now = datetime.now(UTC)

    def ts(t: datetime) -> str:
        return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    (beats / "orchestrator.json").write_text(
        json.dumps({**good, "agent": "orchestrator", "ts": ts(now)})
    )
    full = json.dumps({**good, "agent": "trunc", "ts": ts(now)})
    (beats / "trunc.json").write_text(full[: len(full) // 2])
    (beats / "garbage.json").write_text("this is not json\n")
    (beats / "future.json").write_text(
        json.dumps({**good, "agent": "future", "ts": ts(now + timedelta(hours=1))})
    )
    (beats / "huge.json").write_text(
        json.dumps({**good, "agent": "huge", "ts": ts(now), "detail": "x" * (1 << 20)})
    )

    res = fleet_env.cli("ps", "--json")
    assert res.rc == 0, res
    agents = _agents(json.loads(res.stdout))
    assert agents["orchestrator"]["health"] == "healthy"
    expected = {
        "trunc": "truncated",
        "garbage": "not JSON",
        "future": "future",
        "huge": "bytes",
    }
    for name, why in expected.items():
        assert agents[name]["health"] == "unknown", agents[name]
        assert why in agents[name]["health_reason"], agents[name]["health_reason"]
        assert agents[name]["drift"] == []
    warnings = json.loads(res.stdout)["warnings"]
    for name in names:
        assert any(f"'{name}'" in w for w in warnings), (name, warnings)

    table = fleet_env.cli("ps")
    assert table.rc == 0
    assert "unknown" in table.stdout
    lines = table.stderr.splitlines()
    for name in names:  # one warning line each, on stderr
        assert sum(line.startswith("warning:") and f"'{name}'" in line for line in lines) == 1
    assert "x" * 100 not in table.stderr + table.stdout


# -- demo ----------------------------------------------------------------------------------------


def test_demo_starts_a_healthy_fleet_and_down_stops_it(fleet_env: FleetEnv) -> None:
    from fleet_tui.demo.fleet import DEMO_SOCKET, demo_env

    res = fleet_env.cli("demo", "--agents", "6", "--no-ui", timeout=60)
    assert res.rc == 0, res
    assert "orchestrator" in res.stdout and DEMO_SOCKET in res.stdout
    env = demo_env(fleet_env.state_home / "mosaic" / "fleet-demo")
    assert Path(env["MOSAIC_FLEET_ROSTER"]).is_file()

    data = fleet_env.ps_json(env=env)
    agents = _agents(data)
    assert {"orchestrator", "enhancer", "coder0-0", "research"} <= set(agents)
    for name in ("orchestrator", "enhancer"):
        assert agents[name]["health"] == "healthy", agents[name]
        assert agents[name]["tenant_id"] == "demo"
        assert agents[name]["process"]["runtime_detected"] == "stub"
    assert agents["research"]["health"] == "down"  # ephemeral, not started
    # The demo is private: the default state dir and roster were not touched.
    assert not fleet_env.state_dir.exists() and not fleet_env.roster_path.exists()

    # Its budgets: one account spends ahead of the even pace, and the table says so.
    res = fleet_env.cli("budget", "--json", env=env)
    assert res.rc == 0, res
    accounts = {a["account"]: a for a in json.loads(res.stdout)["accounts"]}
    weekly = {w["name"]: w for w in accounts["claude-max-a"]["windows"]}["weekly"]
    assert weekly["status"] == "ahead" and weekly["pace"] > 1
    assert agents["orchestrator"]["budget"]["account"] == "claude-max-a"
    # Its stubs write Claude Code-shaped transcripts: `usage` attributes them to the agents.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        res = fleet_env.cli("usage", "--json", env=env)
        assert res.rc == 0, res
        days = json.loads(res.stdout)["days"]
        by_agent = days[-1]["by_agent"] if days else {}
        if {"orchestrator", "coder0-0"} <= set(by_agent):
            break
        time.sleep(1)
    assert {"orchestrator", "coder0-0"} <= set(by_agent), by_agent

    # Its roster says how each agent starts: the lifecycle verbs work on the demo.
    res = fleet_env.cli("up", "research", env=env, timeout=60)
    assert res.rc == 0 and "research: started" in res.stdout, res
    res = fleet_env.cli("stop", "coder0-0", "--yes", "--grace", "5", env=env, timeout=60)
    assert res.rc == 0 and "coder0-0: stopped" in res.stdout, res
    agents = _agents(fleet_env.ps_json(env=env))
    assert agents["coder0-0"]["drift"] == ["stopped"], agents["coder0-0"]
    res = fleet_env.cli("up", "coder0-0", env=env, timeout=60)
    assert res.rc == 0 and "coder0-0: started" in res.stdout, res
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        agents = _agents(fleet_env.ps_json(env=env))
        if all(agents[n]["health"] == "healthy" for n in ("research", "coder0-0")):
            break
        time.sleep(0.5)
    assert agents["research"]["health"] == "healthy", agents["research"]
    assert agents["coder0-0"]["health"] == "healthy", agents["coder0-0"]
    assert agents["coder0-0"]["drift"] == [], agents["coder0-0"]

    res = fleet_env.cli("demo", "--down")
    assert res.rc == 0 and "stopped" in res.stdout, res
    data = fleet_env.ps_json(env=env)
    socks = {s["name"]: s for s in data["sockets"]}
    assert socks[DEMO_SOCKET]["state"] == "stale"
    assert all(a["health"] == "down" for a in data["agents"])
    res = fleet_env.cli("demo", "--down")
    assert res.rc == 0 and "no demo fleet" in res.stdout, res


def test_the_parser_knows_every_agent_state() -> None:
    from fleet_tui.cli.main import _states
    from fleet_tui.model.records import AgentState

    assert _states() == [s.value for s in AgentState]


def test_the_gateway_token_never_reaches_an_agent_pane(fleet_env: FleetEnv) -> None:
    """A tmux server started by fleet-tui hands its environment to every pane: the gateway's
    token and database DSN must not be in it."""
    from fleet_tui.demo.fleet import DEMO_SOCKET

    secrets = {
        "MOSAIC_FLEET_GATEWAY_TOKEN": "fleet_LEAKCHECK_token",
        "MOSAIC_FLEET_GATEWAY_DSN": "postgresql://u:LEAKCHECK_pw@db/fleet",
    }
    res = fleet_env.cli("demo", "--agents", "2", "--no-ui", env=secrets, timeout=60)
    assert res.rc == 0, res
    try:
        env = fleet_env.tmux(DEMO_SOCKET, "show-environment", "-g").stdout
        pane = fleet_env.tmux(DEMO_SOCKET, "show-environment", "-t", "=orchestrator:").stdout
        assert "TMUX_TMPDIR" in env and "MOSAIC_FLEET_STATE_DIR" in pane  # what was read
        assert "LEAKCHECK" not in env and "LEAKCHECK" not in pane
    finally:
        fleet_env.cli("demo", "--down")


def test_the_dashboard_without_a_terminal_refuses_at_once(fleet_env: FleetEnv) -> None:
    # `fleet-tui </dev/null >out`: no escape sequences into the file, no hang
    res = fleet_env.cli(timeout=20)
    assert res.rc == 5, res
    assert res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and "needs a terminal" in res.stderr
    assert fleet_env.cli("tui", timeout=20).rc == 5


def test_no_audit_record_no_action(fleet_env: FleetEnv) -> None:
    """The audit record comes before the action: when it cannot be written (audit.jsonl is a
    directory here) send types nothing, attach attaches nothing, probe pings nothing: exit 5."""
    fleet_env.write_roster([{"name": "catter", "role": "coder"}])
    fleet_env.start(SOCK, "catter", ["cat"])
    (fleet_env.state_dir / "audit.jsonl").mkdir(parents=True)
    res = fleet_env.cli("send", "catter", "typed-despite-no-audit")
    assert res.rc == 5, res
    assert "audit" in _one_line(res) and res.stderr.count("refused") == 1
    time.sleep(0.5)  # a keystroke on its way would have arrived: cat echoes what it reads
    shown = fleet_env.tmux(SOCK, "capture-pane", "-p", "-t", session_target("catter")).stdout
    assert "typed-despite-no-audit" not in shown
    res = fleet_env.cli("attach", "catter", "--yes")
    assert res.rc == 5, res
    assert "audit" in _one_line(res)
    assert fleet_env.tmux(SOCK, "list-clients").stdout == ""
    res = fleet_env.cli("probe", "catter", "--timeout", "60")
    assert res.rc == 5, res
    assert "audit" in _one_line(res)
    assert not (fleet_env.state_dir / "pings" / "catter.json").exists()


def test_text_arguments_that_are_not_utf8_are_exit_2(fleet_env: FleetEnv) -> None:
    bad = "ab\udcffcd"  # the byte 0xff in argv, as Python hands it over (surrogateescape)
    for args in (
        ["heartbeat", "coder", "--state", "busy", "--detail", bad],
        ["heartbeat", "coder", "--state", "busy", "--ack", bad],
        ["heartbeat", "coder", "--state", "busy", "--model", bad],
        ["send", "coder", bad],
    ):
        res = fleet_env.cli(*args)
        assert res.rc == 2, res
        assert "not valid UTF-8" in _one_line(res)
    assert fleet_env.heartbeat("coder") is None


def test_ps_json_keeps_true_names_and_stays_valid_utf8(fleet_env: FleetEnv) -> None:
    long_name = "L" * 80  # the join used to cut it to 63 chars and an ellipsis
    zero_width = "zw\u200bsp"  # the sanitizer drops the zero-width space
    for name in (long_name, zero_width):
        fleet_env.start(SOCK, name, SLEEP, agent=False)
    names = [a["name"] for a in fleet_env.ps_json("--all")["agents"]]
    assert long_name in names and zero_width in names, names
    assert [
        a["session"] for a in fleet_env.ps_json("--all")["agents"] if a["name"] == long_name
    ] == [long_name]
    table = fleet_env.cli("ps", "--all", env={"COLUMNS": "200"})
    assert table.rc == 0 and "zwsp" in table.stdout and "\u200b" not in table.stdout


def test_ps_with_bytes_that_are_not_utf8_stays_valid_utf8(fleet_env: FleetEnv) -> None:
    # a roster path with a byte that is not UTF-8 (as lone surrogates in Python)
    folder = os.fsdecode(bytes(fleet_env.base) + b"/r\xffdir")
    roster = fleet_env.write_roster([])
    os.mkdir(folder)
    os.rename(roster, os.path.join(folder, "roster.yaml"))
    proc = subprocess.run(
        [sys.executable, "-m", "fleet_tui", "ps", "--json"],
        env={**fleet_env.env, "MOSAIC_FLEET_ROSTER": os.path.join(folder, "roster.yaml")},
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout.decode("utf-8"))  # strict: valid UTF-8
    assert os.fsencode(data["roster_path"]) == bytes(fleet_env.base) + b"/r\xffdir/roster.yaml"
    assert data["roster_loaded"] is True
    proc = subprocess.run(
        [sys.executable, "-m", "fleet_tui", "ps"],
        env={**fleet_env.env, "MOSAIC_FLEET_ROSTER": os.path.join(folder, "roster.yaml")},
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "r\ufffddir" in proc.stdout.decode("utf-8")  # shown as U+FFFD on a terminal


def test_error_lines_never_carry_escape_sequences(fleet_env: FleetEnv) -> None:
    # a path (or a name, or a pane's text) quoted in an error reaches the operator's terminal
    bad_dir = "/proc/e\x1b]52;c;UFdORUQ=\x07x"
    res = fleet_env.cli("heartbeat", "x", "--state", "busy", "--state-dir", bad_dir)
    assert res.rc == 2, res
    line = _one_line(res)
    assert "\x1b" not in line and "\x07" not in line
    assert "not writable" in line
