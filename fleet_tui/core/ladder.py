"""The breach ladder (the seed's "Budget & token governance"): pure, `now` given.

For each account, the rung its work runs at and why, in this order:

1. `normal` — nothing binds: the account's top rung (its first rung on the ladder).
2. `throttle` — a window is ahead of even pace and rapid pacing is not authorized (or the
   authorization expired): stay on the top rung, throttled to the even rate. Urgent work may
   override even-spread only within an unexpired authorization (`rapid_authorized_until`).
3. `downgrade` — a window is exhausted or the $ ceiling is reached: move DOWN the ladder, from
   the rung the account's work runs at now, to the next rung whose account is not exhausted.
   The rung it runs at is the one of the model it actually spends on (`current`: its latest
   spend record's model, else its agents' reported model; `rung_for_model`). Without a known
   model (or one that is on no rung), an account that pays for rungs is taken to run at its top
   one, and any other starts from the top of the ladder, and the reason says so.
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


def _model_key(model: str) -> str:
    """`anthropic/claude-opus-4-1` -> `claude-opus-4-1` (a provider prefix is not the model)."""
    return model.strip().lower().rsplit("/", 1)[-1]


def rung_for_model(ladder: Sequence[Rung], model: str | None) -> int | None:
    """The index of the rung a model runs at: the rung of that exact name, else the one whose
    name starts the model's at a `-` (`claude-opus` for `claude-opus-4-1-20250805`; the longest
    wins), else the one whose name ends with it as a word (`claude-opus` for `opus`)."""
    if not model:
        return None
    key = _model_key(model)
    if not key:
        return None
    names = [r.name.lower() for r in ladder]
    if key in names:
        return names.index(key)
    prefixed = [(len(n), i) for i, n in enumerate(names) if key.startswith(n + "-")]
    if prefixed:
        return max(prefixed, key=lambda x: (x[0], -x[1]))[1]
    for i, n in enumerate(names):
        if n.endswith("-" + key):
            return i
    return None


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
    current: str | None = None,
) -> RungDecision:
    """The rung of `account`'s work and why (see the module doc for the order of the steps).

    `current` is the model the account spends on now (None when unknown)."""
    me = standings.get(account, AccountStanding(account))
    mine = [i for i, r in enumerate(ladder) if r.account == account]
    at = rung_for_model(ladder, current)
    top = ladder[mine[0]].name if mine else (ladder[at].name if at is not None else None)
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

    if at is not None:
        start, origin = at + 1, f"from {ladder[at].name} "
        note = ""
    elif mine:
        # taken to run at its own top rung: what it pays for first
        start, origin, note = mine[0] + 1, "", ""
    else:
        start, origin = 0, "from the top of the ladder "
        note = f" (its model {current} is on no rung)" if current else " (no model known)"
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
                rung.name,
                "downgrade",
                f"{me.exhausted_why}: downgrade {origin}to {rung.name}{who}{note}",
            )
        if other.available_at is None:
            unknown_reset = True
        else:
            blocked_until.append(other.available_at)
    cheapest = ladder[-1].name if ladder else top
    if blocked_until:
        until = min(blocked_until)
        if not ladder:
            below = "no ladder to downgrade along"
        elif start == 0:
            below = f"every rung is exhausted{note}"
        elif start >= len(ladder):
            below = f"no rung below {ladder[start - 1].name}{note}"
        else:
            below = f"every rung below {ladder[start - 1].name} is exhausted{note}"
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
