"""The gateway's reads (DESIGN.md "Gateway API, version 1"): the latest snapshot of every host
of a tenant (the dashboard and `ps --gateway`) and the tenant's usage samples (budgets). Also
the tenant's alert-evaluator lease (one evaluator per tenant: `lease_alerts`, `release_alerts`),
which carries no fleet data.

Answers are validated (pydantic): nonsense becomes a `GatewayError` with a one-line reason,
never a crash. Rows or agents of another tenant than the one asked for are dropped and said.
The connection (settings, token, timeouts, errors) is `fleet_tui.remote.connection`; this module
sends GETs and the lease's POST and DELETE, and the publisher's writes are
`fleet_tui.remote.push`.

Read-only with respect to the fleet: this module never touches tmux or the state dir.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from fleet_tui.model.records import (
    AgentRecord,
    BudgetBrief,
    FleetSnapshot,
    HeartbeatInfo,
    InferredState,
    PlainRecord,
    ProcessInfo,
    StateSource,
    SystemdInfo,
    Timestamp,
    TmuxInfo,
    UsageSample,
)
from fleet_tui.protocol.clock import utcnow
from fleet_tui.remote.connection import GatewayConnection, GatewayError, GatewaySettings

if TYPE_CHECKING:
    import httpx

SNAPSHOT_SCHEMA = "mosaic.fleet.snapshot/v1"
MAX_HOSTS = 1000  # hosts taken from one answer; the rest are dropped with a warning
MAX_AGENTS_PER_HOST = 5000  # agents taken from one host's document; the rest likewise
MAX_BUDGET_SAMPLES = 10000  # usage samples taken from one budgets answer


# -- validation of answers -----------------------------------------------------------------------

# What a remote ps document may hold, by record type: unknown fields (a newer publisher's) are
# ignored instead of failing the whole answer, since contracts grow fields.
_NESTED: dict[str, type[PlainRecord]] = {
    "tmux": TmuxInfo,
    "systemd": SystemdInfo,
    "process": ProcessInfo,
    "heartbeat": HeartbeatInfo,
    "inferred": InferredState,
    "budget": BudgetBrief,
}


def _known(model: type[PlainRecord], data: dict[str, object]) -> dict[str, object]:
    """The fields of `data` that `model` declares (by name or alias)."""
    names = set(model.model_fields) | set(model.model_aliases.values())
    return {k: v for k, v in data.items() if k in names}


def _agent_data(data: object) -> object:
    """An agent of a ps document with only the fields the local records know (nested too)."""
    if not isinstance(data, dict):
        return data
    known = _known(AgentRecord, data)
    for key, model in _NESTED.items():
        nested = known.get(key)
        if isinstance(nested, dict):
            known[key] = _known(model, nested)
    if known.get("state_source") not in (None, *(s.value for s in StateSource)):
        known["state_source"] = None  # a newer host's source: the state stays, its origin unsaid
    return known


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "document"
    return f"{loc}: {err['msg']}"


class _HostRow(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    host: str
    tenant_id: str
    observed_at: Timestamp
    ps: dict[str, object]
    received_at: object = None  # gateway clock; checked by `_age`, never fails the row
    age_s: object = None  # gateway now - received_at, when it answered


def _age(value: object) -> float | None:
    """The gateway's `age_s` when it is a usable number (finite, not negative), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    age = float(value)
    return age if age == age and 0 <= age < 1e9 else None


@dataclass(frozen=True)
class RemoteHost:
    """One host's latest published snapshot, validated (strings not yet sanitized)."""

    tenant_id: str
    host: str
    observed_at: datetime
    snapshot: FleetSnapshot
    age_s: float | None = None  # the gateway's age of this host's data when it answered


@dataclass(frozen=True)
class GatewayAnswer:
    hosts: list[RemoteHost]
    warnings: list[str]
    fetched_at: datetime
    raw: object = None  # the decoded answer, as received (for a cache of the last answer)


