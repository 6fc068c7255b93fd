"""The stream screen's log tail (issue 13): watchfiles wakes the follower, `LogTail` reads.

What an operator notices: lines a pane writes show up on the stream screen without a poll
loop behind them; the stream goes on after its log was emptied or replaced; a quiet pane does
not keep the dashboard busy; and leaving the stream leaves no watcher or thread behind.
The `LogTail` tests use real files; the screen tests a real tmux pane on a private socket.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FleetEnv

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.config.settings import DashboardSettings
from fleet_tui.control.actions import LiveActions
from fleet_tui.service.poll import LiveSource
from fleet_tui.ui.app import FleetApp
from fleet_tui.ui.screens import stream as stream_mod
from fleet_tui.ui.screens.stream import LogTail, StreamScreen
from fleet_tui.ui.widgets.stream_log import StreamLog
from fleet_tui.ui.workers import WatchCount

SOCK = "mosaic-fleet"


# -- LogTail on real files -------------------------------------------------------------------
def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


def test_appended_lines_come_out_once_in_order(tmp_path: Path) -> None:
    log = tmp_path / "pane.log"
    log.write_text("")
    tail = LogTail(log)
    assert tail.read() == ([], False, False)
    append(log, "one\ntwo\n")
    assert tail.read() == (["one", "two"], True, False)
    assert tail.read() == ([], False, False)  # nothing twice
    append(log, "three\nfou")  # a line not finished yet is held back ...
    assert tail.read()[0] == ["three"]
    append(log, "r\x1b]0;title\x07\nfive\n")  # ... until its end arrives (and is sanitized)
    assert tail.read()[0] == ["four", "five"]
    assert tail.read()[0] == []


def test_start_at_end_reads_only_what_is_written_after(tmp_path: Path) -> None:
    log = tmp_path / "pane.log"
    log.write_text("old 1\nold 2\n")
    tail = LogTail(log)
    tail.start_at_end()
    assert tail.read()[0] == []
    append(log, "new\n")
    assert tail.read()[0] == ["new"]


def test_a_truncated_log_is_read_again_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "pane.log"
    log.write_text("".join(f"before {i}\n" for i in range(100)))
    tail = LogTail(log)
    assert len(tail.read()[0]) == 100
    append(log, "half a li")  # an unfinished line does not survive the truncation
    assert tail.read()[0] == []
    os.truncate(log, 0)  # emptied (LOG_CAP, or by someone); the writer appends from 0
    append(log, "after\n")
    assert tail.read() == (["after"], True, False)
    append(log, "and on\n")
    assert tail.read()[0] == ["and on"]


def test_a_replaced_log_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "pane.log"
    log.write_text("x\n")
    tail = LogTail(log)
    assert tail.read()[0] == ["x"]
    new = tmp_path / "pane.log.new"
    # longer than what was read: only the new inode tells that it is another file
    new.write_text("replaced 1\nreplaced 2\n")
    os.replace(new, log)
    assert tail.read()[0] == ["replaced 1", "replaced 2"]
    # removed and created again: the same
    log.unlink()
    assert tail.read() == ([], False, False)
    log.write_text("created again, a long first line\n")
    assert tail.read()[0] == ["created again, a long first line"]


def test_a_log_created_again_on_the_old_inode_is_read_from_its_start(tmp_path: Path) -> None:
    # ext4 can give a new file the inode number of the one just removed (CI saw the rest of a
    # long first line); linking the old inode back under the name does the same, every time
    log = tmp_path / "pane.log"
    log.write_text("replaced 1\nreplaced 2\n")
    tail = LogTail(log)
    assert tail.read()[0] == ["replaced 1", "replaced 2"]
    keep = tmp_path / "kept"
    os.link(log, keep)
    log.unlink()
    assert tail.read() == ([], False, False)
    os.link(keep, log)
    log.write_text("created again, a long first line\n")  # truncates, then writes
    assert tail.read()[0] == ["created again, a long first line"]


def test_a_log_that_does_not_exist_yet_is_read_once_it_appears(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "pane.log"
    tail = LogTail(log)
    tail.start_at_end()  # no error: the pipe creates it
    assert tail.peek() is False
    assert tail.read() == ([], False, False)
    log.parent.mkdir()
    log.write_text("first\n")
    assert tail.peek() is True
    assert tail.peek() is False  # peek tells a change once
    assert tail.read()[0] == ["first"]


# -- the log view follows the tail ------------------------------------------------------------
async def test_the_batch_that_first_overflows_the_log_view_shows_its_end() -> None:
    """The first batch that does not fit arrives while the view has no scrollbar yet: a
    following log must show its end all the same, not stay at its top."""
    from textual.app import App, ComposeResult

    class LogApp(App[None]):
        def compose(self) -> ComposeResult:
            yield StreamLog()

    app = LogApp()
    async with app.run_test(size=(60, 10)) as pilot:
        log = app.query_one(StreamLog)
        log.append_lines(["first"])
        await pilot.pause()
        log.append_lines([f"burst {i}" for i in range(50)])
        await pilot.pause()
        await pilot.pause()
        text = shown(app)
        assert "burst 49" in text and "first" not in text, text
        assert log.following


# -- the stream screen on a real pane ---------------------------------------------------------
def live_app() -> FleetApp:
    config = FleetConfig.from_flags()
    source = LiveSource(config, systemd_interval_s=30)
    return FleetApp(
        source,
        settings=DashboardSettings(poll_interval_s=3600),
        actions=LiveActions(source.runner, config.state_dir, config),
    )


async def wait_for(pilot, predicate: Callable[[], object], timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"{what} not seen within {timeout} s")


def shown(app: FleetApp) -> str:
    """The terminal's text, as the operator sees it."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def feeding_agent(env: FleetEnv) -> Path:
    """An agent whose pane prints whatever is appended to the returned file."""
    feed = env.base / "feed"
    feed.write_text("ready\n")
    env.write_roster([{"name": "orchestrator", "role": "orchestrator"}])
    env.start(SOCK, "orchestrator", ["tail", "-n", "+1", "-F", "-s", "0.1", str(feed)])
    return feed


