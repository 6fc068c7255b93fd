"""StreamScreen (`s`): a live, READ-ONLY view of one agent's pane.

The pane is found on THIS host by the actions (`resolve_record`: a fresh tmux scan by exact
agent name), never at a record's own coordinates; a remote agent is not streamed.

Screen mode shows what the pane shows now (also full-screen TUIs, with colours), re-captured
only when the pane changed: when its pipe log grew, or (without a pipe of ours) when tmux's
activity stamp moved. It follows the BOTTOM of the pane (where a waiting agent's question and
prompt are; blank rows below the last text are dropped); scrolling up pauses that, `end`
resumes. Log mode starts with the pane's scrollback (`capture-pane -S -N`), then tails the
pane's pipe-pane log in the state dir with bounded memory, search, and a tail that pauses
while the operator reads. The pipe is ours only while the screen is open: it is closed when the
screen leaves, and the log is emptied when it passes `LOG_CAP` bytes. Nothing typed here is
ever sent to the agent: this screen has no path to `send-keys`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Footer, Input, Static
from textual.worker import Worker, get_current_worker

from fleet_tui.control.actions import StreamActions
from fleet_tui.core.sanitize import StreamSanitizer, clean_text, sanitize_stream
from fleet_tui.model.records import AgentRecord
from fleet_tui.present.ansi import ansi_to_text
from fleet_tui.ui.context import Dashboard, dashboard_of, on_stack
from fleet_tui.ui.widgets.stream_log import MAX_LINES, StreamLog

if TYPE_CHECKING:
    from fleet_tui.service.poll import SnapshotSource

READ_CHUNK = 1 << 20
MAX_BACKLOG = 2 << 20  # more unread than this: skip ahead (those lines would scroll away)
INITIAL_TAIL = 256 << 10
CAPTURE_MIN_INTERVAL_S = 0.1
ACTIVITY_PROBE_S = 0.5
PIPE_CHECK_S = 3.0  # how often a pipe we stream from is checked (another dashboard may close it)
LOG_CAP = 16 << 20  # a stream log past this size is emptied (the reader starts over)


def _blank(line: str) -> bool:
    return not (ansi_to_text(line).plain.strip() if "\x1b" in line else line.strip())


def trim_bottom(lines: list[str]) -> list[str]:
    """The lines without the blank rows below the last text (a pane's unused bottom)."""
    end = len(lines)
    while end > 1 and _blank(lines[end - 1]):
        end -= 1
    return lines[:end]


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
        self.captures = 0
        self._dirty = True
        self._last_capture = 0.0
        self._sanitizer = StreamSanitizer()
        self._inflight = 0
        self._stop_follow = False

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
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#stream-search", Input).display = False
        self.query_one(ScreenView).focus()
        self._title()
        self.follow_pane()

    def receive_snapshot(self) -> None:
        """A new poll: nothing to redraw (the follower reads the pane itself). Safe at any
        point of the screen's life, before compose and after it left."""

    def _title(self, extra: str = "") -> None:
        r = self.record
        t = Text()
        t.append(f" {clean_text(r.name, max_len=80)}", style="bold")
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
        title.update(t)

    # -- the follower (one thread: pipe log tail + screen captures) --------------------------
    def follow_pane(self) -> None:
        self.run_worker(
            self._follow,
            thread=True,
            group="stream",
            exclusive=True,
            exit_on_error=False,
            description=f"stream {self.record.name}",
        )

    def _follow(self) -> None:
        worker = get_current_worker()
        source = self.dashboard.source
        actions = self.dashboard.actions
        stream = actions if isinstance(actions, StreamActions) else None
        record = self.record
        if record.remote:
            self._deliver(self._set_log_state, "none")
            self._deliver(
                self._show_capture,
                f"{clean_text(record.name, max_len=64)} runs on host "
                f"{clean_text(record.host, max_len=64)}: its pane is shown only there",
            )
            return
        if stream is not None:
            try:
                record = stream.resolve_record(record)  # this host's pane, never the record's
            except Exception as exc:
                self._deliver(self._set_log_state, "none")
                self._deliver(self._show_capture, f"stream refused: {clean_text(str(exc))}")
                return
        path: Path | None = None
        try:
            if actions is None:
                state = "no pipe in this view"
            else:
                path, state = actions.open_log(record)
        except Exception as exc:  # the stream still works from captures
            path, state = None, f"unavailable ({exc})"
        self._deliver(self._set_log_state, state)
        try:
            self._stream(worker, source, stream, record, path)
        finally:
            if path is not None and stream is not None:
                try:
                    stream.close_log(record)  # nobody streams it any more
                except Exception:
                    pass

    def _stream(
        self,
        worker: Worker[None],
        source: SnapshotSource,
        stream: StreamActions | None,
        record: AgentRecord,
        path: Path | None,
    ) -> None:
        self._sanitizer = StreamSanitizer()
        offset = 0
        if path is not None:
            try:
                offset = os.path.getsize(path)
            except OSError:
                offset = 0
        if stream is not None:
            try:
                history = sanitize_stream(stream.history(record))
            except Exception as exc:
                history = f"(no scrollback: {exc})"
            lines = trim_bottom(history.rstrip("\n").split("\n"))[-MAX_LINES:]
            self._deliver(self._append, lines)
        elif path is not None:
            offset = max(offset - INITIAL_TAIL, 0)
        pending = ""
        activity: str | None = None
        next_probe = 0.0
        next_pipe_check = time.monotonic() + PIPE_CHECK_S
        backlog: list[str] = []
        while not worker.is_cancelled and self._still_wanted():
            grew = False
            now = time.monotonic()
            if path is not None:
                batch, offset, pending, grew = self._read_log(path, offset, pending)
                backlog.extend(batch)
                if backlog and self._inflight < 2:  # one batch per frame, never a flood
                    self._deliver(self._append, backlog[-MAX_LINES:])
                    backlog = []
                elif len(backlog) > MAX_LINES:
                    del backlog[:-MAX_LINES]
                if offset > LOG_CAP:
                    try:
                        os.truncate(path, 0)  # the writer appends (O_APPEND): it goes on at 0
                    except OSError:
                        pass
                if stream is not None and now >= next_pipe_check:
                    next_pipe_check = now + PIPE_CHECK_S
                    try:  # another dashboard that streamed this pane may have closed the pipe
                        again, _state = stream.open_log(record)
                    except Exception:
                        again = path
                    path = again or path
            if path is None and now >= next_probe:
                next_probe = now + ACTIVITY_PROBE_S
                try:
                    stamp = source.pane_activity(record)
                except Exception:
                    stamp = None
                if stamp != activity:
                    activity, grew = stamp, True
            if (
                (grew or self._dirty)
                and self.mode == "screen"
                and now - self._last_capture >= CAPTURE_MIN_INTERVAL_S
            ):
                self._dirty = False
                self._last_capture = now
                try:
                    raw = source.capture_screen(record)
                    text = sanitize_stream(raw)
                    self._deliver(self._show_capture, text)
                except Exception as exc:
                    self._deliver(self._show_capture, f"(capture failed: {exc})")
            elif grew:
                self._dirty = True
            time.sleep(0.05)

    def _still_wanted(self) -> bool:
        """False once the screen left or the app is exiting (the thread must end by itself:
        asyncio waits for executor threads when the app stops)."""
        return not self._stop_follow and on_stack(self)

    def on_unmount(self) -> None:
        self._stop_follow = True

    class _Deliver(Message):
        """A result of the follower thread, handed to the UI without blocking the thread
        (a blocking hand-over would hang when the app exits under it)."""

        def __init__(self, fn: Callable[..., None], args: tuple[object, ...]) -> None:
            super().__init__()
            self.fn, self.args = fn, args

    def _deliver(self, fn: Callable[..., None], *args: object) -> None:
        self._inflight += 1
        self.post_message(self._Deliver(fn, args))

    def on_stream_screen__deliver(self, message: _Deliver) -> None:
        self._inflight -= 1
        if self._stop_follow or not self.is_mounted:
            return
        try:
            message.fn(*message.args)
        except NoMatches:  # the screen is being removed
            pass

    def _read_log(self, path: Path, offset: int, pending: str) -> tuple[list[str], int, str, bool]:
        try:
            size = os.path.getsize(path)
        except OSError:
            return [], offset, pending, False
        if size < offset:  # truncated or replaced: start over
            offset, pending = 0, ""
            self._sanitizer = StreamSanitizer()
        if size == offset:
            return [], offset, pending, False
        if size - offset > MAX_BACKLOG:  # far behind: what is skipped would scroll away anyway
            offset = size - MAX_BACKLOG
            pending = ""
            self._sanitizer = StreamSanitizer()
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(READ_CHUNK)
        offset += len(data)
        text = pending + self._sanitizer.feed(data)
        lines = text.split("\n")
        pending = lines.pop()
        return lines, offset, pending, True

    def _set_log_state(self, state: str) -> None:
        self.log_state = state
        self._title()

    def _append(self, lines: list[str]) -> None:
        self.query_one(StreamLog).append_lines(lines)
        if self.mode == "log":
            self._title()

    def _show_capture(self, sanitized: str) -> None:
        self.captures += 1
        text = Text()
        for i, line in enumerate(trim_bottom(sanitized.rstrip("\n").split("\n"))):
            if i:
                text.append("\n")
            text.append_text(ansi_to_text(line))
        self.query_one("#stream-capture", Static).update(text)
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
        if self.mode == "screen":
            self._dirty = True
            self.query_one(ScreenView).focus()
        else:
            self.query_one(StreamLog).focus()
        self._title()

    def action_search(self) -> None:
        if self.mode != "log":
            self.action_toggle_mode()
        box = self.query_one("#stream-search", Input)
        box.display = True
        box.focus()

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
