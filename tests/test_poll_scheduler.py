"""PollScheduler without Textual: when polls start, what a failing source leaves, pauses."""

from __future__ import annotations

from collections.abc import Callable

from fleet_tui.service.scheduler import PollScheduler
from fleet_tui.testing.fleets import NOW, fleet_snapshot


class FakeTimer:
    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self.delay, self.callback, self.stopped = delay, callback, False

    def stop(self) -> None:
        self.stopped = True


class Harness:
    def __init__(self, *, enabled: bool = True) -> None:
        self.started: list[bool] = []  # heartbeats_only of each poll started
        self.timers: list[FakeTimer] = []
        self.scheduler = PollScheduler(
            self.started.append, self.arm, interval_s=5.0, enabled=enabled, clock=lambda: NOW
        )

    def arm(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(delay, callback)
        self.timers.append(timer)
        return timer

    def live_timers(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.stopped]


def test_never_two_polls_at_once_and_a_full_request_wins_over_heartbeat_ones() -> None:
    h = Harness()
    s = h.scheduler
    s.request()
    s.request(heartbeats_only=True)
    s.request()
    s.request(heartbeats_only=True)
    assert h.started == [False]  # the others wait for the running poll
    s.landed(fleet_snapshot())
    assert h.started == [False, False]  # one more, full: the requests made meanwhile, merged
    assert s.running
    s.landed(fleet_snapshot())
    assert h.started == [False, False]
    assert len(h.live_timers()) == 1 and h.live_timers()[0].delay == 5.0


def test_heartbeat_only_polls_leave_the_timer_of_the_next_full_poll_alone() -> None:
    h = Harness()
    s = h.scheduler
    s.request()
    s.landed(fleet_snapshot())
    timer = h.live_timers()[0]
    s.request(heartbeats_only=True)
    s.landed(fleet_snapshot())
    assert h.live_timers() == [timer]
    timer.callback()  # the timer fires: a full poll, and a new timer after it
    assert h.started == [False, True, False]
    s.landed(fleet_snapshot())
    assert len(h.timers) == 2 and h.live_timers() == [h.timers[1]]


def test_a_failing_source_keeps_the_last_good_snapshot_and_says_why() -> None:
    h = Harness()
    s = h.scheduler
    good = fleet_snapshot()
    s.request()
    s.landed(good)
    assert (s.snapshot, s.error, s.polls, s.polled_at) == (good, None, 1, NOW)
    h.timers[-1].callback()
    s.landed(None, "tmux is not installed")
    assert s.snapshot is good and s.error == "tmux is not installed" and s.polls == 1
    assert len(h.live_timers()) == 1 and h.live_timers()[0].delay == 5.0  # keeps polling
    h.live_timers()[0].callback()
    s.landed(good)
    assert s.error is None and s.polls == 2


def test_paused_no_poll_starts_and_no_timer_runs_resuming_polls_at_once() -> None:
    h = Harness()
    s = h.scheduler
    s.request()
    s.pause()
    s.landed(fleet_snapshot())  # the poll that ran when the terminal was handed over
    assert h.live_timers() == []
    s.request()
    assert h.started == [False]
    s.resume()
    assert h.started == [False, False]


def test_a_result_landing_while_a_screen_opens_is_kept_for_it() -> None:
    """The app publishes to screens that are ready; one still composing reads the scheduler's
    latest poll when it mounts, so a result that lands in between is not lost."""
    h = Harness()
    s = h.scheduler
    s.request()
    snap = fleet_snapshot()
    s.landed(snap)
    assert s.snapshot is snap
    key = next(a.key for a in snap.agents if a.heartbeat is not None)
    assert len(s.history(key)) == 1
    s.record(snap)
    assert len(s.history(key)) == 2 and s.polls == 2


def test_disabled_it_polls_when_asked_and_arms_no_timer() -> None:
    h = Harness(enabled=False)
    h.scheduler.request()
    h.scheduler.landed(fleet_snapshot())
    assert h.started == [False] and h.timers == []


def test_ages_noted_in_the_poll_thread_are_not_counted_again_when_the_poll_lands() -> None:
    """The poll thread notes each heartbeat's age (`note_ages`); the same snapshot landing on
    the event loop adds no second point to the detail's chart, a snapshot it did not note does,
    and a poll whose result never landed (a newer one replaced it) leaves its one point."""
    h = Harness()
    s = h.scheduler
    first, second, third = fleet_snapshot(), fleet_snapshot(), fleet_snapshot()
    key = next(a.key for a in first.agents if a.heartbeat is not None)
    s.request()
    s.note_ages(first)
    s.landed(first)
    assert len(s.history(key)) == 1 and s.polls == 1
    s.request()
    s.note_ages(second)  # its message gave way to the next poll's
    s.note_ages(third)
    s.landed(third)
    assert len(s.history(key)) == 3 and s.polls == 2
    s.record(second)  # landing after all: noted already
    assert len(s.history(key)) == 3
    s.record(fleet_snapshot())  # not noted in the poll thread: noted now
    assert len(s.history(key)) == 4
