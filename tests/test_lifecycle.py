"""Lifecycle verbs on real tmux (private sockets): `up`, `stop`, `restart` from the roster.

The agents run the stub runtime (`fleet-tui stub`, it speaks the protocol) through the login
shell, as `up` starts any roster `command`. What a user would notice is asserted: the report's
lines and exit codes, the sessions tmux has, the stub's heartbeats, the pane process's own
environment (/proc/PID/environ), the audit log and the remembered stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, FleetEnv, wait_until

from fleet_tui.tmux import TmuxError, TmuxTargetMissing, session_target

pytestmark = pytest.mark.tmux

SOCK = "mosaic-fleet"


def stub_command(name: str, *extra: str) -> str:
    argv = [sys.executable, "-m", "fleet_tui", "stub", name, "--interval", "0.5", *extra]
    return shlex.join(argv)


def roster(env: FleetEnv, agents: list[dict[str, Any]], **kw: Any) -> Path:
    return env.write_roster(agents, **kw)


def stub_agent(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "role": "coder", "command": stub_command(name), **kw}


def pane(env: FleetEnv, name: str, fmt: str) -> str:
    out = env.tmux(SOCK, "display-message", "-p", "-t", session_target(name), fmt).stdout
    return out.strip()


def has_session(env: FleetEnv, name: str) -> bool:
    try:
        env.tmux(SOCK, "has-session", "-t", f"={name}")
    except Exception:
        return False
    return True


def proc_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(
        item.decode("utf-8", "replace").split("=", 1) for item in raw.split(b"\0") if b"=" in item
    )


def running(pid: int) -> bool:
    """Whether `pid` runs. A process that ended may stay a zombie of the tmux server for a while:
    tmux 3.3a now and then misses a SIGCHLD and reaps it only with its next child."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def lines_of(res: CliResult) -> dict[str, str]:
    """The report by agent: `name: rest` lines."""
    out = {}
    for line in res.stdout.splitlines():
        if ": " in line and not line.startswith(" "):
            name, rest = line.split(": ", 1)
            out[name] = rest
    return out


def audits(env: FleetEnv, action: str, agent: str | None = None) -> list[tuple[str, str]]:
    return [
        (a["agent"], a["outcome"])
        for a in env.audit_lines()
        if a["action"] == action and (agent is None or a["agent"] == agent)
    ]


# -- up -------------------------------------------------------------------------------------------


def test_up_starts_always_on_agents_as_the_roster_says(fleet_env: FleetEnv) -> None:
    env = fleet_env
    work = env.home / "work" / "alpha"
    work.mkdir(parents=True)
    roster(
        env,
        [
            stub_agent("alpha", cwd="~/work/alpha", env={"ALPHA_ROLE": "builder"}),
            stub_agent("temp", lifecycle="ephemeral"),
            {"name": "board", "role": "board"},  # no command
        ],
    )
    res = env.cli("up")
    assert res.rc == 0, res
    report = lines_of(res)
    assert report["alpha"].startswith("started (socket mosaic-fleet")
    assert report["board"] == "not startable (no command in the roster)"
    assert "temp" not in report  # ephemeral agents are started only when named
    assert not has_session(env, "temp")
    # the stub runs and speaks the protocol: the login shell found it, in the roster's cwd
    env.wait_heartbeat("alpha")
    assert pane(env, "alpha", "#{pane_current_path}") == str(work)
    assert pane(env, "alpha", "#{@mosaic_agent}") == "1"
    assert pane(env, "alpha", "#{window_width}x#{window_height}") == "100x30"
    size_opt = env.tmux(SOCK, "show-options", "-w", "-t", session_target("alpha"), "window-size")
    assert "manual" in size_opt.stdout
    session_env = env.tmux(SOCK, "show-environment", "-t", session_target("alpha")).stdout
    assert "MOSAIC_AGENT=alpha" in session_env.splitlines()
    stub_env = proc_environ(env.stub_pid(SOCK, "alpha"))
    assert stub_env["MOSAIC_AGENT"] == "alpha"
    assert stub_env["ALPHA_ROLE"] == "builder"
    assert audits(env, "start", "alpha") == [("alpha", "started"), ("alpha", "running")]
    assert ("board", "not_startable") in audits(env, "start")
    for a in env.audit_lines():
        assert a["surface"] == "cli" and a["tenant_id"] == "acme" and a["host"] == "h1"


