"""Even-spread pacing of account windows (DESIGN.md "Budgets, version 1"): pure, `now` given.

Per window, with `minutes` its length and `resets_at` its next reset:

- `window_start = resets_at - minutes`, `elapsed = (now - window_start) / minutes` in [0, 1]
- `ideal_used = 100 * elapsed`, `pace = used / ideal_used` (None while `ideal_used` is 0)
- `allowed_per_day = (100 - used) / days_until_reset` (days floored at one minute, so the last
  minute of a window stays finite)
- `recent_rate` (%/day): the change of `used` over a trailing period ending at the newest sample,
  inside the current SEGMENT only: a drop of `used` by more than DROP_TOLERANCE points, or a
  `resets_at` that moved by more than a reset tolerance, starts a new segment (the window reset or
  moved), so a rate never spans two windows. The value at the start of the trailing period is
  interpolated between the two samples around it, so sparse samples and jumps are averaged over
  the period instead of dominating it. Never first-to-last over the whole history. A window
  with a single sample since it began gets its average since the start (it began at 0 %).
- `projected_at_reset = used + rate * days_left` (may exceed 100: it would run out first);
  `exhaust_at = now + (100 - used) / rate` when that falls before the reset, else None;
  a window not yet exhausted with an `exhaust_at` runs out early (`runs_out_early`): a warning
  in every view, whatever the status (a `behind` window can run out at its recent rate).

Status (the tolerance band): `exhausted` when used >= 100; `unknown` without a usage or a reset
time; `ahead` when used exceeds ideal by more than 10 % of ideal AND by more than 2 points;
`behind` when used falls short of ideal by more than 10 % AND 2 points; else `on_pace`. The
absolute 2 points keep the first hours of a window (ideal near 0) from flapping.

A reset time in the past rolls forward by whole windows (a recurring window) and says so; one
more than a window ahead rolls back the same way (`reset_rolled` negative): the confidence of a
rolled reset is `estimated`. A newest sample whose own `resets_at` is this
window's start measured the window that just ended: the use is unknown, not that old value (a
window reset a moment ago is never "exhausted" by its predecessor's last sample). Samples
dated more than SKEW_S in the future are left out and counted (clock skew); those within SKEW_S
count as now. Without a reset time the confidence is `unknown`.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from fleet_tui.model.records import BudgetStatus
from fleet_tui.model.series import Series as Series  # re-exported for callers of the core

DAY_S = 86400.0
MIN_DAYS_LEFT = 60.0 / DAY_S
SKEW_S = 5.0
DROP_TOLERANCE = 1.0
TOLERANCE_RATIO = 0.10
TOLERANCE_POINTS = 2.0
MIN_RATE_SPAN_S = 300.0

CONFIDENCES = ("user", "provider", "estimated", "unknown")


def trailing_seconds(window_minutes: float) -> float:
    """The trailing period of the recent rate: a seventh of the window, within [1 h, 24 h]."""
    return min(max(window_minutes * 60.0 / 7.0, 3600.0), DAY_S)


def reset_tolerance_s(window_minutes: float) -> float:
    """How far `resets_at` may wobble between samples and still be the same window."""
    return max(300.0, window_minutes * 60.0 * 0.01)


@dataclass(frozen=True)
class WindowPace:
    """The pacing of one account window at `now` (the `windows[]` entry of budget --json v1)."""

    name: str
    window_minutes: float | None
    used_percent: float | None
    resets_at: datetime | None
    reset_confidence: str
    observed_at: datetime | None
    ideal_used_percent: float | None
    pace: float | None
    allowed_per_day: float | None
    recent_rate_per_day: float | None
    projected_at_reset: float | None
    exhaust_at: datetime | None
    status: BudgetStatus
    window_start: datetime | None = None
    reset_rolled: int = 0
    notes: tuple[str, ...] = ()


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def classify(used: float | None, ideal: float | None) -> BudgetStatus:
    """The status of a used share against the ideal one (see the module doc for the band)."""
    if used is None:
        return BudgetStatus.UNKNOWN
    if used >= 100.0:
        return BudgetStatus.EXHAUSTED
    if ideal is None:
        return BudgetStatus.UNKNOWN
    gap = used - ideal
    if gap > TOLERANCE_POINTS and gap > TOLERANCE_RATIO * ideal:
        return BudgetStatus.AHEAD
    if -gap > TOLERANCE_POINTS and -gap > TOLERANCE_RATIO * ideal:
        return BudgetStatus.BEHIND
    return BudgetStatus.ON_PACE


def roll_forward(resets_at: float, minutes: float, now: float) -> tuple[float, int]:
    """A reset time in the past moved forward by whole windows to the first one after `now`."""
    if resets_at > now or minutes <= 0:
        return resets_at, 0
    span = minutes * 60.0
    n = int((now - resets_at) // span) + 1
    return resets_at + n * span, n


def _segment_start(s: Series, hi: int, lo_t: float, reset_tol: float) -> int:
    """Index of the first sample of the segment that ends at index `hi - 1`, looking no earlier
    than `lo_t` (plus one sample before it, for interpolation)."""
    i = hi - 1
    ref_reset = s.resets[i]
    while i > 0:
        prev = i - 1
        if s.used[prev] - s.used[i] > DROP_TOLERANCE:
            break
        r = s.resets[prev]
        if not math.isnan(r) and not math.isnan(ref_reset) and abs(r - ref_reset) > reset_tol:
            break
        if s.t[i] < lo_t:
            break
        i = prev
    return i


def recent_rate(
    s: Series,
    hi: int,
    window_start: float,
    trailing_s: float,
    reset_tol: float,
    *,
    fast: bool = True,
) -> float | None:
    """%/day over the trailing period ending at sample `hi - 1` (see the module doc)."""
    if hi <= 0:
        return None
    t_last, u_last = s.t[hi - 1], s.used[hi - 1]
    lo_t = max(t_last - trailing_s, window_start)
    # Fast path (C-level checks): within the trailing period nothing dropped and the reset
    # time held, so the segment reaches back past lo_t. Else walk back sample by sample.
    lo_idx = max(bisect_left(s.t, lo_t, 0, hi) - 1, 0)
    used_tail, reset_tail = s.used[lo_idx:hi], s.resets[lo_idx:hi]
    total = sum(reset_tail)
    if (
        fast
        and used_tail == sorted(used_tail)
        and not math.isnan(total)
        and max(reset_tail) - min(reset_tail) <= reset_tol
    ):
        first = lo_idx
    else:
        first = _segment_start(s, hi, lo_t, reset_tol)
    # The segment's first sample may be older than the trailing period: interpolate at lo_t.
    ts, us = s.t[first:hi], s.used[first:hi]
    seg_start_t = ts[0]
    if seg_start_t > lo_t:
        # The segment is younger than the trailing period. When it began with the window (the
        # sample before it, if any, is from an earlier window), the window began at 0 %.
        began_with_window = first == 0 or s.t[first - 1] < window_start
        alone = first == hi - 1  # one sample in the segment: average since the window began
        if (
            began_with_window
            and window_start < seg_start_t
            and (window_start >= t_last - trailing_s or alone)
        ):
            t0, u0 = window_start, 0.0
        else:
            t0, u0 = seg_start_t, us[0]
    else:
        j = bisect_right(ts, lo_t) - 1
        if j >= len(ts) - 1:
            t0, u0 = ts[j], us[j]
        else:
            ta, tb = ts[j], ts[j + 1]
            frac = 0.0 if tb <= ta else (lo_t - ta) / (tb - ta)
            t0, u0 = lo_t, us[j] + (us[j + 1] - us[j]) * frac
    span = t_last - t0
    if span < MIN_RATE_SPAN_S:
        return None
    return max(0.0, (u_last - u0) / span * DAY_S)


def pace_window(
    name: str,
    minutes: float | None,
    series: Series | None,
    now: datetime,
    *,
    resets_at: datetime | None = None,
    reset_confidence: str | None = None,
) -> WindowPace:
    """Pace one window. `resets_at` from the config wins over the samples' own."""
    notes: list[str] = []
    now_t = now.timestamp()
    s = series if series is not None else Series()
    s.ensure_sorted()
    minutes = minutes or s.minutes
    # Samples from the future beyond the skew allowance are left out.
    hi = bisect_right(s.t, now_t + SKEW_S)
    if hi < len(s):
        notes.append(f"{len(s) - hi} sample(s) dated in the future (clock skew) left out")
    confidence = reset_confidence or s.confidence or "unknown"
    reset_t: float | None = resets_at.timestamp() if resets_at is not None else None
    if reset_t is None and hi and not math.isnan(s.resets[hi - 1]):
        reset_t = s.resets[hi - 1]
        confidence = s.confidence
    rolled = 0
    if reset_t is not None and reset_t <= now_t:
        if minutes:
            old = reset_t
            reset_t, rolled = roll_forward(reset_t, minutes, now_t)
            confidence = "estimated"
            notes.append(
                f"reset {_dt(old).strftime('%Y-%m-%d %H:%M')}Z is past: rolled forward "
                f"{rolled} window(s) to {_dt(reset_t).strftime('%Y-%m-%d %H:%M')}Z"
            )
        else:
            notes.append("reset time is past and the window length is unknown")
            reset_t = None
    elif reset_t is not None and minutes and reset_t - now_t > minutes * 60.0 + SKEW_S:
        # More than one window ahead: the window running now is an earlier one of the series.
        old = reset_t
        back = math.ceil((reset_t - now_t) / (minutes * 60.0) - 1.0)
        reset_t -= back * minutes * 60.0
        rolled = -back
        confidence = "estimated"
        notes.append(
            f"reset {_dt(old).strftime('%Y-%m-%d %H:%M')}Z is more than one window ahead: "
            f"rolled back {back} window(s) to {_dt(reset_t).strftime('%Y-%m-%d %H:%M')}Z"
        )
    window_start_t = reset_t - minutes * 60.0 if (reset_t is not None and minutes) else None

    used: float | None = None
    observed: datetime | None = None
    if hi:
        last_t = min(s.t[hi - 1], now_t)
        last_reset = s.resets[hi - 1]
        if window_start_t is not None and last_t < window_start_t:
            notes.append("the newest sample is from before this window began")
        elif (
            window_start_t is not None
            and minutes
            and reset_t is not None
            and not math.isnan(last_reset)
            and last_reset <= window_start_t + reset_tolerance_s(minutes)
            and last_reset < reset_t - reset_tolerance_s(minutes)
        ):
            # Observed at (or just after) the reset, but it says so itself: it measured the
            # window that just ended, not this one.
            notes.append(
                f"the newest sample measured the window that reset at "
                f"{_dt(last_reset).strftime('%Y-%m-%d %H:%M')}Z"
            )
        else:
            used = min(max(s.used[hi - 1], 0.0), 100.0)
            observed = _dt(s.t[hi - 1])
    elif not len(s):
        notes.append("no usage samples")

    ideal = pace = allowed = rate = projected = None
    exhaust: datetime | None = None
    if window_start_t is not None and reset_t is not None and minutes:
        elapsed = min(max((now_t - window_start_t) / (minutes * 60.0), 0.0), 1.0)
        ideal = 100.0 * elapsed
        days_left = max((reset_t - now_t) / DAY_S, MIN_DAYS_LEFT)
        if used is not None:
            pace = used / ideal if ideal > 0 else None
            allowed = (100.0 - used) / days_left
            rate = recent_rate(
                s,
                hi,
                window_start_t,
                trailing_seconds(minutes),
                reset_tolerance_s(minutes),
            )
            if rate is not None:
                projected = used + rate * days_left
                if used >= 100.0:
                    exhaust = observed
                elif rate > 0:
                    at = now_t + (100.0 - used) / rate * DAY_S
                    exhaust = _dt(at) if at < reset_t else None
    elif used is not None and reset_t is None:
        notes.append("reset time unknown: pace cannot be judged")
    status = classify(used, ideal)
    if reset_t is None:
        confidence = "unknown"  # no reset time: nothing to be confident about
    return WindowPace(
        name=name,
        window_minutes=minutes,
        used_percent=used,
        resets_at=_dt(reset_t) if reset_t is not None else None,
        reset_confidence=confidence if confidence in CONFIDENCES else "unknown",
        observed_at=observed,
        ideal_used_percent=ideal,
        pace=pace,
        allowed_per_day=allowed,
        recent_rate_per_day=rate,
        projected_at_reset=projected,
        exhaust_at=exhaust,
        status=status,
        window_start=_dt(window_start_t) if window_start_t is not None else None,
        reset_rolled=rolled,
        notes=tuple(notes),
    )


