"""Pydantic records of the gateway API v1: what the routes accept and answer.

Lenient where the contract may grow (unknown fields are kept), strict where the register relies
on a value: tenant and host names, timezone-aware timestamps, the ps and heartbeat versions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from fleet_tui.model import AgentState

SNAPSHOT_SCHEMA = "mosaic.fleet.snapshot/v1"
BUDGETS_SCHEMA = "mosaic.fleet.budgets/v1"

TenantId = str
_TENANT = r"^[A-Za-z0-9_.-]{1,128}$"
_NAME = r"^[^\x00]{1,255}$"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class PsAgentV1(_Open):
    """One agent of a ps v1 document (only what the register checks; the rest is kept)."""

    tenant_id: str = Field(pattern=_TENANT)
    host: str = Field(pattern=_NAME)
    name: str = Field(pattern=_NAME)


class PsDocumentV1(_Open):
    """A `ps --json` v1 document from one host (DESIGN.md "ps --json, version 1")."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    schema_: Literal["mosaic.fleet.ps/v1"] = Field(alias="schema")
    generated_at: AwareDatetime
    host: str = Field(pattern=_NAME)
    tenant_id: str | None = Field(default=None, pattern=_TENANT)
    heartbeat_timeout_s: float | None = None
    sockets: list[dict[str, Any]] = Field(default_factory=list)
    agents: list[PsAgentV1] = Field(default_factory=list, max_length=10000)
    warnings: list[str] = Field(default_factory=list)


class HeartbeatV1(_Open):
    """A heartbeat v1 record (DESIGN.md "Heartbeat protocol, version 1")."""

    v: Literal[1]
    tenant_id: str = Field(pattern=_TENANT)
    host: str = Field(pattern=_NAME)
    agent: str = Field(pattern=_NAME)
    seq: int = Field(ge=0, le=2**62)
    ts: AwareDatetime
    interval_s: float = Field(gt=0)
    state: AgentState
    detail: str | None = None
    runtime: str | None = None
    model: str | None = None
    pid: int | None = None
    echo: str | None = None
    acks: list[str] = Field(default_factory=list, max_length=64)
    usage: dict[str, Any] | None = None


class UsageSampleV1(_Open):
    """A usage-vs-limit sample of one account window (DESIGN.md "Budgets, version 1")."""

    tenant_id: str = Field(pattern=_TENANT)
    host: str = Field(pattern=_NAME)
    account: str = Field(pattern=_NAME)
    window: str = Field(pattern=_NAME)
    window_minutes: int | None = Field(default=None, ge=1)
    used_percent: float
    resets_at: AwareDatetime | None = None
    reset_confidence: str = "unknown"
    observed_at: AwareDatetime
    source: str


class SpendRecordV1(_Open):
    """A metered spend record (DESIGN.md "Budgets, version 1")."""

    tenant_id: str = Field(pattern=_TENANT)
    host: str = Field(pattern=_NAME)
    ts: AwareDatetime
    agent: str | None = None
    account: str = Field(pattern=_NAME)
    model: str | None = None
    mission: str | None = None
    task: str | None = None
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_read_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)
    cost_usd: float | None = None
    projected_tokens: int | None = None


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
    host: str
    tenant_id: str
    observed_at: datetime
    received_at: datetime
    ps: dict[str, Any]


class SnapshotAnswer(BaseModel):
    schema_: Literal["mosaic.fleet.snapshot/v1"] = Field(alias="schema")
    tenant_id: str
    generated_at: datetime
    hosts: list[HostSnapshot]


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


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorAnswer(BaseModel):
    """Every error: `{"error": {"code", "message"}}`."""

    error: ErrorBody
