"""Pydantic records of the gateway API v1: what the routes accept and answer.

Lenient where the contract may grow (unknown fields are kept), strict where the register relies
on a value: tenant, host and agent names (the DESIGN patterns of `fleet_tui.model.records`), timezone-aware
timestamps, the ps and heartbeat versions. Usage samples and spend records ARE the local models
(`UsageSample`, `SpendRecord`): a host's publisher and the gateway accept exactly the same records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from fleet_tui.model.records import Heartbeat, SpendRecord, UsageSample
from fleet_tui.protocol.names import AGENT_NAME_RE, HOST_RE, TENANT_RE

SNAPSHOT_SCHEMA = "mosaic.fleet.snapshot/v1"
BUDGETS_SCHEMA = "mosaic.fleet.budgets/v1"

TenantId = str


_TENANT = TENANT_RE
_HOST = HOST_RE
_AGENT = AGENT_NAME_RE


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class PsAgentV1(_Open):
    """One agent of a ps v1 document (only what the register checks; the rest is kept)."""

    tenant_id: str = Field(pattern=_TENANT)
    host: str = Field(pattern=_HOST)
    name: str = Field(pattern=_AGENT)


class PsDocumentV1(_Open):
    """A `ps --json` v1 document from one host (DESIGN.md "ps --json, version 1")."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    schema_: Literal["mosaic.fleet.ps/v1"] = Field(alias="schema")
    generated_at: AwareDatetime
    host: str = Field(pattern=_HOST)
    tenant_id: str | None = Field(default=None, pattern=_TENANT)
    heartbeat_timeout_s: float | None = None
    sockets: list[dict[str, Any]] = Field(default_factory=list)
    agents: list[PsAgentV1] = Field(default_factory=list, max_length=10000)
    warnings: list[str] = Field(default_factory=list)


class HeartbeatV1(Heartbeat):
    """A heartbeat v1 record (DESIGN.md "Heartbeat protocol, version 1")."""

    # the local model `Heartbeat`, stricter where the register relies on a value
    v: Literal[1]
    tenant_id: str = Field(pattern=_TENANT)
    host: str = Field(pattern=_HOST)
    agent: str = Field(pattern=_AGENT)
    seq: int = Field(ge=0, le=2**62)
    ts: AwareDatetime
    interval_s: float = Field(gt=0, allow_inf_nan=False)
    acks: list[str] = Field(default_factory=list, max_length=64)
    # grown after v1, so not part of the v1 contract: kept as sent, unchecked and only when
    # present, like any field the contract does not name
    via: SkipJsonSchema[Any] = Field(default=None, exclude_if=lambda v: v is None)


class UsageSampleV1(UsageSample):
    """A usage-vs-limit sample of one account window (DESIGN.md "Budgets, version 1"): the local
    model `fleet_tui.model.records.UsageSample` itself."""


class SpendRecordV1(SpendRecord):
    """A metered spend record (DESIGN.md "Budgets, version 1"): the local model
    `fleet_tui.model.records.SpendRecord` itself."""


class BudgetsPolicyV1(_Open):
    """budgets.yaml v1 as JSON: the tenant's policy (accounts, ladder, concurrency)."""

    version: Literal[1]
    tenant_id: str = Field(pattern=_TENANT)
    accounts: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)


class Accepted(BaseModel):
    """Answer of every POST/PUT: records validated and kept (`accepted`), and how many of them
    changed the register (`stored`; a resent duplicate or an older snapshot is accepted, not
    stored). Retrying a request is always safe."""

    accepted: int
    stored: int


class HostSnapshot(BaseModel):
    """One host's latest document. `observed_at` is the host's clock (its `generated_at`);
    `received_at` is the gateway's clock when it stored the document, and `age_s` the seconds
    from then to this answer (gateway clock): age data by these, trusting neither clock."""

    host: str
    tenant_id: str
    observed_at: datetime
    received_at: datetime
    age_s: float
    ps: dict[str, Any]


class SnapshotAnswer(BaseModel):
    """Every host of the tenant heard from within the retention. `omitted_hosts` (present only
    when not empty): hosts left out because the answer would have grown past its cap."""

    schema_: Literal["mosaic.fleet.snapshot/v1"] = Field(alias="schema")
    tenant_id: str
    generated_at: datetime
    hosts: list[HostSnapshot]
    omitted_hosts: list[str] = Field(default_factory=list)


class AccountSpend(BaseModel):
    since: datetime
    cost_usd: float
    input_tokens: int
    output_tokens: int
    records: int


class AccountBudget(BaseModel):
    account: str
    policy: dict[str, Any] | None
    windows: list[dict[str, Any]]
    spend: AccountSpend


class BudgetsAnswer(BaseModel):
    schema_: Literal["mosaic.fleet.budgets/v1"] = Field(alias="schema")
    tenant_id: str
    generated_at: datetime
    policy: dict[str, Any] | None
    policy_received_at: datetime | None
    accounts: list[AccountBudget]


class InvalidItem(BaseModel):
    """One invalid record of a batch: its index in the list and `"<field>: <why>"`."""

    index: int
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    items: list[InvalidItem] | None = Field(
        default=None,
        description="only with code `invalid_items` (a batch route): every invalid record; "
        "nothing of that batch was stored",
    )


class ErrorAnswer(BaseModel):
    """Every error: `{"error": {"code", "message"}}` (and `items` for `invalid_items`)."""

    error: ErrorBody
