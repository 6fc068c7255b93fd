"""The one clock of the fleet: aware UTC time.

The pure core never calls it (time is a parameter there); everything that stamps or compares
times at the edges (collector, poller, hooks, gateway client, dashboard) calls this, so tests and
readers have one place to look.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)
