"""StreamScreen (`s`): a live, READ-ONLY view of one agent's pane.

The pane is found on THIS host by the actions (`resolve_record`: a fresh tmux scan by exact
agent name), never at a record's own coordinates; a remote agent is not streamed.

Screen mode shows what the pane shows now (also full-screen TUIs, with colours), re-captured
only when the pane changed: when its pipe log grew (watchfiles tells), or (without a pipe of
ours) when tmux's activity stamp moved. It follows the BOTTOM of the pane (where a waiting
agent's question and prompt are; blank rows below the last text are dropped); scrolling up
pauses that, `end` resumes. Log mode starts with the pane's scrollback (`capture-pane -S -N`), then tails the
pane's pipe-pane log in the state dir with bounded memory, search, and a tail that pauses
while the operator reads. The pipe is ours only while the screen is open: it is closed when the
screen leaves, and the log is emptied when it passes `LOG_CAP` bytes. Nothing typed here is
ever sent to the agent: this screen has no path to `send-keys`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Input, Static

from fleet_tui.control.actions import StreamActions
from fleet_tui.core.sanitize import clean_text, sanitize_stream
from fleet_tui.model.records import AgentRecord
from fleet_tui.present.ansi import ansi_to_text
from fleet_tui.sources.pipelog import PipeLogTail
from fleet_tui.ui.context import Dashboard, dashboard_of, on_stack
from fleet_tui.ui.typeahead import focus_now
from fleet_tui.ui.widgets.footer import FleetFooter
from fleet_tui.ui.widgets.stream_log import MAX_LINES, StreamLog
from fleet_tui.ui.workers import watch_file

if TYPE_CHECKING:
    from fleet_tui.service.poll import SnapshotSource

T = TypeVar("T")

MAX_BACKLOG = 2 << 20  # more unread than this: skip ahead (those lines would scroll away)
INITIAL_TAIL = 256 << 10
CAPTURE_MIN_INTERVAL_S = 0.1
READ_PAUSE_S = 0.05  # between two reads of the log at least this (one batch a frame at most)
READ_SHARE = 3.0  # and at least this many times as long as the read took: at 10 MB/s the
# reader's sanitizing would hold the GIL nearly all the time and the keys would wait; it reads
# at most a quarter of the time and skips ahead (MAX_BACKLOG) what it did not get to (half the
# time, 1.0: Tab p95 237-255 ms during a 10 MB/s burst; a quarter: 186-198 ms, bench_stream)
LOG_CAP = 16 << 20  # a stream log past this size is emptied (the reader starts over)
# What no file event tells, so these stay timed:
ACTIVITY_PROBE_S = 0.5  # a pane without our pipe: only tmux's activity stamp shows news
PIPE_CHECK_S = 3.0  # whether our pipe is still open (another dashboard may close it)
SAFETY_TICK_S = 1.0  # a re-read while watching: an event lost (inotify queue overflow, the
# folder replaced under the watch) would otherwise stall the tail until the next write
UNWATCHED_TICK_S = 0.1  # the folder could not be watched (e.g. the inotify watch limit): poll


def _blank(line: str) -> bool:
    return not (ansi_to_text(line).plain.strip() if "\x1b" in line else line.strip())


def trim_bottom(lines: list[str]) -> list[str]:
    """The lines without the blank rows below the last text (a pane's unused bottom)."""
    end = len(lines)
    while end > 1 and _blank(lines[end - 1]):
        end -= 1
    return lines[:end]


class LogTail(PipeLogTail):
    """The stream screen's reader of its pipe log (`sources.pipelog`), in the follower's thread
    (never on the event loop): far behind (more than MAX_BACKLOG unread) it skips ahead, those
    lines would scroll out of the bounded view anyway; a log past LOG_CAP is emptied. `peek`
    (screen mode) tells a change without reading: log mode reads what it shows when shown."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, max_backlog=MAX_BACKLOG, cap=LOG_CAP)


class _Calls:
    """`await call(fn, *args)`: `fn(*args)` in the follower's own thread."""

    def __init__(self, pool: ThreadPoolExecutor, loop: asyncio.AbstractEventLoop) -> None:
        self._pool, self._loop = pool, loop

    def __call__(self, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
        return self._loop.run_in_executor(self._pool, fn, *args)


def _why(exc: BaseException) -> str:
    """An error as the title says it: its message, else its type's name."""
    return str(exc) or type(exc).__name__


def _close_quietly(stream: StreamActions, record: AgentRecord) -> None:
    try:
        stream.close_log(record)
    except Exception:  # the pane or its server is gone: nothing left to close
        pass


class ScreenView(VerticalScroll):
    """The pane's screen, following its bottom; scrolling up pauses, `end` resumes."""

    class FollowChanged(Message):
        """Following the bottom paused or resumed."""

    def __init__(self, *children: Widget, id: str | None = None) -> None:
        super().__init__(*children, id=id)
        self.following = True

    def _pause(self) -> None:
        if self.following and self.max_scroll_y > 0:
            self.following = False
            self.post_message(self.FollowChanged())

    def resume(self) -> None:
        if not self.following:
            self.following = True
            self.post_message(self.FollowChanged())
        self.scroll_end(animate=False)

    def follow(self) -> None:
        """After new content: keep the bottom in view while following."""
        if self.following:
            self.scroll_end(animate=False)

    def action_scroll_up(self) -> None:
        self._pause()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self._pause()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self._pause()
        super().action_scroll_home()

    def action_scroll_end(self) -> None:
        self.resume()

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._pause()
        super()._on_mouse_scroll_up(event)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if not self.following and new >= self.max_scroll_y and new > old:
            self.resume()  # scrolled back down to the bottom


class StreamScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "back", "Back", id="stream.back"),
        Binding("tab,l", "toggle_mode", "Screen/Log", id="stream.mode"),
        Binding("slash", "search", "Search", id="stream.search"),
        Binding("n", "find(True)", "Next", show=False, id="stream.next"),
        Binding("N", "find(False)", "Previous", show=False, id="stream.previous"),
    ]

    def __init__(self, record: AgentRecord) -> None:
        super().__init__(id="stream")
        self.record = record
        self.mode = "screen"
        self.log_state = "starting"
        self.pane_lost = ""  # why the pane cannot be reached now ("": it can); said in the title
        self.captures = 0
        self.turns = 0  # times the follower woke up (a quiet pane: about one a second)
        self._dirty = True
        self._last_capture = 0.0
        self._stop_follow = False
        self._kick = asyncio.Event()  # wakes the follower: the log changed, or a capture is due
        self._title_shown: Text | None = None
        self._capture_shown: str | None = None
        self._capture_shape: tuple[int, bool] | None = None  # (rows, all fit) of that capture
        self.typed_ahead: list[events.Key] | None = None  # (ui.typeahead: its box opens on `/`)

    @property
    def dashboard(self) -> Dashboard:
        return dashboard_of(self)

    def compose(self) -> ComposeResult:
        yield Static("", id="stream-title")
        with ContentSwitcher(initial="stream-screen", id="stream-switch"):
            with ScreenView(id="stream-screen"):
                yield Static("", id="stream-capture")
            yield StreamLog(id="stream-log")
        yield Input(placeholder="search (enter: next match, esc: close)", id="stream-search")
        yield FleetFooter()

    def on_mount(self) -> None:
        self.query_one("#stream-search", Input).display = False
        self.query_one(ScreenView).focus()
        self._title()
        self.follow_pane()

    def _title(self, extra: str = "") -> None:
        r = self.record
        t = Text()
        t.append(f" {clean_text(r.name, max_len=80)}", style="bold")
        if self.pane_lost:  # first, where a narrow terminal still shows it
            t.append(f"  PANE GONE: {clean_text(self.pane_lost, max_len=120)}", style="bold red")
            t.append(" (the last screen is kept)", style="red")
        t.append(f"  {r.tenant_id}@{r.host} · {r.socket or '-'} · read-only · ", style="dim")
        t.append(f"{self.mode} mode", style="bold cyan")
        try:
            log = self.query_one(StreamLog)
            view = self.query_one(ScreenView)
            title = self.query_one("#stream-title", Static)
        except NoMatches:  # not composed yet, or being removed
            return
        if self.mode == "log":
            if log.following:
                t.append(" · following", style="green")
            else:
                t.append(f" · paused, +{log.unseen} new lines (end resumes)", style="bold yellow")
        elif view.following:
            t.append(" · following the bottom", style="green")
        else:
            t.append(" · paused (end follows the bottom)", style="bold yellow")
        t.append(f" · log: {clean_text(self.log_state, max_len=160)}", style="dim")
        if extra:
            t.append(f" · {clean_text(extra, max_len=120)}", style="yellow")
        # The same title again (every batch of a followed log asks): no update, since an update
        # re-lays the screen out (at 10 MB/s, ten layouts a second that keys would wait behind).
        if t == self._title_shown and title.is_mounted:
            return
        self._title_shown = t
        title.update(t)

    # -- the follower: an async worker; its tmux calls and file reads run in ONE thread --------
    # The pipe log is followed through watchfiles (a change wakes the follower); nothing runs
    # on a timer but what no file event can tell (see the constants above).
    def follow_pane(self) -> None:
        self.run_worker(
            self._follow(),
            group="stream",
            exclusive=True,
            exit_on_error=False,
            description=f"stream {self.record.name}",
        )

    async def _follow(self) -> None:
        # One thread of its own, so the calls run in order: the pipe's close is queued after a
        # call still under way (an `open_log` finishing after the close would leave it open).
        # `shutdown(wait=False)` lets the thread end once the queue is done; the interpreter
        # joins it at exit, so the close also happens when the app quits.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-stream")
        call = _Calls(pool, asyncio.get_running_loop())

        source = self.dashboard.source
        actions = self.dashboard.actions
        stream = actions if isinstance(actions, StreamActions) else None
        record = self.record
        path: Path | None = None
        piped = False  # open_log was asked: the pipe may be open, even if cancelled meanwhile
        try:
            if record.remote:
                self._ui(self._set_log_state, "none")
                self._ui(
                    self._show_capture,
                    f"{clean_text(record.name, max_len=64)} runs on host "
                    f"{clean_text(record.host, max_len=64)}: its pane is shown only there",
                )
                return
            if stream is not None:
                try:  # this host's pane, never the record's
                    record = await call(stream.resolve_record, record)
                except Exception as exc:
                    self._ui(self._set_log_state, "none")
                    self._ui(self._show_capture, f"stream refused: {clean_text(str(exc))}")
                    return
            try:
                if actions is None:
                    state = "no pipe in this view"
                else:
                    piped = True
                    path, state = await call(actions.open_log, record)
            except Exception as exc:  # the stream still works from captures
                path, state = None, f"unavailable ({exc})"
            self._ui(self._set_log_state, state)
            await self._stream(call, source, stream, record, path)
        finally:
            if piped and stream is not None:  # nobody streams it any more (only ours closes)
                pool.submit(_close_quietly, stream, record)
            pool.shutdown(wait=False)

    async def _stream(
        self,
        call: _Calls,
        source: SnapshotSource,
        stream: StreamActions | None,
        record: AgentRecord,
        path: Path | None,
    ) -> None:
        tail = LogTail(path) if path is not None else None
        watcher: asyncio.Task[None] | None = None
        if tail is not None:  # watching first: what is written meanwhile wakes the loop
            watcher = asyncio.create_task(watch_file(tail.path, self._kick.set))
            await call(tail.start_at_end)
        if stream is not None:
            try:
                raw = await call(stream.history, record)
                history = await call(sanitize_stream, raw)
            except Exception as exc:
                history = f"(no scrollback: {exc})"
            self._ui(self._append, trim_bottom(history.rstrip("\n").split("\n"))[-MAX_LINES:])
        elif tail is not None:
            tail.offset = max(tail.offset - INITIAL_TAIL, 0)
        activity: str | None = None
        read_at = 0.0  # no read of the log before this (the reader's pause)
        now = time.monotonic()
        next_probe = now
        next_pipe_check = now + PIPE_CHECK_S
        next_lookup = now  # a pane without our pipe that stopped answering: found by name again
        try:
            while self._still_wanted():
                self._kick.clear()  # what wakes it from here on is news for the next turn
                self.turns += 1
                now = time.monotonic()
                if tail is not None and watcher is None:
                    watcher = asyncio.create_task(watch_file(tail.path, self._kick.set))
                grew = more = False
                if tail is not None and self.mode != "log":
                    grew = await call(tail.peek)
                elif tail is not None and now < read_at:
                    more = True  # read when the pause is over
                elif tail is not None:
                    lines, grew, more = await call(tail.read)
                    read_at = now + max(READ_PAUSE_S, READ_SHARE * (time.monotonic() - now))
                    if lines:
                        self._ui(self._append, lines)
                if tail is not None:
                    if stream is not None and now >= next_pipe_check:
                        next_pipe_check = now + PIPE_CHECK_S
                        try:  # another dashboard that streamed this pane may have closed it
                            again, _state = await call(stream.open_log, record)
                        except Exception as exc:  # the session ended, or tmux did not answer
                            again = None
                            self._ui(self._set_pane_lost, _why(exc))
                        else:
                            if self.pane_lost:  # back (an agent restarted): its new pane
                                record = await self._found_again(call, stream, record)
                        if again is not None and again != tail.path:
                            tail = LogTail(again)
                            if watcher is not None:
                                watcher.cancel()
                                watcher = None
                else:  # no pipe of ours: tmux's activity stamp is all there is to watch
                    if now >= next_probe:
                        next_probe = now + ACTIVITY_PROBE_S
                        try:
                            stamp = await call(source.pane_activity, record)
                        except Exception as exc:
                            stamp = activity  # no news: the last screen stays as it was
                            if stream is None:
                                self._ui(self._set_pane_lost, _why(exc))
                            elif now >= next_lookup:  # by name: the pane, or the agent's new one
                                next_lookup = now + PIPE_CHECK_S
                                record = await self._found_again(call, stream, record)
                        else:
                            if self.pane_lost:
                                self._ui(self._set_pane_lost, "")
                        if stamp != activity:
                            activity, grew = stamp, True
                if grew:
                    self._dirty = True
                if self._dirty and self.mode == "screen":
                    if now - self._last_capture >= CAPTURE_MIN_INTERVAL_S:
                        self._dirty = False
                        self._last_capture = now
                        try:
                            raw = await call(source.capture_screen, record)
                            text = await call(sanitize_stream, raw)
                            self._ui(self._show_capture, text)
                        except Exception as exc:
                            self._ui(self._show_capture, f"(capture failed: {exc})")
                # sleep until a change of the log, a key that needs a capture, or what is due
                now = time.monotonic()
                waits: list[float] = []
                if tail is None:
                    waits.append(next_probe - now)
                else:
                    watching = watcher is not None and not watcher.done()
                    waits.append(SAFETY_TICK_S if watching else UNWATCHED_TICK_S)
                    if more:
                        waits.append(read_at - now)
                    if stream is not None:
                        waits.append(next_pipe_check - now)
                if self._dirty and self.mode == "screen":
                    waits.append(self._last_capture + CAPTURE_MIN_INTERVAL_S - now)
                timeout = max(min(waits), 0.0)
                try:
                    async with asyncio.timeout(timeout):
                        await self._kick.wait()
                except TimeoutError:
                    pass
        finally:
            if watcher is not None:
                watcher.cancel()

    async def _found_again(
        self, call: _Calls, stream: StreamActions, record: AgentRecord
    ) -> AgentRecord:
        """The pane is reachable again: the record of its (maybe new) pane, the note gone and a
        capture due; if the resolution fails, the note stays and so does `record`."""
        try:
            record = await call(stream.resolve_record, record)
        except Exception as exc:
            self._ui(self._set_pane_lost, _why(exc))
            return record
        self._dirty = True
        self._ui(self._set_pane_lost, "")
        return record

    def _still_wanted(self) -> bool:
        """False once the screen left or the app is exiting (the worker is also cancelled when
        the screen unmounts; this ends it as soon as the screen is popped)."""
        return not self._stop_follow and on_stack(self)

    def on_unmount(self) -> None:
        self._stop_follow = True

    def _ui(self, fn: Callable[..., None], *args: object) -> None:
        """Show a result of the follower, unless the screen is being removed."""
        if self._stop_follow or not self.is_mounted:
            return
        try:
            fn(*args)
        except NoMatches:
            pass

    def _set_pane_lost(self, why: str) -> None:
        if why != self.pane_lost:
            self.pane_lost = why
            self._title()

    def _set_log_state(self, state: str) -> None:
        self.log_state = state
        self._title()

    def _append(self, lines: list[str]) -> None:
        self.query_one(StreamLog).append_lines(lines)
        if self.mode == "log":
            self._title()

    def _show_capture(self, sanitized: str) -> None:
        self.captures += 1
        if sanitized == self._capture_shown:  # the pane shows what it showed: nothing to redo
            self.query_one(ScreenView).follow()
            return
        self._capture_shown = sanitized
        text = Text()
        rows = trim_bottom(sanitized.rstrip("\n").split("\n"))
        widest = 0
        for i, line in enumerate(rows):
            if i:
                text.append("\n")
            styled = ansi_to_text(line)
            widest = max(widest, styled.cell_len)
            text.append_text(styled)
        capture = self.query_one("#stream-capture", Static)
        # The same number of rows, none wrapped, now and before: the same size, so no layout of
        # the screen (during a burst a capture up to 10 times a second, keys wait behind each)
        width = capture.content_size.width
        shape = (len(rows), widest <= width) if width else None
        same = shape is not None and shape[1] and shape == self._capture_shape
        self._capture_shape = shape
        capture.update(text, layout=not same)
        self.query_one(ScreenView).follow()

    def on_screen_view_follow_changed(self, event: ScreenView.FollowChanged) -> None:
        self._title()

    # -- actions ---------------------------------------------------------------------------
    def on_stream_log_tail_changed(self, event: StreamLog.TailChanged) -> None:
        self._title()

    def action_toggle_mode(self) -> None:
        self.mode = "log" if self.mode == "screen" else "screen"
        switch = self.query_one(ContentSwitcher)
        switch.current = "stream-log" if self.mode == "log" else "stream-screen"
        self._kick.set()  # screen mode: a capture; log mode: what was written meanwhile
        if self.mode == "screen":
            self._dirty = True
            focus_now(self.query_one(ScreenView))
        else:
            focus_now(self.query_one(StreamLog))
        self._title()

    def type_ahead_box(self) -> Input | None:
        """The search box while it is open: the keys typed right behind `/` go there."""
        box = self.query_one("#stream-search", Input)
        return box if box.display else None

    def action_search(self) -> None:
        if self.mode != "log":
            self.action_toggle_mode()
        box = self.query_one("#stream-search", Input)
        box.display = True
        focus_now(box)  # at once: what is typed right behind `/` is queued already

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one(StreamLog).set_search(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_find(True)

    def action_find(self, forward: bool) -> None:
        log = self.query_one(StreamLog)
        if log.find(forward) is None and log.search:
            found = "no more matches" if log.has_match() else "no match"
            self._title(f"{found} for '{log.search}'")

    def action_back(self) -> None:
        box = self.query_one("#stream-search", Input)
        if box.display:
            box.display = False
            self.query_one(StreamLog).focus()
            return
        self.app.pop_screen()
