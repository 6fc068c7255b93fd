"""The pacing math (properties, with hypothesis) and every step of the breach ladder (examples)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_tui.core.ladder import AccountStanding, Rung, decide
from fleet_tui.core.pacing import (
    Series,
    classify,
    naive_rate,
    pace_spend,
    pace_window,
    period_bounds,
    window_curve,
)
from fleet_tui.model.records import BudgetBrief, BudgetStatus

WEEK = 10080
RESET = datetime(2026, 11, 30, tzinfo=UTC)
START = RESET - timedelta(minutes=WEEK)


def series(points: list[tuple[datetime, float]], resets: datetime | None = RESET) -> Series:
    s = Series()
    for t, used in points:
        s.add(t.timestamp(), used, resets.timestamp() if resets else None, "provider", WEEK)
    return s


def test_a_fresh_week_allows_14_2857_percent_a_day() -> None:
    w = pace_window("weekly", WEEK, series([(START, 0.0)]), START, resets_at=RESET)
    assert w.allowed_per_day is not None
    assert math.isclose(w.allowed_per_day, 100 / 7, rel_tol=1e-9)
    assert round(w.allowed_per_day, 4) == 14.2857
    assert w.ideal_used_percent == 0.0 and w.pace is None
    assert w.status == "on_pace"


def test_half_way_at_half_used_is_on_pace() -> None:
    half = START + timedelta(minutes=WEEK / 2)
    w = pace_window("weekly", WEEK, series([(half, 50.0)]), half, resets_at=RESET)
    assert w.ideal_used_percent == 50.0 and w.pace == 1.0
    assert w.status == "on_pace"
    assert math.isclose(w.allowed_per_day or 0, 50 / 3.5)


@settings(max_examples=200, deadline=None)
@given(
    frac=st.floats(min_value=0.0, max_value=0.9999),
    used=st.floats(min_value=0.0, max_value=100.0),
    more=st.floats(min_value=0.0, max_value=100.0),
)
def test_bounded_and_monotonic_in_used(frac: float, used: float, more: float) -> None:
    now = START + timedelta(minutes=WEEK * frac)
    hi_used = min(100.0, used + more)
    a = pace_window("weekly", WEEK, series([(now, used)]), now, resets_at=RESET)
    b = pace_window("weekly", WEEK, series([(now, hi_used)]), now, resets_at=RESET)
    for w in (a, b):
        assert w.ideal_used_percent is not None and 0.0 <= w.ideal_used_percent <= 100.0
        assert w.allowed_per_day is not None and math.isfinite(w.allowed_per_day)
        assert w.allowed_per_day >= 0.0
        assert w.pace is None or (math.isfinite(w.pace) and w.pace >= 0.0)
        assert w.status in ("on_pace", "ahead", "behind", "exhausted")
    # more used: never less pace, never more allowed
    assert (b.allowed_per_day or 0) <= (a.allowed_per_day or 0) + 1e-9
    if a.pace is not None and b.pace is not None:
        assert b.pace >= a.pace - 1e-12


@settings(max_examples=200, deadline=None)
@given(t1=st.floats(0.0, 0.9999), t2=st.floats(0.0, 0.9999))
def test_ideal_grows_with_time(t1: float, t2: float) -> None:
    lo, hi = sorted((t1, t2))
    s = series([(START, 0.0)])
    a = pace_window("weekly", WEEK, s, START + timedelta(minutes=WEEK * lo), resets_at=RESET)
    b = pace_window("weekly", WEEK, s, START + timedelta(minutes=WEEK * hi), resets_at=RESET)
    assert (a.ideal_used_percent or 0) <= (b.ideal_used_percent or 0)


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(st.tuples(st.floats(1.0, 600.0), st.floats(0.0, 5.0)), min_size=0, max_size=60),
    at=st.floats(0.0, 0.9999),
)
def test_any_history_gives_finite_results(steps: list[tuple[float, float]], at: float) -> None:
    """Sparse, jumping, empty histories: no exception, nothing infinite, rates not negative,
    projected at least the current use, exhaustion never in the past nor after the reset."""
    now = START + timedelta(minutes=WEEK * at)
    t, used, pts = START, 0.0, []
    for dt_min, du in steps:
        t += timedelta(minutes=dt_min)
        used = min(100.0, used + du)
        pts.append((t, used))
    w = pace_window("weekly", WEEK, series(pts), now, resets_at=RESET)
    for v in (w.allowed_per_day, w.recent_rate_per_day, w.projected_at_reset, w.pace):
        assert v is None or math.isfinite(v)
    if w.recent_rate_per_day is not None:
        assert w.recent_rate_per_day >= 0
        assert w.projected_at_reset is not None and w.used_percent is not None
        assert w.projected_at_reset >= w.used_percent - 1e-9
    if w.exhaust_at is not None and w.status != "exhausted":
        assert now <= w.exhaust_at < RESET


def test_window_edges_and_empty_history_do_not_divide_by_zero() -> None:
    for now in (START, RESET, RESET - timedelta(seconds=1), START - timedelta(days=1)):
        w = pace_window("weekly", WEEK, Series(), now, resets_at=RESET + timedelta(days=7))
        assert w.status == "unknown" and w.used_percent is None
        w = pace_window("weekly", WEEK, series([(START, 100.0)]), now, resets_at=RESET)
        assert w.allowed_per_day is None or math.isfinite(w.allowed_per_day)
    # the last second of a window: allowed is large but finite
    end = RESET - timedelta(seconds=1)
    w = pace_window("weekly", WEEK, series([(end, 90.0)]), end, resets_at=RESET)
    assert w.allowed_per_day is not None and math.isfinite(w.allowed_per_day)
    assert w.allowed_per_day == 10.0 * 1440  # floored at one minute left


def test_samples_from_the_future_are_left_out_and_said() -> None:
    now = START + timedelta(days=2)
    pts = [(START + timedelta(days=1), 10.0), (now + timedelta(hours=3), 90.0)]
    w = pace_window("weekly", WEEK, series(pts), now, resets_at=RESET)
    assert w.used_percent == 10.0
    assert any("clock skew" in n for n in w.notes)
    # within the skew allowance (5 s) a sample counts
    w = pace_window(
        "weekly", WEEK, series([(now + timedelta(seconds=3), 20.0)]), now, resets_at=RESET
    )
    assert w.used_percent == 20.0


def test_recent_rate_is_trailing_not_first_to_last() -> None:
    """Slow for four days, fast for the last one: the rate is the fast one."""
    pts = [(START + timedelta(hours=h), h * 0.25) for h in range(0, 97)]  # 6 %/day
    pts += [(START + timedelta(hours=96 + h), 24.0 + h * 1.5) for h in range(1, 25)]  # 36 %/day
    now = START + timedelta(hours=120)
    w = pace_window("weekly", WEEK, series(pts), now, resets_at=RESET)
    assert w.recent_rate_per_day is not None
    assert math.isclose(w.recent_rate_per_day, 36.0, rel_tol=1e-6)
    first_to_last = naive_rate(series(pts))
    assert first_to_last is not None and first_to_last < 13.0


def test_a_reset_inside_the_history_starts_a_new_segment() -> None:
    """The previous window ended at 90 %; the new one is 4 hours old at 2 %: the rate is the
    new window's (12 %/day), not a negative or a huge one."""
    old_reset = START
    pts = [(old_reset - timedelta(hours=h), 90.0 - h) for h in range(10, 0, -1)]
    s = series(pts, resets=old_reset)
    for h in range(1, 5):
        t = START + timedelta(hours=h)
        s.add(t.timestamp(), h * 0.5, RESET.timestamp(), "provider", WEEK)
    now = START + timedelta(hours=4)
    w = pace_window("weekly", WEEK, s, now)
    assert w.resets_at == RESET and w.used_percent == 2.0
    assert w.recent_rate_per_day is not None
    assert math.isclose(w.recent_rate_per_day, 12.0, rel_tol=1e-6)


