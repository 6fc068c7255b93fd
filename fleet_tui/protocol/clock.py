"""The one clock of the fleet: aware UTC time, and how the protocol writes and reads it.

The pure core never calls it (time is a parameter there); everything that stamps or compares
times at the edges (collector, poller, hooks, gateway client, dashboard) calls this, so tests and
readers have one place to look. `format_ts` is the text every file contract carries (heartbeats,
pings, ledgers): RFC 3339 UTC with milliseconds and a `Z`; the models serialise their
timestamps with it too.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


def format_ts(ts: datetime) -> str:
    """RFC 3339 UTC with milliseconds and a `Z`, as the protocol writes timestamps."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(text: object) -> datetime | None:
    """A protocol timestamp back to an aware datetime (naive is taken as UTC); None when `text`
    is not one."""
    if not isinstance(text, str):
        return None
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
