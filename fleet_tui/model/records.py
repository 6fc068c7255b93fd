"""Records and enums of the fleet: the `ps --json` v1 contract and the heartbeat protocol v1.

Pure data (pydantic); imports nothing of the project. Field names follow DESIGN.md exactly, since
other tools, hooks and hosts read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

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

PS_SCHEMA = "mosaic.fleet.ps/v1"


Timestamp = Annotated[datetime, PlainSerializer(format_ts, return_type=str)]


class Health(StrEnum):
    """Liveness only (DESIGN.md "Health"); `state` is shown beside it."""

    HEALTHY = "healthy"
    STALE = "stale"
    UNRESPONSIVE = "unresponsive"
    UNKNOWN = "unknown"
    DOWN = "down"


class AgentState(StrEnum):
    """What the runtime says it is doing (heartbeat `state`)."""

    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    WAITING_INPUT = "waiting_input"
    BLOCKED = "blocked"
    ERROR = "error"
    STOPPING = "stopping"


class Drift(StrEnum):
    """Differences between what the roster says and what runs (DESIGN.md "Drift flags")."""

    MISSING_SESSION = "missing_session"
    NOT_IN_ROSTER = "not_in_roster"
    SOCKET_MISMATCH = "socket_mismatch"
    DUPLICATE = "duplicate"
    PANE_DEAD = "pane_dead"
    UNIT_INACTIVE = "unit_inactive"
    UNIT_WITHOUT_SESSION = "unit_without_session"
    BOOT_DISABLED = "boot_disabled"
    RUNTIME_MISMATCH = "runtime_mismatch"
    # Grown since v1 (additive): `supervise` gave up on the agent (past its restart limit) until
    # an operator starts it; an always-on agent an operator stopped on purpose (instead of
    # `missing_session`, which would cry wolf).
    HELD = "held"
    STOPPED = "stopped"


class SocketState(StrEnum):
    """What a socket file in the tmux folder turned out to be."""

    LIVE = "live"
    STALE = "stale"
    HUNG = "hung"
    DENIED = "denied"


class Lifecycle(StrEnum):
    ALWAYS_ON = "always-on"
    EPHEMERAL = "ephemeral"


KNOWN_RUNTIMES = ("claude", "codex", "pi", "opencode", "stub", "other")


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


class TmuxInfo(_Record):
    session_id: str
    pane_id: str
    pane_pid: int | None
    pane_dead: bool
    current_command: str | None
    attached_clients: int
    activity_at: Timestamp | None
    idle_s: float | None
    pane_title: str | None = None
    pane_pipe: bool = False
    pane_in_mode: bool = False
    window_size: str | None = None
    cwd: str | None = None  # pane_current_path: what transcripts of this agent are matched on


class SystemdInfo(_Record):
    unit: str
    active_state: str | None
    sub_state: str | None = None
    enabled: bool | None
    linger: bool | None


class ProcessInfo(_Record):
    pid: int
    runtime_detected: str | None
    cpu_percent: float | None
    rss_bytes: int | None
    processes: int = 1


class HeartbeatInfo(_Record):
    ts: Timestamp
    age_s: float
    seq: int
    state: AgentState
    detail: str | None
    interval_s: float | None = None
    pid: int | None = None
    echo: str | None = None


class SocketInfo(_Record):
    name: str
    path: str
    state: SocketState
    sessions: int
    reason: str | None = None
    listed_in_ms: float | None = None


class StateSource(StrEnum):
    HEARTBEAT = "heartbeat"
    HOOK = "hook"
    SESSION = "session"  # Claude Code's own session status file (sources/claude_sessions.py)
    INFERRED = "inferred"


class InferredState(_Record):
    """A state read off the pane (activity, title, prompt patterns): a guess, shown as one."""

    state: AgentState
    reason: str


class BudgetStatus(StrEnum):
    """Where an account window's use stands against its even spread (core/pacing.py)."""

    ON_PACE = "on_pace"
    AHEAD = "ahead"
    BEHIND = "behind"
    EXHAUSTED = "exhausted"
    UNKNOWN = "unknown"


class BudgetBrief(_Record):
    """The budget of the account an agent spends from, in one line (the fleet table's cell)."""

    account: str
    window: str | None = None
    used_percent: float | None = None
    pace: float | None = None
    status: BudgetStatus
    rung: str | None = None


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


