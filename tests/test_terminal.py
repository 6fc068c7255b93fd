"""The real dashboard in a real terminal (a pane of a private outer tmux server), driven with
send-keys and read with capture-pane; pipe-pane on that pane records every byte the dashboard
writes to its terminal.

The outer server uses the prefix C-a, so a C-b d typed into the dashboard's terminal reaches
the inner `tmux attach` client, exactly as it would for an operator.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import FleetEnv, wait_until

from fleet_tui.model.records import AgentState
from fleet_tui.model.validated import Heartbeat
from fleet_tui.protocol.acks import message_hash
from fleet_tui.sources.spool import HeartbeatSpool

pytestmark = pytest.mark.tmux

OUTER = "term"
AGENTS = "mosaic-fleet"
ROSTER = [
    {"name": "orchestrator", "role": "orchestrator"},
    {"name": "enhancer", "role": "enhancer"},
]
HOSTILE = (
    "printf 'plain-text-ok\\n"
    "\\033]52;c;UFdORUQ=\\007"  # clipboard write
    "\\033]2;PWNTITLE\\033\\\\"  # window title
    "\\033]8;;http://evil.example/\\033\\\\click-me\\033]8;;\\033\\\\\\n"  # hyperlink
    "\\033Pq#PWNDCS\\033\\\\"  # DCS (sixel)
    "\\033[6n\\033[c"  # report requests
    "\\302\\2332J\\033c"  # 8-bit CSI clear, full reset
    "after-hostile\\n'; sleep 300"
)


def dashboard(
    env: FleetEnv, out: Path, *, extra_env: Sequence[str] = (), then_shell: bool = False
) -> None:
    """Start the dashboard in a 120x30 pane of the outer server; record its output bytes.

    `then_shell`: the pane stays after the dashboard exits, showing `exit=<code>` (the pane
    then holds what the dashboard left on the operator's normal screen)."""
    env.runner.ensure_socket_dir()
    argv = [
        "env",
        "-u",
        "TMUX",
        "-u",
        "TMUX_PANE",
        f"TMUX_TMPDIR={env.base}",
        f"HOME={env.home}",
        f"XDG_STATE_HOME={env.state_home}",
        f"XDG_CONFIG_HOME={env.config_home}",
        "TERM=xterm-256color",
        *extra_env,
        sys.executable,
        "-m",
        "fleet_tui",
    ]
    if then_shell:
        argv = ["sh", "-c", '"$@"; echo "exit=$?"; exec sleep 600', "sh", *argv]
    env.tmux(
        OUTER,
        "new-session",
        "-d",
        "-s",
        "op",
        "-x",
        "120",
        "-y",
        "30",
        *argv,
        ";",
        "set-option",
        "-g",
        "prefix",
        "C-a",
        ";",
        "pipe-pane",
        "-t",
        "=op:",
        f"exec cat >> {out}",
    )


def screen(env: FleetEnv) -> str:
    return env.tmux(OUTER, "capture-pane", "-p", "-t", "=op:").stdout


def keys(env: FleetEnv, *k: str) -> None:
    env.tmux(OUTER, "send-keys", "-t", "=op:", *k)


def clients(env: FleetEnv) -> list[str]:
    out = env.tmux(AGENTS, "list-clients", "-F", "#{client_readonly} #{session_name}").stdout
    return [line for line in out.splitlines() if line.strip()]


def _open_filter(env: FleetEnv) -> bool:
    keys(env, "/")
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if "esc clears" in screen(env):  # the empty box's placeholder
            return True
        time.sleep(0.1)
    return False


def select(env: FleetEnv, name: str) -> None:
    """Put the cursor on `name` by filtering to it (the urgency order puts the down agent of
    the roster on top: the first row is not the agent under test)."""
    # Keys typed within a second or so of the first paint can be lost (noted in issue 14's
    # closing note, seen before issue 14 too): open the box, see it open, then type.
    wait_until(lambda: _open_filter(env), timeout=10, message="the filter box")
    keys(env, "-l", name)
    keys(env, "Enter")
    typed = re.compile(rf"^\W+{re.escape(name)}\s+\W*$", re.M)  # the filter box holds it all
    wait_until(
        lambda: "(1 shown)" in (s := screen(env)) and typed.search(s),
        timeout=10,
        message="the filter",
    )


def wait_screen(env: FleetEnv, text: str, timeout: float = 15.0) -> str:
    def seen() -> str | None:
        shown = screen(env)
        return shown if text in shown else None

    try:
        return wait_until(seen, timeout=timeout, message=f"{text!r} on the dashboard's screen")
    except AssertionError as exc:  # say what the operator saw instead
        raise AssertionError(f"{exc}\n--- the screen ---\n{screen(env)}") from None


def wait_gone(env: FleetEnv, text: str, timeout: float = 15.0) -> None:
    wait_until(lambda: text not in screen(env), timeout=timeout, message=f"{text!r} to go away")


def test_attach_needs_the_name_escape_attaches_nothing_detach_comes_back(
    fleet_env: FleetEnv, tmp_path: Path
) -> None:
    fleet_env.write_roster(ROSTER)
    fleet_env.stub(AGENTS, "orchestrator")
    fleet_env.stub(AGENTS, "enhancer")
    dashboard(fleet_env, tmp_path / "out.bin")
    wait_screen(fleet_env, "enhancer")
    # escape: nothing attached
    keys(fleet_env, "a")
    wait_screen(fleet_env, "type orchestrator to attach")
    keys(fleet_env, "Escape")
    wait_gone(fleet_env, "type orchestrator to attach")
    assert clients(fleet_env) == []
    # a wrong name: nothing attached
    keys(fleet_env, "a")
    wait_screen(fleet_env, "type orchestrator to attach")
    keys(fleet_env, "-l", "enhancer")
    keys(fleet_env, "Enter")
    wait_screen(fleet_env, "not the agent's name")
    assert clients(fleet_env) == []
    keys(fleet_env, "Escape")
    wait_gone(fleet_env, "type orchestrator to attach")
    # the name: attached, hands on; C-b d comes back to the dashboard
    keys(fleet_env, "a")
    wait_screen(fleet_env, "type orchestrator to attach")
    keys(fleet_env, "-l", "orchestrator")
    keys(fleet_env, "Enter")
    wait_until(
        lambda: clients(fleet_env) == ["0 orchestrator"],
        timeout=10,
        message="an interactive client",
    )
    wait_screen(fleet_env, "stub runtime")
    keys(fleet_env, "C-b", "d")
    wait_until(lambda: clients(fleet_env) == [], timeout=10, message="the detach")
    wait_screen(fleet_env, "◆ fleet-tui")
    wait_screen(fleet_env, "enhancer")  # the table is back and keys work again
    keys(fleet_env, "down")
    audit = [(e["action"], e["agent"], e["outcome"]) for e in fleet_env.audit_lines()]
    assert ("attach", "orchestrator", "declined") in audit
    assert ("attach", "orchestrator", "detached") in audit


def test_watch_is_read_only_and_keeps_the_agent_size(fleet_env: FleetEnv, tmp_path: Path) -> None:
    fleet_env.write_roster(ROSTER)
    fleet_env.stub(AGENTS, "orchestrator")
    size = fleet_env.tmux(
        AGENTS, "display-message", "-p", "-t", "=orchestrator:", "#{window_width}x#{window_height}"
    ).stdout
    dashboard(fleet_env, tmp_path / "out.bin")
    wait_screen(fleet_env, "orchestrator")
    select(fleet_env, "orchestrator")
    keys(fleet_env, "w")
    wait_until(
        lambda: clients(fleet_env) == ["1 orchestrator"], timeout=10, message="a read-only client"
    )
    keys(fleet_env, "-l", "echo pwned")
    keys(fleet_env, "Enter")
    time.sleep(1.5)  # give a leak every chance to arrive (the stub acks whatever it reads)
    keys(fleet_env, "C-b", "d")
    wait_until(lambda: clients(fleet_env) == [], timeout=10, message="the detach")
    wait_screen(fleet_env, "◆ fleet-tui")
    beat = fleet_env.heartbeat("orchestrator") or {}
    assert message_hash("echo pwned") not in beat.get("acks", [])
    after = fleet_env.tmux(
        AGENTS, "display-message", "-p", "-t", "=orchestrator:", "#{window_width}x#{window_height}"
    ).stdout
    assert after == size
    assert ("watch", "orchestrator", "detached") in [
        (e["action"], e["agent"], e["outcome"]) for e in fleet_env.audit_lines()
    ]


def test_stream_shows_live_output_and_typing_never_reaches_the_agent(
    fleet_env: FleetEnv, tmp_path: Path
) -> None:
    fleet_env.write_roster(ROSTER)
    fleet_env.stub(AGENTS, "orchestrator")
    dashboard(fleet_env, tmp_path / "out.bin")
    wait_screen(fleet_env, "orchestrator")
    select(fleet_env, "orchestrator")
    keys(fleet_env, "s")
    wait_screen(fleet_env, "read-only")
    wait_screen(fleet_env, "stub runtime")  # the pane's screen, live
    keys(fleet_env, "-l", "hello agent")  # typed into the stream screen
    keys(fleet_env, "Enter")
    keys(fleet_env, "Tab")  # log mode: the pipe-pane log
    wait_screen(fleet_env, "log mode")
    wait_screen(fleet_env, "⎿")  # the stub's tool lines, read from the pipe log
    log = fleet_env.state_dir / "logs" / "mosaic-fleet.orchestrator.log"
    wait_until(lambda: log.exists() and log.stat().st_size > 0, timeout=10, message="the pipe log")
    time.sleep(1.0)
    beat = fleet_env.heartbeat("orchestrator") or {}
    assert message_hash("hello agent") not in beat.get("acks", [])
    assert not any(message_hash(t) in beat.get("acks", []) for t in ("hello", "hello agent\n"))


def _table_names(shown: str, names: Sequence[str]) -> list[str]:
    """The agent names in the order the terminal shows the table's rows (a row: a line with
    its health, `healthy` or `stale`)."""
    order = []
    for line in shown.splitlines():
        if "healthy" not in line and "stale" not in line:
            continue
        order += [n for n in names if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", line)]
    return order


def _old_beat(env: FleetEnv, name: str, age: timedelta) -> None:
    """A heartbeat `age` old (dated back: its HB age and health stay the same at every poll),
    as the roster's tenant and host (write_roster's defaults)."""
    beat = Heartbeat(
        tenant_id="acme",
        host="h1",
        agent=name,
        seq=int(time.time() * 1000),
        ts=datetime.now(UTC) - age,
        interval_s=3600,
        state=AgentState.BUSY,
    )
    HeartbeatSpool(env.state_dir).write_heartbeat(beat)


def test_a_reordered_table_shows_every_row_once_in_the_new_order(
    fleet_env: FleetEnv, tmp_path: Path
) -> None:
    """A health change reorders the table (the urgency order puts a stale agent above the
    healthy ones): every line of the operator's terminal shows the new order, none is left
    showing the old one (the table repaints only the lines whose row changed). The heartbeats
    are dated back (HB reads `1 h`), the panes print all the time (IDLE reads
    `0 s`) and no alert fires: only the moves change lines of the table."""
    names = [f"worker-{i}" for i in range(8)]
    fleet_env.write_roster([{"name": n, "role": "coder"} for n in names], timeout_s=86400)
    for n in names:
        fleet_env.start(AGENTS, n, ["sh", "-c", "while :; do echo tick; sleep 0.2; done"])
        _old_beat(fleet_env, n, timedelta(hours=1))
    dashboard(fleet_env, tmp_path / "out.bin")
    wait_until(
        lambda: sorted(_table_names(screen(fleet_env), names)) == names,
        timeout=15,
        message="every agent on screen",
    )
    before = _table_names(screen(fleet_env), names)
    for moved in (before[-1], before[3], before[-1]):
        _old_beat(fleet_env, moved, timedelta(days=1, hours=1))  # stale: over the timeout
        wait_until(
            lambda moved=moved: _table_names(screen(fleet_env), names)[:1] == [moved],
            timeout=15,
            message=f"{moved} moved to the top",
        )
        time.sleep(0.5)  # a frame still on its way would only add lines, never fix them
        expected = [moved] + [n for n in before if n != moved]
        assert _table_names(screen(fleet_env), names) == expected, screen(fleet_env)
        _old_beat(fleet_env, moved, timedelta(hours=1))
        wait_until(
            lambda moved=moved: _table_names(screen(fleet_env), names)[:1] != [moved],
            timeout=15,
            message=f"{moved} back in its place",
        )
        time.sleep(0.5)
        assert _table_names(screen(fleet_env), names) == before, screen(fleet_env)


def test_hostile_output_never_reaches_the_operators_terminal(
    fleet_env: FleetEnv, tmp_path: Path
) -> None:
    fleet_env.write_roster(
        [{"name": "orchestrator", "role": "orchestrator", "runtime": "other"}, ROSTER[1]]
    )
    fleet_env.start(AGENTS, "orchestrator", ["sh", "-c", HOSTILE])
    assert (
        fleet_env.cli(
            "heartbeat",
            "orchestrator",
            "--state",
            "busy",
            "--detail",
            "\x1b]52;c;UFdORUQ=\x07detail\x1b]8;;http://evil.example/\x1b\\x\x1b]8;;\x1b\\",
        ).rc
        == 0
    )
    out = tmp_path / "out.bin"
    dashboard(fleet_env, out)
    wait_screen(fleet_env, "orchestrator")
    select(fleet_env, "orchestrator")
    keys(fleet_env, "Enter")  # detail: last output, pane title, heartbeat detail
    wait_screen(fleet_env, "after-hostile")
    keys(fleet_env, "Escape")
    keys(fleet_env, "s")  # the stream: screen mode, then log mode
    wait_screen(fleet_env, "after-hostile")
    keys(fleet_env, "Tab")
    time.sleep(1.5)
    keys(fleet_env, "q")
    keys(fleet_env, "q")
    time.sleep(0.5)
    data = out.read_bytes()
    assert b"plain-text-ok" in data or b"after-hostile" in data  # we did record the dashboard
    # the pane's title may be SHOWN (plain text in the detail screen), never SET as a title
    assert b"PWNTITLE" in data and b";PWNTITLE" not in data
    for marker in (
        b"UFdORUQ",  # the clipboard payload
        b"evil.example",  # the hyperlink target
        b"PWNDCS",
        b"\x1b[6n",
        b"\x1b[c",
        b"\x1bc",
        b"\xc2\x9b",
        b"\x1b]52",
        b"\x1b]8;",
        b"\x1bP",
    ):
        assert marker not in data, f"{marker!r} reached the operator's terminal"
    json.dumps(fleet_env.audit_lines())  # the audit log stays valid JSON


def test_a_crash_exits_1_with_one_line_and_a_crash_log_never_agent_data_on_screen(
    fleet_env: FleetEnv, tmp_path: Path
) -> None:
    fleet_env.write_roster(ROSTER)
    fleet_env.stub(AGENTS, "orchestrator")
    secret = "SECRETDETAIL42"
    assert fleet_env.cli("heartbeat", "orchestrator", "--state", "busy", "--detail", secret).rc == 0
    # a test-only hook: the dashboard raises in a timer handler, agent records in its locals
    dashboard(
        fleet_env, tmp_path / "out.bin", extra_env=["FLEET_TUI_TEST_CRASH=1"], then_shell=True
    )
    wait_screen(fleet_env, "exit=", timeout=30)
    shown = fleet_env.tmux(OUTER, "capture-pane", "-p", "-J", "-t", "=op:").stdout  # joined
    lines = [line for line in shown.splitlines() if line.strip()]
    assert lines[-1] == "exit=1", shown  # a wrapper or a unit sees the failure
    assert len(lines) == 2, shown  # one line, then the shell's
    assert lines[0].startswith("fleet-tui: the dashboard crashed (RuntimeError); crash log: ")
    assert secret not in shown and str(fleet_env.base) + "/" not in shown.replace(lines[0], "")
    # the terminal is given back: not left in the alternate screen, cursor shown
    mode = fleet_env.tmux(
        OUTER, "display-message", "-p", "-t", "=op:", "#{alternate_on} #{cursor_flag}"
    ).stdout.strip()
    assert mode == "0 1"
    log = Path(lines[0].split("crash log: ", 1)[1])
    assert log.parent == fleet_env.state_dir / "crash"
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "_crash_for_tests" in text
    assert secret not in text  # the traceback, not the locals holding the agent's record


def _dashboard_pid(env: FleetEnv) -> int:
    """The dashboard's process: the child of the pane's `sh -c` wrapper (then_shell)."""
    from fleet_tui.sources.procs import children

    shell = int(env.tmux(OUTER, "display-message", "-p", "-t", "=op:", "#{pane_pid}").stdout)
    (kid,) = children(shell)
    return kid


def _pipe_open(env: FleetEnv, name: str) -> bool:
    out = env.tmux(AGENTS, "display-message", "-p", "-t", f"={name}:", "#{pane_pipe}").stdout
    return out.strip() == "1"


def _streaming_in_a_shell(fleet_env: FleetEnv, tmp_path: Path) -> None:
    """The dashboard (then a shell) streaming the orchestrator's pane, its pipe open."""
    fleet_env.write_roster(ROSTER)
    fleet_env.stub(AGENTS, "orchestrator")
    dashboard(fleet_env, tmp_path / "out.bin", then_shell=True)
    wait_screen(fleet_env, "orchestrator")
    select(fleet_env, "orchestrator")
    keys(fleet_env, "s")
    wait_screen(fleet_env, "read-only")
    wait_until(lambda: _pipe_open(fleet_env, "orchestrator"), timeout=10, message="the pipe")


def test_sigterm_quits_like_q_closing_the_stream_and_giving_the_terminal_back(
    fleet_env: FleetEnv, tmp_path: Path
) -> None:
    import os
    import signal

    _streaming_in_a_shell(fleet_env, tmp_path)
    os.kill(_dashboard_pid(fleet_env), signal.SIGTERM)  # `kill`, systemd, a web server
    wait_screen(fleet_env, "exit=", timeout=20)
    lines = [line for line in screen(fleet_env).splitlines() if line.strip()]
    assert lines == ["exit=0"], lines  # a clean quit: nothing left of the dashboard on screen
    mode = fleet_env.tmux(
        OUTER, "display-message", "-p", "-t", "=op:", "#{alternate_on} #{cursor_flag}"
    ).stdout.strip()
    assert mode == "0 1"  # the terminal is given back
    assert not _pipe_open(fleet_env, "orchestrator")  # the stream's pipe-pane is closed
    closed = [a for a in fleet_env.audit_lines() if a["action"] == "pipe"]
    assert closed and closed[-1]["outcome"] == "closed"


def test_a_hang_up_ends_the_dashboard_and_closes_its_stream(
    fleet_env: FleetEnv, tmp_path: Path
) -> None:
    import os

    _streaming_in_a_shell(fleet_env, tmp_path)
    pid = _dashboard_pid(fleet_env)
    # the operator's terminal (or ssh connection) goes away: tmux hangs up the pane
    fleet_env.tmux(OUTER, "kill-session", "-t", "=op")
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=20, message="the dashboard")
    assert not _pipe_open(fleet_env, "orchestrator")
