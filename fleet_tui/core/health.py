"""Health: liveness from heartbeats only (DESIGN.md "Health"), with a one-line reason.

`healthy` means "answered a heartbeat within N seconds", never "pane alive".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from fleet_tui.core.timefmt import human_duration
from fleet_tui.model.records import Health

if TYPE_CHECKING:
    from fleet_tui.model.validated import Heartbeat, Ping

CLOCK_SKEW_S = 5.0


@dataclass(frozen=True)
class Assessment:
    """One agent's health, why (one line), its heartbeat's age, and whether that heartbeat
    is dated in the future (clock skew)."""

    health: Health
    reason: str
    age_s: float | None = None
    clock_skew: bool = False


def assess(
    now: datetime,
    timeout_s: float,
    *,
    has_session: bool,
    pane_dead: bool = False,
    dead_status: str | None = None,
    heartbeat: Heartbeat | None = None,
    heartbeat_error: str | None = None,
    ping: Ping | None = None,
    pid_dead: bool = False,
) -> Assessment:
    """Decide one agent's health. Pure: `now` and every observation are given."""
    n = timeout_s
    if not has_session:
        return Assessment(Health.DOWN, "no tmux session")
    if pane_dead:
        status = f" (status {dead_status})" if dead_status else ""
        return Assessment(Health.DOWN, f"pane's process exited{status}")
    if heartbeat is None:
        if heartbeat_error:
            return Assessment(Health.UNKNOWN, heartbeat_error)
        return Assessment(Health.UNKNOWN, "no heartbeat yet (session alive)")
    age = (now - heartbeat.ts).total_seconds()
    if age < -CLOCK_SKEW_S:
        return Assessment(
            Health.UNKNOWN,
            f"clock skew: heartbeat dated {human_duration(-age)} in the future",
            age,
            clock_skew=True,
        )
    age = max(age, 0.0)
    timeout = human_duration(n)
    if pid_dead and heartbeat.pid is not None:
        return Assessment(
            Health.UNRESPONSIVE,
            f"heartbeat pid {heartbeat.pid} is not running (last heartbeat {human_duration(age)} ago)",
            age,
        )
    if ping is not None and heartbeat.echo != ping.nonce:
        ping_age = (now - ping.ts).total_seconds()
        if ping_age > n:
            return Assessment(
                Health.UNRESPONSIVE,
                f"ping {human_duration(ping_age)} ago unanswered, timeout {timeout}",
                age,
            )
    if age > 3 * n:
        return Assessment(
            Health.UNRESPONSIVE,
            f"last heartbeat {human_duration(age)} ago, over 3x the {timeout} timeout",
            age,
        )
    if age > n:
        return Assessment(
            Health.STALE, f"heartbeat {human_duration(age)} ago, timeout {timeout}", age
        )
    return Assessment(
        Health.HEALTHY, f"heartbeat {human_duration(age)} ago, timeout {timeout}", age
    )