def parse_snapshot_answer(data: object, tenant: str, fetched_at: datetime) -> GatewayAnswer:
    """Validate a `GET /snapshot` answer. Raises GatewayError(kind='invalid') for nonsense;
    drops (with a warning) single bad hosts or agents and anything of another tenant."""
    if not isinstance(data, dict):
        raise GatewayError("answer is not a JSON object", kind="invalid")
    if data.get("schema") != SNAPSHOT_SCHEMA:
        got = str(data.get("schema"))[:60]
        raise GatewayError(f"answer schema is '{got}', not {SNAPSHOT_SCHEMA}", kind="invalid")
    rows = data.get("hosts")
    if not isinstance(rows, list):
        raise GatewayError("answer has no 'hosts' list", kind="invalid")
    hosts: list[RemoteHost] = []
    warnings: list[str] = []
    seen: set[str] = set()
    if len(rows) > MAX_HOSTS:
        warnings.append(
            f"gateway: answer holds {len(rows)} hosts: only the first {MAX_HOSTS} are shown"
        )
        rows = rows[:MAX_HOSTS]
    for i, raw in enumerate(rows):
        try:
            row = _HostRow.model_validate(raw)
        except ValidationError as exc:
            warnings.append(f"gateway: hosts[{i}] invalid ({_first_error(exc)}): ignored")
            continue
        if row.tenant_id != tenant:
            warnings.append(f"gateway: hosts[{i}] belongs to another tenant than {tenant}: ignored")
            continue
        if row.host in seen:
            warnings.append(f"gateway: host {row.host[:60]} answered twice: the second ignored")
            continue
        seen.add(row.host)
        ps = dict(row.ps)
        agents_raw = ps.get("agents")
        if not isinstance(agents_raw, list):
            warnings.append(
                f"gateway: host {row.host[:60]}: its ps document has no agents list: ignored"
            )
            continue
        if len(agents_raw) > MAX_AGENTS_PER_HOST:
            warnings.append(
                f"gateway: host {row.host[:60]}: {len(agents_raw)} agents: only the first "
                f"{MAX_AGENTS_PER_HOST} are shown"
            )
            agents_raw = agents_raw[:MAX_AGENTS_PER_HOST]
        agents: list[AgentRecord] = []
        dropped = 0
        first_bad = ""
        for j, a in enumerate(agents_raw):
            try:
                rec = AgentRecord.model_validate(_agent_data(a))
            except ValidationError as exc:
                dropped += 1
                first_bad = first_bad or f"agents[{j}]: {_first_error(exc)}"
                continue
            if rec.tenant_id != tenant or rec.host != row.host:
                dropped += 1
                first_bad = first_bad or f"agents[{j}]: another tenant or host"
                continue
            agents.append(rec)
        if dropped:
            warnings.append(
                f"gateway: host {row.host[:60]}: {dropped} agent record(s) invalid, "
                f"first {first_bad[:160]}: ignored"
            )
        doc: dict[str, object] = {
            **_known(FleetSnapshot, ps),
            "tenant_id": row.tenant_id,
            "host": row.host,
            "agents": [],
            "sockets": [],
            "sources": [],
        }
        doc.setdefault("generated_at", row.observed_at)
        doc.setdefault("heartbeat_timeout_s", 30.0)
        warnings_of_host = doc.get("warnings")
        doc["warnings"] = (
            [str(w) for w in warnings_of_host[:20]] if isinstance(warnings_of_host, list) else []
        )
        try:
            snap = FleetSnapshot.model_validate(doc)
        except ValidationError as exc:
            warnings.append(
                f"gateway: host {row.host[:60]}: ps document invalid ({_first_error(exc)}): ignored"
            )
            continue
        hosts.append(
            RemoteHost(
                tenant_id=row.tenant_id,
                host=row.host,
                observed_at=row.observed_at,
                snapshot=snap.model_copy(update={"agents": agents}),
                age_s=_age(row.age_s),
            )
        )
    return GatewayAnswer(hosts=hosts, warnings=warnings, fetched_at=fetched_at)


# -- the alert-evaluator lease -------------------------------------------------------------------


@dataclass(frozen=True)
class AlertLease:
    """The tenant's alert-evaluator lease after a request: `held` when the caller holds it now;
    `holder` who does (untrusted text: sanitize before display); `expires_at` the gateway's
    clock; `expires_in_s` the same as seconds from the gateway's answer (trusting neither
    clock), None from a gateway that does not say."""

    held: bool
    holder: str
    expires_at: datetime
    expires_in_s: float | None = None


class _LeaseAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    holder: str = Field(min_length=1, max_length=200)
    held: bool = Field(strict=True)
    expires_at: AwareDatetime
    expires_in_s: object = None  # checked by `_age`, never fails the answer


class _ReleaseAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    released: bool = Field(strict=True)


# -- the client ----------------------------------------------------------------------------------