def naive_rate(s: Series) -> float | None:
    """First-to-last rate over the whole series: the baseline the benchmark compares against
    (wrong across resets; kept only as a yardstick)."""
    if len(s) < 2 or s.t[-1] <= s.t[0]:
        return None
    return (s.used[-1] - s.used[0]) / (s.t[-1] - s.t[0]) * DAY_S


def window_curve(
    s: Series | None, start: datetime, end: datetime, now: datetime, columns: int
) -> list[float | None]:
    """Used % per column over [start, end) for a chart: the last sample in or before each
    column within the window, None for columns after `now` or before the first sample."""
    if columns <= 0:
        return []
    out: list[float | None] = [None] * columns
    if s is None or not len(s):
        return out
    s.ensure_sorted()
    t0, t1, now_t = start.timestamp(), end.timestamp(), now.timestamp()
    span = max(t1 - t0, 1.0)
    lo = bisect_left(s.t, t0)
    for c in range(columns):
        col_end = t0 + span * (c + 1) / columns
        if t0 + span * c / columns > now_t:
            break
        if col_end <= now_t:  # a column holds the samples in [its start, its end)
            j = bisect_left(s.t, col_end, lo) - 1
        else:
            j = bisect_right(s.t, now_t + SKEW_S, lo) - 1
        if j >= lo:
            out[c] = min(max(s.used[j], 0.0), 100.0)
    return out


