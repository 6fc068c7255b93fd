"""The control verbs (`send`, `watch`, `attach`) and `control`'s pipe log, on REAL tmux.

One fleet is shared by the module (`world`): stubs that ack what they receive, a pane running
`cat` (never heartbeats), and a RECORDER pane that appends every byte its tty receives to a file
(raw mode), which is how "nothing typed reaches the agent" is checked. Watching and attaching
run the CLI on a pseudo-terminal, as an operator's terminal would.
"""

from __future__ import annotations

import fcntl
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
from functools import partial
from pathlib import Path

import pytest
from conftest import CliResult, FleetEnv, wait_until

from fleet_tui.control.panes import (
    ack_accepted,
    clean_message,
    close_pipe_log,
    ensure_pipe_log,
    plan_handover,
    popup_argv,
    switch_argv,
    watch_argv,
)
from fleet_tui.protocol.acks import message_hash
from fleet_tui.tmux import session_target

pytestmark = pytest.mark.tmux

SOCK = "mosaic-fleet"
ROSTER = [
    {"name": "orchestrator", "role": "orchestrator"},
    {"name": "enhancer", "role": "enhancer"},
    {"name": "coder0-0", "role": "coder"},
    {"name": "coder1", "role": "coder"},  # no session
    {"name": "catter", "role": "coder", "runtime": "other"},  # runs cat: no heartbeats
    {"name": "crasher", "role": "coder"},  # its pane died
]
RECORDER = """
import os, sys, tty
tty.setraw(0)
out = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
while True:
    data = os.read(0, 4096)
    if not data:
        break
    os.write(out, data)
"""


@pytest.fixture(scope="module")
def world(module_env: FleetEnv) -> Iterator[FleetEnv]:
    env = module_env
    env.write_roster(ROSTER)
    env.stub(SOCK, "orchestrator", wait=False)
    env.stub(SOCK, "enhancer", wait=False)
    env.stub(SOCK, "coder0-0", wait=False, wrapped=True)
    env.start(SOCK, "catter", ["cat"])
    env.start(SOCK, "crasher", ["sh", "-c", "exit 3"])
    script = env.base / "recorder.py"
    script.write_text(RECORDER)
    # A plain session (window-size left at tmux's default): `watch` itself must keep its size.
    env.start(
        SOCK,
        "rec",
        [sys.executable, str(script), str(env.base / "recorded")],
        agent=False,
        width=100,
        height=30,
    )
    for name in ("orchestrator", "enhancer", "coder0-0"):
        env.wait_heartbeat(name)
    yield env


def _acks(env: FleetEnv, name: str) -> list[str]:
    hb = env.heartbeat(name)
    return list(hb["acks"]) if hb else []


def _one_line(res: CliResult) -> str:
    assert len(res.stderr.splitlines()) == 1, res
    assert "Traceback" not in res.stderr
    return res.stderr


def _pane(env: FleetEnv, name: str, fmt: str = "#{pane_id}") -> str:
    return env.tmux(SOCK, "display-message", "-p", "-t", session_target(name), fmt).stdout.strip()


def _send_lines(env: FleetEnv, before: int, *, started: bool = False) -> list[dict[str, object]]:
    """The send records since `before`: outcomes, and with `started` the records written
    before each send (the audit log fails closed: no record, no send)."""
    return [
        x
        for x in env.audit_lines()[before:]
        if x["action"] == "send" and (started or x["outcome"] != "started")
    ]


# -- send ----------------------------------------------------------------------------------------


def test_send_verify_is_acked_and_audited_by_hash_only(world: FleetEnv) -> None:
    before = len(world.audit_lines())
    text = "please rebase onto main and rerun the suite"
    res = world.cli("send", "enhancer", text, "--verify", "--timeout", "10")
    assert res.rc == 0, res
    digest = message_hash(text)
    assert digest in _acks(world, "enhancer")
    assert res.stdout.startswith(f"sent to enhancer ({len(text)} chars, {digest[:19]}")
    assert "accepted in" in res.stdout and res.stderr == ""

    (line,) = _send_lines(world, before)
    assert (line["agent"], line["outcome"]) == ("enhancer", "accepted")
    outcomes = [x["outcome"] for x in _send_lines(world, before, started=True)]
    assert outcomes == ["started", "accepted"]
    assert digest in str(line["detail"]) and f"length={len(text)}" in str(line["detail"])
    raw = (world.state_dir / "audit.jsonl").read_text()
    assert "rebase" not in raw and text not in raw


