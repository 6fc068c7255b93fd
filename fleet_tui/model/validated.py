"""What the fleet reads from files and the network, validated: roster.yaml, heartbeats, pings and
the ledger records (pydantic).

Split from `records` (issue 16, start-up): importing pydantic and defining these models is most of
a `ps`'s start-up, and a `ps` of a fleet without a roster or heartbeats validates none of them. The
records a snapshot is made of (`records`) are plain dataclasses; these are imported only by what
reads a file or an answer, and `records` still gives their names (loaded on first use).
Field names follow DESIGN.md exactly, since other tools, hooks and hosts read them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

from fleet_tui.model.kinds import AgentState, Lifecycle
from fleet_tui.protocol.clock import format_ts
from fleet_tui.protocol.names import (
    AGENT_NAME_CHARS,
    AGENT_NAME_MAX,
    AGENT_NAME_RE,
    HOST_RE,
    LEDGER_TEXT_RE,
    SOCKET_NAME_RE,
    TENANT_RE,
    row_name_problem,
)

Timestamp = Annotated[datetime, PlainSerializer(format_ts, return_type=str)]


# Every model here is built on first use (`defer_build`), not at import: a `ps` never validates
# a roster, a heartbeat, a ping or a ledger record when there is none (issue 16, start-up).
# An empty list default is written `= []` (pydantic copies it for each instance), not
# `Field(default_factory=list)`: for a factory the schema build asks `inspect.signature(list)`,
# whose first call compiles the tokenize module's patterns (~5 ms of every start-up).
class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


_NO_NUL = r"^[^\x00]*$"
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=255)]
EnvValue = Annotated[str, Field(max_length=8192, pattern=_NO_NUL)]


class RosterAgent(_Record):
    """One agent of roster.yaml v1."""

    name: str = Field(pattern=AGENT_NAME_CHARS, max_length=AGENT_NAME_MAX)
    role: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    alias: str | None = None
    runtime: str = "other"
    model: str | None = None
    lifecycle: Lifecycle = Lifecycle.ALWAYS_ON
    unit: str | None = None
    socket_name: str | None = Field(default=None, pattern=SOCKET_NAME_RE)
    # Lifecycle (`up`, `restart`): what the pane runs (through the login shell), where, with
    # which extra environment, and the window's fixed size. No command: not startable.
    command: str | None = Field(default=None, min_length=1, max_length=8192, pattern=_NO_NUL)
    cwd: str | None = Field(default=None, min_length=1, max_length=4096, pattern=_NO_NUL)
    env: dict[EnvName, EnvValue] | None = None
    width: int | None = Field(default=None, ge=20, le=1000)
    height: int | None = Field(default=None, ge=5, le=500)

    def __hash__(self) -> int:  # `env` is a dict: hash by name (equal agents share a name)
        return hash((type(self), self.name))


class Roster(_Record):
    """roster.yaml v1, validated."""

    version: int
    tenant_id: str = Field(pattern=TENANT_RE)  # what the gateway accepts, no more
    host: str | None = None
    socket_name: str | None = Field(default=None, pattern=SOCKET_NAME_RE)
    heartbeat_timeout_s: float | None = Field(default=None, gt=0, le=86400)
    agents: list[RosterAgent] = []

    def agent_socket(self, agent: RosterAgent) -> str:
        """The socket an agent is expected on: its own, else the roster's, else `default`."""
        return agent.socket_name or self.socket_name or "default"


class Heartbeat(BaseModel):
    """A heartbeat v1 record as written to `heartbeats/<agent>.json`.

    Unknown fields are kept (the contract may grow); types are checked.
    """

    model_config = ConfigDict(extra="allow", defer_build=True)

    v: int = 1
    tenant_id: str
    host: str
    agent: str
    seq: int = Field(ge=0)
    ts: Timestamp
    interval_s: float = Field(gt=0)
    state: AgentState
    detail: str | None = None
    runtime: str | None = None
    model: str | None = None
    pid: int | None = None
    echo: str | None = None
    acks: list[str] = []
    usage: dict[str, Any] | None = None
    # Grown after v1: who wrote it when not the runtime itself ("hook:claude", "hook:codex",
    # "keepalive:claude"). Absent means the runtime speaks the protocol natively.
    via: str | None = None


class Ping(BaseModel):
    """A ping written by an observer to `pings/<agent>.json`."""

    model_config = ConfigDict(defer_build=True)

    nonce: str
    ts: Timestamp


# Bounds of the ledger records (UsageSample, SpendRecord), shared with the gateway, which
# reuses these classes: what a host accepts locally is exactly what the gateway accepts.


def _row_name(v: str) -> str:
    problem = row_name_problem(v)
    if problem is not None:
        raise ValueError(problem)
    return v


RowName = Annotated[str, Field(pattern=LEDGER_TEXT_RE), AfterValidator(_row_name)]
_INT32_MAX = 2**31 - 1  # PostgreSQL integer
_INT64_MAX = 2**63 - 1  # PostgreSQL bigint
AwareTimestamp = Annotated[AwareDatetime, PlainSerializer(format_ts, return_type=str)]


class UsageSample(BaseModel):
    """One usage-vs-limit observation of an account window (`usage.jsonl`, DESIGN.md Budgets).

    The one schema of a sample, here and at the gateway (which reuses this class): names within
    the DESIGN patterns, timezone-aware times, finite numbers, integers within the database's
    column types. Lenient on the percentage on purpose: readers report one outside 0..100 with
    file and line instead of losing the rest of the ledger.
    """

    model_config = ConfigDict(extra="allow", defer_build=True)

    tenant_id: str = Field(pattern=TENANT_RE)
    host: str = Field(pattern=HOST_RE)
    account: RowName
    window: RowName
    window_minutes: int | None = Field(default=None, ge=1, le=_INT32_MAX)
    used_percent: float = Field(allow_inf_nan=False)
    resets_at: AwareTimestamp | None = None
    reset_confidence: str = Field(default="unknown", max_length=64)
    observed_at: AwareTimestamp
    source: str = Field(max_length=255)


class SpendRecord(BaseModel):
    """One metered spend (`spend.jsonl`, DESIGN.md Budgets); the one schema of a spend record,
    here and at the gateway (which reuses this class)."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    tenant_id: str = Field(pattern=TENANT_RE)
    host: str = Field(pattern=HOST_RE)
    ts: AwareTimestamp
    agent: str | None = Field(default=None, pattern=AGENT_NAME_RE)
    account: RowName
    model: str | None = Field(default=None, max_length=255)
    mission: str | None = Field(default=None, max_length=1024)
    task: str | None = Field(default=None, max_length=1024)
    input_tokens: int = Field(default=0, ge=0, le=_INT64_MAX)
    output_tokens: int = Field(default=0, ge=0, le=_INT64_MAX)
    cache_read_tokens: int = Field(default=0, ge=0, le=_INT64_MAX)
    cache_write_tokens: int = Field(default=0, ge=0, le=_INT64_MAX)
    cost_usd: float | None = Field(default=None, allow_inf_nan=False)
    projected_tokens: int | None = Field(default=None, ge=0, le=_INT64_MAX)
