"""`fleet-tui stream NAME [--follow] [--lines N]` on real tmux panes (private sockets).

What a script (or another host's dashboard) notices: the pane's text and nothing a terminal
would act on (clipboard writes, screen clears, title sets, C1 controls); --lines; --follow sees a
line printed after it started and ends, exit 0, when the session is killed, on SIGTERM, or when
its reader goes away, its pipe closed; exit 3 for no such agent.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FleetEnv, wait_until

pytestmark = pytest.mark.tmux

SOCK = "mosaic-fleet"

# What a hostile pane prints: a clipboard write (OSC 52), a screen clear (CSI 2J), title sets
# (OSC 0 and 2, and tmux's ESC k), a hyperlink (OSC 8), an 8-bit CSI and OSC (C1, as UTF-8),
# a bell, a DCS string, a cursor move; among them, coloured text (SGR) that may stay.
HOSTILE = (
    "before\\n"
    "\\033]52;c;Y2xpcGJvYXJkIQ==\\007"
    "\\033[2J\\033[H"
    "\\033]0;TITLE-ZERO\\007\\033]2;TITLE-TWO\\033\\\\\\033kTITLE-K\\033\\\\"
    "\\033]8;;http://evil.example/\\033\\\\link\\033]8;;\\033\\\\"
    "\\302\\2332J\\302\\2350;C1-TITLE\\007"
    "\\007\\033Pdcs-payload\\033\\\\\\033[5;5H"
    "\\033[31mred\\033[0m after\\n"
)
# Payloads that must not show. (The text after a C1 control or tmux's `ESC k` title may show
# as plain text: the control is dropped, what follows it is only text.)
SECRETS = ("Y2xpcGJvYXJkIQ", "TITLE-ZERO", "TITLE-TWO", "evil.example", "dcs-payload")
SGR = re.compile("\x1b\\[[0-9;]*m")


def assert_harmless(text: str, *, sgr: bool = False) -> None:
    """Only text, newline, tab (and with `sgr` canonical SGR) in `text`."""
    if sgr:
        text = SGR.sub("", text)
    bad = [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]
    assert not bad, f"control characters passed: {bad!r} in {text!r}"
    for secret in SECRETS:
        assert secret not in text, f"{secret} passed in {text!r}"


def agent(env: FleetEnv, name: str, script: str) -> None:
    """An agent pane running `sh -c script` (marked @mosaic_agent, on the fleet socket)."""
    env.start(SOCK, name, ["sh", "-c", script])


def trigger(env: FleetEnv, name: str) -> Path:
    return env.base / f"go-{name}"


def waiting(env: FleetEnv, name: str, then: str, *, first: str = "ready") -> str:
    """A script: print `first`, wait for the trigger file, then run `then`, then stay."""
    trig = trigger(env, name)
    return (
        f"printf '{first}\\n'; while [ ! -e {trig} ]; do sleep 0.05; done; {then}; exec sleep 600"
    )


def screen_shows(env: FleetEnv, name: str, text: str) -> bool:
    out = env.tmux(SOCK, "capture-pane", "-p", "-t", f"={name}:").stdout
    return text in out


class Follower:
    """A running `fleet-tui stream NAME --follow ...`, its stdout read as it comes."""

    def __init__(self, env: FleetEnv, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleet_tui", "stream", *args, "--follow"],
            env=env.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(env.base),
        )
        self.data = b""

    def read_until(self, needle: str, timeout: float = 10.0) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while needle.encode() not in self.data:
            left = deadline - time.monotonic()
            assert left > 0, f"{needle!r} not seen within {timeout} s: {self.data!r}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"ended before {needle!r}: {self.data!r} {self.err()}")
                self.data += chunk
        return self.text

    def read_more(self, timeout: float) -> None:
        """Whatever comes within `timeout` seconds (one read)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        if select.select([fd], [], [], max(timeout, 0.0))[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"ended: {self.data!r}"
            self.data += chunk

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")

    def finish(self, timeout: float = 10.0) -> int:
        assert self.proc.stdout is not None
        rest, _err = self.proc.communicate(timeout=timeout)
        self.data += rest
        return self.proc.returncode

    def err(self) -> str:
        return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def pipe_open(env: FleetEnv, name: str) -> bool:
    out = env.tmux(SOCK, "display-message", "-p", "-t", f"={name}:", "#{pane_pipe}").stdout
    return out.strip() == "1"


def test_the_visible_pane_without_what_a_terminal_would_act_on(fleet_env: FleetEnv) -> None:
    agent(fleet_env, "hostile", f"printf '{HOSTILE}'; printf 'tail-line\\n'; exec sleep 600")
    wait_until(lambda: screen_shows(fleet_env, "hostile", "tail-line"), message="the output")
    res = fleet_env.cli("stream", "hostile")
    assert res.rc == 0, res
    assert "red after" in res.stdout and "tail-line" in res.stdout
    assert "\x1b" not in res.stdout  # stdout is a pipe: no colour either
    assert_harmless(res.stdout)
    assert res.stdout.endswith("tail-line\n")  # the blank rows below the text are dropped
    assert fleet_env.audit_lines() == []  # reading the screen is not audited (as in the TUI)

    coloured = fleet_env.cli("stream", "hostile", "--color", "always")
    assert coloured.rc == 0, coloured
    assert "\x1b[31mred" in coloured.stdout  # the colour kept, canonical, reset at line end
    assert_harmless(coloured.stdout, sgr=True)
    for line in coloured.stdout.splitlines():
        assert "\x1b" not in line or line.endswith("\x1b[m")


def test_lines_gives_the_last_n_lines_of_scrollback_and_screen(fleet_env: FleetEnv) -> None:
    fleet_env.start(
        SOCK,
        "long",
        ["sh", "-c", "i=1; while [ $i -le 200 ]; do echo row-$i; i=$((i+1)); done; exec sleep 600"],
        height=20,
    )
    wait_until(lambda: screen_shows(fleet_env, "long", "row-200"), message="the rows")
    res = fleet_env.cli("stream", "long", "--lines", "50")
    assert res.rc == 0, res
    assert res.stdout.splitlines() == [f"row-{i}" for i in range(151, 201)]
    visible = fleet_env.cli("stream", "long").stdout.splitlines()
    assert visible[-1] == "row-200" and len(visible) <= 20  # the visible pane only
    bad = fleet_env.cli("stream", "long", "--lines", "0")
    assert bad.rc == 2 and "between 1 and" in bad.stderr


def test_no_such_agent_exits_3(fleet_env: FleetEnv) -> None:
    agent(fleet_env, "present", "exec sleep 600")
    res = fleet_env.cli("stream", "absent")
    assert res.rc == 3
    assert "no agent named 'absent'" in res.stderr
    assert "Traceback" not in res.stderr


def test_follow_prints_new_output_sanitized_and_ends_with_the_session(
    fleet_env: FleetEnv,
) -> None:
    agent(fleet_env, "chatty", waiting(fleet_env, "chatty", f"printf '{HOSTILE}'; echo LATER"))
    wait_until(lambda: screen_shows(fleet_env, "chatty", "ready"), message="the first line")
    follower = Follower(fleet_env, "chatty")
    try:
        follower.read_until("ready\n")  # the visible pane first
        wait_until(lambda: pipe_open(fleet_env, "chatty"), message="the pipe")
        trigger(fleet_env, "chatty").touch()
        text = follower.read_until("LATER\n")
        assert "red after" in text
        assert_harmless(text)
        fleet_env.tmux(SOCK, "kill-session", "-t", "=chatty")
        rc = follower.finish(timeout=10)
    finally:
        follower.kill()
    assert rc == 0
    assert_harmless(follower.text)
    pipes = [a for a in fleet_env.audit_lines() if a["action"] == "pipe"]
    assert [a["outcome"] for a in pipes][:2] == ["started", "opened"]
    assert all(a["surface"] == "cli" and a["agent"] == "chatty" for a in pipes)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "reader gone"])