def test_sparse_single_sample_rate_counts_from_the_window_start() -> None:
    now = START + timedelta(hours=12)
    w = pace_window("weekly", WEEK, series([(now, 6.0)]), now, resets_at=RESET)
    assert w.recent_rate_per_day is not None
    assert math.isclose(w.recent_rate_per_day, 12.0, rel_tol=1e-6)


def test_a_jump_is_averaged_over_the_trailing_day() -> None:
    pts = [(START + timedelta(hours=h), 10.0) for h in range(0, 48)]
    pts.append((START + timedelta(hours=48), 22.0))  # one sample jumps 12 points
    now = START + timedelta(hours=48)
    w = pace_window("weekly", WEEK, series(pts), now, resets_at=RESET)
    assert w.recent_rate_per_day is not None
    assert math.isclose(w.recent_rate_per_day, 12.0, rel_tol=1e-6)


def test_resets_at_from_the_newest_sample_and_a_past_reset_rolls_forward() -> None:
    now = START + timedelta(days=10)  # 3 days after the configured reset
    w = pace_window("weekly", WEEK, series([(now, 5.0)], resets=None), now, resets_at=RESET)
    assert w.resets_at == RESET + timedelta(days=7)
    assert w.reset_rolled == 1 and w.reset_confidence == "estimated"
    assert any("rolled forward 1 window" in n for n in w.notes)
    # no configured reset: the newest sample's
    s = series([(START + timedelta(days=1), 5.0)])
    w = pace_window("weekly", WEEK, s, START + timedelta(days=1))
    assert w.resets_at == RESET and w.reset_confidence == "provider"


