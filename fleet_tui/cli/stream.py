"""`fleet-tui stream NAME [--follow] [--lines N] [--color auto|always|never]` (DESIGN.md "CLI"):
the agent's pane as sanitized text on stdout, what the dashboard's stream screen shows. For
scripts, and for the dashboard of another host (`s` on a remote row runs it over SSH).

- The pane is found as the stream screen finds it: a fresh tmux scan of THIS host by the
  agent's exact name (`control.actions.LiveActions.resolve_record`); no agent (or no session):
  exit 3.
- Without `--follow`: the visible pane (blank rows below the last text dropped), or with
  `--lines N` the last N lines of scrollback and screen (wrapped lines joined); exit 0.
- With `--follow`: that, then the pane's new output as it comes, read from the same pipe-pane
  log the stream screen reads (`logs/<socket>.<agent>.log` in the state dir, opened without
  `-o`; a pipe already there is shared, never replaced). When another program's pipe is on the
  pane, the new lines of successive screen captures are printed instead. It ends when the pane
  ends (its process exited, its session or server gone: exit 0), on SIGTERM or SIGHUP (exit
  0), on Ctrl-C (exit 130), or when the reader of stdout goes away (EPIPE, or the pipe's other
  end closed while the pane is quiet: exit 0); in every case it closes the pipe on its way out,
  as the stream screen does when it leaves (a dashboard or another follower still streaming
  the pane sees its pipe gone and opens it again, within seconds).
- Output: ONLY text, newline, tab and, when colour is on, the canonical SGR styling the
  sanitizer keeps (core.sanitize); no other escape sequence or control character ever passes.
  Colour (`--color auto`, the default) is on when stdout is a terminal and neither NO_COLOR
  nor TERM=dumb say otherwise: a file or a pipe gets plain text. A coloured line ends with a
  reset, so no style leaks past it. `--color always` is for a reader that sanitizes again and
  draws the styles (the dashboard over SSH).
- Audit: as in the dashboard's stream, reading the screen is not audited; opening and closing
  the pipe are (action `pipe`, written before the pipe is opened: when it cannot be written
  nothing is opened, exit 5), surface `cli` (or `ssh` when run over SSH by another host's
  dashboard, see control.audit).

Imports only argparse at module level (the CLI loads every verb module to build its parser).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from fleet_tui.cli.args import config_from_args, new_collector

if TYPE_CHECKING:
    from pathlib import Path

    from fleet_tui.control.actions import LiveActions
    from fleet_tui.model.records import AgentRecord

MAX_LINES = 100_000
POLL_S = 0.05  # how often the pipe log is looked at for new bytes
CHECK_S = 1.0  # how often the pane is asked whether it still lives and still has a pipe
CAPTURE_S = 0.5  # without a pipe of ours: how often the screen is captured


def _lines(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: '{text}'") from None
    if not 1 <= value <= MAX_LINES:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LINES}: '{text}'")
    return value


def add_parsers(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "stream",
        help="the agent's pane as sanitized text on stdout",
        description="Print the agent's pane as sanitized text: the visible pane, or the last "
        "--lines N lines; with --follow, then its new output as it comes, until the pane ends "
        "or you stop it. Only text (and, on a terminal, colours) is printed: no other escape "
        "sequence. Exit 0 done (also at the pane's end, SIGTERM, or a closed pipe), 3 no such "
        "agent or no session, 5 refused (the audit log cannot be written), 130 Ctrl-C.",
    )
    common(p)
    p.add_argument("name")
    p.add_argument(
        "-f", "--follow", action="store_true", help="then print new output until the pane ends"
    )
    p.add_argument(
        "-n",
        "--lines",
        metavar="N",
        type=_lines,
        default=None,
        help="the last N lines of scrollback and screen (default: the visible pane)",
    )
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="keep the pane's colours (SGR only): auto = when stdout is a terminal",
    )


class _Stop(Exception):
    """SIGTERM or SIGHUP: end quietly (exit 0), the pipe closed on the way."""


class _ReaderGone(Exception):
    """Nobody reads stdout any more: end (exit 0)."""


class Output:
    """Sanitized lines to stdout: canonical SGR kept only with `color`, every line written
    whole and flushed (a script reading line by line sees each at once)."""

    def __init__(self, stream: IO[bytes], *, color: bool) -> None:
        from fleet_tui.core.sanitize import SGR_IN_LINE

        self.stream = stream
        self.color = color
        self._sgr = SGR_IN_LINE
        self.written = 0

    def lines(self, lines: list[str]) -> None:
        if not lines:
            return
        out: list[str] = []
        for line in lines:
            if "\x1b" in line:
                line = line + "\x1b[m" if self.color else self._sgr.sub("", line)
            out.append(line + "\n")
        data = "".join(out).encode("utf-8", "replace")
        try:
            self.stream.write(data)
            self.stream.flush()
        except BrokenPipeError:
            raise _ReaderGone() from None
        self.written += len(lines)


def _blank(line: str) -> bool:
    from fleet_tui.core.sanitize import SGR_IN_LINE

    return not SGR_IN_LINE.sub("", line).strip()


def trim_bottom(lines: list[str]) -> list[str]:
    """The lines without the blank rows below the last text (as the stream screen shows them)."""
    end = len(lines)
    while end > 0 and _blank(lines[end - 1]):
        end -= 1
    return lines[:end]


def _sanitized_lines(raw: str) -> list[str]:
    from fleet_tui.core.sanitize import sanitize_stream

    return sanitize_stream(raw).rstrip("\n").split("\n")


def use_color(choice: str, stream: IO[bytes]) -> bool:
    if choice != "auto":
        return choice == "always"
    from fleet_tui.present.text import use_color as tty_color

    try:
        tty = stream.isatty()
    except (ValueError, OSError):
        tty = False
    return tty_color(tty)


def find_record(args: argparse.Namespace) -> tuple[LiveActions, AgentRecord]:
    """The live actions (surface cli, or ssh) and the agent's record re-resolved on THIS
    host's tmux by its exact name; AgentNotFound (exit 3) for no agent, no session, or a pane
    that cannot be found."""
    from fleet_tui.control.actions import LiveActions
    from fleet_tui.control.panes import ControlError
    from fleet_tui.core.sanitize import clean_text
    from fleet_tui.errors import AgentNotFound, BadInput
    from fleet_tui.tmux import TmuxRunner, check_session_name

    check_session_name(args.name)
    config = config_from_args(args)
    snapshot = new_collector(config).collect()
    exact = [a for a in snapshot.agents if a.is_agent and a.name == args.name]
    for keep in (lambda a: a.tmux is not None, lambda a: a.in_roster):
        if len(exact) > 1 and any(keep(a) for a in exact):
            exact = [a for a in exact if keep(a)]
    if not exact:
        raise AgentNotFound(f"no agent named '{clean_text(args.name, max_len=64)}'")
    if len(exact) > 1:
        where = ", ".join(sorted(a.socket or "-" for a in exact))
        raise BadInput(f"agent '{args.name}' runs on several tmux sockets ({where})")
    record = exact[0]
    if record.tmux is None or record.socket is None:
        raise AgentNotFound(f"agent '{args.name}' has no session (down)")
    runner = TmuxRunner(timeout=config.tmux_timeout_s)
    actions = LiveActions(runner, config.state_dir, config, surface="cli")
    try:
        return actions, actions.resolve_record(record)
    except ControlError as exc:
        raise AgentNotFound(f"agent '{args.name}': {clean_text(str(exc))}") from None


def first_screen(actions: LiveActions, record: AgentRecord, lines: int | None) -> list[str]:
    """The visible pane (rows as shown), or the last `lines` lines (wrapped lines joined)."""
    from fleet_tui import tmux as recipe

    assert record.tmux is not None and record.socket is not None
    pane = record.tmux.pane_id
    if lines is None:
        argv = recipe.capture(pane, escapes=True, joined=False)
    else:
        argv = recipe.capture(pane, history=lines, escapes=True)
    raw = actions.runner.run(record.socket, *argv, timeout=3.0).stdout
    rows = trim_bottom(_sanitized_lines(raw))
    return rows if lines is None else rows[-lines:]


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end the follow like a normal end (exit 0, pipe closed)."""

    def stop(signum: int, frame: object) -> None:
        raise _Stop()

    saved = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def _reader_gone(fd: int) -> bool:
    """True when stdout is a pipe or socket whose reader went away (POLLERR/POLLHUP): a quiet
    pane would otherwise keep a follower whose ssh connection closed alive until it wrote."""
    import select

    try:
        poller = select.poll()
        poller.register(fd, 0)
        events = poller.poll(0)
    except (OSError, ValueError):
        return False
    return any(ev & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _fd, ev in events)