def test_follow_ends_cleanly_and_closes_its_pipe(fleet_env: FleetEnv, how: str) -> None:
    agent(fleet_env, "quiet", "echo hello; exec sleep 600")
    wait_until(lambda: screen_shows(fleet_env, "quiet", "hello"), message="the first line")
    follower = Follower(fleet_env, "quiet")
    try:
        follower.read_until("hello\n")
        wait_until(lambda: pipe_open(fleet_env, "quiet"), message="the pipe")
        if how == "reader gone":
            assert follower.proc.stdout is not None
            follower.proc.stdout.close()  # the pane is quiet: nothing is written to notice it
            rc = follower.proc.wait(timeout=10)
            err = follower.proc.stderr.read().decode() if follower.proc.stderr else ""
        else:
            follower.proc.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)
            rc = follower.proc.wait(timeout=10)
            err = follower.proc.stderr.read().decode() if follower.proc.stderr else ""
    finally:
        follower.kill()
    assert rc == (130 if how == "SIGINT" else 0), err
    assert "Traceback" not in err and "Exception" not in err, err
    assert not pipe_open(fleet_env, "quiet"), "the pipe was left open"
    outcomes = [a["outcome"] for a in fleet_env.audit_lines() if a["action"] == "pipe"]
    assert outcomes == ["started", "opened", "closed"]


def test_an_unwritable_audit_log_refuses_the_follow(fleet_env: FleetEnv) -> None:
    agent(fleet_env, "guarded", "echo hi; exec sleep 600")
    fleet_env.state_dir.mkdir(parents=True, exist_ok=True)
    (fleet_env.state_dir / "audit.jsonl").mkdir()  # a folder where the log should be
    res = fleet_env.cli("stream", "guarded", "--follow", timeout=20)
    assert res.rc == 5, res
    assert "audit log" in res.stderr
    assert not pipe_open(fleet_env, "guarded")


