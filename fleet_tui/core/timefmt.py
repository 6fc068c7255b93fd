"""Short human durations ("4 s", "3 m", "2 h", "5 d") and ages, for tables and reasons."""

from __future__ import annotations


def human_duration(seconds: float | None) -> str:
    if seconds is None:
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
    return text if seconds >= 0 else f"-{text}"


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
