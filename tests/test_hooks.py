"""Hook adapters, keepalive and statusLine, through the real `fleet-tui` executable.

A stand-in runtime (a shell script named `claude` or `codex`, so it is found as the runtime by
its process name) runs the hook for each payload a test drops in its inbox, exactly as the
runtime would: JSON on stdin (Claude Code hooks, Codex hooks) or as the last argument (Codex
notify). Inside a real pane of a private tmux server, `$TMUX_PANE` discovery is exercised.
Payloads are built per RUNTIME-FORMATS.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleet_tui.adapters.keepalive import keepalive_running
from fleet_tui.adapters.statusline import record_windows
from fleet_tui.control.panes import ack_accepted, wait_for_ack
from fleet_tui.model.records import Heartbeat, UsageSample
from fleet_tui.protocol.acks import message_hash
from fleet_tui.sources.spool import HeartbeatSpool
from tests.conftest import FleetEnv, wait_until

FLEET_TUI = str(Path(sys.executable).parent / "fleet-tui")
SOCKET = "mosaic-fleet"

RUNTIME_SCRIPT = r"""#!/bin/sh
# A stand-in for the runtime: runs the hook for each payload dropped in the inbox ($1), as the
# runtime does, and keeps what the hook printed and its exit status beside the payload.
cd "$1" || exit 1
while :; do
  for f in *.json; do
    [ -e "$f" ] || continue
    mv "$f" "$f.run"
    case "$f" in *status*) "$FLEET_TUI" statusline <"$f.run" >"$f.out" 2>"$f.err"; echo $? >"$f.rc"; continue;; esac
    if [ "$KIND" = notify ]; then
      "$FLEET_TUI" hook codex $HOOK_ARGS "$(cat "$f.run")" </dev/null >"$f.out" 2>"$f.err"
    else
      "$FLEET_TUI" hook "$RUNTIME" $HOOK_ARGS <"$f.run" >"$f.out" 2>"$f.err"
    fi
    echo $? >"$f.rc"
  done
  sleep 0.02
