"""The merge: this host's snapshot and the gateway's hosts into one `FleetSnapshot`.

Pure: the local snapshot, what the gateway last answered and `now` are given. Rules:
- local tmux is the truth for this host: the gateway's copy of this host is dropped, recognised
  by the normalised name (`same_host`: case, invisible and control characters, compatibility
  forms), so `h-a\u200b` or `H-A` is this host too;
- every row that came from the gateway is `remote=True`, whatever its host text says (set here,
  from where it came from, never from its text), and carries no tmux socket: pane actions never
  reach a local pane through a remote row;
- remote agents keep their host; every string from another host is sanitized (untrusted);
- every remote host gets a `SourceStatus` named `gateway:HOST` with the time its publisher observed
  it; it is not ok when older than the staleness threshold or when the gateway cannot be reached;
- remote data is never shown fresher than it is: heartbeat and idle ages grow by the host's age,
  a health that the older data can no longer support is lowered (healthy -> stale ->
  unresponsive, never raised), and each reason says "as of N ago via gateway";
- a gateway that cannot be reached, or answers nonsense, is named in a warning.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fleet_tui.core.sanitize import clean_text
from fleet_tui.core.timefmt import human_duration
from fleet_tui.model.records import AgentRecord, FleetSnapshot, Health, SourceStatus

DEFAULT_STALE_AFTER_S = 60.0
CLOCK_SKEW_S = 5.0
_SEVERITY = {Health.HEALTHY: 0, Health.STALE: 1, Health.UNRESPONSIVE: 2}
MAX_REMOTE_WARNINGS = 5


@dataclass(frozen=True)
class RemoteHostData:
    """One host as the gateway last gave it (already validated)."""

    tenant_id: str
    host: str
    observed_at: datetime
    snapshot: FleetSnapshot
    clean: bool = False  # True when `clean_remote` was already applied to `snapshot`
    age_s: float | None = None  # the gateway's age of this data (its clock) when it answered
    fetched_at: datetime | None = None  # when that answer came (this host's clock)
    seen_at: datetime | None = None  # when this observation (same observed_at) was first seen


@dataclass(frozen=True)
class GatewayView:
    """What the dashboard knows of the gateway at one moment.

    `hosts` is the last good answer (kept while later fetches fail); `answered_at` when it came;
    `error` the reason the latest fetch failed (None when it succeeded); `warnings` what the
    validation of the last answer dropped."""

    url: str
    hosts: list[RemoteHostData] = field(default_factory=list)
    answered_at: datetime | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def host_key(host: str) -> str:
    """A host name as compared for "is this host": NFKC, case-folded, without control, format
    (zero-width, bidi) or separator characters, and without a trailing dot."""
    text = unicodedata.normalize("NFKC", host).casefold()
    text = "".join(c for c in text if unicodedata.category(c)[0] not in "CZ")
    return text.rstrip(".")


def same_host(a: str, b: str) -> bool:
    """True when two host names name the same host once normalised (`host_key`)."""
    return host_key(a) == host_key(b)


def _clean_strings(value: object) -> object:
    """`value` (parsed JSON) with every string in it sanitized."""
    if isinstance(value, str):
        return clean_text(value, max_len=300)
    if isinstance(value, list):
        return [_clean_strings(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean_strings(v) for k, v in value.items()}
    return value


def _worse(a: Health, b: Health) -> Health:
    if a in _SEVERITY and b in _SEVERITY:
        return a if _SEVERITY[a] >= _SEVERITY[b] else b
    return a


def age_of(observed_at: datetime, now: datetime) -> tuple[float, bool]:
    """(age in seconds, never negative; True when observed_at lies in the future: clock skew)."""
    age = (now - observed_at).total_seconds()
    return max(age, 0.0), age < -CLOCK_SKEW_S


def host_age(remote: RemoteHostData, now: datetime, answered_at: datetime | None) -> float:
    """How old a remote host's data is now, in seconds, never negative and never younger than
    the truth allows: the gateway's `age_s` plus the time since its answer when it gave one;
    else from `observed_at`; a future `observed_at` (the publisher's clock is fast) is aged from
    when this observation was first seen instead of showing 0 s for ever."""
    fetched = remote.fetched_at or answered_at
    since = max((now - fetched).total_seconds(), 0.0) if fetched is not None else 0.0
    if remote.age_s is not None and fetched is not None:
        return remote.age_s + since
    if (now - remote.observed_at).total_seconds() < 0:  # dated ahead of this clock
        first = remote.seen_at or fetched
        return max((now - first).total_seconds(), 0.0) if first is not None else 0.0
    return age_of(remote.observed_at, now)[0]


def clean_remote(snapshot: FleetSnapshot) -> FleetSnapshot:
    """A remote host's snapshot with every string sanitized (agent records and warnings).
    Costly (a validation per agent): done once per gateway answer, not per poll."""
    agents = [
        AgentRecord.model_validate(_clean_strings(a.model_dump(mode="json")))
        for a in snapshot.agents
    ]
    warnings = [clean_text(w, max_len=300) for w in snapshot.warnings]
    return snapshot.model_copy(update={"agents": agents, "warnings": warnings})


def _usable_age(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else 0.0


def remote_agent(
    record: AgentRecord, age_s: float, timeout_s: float, *, stale: bool
) -> AgentRecord:
    """A (sanitized) remote agent as of now: aged by `age_s`, health lowered when the older data
    no longer supports it, the reason saying where it comes from and how old it is."""
    update: dict[str, object] = {}
    health = record.health
    reason = record.health_reason
    hb = record.heartbeat
    n = timeout_s if math.isfinite(timeout_s) and timeout_s > 0 else 30.0
    # the remote's own ages are untrusted: a negative, NaN or infinite one counts as 0
    age = (_usable_age(hb.age_s) if hb is not None else 0.0) + age_s
    if hb is not None:
        update["heartbeat"] = hb.model_copy(update={"age_s": age})
    if record.health in (Health.HEALTHY, Health.STALE):
        # a row that claims health without a heartbeat is aged by its host's age alone
        by_age = (
            Health.HEALTHY if age <= n else Health.STALE if age <= 3 * n else Health.UNRESPONSIVE
        )
        lowered = _worse(record.health, by_age)
        if lowered is not record.health:
            health = lowered
            what = "heartbeat" if hb is not None else "no heartbeat; data from"
            reason = f"{what} {human_duration(age)} ago, timeout {n:g} s"
    tm = record.tmux
    if tm is not None and tm.idle_s is not None:
        update["tmux"] = tm.model_copy(update={"idle_s": _usable_age(tm.idle_s) + age_s})
    where = f"as of {human_duration(age_s)} ago via gateway"
    if stale:
        where += ", stale"
    update["remote"] = True  # it came from the gateway: never a local pane's row
    update["socket"] = None  # tmux facts stay for display; no socket to act on
    update["health"] = health
    update["health_reason"] = f"{reason} ({where})"
    return record.model_copy(update=update)


def merge_snapshots(
    local: FleetSnapshot,
    view: GatewayView | None,
    now: datetime,
    *,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    cache: dict[tuple[Any, ...], list[AgentRecord]] | None = None,
) -> FleetSnapshot:
    """The local snapshot with the gateway's other hosts added (see the module's rules).

    With `cache` (a dict the caller keeps between calls), a host's aged agents are reused while
    its age, rounded UP to the whole second (never fresher than the truth), is unchanged: a
    dashboard polls several times a second and 400 remote agents cost ~7 ms to age."""
    if view is None:
        return local
    url = clean_text(view.url, max_len=200)
    agents = list(local.agents)
    sources = list(local.sources)
    warnings = list(local.warnings)
    down = view.error is not None
    if down:
        when = (
            f"; remote hosts as of {human_duration(age_of(view.answered_at, now)[0])} ago"
            if view.answered_at is not None and view.hosts
            else ""
        )
        reason = clean_text(view.error, max_len=300)
        named = reason if reason.startswith(f"gateway {url}") else f"gateway {url}: {reason}"
        warnings.append(f"{named}{when}")
    sources.append(
        SourceStatus(
            name="gateway",
            observed_at=view.answered_at,
            ok=not down,
            detail=clean_text(view.error, max_len=300) if down else None,
        )
    )
    warnings.extend(clean_text(w, max_len=300) for w in view.warnings)
    used: dict[tuple[Any, ...], list[AgentRecord]] = {}
    for remote in sorted(view.hosts, key=lambda h: (h.tenant_id, h.host)):
        if same_host(remote.host, local.host):
            continue  # local tmux is the truth for this host (however its name is spelled)
        host = clean_text(remote.host, max_len=80)
        skew = age_of(remote.observed_at, now)[1]
        age = host_age(remote, now, view.answered_at)
        too_old = age > stale_after_s
        stale = too_old or down
        detail = None
        if too_old:
            detail = f"last published {human_duration(age)} ago (stale after {human_duration(stale_after_s)})"
        elif down:
            detail = "gateway unreachable: data may be older than shown"
        if skew:
            detail = (detail + "; " if detail else "") + "observed_at in the future (clock skew)"
        sources.append(
            SourceStatus(
                name=f"gateway:{host}",
                observed_at=now - timedelta(seconds=age),
                ok=not stale and not skew,
                detail=detail,
            )
        )
        if too_old:
            warnings.append(f"host {host}: {detail} via gateway {url}")
        if skew:
            warnings.append(f"host {host}: its snapshot is dated in the future (clock skew)")
        snap = remote.snapshot if remote.clean else clean_remote(remote.snapshot)
        timeout_s = snap.heartbeat_timeout_s
        if cache is not None:
            age = float(math.ceil(age))
            key = (id(snap), remote.observed_at, age, stale)
            aged = cache.get(key)
            if aged is None:
                aged = [remote_agent(rec, age, timeout_s, stale=stale) for rec in snap.agents]
            used[key] = aged
            agents.extend(aged)
        else:
            agents.extend(remote_agent(rec, age, timeout_s, stale=stale) for rec in snap.agents)
        for w in snap.warnings[:MAX_REMOTE_WARNINGS]:
            warnings.append(f"host {host}: {w}")
    if cache is not None:
        cache.clear()
        cache.update(used)
    return local.model_copy(
        update={
            "agents": agents,
            "sources": sources,
            "warnings": list(dict.fromkeys(warnings)),
        }
    )