def test_status_band() -> None:
    assert classify(50.0, 50.0) == "on_pace"
    assert classify(54.0, 50.0) == "on_pace"  # within 10 %
    assert classify(56.0, 50.0) == "ahead"
    assert classify(2.5, 1.0) == "on_pace"  # the 2-point floor early in a window
    assert classify(40.0, 50.0) == "behind"
    assert classify(100.0, 10.0) == "exhausted"
    assert classify(None, 10.0) == "unknown"


def test_statuses_are_the_model_enum_and_their_json_is_the_plain_word() -> None:
    assert classify(56.0, 50.0) is BudgetStatus.AHEAD
    w = pace_spend("month", None, 0.0, 0.0, 3600.0, START)
    assert w.status is BudgetStatus.UNKNOWN
    brief = BudgetBrief.model_validate({"account": "a", "status": "exhausted"})  # read back
    assert brief.status is BudgetStatus.EXHAUSTED
    assert json.loads(brief.model_dump_json())["status"] == "exhausted"
    assert json.dumps({"status": BudgetStatus.ON_PACE}) == '{"status": "on_pace"}'
    assert [s.value for s in BudgetStatus] == ["on_pace", "ahead", "behind", "exhausted", "unknown"]


def test_curve_of_the_window() -> None:
    pts = [(START + timedelta(days=d), d * 10.0) for d in range(0, 4)]
    curve = window_curve(series(pts), START, RESET, START + timedelta(days=3), 7)
    assert curve[:3] == [0.0, 10.0, 20.0]
    assert curve[3] == 30.0 and curve[4:] == [None, None, None]


def test_api_spend_against_the_ceiling() -> None:
    now = datetime(2026, 11, 16, tzinfo=UTC)  # half of November
    w = pace_spend("month", 200.0, 100.0, 10.0, 86400.0, now)
    assert w.used_percent == 50.0 and w.ideal_used_percent == 50.0
    assert w.status == "on_pace" and w.resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert w.recent_rate_per_day == 5.0
    over = pace_spend("month", 200.0, 230.0, 10.0, 86400.0, now)
    assert over.status == "exhausted" and over.used_percent == 100.0
    none = pace_spend("month", None, 230.0, 10.0, 86400.0, now)
    assert none.status == "unknown" and "no ceiling" in none.notes[0]
    assert period_bounds("week", now)[0] == datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
    assert period_bounds("day", now)[1] == datetime(2026, 11, 17, tzinfo=UTC)
    assert period_bounds("month", datetime(2026, 12, 31, 23, tzinfo=UTC))[1].year == 2027


# -- the ladder ---------------------------------------------------------------------------------

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
LADDER = [
    Rung("claude-opus", "max-a"),
    Rung("claude-sonnet", "max-a"),
    Rung("claude-haiku", "max-b"),
    Rung("codex", "codex-pro"),
]