class GatewayClient(GatewayConnection):
    """The reads of the register. Blocking; one request at a time per instance (callers
    serialize)."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(settings, transport=transport)
        self.clock = clock

    def fetch_snapshot(self, tenant: str) -> GatewayAnswer:
        """The latest snapshot of every host of `tenant`, validated."""
        _status, data = self.request("GET", "/snapshot", params={"tenant": tenant})
        try:
            answer = parse_snapshot_answer(data, tenant, self.clock())
            return GatewayAnswer(answer.hosts, answer.warnings, answer.fetched_at, raw=data)
        except GatewayError as exc:
            raise GatewayError(
                f"gateway {self.settings.display}: {self.redact(str(exc))}", kind=exc.kind
            ) from None

    def fetch_budget_samples(self, tenant: str) -> tuple[list[UsageSample], list[str]]:
        """The latest usage sample of each account window of `tenant` (GET /budgets), every
        host's; records that do not validate are left out and named in the warnings."""
        _status, data = self.request("GET", "/budgets", params={"tenant": tenant})
        where = f"gateway {self.settings.display}"
        accounts = data.get("accounts") if isinstance(data, dict) else None
        if not isinstance(accounts, list):
            raise GatewayError(f"{where}: budgets answer without an accounts list", kind="invalid")
        samples: list[UsageSample] = []
        warnings: list[str] = []
        bad = other = 0
        first_bad = ""
        for entry in accounts[:MAX_BUDGET_SAMPLES]:
            windows = entry.get("windows") if isinstance(entry, dict) else None
            for record in windows if isinstance(windows, list) else []:
                if len(samples) >= MAX_BUDGET_SAMPLES:
                    break
                try:
                    sample = UsageSample.model_validate(record)
                except ValidationError as exc:
                    bad += 1
                    first_bad = first_bad or _first_error(exc)
                    continue
                if sample.tenant_id != tenant:  # never another tenant's rows
                    other += 1
                    continue
                samples.append(sample)
        if bad:  # one warning for all of them: a partly invalid answer is not a flood
            warnings.append(
                f"{where}: {bad} budgets sample(s) left out, first: {self.redact(first_bad)[:160]}"
            )
        if other:
            warnings.append(f"{where}: {other} budgets sample(s) of another tenant left out")
        if len(samples) >= MAX_BUDGET_SAMPLES:
            warnings.append(f"{where}: budgets answer cut at {MAX_BUDGET_SAMPLES} samples")
        return samples, warnings

    def lease_alerts(self, tenant: str, holder: str, ttl_s: float) -> AlertLease:
        """Take or renew `tenant`'s alert-evaluator lease as `holder` for `ttl_s` seconds (5 to
        600): `held` is False, naming the other holder, while someone else holds it."""
        data = self._lease("POST", tenant, {"holder": holder, "ttl_s": ttl_s})
        where = f"gateway {self.settings.display}"
        try:
            answer = _LeaseAnswer.model_validate(data)
        except ValidationError as exc:
            raise GatewayError(
                f"{where}: lease answer invalid ({self.redact(_first_error(exc))[:160]})",
                kind="invalid",
            ) from None
        if answer.held and answer.holder != holder:
            raise GatewayError(f"{where}: lease answer held by another holder", kind="invalid")
        return AlertLease(answer.held, answer.holder, answer.expires_at, _age(answer.expires_in_s))

    def release_alerts(self, tenant: str, holder: str) -> bool:
        """Release `tenant`'s alert-evaluator lease held by `holder`; False when `holder` did
        not hold it (nothing changed)."""
        data = self._lease("DELETE", tenant, {"holder": holder})
        try:
            return _ReleaseAnswer.model_validate(data).released
        except ValidationError as exc:
            raise GatewayError(
                f"gateway {self.settings.display}: release answer invalid "
                f"({self.redact(_first_error(exc))[:160]})",
                kind="invalid",
            ) from None

    def _lease(self, method: str, tenant: str, body: dict[str, object]) -> object:
        headers = {"Content-Type": "application/json"}
        try:
            _status, data = self.request(
                method,
                "/alerts/lease",
                params={"tenant": tenant},
                content=json.dumps(body).encode(),
                headers=headers,
            )
        except GatewayError as exc:
            if exc.status == 404 and "no such route" in str(exc):  # a gateway, older than this
                raise GatewayError(
                    f"gateway {self.settings.display}: this gateway has no alert lease "
                    "(/alerts/lease); upgrade it",
                    kind="misdirected",
                    status=404,
                ) from None
            raise
        return data