def test_send_multiline_from_stdin_is_one_message(world: FleetEnv) -> None:
    text = "first line of the task\r\nsecond line\n  third, indented\n"
    before = _acks(world, "orchestrator")
    res = world.cli("send", "orchestrator", "-", "--verify", input=text)
    assert res.rc == 0, res
    acks = _acks(world, "orchestrator")
    assert [a for a in acks if a not in before] == [message_hash(text)]
    for part in text.splitlines():
        assert message_hash(part) not in acks


@pytest.mark.parametrize(
    ("args", "delivered"),
    [
        (["-fix the flaky test first"], "-fix the flaky test first"),  # not a flag, for either
        (["--", "-x"], "-x"),
        (["run it; then stop;"], "run it; then stop;"),  # tmux's ';' separator, escaped
        (["stop\x03 now \x1b[201~ and \x1b[31mred\x7f\x9b"], "stop now [201~ and [31mred"),
        (["para\x1b[201~\x03\nnext"], "para[201~\nnext"),  # the paste path, cleaned too
    ],
    ids=["dash", "dash-only", "semicolons", "controls", "controls-paste"],
)
def test_send_delivers_awkward_text_cleaned(
    world: FleetEnv, args: list[str], delivered: str
) -> None:
    pid = world.stub_pid(SOCK, "enhancer")
    res = world.cli("send", "--verify", "enhancer", *args)
    assert res.rc == 0, res
    assert message_hash(delivered) in _acks(world, "enhancer")
    assert f"({len(delivered)} chars" in res.stdout
    # not interrupted (no ^C reached it), and still heartbeating
    assert world.stub_pid(SOCK, "enhancer") == pid
    hb = world.heartbeat("enhancer")
    assert hb is not None and hb["pid"] == pid


def test_send_leaves_copy_mode_first(world: FleetEnv) -> None:
    target = session_target("orchestrator")
    world.tmux(SOCK, "copy-mode", "-t", target)
    assert _pane(world, "orchestrator", "#{pane_in_mode}") == "1"
    res = world.cli("send", "orchestrator", "answer while scrolled back", "--verify")
    assert res.rc == 0, res
    assert message_hash("answer while scrolled back") in _acks(world, "orchestrator")
    assert _pane(world, "orchestrator", "#{pane_in_mode}") == "0"


def test_send_to_unknown_prefix_dead_and_sessionless_is_exit_3(world: FleetEnv) -> None:
    before = len(world.audit_lines())
    for name in ("nosuch", "coder0", "enhance", "coder1", "crasher"):
        res = world.cli("send", name, "hello")
        assert res.rc == 3, res
        assert name in _one_line(res)
    lines = _send_lines(world, before)
    assert [x["agent"] for x in lines] == ["nosuch", "coder0", "enhance", "coder1", "crasher"]
    assert {x["outcome"] for x in lines} == {"not_found"}
    # nothing was typed into the agents whose names are prefixes of the ones asked for
    assert message_hash("hello") not in _acks(world, "coder0-0")
    assert message_hash("hello") not in _acks(world, "enhancer")


def test_send_empty_is_exit_2(world: FleetEnv) -> None:
    for text in ("", "  \n\x03\x1b"):
        res = world.cli("send", "enhancer", "-", input=text)
        assert res.rc == 2, res
        assert "empty" in _one_line(res)