# -- api regime ------------------------------------------------------------------------------


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the calendar period (UTC) holding `now`: day, week (from Monday), month."""
    n = now.astimezone(UTC)
    day = n.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def pace_spend(
    period: str,
    ceiling_usd: float | None,
    spent_usd: float,
    spent_trailing_usd: float,
    trailing_s: float,
    now: datetime,
) -> WindowPace:
    """An api account's period as a window: used = spent / ceiling (in %), same formulas."""
    start, end = period_bounds(period, now)
    minutes = (end - start).total_seconds() / 60.0
    unpaced = WindowPace(
        name=period,
        window_minutes=minutes,
        used_percent=None,
        resets_at=end,
        reset_confidence="user",
        observed_at=now,
        ideal_used_percent=None,
        pace=None,
        allowed_per_day=None,
        recent_rate_per_day=None,
        projected_at_reset=None,
        exhaust_at=None,
        status=BudgetStatus.UNKNOWN,
        window_start=start,
    )
    if not ceiling_usd or ceiling_usd <= 0:
        return replace(unpaced, notes=("no ceiling_usd: spend is not limited",))
    used = max(spent_usd, 0.0) / ceiling_usd * 100.0
    elapsed = min(max((now - start).total_seconds() / (minutes * 60.0), 0.0), 1.0)
    ideal = 100.0 * elapsed
    days_left = max((end - now).total_seconds() / DAY_S, MIN_DAYS_LEFT)
    span = min(trailing_s, max((now - start).total_seconds(), 0.0))
    rate = (
        max(spent_trailing_usd, 0.0) / ceiling_usd * 100.0 / (span / DAY_S)
        if span >= MIN_RATE_SPAN_S
        else None
    )
    exhaust = None
    projected = None
    if rate is not None:
        projected = used + rate * days_left
        if used >= 100.0:
            exhaust = now
        elif rate > 0:
            at = now + timedelta(days=(100.0 - used) / rate)
            exhaust = at if at < end else None
    return replace(
        unpaced,
        used_percent=min(used, 100.0),
        ideal_used_percent=ideal,
        pace=used / ideal if ideal > 0 else None,
        allowed_per_day=max(100.0 - used, 0.0) / days_left,
        recent_rate_per_day=rate,
        projected_at_reset=projected,
        exhaust_at=exhaust,
        status=classify(used, ideal),
    )


def runs_out_early(w: WindowPace) -> bool:
    """True when the recent rate uses the window up BEFORE its reset (`exhaust_at` is set only
    then) while it is not exhausted yet: a warning whatever the status, also when the window is
    `behind` on average (little used early, fast now)."""
    return w.exhaust_at is not None and w.status != BudgetStatus.EXHAUSTED


# Which window binds an account, first to last.
BINDING_RANK = {
    BudgetStatus.EXHAUSTED: 0,
    BudgetStatus.AHEAD: 1,
    BudgetStatus.ON_PACE: 2,
    BudgetStatus.BEHIND: 3,
    BudgetStatus.UNKNOWN: 4,
}


def worst(windows: Sequence[WindowPace]) -> WindowPace | None:
    """The window that binds: exhausted first, then the most ahead of pace, then any known."""
    if not windows:
        return None
    return min(windows, key=lambda w: (BINDING_RANK[w.status], -(w.pace or 0.0)))