def test_ssh_surface_is_said_in_the_audit(fleet_env: FleetEnv) -> None:
    agent(fleet_env, "viassh", "echo hi; exec sleep 600")
    wait_until(lambda: screen_shows(fleet_env, "viassh", "hi"), message="the first line")
    follower_env = dict(fleet_env.env, MOSAIC_FLEET_SURFACE="ssh")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet_tui", "stream", "viassh", "--follow"],
        env=follower_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: pipe_open(fleet_env, "viassh"), timeout=10, message="the pipe")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [a for a in fleet_env.audit_lines() if a["action"] == "pipe"]
    assert lines and {a["surface"] for a in lines} == {"ssh"}, json.dumps(lines)


def test_an_operators_own_shell_is_not_streamed(fleet_env: FleetEnv) -> None:
    fleet_env.start(
        "default", "myshell", ["sh", "-c", "echo OPERATOR-SECRET; exec cat"], agent=False
    )
    wait_until(
        lambda: (
            "OPERATOR-SECRET"
            in fleet_env.tmux("default", "capture-pane", "-p", "-t", "=myshell:").stdout
        ),
        message="the shell's output",
    )
    res = fleet_env.cli("stream", "myshell")
    assert res.rc == 3
    assert "OPERATOR-SECRET" not in res.stdout + res.stderr


def test_a_dead_pane_is_shown_and_follow_ends_at_once(fleet_env: FleetEnv) -> None:
    agent(fleet_env, "gone", "echo LAST-WORDS; sleep 0.3")  # the pane stays (remain-on-exit)
    wait_until(
        lambda: (
            fleet_env.tmux(
                SOCK, "display-message", "-p", "-t", "=gone:", "#{pane_dead}"
            ).stdout.strip()
            == "1"
        ),
        message="the dead pane",
    )
    res = fleet_env.cli("stream", "gone", "--follow", timeout=20)
    assert res.rc == 0, res
    # what the pane shows: its text, or (once tmux scrolled it up) tmux's "Pane is dead" line
    assert "Pane is dead" in res.stdout or "LAST-WORDS" in res.stdout, res
    back = fleet_env.cli("stream", "gone", "--lines", "100")
    assert back.rc == 0 and "LAST-WORDS" in back.stdout
    assert not [a for a in fleet_env.audit_lines() if a["action"] == "pipe"]  # no pipe tried


def test_two_followers_share_the_pipe_and_one_leaving_does_not_stop_the_other(
    fleet_env: FleetEnv,
) -> None:
    trig = trigger(fleet_env, "shared")
    script = (
        f"echo ready; while [ ! -e {trig} ]; do sleep 0.05; done; "
        "while true; do echo tick-$(date +%s%N); sleep 0.2; done"
    )
    agent(fleet_env, "shared", script)
    wait_until(lambda: screen_shows(fleet_env, "shared", "ready"), message="the first line")
    first, second = Follower(fleet_env, "shared"), Follower(fleet_env, "shared")
    try:
        first.read_until("ready\n")
        second.read_until("ready\n")
        wait_until(lambda: pipe_open(fleet_env, "shared"), message="the pipe")
        trig.touch()
        first.read_until("tick-")
        second.read_until("tick-")
        first.proc.send_signal(signal.SIGTERM)  # it closes the pipe it shares on its way out
        assert first.proc.wait(timeout=10) == 0
        seen = second.data.count(b"tick-")
        deadline = time.monotonic() + 10
        while second.data.count(b"tick-") < seen + 5:  # the other goes on (it reopens the pipe)
            assert time.monotonic() < deadline, second.data[-300:]
            second.read_more(deadline - time.monotonic())
    finally:
        first.kill()
        second.kill()


def test_an_interrupt_right_after_the_pipe_opened_still_closes_it(fleet_env: FleetEnv) -> None:
    # Ctrl-C (or SIGTERM) can land while open_log is still writing its audit line, after
    # tmux opened the pipe: the follow must close it on its way out all the same. (A signal
    # cannot be aimed at that instant from outside: the interrupt is raised there in process.)
    from fleet_tui.cli import stream as verb
    from fleet_tui.cli.main import build_parser
    from fleet_tui.control.actions import LiveActions

    agent(fleet_env, "quick", "echo hi; exec sleep 600")
    wait_until(lambda: screen_shows(fleet_env, "quick", "hi"), message="the first line")
    args = build_parser("stream").parse_args(["stream", "quick", "--follow"])
    actions, record = verb.find_record(args)

    class InterruptedOpen(LiveActions):
        def open_log(self, record):  # type: ignore[no-untyped-def]
            super().open_log(record)
            assert pipe_open(fleet_env, "quick")
            raise KeyboardInterrupt

    late = InterruptedOpen(actions.runner, actions.state_dir, actions.config, surface="cli")
    with open(os.devnull, "wb") as sink, pytest.raises(KeyboardInterrupt):
        verb.follow(late, record, verb.Output(sink, color=False), None, sink.fileno())
    assert not pipe_open(fleet_env, "quick"), "the pipe was left open"