done
"""


class Runtime:
    """A stand-in runtime process and its inbox."""

    def __init__(self, env: FleetEnv, runtime: str = "claude", tag: str = "rt") -> None:
        self.env = env
        self.runtime = runtime
        self.bin = env.base / f"bin-{tag}"
        self.inbox = env.base / f"inbox-{tag}"
        self.bin.mkdir()
        self.inbox.mkdir()
        self.script = self.bin / runtime
        self.script.write_text(RUNTIME_SCRIPT)
        self.script.chmod(0o755)
        self.count = 0

    def variables(self, kind: str = "stdin", hook_args: str = "") -> dict[str, str]:
        return {
            "FLEET_TUI": FLEET_TUI,
            "RUNTIME": self.runtime,
            "KIND": kind,
            "HOOK_ARGS": hook_args,
        }

    def send(
        self, payload: dict[str, Any] | bytes, timeout: float = 15.0, *, statusline: bool = False
    ) -> tuple[int, str, str]:
        """Drop one payload; wait for the hook's (or the statusLine command's) exit status;
        (rc, stdout, stderr)."""
        self.count += 1
        name = f"{self.count:03d}{'-status' if statusline else ''}.json"
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        tmp = self.inbox / f".{name}"
        tmp.write_bytes(data)
        tmp.rename(self.inbox / name)
        rc_path = self.inbox / f"{name}.rc"
        wait_until(
            lambda: rc_path.exists() and rc_path.read_text().strip(),
            timeout=timeout,
            message=f"hook run of payload {name}",
        )
        out = (self.inbox / f"{name}.out").read_text()
        err = (self.inbox / f"{name}.err").read_text()
        return int(rc_path.read_text()), out, err


def base_payload(event: str, **extra: Any) -> dict[str, Any]:
    return {
        "session_id": "0b6c2f7e-1111-2222-3333-444455556666",
        "transcript_path": "/w/app/.claude/projects/-w-app/0b6c.jsonl",
        "cwd": "/w/app",
        "permission_mode": "default",
        "hook_event_name": event,
        **extra,
    }


def read_hb(env: FleetEnv, name: str) -> Heartbeat:
    hb = HeartbeatSpool(env.state_dir).read_heartbeat(name)
    assert hb.heartbeat is not None, hb.error
    return hb.heartbeat


@pytest.fixture
def pane_runtime(fleet_env: FleetEnv) -> Iterator[tuple[Runtime, int]]:
    """A stand-in Claude Code in a real pane of session `coder1` on a private server."""
    fleet_env.write_roster([{"name": "coder1", "role": "coder", "runtime": "claude"}])
    rt = Runtime(fleet_env)
    fleet_env.start(
        SOCKET,
        "coder1",
        ["env", *(f"{k}={v}" for k, v in rt.variables().items()), str(rt.script), str(rt.inbox)],
    )
    pid = wait_until(lambda: _find_pid(fleet_env.pane_pid(SOCKET, "coder1"), "claude"))
    yield rt, pid


def _find_pid(root: int, comm: str) -> int | None:
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                return pid
            todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            continue
    return None


# -- Claude Code hooks in a real pane --------------------------------------------------------


@pytest.mark.tmux
def test_claude_events_set_state_acks_and_show_in_ps(
    fleet_env: FleetEnv, pane_runtime: tuple[Runtime, int]
) -> None:
    rt, runtime_pid = pane_runtime
    spool = HeartbeatSpool(fleet_env.state_dir)
    steps: list[tuple[dict[str, Any], str, str]] = [
        (base_payload("SessionStart", source="startup", model="claude-opus-4-7"), "idle", "session start"),
        (base_payload("PreToolUse", tool_name="Bash", tool_input={"command": "ls"}, tool_use_id="t1"), "busy", "tool: Bash"),
        (base_payload("SessionStart", source="compact"), "busy", "session start (compact)"),
        (base_payload("Notification", message="Claude needs your permission", notification_type="permission_prompt"), "waiting_input", "permission"),
        (base_payload("PostToolUse", tool_name="Bash", tool_use_id="t1"), "busy", "tool done: Bash"),
        (base_payload("Stop", stop_hook_active=False, last_assistant_message="done"), "idle", "turn finished"),
        (base_payload("Notification", notification_type="elicitation_dialog"), "waiting_input", "question"),
        (base_payload("Notification", notification_type="idle_prompt"), "idle", "waiting for a prompt"),
        (base_payload("StopFailure", error_type="rate_limit"), "blocked", "rate limited"),
        (base_payload("StopFailure", error_type="server_error"), "error", "error: server_error"),
    ]  # fmt: skip
    last_seq = -1
    for payload, state, detail in steps:
        assert rt.send(payload) == (0, "", ""), payload["hook_event_name"]
        hb = read_hb(fleet_env, "coder1")
        assert (hb.state.value, hb.via, hb.runtime) == (state, "hook:claude", "claude")
        assert detail in (hb.detail or "")
        assert hb.pid == runtime_pid  # the runtime, not the hook or a shell
        assert (hb.tenant_id, hb.host) == ("acme", "h1")  # the roster's
        assert hb.model == "claude-opus-4-7"
        assert hb.seq > last_seq
        last_seq = hb.seq

    # A prompt: busy, and its hash acked (what `send --verify` waits for), earlier acks kept.
    before = read_hb(fleet_env, "coder1")
    assert rt.send(base_payload("UserPromptSubmit", prompt="first task")) == (0, "", "")
    prompt = "fix the tests\r\nthen run them  \n"
    rt.send(base_payload("UserPromptSubmit", prompt=prompt))
    took = wait_for_ack(
        lambda: spool.read_heartbeat("coder1").heartbeat, before, message_hash(prompt), timeout_s=1
    )
    assert took is not None
    hb = read_hb(fleet_env, "coder1")
    assert hb.state.value == "busy"
    assert hb.acks[-2:] == [
        message_hash("first task"),
        message_hash("fix the tests\nthen run them"),
    ]
    assert ack_accepted(before.acks, hb.acks, message_hash(prompt), newer=True)

    # ps shows the agent alive on the hook's heartbeat.
    ps = fleet_env.ps_json()
    (agent,) = [a for a in ps["agents"] if a["name"] == "coder1"]
    assert agent["health"] == "healthy", agent["health_reason"]
    assert agent["heartbeat"]["state"] == "busy"
    assert agent["heartbeat"]["seq"] == hb.seq

    # SessionEnd: stopping, and the keepalive started at SessionStart goes away.
    assert keepalive_running(fleet_env.state_dir, "coder1")
    assert rt.send(base_payload("SessionEnd", reason="prompt_input_exit")) == (0, "", "")
    assert read_hb(fleet_env, "coder1").state.value == "stopping"
    wait_until(
        lambda: not keepalive_running(fleet_env.state_dir, "coder1"),
        message="keepalive exit after SessionEnd",
    )


@pytest.mark.tmux
def test_hook_echoes_a_pending_ping(fleet_env: FleetEnv, pane_runtime: tuple[Runtime, int]) -> None:
    rt, _ = pane_runtime
    rt.send(base_payload("SessionStart", source="resume"))
    assert read_hb(fleet_env, "coder1").state.value == "idle"
    HeartbeatSpool(fleet_env.state_dir).write_ping("coder1", "n0nce42", datetime.now(UTC))
    rt.send(base_payload("PreToolUse", tool_name="Read"))
    assert read_hb(fleet_env, "coder1").echo == "n0nce42"


@pytest.mark.tmux
def test_statusline_in_a_pane_names_the_agent(
    fleet_env: FleetEnv, pane_runtime: tuple[Runtime, int]
) -> None:
    rt, _ = pane_runtime
    rc, out, err = rt.send(statusline_payload(), statusline=True)
    assert (rc, err) == (0, "")
    assert out.startswith("coder1 · Opus") and "5h 38%" in out
    assert len(usage_lines(fleet_env)) == 2


@pytest.mark.tmux
def test_agent_name_from_the_sessions_mosaic_agent_option(
    fleet_env: FleetEnv, pane_runtime: tuple[Runtime, int]
) -> None:
    rt, _ = pane_runtime
    fleet_env.tmux(SOCKET, "set-option", "-t", "=coder1:", "@mosaic_agent", "reviewer7")
    rt.send(base_payload("Stop"))
    assert fleet_env.heartbeat("reviewer7") is not None
    assert fleet_env.heartbeat("coder1") is None


GARBAGE = [
    b"",
    b"not json at all",
    b"[1, 2, 3]",
    b'{"hook_event_name": 5}',
    b'{"no_event": true}',
    b"\xff\xfe\x00\x1b]52;c;AAAA\x07",
    b"{" * 100_000,
]


@pytest.mark.parametrize("garbage", GARBAGE, ids=range(len(GARBAGE)))
def test_hook_is_silent_and_exits_0_on_garbage(fleet_env: FleetEnv, garbage: bytes) -> None:
    proc = subprocess.run(
        [FLEET_TUI, "hook", "claude", "--agent", "a1", "--no-keepalive"],
        input=garbage,
        capture_output=True,
        env=fleet_env.env,
        timeout=30,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    assert fleet_env.heartbeat("a1") is None
    log = (fleet_env.state_dir / "hooks" / "hooks.log").read_text()
    assert "hook claude" in log


@pytest.mark.parametrize(
    "case",
    ["no tmux, no --agent", "unwritable state dir", "bad agent name", "bad flag", "codex no arg"],
)
def test_hook_is_silent_and_exits_0_when_something_is_wrong(fleet_env: FleetEnv, case: str) -> None:
    args = ["hook", "claude", "--agent", "a1", "--no-keepalive"]
    env = dict(fleet_env.env)
    if case == "no tmux, no --agent":
        args = ["hook", "claude"]
    elif case == "unwritable state dir":
        blocker = fleet_env.base / "file"
        blocker.write_text("x")
        args += ["--state-dir", str(blocker / "state")]
    elif case == "bad agent name":
        args = ["hook", "claude", "--agent", "../../etc/x"]
    elif case == "bad flag":
        args += ["--frobnicate"]
    else:
        args = ["hook", "codex", "--agent", "a1"]
    payload = json.dumps(base_payload("Stop")).encode()
    proc = subprocess.run(
        [FLEET_TUI, *args], input=payload, capture_output=True, env=env, timeout=30, check=False
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b""), case
    if case == "codex no arg":  # a Codex hook payload on stdin is understood
        assert fleet_env.heartbeat("a1") is not None
    elif case == "bad flag":  # ignored: the heartbeat is still written
        assert fleet_env.heartbeat("a1") is not None
    else:
        assert not (fleet_env.state_dir / "heartbeats").exists() or not list(
            (fleet_env.state_dir / "heartbeats").iterdir()
        )
    why = {
        "no tmux, no --agent": "no agent",
        "bad agent name": "invalid agent name",
        "bad flag": "frobnicate",
    }
    if case in why:  # the reason is in the hooks log, not on the terminal
        assert why[case] in (fleet_env.state_dir / "hooks" / "hooks.log").read_text()


# -- Codex: notify (JSON argument) and hooks (stdin) ----------------------------------------------


@pytest.mark.tmux
def test_codex_notify_and_hooks_in_a_real_pane(fleet_env: FleetEnv) -> None:
    fleet_env.write_roster([{"name": "coder2", "role": "coder", "runtime": "codex"}])
    notify = Runtime(fleet_env, "codex", "notify")
    fleet_env.start(
        SOCKET,
        "coder2",
        [
            "env",
            *(f"{k}={v}" for k, v in notify.variables("notify", "--no-keepalive").items()),
            str(notify.script),
            str(notify.inbox),
        ],
    )
    turn = {
        "type": "agent-turn-complete",
        "thread-id": "b5f6c1c2-aaaa",
        "turn-id": "12345",
        "cwd": "/w/app",
        "client": "codex-tui",
        "input-messages": ["fix the tests", "and lint"],
        "last-assistant-message": "All tests pass.",
    }
    assert notify.send(turn) == (0, "", "")
    hb = read_hb(fleet_env, "coder2")
    assert (hb.state.value, hb.via, hb.runtime, hb.detail) == (
        "idle",
        "hook:codex",
        "codex",
        "turn complete",
    )
    assert hb.acks == [message_hash("fix the tests"), message_hash("and lint")]
    codex_pid = _find_pid(fleet_env.pane_pid(SOCKET, "coder2"), "codex")
    assert hb.pid == codex_pid

    # The hooks of newer builds come on stdin (a second pane of the same session).
    hooks = Runtime(fleet_env, "codex", "hooks")
    fleet_env.tmux(
        SOCKET,
        "split-window",
        "-t",
        "=coder2:",
        "env",
        *(f"{k}={v}" for k, v in hooks.variables("stdin", "--no-keepalive").items()),
        str(hooks.script),
        str(hooks.inbox),
    )
    payload = base_payload(
        "PermissionRequest", turn_id="7", model="gpt-5.3-codex", tool_name="shell"
    )
    assert hooks.send(payload) == (0, "", "")
    hb2 = read_hb(fleet_env, "coder2")
    assert (hb2.state.value, hb2.model) == ("waiting_input", "gpt-5.3-codex")
    assert hb2.seq == 0  # another runtime pid: seq starts again
    assert hb2.acks == hb.acks  # earlier acks kept
    assert hooks.send(base_payload("UserPromptSubmit", prompt="go on")) == (0, "", "")
    assert read_hb(fleet_env, "coder2").state.value == "busy"
    assert read_hb(fleet_env, "coder2").seq == 1
    # the sessions seen in the pane are noted as the agent's (`usage` attributes by them)
    from fleet_tui.sources.usage import session_agents

    assert session_agents(fleet_env.state_dir) == {
        "b5f6c1c2-aaaa": "coder2",
        "0b6c2f7e-1111-2222-3333-444455556666": "coder2",
    }


# -- the keepalive ---------------------------------------------------------------------------------


def _start_runtime(
    fleet_env: FleetEnv, agent: str, hook_args: str
) -> tuple[Runtime, subprocess.Popen[bytes]]:
    rt = Runtime(fleet_env, "claude", f"{agent}-{time.monotonic_ns()}")
    env = {**fleet_env.env, **rt.variables("stdin", f"--agent {agent} {hook_args}")}
    proc = subprocess.Popen(
        [str(rt.script), str(rt.inbox)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return rt, proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=5)


def test_keepalive_refreshes_answers_pings_and_ends_with_the_runtime(fleet_env: FleetEnv) -> None:
    rt, proc = _start_runtime(fleet_env, "k1", "--interval 0.3")
    try:
        assert rt.send(base_payload("SessionStart", source="startup")) == (0, "", "")
        first = read_hb(fleet_env, "k1")
        assert first.pid == proc.pid and first.via == "hook:claude"
        # Refreshed between events: same state, a newer ts, seq+1, via the keepalive.

        def refreshed() -> Heartbeat | None:
            hb = read_hb(fleet_env, "k1")
            return hb if hb.via == "keepalive:claude" and hb.seq >= 2 else None

        fresh = wait_until(refreshed, timeout=10, message="keepalive refresh")
        assert fresh.state == first.state and fresh.ts > first.ts and fresh.pid == proc.pid
        Heartbeat.model_validate_json(fleet_env.heartbeat_path("k1").read_text())
        # A ping is answered by the keepalive (about 0.3 s quiet; generous for a loaded machine:
        # without the keepalive nothing would ever answer it).
        HeartbeatSpool(fleet_env.state_dir).write_ping("k1", "abc123", datetime.now(UTC))
        wait_until(lambda: read_hb(fleet_env, "k1").echo == "abc123", timeout=10, message="echo")
        assert keepalive_running(fleet_env.state_dir, "k1")
    finally:
        _stop(proc)
    # The runtime is gone: the keepalive exits and the heartbeat ages honestly.
    wait_until(lambda: not keepalive_running(fleet_env.state_dir, "k1"), timeout=5, message="exit")
    last = read_hb(fleet_env, "k1")
    time.sleep(0.8)
    assert read_hb(fleet_env, "k1").seq == last.seq

    # The runtime starts again (a new pid): seq starts again, a new keepalive serves it.
    rt2, proc2 = _start_runtime(fleet_env, "k1", "--interval 0.3")
    try:
        rt2.send(base_payload("SessionStart", source="startup"))
        hb = read_hb(fleet_env, "k1")
        assert (hb.seq, hb.pid, hb.state.value) == (0, proc2.pid, "idle")
        wait_until(
            lambda: read_hb(fleet_env, "k1").via == "keepalive:claude", message="new keepalive"
        )
    finally:
        _stop(proc2)


def test_keepalive_does_not_keep_a_silent_busy_agent_healthy(fleet_env: FleetEnv) -> None:
    rt, proc = _start_runtime(fleet_env, "k2", "--interval 0.2 --busy-silence 1")
    try:
        rt.send(base_payload("SessionStart", source="startup"))
        rt.send(base_payload("UserPromptSubmit", prompt="a long task"))
        busy_at = read_hb(fleet_env, "k2").ts
        wait_until(lambda: read_hb(fleet_env, "k2").via == "keepalive:claude", message="a refresh")
        # No hook event for more than busy_silence_s: refreshing stops, pings go unanswered.
        time.sleep(2.5)
        frozen = read_hb(fleet_env, "k2")
        assert frozen.state.value == "busy"
        # The last refresh came within busy_silence (1 s) of the event; a second of slack for
        # a loaded machine, far below the 2.5 s that a keepalive still refreshing would reach.
        assert frozen.ts - busy_at <= timedelta(seconds=2.0)
        HeartbeatSpool(fleet_env.state_dir).write_ping("k2", "wedged", datetime.now(UTC))
        time.sleep(0.8)
        assert read_hb(fleet_env, "k2").seq == frozen.seq
        assert keepalive_running(fleet_env.state_dir, "k2")  # still there, just silent
        # The next event (the turn ends) brings it back.
        rt.send(base_payload("Stop"))
        wait_until(
            lambda: (
                (hb := read_hb(fleet_env, "k2")).via == "keepalive:claude" and hb.echo == "wedged"
            ),
            timeout=3,
            message="refresh after Stop",
        )
    finally:
        _stop(proc)


def test_keepalive_exits_when_another_process_writes_the_heartbeat(fleet_env: FleetEnv) -> None:
    rt, proc = _start_runtime(fleet_env, "k3", "--interval 0.3")
    try:
        rt.send(base_payload("SessionStart", source="startup"))
        wait_until(lambda: keepalive_running(fleet_env.state_dir, "k3"), message="keepalive")
        res = fleet_env.cli("heartbeat", "k3", "--state", "idle", "--pid", str(os.getpid()))
        assert res.rc == 0, res
        wait_until(
            lambda: not keepalive_running(fleet_env.state_dir, "k3"), timeout=5, message="exit"
        )
        assert read_hb(fleet_env, "k3").via is None  # the other writer's record stays
    finally:
        _stop(proc)


# -- statusLine ----------------------------------------------------------------------------------


def statusline_payload(
    five: float = 37.5, seven: float = 61.0, limits: bool = True
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "session_id": "s1",
        "transcript_path": "/w/app/t.jsonl",
        "cwd": "/w/app",
        "version": "2.1.120",
        "model": {"id": "claude-opus-4-7", "display_name": "Opus\x1b]0;pwned\x07"},
        "cost": {"total_cost_usd": 1.23, "total_duration_ms": 123456},
        "context_window": {"used_percentage": 41},
    }
    if limits:
        doc["rate_limits"] = {
            "five_hour": {"used_percentage": five, "resets_at": 1781290000},
            "seven_day": {"used_percentage": seven, "resets_at": 1781730000},
        }
    return doc


def usage_lines(env: FleetEnv) -> list[UsageSample]:
    path = env.state_dir / "usage.jsonl"
    if not path.exists():
        return []
    return [UsageSample.model_validate_json(line) for line in path.read_text().splitlines()]


def statusline(env: FleetEnv, payload: dict[str, Any] | bytes, *args: str) -> str:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    proc = subprocess.run(
        [FLEET_TUI, "statusline", *args],
        input=data,
        capture_output=True,
        env=env.env,
        timeout=30,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (0, b"")
    out = proc.stdout.decode()
    assert out.count("\n") == 1 and "\x1b" not in out and "\x07" not in out
    return out.strip()


def test_statusline_records_windows_once_and_prints_a_line(fleet_env: FleetEnv) -> None:
    fleet_env.write_roster([])
    line = statusline(fleet_env, statusline_payload())
    assert "Opus" in line and "5h 38%" in line and "7d 61%" in line and "ctx 41%" in line
    assert "pwned" not in line  # the title sequence in the model name is dropped whole
    samples = usage_lines(fleet_env)
    by_window = {s.window: s for s in samples}
    assert sorted(by_window) == ["5h", "weekly"]
    five, week = by_window["5h"], by_window["weekly"]
    assert (five.window_minutes, five.used_percent) == (300, 37.5)
    assert five.resets_at == datetime.fromtimestamp(1781290000, UTC)
    assert (week.window_minutes, week.used_percent) == (10080, 61.0)
    assert week.resets_at == datetime.fromtimestamp(1781730000, UTC)
    for s in samples:
        assert (s.tenant_id, s.host, s.account) == ("acme", "h1", "claude")
        assert (s.reset_confidence, s.source) == ("provider", "statusline")
        assert abs((datetime.now(UTC) - s.observed_at).total_seconds()) < 30

    # The same windows again: nothing appended. One window moved: only that one.
    statusline(fleet_env, statusline_payload())
    assert len(usage_lines(fleet_env)) == 2
    statusline(fleet_env, statusline_payload(five=40.0))
    samples = usage_lines(fleet_env)
    assert len(samples) == 3 and (samples[-1].window, samples[-1].used_percent) == ("5h", 40.0)


def test_statusline_account_from_flag_or_budgets(fleet_env: FleetEnv) -> None:
    budgets = fleet_env.config_home / "mosaic" / "budgets.yaml"
    budgets.parent.mkdir(parents=True, exist_ok=True)
    budgets.write_text(
        "version: 1\ntenant_id: acme\naccounts:\n"
        "  - {id: claude-max-a, provider: anthropic, runtime: claude, regime: subscription}\n"
        "  - {id: openai-api, provider: openai, regime: api, ceiling_usd: 200}\n"
    )
    statusline(fleet_env, statusline_payload())
    assert {s.account for s in usage_lines(fleet_env)} == {"claude-max-a"}
    statusline(fleet_env, statusline_payload(), "--account", "other-acct")
    assert {s.account for s in usage_lines(fleet_env)[2:]} == {"other-acct"}


def test_statusline_without_rate_limits_or_with_garbage(fleet_env: FleetEnv) -> None:
    line = statusline(fleet_env, statusline_payload(limits=False))
    assert "Opus" in line and "ctx 41%" in line and "5h" not in line
    assert usage_lines(fleet_env) == []
    assert statusline(fleet_env, b"\x00garbage{") == "fleet-tui"
    assert usage_lines(fleet_env) == []


def test_statusline_records_no_percentage_the_budget_reader_would_reject(
    fleet_env: FleetEnv,
) -> None:
    """A window outside 0..100 % (or a number too big for a float) is not written to
    usage.jsonl, where every budget run would report it as a bad line; the rest still is."""
    payload = statusline_payload(five=-5.0, seven=61.0)
    payload["context_window"] = {"used_percentage": 10**400}
    line = statusline(fleet_env, json.dumps(payload).encode())
    assert "7d 61%" in line and "5h" not in line and "ctx" not in line
    assert [(s.window, s.used_percent) for s in usage_lines(fleet_env)] == [("weekly", 61.0)]
    statusline(fleet_env, statusline_payload(five=250.0, seven=61.0))
    assert [s.window for s in usage_lines(fleet_env)] == ["weekly"]


def test_statusline_rewrites_an_unchanged_window_after_a_minute(fleet_env: FleetEnv) -> None:
    windows: dict[str, tuple[float, float | None]] = {"five_hour": (10.0, 1781290000.0)}
    kw: dict[str, Any] = {"account_flag": "acct", "budgets": None, "roster": None}
    t0 = time.time()
    assert record_windows(fleet_env.state_dir, windows, now=t0, **kw) == 1
    assert record_windows(fleet_env.state_dir, windows, now=t0 + 30, **kw) == 0
    assert record_windows(fleet_env.state_dir, windows, now=t0 + 61, **kw) == 1
    assert len(usage_lines(fleet_env)) == 2


# -- the fast path (cli_hooks.fast_main): the same results without building the parser ----------

FAST = (
    "import sys, fleet_tui.cli.main; from fleet_tui.cli.hooks import fast_main; "
    "rc = fast_main(sys.argv[1:]); sys.exit(3 if rc is None else rc)"
)


@pytest.mark.parametrize("way", ["cli", "fast"])
def test_fast_path_and_cli_write_the_same_records(fleet_env: FleetEnv, way: str) -> None:
    def run(*args: str, stdin: bytes = b"") -> tuple[int, bytes, bytes]:
        argv = [FLEET_TUI, *args] if way == "cli" else [sys.executable, "-c", FAST, *args]
        p = subprocess.run(argv, input=stdin, capture_output=True, env=fleet_env.env, check=False)
        return p.returncode, p.stdout, p.stderr

    prompt = json.dumps(base_payload("UserPromptSubmit", prompt="ship it")).encode()
    assert run("hook", "claude", "--agent", "f1", "--no-keepalive", "--bogus", stdin=prompt) == (
        0,
        b"",
        b"",
    )
    hb = read_hb(fleet_env, "f1")
    assert (hb.state.value, hb.acks, hb.via) == ("busy", [message_hash("ship it")], "hook:claude")
    notify = json.dumps({"type": "agent-turn-complete", "input-messages": ["x"]})
    assert run("hook", "codex", "--agent=f1", "--no-keepalive", notify) == (0, b"", b"")
    assert read_hb(fleet_env, "f1").state.value == "idle"
    assert run("hook", "claude", "--agent", "f1", stdin=b"\x00junk") == (0, b"", b"")
    rc, out, err = run(
        "statusline", "--account", "acct", stdin=json.dumps(statusline_payload()).encode()
    )
    assert (rc, err) == (0, b"") and b"5h 38%" in out
    assert [(s.account, s.window) for s in usage_lines(fleet_env)] == [
        ("acct", "5h"),
        ("acct", "weekly"),
    ]


def test_hook_returns_at_once_though_it_starts_a_keepalive(fleet_env: FleetEnv) -> None:
    """The runtime reads the hook's stdout and stderr to their end: the keepalive the hook
    starts must not hold them open, or the runtime would wait for it."""
    start = json.dumps(base_payload("SessionStart", source="startup")).encode()
    t0 = time.monotonic()
    proc = subprocess.run(
        [FLEET_TUI, "hook", "claude", "--agent", "p1"],
        input=start,
        capture_output=True,
        env=fleet_env.env,
        timeout=20,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    assert time.monotonic() - t0 < 10
    wait_until(lambda: keepalive_running(fleet_env.state_dir, "p1"), message="keepalive")
    end = json.dumps(base_payload("SessionEnd", reason="logout")).encode()
    subprocess.run(
        [FLEET_TUI, "hook", "claude", "--agent", "p1"],
        input=end,
        capture_output=True,
        env=fleet_env.env,
        timeout=20,
        check=True,
    )
    wait_until(lambda: not keepalive_running(fleet_env.state_dir, "p1"), message="keepalive exit")


def test_hooks_follow_a_roster_change_and_keep_their_log_bounded(fleet_env: FleetEnv) -> None:
    stop = json.dumps(base_payload("Stop")).encode()
    argv = [FLEET_TUI, "hook", "claude", "--agent", "r1", "--no-keepalive"]
    subprocess.run(argv, input=stop, env=fleet_env.env, timeout=30, check=True)
    login_hb = read_hb(fleet_env, "r1")
    assert login_hb.host == os.uname().nodename  # no roster: login name and hostname
    fleet_env.write_roster([], tenant="acme", host="h1")
    subprocess.run(argv, input=stop, env=fleet_env.env, timeout=30, check=True)
    assert (read_hb(fleet_env, "r1").tenant_id, read_hb(fleet_env, "r1").host) == ("acme", "h1")
    fleet_env.write_roster([], tenant="other-tenant", host="h2")
    subprocess.run(argv, input=stop, env=fleet_env.env, timeout=30, check=True)
    assert (read_hb(fleet_env, "r1").tenant_id, read_hb(fleet_env, "r1").host) == (
        "other-tenant",
        "h2",
    )
    # a tenant the roster load and the gateway refuse (over 128 characters) is no tenant here
    fleet_env.write_roster([], tenant="t" * 129, host="h3")
    subprocess.run(argv, input=stop, env=fleet_env.env, timeout=30, check=True)
    assert read_hb(fleet_env, "r1").tenant_id == login_hb.tenant_id
    assert "no valid tenant_id" in (fleet_env.state_dir / "hooks" / "hooks.log").read_text()

    from fleet_tui.adapters.common import LOG_LIMIT_BYTES, log_problem

    for i in range(3000):
        log_problem(fleet_env.state_dir, f"problem {i} " + "x" * 100)
    logs = fleet_env.state_dir / "hooks"
    assert (logs / "hooks.log").stat().st_size <= LOG_LIMIT_BYTES + 400
    assert (logs / "hooks.log.1").stat().st_size <= LOG_LIMIT_BYTES + 400
    assert "problem 2999" in (logs / "hooks.log").read_text()


# -- Hooks installed for the user fire in every session: only fleet agents get heartbeats -----


@pytest.mark.tmux
def test_a_hook_in_an_operators_own_session_writes_nothing_until_the_roster_names_it(
    fleet_env: FleetEnv,
) -> None:
    fleet_env.write_roster([{"name": "coder1", "role": "coder", "runtime": "claude"}])
    rt = Runtime(fleet_env)
    argv = ["env", *(f"{k}={v}" for k, v in rt.variables().items()), str(rt.script), str(rt.inbox)]
    # A plain session (no @mosaic_agent) on the operator's own socket, as a shell would be.
    fleet_env.start("work", "notes", argv, agent=False)
    rc, out, err = rt.send(base_payload("UserPromptSubmit", prompt="hello"))
    assert (rc, out, err) == (0, "", "")
    assert fleet_env.heartbeat("notes") is None
    log = (fleet_env.state_dir / "hooks" / "hooks.log").read_text()
    assert "session notes on socket work is not a fleet agent" in log
    # Once the roster names it, the same session is an agent.
    fleet_env.write_roster(
        [
            {"name": "coder1", "role": "coder", "runtime": "claude"},
            {"name": "notes", "role": "coder", "runtime": "claude"},
        ]
    )
    rc, out, err = rt.send(base_payload("UserPromptSubmit", prompt="hello"))
    assert (rc, out, err) == (0, "", "")
    hb = read_hb(fleet_env, "notes")
    assert hb.state.value == "busy" and hb.via == "hook:claude"


def test_hooks_know_the_same_fleet_sockets_as_the_join() -> None:
    from fleet_tui.adapters.event import FLEET_SOCKETS as HOOKS
    from fleet_tui.core.join import FLEET_SOCKETS as JOIN

    assert HOOKS == JOIN


# -- the hook path stays light: no pydantic, Rich or Textual, imported or run ----------------

LIGHT = """
import json, sys
import fleet_tui.adapters.claude, fleet_tui.adapters.codex, fleet_tui.adapters.common
import fleet_tui.adapters.event, fleet_tui.adapters.install, fleet_tui.adapters.keepalive
import fleet_tui.adapters.pane
import fleet_tui.adapters.statusline, fleet_tui.cli.hooks
import fleet_tui.protocol.acks, fleet_tui.protocol.clock, fleet_tui.protocol.files
import fleet_tui.protocol.ledger, fleet_tui.protocol.yamldoc
from fleet_tui.cli.hooks import fast_main