def pipe_log(env: FleetEnv) -> Path:
    return env.state_dir / "logs" / f"{SOCK}.orchestrator.log"


async def open_stream(pilot, app: FleetApp) -> StreamScreen:  # type: ignore[no-untyped-def]
    await wait_for(pilot, lambda: app.polls >= 1, 10, "the first poll")
    assert app.snapshot is not None
    screen = StreamScreen(next(a for a in app.snapshot.agents if a.name == "orchestrator"))
    app.push_screen(screen)
    await wait_for(pilot, lambda: screen.captures >= 1, 10, "the first capture")
    await wait_for(pilot, lambda: screen.log_state != "starting", 10, "the pipe")
    return screen


@pytest.fixture
def only_file_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """No timed re-read within a test's waits: only a file event can wake the follower."""
    monkeypatch.setattr(stream_mod, "SAFETY_TICK_S", 600.0)
    monkeypatch.setattr(stream_mod, "PIPE_CHECK_S", 600.0)


@pytest.mark.tmux
@pytest.mark.usefixtures("only_file_events")
async def test_screen_mode_shows_new_lines_as_the_pane_writes_them(fleet_env: FleetEnv) -> None:
    feed = feeding_agent(fleet_env)
    app = live_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await open_stream(pilot, app)
        await wait_for(pilot, lambda: "ready" in shown(app), 10, "the pane")
        assert WatchCount.live >= 1  # the log is watched, not polled
        for i in range(3):
            append(feed, f"SCREEN-LINE-{i}\n")
            await wait_for(pilot, lambda i=i: f"SCREEN-LINE-{i}" in shown(app), 10, f"line {i}")


@pytest.mark.tmux
@pytest.mark.usefixtures("only_file_events")
async def test_log_mode_follows_the_pipe_log_and_goes_on_after_it_was_emptied(
    fleet_env: FleetEnv,
) -> None:
    feed = feeding_agent(fleet_env)
    app = live_app()
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_stream(pilot, app)
        await pilot.press("tab")  # log mode
        log = screen.query_one(StreamLog)

        def seen(text: str) -> bool:
            return any(text in line for line in log.lines)

        await wait_for(pilot, lambda: seen("ready"), 10, "the history")
        append(feed, "".join(f"BEFORE-{i:03d} {'x' * 60}\n" for i in range(100)))
        await wait_for(pilot, lambda: seen("BEFORE-099"), 10, "the lines the pane wrote")
        befores = [line for line in log.lines if "BEFORE-" in line]
        assert [line.split()[0] for line in befores] == [f"BEFORE-{i:03d}" for i in range(100)]
        await wait_for(pilot, lambda: "BEFORE-099" in shown(app), 10, "the tail on screen")

        os.truncate(pipe_log(fleet_env), 0)  # emptied under the reader (as at LOG_CAP)
        append(feed, "AFTER-EMPTIED\n")
        await wait_for(pilot, lambda: seen("AFTER-EMPTIED"), 10, "a line after the emptying")
        await wait_for(pilot, lambda: "AFTER-EMPTIED" in shown(app), 10, "it on screen")
        append(feed, "AND-ON\n")
        await wait_for(pilot, lambda: seen("AND-ON"), 10, "the next line")
        assert sum("BEFORE-" in line for line in log.lines) == 100  # nothing read twice
        assert sum("AFTER-EMPTIED" in line for line in log.lines) == 1