class AgentRecord(_Record):
    tenant_id: str
    host: str
    name: str
    role: str | None
    alias: str | None
    runtime: str | None
    model: str | None
    lifecycle: Lifecycle | None
    in_roster: bool
    is_agent: bool = True
    socket: str | None
    session: str | None
    tmux: TmuxInfo | None
    systemd: SystemdInfo | None
    process: ProcessInfo | None
    heartbeat: HeartbeatInfo | None
    health: Health
    health_reason: str
    drift: list[Drift]
    # Grown after v1 (DESIGN.md: contracts may grow fields). Where the agent's `state` comes
    # from: "heartbeat" (the runtime speaks the protocol), "hook" (a runtime hook adapter wrote
    # it), "session" (Claude Code's own session status file, in `inferred`: its state and
    # reason), "inferred" (read off the pane), None (nothing known). Only a heartbeat makes an
    # agent healthy.
    state_source: StateSource | None = None
    inferred: InferredState | None = None
    # Token use today from the runtimes' transcripts: `tokens_today` WITHOUT prompt-cache reads
    # (input, output, cache writes: what TOKENS shows), `cache_read_today` the cache reads
    # beside it (cheap, and often ten times the rest). None: not known.
    tokens_today: int | None = None
    cache_read_today: int | None = None
    budget: BudgetBrief | None = None
    # True for a row that came from the gateway (another host's publisher). Set by the merge
    # from WHERE the row came from, never from its text: a remote row whose host name looks
    # like this host is still remote, and pane actions never use a remote row's coordinates.
    remote: bool = False

    @property
    def key(self) -> str:
        """A key unique within a snapshot: the same name can live on two sockets. Computed once
        per record (the table, the alerts and the merge each ask for it every poll), kept in
        the instance dict beside the fields (not a field: never dumped, never compared);
        `model_copy` drops it. Not `functools.cached_property`: it takes a lock on Python 3.11."""
        d = self.__dict__
        k = d.get("key")
        if k is None:
            k = d["key"] = f"{self.tenant_id}/{self.host}/{self.socket or '-'}/{self.name}"
        return k

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy whose `key` is computed anew (an update may change the fields it is made of)."""
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("key", None)
        return copy


class SourceStatus(_Record):
    """How fresh one source's data in a snapshot is, and whether its last read failed."""

    name: str
    observed_at: Timestamp | None
    ok: bool = True
    detail: str | None = None


class FleetSnapshot(_Record):
    """The joined fleet at one moment: what `ps --json` prints and the dashboard renders."""

    schema_: str = Field(default=PS_SCHEMA, alias="schema")
    generated_at: Timestamp
    host: str
    tenant_id: str
    heartbeat_timeout_s: float
    roster_path: str | None = None
    roster_loaded: bool = False
    systemd: str | None = None
    sockets: list[SocketInfo]
    agents: list[AgentRecord]
    warnings: list[str]
    sources: list[SourceStatus] = []

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    def to_json(self, *, indent: int | None = None) -> str:
        return self.model_dump_json(by_alias=True, indent=indent)


# -- Observations of the sources (plain data handed from sources to the core join) --------------

ENABLED_STATES = frozenset({"enabled", "enabled-runtime", "alias", "generated", "indirect"})


@dataclass(frozen=True)
class PaneRow:
    """One pane line of `list-panes -a`, typed."""

    session_name: str
    session_id: str
    session_created: int | None
    session_activity: int | None
    session_attached: int
    window_index: int | None
    window_active: bool
    pane_active: bool
    pane_id: str
    pane_pid: int | None
    current_command: str
    pane_dead: bool
    pane_pipe: bool
    pane_in_mode: bool
    window_activity: int | None
    mosaic_agent: str
    window_size: str
    pane_title: str
    current_path: str = ""


@dataclass
class SocketScan:
    """What one socket file turned out to be, and its sessions when it is live."""

    name: str
    path: str
    state: SocketState
    panes: list[PaneRow] = field(default_factory=list)
    reason: str | None = None
    listed_in_ms: float | None = None

    @property
    def ok(self) -> bool:
        """True when the listing of this socket can be trusted (live and answered)."""
        return self.state is SocketState.LIVE and self.reason is None

    def sessions(self) -> dict[str, PaneRow]:
        """One pane per session: the active pane of the active window (else the first seen)."""
        chosen: dict[str, PaneRow] = {}
        for row in self.panes:
            cur = chosen.get(row.session_name)
            if cur is None or (row.window_active and row.pane_active):
                chosen[row.session_name] = row
        return chosen


@dataclass(frozen=True)
class SpoolRead:
    """A heartbeat as read: the record, or why there is none (`missing` when no file)."""

    heartbeat: Heartbeat | None
    error: str | None = None
    mtime: float | None = None

    @property
    def missing(self) -> bool:
        return self.heartbeat is None and self.error is None


@dataclass(frozen=True)
class UnitState:
    unit: str
    load_state: str | None
    active_state: str | None
    sub_state: str | None
    unit_file_state: str | None

    @property
    def enabled(self) -> bool | None:
        if self.load_state == "not-found":
            return False
        if not self.unit_file_state:
            return None
        return self.unit_file_state in ENABLED_STATES


@dataclass
class SystemdScan:
    """What systemd --user knows of the roster's units, or why we cannot ask."""

    available: bool
    reason: str | None = None
    units: dict[str, UnitState] = field(default_factory=dict)
    linger: bool | None = None

    @property
    def label(self) -> str:
        return "available" if self.available else (self.reason or "unavailable")


@dataclass(frozen=True)
class TreeSample:
    """The process tree under one pane: its runtime, summed CPU and memory."""

    pid: int
    runtime: str | None
    cpu_percent: float | None
    rss_bytes: int
    processes: int