prompt = json.dumps({"hook_event_name": "UserPromptSubmit", "prompt": "hi", "session_id": "s-1"})
assert fast_main(["hook", "codex", "--agent", "l1", "--no-keepalive", prompt]) == 0
sys.stdin = open(sys.argv[1])
assert fast_main(["statusline"]) == 0
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"pydantic", "rich", "textual"})
assert not heavy, heavy
"""


def test_the_hook_path_imports_no_pydantic_rich_or_textual(fleet_env: FleetEnv) -> None:
    """A hook runs on every runtime event and must start fast: importing every adapter and
    running a hook and the statusLine (roster and budgets read, a heartbeat and usage samples
    written) loads none of pydantic, Rich or Textual."""
    fleet_env.write_roster([], tenant="acme", host="h1")
    budgets = fleet_env.config_home / "mosaic" / "budgets.yaml"
    budgets.parent.mkdir(parents=True, exist_ok=True)
    budgets.write_text(
        "version: 1\ntenant_id: acme\naccounts:\n"
        "  - {id: claude-max-a, provider: anthropic, runtime: claude, regime: subscription}\n"
    )
    payload = fleet_env.base / "status.json"
    payload.write_text(json.dumps(statusline_payload()))
    proc = subprocess.run(
        [sys.executable, "-c", LIGHT, str(payload)],
        capture_output=True,
        env=fleet_env.env,
        timeout=60,
        check=False,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    hb = read_hb(fleet_env, "l1")
    assert (hb.tenant_id, hb.host, hb.via) == ("acme", "h1", "hook:codex")
    assert [(s.account, s.window) for s in usage_lines(fleet_env)] == [
        ("claude-max-a", "5h"),
        ("claude-max-a", "weekly"),
    ]


def test_a_hook_replaces_a_heartbeat_nested_past_the_decoders_limit(fleet_env: FleetEnv) -> None:
    """The previous heartbeat `[[[[...` used to raise RecursionError in the hook, which then
    wrote nothing: it is a record the hook cannot use, so it starts a new one."""
    (fleet_env.state_dir / "heartbeats").mkdir(parents=True, exist_ok=True)
    fleet_env.heartbeat_path("n1").write_text("[" * 60_000)
    prompt = json.dumps(base_payload("UserPromptSubmit", prompt="go")).encode()
    proc = subprocess.run(
        [FLEET_TUI, "hook", "claude", "--agent", "n1", "--no-keepalive"],
        input=prompt,
        capture_output=True,
        env=fleet_env.env,
        timeout=30,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    hb = read_hb(fleet_env, "n1")
    assert (hb.seq, hb.state.value, hb.acks) == (0, "busy", [message_hash("go")])