def test_up_is_idempotent(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha")])
    assert env.cli("up").rc == 0
    env.wait_heartbeat("alpha")
    before = pane(env, "alpha", "#{pane_id} #{pane_pid}")
    res = env.cli("up")
    assert res.rc == 0, res
    assert lines_of(res)["alpha"].startswith("already running (socket mosaic-fleet, pane %")
    assert pane(env, "alpha", "#{pane_id} #{pane_pid}") == before
    assert env.tmux(SOCK, "list-sessions", "-F", "#{session_name}").stdout.split() == ["alpha"]
    assert audits(env, "start")[-1] == ("alpha", "already_running")


def test_up_dry_run_starts_nothing(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha", env={"X_ONE": "1"}), {"name": "board", "role": "board"}])
    res = env.cli("up", "--dry-run")
    assert res.rc == 0, res
    report = lines_of(res)
    assert report["alpha"].startswith("would start: ")
    assert " -l -c " in report["alpha"] and "100x30" in report["alpha"]
    assert "env X_ONE" in report["alpha"]
    assert report["board"] == "not startable (no command in the roster)"
    assert not (env.socket_dir / SOCK).exists() or not has_session(env, "alpha")
    assert env.audit_lines() == []


def test_up_named_starts_an_ephemeral_agent(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha"), stub_agent("temp", lifecycle="ephemeral")])
    res = env.cli("up", "temp")
    assert res.rc == 0, res
    assert list(lines_of(res)) == ["temp"]
    env.wait_heartbeat("temp")
    assert not has_session(env, "alpha")


def test_up_named_without_command_fails(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [{"name": "board", "role": "board"}])
    res = env.cli("up", "board")
    assert res.rc == 1
    assert lines_of(res)["board"] == "not startable (no command in the roster)"


def test_up_unknown_name_is_exit_3_and_starts_nothing(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha")])
    res = env.cli("up", "alpha", "alpah")
    assert res.rc == 3, res
    assert "no agent named 'alpah' in the roster" in res.stderr
    assert "did you mean" not in res.stderr or "alpha" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not has_session(env, "alpha")
    assert audits(env, "start") == [("alpah", "not_found")]


def test_up_bad_name_is_exit_2(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha")])
    res = env.cli("up", "a.b")
    assert res.rc == 2
    assert "tmux rewrites '.' and ':'" in res.stderr


def test_up_cwd_that_does_not_exist(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha", cwd="~/nowhere"), stub_agent("beta")])
    res = env.cli("up")
    assert res.rc == 1, res
    report = lines_of(res)
    assert report["alpha"] == f"error: cwd {env.home}/nowhere does not exist"
    assert report["beta"].startswith("started")
    assert not has_session(env, "alpha")
    assert ("alpha", "failed") in audits(env, "start")


def test_up_relative_cwd_is_refused(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha", cwd="work")])
    res = env.cli("up")
    assert res.rc == 1
    assert "relative" in lines_of(res)["alpha"]


def test_roster_env_value_must_be_a_string(fleet_env: FleetEnv) -> None:
    env = fleet_env
    text = (
        "version: 1\ntenant_id: acme\nsocket_name: mosaic-fleet\nagents:\n"
        "  - name: alpha\n    role: coder\n    command: sleep 100\n"
        "    env:\n      GOOD: 'yes'\n      PORT: 8080\n"
    )
    path = roster(env, [], text=text)
    res = env.cli("up")
    assert res.rc == 2
    assert res.stderr.startswith(
        f"fleet-tui: {path}:10: agents[0].env.PORT: must be a string (quote it)"
    )
    assert not (env.socket_dir / SOCK).exists()


def test_roster_name_tmux_would_rewrite(fleet_env: FleetEnv) -> None:
    env = fleet_env
    path = roster(env, [{"name": "a.b:c", "role": "coder", "command": "sleep 100"}])
    res = env.cli("up")
    assert res.rc == 2
    assert f"{path}:7: agents[0].name: must match [A-Za-z0-9_-]+ (tmux rewrites '.' and ':'" in (
        res.stderr
    )


def test_up_without_roster_is_exit_2(fleet_env: FleetEnv) -> None:
    res = fleet_env.cli("up")
    assert res.rc == 2
    assert "no roster at" in res.stderr


def test_roster_env_naming_a_fleet_secret_is_refused(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha", env={"MOSAIC_FLEET_GATEWAY_TOKEN": "x"})])
    res = env.cli("up")
    assert res.rc == 1
    assert "a fleet secret never goes to an agent's pane" in lines_of(res)["alpha"]
    assert not has_session(env, "alpha")


# -- secrets ----------------------------------------------------------------------------------------

SECRETS = {
    "MOSAIC_FLEET_GATEWAY_TOKEN": "tok-SEKRIT-1",
    "MOSAIC_FLEET_GATEWAY_DSN": "postgresql://u:SEKRIT2@h/db",
    "FLEET_TEST_PG_DSN": "postgresql://u:SEKRIT3@h/db",
    "OPS_TOKEN": "SEKRIT4",  # named by the alerts file below as a channel's token
}


def _alerts_file(env: FleetEnv) -> None:
    path = env.config_home / "mosaic" / "alerts.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "version: 1\nchannels:\n  - name: ops\n    type: webhook\n"
        "    url: https://example.invalid/hook\n    token_env: OPS_TOKEN\n"
    )


def _assert_no_secret(env: FleetEnv, name: str) -> None:
    environ = proc_environ(env.stub_pid(SOCK, name))
    shell_environ = proc_environ(env.pane_pid(SOCK, name))
    for key in SECRETS:
        assert key not in environ and key not in shell_environ
    raw = Path(f"/proc/{env.stub_pid(SOCK, name)}/environ").read_bytes()
    assert b"SEKRIT" not in raw
    sess = env.tmux(SOCK, "show-environment", "-t", session_target(name)).stdout
    assert "SEKRIT" not in sess


def test_secrets_never_reach_a_pane_of_a_new_server(fleet_env: FleetEnv) -> None:
    env = fleet_env
    _alerts_file(env)
    roster(env, [stub_agent("alpha")])
    res = env.cli("up", env=SECRETS)
    assert res.rc == 0, res
    env.wait_heartbeat("alpha")
    _assert_no_secret(env, "alpha")
    # the server was started by `up` with a clean environment: its global one holds none
    assert "SEKRIT" not in env.tmux(SOCK, "show-environment", "-g").stdout
    server_env = proc_environ(env.server_pid(SOCK))
    assert not set(SECRETS) & set(server_env)


def test_secrets_of_a_running_server_are_kept_from_the_pane(fleet_env: FleetEnv) -> None:
    env = fleet_env
    _alerts_file(env)
    roster(env, [stub_agent("alpha")])
    # someone started the fleet's server from a shell that had the secrets
    env.runner.ensure_socket_dir()
    subprocess.run(
        ["tmux", "-S", str(env.socket_dir / SOCK), "new-session", "-d", "-s", "ops", "sleep 600"],
        env={**env.env, **SECRETS},
        check=True,
        timeout=10,
    )
    assert "SEKRIT" in env.tmux(SOCK, "show-environment", "-g").stdout
    res = env.cli("up")
    assert res.rc == 0, res
    assert lines_of(res)["alpha"].endswith(
        "kept from its pane: FLEET_TEST_PG_DSN MOSAIC_FLEET_GATEWAY_DSN "
        "MOSAIC_FLEET_GATEWAY_TOKEN OPS_TOKEN)"
    )
    env.wait_heartbeat("alpha")
    _assert_no_secret(env, "alpha")
    sess = env.tmux(SOCK, "show-environment", "-t", session_target("alpha")).stdout.splitlines()
    for key in SECRETS:
        assert f"-{key}" in sess  # marked removed for the session: a respawn won't get it
    # the operator's own session on that server is left as it was
    assert "SEKRIT" in env.tmux(SOCK, "show-environment", "-g").stdout


def test_the_collectors_credentials_stay_with_the_fleet_unless_the_roster_gives_them(
    fleet_env: FleetEnv,
) -> None:
    env = fleet_env
    headers = {"OTEL_EXPORTER_OTLP_HEADERS": "api-key=FLEETKEY"}
    own = {"OTEL_EXPORTER_OTLP_HEADERS": "api-key=AGENTKEY"}
    roster(env, [stub_agent("alpha"), stub_agent("beta", env=own)])
    # the fleet's server was started from a shell that traces to the fleet's collector
    env.runner.ensure_socket_dir()
    subprocess.run(
        ["tmux", "-S", str(env.socket_dir / SOCK), "new-session", "-d", "-s", "ops", "sleep 600"],
        env={**env.env, **headers},
        check=True,
        timeout=10,
    )
    res = env.cli("up")
    assert res.rc == 0, res
    assert lines_of(res)["alpha"].endswith("kept from its pane: OTEL_EXPORTER_OTLP_HEADERS)")
    env.wait_heartbeat("alpha")
    env.wait_heartbeat("beta")
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in proc_environ(env.stub_pid(SOCK, "alpha"))
    # an agent whose roster entry sets its own keeps its own, not the fleet's
    assert proc_environ(env.stub_pid(SOCK, "beta"))["OTEL_EXPORTER_OTLP_HEADERS"] == (
        "api-key=AGENTKEY"
    )


# -- crash loop -------------------------------------------------------------------------------------


def test_a_command_that_exits_at_once_is_reported_down(fleet_env: FleetEnv) -> None:
    env = fleet_env
    crash = "printf 'loading\\n\\033]0;evil-title\\007\\033[31mconfig broken\\033[0m\\n'; exit 3"
    roster(env, [{"name": "crashy", "role": "coder", "command": crash}, stub_agent("fine")])
    # a loaded machine may take more than the default 1.5 s to run a login shell that exits
    res = env.cli("up", "--settle", "5")
    assert res.rc == 1, res
    assert lines_of(res)["crashy"] == (
        "down: the command exited at once (exit status 3); last output:"
    )
    assert "  | loading\n  | config broken\n" in res.stdout
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout
    assert lines_of(res)["fine"].startswith("started")
    # the pane stays (remain-on-exit): the dashboard shows it dead, with its status
    assert pane(env, "crashy", "#{pane_dead} #{pane_dead_status}") == "1 3"
    assert ("crashy", "down") in audits(env, "start")
    # up again: the dead session is replaced by a new start (it crashes again, said again)
    res = env.cli("up", "crashy", "--settle", "5")
    assert res.rc == 1
    assert "exit status 3" in lines_of(res)["crashy"]


def test_command_not_found_is_reported_down(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [{"name": "ghost", "role": "coder", "command": "no-such-runtime-xyz --go"}])
    res = env.cli("up", "--settle", "5")
    assert res.rc == 1
    assert "exit status 127" in lines_of(res)["ghost"]
    assert "no-such-runtime-xyz" in res.stdout


# -- stop and restart -------------------------------------------------------------------------------


def test_stop_without_terminal_needs_yes(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha")])
    assert env.cli("up").rc == 0
    for verb in ("stop", "restart"):
        res = env.cli(verb, "alpha")
        assert res.rc == 5, res
        assert f"{verb} alpha: no terminal to confirm on (use --yes to skip)" in res.stderr
        assert audits(env, verb) == [("alpha", "refused")]
    assert pane(env, "alpha", "#{pane_dead}") == "0"


def test_stop_unknown_is_exit_3(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha")])
    res = env.cli("stop", "nobody", "--yes")
    assert res.rc == 3
    assert audits(env, "stop") == [("nobody", "not_found")]


def test_stop_yes_asks_the_stub_then_remembers(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha"), stub_agent("beta")])
    assert env.cli("up").rc == 0
    env.wait_heartbeat("alpha")
    res = env.cli("stop", "alpha", "--yes")
    assert res.rc == 0, res
    assert "alpha: stopped (the runtime ended" in res.stdout and "after C-c" in res.stdout
    assert not has_session(env, "alpha")
    assert has_session(env, "beta")
    hb = env.heartbeat("alpha")
    assert hb is not None and hb["state"] == "stopping"  # the stub ended on its own
    stopped = json.loads((env.state_dir / "lifecycle" / "stopped.json").read_text())
    assert stopped["agents"]["alpha"]["surface"] == "cli"
    assert audits(env, "stop") == [("alpha", "started"), ("alpha", "stopped")]
    # a plain `up` leaves an operator's stop alone; `up NAME` starts it and forgets the stop
    res = env.cli("up")
    assert res.rc == 0
    assert lines_of(res)["alpha"].startswith("left stopped (stopped by ")
    assert not has_session(env, "alpha")
    res = env.cli("up", "alpha")
    assert res.rc == 0 and lines_of(res)["alpha"].startswith("started")
    stopped = json.loads((env.state_dir / "lifecycle" / "stopped.json").read_text())
    assert stopped["agents"] == {}


def test_stop_a_runtime_without_a_stop_request(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [{"name": "sleeper", "role": "coder", "runtime": "other", "command": "sleep 600"}])
    assert env.cli("up").rc == 0
    t0 = time.monotonic()
    res = env.cli("stop", "sleeper", "--yes")
    assert res.rc == 0, res
    assert "no stop request known for runtime 'other': session closed" in res.stdout
    assert time.monotonic() - t0 < 8  # no grace period waited for nothing (10 s)
    assert not has_session(env, "sleeper")


def test_stop_after_grace_kills_a_runtime_that_does_not_end(fleet_env: FleetEnv) -> None:
    env = fleet_env
    # a "stub" that ignores C-c: the session is killed after the grace period
    cmd = "trap '' INT; sleep 600"
    roster(env, [{"name": "stubborn", "role": "coder", "runtime": "stub", "command": cmd}])
    assert env.cli("up").rc == 0
    res = env.cli("stop", "stubborn", "--yes", "--grace", "0.5")
    assert res.rc == 0, res
    assert "still running after the 0.5 s grace period: session killed" in res.stdout
    assert not has_session(env, "stubborn")


def test_stop_not_running_is_remembered(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha")])
    res = env.cli("stop", "alpha", "--yes")
    assert res.rc == 0
    assert "alpha: was not running" in res.stdout
    assert (
        "alpha" in json.loads((env.state_dir / "lifecycle" / "stopped.json").read_text())["agents"]
    )


def test_restart_yes_starts_a_new_process(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha")])
    assert env.cli("up").rc == 0
    first = env.wait_heartbeat("alpha")["pid"]
    res = env.cli("restart", "alpha", "--yes")
    assert res.rc == 0, res
    report = res.stdout.splitlines()
    assert report[0].startswith("alpha: stopped (the runtime ended")
    assert report[1].startswith("alpha: started (socket mosaic-fleet, pane %")
    wait_until(
        lambda: (hb := env.heartbeat("alpha")) and hb["pid"] != first,
        timeout=10,
        message="a heartbeat of the new process",
    )
    assert not running(first)
    assert env.stub_pid(SOCK, "alpha") != first
    assert audits(env, "restart") == [("alpha", "started"), ("alpha", "running")]


def test_restart_not_startable_stops_nothing(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [{"name": "board", "role": "board"}])
    env.stub(SOCK, "board")
    res = env.cli("restart", "board", "--yes")
    assert res.rc == 2
    assert "not startable (no command in the roster); nothing stopped" in res.stderr
    assert pane(env, "board", "#{pane_dead}") == "0"


def test_restart_bad_cwd_stops_nothing(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha")])
    assert env.cli("up").rc == 0
    roster(env, [stub_agent("alpha", cwd="/nonexistent/dir")])
    res = env.cli("restart", "alpha", "--yes")
    assert res.rc == 2
    assert "cwd /nonexistent/dir does not exist; nothing stopped" in res.stderr
    assert pane(env, "alpha", "#{pane_dead}") == "0"


# -- on a terminal ----------------------------------------------------------------------------------


def run_on_pty(env: FleetEnv, args: list[str], typed: bytes) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin/stdout/stderr, type `typed` once it asks."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet_tui", *args],
        env={**env.env, "TERM": "xterm"},
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=str(env.base),
        start_new_session=True,
    )
    os.close(slave)
    out = b""
    sent = False
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    chunk = b""
                if not chunk and proc.poll() is not None:
                    break
                out += chunk
            if not sent and b"to confirm: " in out:
                os.write(master, typed)
                sent = True
            if proc.poll() is not None and not ready:
                break
        rc = proc.wait(timeout=5)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return rc, out.decode("utf-8", "replace").replace("\r\n", "\n")


def test_stop_on_a_terminal_asks_for_the_name(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha")])
    assert env.cli("up").rc == 0
    env.wait_heartbeat("alpha")
    rc, out = run_on_pty(env, ["stop", "alpha"], b"alpah\n")
    assert rc == 5, out
    assert "Stop alpha (tenant acme, host h1)? Type the agent's name to confirm: " in out
    assert "declined (the typed name did not match)" in out
    assert pane(env, "alpha", "#{pane_dead}") == "0"
    rc, out = run_on_pty(env, ["stop", "alpha"], b"alpha\n")
    assert rc == 0, out
    assert "alpha: stopped" in out
    assert not has_session(env, "alpha")
    assert audits(env, "stop") == [
        ("alpha", "declined"),
        ("alpha", "started"),
        ("alpha", "stopped"),
    ]


def test_restart_on_a_terminal_asks_for_the_name(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha")])
    assert env.cli("up").rc == 0
    old = pane(env, "alpha", "#{pane_pid}")
    rc, out = run_on_pty(env, ["restart", "alpha"], b"alpha\n")
    assert rc == 0, out
    assert "Restart alpha (tenant acme, host h1)?" in out
    assert "alpha: started" in out
    assert pane(env, "alpha", "#{pane_pid}") != old


# -- audit fails closed -----------------------------------------------------------------------------


def test_no_audit_log_no_action(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha")])
    env.state_dir.mkdir(parents=True, exist_ok=True)
    (env.state_dir / "audit.jsonl").mkdir()  # cannot be written
    res = env.cli("up")
    assert res.rc == 5, res
    assert "refused: the audit log" in res.stderr
    assert not has_session(env, "alpha")
    env.stub(SOCK, "alpha")
    res = env.cli("stop", "alpha", "--yes")
    assert res.rc == 5
    assert pane(env, "alpha", "#{pane_dead}") == "0"


def test_stopped_file_unreadable_is_one_line(fleet_env: FleetEnv) -> None:
    env = fleet_env
    roster(env, [stub_agent("alpha")])
    path = env.state_dir / "lifecycle" / "stopped.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    res = env.cli("up")
    assert res.rc == 2
    assert (
        res.stderr.strip() == f"fleet-tui: {path}: not a stopped-agents file (JSON with 'agents')"
    )


def test_up_on_a_dead_server_socket(fleet_env: FleetEnv) -> None:
    """A stale socket file (the server was killed) is no obstacle: `up` starts a new server."""
    env = fleet_env
    roster(env, [stub_agent("alpha")])
    env.start(SOCK, "other", ["sleep", "600"])
    env.tmux(SOCK, "kill-server")
    assert (env.socket_dir / SOCK).exists()
    res = env.cli("up")
    assert res.rc == 0, res
    env.wait_heartbeat("alpha")
    with pytest.raises(TmuxTargetMissing):
        env.tmux(SOCK, "has-session", "-t", "=other")


def test_up_on_a_server_that_holds_no_session(fleet_env: FleetEnv) -> None:
    """A server with no session left answers any target with "no current target" (one whose
    tmux.conf turns exit-empty off; one exiting after its last session closed): that is no
    session, so `up` (and a restart, the supervisor's) starts one there."""
    env = fleet_env
    roster(env, [stub_agent("alpha")])
    env.start(SOCK, "other", ["sleep", "600"])
    env.tmux(SOCK, "set-option", "-g", "exit-empty", "off")
    env.tmux(SOCK, "kill-session", "-t", "=other")
    with pytest.raises(TmuxError, match="no current target"):
        env.tmux(SOCK, "list-panes", "-s", "-t", session_target("alpha"))
    res = env.cli("up")
    assert res.rc == 0, res
    assert lines_of(res)["alpha"].startswith("started"), res
    env.wait_heartbeat("alpha")


def test_up_when_the_server_reached_was_exiting(fleet_env: FleetEnv) -> None:
    """A server exiting as `up` calls drops the call ("server exited unexpectedly") without
    making the session (a restart of a socket's only agent: its dead session just closed).
    `up` waits for it to be gone and starts the session on a new server. The exiting server is
    played by a socket that reads each call and closes it, and goes away after new-session."""
    env = fleet_env
    roster(env, [stub_agent("alpha")])
    path = env.runner.ensure_socket_dir() / SOCK
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    dropped: list[bytes] = []

    def exiting_server() -> None:
        while True:
            conn, _ = listener.accept()
            conn.settimeout(2.0)
            data = b""
            with contextlib.suppress(OSError), conn:
                while not any(v in data for v in (b"new-session", b"list-", b"show-")):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            if b"new-session" in data:
                dropped.append(data)
                listener.close()
                path.unlink()
                return

    thread = threading.Thread(target=exiting_server, daemon=True)
    thread.start()
    res = env.cli("up")
    thread.join(5)
    assert dropped, "up never reached the exiting server"
    assert res.rc == 0, res
    assert lines_of(res)["alpha"].startswith("started"), res
    env.wait_heartbeat("alpha")


# -- the pieces -------------------------------------------------------------------------------------


def test_which_variables_are_fleet_secrets() -> None:
    from fleet_tui.control.lifecycle import clean_environ, is_fleet_secret

    for name in (
        "MOSAIC_FLEET_GATEWAY_TOKEN",
        "MOSAIC_FLEET_GATEWAY_DSN",
        "FLEET_TEST_PG_DSN",
        "ANY_DSN",
        "MOSAIC_FLEET_WEB_TOKEN",
        "PGPASSWORD",
    ):
        assert is_fleet_secret(name)
    for name in ("PATH", "HOME", "ANTHROPIC_API_KEY", "MOSAIC_FLEET_ROSTER", "DSN_HELPER"):
        assert not is_fleet_secret(name)  # a runtime's own key is the runtime's business
    assert is_fleet_secret("OPS_TOKEN", extra={"OPS_TOKEN"})
    env = {"PATH": "/bin", "TMUX": "x", "A_DSN": "s", "OPS_TOKEN": "t"}
    assert clean_environ(env, {"OPS_TOKEN"}) == {"PATH": "/bin"}
    # the OTLP exporter's headers: not inherited, but an agent's own roster env may set them
    assert not is_fleet_secret("OTEL_EXPORTER_OTLP_HEADERS")
    assert clean_environ({"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "k", "PATH": "/b"}) == {"PATH": "/b"}


def test_login_shell_falls_back(tmp_path: Path) -> None:
    import pwd

    from fleet_tui.control.lifecycle import login_shell

    assert login_shell({"SHELL": "/bin/sh"}) == "/bin/sh"
    entry = pwd.getpwuid(os.getuid()).pw_shell
    want = entry if os.access(entry, os.X_OK) else "/bin/sh"
    assert login_shell({"SHELL": str(tmp_path / "no-such-shell")}) == want
    assert login_shell({"SHELL": "relative/sh"}) == want
    assert login_shell({}) == want


def test_cwd_expansion() -> None:
    from fleet_tui.control.lifecycle import LaunchError, expand_cwd

    assert expand_cwd(None, "/home/u") == "/home/u"
    assert expand_cwd("~", "/home/u") == "/home/u"
    assert expand_cwd("~/work/a/", "/home/u") == "/home/u/work/a"
    assert expand_cwd("/srv/x/../y", "/home/u") == "/srv/y"
    with pytest.raises(LaunchError, match="relative"):
        expand_cwd("work", "/home/u")
