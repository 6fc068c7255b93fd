"""PollScheduler: when the dashboard polls, and what it keeps of the last poll. No Textual.

- Never two polls at once: a request while a poll runs is remembered (a full request wins over a
  heartbeat-only one) and started when the running poll ends.
- A full poll re-arms the timer of the next one when it ends; a heartbeat-only poll (a new
  heartbeat in the spool) leaves that timer alone.
- A failing source keeps the last good snapshot and says why the last poll failed (degraded,
  never empty); the timer goes on at the same interval (no backoff: each poll is cheap and
  bounded by its own timeouts).
- Paused (another program holds the terminal): no poll starts and no timer runs; resuming polls.
- Held (`hold()`, the app: while the first poll's frame is drawn): a request is remembered as
  while a poll runs, and started by `release()`.

The app gives it two callables: `start(heartbeats_only)` runs a poll off the event loop and
calls `landed()` when it ends, `arm(delay_s, callback)` sets a timer and returns it (`stop()`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from fleet_tui.model.records import FleetSnapshot
from fleet_tui.protocol.clock import utcnow

HISTORY = 120  # heartbeat ages kept per agent for the detail's chart


class Stoppable(Protocol):
    def stop(self) -> None: ...


class PollScheduler:
    def __init__(
        self,
        start: Callable[[bool], None],
        arm: Callable[[float, Callable[[], None]], Stoppable],
        *,
        interval_s: float,
        enabled: bool = True,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._start = start
        self._arm = arm
        self.interval_s = interval_s
        self.enabled = enabled
        self.clock = clock
        self.snapshot: FleetSnapshot | None = None
        self.error: str | None = None
        self.polled_at: datetime | None = None
        self.polls = 0
        self.paused = False
        self.held = False
        self.running = False
        self._again = False
        self._again_full = False
        self._running_full = True
        self._timer: Stoppable | None = None
        self._history: dict[str, deque[float]] = {}
        # noted by note_ages, not yet recorded (polls never overlap: one, at times two; one
        # whose message gave way to a newer one ages out)
        self._noted: deque[FleetSnapshot] = deque(maxlen=4)
        self._noted_lock = threading.Lock()

    def request(self, *, heartbeats_only: bool = False) -> None:
        """Poll now, or right after the poll that is running (never two at once)."""
        if self.paused:
            return
        if self.running or self.held:
            self._again = True
            self._again_full = self._again_full or not heartbeats_only
            return
        if not heartbeats_only:
            self._stop_timer()
        self.running = True
        self._running_full = not heartbeats_only
        self._start(heartbeats_only)

    def landed(self, snapshot: FleetSnapshot | None, error: str | None = None) -> None:
        """The running poll ended: with a snapshot, with an error, or with neither (cancelled)."""
        self.running = False
        if snapshot is not None:
            self.record(snapshot)
        elif error is not None:
            self.error = error
        if self._again:
            self._request_again()
        elif self.enabled and not self.paused and (self._running_full or self._timer is None):
            self._timer = self._arm(self.interval_s, self.request)

    def hold(self) -> None:
        """Start no poll until `release()`: requests meanwhile are remembered."""
        self.held = True

    def release(self) -> None:
        """End a `hold()`: a request remembered meanwhile starts now (unless a poll runs:
        then when it lands)."""
        self.held = False
        if self._again and not self.running:
            self._request_again()

    def _request_again(self) -> None:
        full, self._again, self._again_full = self._again_full, False, False
        self.request(heartbeats_only=not full)

    def record(self, snapshot: FleetSnapshot) -> None:
        """Keep `snapshot` as the latest poll (and each agent's heartbeat age for its chart,
        unless `note_ages` did already, in the poll thread)."""
        self.snapshot = snapshot
        self.error = None
        self.polled_at = self.clock()
        self.polls += 1
        with self._noted_lock:
            noted = next((i for i, s in enumerate(self._noted) if s is snapshot), None)
            if noted is not None:
                del self._noted[noted]
                return
        self._note(snapshot)

    def note_ages(self, snapshot: FleetSnapshot) -> None:
        """In the poll thread, as the poll ends: each agent's heartbeat age for its chart (a
        deque's append, and the chart's `list()` of it, each run whole under the GIL), so that
        `record` of the same snapshot has nothing left to do on the event loop."""
        self._note(snapshot)
        with self._noted_lock:
            self._noted.append(snapshot)

    def _note(self, snapshot: FleetSnapshot) -> None:
        history = self._history
        for a in snapshot.agents:
            if a.heartbeat is not None:
                ages = history.get(a.key)
                if ages is None:  # (not setdefault: that builds a deque per agent per poll)
                    ages = history[a.key] = deque(maxlen=HISTORY)
                ages.append(a.heartbeat.age_s)

    def history(self, key: str) -> list[float]:
        return list(self._history.get(key, ()))

    def pause(self) -> None:
        self.paused = True
        self._stop_timer()

    def resume(self) -> None:
        self.paused = False
        self.request()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
