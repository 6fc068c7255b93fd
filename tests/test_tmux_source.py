"""The tmux runner and the tmux source against REAL tmux servers on private sockets.

Every server here lives in the test's own TMUX_TMPDIR (see conftest.py); nothing reaches the
user's own servers.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import FleetEnv, wait_until

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.control.panes import new_agent_session
from fleet_tui.errors import (
    InvalidAgentName,
    SocketDirError,
    TmuxNotInstalled,
    TmuxTargetMissing,
)
from fleet_tui.model.records import Health, SocketState
from fleet_tui.service.collector import FleetCollector
from fleet_tui.sources.procs import read_stat_state
from fleet_tui.sources.tmux import discover_sockets, scan_all
from fleet_tui.tmux import Liveness, TmuxRunner, check_session_name, probe_socket, session_target

pytestmark = pytest.mark.tmux

SLEEP = ["sleep", "300"]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0); the server is not our child, so it is reaped by init
    with open(f"/proc/{pid}/stat", "rb") as fh:
        raw = fh.read()
    return raw[raw.rfind(b")") + 2 : raw.rfind(b")") + 3] in (b"Z", b"X")


def test_every_live_socket_is_listed_with_its_sessions(fleet_env: FleetEnv) -> None:
    fleet_env.start("mosaic-fleet", "coder0-0", SLEEP)
    fleet_env.start("mosaic-fleet", "coder0-1", SLEEP)
    fleet_env.start("default", "shell", SLEEP, agent=False)

    runner = TmuxRunner(timeout=2.0)  # from os.environ: the test's TMUX_TMPDIR
    assert runner.socket_dir == fleet_env.socket_dir
    scans = {s.name: s for s in scan_all(runner)}

    assert set(scans) == {"default", "mosaic-fleet"}
    assert all(s.state is SocketState.LIVE and s.reason is None for s in scans.values())
    fleet = scans["mosaic-fleet"].sessions()
    assert set(fleet) == {"coder0-0", "coder0-1"}
    row = fleet["coder0-0"]
    assert row.pane_pid == fleet_env.pane_pid("mosaic-fleet", "coder0-0")
    assert row.current_command == "sleep"
    assert row.mosaic_agent == "1"  # marked by control.new_agent_session
    assert row.window_size == "manual"
    assert not row.pane_dead
    shell = scans["default"].sessions()["shell"]
    assert shell.mosaic_agent == ""


def test_killed_server_leaves_a_stale_socket(fleet_env: FleetEnv) -> None:
    fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}], socket_name="old")
    fleet_env.start("old", "orchestrator", SLEEP)
    pid = fleet_env.server_pid("old")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: _gone(pid), message="the server to die")

    path = fleet_env.socket_dir / "old"
    assert path.exists(), "tmux leaves the socket file behind"
    # the kernel may take a moment after the exit to refuse connections on the dead socket
    wait_until(lambda: probe_socket(path) == Liveness.STALE, timeout=5, message="a stale socket")
    (scan,) = scan_all(TmuxRunner(timeout=2.0))
    assert (scan.name, scan.state, scan.panes) == ("old", SocketState.STALE, [])

    # The server is gone, so its agents are down (not unknown): they have no session.
    snap = FleetCollector(FleetConfig.from_flags()).collect()
    (agent,) = snap.agents
    assert agent.health is Health.DOWN
    assert [d.value for d in agent.drift] == ["missing_session"]
    assert "no server" in agent.health_reason


def test_stopped_server_is_hung_and_its_agents_unknown(fleet_env: FleetEnv) -> None:
    fleet_env.write_roster(
        [
            {"name": "orchestrator", "role": "orchestrator"},
            {"name": "coder0-0", "role": "coder"},
        ]
    )
    fleet_env.start("mosaic-fleet", "orchestrator", SLEEP)
    fleet_env.start("mosaic-fleet", "coder0-0", SLEEP)
    fleet_env.start("default", "shell", SLEEP, agent=False)
    pid = fleet_env.server_pid("mosaic-fleet")
    os.kill(pid, signal.SIGSTOP)
    try:
        config = FleetConfig.from_flags()
        config.tmux_timeout_s = 1.0
        t0 = time.monotonic()
        snap = FleetCollector(config).collect()
        elapsed = time.monotonic() - t0

        # quiet, 1.02 s: one 1 s timeout; two (a retry, or sockets in turn) would be 2 s and more
        assert elapsed < 1.0 + 1.5, f"a hung server must cost one timeout, took {elapsed:.1f} s"
        socks = {s.name: s for s in snap.sockets}
        assert socks["mosaic-fleet"].state is SocketState.HUNG
        assert socks["default"].state is SocketState.LIVE  # the others are still listed
        assert socks["default"].sessions == 1
        agents = {a.name: a for a in snap.agents}
        for name in ("orchestrator", "coder0-0"):
            assert agents[name].health is Health.UNKNOWN, agents[name]
            assert agents[name].drift == [], "a hung socket is no proof the session is missing"
            assert "hung" in agents[name].health_reason
        assert any("mosaic-fleet" in w and "hung" in w for w in snap.warnings)

        # What the operator sees: ps still answers, within about the tmux timeout (quiet, 2.3 s:
        # its own 2 s tmux timeout and Python's start; the bound is 5x that, far below "never").
        t0 = time.monotonic()
        res = fleet_env.cli("ps")
        assert time.monotonic() - t0 < 12.0
        assert res.rc == 0, res
        assert "unknown" in res.stdout
        assert "mosaic-fleet hung" in res.stdout
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("how", ["other-owner", "mode-0777"])
def test_socket_folder_not_ours_is_refused(fleet_env: FleetEnv, how: str) -> None:
    folder = fleet_env.socket_dir
    folder.mkdir(mode=0o700)
    if how == "other-owner":
        os.chown(folder, 65534, 65534)
    else:
        os.chmod(folder, 0o777)

    with pytest.raises(SocketDirError, match="tmux socket folder"):
        discover_sockets(TmuxRunner())

    res = fleet_env.cli("ps")
    assert res.rc == 2, res
    assert res.stdout == ""
    assert len(res.stderr.splitlines()) == 1, res.stderr
    assert str(folder) in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_socket_folder_is_an_empty_fleet(fleet_env: FleetEnv) -> None:
    res = fleet_env.cli("ps")
    assert res.rc == 0, res
    assert "No agents found" in res.stdout
    data = fleet_env.ps_json()
    assert (data["agents"], data["sockets"]) == ([], [])
    assert not fleet_env.socket_dir.exists(), "observing must not create the socket folder"


def test_tmux_not_installed_is_one_line_exit_2(fleet_env: FleetEnv) -> None:
    empty = fleet_env.base / "bin"
    empty.mkdir()
    with pytest.raises(TmuxNotInstalled):
        _ = TmuxRunner(env={**fleet_env.env, "PATH": str(empty)}).binary

    fleet_env.start("mosaic-fleet", "coder0-0", SLEEP)  # a fleet that cannot be seen
    for args in (["ps"], ["ps", "--json"]):
        res = fleet_env.cli(*args, env={"PATH": str(empty)})
        assert res.rc == 2, res
        assert len(res.stderr.splitlines()) == 1, res.stderr
        assert "tmux" in res.stderr
        assert res.stdout == ""


@pytest.mark.parametrize("bad", ["a.b", "a:b", "", "has space", "x" * 65, "é"])
def test_names_tmux_would_rewrite_are_rejected(fleet_env: FleetEnv, bad: str) -> None:
    with pytest.raises(InvalidAgentName):
        check_session_name(bad)
    with pytest.raises(InvalidAgentName):
        new_agent_session(fleet_env.runner, "mosaic-fleet", bad, SLEEP)
    assert not (fleet_env.socket_dir / "mosaic-fleet").exists(), "no server was started"


def test_valid_names_are_kept(fleet_env: FleetEnv) -> None:
    assert check_session_name("coder0-0") == "coder0-0"
    assert session_target("Agent_1") == "=Agent_1:"
    fleet_env.start("mosaic-fleet", "Agent_1-x", SLEEP)
    names = fleet_env.tmux("mosaic-fleet", "list-sessions", "-F", "#{session_name}").stdout.split()
    assert names == ["Agent_1-x"]


def test_a_command_that_exits_at_once_leaves_a_dead_pane(fleet_env: FleetEnv) -> None:
    # control sets remain-on-exit in the same command list as new-session: a crash at start-up
    # shows as pane_dead instead of a vanished session (and a vanished server).
    # An argument ending in ';' must reach the command as is (tmux would end a command there).
    out = fleet_env.base / "arg.txt"
    script = f'printf %s "$1" > {out}; exit 3'
    fleet_env.start("mosaic-fleet", "crasher", ["sh", "-c", script, "sh", "end;"])
    row = wait_until(
        lambda: next((r for r in scan_all(TmuxRunner())[0].panes if r.pane_dead), None),
        message="the pane to be dead",
    )
    assert row.session_name == "crasher"
    assert out.read_text() == "end;"
    (scan,) = scan_all(TmuxRunner())
    assert scan.state is SocketState.LIVE and scan.reason is None


def test_exact_targets_never_hit_a_prefix_or_a_window(fleet_env: FleetEnv) -> None:
    sock = "mosaic-fleet"
    fleet_env.start(sock, "coder0-0", ["cat"])
    fleet_env.start(sock, "other", ["cat"], agent=False)
    fleet_env.tmux(sock, "new-window", "-d", "-t", "=other:", "-n", "coder0", "cat")

    # What a bare name would do (why exact targets matter): it finds coder0-0.
    assert fleet_env.tmux(sock, "has-session", "-t", "coder0", check=False).returncode == 0

    target = session_target("coder0")
    assert target == "=coder0:"
    for args in (
        ("has-session", "-t", target),
        ("send-keys", "-t", target, "-l", "--", "MARKER-typed"),
        ("capture-pane", "-p", "-t", target),
        ("set-option", "-t", target, "@mosaic_agent", "x"),
        ("kill-session", "-t", target),
    ):
        with pytest.raises(TmuxTargetMissing):
            fleet_env.tmux(sock, *args)

    time.sleep(0.2)
    sessions = fleet_env.tmux(sock, "list-sessions", "-F", "#{session_name}").stdout.split()
    assert sorted(sessions) == ["coder0-0", "other"]
    panes = fleet_env.tmux(sock, "list-panes", "-a", "-F", "#{pane_id} #{@mosaic_agent}")
    for line in panes.stdout.splitlines():
        pane_id, *opt = line.split()
        screen = fleet_env.tmux(sock, "capture-pane", "-p", "-t", pane_id).stdout
        assert "MARKER" not in screen
        assert "x" not in opt


def test_a_heartbeat_pid_that_is_gone_or_a_zombie_is_unresponsive(fleet_env: FleetEnv) -> None:
    """A heartbeat names its runtime's pid. Running (in the pane's tree or not): healthy. A
    zombie in the pane's tree (exited, never reaped by its parent) or a pid that no longer
    exists: unresponsive, whatever the heartbeat's age."""
    names = ("live", "zombie", "gone")
    fleet_env.write_roster([{"name": n, "role": "coder"} for n in names], timeout_s=3600)
    pidfile = fleet_env.base / "zombie.pid"
    # `sleep 600` takes over the shell's pid and never reaps the background child: a zombie
    # once it ends (it outlives the exec: a shell may reap a child that ends before it)
    fleet_env.start(
        "mosaic-fleet", "zombie", ["sh", "-c", f"sleep 2 & echo $! > {pidfile}; exec sleep 600"]
    )
    fleet_env.start("mosaic-fleet", "live", SLEEP)
    fleet_env.start("mosaic-fleet", "gone", SLEEP)
    zombie = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=10))

    wait_until(lambda: read_stat_state(zombie) == "Z", timeout=20, message="the zombie")
    gone_pid = os.fork()
    if gone_pid == 0:
        os._exit(0)
    os.waitpid(gone_pid, 0)  # reaped: no such process any more
    pids = {"live": fleet_env.pane_pid("mosaic-fleet", "live"), "zombie": zombie, "gone": gone_pid}
    for name, pid in pids.items():
        res = fleet_env.cli("heartbeat", name, "--state", "busy", "--pid", str(pid))
        assert res.rc == 0, res
    agents = {a.name: a for a in FleetCollector(FleetConfig.from_flags()).collect().agents}
    assert agents["live"].health is Health.HEALTHY, agents["live"].health_reason
    for name in ("zombie", "gone"):
        assert agents[name].health is Health.UNRESPONSIVE, agents[name].health_reason
        assert f"heartbeat pid {pids[name]} is not running" in agents[name].health_reason