def test_send_verify_without_an_ack_is_exit_4(world: FleetEnv) -> None:
    before = len(world.audit_lines())
    t0 = time.monotonic()
    res = world.cli("send", "catter", "nobody acks this", "--verify", "--timeout", "1")
    assert res.rc == 4, res
    assert "catter" in _one_line(res) and "not accepted within 1 s" in res.stderr
    # `--timeout 1` is honoured, not the default 10 s: quiet, this run takes 1.3 s; the bound
    # is 7x that (a loaded machine starts Python slowly) and still below the default.
    assert time.monotonic() - t0 < 9
    # delivered all the same: cat echoes the line back into its pane
    wait_until(
        lambda: (
            "nobody acks this" in world.tmux(SOCK, "capture-pane", "-p", "-t", "=catter:").stdout
        ),
        message="the text in cat's pane",
    )

    pid = world.stub_pid(SOCK, "coder0-0")
    os.kill(pid, signal.SIGSTOP)
    try:
        res = world.cli("send", "coder0-0", "are you there?", "--verify", "--timeout", "1")
        assert res.rc == 4, res
    finally:
        os.kill(pid, signal.SIGCONT)
    # once thawed, the stub reads the message that waited in its tty, and acks it
    wait_until(
        lambda: message_hash("are you there?") in _acks(world, "coder0-0"),
        message="the late ack",
    )
    outcomes = [x["outcome"] for x in _send_lines(world, before)]
    assert outcomes == ["unconfirmed", "unconfirmed"]


def test_resending_the_same_text_waits_for_a_new_ack(world: FleetEnv) -> None:
    res = world.cli("send", "coder0-0", "same again", "--verify")
    assert res.rc == 0, res
    res = world.cli("send", "coder0-0", "something else", "--verify")
    assert res.rc == 0, res
    # "same again" is in the acks already, no longer last: only a re-ack moves it to the end
    res = world.cli("send", "coder0-0", "same again", "--verify")
    assert res.rc == 0, res
    assert _acks(world, "coder0-0")[-1] == message_hash("same again")


def test_ack_accepted_rules() -> None:
    h, a, b = "sha256:h", "sha256:a", "sha256:b"
    assert not ack_accepted(None, [a], h, newer=True)
    assert ack_accepted(None, [a, h], h, newer=False)
    assert ack_accepted([a], [a, h], h, newer=True)
    assert not ack_accepted([h, a], [h, a, b], h, newer=True)  # still there, not re-acked
    assert ack_accepted([h, a], [a, h], h, newer=True)
    assert not ack_accepted([a, h], [a, h], h, newer=False)
    assert ack_accepted([a, h], [a, h], h, newer=True)  # was last: a newer heartbeat counts


def test_clean_message() -> None:
    assert clean_message("a\r\nb\rc\n\n  ") == "a\nb\nc"
    assert clean_message("x\x1b[201~y\x00\x07\x7f\x85\x9bz\tq") == "x[201~yz\tq"
    assert clean_message("héllo → ✓") == "héllo → ✓"


# -- pipe log ------------------------------------------------------------------------------------


def test_ensure_pipe_log_opens_once_and_never_touches_another_pipe(
    world: FleetEnv, tmp_path: Path
) -> None:
    runner = world.runner
    world.start(SOCK, "ticker", ["sh", "-c", "while :; do echo tick; sleep 0.1; done"])
    try:
        pane = _pane(world, "ticker")
        ours = tmp_path / "logs#1" / "ticker.log"  # '#' would be a format in pipe-pane
        assert ensure_pipe_log(runner, SOCK, pane, ours) == "opened"
        assert ours.parent.stat().st_mode & 0o777 == 0o700
        wait_until(lambda: ours.read_text().count("tick") >= 3, message="ticks in our log")
        assert ensure_pipe_log(runner, SOCK, pane, ours) == "ours"
        assert close_pipe_log(runner, SOCK, pane) is True
        assert _pane(world, "ticker", "#{pane_pipe}") == "0"

        # someone else's pipe: left open and unchanged, our file never created
        other = tmp_path / "other.log"
        world.tmux(SOCK, "pipe-pane", "-t", pane, f"cat >> {other}")
        wait_until(lambda: other.exists() and other.stat().st_size > 0, message="their log")
        mine = tmp_path / "mine" / "ticker.log"
        assert ensure_pipe_log(runner, SOCK, pane, mine) == "existing"
        assert close_pipe_log(runner, SOCK, pane) is False  # not opened by us (any more)
        assert not mine.exists()
        assert _pane(world, "ticker", "#{pane_pipe}") == "1"
        size = other.stat().st_size
        wait_until(lambda: other.stat().st_size > size, message="their log still growing")
    finally:
        world.tmux(SOCK, "kill-session", "-t", "=ticker")