def test_ladder_normal_use_at_the_top_rung() -> None:
    d = decide("max-a", LADDER, {"max-a": AccountStanding("max-a")}, NOW)
    assert (d.rung, d.action) == ("claude-opus", "normal")


def test_ladder_ahead_throttles_to_the_even_rate() -> None:
    s = {"max-a": AccountStanding("max-a", ahead=True, ahead_why="weekly 60 % vs 40 %")}
    d = decide("max-a", LADDER, s, NOW)
    assert (d.rung, d.action) == ("claude-opus", "throttle")
    assert "throttle to the even rate" in d.reason


def test_ladder_rapid_authorized_is_not_throttled_but_expired_is() -> None:
    ok = AccountStanding(
        "max-a",
        ahead=True,
        ahead_why="ahead",
        pacing="rapid",
        rapid_authorized_until=NOW + timedelta(hours=2),
    )
    d = decide("max-a", LADDER, {"max-a": ok}, NOW)
    assert d.action == "normal" and "authorized until" in d.reason
    expired = AccountStanding(
        "max-a",
        ahead=True,
        ahead_why="ahead",
        pacing="rapid",
        rapid_authorized_until=NOW - timedelta(hours=2),
    )
    d = decide("max-a", LADDER, {"max-a": expired}, NOW)
    assert d.action == "throttle" and "expired" in d.reason


def test_ladder_urgency_overrides_even_spread_only_within_an_authorization() -> None:
    authorized = AccountStanding(
        "max-a",
        ahead=True,
        ahead_why="ahead",
        pacing="even",
        rapid_authorized_until=NOW + timedelta(hours=1),
    )
    assert decide("max-a", LADDER, {"max-a": authorized}, NOW).action == "throttle"
    assert decide("max-a", LADDER, {"max-a": authorized}, NOW, urgent=True).action == "normal"
    plain = AccountStanding("max-a", ahead=True, ahead_why="ahead")
    d = decide("max-a", LADDER, {"max-a": plain}, NOW, urgent=True)
    assert d.action == "throttle" and "needs an authorization" in d.reason


def test_ladder_exhausted_downgrades_past_rungs_of_the_same_account() -> None:
    s = {
        "max-a": AccountStanding(
            "max-a",
            exhausted=True,
            exhausted_why="max-a weekly out",
            available_at=NOW + timedelta(days=1),
        ),
        "max-b": AccountStanding("max-b"),
    }
    d = decide("max-a", LADDER, s, NOW)
    assert (d.rung, d.action) == ("claude-haiku", "downgrade")  # not claude-sonnet: same account


def test_ladder_skips_exhausted_rungs_then_queues_at_the_cheapest_until_the_soonest_reset() -> None:
    s = {
        "max-a": AccountStanding(
            "max-a", exhausted=True, exhausted_why="a out", available_at=NOW + timedelta(days=2)
        ),
        "max-b": AccountStanding(
            "max-b", exhausted=True, exhausted_why="b out", available_at=NOW + timedelta(hours=5)
        ),
        "codex-pro": AccountStanding("codex-pro"),
    }
    d = decide("max-a", LADDER, s, NOW)
    assert (d.rung, d.action) == ("codex", "downgrade")
    s["codex-pro"] = AccountStanding(
        "codex-pro", exhausted=True, exhausted_why="c out", available_at=NOW + timedelta(hours=9)
    )
    d = decide("max-a", LADDER, s, NOW)
    assert (d.rung, d.action) == ("codex", "queue")
    assert d.until == NOW + timedelta(hours=5)
    assert "queue at codex until 2026-11-26 14:30Z" in d.reason


def test_ladder_refuses_only_last_when_no_reset_is_known() -> None:
    s = {
        "max-a": AccountStanding("max-a", exhausted=True, exhausted_why="a out"),
        "max-b": AccountStanding("max-b", exhausted=True, exhausted_why="b out"),
        "codex-pro": AccountStanding("codex-pro", exhausted=True, exhausted_why="c out"),
    }
    d = decide("max-a", LADDER, s, NOW)
    assert d.action == "refuse" and d.rung is None
    # one known reset anywhere below: queue instead of refusing
    s["max-b"] = AccountStanding(
        "max-b", exhausted=True, exhausted_why="b out", available_at=NOW + timedelta(hours=1)
    )
    assert decide("max-a", LADDER, s, NOW).action == "queue"


