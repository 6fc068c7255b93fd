"""Records and enums of the fleet: the `ps --json` v1 contract and its parts.

Plain frozen dataclasses: a snapshot is built by the join from data already checked, so building
one validates nothing and imports no pydantic (issue 16: pydantic was most of a `ps`'s start-up).
What comes from outside is validated: `model_validate` (an answer of the gateway, a remote ps
document) builds a pydantic TypeAdapter of the class on first use, with unknown fields refused.
The validated input models (roster, heartbeat, ping, ledger records) are in `validated`; their
names are given here too, loaded on first use. Field names follow DESIGN.md exactly, since other
tools, hooks and hosts read them. Imports nothing of the project above `protocol`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Self

from fleet_tui.model.kinds import KNOWN_RUNTIMES as KNOWN_RUNTIMES
from fleet_tui.model.kinds import AgentState as AgentState
from fleet_tui.model.kinds import BudgetStatus as BudgetStatus
from fleet_tui.model.kinds import Drift as Drift
from fleet_tui.model.kinds import Health as Health
from fleet_tui.model.kinds import Lifecycle as Lifecycle
from fleet_tui.model.kinds import SocketState as SocketState
from fleet_tui.model.kinds import StateSource as StateSource
from fleet_tui.protocol.clock import format_ts

if TYPE_CHECKING:  # re-exported: `from fleet_tui.model.records import Heartbeat` still works
    from fleet_tui.model.validated import AwareTimestamp as AwareTimestamp
    from fleet_tui.model.validated import Heartbeat as Heartbeat
    from fleet_tui.model.validated import Ping as Ping
    from fleet_tui.model.validated import Roster as Roster
    from fleet_tui.model.validated import RosterAgent as RosterAgent
    from fleet_tui.model.validated import RowName as RowName
    from fleet_tui.model.validated import SpendRecord as SpendRecord
    from fleet_tui.model.validated import Timestamp as Timestamp
    from fleet_tui.model.validated import UsageSample as UsageSample

PS_SCHEMA = "mosaic.fleet.ps/v1"

_VALIDATED = frozenset(
    {
        "AwareTimestamp",
        "Heartbeat",
        "Ping",
        "Roster",
        "RosterAgent",
        "RowName",
        "SpendRecord",
        "Timestamp",
        "UsageSample",
    }
)


def __getattr__(name: str) -> Any:
    """The validated models by their old address (`records.Heartbeat`...), imported (with
    pydantic) only when asked for."""
    if name in _VALIDATED:
        from fleet_tui.model import validated

        return getattr(validated, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- The records of a snapshot ------------------------------------------------------------------

_ADAPTERS: dict[type, Any] = {}


_SCALARS = frozenset({str, int, bool, type(None)})  # JSON as they are


def _jsonable(value: Any, nulls: bool = False) -> Any:
    """`value` as JSON data, as pydantic dumped the models in JSON mode: records as objects (by
    alias), enums by value, times in the protocol's text; a non-finite float stays one, or
    becomes null with `nulls` (JSON text has no NaN: pydantic wrote null there)."""
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str or kind is int:
        return value
    if kind is float:
        return None if nulls and not math.isfinite(value) else value
    if isinstance(value, PlainRecord):
        d = value.__dict__
        return {
            out: v if (v := d[n]).__class__ in _SCALARS else _jsonable(v, nulls)
            for n, out in value.json_names
        }
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v, nulls) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, nulls) for k, v in value.items()}
    return value


class PlainRecord:
    """What every record of a snapshot can do besides holding its fields (frozen dataclasses).

    The method names are pydantic's, which these records were: `model_copy`, `model_dump`,
    `model_dump_json`, `model_validate`, `model_fields`.
    """

    model_fields: ClassVar[dict[str, dataclasses.Field[Any]]] = {}
    model_aliases: ClassVar[dict[str, str]] = {}  # field -> its name in JSON, when not the same
    json_names: ClassVar[tuple[tuple[str, str], ...]] = ()  # (field, its name in JSON), in order
    # Read by pydantic when `model_validate` builds its adapter: unknown fields are refused.
    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with `update` set, not validated (values of the fields' own types). A record's
        cached `key` is dropped: an update may change what it is made of."""
        cls = type(self)
        new = cls.__new__(cls)
        d = dict(self.__dict__)
        d.pop("key", None)
        if update:
            d.update(update)
        if deep:
            import copy

            d = copy.deepcopy(d)
        object.__setattr__(new, "__dict__", d)
        return new

    def model_dump(self, *, mode: str = "json", by_alias: bool = True) -> dict[str, Any]:
        """The record as JSON data (`mode` is accepted for the callers of the pydantic days;
        the data is always JSON's), by alias unless `by_alias` is False."""
        data: dict[str, Any] = _jsonable(self)
        if not by_alias:
            names = {alias: name for name, alias in self.model_aliases.items()}
            data = {names.get(k, k): v for k, v in data.items()}
        return data

    def model_dump_json(self, *, indent: int | None = None) -> str:
        """The record as JSON text: compact, or indented by `indent`; non-ASCII as is."""
        return json.dumps(
            _jsonable(self, nulls=True),
            indent=indent,
            ensure_ascii=False,
            separators=(",", ":") if indent is None else (",", ": "),
        )

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        """A record from untrusted data (an answer, a document), checked field by field with
        pydantic (imported here, on first use); raises pydantic's ValidationError."""
        adapter = _ADAPTERS.get(cls)
        if adapter is None:
            from pydantic import TypeAdapter

            adapter = _ADAPTERS[cls] = TypeAdapter(cls)
        if cls.model_aliases and isinstance(data, Mapping):
            names = {alias: name for name, alias in cls.model_aliases.items()}
            data = {names.get(k, k): v for k, v in data.items()}
        record: Self = adapter.validate_python(data)
        return record


