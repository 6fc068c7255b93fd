"""Plain-text pieces of the budget views, shared by `fleet-tui budget` and the budget screen:
the gauge (used against the ideal-pace marker), countdowns, rates, the text chart. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from fleet_tui.core.pacing import WindowPace, runs_out_early
from fleet_tui.model.records import BudgetStatus

STATUS_MARK = {
    BudgetStatus.ON_PACE: "= on pace",
    BudgetStatus.AHEAD: "▲ ahead",
    BudgetStatus.BEHIND: "▽ behind",
    BudgetStatus.EXHAUSTED: "✖ exhausted",
    BudgetStatus.UNKNOWN: "? unknown",
}
STATUS_MARK_ASCII = {
    BudgetStatus.ON_PACE: "= on pace",
    BudgetStatus.AHEAD: "^ AHEAD",
    BudgetStatus.BEHIND: "v behind",
    BudgetStatus.EXHAUSTED: "X EXHAUSTED",
    BudgetStatus.UNKNOWN: "? unknown",
}
ACTION_MARK = {
    "normal": "normal",
    "throttle": "THROTTLE",
    "downgrade": "DOWNGRADE",
    "queue": "QUEUE",
    "refuse": "REFUSE",
}


def gauge(
    used: float | None, ideal: float | None, width: int, *, ascii_only: bool = False
) -> tuple[str, int | None, int]:
    """A bar of `width` cells: filled up to `used`, and the column of the ideal marker.

    Returns (bar, marker column or None, filled cells). The marker replaces the cell it
    falls on ('│', or '|' in ASCII)."""
    width = max(width, 4)
    full, empty, mark = ("#", "-", "|") if ascii_only else ("█", "░", "│")
    filled = 0 if used is None else round(min(max(used, 0.0), 100.0) / 100.0 * width)
    cells = [full] * filled + [empty] * (width - filled)
    col = None
    if ideal is not None:
        col = min(int(min(max(ideal, 0.0), 100.0) / 100.0 * width), width - 1)
        cells[col] = mark
    return "".join(cells), col, filled


def countdown(seconds: float | None) -> str:
    """`3 d 14 h`, `5 h 12 m`, `4 m`, or `now`."""
    if seconds is None:
        return "?"
    s = int(seconds)
    if s <= 0:
        return "now"
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m = rem // 60
    if d:
        return f"{d} d {h} h"
    if h:
        return f"{h} h {m} m"
    return f"{max(m, 1)} m"


STALE_SAMPLE_S = 15 * 60.0


def sampled(observed: datetime | None, now: datetime) -> str | None:
    """`sampled 3 h 12 m ago` when the use shown is older than STALE_SAMPLE_S (else None), so
    an old sample never reads as the use of now."""
    if observed is None:
        return None
    age = (now - observed).total_seconds()
    return f"sampled {countdown(age)} ago" if age >= STALE_SAMPLE_S else None


def pct(v: float | None, nd: int = 1) -> str:
    return "?" if v is None else f"{v:.{nd}f} %"


SHORT_WINDOW_MINUTES = 24 * 60
LAST_STRETCH_S = 3600.0


def rate(v: float | None, window_minutes: float | None = None) -> str:
    """A rate given in %/day, shown per hour for a window shorter than a day (a 5-hour window
    allows 20 %/h, which reads better than 480 %/day)."""
    if v is None:
        return "?"
    if window_minutes is not None and 0 < window_minutes < SHORT_WINDOW_MINUTES:
        return f"{v / 24.0:.1f} %/h"
    return f"{v:.1f} %/day"


def allowed(
    per_day: float | None,
    used: float | None,
    seconds_left: float | None,
    window_minutes: float | None = None,
) -> str:
    """The even rate that is allowed; in a window's last hour the share that is left and the
    time to spend it (a rate over the last minutes would be a meaningless thousands of %)."""
    if per_day is None:
        return "?"
    if used is not None and seconds_left is not None and seconds_left < LAST_STRETCH_S:
        return f"{max(100.0 - used, 0.0):.1f} % left for {countdown(seconds_left)}"
    return rate(per_day, window_minutes)


def stamp(t: datetime | None) -> str:
    return "?" if t is None else t.strftime("%Y-%m-%d %H:%M") + "Z"


# The words of the run-out warning, the same in `fleet-tui budget` and the budget screen.
RUNS_OUT = "runs out before the reset"
RUNS_OUT_FLAG = "⚠ RUNS OUT BEFORE RESET"


def runs_out(w: WindowPace, now: datetime) -> str | None:
    """`⚠ runs out before the reset: in 5 h 12 m (STAMP) at the recent rate`, for a window that
    the recent rate uses up before its reset (`pacing.runs_out_early`), whatever its status
    (also `behind`: little used early, fast now); else None."""
    if not runs_out_early(w) or w.exhaust_at is None:
        return None
    left = (w.exhaust_at - now).total_seconds()
    return f"⚠ {RUNS_OUT}: in {countdown(left)} ({stamp(w.exhaust_at)}) at the recent rate"


def account_flags(windows: Sequence[WindowPace]) -> list[str]:
    """The account's headline warnings: `✖ EXHAUSTED`; else `▲ AHEAD OF PACE` and/or
    RUNS_OUT_FLAG (a window the recent rate uses up before its reset, a `behind` one too)."""
    statuses = {w.status for w in windows}
    if BudgetStatus.EXHAUSTED in statuses:
        return ["✖ EXHAUSTED"]
    flags = ["▲ AHEAD OF PACE"] if BudgetStatus.AHEAD in statuses else []
    if any(runs_out_early(w) for w in windows):
        flags.append(RUNS_OUT_FLAG)
    return flags


def usd(v: float | None) -> str:
    return "-" if v is None else f"${v:,.2f}"


def resample(curve: Sequence[float | None], columns: int) -> list[float | None]:
    """A curve stretched or squeezed to `columns` (the last value of each span)."""
    if columns <= 0 or not curve:
        return [None] * max(columns, 0)
    n = len(curve)
    out: list[float | None] = []
    for c in range(columns):
        hi = min(n, max(1, round((c + 1) * n / columns)))
        lo = min(round(c * n / columns), hi - 1)
        vals = [v for v in curve[lo:hi] if v is not None]
        out.append(vals[-1] if vals else None)
    return out


BLOCKS = " ▁▂▃▄▅▆▇█"


def chart_rows(
    curve: Sequence[float | None], rows: int, *, ascii_only: bool = False
) -> list[list[tuple[str, str]]]:
    """A chart of used % (0..100, bottom to top) per column against the even-spread line
    (0 % at the window's start to 100 % at its reset). Each cell is (char, kind) with kind
    `used`, `ideal`, `over` (used above the ideal line), `future` or `empty`; rows top first."""
    cols = len(curve)
    rows = max(rows, 2)
    grid: list[list[tuple[str, str]]] = [[(" ", "empty")] * cols for _ in range(rows)]
    for c, v in enumerate(curve):
        ideal = 100.0 * (c + 0.5) / cols if cols else 0.0
        ideal_row = min(int(ideal / 100.0 * rows), rows - 1)  # from the bottom
        for r in range(rows):  # r from the bottom
            lo = r * 100.0 / rows
            kind = "empty"
            ch = " "
            if v is not None and v > lo:
                frac = min((v - lo) / (100.0 / rows), 1.0)
                if ascii_only:
                    ch = "#" if frac >= 0.5 else "."
                else:
                    ch = BLOCKS[max(1, round(frac * 8))]
                kind = "over" if v > ideal + 0.5 else "used"
            elif r == ideal_row:
                ch = "." if ascii_only else "·"
                kind = "ideal" if v is not None else "future"
            grid[rows - 1 - r][c] = (ch, kind)
    return grid
