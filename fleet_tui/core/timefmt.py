"""Short human durations ("4 s", "3 m", "2 h", "5 d") and ages, for tables and reasons.

No helper ever prints a negative number: a negative duration is something dated in the future
(a clock ahead of this one), said as "N in the future"; `human_ago` says "N ago", or
"N in the future (clock skew?)" for a date ahead of now. A NaN or infinite value prints "-".
"""

from __future__ import annotations


def human_duration(seconds: float | None) -> str:
    """'4 s', '3 m', '2 h', '5 d'; a negative value is '4 s in the future', never '-4 s'."""
    if seconds is None or seconds != seconds or seconds in (float("inf"), float("-inf")):
        return "-"
    s = abs(seconds)
    if s < 120:
        text = f"{int(s)} s"
    elif s < 7200:
        text = f"{int(s // 60)} m"
    elif s < 172800:
        text = f"{int(s // 3600)} h"
    else:
        text = f"{int(s // 86400)} d"
    return text if seconds >= 0 else f"{text} in the future"


def human_ago(seconds: float | None) -> str:
    """An age: '4 s ago'; a negative age (dated ahead of this clock) is
    '4 s in the future (clock skew?)', never '-4 s ago'."""
    if seconds is None or seconds != seconds or seconds in (float("inf"), float("-inf")):
        return "-"
    if seconds < 0:
        return f"{human_duration(-seconds)} in the future (clock skew?)"
    return f"{human_duration(seconds)} ago"


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return (
                f"{value:.0f}{unit}" if unit in ("B", "K") or value >= 100 else f"{value:.1f}{unit}"
            )
        value /= 1024
    return f"{value:.0f}T"