@dataclass(frozen=True, kw_only=True)
class TmuxInfo(PlainRecord):
    session_id: str
    pane_id: str
    pane_pid: int | None
    pane_dead: bool
    current_command: str | None
    attached_clients: int
    activity_at: datetime | None
    idle_s: float | None
    pane_title: str | None = None
    pane_pipe: bool = False
    pane_in_mode: bool = False
    window_size: str | None = None
    cwd: str | None = None  # pane_current_path: what transcripts of this agent are matched on


@dataclass(frozen=True, kw_only=True)
class SystemdInfo(PlainRecord):
    unit: str
    active_state: str | None
    sub_state: str | None = None
    enabled: bool | None
    linger: bool | None


@dataclass(frozen=True, kw_only=True)
class ProcessInfo(PlainRecord):
    pid: int
    runtime_detected: str | None
    cpu_percent: float | None
    rss_bytes: int | None
    processes: int = 1


@dataclass(frozen=True, kw_only=True)
class HeartbeatInfo(PlainRecord):
    ts: datetime
    age_s: float
    seq: int
    state: AgentState
    detail: str | None
    interval_s: float | None = None
    pid: int | None = None
    echo: str | None = None


@dataclass(frozen=True, kw_only=True)
class SocketInfo(PlainRecord):
    name: str
    path: str
    state: SocketState
    sessions: int
    reason: str | None = None
    listed_in_ms: float | None = None


@dataclass(frozen=True, kw_only=True)
class InferredState(PlainRecord):
    """A state read off the pane (activity, title, prompt patterns): a guess, shown as one."""

    state: AgentState
    reason: str


@dataclass(frozen=True, kw_only=True)
class BudgetBrief(PlainRecord):
    """The budget of the account an agent spends from, in one line (the fleet table's cell)."""

    account: str
    window: str | None = None
    used_percent: float | None = None
    pace: float | None = None
    status: BudgetStatus
    rung: str | None = None


@dataclass(frozen=True, kw_only=True)
class AgentRecord(PlainRecord):
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


@dataclass(frozen=True, kw_only=True)
class SourceStatus(PlainRecord):
    """How fresh one source's data in a snapshot is, and whether its last read failed."""

    name: str
    observed_at: datetime | None
    ok: bool = True
    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class FleetSnapshot(PlainRecord):
    """The joined fleet at one moment: what `ps --json` prints and the dashboard renders."""

    model_aliases: ClassVar[dict[str, str]] = {"schema_": "schema"}

    schema_: str = PS_SCHEMA
    generated_at: datetime
    host: str
    tenant_id: str
    heartbeat_timeout_s: float
    roster_path: str | None = None
    roster_loaded: bool = False
    systemd: str | None = None
    sockets: list[SocketInfo]
    agents: list[AgentRecord]
    warnings: list[str]
    sources: list[SourceStatus] = field(default_factory=list)

    def to_json(self, *, indent: int | None = None) -> str:
        """`ps --json` v1 text of this snapshot."""
        return self.model_dump_json(indent=indent)


for _cls in (
    TmuxInfo,
    SystemdInfo,
    ProcessInfo,
    HeartbeatInfo,
    SocketInfo,
    InferredState,
    BudgetBrief,
    AgentRecord,
    SourceStatus,
    FleetSnapshot,
):
    _cls.model_fields = {f.name: f for f in dataclasses.fields(_cls)}
    _cls.json_names = tuple((n, _cls.model_aliases.get(n, n)) for n in _cls.model_fields)


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
