"""Crash handling of the dashboard: a crash log in the state dir, one line on the screen.

Textual's own crash report is a traceback WITH the locals of every frame, printed on the
operator's terminal: an agent's whole record (heartbeat detail, cwd, pane title) ended up on the
screen, and the process still exited 0. Here instead:

- `arm(state_dir)` (the `tui` verb, before the app starts) says where crash logs go.
- `CrashGuard`, a base of `FleetApp`, hands every unhandled exception of the app to `record`
  and keeps Textual from rendering or printing its traceback with locals; Textual still restores
  the terminal and leaves.
- `record(error)` writes the traceback WITHOUT locals (control characters escaped) to
  `<state dir>/crash/dashboard-<UTC time>-<pid>.log` (mode 0600; a temp file when the state dir
  cannot be written); later errors of the same run are appended to the same log.
- `summary()` is the one line the command line prints on stderr after the app has gone; the
  command then exits 1 (DESIGN.md: a crash of the dashboard exits non-zero).

Only the crash log holds the traceback, never the screen. `FLEET_TUI_TEST_CRASH=1` (test-only,
undocumented) makes the dashboard crash in a timer handler once agents are on screen, with their
records in the handler's locals.

This module imports no Textual at run time: the command line imports it for every dashboard run.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.app import App

    _AppBase = App[Any]
else:
    _AppBase = object

TEST_CRASH_ENV = "FLEET_TUI_TEST_CRASH"
# C0 but tab/newline, DEL, C1: a crash log is a file an operator may `cat` on a terminal.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class _State:
    def __init__(self) -> None:
        self.state_dir: Path | None = None
        self.log_path: Path | None = None
        self.log_error: str | None = None
        self.errors: list[str] = []


_state = _State()


def arm(state_dir: Path) -> None:
    """From now on, unhandled errors of the app are recorded in a crash log under `state_dir`."""
    global _state
    _state = _State()
    _state.state_dir = state_dir


def disarm() -> None:
    """Back to Textual's own error handling (the dashboard has gone)."""
    global _state
    _state = _State()


def armed() -> bool:
    return _state.state_dir is not None


def crashed() -> bool:
    return bool(_state.errors)


def log_path() -> Path | None:
    return _state.log_path


def _escape(text: str) -> str:
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def format_error(error: BaseException) -> str:
    """The traceback of `error` (chained causes included), without locals, controls escaped."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    # Lone surrogates (undecodable bytes in an argument or a file name) stay readable text.
    return _escape(text.encode("utf-8", "backslashreplace").decode("utf-8"))


def _open_log(state_dir: Path, stamp: str) -> tuple[int, Path]:
    folder = state_dir / "crash"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"dashboard-{stamp}-{os.getpid()}.log"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o600), path


def _write_new_log(text: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    fd = -1
    problems: list[str] = []
    if _state.state_dir is not None:
        try:
            fd, path = _open_log(_state.state_dir, stamp)
        except OSError as exc:
            problems.append(f"{_state.state_dir}: {exc.strerror or exc}")
    if fd < 0:
        try:
            fd, name = tempfile.mkstemp(prefix=f"fleet-tui-crash-{stamp}-", suffix=".log")
            path = Path(name)
        except OSError as exc:
            problems.append(f"temp dir: {exc.strerror or exc}")
            _state.log_error = "; ".join(problems)
            return
    try:
        os.write(fd, text.encode("utf-8"))
    except OSError as exc:
        problems.append(f"{path}: {exc.strerror or exc}")
        _state.log_error = "; ".join(problems)
    finally:
        os.close(fd)
    _state.log_path = path


def record(error: BaseException) -> None:
    """Note an unhandled error and write its traceback (no locals) to the crash log."""
    from fleet_tui import __version__

    body = format_error(error)
    _state.errors.append(type(error).__name__)
    if _state.log_path is None and _state.log_error is None:
        head = (
            f"fleet-tui {__version__} dashboard crash at {datetime.now(UTC).isoformat()}\n"
            f"python {sys.version.split()[0]}, pid {os.getpid()}, argv {_escape(repr(sys.argv))}\n"
            "\n"
        )
        _write_new_log(head + body)
        return
    if _state.log_path is not None:
        try:
            with open(_state.log_path, "a", encoding="utf-8") as log:
                log.write("\nand then:\n" + body)
        except OSError:
            pass


def summary() -> str:
    """The one line for the operator's terminal: what kind of error, where the log is."""
    kind = _state.errors[0] if _state.errors else "error"
    if _state.log_path is not None:
        return f"the dashboard crashed ({kind}); crash log: {_state.log_path}"
    return f"the dashboard crashed ({kind}); no crash log could be written ({_state.log_error})"


class CrashGuard(_AppBase):
    """A base of the dashboard's App: unhandled errors go to the crash log, never to the screen
    (only while `arm` was called: tests driving the app headless keep Textual's behaviour)."""

    def _handle_exception(self, error: Exception) -> None:
        if not armed():
            super()._handle_exception(error)
            return
        record(error)
        super()._handle_exception(error)
        # Whatever Textual queued to print at exit (a traceback, an error's rich rendering)
        # stays off the operator's screen: the command line prints `summary()` instead.
        self._exit_renderables.clear()

    def _fatal_error(self) -> None:
        if not armed():
            super()._fatal_error()
            return
        # Textual builds a traceback with locals here; the crash log already has the traceback.
        self._close_messages_no_wait()

    def on_mount(self) -> None:
        if armed() and os.environ.get(TEST_CRASH_ENV) == "1":
            self.set_interval(0.2, self._crash_for_tests, name="test crash")

    def _crash_for_tests(self) -> None:
        snapshot = getattr(self, "snapshot", None)
        records = list(getattr(snapshot, "agents", None) or [])
        if records:
            raise RuntimeError(f"{TEST_CRASH_ENV} is set: crashing with {len(records)} records")
