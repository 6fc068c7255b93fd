"""The breach ladder (the seed's "Budget & token governance"): pure, `now` given.

For each account, the rung its work runs at and why, in this order:

1. `normal` — nothing binds: the account's top rung (its first rung on the ladder).
2. `throttle` — a window is ahead of even pace and rapid pacing is not authorized (or the
   authorization expired): stay on the top rung, throttled to the even rate. Urgent work may
   override even-spread only within an unexpired authorization (`rapid_authorized_until`).
3. `downgrade` — a window is exhausted or the $ ceiling is reached: move down the ladder to the
   next rung whose account is not exhausted.
4. `queue` — every rung below is exhausted: queue at the cheapest rung until the soonest reset
   that frees a rung.
5. `refuse` — only last: exhausted, and no reset time is known anywhere below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

ACTIONS = ("normal", "throttle", "downgrade", "queue", "refuse")


@dataclass(frozen=True)
class AccountStanding:
    """What the ladder needs to know of one account at `now`."""

    account: str
    exhausted: bool = False
    exhausted_why: str = ""
    available_at: datetime | None = None  # when an exhausted account is usable again
    ahead: bool = False
    ahead_why: str = ""
    pacing: str = "even"
    rapid_authorized_until: datetime | None = None


@dataclass(frozen=True)
class Rung:
    name: str
    account: str | None  # None: no account of the budgets pays for this rung


@dataclass(frozen=True)
class RungDecision:
    rung: str | None
    action: str
    reason: str
    until: datetime | None = None


def _authorized(s: AccountStanding, now: datetime) -> bool:
    return s.rapid_authorized_until is not None and s.rapid_authorized_until > now


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M") + "Z"


def decide(
    account: str,
    ladder: Sequence[Rung],
    standings: dict[str, AccountStanding],
    now: datetime,
    *,
    urgent: bool = False,
) -> RungDecision:
    """The rung of `account`'s work and why (see the module doc for the order of the steps)."""
    me = standings.get(account, AccountStanding(account))
    mine = [i for i, r in enumerate(ladder) if r.account == account]
    top = ladder[mine[0]].name if mine else None
    if not me.exhausted:
        if me.ahead:
            if _authorized(me, now):
                assert me.rapid_authorized_until is not None
                auth = _fmt(me.rapid_authorized_until)
                if me.pacing == "rapid":
                    return RungDecision(
                        top, "normal", f"{me.ahead_why}; rapid pacing authorized until {auth}"
                    )
                if urgent:
                    return RungDecision(
                        top,
                        "normal",
                        f"{me.ahead_why}; urgent work within the authorization until {auth}",
                    )
            why = me.ahead_why
            if me.rapid_authorized_until is not None and not _authorized(me, now):
                why += f"; rapid authorization expired {_fmt(me.rapid_authorized_until)}"
            elif urgent:
                why += "; urgency needs an authorization to override even pacing"
            return RungDecision(top, "throttle", f"{why}: throttle to the even rate")
        return RungDecision(top, "normal", "within budget" + (": top rung" if top else ""))

    start = mine[0] + 1 if mine else 0
    blocked_until: list[datetime] = []
    unknown_reset = me.available_at is None
    if me.available_at is not None:
        blocked_until.append(me.available_at)
    for rung in ladder[start:]:
        if rung.account == account:
            continue  # the same account: exhausted too
        other = standings.get(rung.account) if rung.account else None
        if other is None or not other.exhausted:
            who = f" ({rung.account})" if rung.account else ""
            return RungDecision(
                rung.name, "downgrade", f"{me.exhausted_why}: downgrade to {rung.name}{who}"
            )
        if other.available_at is None:
            unknown_reset = True
        else:
            blocked_until.append(other.available_at)
    cheapest = ladder[-1].name if ladder else top
    if blocked_until:
        until = min(blocked_until)
        below = "every rung below is exhausted" if ladder else "no ladder to downgrade along"
        return RungDecision(
            cheapest,
            "queue",
            f"{me.exhausted_why}; {below}: queue at {cheapest or 'the account'} until {_fmt(until)}",
            until,
        )
    assert unknown_reset
    return RungDecision(
        None,
        "refuse",
        f"{me.exhausted_why}; no rung left and no reset time known: refuse new work",
    )