# -- watch and attach ----------------------------------------------------------------------------


def test_watch_and_attach_without_a_terminal_are_refused(world: FleetEnv) -> None:
    before = len(world.audit_lines())
    for args in (["watch", "rec"], ["attach", "rec"]):
        res = world.cli(*args)
        assert res.rc == 5, res
        assert "terminal" in _one_line(res)
    for args in (["watch", "rec-1"], ["attach", "re"]):
        assert world.cli(*args).rc == 3
    lines = world.audit_lines()[before:]
    assert [(x["action"], x["outcome"]) for x in lines] == [
        ("watch", "refused"),
        ("attach", "refused"),
        ("watch", "not_found"),
        ("attach", "not_found"),
    ]
    assert world.tmux(SOCK, "list-clients").stdout == ""


class PtyCli:
    """The CLI running on a pseudo-terminal of a given size (the operator's terminal)."""

    def __init__(self, env: FleetEnv, args: list[str], *, rows: int, cols: int) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleet_tui", *args],
            env={**env.env, "TERM": "xterm-256color"},
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=str(env.base),
            start_new_session=True,
        )
        os.close(slave)
        self.out = b""

    def read(self, timeout: float = 0.1) -> bytes:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                self.out += os.read(self.master, 65536)
            except OSError:
                pass
        return self.out

    def wait_output(self, needle: bytes, timeout: float = 10.0) -> None:
        wait_until(lambda: needle in self.read(), timeout=timeout, message=f"{needle!r} on pty")

    def ready(self) -> None:
        """Wait until the tmux client drew its status line (with fleet-tui's cue in it: which
        agent, watched or attached, and how to return): keys typed before it set up the
        terminal can be flushed, which would make a "nothing arrived" check pass vacuously."""
        self.wait_output(b" returns")
        time.sleep(0.2)

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def finish(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.read(0.05)
        rc = self.proc.wait(timeout=1)
        os.close(self.master)
        return rc


def _arrived(path: Path, start: int, data: bytes) -> bool:
    return path.exists() and path.read_bytes()[start:] == data


def _clients(env: FleetEnv) -> list[str]:
    out = env.tmux(SOCK, "list-clients", "-F", "#{client_session} #{client_flags}").stdout
    return out.splitlines()


def test_watch_on_a_terminal_types_nothing_and_resizes_nothing(world: FleetEnv) -> None:
    recorded = world.base / "recorded"
    size = _pane(world, "rec", "#{window_width}x#{window_height}")
    assert size == "100x30"
    before = len(world.audit_lines())
    cli = PtyCli(world, ["watch", "rec"], rows=20, cols=60)
    try:
        clients = wait_until(lambda: _clients(world), message="the watching client")
        assert len(clients) == 1 and "read-only" in clients[0], clients
        cli.ready()
        assert b"fleet-tui WATCHING rec (read-only): C-b d returns" in cli.out
        cli.type(b"echo pwned\r")
        cli.type(b"\x03q:kill-server\r")
        time.sleep(0.5)
        world.tmux(SOCK, "detach-client", "-s", "=rec")
        assert cli.finish() == 0, cli.out[-500:]
    finally:
        if cli.proc.poll() is None:
            cli.proc.kill()
    assert not recorded.exists() or recorded.read_bytes() == b""
    assert _pane(world, "rec", "#{window_width}x#{window_height}") == size
    lines = world.audit_lines()[before:]
    assert [(x["action"], x["agent"], x["outcome"]) for x in lines] == [("watch", "rec", "started")]


def test_attach_wrong_name_is_declined_and_attaches_nothing(world: FleetEnv) -> None:
    before = len(world.audit_lines())
    cli = PtyCli(world, ["attach", "rec"], rows=24, cols=80)
    try:
        cli.wait_output(b"Type the agent's name to confirm:")
        assert b"tenant acme, host h1" in cli.out
        cli.type(b"re\r")
        assert cli.finish() == 5, cli.out[-500:]
    finally:
        if cli.proc.poll() is None:
            cli.proc.kill()
    assert b"declined" in cli.out
    assert _clients(world) == []
    lines = world.audit_lines()[before:]
    assert [(x["action"], x["outcome"]) for x in lines] == [("attach", "declined")]


def test_attach_confirmed_or_yes_reaches_the_pane(world: FleetEnv) -> None:
    recorded = world.base / "recorded"
    size = _pane(world, "rec", "#{window_width}x#{window_height}")
    before = len(world.audit_lines())
    for args, confirm in ((["attach", "rec", "--yes"], None), (["attach", "rec"], b"rec\r")):
        start = recorded.stat().st_size if recorded.exists() else 0
        cli = PtyCli(world, args, rows=20, cols=70)
        try:
            if confirm:
                cli.wait_output(b"to confirm:")
                cli.type(confirm)
            clients = wait_until(lambda: _clients(world), message="the attached client")
            assert "read-only" not in clients[0]
            cli.ready()
            assert b"fleet-tui ATTACHED to rec (keys go to it): C-b d returns" in (cli.out)
            cli.type(b"hi there\r")  # the positive control of the watch test: this one arrives
            wait_until(
                partial(_arrived, recorded, start, b"hi there\r"),
                message="the typed bytes in the recorder",
            )
            world.tmux(SOCK, "detach-client", "-s", "=rec")
            assert cli.finish() == 0, cli.out[-500:]
        finally:
            if cli.proc.poll() is None:
                cli.proc.kill()
    assert _pane(world, "rec", "#{window_width}x#{window_height}") == size
    lines = world.audit_lines()[before:]
    assert [(x["action"], x["outcome"]) for x in lines] == [
        ("attach", "attached"),
        ("attach", "attached"),
    ]


# -- argv builders -------------------------------------------------------------------------------


def test_handover_argv_builders(world: FleetEnv) -> None:
    runner = world.runner
    sock = str(runner.socket_path(SOCK))
    cue = "fleet-tui WATCHING rec (read-only): #{prefix} d returns"
    assert watch_argv(runner, SOCK, "rec")[1:] == [
        "-S",
        sock,
        "attach-session",
        "-r",
        "-t",
        "=rec:",
        ";",
        "display-message",
        "-d",
        "0",
        cue,
    ]
    # the popup fits the agent's window (100x30: +2 border, +1 the inner status line)...
    popup = popup_argv(runner, SOCK, "rec", read_only=True, client_size=(200, 60))
    assert popup[1:7] == ["display-popup", "-E", "-w", "102", "-h", "33"]
    assert popup[7:9] == ["-T", " fleet-tui: watching rec (read-only) "]
    assert popup[-1].startswith("env -u TMUX ") and (
        f"-S {sock} attach-session -r -t =rec: ';' display-message -d 0 " in popup[-1]
    )
    # ... and never outgrows the operator's terminal (tmux refuses that popup)
    small = popup_argv(runner, SOCK, "rec", read_only=True, client_size=(80, 24))
    assert small[3:7] == ["-w", "80", "-h", "24"]
    assert popup_argv(runner, SOCK, "rec", read_only=True)[3:7] == ["-w", "90%", "-h", "90%"]
    attach = popup_argv(runner, SOCK, "rec", read_only=False)
    assert "-r" not in attach[-1].split() and "ATTACHED to rec" in attach[-1]
    assert switch_argv(runner, "rec")[1:4] == ["switch-client", "-t", "=rec:"]
    assert "#{prefix} L returns" in switch_argv(runner, "rec")[-1]

    plain = plan_handover(runner, SOCK, "rec", read_only=True, environ={"PATH": "/bin"})
    assert plain.how == "attach" and "TMUX" not in plain.env
    outer = {"TMUX": "/tmp/tmux-1000/default,123,0", "PATH": "/bin"}
    assert plan_handover(runner, SOCK, "rec", read_only=True, environ=outer).how == "popup"
    assert plan_handover(runner, SOCK, "rec", read_only=False, environ=outer).how == "popup"
    same = {"TMUX": f"{sock},123,0", "PATH": "/bin"}
    assert plan_handover(runner, SOCK, "rec", read_only=False, environ=same).how == "switch"
    # a watch never switches the operator's client: it would not be read-only
    assert plan_handover(runner, SOCK, "rec", read_only=True, environ=same).how == "popup"