def _new_rows(before: list[str], now: list[str]) -> list[str]:
    """The rows of capture `now` that were not on screen `before`: what comes after the longest
    end of `before` that `now` starts with (a screen that scrolled); the whole screen when
    nothing overlaps (it was redrawn), nothing when it did not change."""
    if now == before:
        return []
    for k in range(min(len(before), len(now)), 0, -1):
        if before[-k:] == now[:k]:
            return now[k:]
    return now


def follow(
    actions: LiveActions, record: AgentRecord, out: Output, lines: int | None, stdout_fd: int
) -> None:
    """Print the first screen, then the pane's new output until it ends (see the module doc)."""
    from fleet_tui.control.panes import ControlError, pane_fields
    from fleet_tui.errors import TmuxError
    from fleet_tui.sources.pipelog import PipeLogTail

    assert record.tmux is not None and record.socket is not None
    socket, pane = record.socket, record.tmux.pane_id
    try:
        (dead,) = pane_fields(actions.runner, socket, pane, "pane_dead")
    except (ControlError, TmuxError):
        dead = "1"  # gone since it was found
    if dead == "1":  # nothing more will come: what it shows, and the end
        with contextlib.suppress(ControlError, TmuxError):
            out.lines(first_screen(actions, record, lines))
        return
    path: Path | None = None
    opening = True  # a signal inside open_log may come after the pipe opened: close it too
    try:
        try:  # audited "pipe" when it opens one (fails closed: AuditUnavailable, exit 5)
            path, _state = actions.open_log(record)
        except (ControlError, TmuxError):  # it ended meanwhile: the screen's new rows, if any
            path = None
        opening = False
        tail = PipeLogTail(path) if path is not None else None
        if tail is not None:
            tail.start_at_end()
        screen = first_screen(actions, record, lines)
        out.lines(screen)
        next_check = next_capture = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_check:
                next_check = now + CHECK_S
                if _reader_gone(stdout_fd):
                    raise _ReaderGone()
                try:
                    dead, piped = pane_fields(
                        actions.runner, socket, pane, "pane_dead", "pane_pipe"
                    )
                except (ControlError, TmuxError):
                    dead, piped = "1", "0"  # the session or its server is gone
                if dead == "1":
                    break
                if tail is not None and piped == "0":  # another follower closed it: again
                    try:
                        again, _state = actions.open_log(record)
                    except ControlError:
                        break
                    if again is not None and again != tail.path:
                        tail = PipeLogTail(again)
            if tail is not None:
                out.lines(tail.read()[0])
            elif now >= next_capture:  # another program's pipe: the screen's new rows
                next_capture = now + CAPTURE_S
                try:
                    current = first_screen(actions, record, None)
                except (ControlError, TmuxError):
                    break
                out.lines(_new_rows(screen, current))
                screen = current
            time.sleep(POLL_S)
        if tail is not None:
            time.sleep(POLL_S)  # the pipe's last bytes
            out.lines(tail.rest())
    finally:
        if path is not None or opening:  # closes only a pipe of ours (control.close_pipe_log)
            with contextlib.suppress(Exception):  # the pane or its server may be gone
                actions.close_log(record)


def cmd_stream(args: argparse.Namespace) -> int:
    from fleet_tui.errors import EXIT_OK

    actions, record = find_record(args)
    stdout = sys.stdout
    stdout.flush()
    out = Output(stdout.buffer, color=use_color(args.color, stdout.buffer))
    try:
        if not args.follow:
            out.lines(first_screen(actions, record, args.lines))
            return EXIT_OK
        with _signals():
            follow(actions, record, out, args.lines, stdout.fileno())
    except (_Stop, _ReaderGone):
        pass
    except BrokenPipeError:
        pass
    finally:
        _quiet_stdout_if_gone(stdout)
    return EXIT_OK


def _quiet_stdout_if_gone(stdout: IO[str]) -> None:
    """When the reader went away, point stdout at /dev/null: the interpreter's last flush at
    exit would otherwise print 'Exception ignored ... BrokenPipeError' on stderr."""
    try:
        stdout.flush()
    except (BrokenPipeError, ValueError, OSError):
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stdout.fileno())
            os.close(devnull)


VERBS = {"stream": cmd_stream}