def test_ladder_exhausted_without_a_ladder_queues_until_its_own_reset() -> None:
    s = {
        "solo": AccountStanding(
            "solo", exhausted=True, exhausted_why="solo out", available_at=NOW + timedelta(hours=3)
        )
    }
    d = decide("solo", [], s, NOW)
    assert d.action == "queue" and d.until == NOW + timedelta(hours=3)


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.floats(1.0, 300.0), st.floats(-30.0, 6.0), st.booleans()),
        min_size=1,
        max_size=80,
    )
)
def test_the_fast_segment_check_agrees_with_the_walk(
    steps: list[tuple[float, float, bool]],
) -> None:
    from fleet_tui.core.pacing import recent_rate

    s, t, used, reset = Series(), START, 0.0, RESET
    for dt_min, du, moved in steps:
        t += timedelta(minutes=dt_min)
        used = min(100.0, max(0.0, used + du))
        if moved:
            reset += timedelta(hours=1)
        s.add(t.timestamp(), used, reset.timestamp(), "provider", WEEK)
    args = (s, len(s), START.timestamp(), 6 * 3600.0, 300.0)
    assert recent_rate(*args) == recent_rate(*args, fast=False)


def test_a_sample_of_the_window_that_just_reset_does_not_exhaust_the_new_one() -> None:
    # The provider's last sample says 100 % of the window that resets right now: the new
    # window has not been measured yet, it must not read as exhausted (that would queue work).
    now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    s = Series()
    s.add((now - timedelta(hours=1)).timestamp(), 95.0, now.timestamp(), "provider", 300)
    s.add(now.timestamp(), 100.0, now.timestamp(), "provider", 300)
    w = pace_window("5h", 300, s, now)
    assert w.status == "unknown" and w.used_percent is None
    assert w.window_start == now and w.resets_at == now + timedelta(hours=5)
    assert any("measured the window that reset at 2026-11-26 09:00Z" in n for n in w.notes)
    # ... while the newest sample of the window that is running still counts.
    s.add((now + timedelta(minutes=1)).timestamp(), 2.0, s.resets[0] + 5 * 3600, "provider")
    w = pace_window("5h", 300, s, now + timedelta(minutes=1))
    assert w.used_percent == 2.0 and w.status == "on_pace"


def test_without_a_reset_time_the_confidence_is_unknown() -> None:
    now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    s = Series()
    s.add(
        (now + timedelta(hours=2)).timestamp(),
        40.0,
        (now + timedelta(days=3)).timestamp(),
        "provider",
        WEEK,
    )
    w = pace_window("weekly", WEEK, s, now)  # its only sample is from the future
    assert w.resets_at is None and w.reset_confidence == "unknown"
    assert w.notes == ("1 sample(s) dated in the future (clock skew) left out",)


def test_a_reset_more_than_a_window_ahead_rolls_back_to_the_running_window() -> None:
    # A user wrote the reset after next: the window running now is the one before it, and the
    # use sampled now belongs to it (not "from before this window began").
    now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    s = series([(now - timedelta(hours=30), 20.0), (now, 35.0)], resets=None)
    far = now + timedelta(days=10)
    w = pace_window("weekly", WEEK, s, now, resets_at=far, reset_confidence="user")
    assert w.resets_at == now + timedelta(days=3) and w.reset_rolled == -1
    assert w.window_start == now - timedelta(days=4)
    assert w.used_percent == 35.0 and w.status == "behind"
    assert w.reset_confidence == "estimated"
    assert any("more than one window ahead: rolled back 1 window(s)" in n for n in w.notes)
    # exactly one window ahead is the window that begins now: left as it is
    w = pace_window("weekly", WEEK, s, now, resets_at=now + timedelta(days=7))
    assert w.reset_rolled == 0 and w.ideal_used_percent == 0.0
