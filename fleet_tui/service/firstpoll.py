"""The dashboard's first poll, taken by a forked child while the dashboard imports Textual.

The start of the dashboard is CPU work on one thread: its imports (Textual, pydantic, our
modules: ~0.5-0.7 s here), then the first poll (~0.3 s of CPU at 1,000 agents). A thread
cannot overlap them (both hold the GIL; tried in the seventh round: no gain), a second process
can. The CLI imports the poll's modules and calls `FirstPoll.start` before it validates the
settings and imports the UI: the child, forked with those modules in memory, builds the same live source
as the dashboard (`dashboard_source`), polls once and hands the snapshot back through a pipe
(pickled: the child is this process's own fork and the pipe is private). The dashboard's first
poll takes it (`LiveSource.use_first`) instead of collecting; every poll after is its own.

Anything wrong in the child (an exception, a signal, no answer within WAIT_S) and the dashboard
polls itself, as it would have without the child: the first poll's errors (a bad roster, no
tmux) are reported the usual way, by the dashboard's own poll.

Not forked: with a gateway (its feed's thread and cache belong to one process), with another
thread already running (a fork copies no thread, and may copy a lock held by one), off Linux
(the collector reads /proc anyway), or with FLEET_TUI_NO_FIRST_POLL set.

This module imports what the child polls with (the dashboard imports it anyway), so the child
does not import it again; nothing of the UI.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import threading
import time
from datetime import datetime

from fleet_tui.config.fleet import FleetConfig, load_configured_roster
from fleet_tui.config.settings import DashboardSettings, default_settings, load_inference_rules
from fleet_tui.errors import NotReadYet
from fleet_tui.model.records import FleetSnapshot
from fleet_tui.service.budgets import LiveBudgetSource
from fleet_tui.service.poll import LiveSource
from fleet_tui.service.providers import budget_provider, dashboard_usage_provider
from fleet_tui.sources.roster import LoadedRoster

WAIT_S = 30.0  # at most this long for the child's answer (tmux calls time out well before)
GRACE_S = 1.0  # a child told to stop has this long before it is killed
MAX_ANSWER = 256 << 20  # a pickled snapshot larger than this is refused (1,000 agents: ~0.4 MB)


def dashboard_source(
    config: FleetConfig, settings: DashboardSettings, *, usage: bool = True
) -> tuple[LiveSource, LiveBudgetSource]:
    """The dashboard's live source and its budget source, built from the settings file's
    inference rules. `usage=False` (the first poll's child): the token-use provider answers
    "reading" as the real one does at its first call, without starting the index refresh the
    child would leave half done (the dashboard's own next poll starts it)."""
    budgets = LiveBudgetSource.for_config(config)
    rules, rule_notices = load_inference_rules()  # the settings file's `inference` section
    source = LiveSource(
        config,
        systemd_interval_s=settings.systemd_interval_s,
        usage_provider=dashboard_usage_provider(config) if usage else _reading,
        budget_provider=budget_provider(budgets),
        inference=rules,
        inference_notices=rule_notices,
    )
    return source, budgets


def _reading(snapshot: FleetSnapshot, now: datetime) -> dict[str, int]:
    raise NotReadYet("the token use is read by the dashboard's own polls")


class FirstPoll:
    """A forked child polling the fleet once; `take()` its snapshot, or None."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self._fd: int | None = fd
        self._reaped = False  # once reaped, its pid may be another process's: never signalled
        self._lock = threading.Lock()

    @classmethod
    def start(cls, config: FleetConfig) -> FirstPoll | None:
        """Fork the child, or None where it is not done (see the module's docstring)."""
        if (
            not sys.platform.startswith("linux")
            or config.gateway is not None
            or threading.active_count() > 1
            or os.environ.get("FLEET_TUI_NO_FIRST_POLL")
        ):
            return None
        try:
            read_fd, write_fd = os.pipe()
        except OSError:  # no file descriptor left: the dashboard polls itself
            return None
        # No Ctrl-C or SIGTERM between the fork and the child's own handlers: the child must
        # never unwind into the caller's code.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.close(read_fd)
            os.close(write_fd)
            return None
        if pid == 0:  # the child: never returns
            try:
                os.close(read_fd)
                _child(config, write_fd, mask)
            finally:
                os._exit(1)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(write_fd)
        return cls(pid, read_fd)

    def take(self, timeout: float = WAIT_S) -> tuple[FleetSnapshot, LoadedRoster | None] | None:
        """The child's snapshot and the roster it read (blocks until it answers, at most
        `timeout`); None when it failed, did not answer in time, or was taken or cancelled
        already. Call it from a thread, never the event loop."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is None:
            return None
        data = bytearray()
        deadline = time.monotonic() + timeout
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        try:
            while len(data) <= MAX_ANSWER:
                left = deadline - time.monotonic()
                if left <= 0 or not poller.poll(left * 1000):
                    data.clear()  # no answer in time: the dashboard polls itself
                    break
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                data += chunk
        except OSError:
            data.clear()
        finally:
            os.close(fd)
            self._reap(kill=not data)  # an answer ends at the child's exit
        if not data or len(data) > MAX_ANSWER:
            return None
        try:
            snapshot, roster = pickle.loads(bytes(data))  # our own child's answer
        except Exception:
            return None
        if not isinstance(snapshot, FleetSnapshot):
            return None
        return snapshot, (roster if isinstance(roster, LoadedRoster) else None)

    def cancel(self) -> None:
        """Stop the child if it still runs (it cleans up what it was writing) and reap it; a
        `take()` waiting meanwhile in another thread then returns None."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        self._reap(kill=True)

    def _reap(self, *, kill: bool) -> None:
        """Wait for the child's end; `kill`: ask it to stop first (SIGTERM; SIGKILL after
        GRACE_S, e.g. while it waits on a hung tmux). Safe from two threads at once."""
        deadline = time.monotonic() + GRACE_S if kill else None
        if kill:
            self._signal(signal.SIGTERM)
        while True:
            with self._lock:
                if self._reaped:
                    return
                try:
                    ended = os.waitpid(self.pid, os.WNOHANG)[0] != 0
                except ChildProcessError:
                    ended = True
                if ended:
                    self._reaped = True
                    return
            if deadline is not None and time.monotonic() > deadline:
                self._signal(signal.SIGKILL)
                deadline = None
            time.sleep(0.005)

    def _signal(self, sig: int) -> None:
        with self._lock:
            if not self._reaped:
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    pass


def _stop(signum: int, frame: object) -> None:
    """SIGTERM in the child: unwind (a file being written is removed: `protocol.files`); a
    second one kills it at once."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(1)


def _child(config: FleetConfig, write_fd: int, mask: set[int | signal.Signals]) -> None:
    """Poll once and write the pickled snapshot to `write_fd`; exits without returning, and
    without the parent's exit handlers. Its terminal is /dev/null: it writes nothing on the
    operator's screen, and the tmux it runs inherits that."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C: unwind too
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        # The settings only say how often systemd is asked, which a first poll always does:
        # the defaults spare the child their validation (the parent validates them meanwhile).
        source, _ = dashboard_source(config, default_settings(), usage=False)
        try:
            snapshot = source.poll()
        finally:
            source.close()
        # the roster the poll read (the parse is cached by the file's identity): kept by the
        # dashboard as its last good one
        roster = load_configured_roster(config, strict=False)
        data = pickle.dumps((snapshot, roster), protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view) :]
        code = 0
    except BaseException:  # any failure: the parent polls itself
        pass
    finally:
        os._exit(code)