@pytest.mark.tmux
async def test_a_quiet_pane_keeps_the_follower_asleep(fleet_env: FleetEnv) -> None:
    feeding_agent(fleet_env)
    app = live_app()
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_stream(pilot, app)
        await wait_for(pilot, lambda: "ready" in shown(app), 10, "the pane")
        await pilot.pause(0.5)
        turns, start = screen.turns, time.monotonic()
        await pilot.pause(3.0)
        took = time.monotonic() - start
        # about one turn a second when nothing happens (the safety re-read, the pipe check);
        # a 50 ms sleep loop would have taken 60. Five times the quiet rate at most:
        assert screen.turns - turns <= 5 * (took / stream_mod.SAFETY_TICK_S + 1), (
            screen.turns - turns,
            took,
        )


def stream_threads() -> int:
    return sum(t.name.startswith("fleet-stream") for t in threading.enumerate())


@pytest.mark.tmux
async def test_leaving_the_stream_ends_its_watcher(fleet_env: FleetEnv) -> None:
    feed = feeding_agent(fleet_env)
    app = live_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.polls >= 1, 10, "the first poll")
        watchers, threads = WatchCount.live, stream_threads()
        for round_ in range(3):
            screen = await open_stream(pilot, app)
            await wait_for(pilot, lambda: WatchCount.live > watchers, 10, "the watcher")
            append(feed, f"ROUND-{round_}\n")
            await wait_for(pilot, lambda r=round_: f"ROUND-{r}" in shown(app), 10, "the line")
            await pilot.press("escape")
            await wait_for(pilot, lambda s=screen: s not in app.screen_stack, 10, "back")
            await wait_for(pilot, lambda: WatchCount.live == watchers, 10, "the watcher's end")
            await wait_for(pilot, lambda: stream_threads() == threads, 10, "the thread's end")
        # and nothing wakes a screen that left: its follower's turns stop
        turns = screen.turns
        append(feed, "AFTER-LEAVING\n")
        await pilot.pause(1.0)
        assert screen.turns == turns
        assert WatchCount.live == watchers


@pytest.mark.tmux
@pytest.mark.parametrize("piped", [True, False], ids=["our-pipe", "another-pipe"])
async def test_a_pane_that_goes_away_is_said_and_its_return_is_followed(
    fleet_env: FleetEnv, monkeypatch: pytest.MonkeyPatch, piped: bool
) -> None:
    """The agent's session ends while the operator watches: the title says the pane is gone
    (at the left, where an 80-column terminal still shows it) and the last screen stays; the
    agent started again under its name: the stream follows its new pane and the note goes.
    Both ways a stream follows a pane: its own pipe's log, or (another pipe holds the pane)
    tmux's activity stamp."""
    monkeypatch.setattr(stream_mod, "PIPE_CHECK_S", 0.3)
    feed = feeding_agent(fleet_env)
    if not piped:
        fleet_env.tmux(SOCK, "pipe-pane", "-t", "=orchestrator:", "cat > /dev/null")
    app = live_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_stream(pilot, app)
        assert (screen.log_state == "piped to the state dir") is piped, screen.log_state
        append(feed, "BEFORE-THE-END\n")
        await wait_for(pilot, lambda: "BEFORE-THE-END" in shown(app), 10, "the pane")
        assert "PANE GONE" not in shown(app)

        fleet_env.tmux(SOCK, "kill-session", "-t", "=orchestrator")
        await wait_for(pilot, lambda: "PANE GONE" in shown(app), 10, "the note")
        title = shown(app).splitlines()[0]
        assert title.startswith(" orchestrator  PANE GONE: no agent session 'orchestrator'"), title
        assert "BEFORE-THE-END" in shown(app)  # the last screen is kept
        assert screen.is_current

        fleet_env.start(SOCK, "orchestrator", ["tail", "-n", "+1", "-F", "-s", "0.1", str(feed)])
        await wait_for(pilot, lambda: "PANE GONE" not in shown(app), 10, "the note's end")
        append(feed, "AFTER-THE-RESTART\n")
        await wait_for(pilot, lambda: "AFTER-THE-RESTART" in shown(app), 10, "the new pane")
