"""The join: tmux, roster, heartbeats, systemd and processes into one `FleetSnapshot`.

Pure: every observation and `now` are given (see `FleetInputs`). Decides which sessions are
agents, each agent's health with its reason, the drift flags of DESIGN.md, and where each agent's
state comes from: its heartbeat (written by the runtime, or by a hook adapter: `via`), else,
for a Claude agent, Claude Code's own session status file (`claude_sessions`), else, for a live
pane without a readable heartbeat, a state inferred from the pane (core/infer.py). Neither of the
last two ever changes health.

An agent's `name` and `session` stay exactly what tmux or the roster said (scripts address the
session by them, through `ps --json`); every other agent-controlled string is sanitized here.
Whatever shows a name on a terminal sanitizes it there (the table, the screens, `ps`).

`build_snapshot` reads top to bottom, each step a pure function returning a value:
`placements` (which sessions are agents, where each roster agent is), then per placement
`agent_record`: `heartbeat_for` (the heartbeat to use), `health_of`, `drift_of`, `state_of`;
then `socket_info`/`socket_warning` per socket and `fleet_warnings`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from fleet_tui.core.health import Assessment, assess
from fleet_tui.core.infer import DEFAULT_RULES, InferenceRules, infer_state
from fleet_tui.core.sanitize import clean_text
from fleet_tui.model.lifecycle import NO_MARKS, LifecycleMarks
from fleet_tui.model.records import (
    AgentRecord,
    AgentState,
    BudgetBrief,
    Drift,
    FleetSnapshot,
    Health,
    HeartbeatInfo,
    InferredState,
    Lifecycle,
    PaneRow,
    ProcessInfo,
    SocketInfo,
    SocketScan,
    SocketState,
    SourceStatus,
    SpoolRead,
    StateSource,
    SystemdInfo,
    SystemdScan,
    TmuxInfo,
    TreeSample,
)

if TYPE_CHECKING:  # validated input models (pydantic): types only here
    from fleet_tui.model.validated import Heartbeat, Ping, Roster, RosterAgent

FLEET_SOCKETS = ("mosaic-fleet", "mosaic-factory")
DEFAULT_TIMEOUT_S = 30.0
ROLE_ORDER = {"orchestrator": 0, "enhancer": 1}
DRIFT_ORDER = {d: i for i, d in enumerate(Drift)}  # drift flags are listed in DESIGN's order


@dataclass
class FleetInputs:
    """Everything the join needs, gathered by the service from the sources."""

    now: datetime
    host: str
    tenant_id: str
    sockets: list[SocketScan]
    roster: Roster | None = None
    roster_path: str | None = None
    roster_warnings: list[str] = field(default_factory=list)
    heartbeat_timeout_s: float | None = None
    heartbeats: dict[str, SpoolRead] = field(default_factory=dict)
    pings: dict[str, Ping] = field(default_factory=dict)
    systemd: SystemdScan | None = None
    processes: dict[int, TreeSample] = field(default_factory=dict)
    dead_pids: set[int] = field(default_factory=set)
    extra_warnings: list[str] = field(default_factory=list)
    sources: list[SourceStatus] = field(default_factory=list)
    # The last visible lines (sanitized) of panes without a heartbeat, by (socket, pane id);
    # see `inference_targets`. A pane not captured is still inferred, from title and activity.
    captures: Mapping[tuple[str, str], Sequence[str]] = field(default_factory=dict)
    inference: InferenceRules = DEFAULT_RULES
    # The state Claude Code's session file gives each pane holding a Claude Code process, by the
    # pane's process id (sources/claude_sessions.py: matched to the pane and pid-guarded).
    claude_sessions: Mapping[int, InferredState] = field(default_factory=dict)
    tokens_today: Mapping[str, int] = field(default_factory=dict)  # by agent name
    budgets: Mapping[str, BudgetBrief] = field(default_factory=dict)  # by agent name
    # The agents stopped on purpose and held by `supervise` (sources/lifecycle_state.py): the
    # `stopped` and `held` drift flags, and a warning per held agent.
    lifecycle: LifecycleMarks = NO_MARKS


def timeout_of(inputs: FleetInputs) -> float:
    if inputs.heartbeat_timeout_s is not None:
        return inputs.heartbeat_timeout_s
    if inputs.roster is not None and inputs.roster.heartbeat_timeout_s is not None:
        return inputs.roster.heartbeat_timeout_s
    return DEFAULT_TIMEOUT_S


def roster_sockets(roster: Roster | None) -> set[str]:
    """Sockets named by the roster (top level or per agent): all their sessions are agents."""
    if roster is None:
        return set()
    named = {roster.socket_name} | {a.socket_name for a in roster.agents}
    return {s for s in named if s}


HOOK_PREFIXES = ("hook:", "keepalive:")


CLAUDE = "claude"


def session_state(
    sessions: Mapping[int, InferredState],
    pane_pid: int | None,
    declared: str | None,
    observed: str | None,
) -> InferredState | None:
    """The state Claude Code's session file gives a Claude agent's pane (roster runtime
    `claude`, or a Claude Code process seen under the pane); None for any other agent (a Codex
    agent whose shell runs `claude -p` is not a Claude agent, whatever the roster says)."""
    if pane_pid is None or CLAUDE not in (declared, observed) or observed not in (None, CLAUDE):
        return None
    return sessions.get(pane_pid)


def inference_targets(inputs: FleetInputs) -> list[tuple[str, str]]:
    """(socket, pane id) of the live agent panes the join will infer a state for: those
    without a readable heartbeat of this tenant and host. The collector captures only these.
    A pane whose state Claude Code's session file gives is read only while it waits (what it
    asks is on the screen, not in the file)."""
    agent_sockets = set(FLEET_SOCKETS) | roster_sockets(inputs.roster)
    agents = {a.name: a for a in inputs.roster.agents} if inputs.roster else {}
    names = set(agents)
    out: list[tuple[str, str]] = []
    for scan in inputs.sockets:
        for name, row in scan.sessions().items():
            if row.pane_dead:
                continue
            if not (scan.name in agent_sockets or row.mosaic_agent or name in names):
                continue
            read = inputs.heartbeats.get(name)
            if heartbeat_for(name, read, inputs.tenant_id, inputs.host).heartbeat is not None:
                continue
            ragent = agents.get(name)
            sample = inputs.processes.get(row.pane_pid) if row.pane_pid else None
            session = session_state(
                inputs.claude_sessions,
                row.pane_pid,
                ragent.runtime if ragent else None,
                sample.runtime if sample else None,
            )
            if session is not None and session.state is not AgentState.WAITING_INPUT:
                continue
            out.append((scan.name, row.pane_id))
    return out


def _ts(epoch: int | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None


def tmux_info(row: PaneRow, now: datetime) -> TmuxInfo:
    """What the record shows of the agent's pane; every text from tmux sanitized."""
    activity = max(filter(None, (row.window_activity, row.session_activity)), default=None)
    at = _ts(activity)
    return TmuxInfo(
        session_id=row.session_id,
        pane_id=row.pane_id,
        pane_pid=row.pane_pid,
        pane_dead=row.pane_dead,
        current_command=clean_text(row.current_command, max_len=64) or None,
        attached_clients=row.session_attached,
        activity_at=at,
        idle_s=round(max((now - at).total_seconds(), 0.0), 1) if at else None,
        pane_title=clean_text(row.pane_title, max_len=200) or None,
        pane_pipe=row.pane_pipe,
        pane_in_mode=row.pane_in_mode,
        window_size=row.window_size or None,
        # The path as tmux printed it (control characters already "?"), with what the
        # sanitizer drops removed: an ordinary path stays exact, for matching transcripts.
        cwd=clean_text(row.current_path, max_len=4096) or None,
    )


def process_info(sample: TreeSample | None) -> ProcessInfo | None:
    """The process tree under the agent's pane, as the record shows it."""
    if sample is None:
        return None
    return ProcessInfo(
        pid=sample.pid,
        runtime_detected=sample.runtime,
        cpu_percent=sample.cpu_percent,
        rss_bytes=sample.rss_bytes,
        processes=sample.processes,
    )


def systemd_info(ragent: RosterAgent | None, scan: SystemdScan | None) -> SystemdInfo | None:
    """The roster agent's unit as systemd reports it (all unknown when systemd cannot be asked)."""
    if ragent is None or not ragent.unit:
        return None
    if scan is None or not scan.available:
        return SystemdInfo(unit=ragent.unit, active_state=None, enabled=None, linger=None)
    unit = scan.units.get(ragent.unit)
    return SystemdInfo(
        unit=ragent.unit,
        active_state=unit.active_state if unit else None,
        sub_state=unit.sub_state if unit else None,
        enabled=unit.enabled if unit else False,
        linger=scan.linger,
    )


# -- 1. Placements: which sessions are agents, and where each roster agent is ---------------------


@dataclass(frozen=True, slots=True)
class Found:
    """A session as found: its socket and the pane that stands for it."""

    socket: str
    row: PaneRow


@dataclass(frozen=True, slots=True)
class Placement:
    """One future record: the agent's session (or none), its roster entry (or none), the drift
    its placement shows, and, for a roster agent without a session, its health already decided.
    """

    name: str
    found: Found | None
    ragent: RosterAgent | None
    is_agent: bool
    drift: tuple[Drift, ...] = ()
    verdict: tuple[Health, str] | None = None
    roster_socket: str | None = None  # where the roster expects it (roster agents only)


def sessions_by_name(sockets: Sequence[SocketScan]) -> dict[str, list[Found]]:
    """Every session of every live socket, by name (one name may be on several sockets)."""
    sessions: dict[str, list[Found]] = defaultdict(list)
    for scan in sockets:
        for name, row in scan.sessions().items():
            sessions[name].append(Found(scan.name, row))
    return sessions


def missing_placement(ragent: RosterAgent, expected: str, scan: SocketScan | None) -> Placement:
    """A roster agent with no session anywhere: unknown when its socket could not be listed
    (hung, denied, or a live server that did not answer), else down, with why."""
    if (
        scan is not None
        and not scan.ok
        and scan.state in (SocketState.HUNG, SocketState.DENIED, SocketState.LIVE)
    ):
        why = clean_text(scan.reason or scan.state.value, max_len=200)
        verdict = (Health.UNKNOWN, f"socket '{expected}' {scan.state.value}: {why}")
        return Placement(ragent.name, None, ragent, True, (), verdict, expected)
    missing = (Drift.MISSING_SESSION,) if ragent.lifecycle is Lifecycle.ALWAYS_ON else ()
    if ragent.lifecycle is Lifecycle.EPHEMERAL:
        verdict = (Health.DOWN, "not running (ephemeral)")
    else:
        live = scan is not None and scan.state is SocketState.LIVE
        where = f"socket '{expected}'" + ("" if live else " (no server)")
        verdict = (Health.DOWN, f"no session '{ragent.name}' on {where}")
    return Placement(ragent.name, None, ragent, True, missing, verdict, expected)


def roster_placements(
    roster: Roster, sessions: Mapping[str, list[Found]], by_socket: Mapping[str, SocketScan]
) -> list[Placement]:
    """Roster agents, matched exactly by name: on their socket, on another one (drift), or
    nowhere. A name found on several sockets is a duplicate on each."""
    out: list[Placement] = []
    for ragent in roster.agents:
        expected = roster.agent_socket(ragent)
        found_all = sessions.get(ragent.name, [])
        dup = (Drift.DUPLICATE,) if len(found_all) > 1 else ()
        for f in found_all:
            if f.socket == expected:
                out.append(Placement(ragent.name, f, ragent, True, dup, None, expected))
        for f in found_all:
            if f.socket != expected:
                drift = (Drift.SOCKET_MISMATCH, *dup)
                out.append(Placement(ragent.name, f, ragent, True, drift, None, expected))
        if not found_all:
            out.append(missing_placement(ragent, expected, by_socket.get(expected)))
    return out


def other_placements(
    sockets: Sequence[SocketScan],
    sessions: Mapping[str, list[Found]],
    claimed: set[tuple[str, str]],
    *,
    agent_sockets: set[str],
    roster_loaded: bool,
) -> list[Placement]:
    """Sessions no roster agent claimed: agents by their socket or the @mosaic_agent option
    (then drift: not in the roster, when there is one; a duplicate name), else plain sessions."""
    out: list[Placement] = []
    for scan in sockets:
        for name, row in scan.sessions().items():
            if (scan.name, name) in claimed:
                continue
            is_agent = scan.name in agent_sockets or bool(row.mosaic_agent)
            flags: list[Drift] = []
            if is_agent and roster_loaded:
                flags.append(Drift.NOT_IN_ROSTER)
            if is_agent and len(sessions.get(name, [])) > 1:
                flags.append(Drift.DUPLICATE)
            out.append(Placement(name, Found(scan.name, row), None, is_agent, tuple(flags)))
    return out


def placements(inputs: FleetInputs) -> list[Placement]:
    """Every record to build: the roster's agents first, then the other sessions."""
    sessions = sessions_by_name(inputs.sockets)
    roster = inputs.roster
    placed = (
        roster_placements(roster, sessions, {s.name: s for s in inputs.sockets}) if roster else []
    )
    claimed = {(p.found.socket, p.name) for p in placed if p.found}
    return placed + other_placements(
        inputs.sockets,
        sessions,
        claimed,
        agent_sockets=set(FLEET_SOCKETS) | roster_sockets(roster),
        roster_loaded=roster is not None,
    )


# -- 2. One agent: heartbeat, health, drift, state, record ---------------------------------------


@dataclass(frozen=True, slots=True)
class AgentBeat:
    """The heartbeat an agent's record uses (None when there is none or it was refused), the
    (sanitized) reason there is none to use, and the warnings reading it raised."""

    heartbeat: Heartbeat | None
    error: str | None
    warnings: tuple[str, ...] = ()


def heartbeat_for(name: str, read: SpoolRead | None, tenant: str, host: str) -> AgentBeat:
    """The agent's heartbeat as read; one written for another tenant or host is refused."""
    hb = read.heartbeat if read else None
    warnings: list[str] = []
    if hb is not None and (hb.tenant_id != tenant or hb.host != host):
        warnings.append(
            f"heartbeat of '{clean_text(name)}' is for {clean_text(hb.tenant_id)}@"
            f"{clean_text(hb.host)}, not {tenant}@{host}: ignored"
        )
        read, hb = SpoolRead(None, "heartbeat from another tenant or host"), None
    # Spool errors quote the file's content (e.g. the agent it names): untrusted text.
    error = clean_text(read.error, max_len=200) if read and read.error else None
    if error:
        warnings.append(f"agent '{clean_text(name)}': {error}")
    return AgentBeat(hb, error, tuple(warnings))


def health_of(
    placement: Placement,
    beat: AgentBeat,
    *,
    now: datetime,
    timeout_s: float,
    ping: Ping | None,
    dead_pids: Set[int],
) -> Assessment:
    """The agent's health (core/health.py), or the verdict its placement already gave."""
    hb = beat.heartbeat
    if placement.verdict is not None:
        age = max((now - hb.ts).total_seconds(), 0.0) if hb is not None else None
        return Assessment(placement.verdict[0], placement.verdict[1], age)
    row = placement.found.row if placement.found else None
    return assess(
        now,
        timeout_s,
        has_session=row is not None,
        pane_dead=bool(row and row.pane_dead),
        heartbeat=hb,
        heartbeat_error=beat.error,
        ping=ping,
        pid_dead=bool(hb and hb.pid is not None and hb.pid in dead_pids),
    )


def unit_drift(
    ragent: RosterAgent | None,
    info: SystemdInfo | None,
    scan: SystemdScan | None,
    *,
    has_session: bool,
) -> list[Drift]:
    """Drift of a roster agent's systemd unit: inactive, active without a session, an
    always-on agent that would not start at boot. Nothing when systemd cannot be asked."""
    if ragent is None or info is None or scan is None or not scan.available:
        return []
    out: list[Drift] = []
    unit = scan.units.get(info.unit)
    if unit is None or unit.active_state != "active":
        out.append(Drift.UNIT_INACTIVE)
    elif not has_session:
        out.append(Drift.UNIT_WITHOUT_SESSION)
    if ragent.lifecycle is Lifecycle.ALWAYS_ON and (info.enabled is False or info.linger is False):
        out.append(Drift.BOOT_DISABLED)
    return out


def drift_of(
    placement: Placement,
    systemd: SystemdInfo | None,
    scan: SystemdScan | None,
    observed: str | None,
    marks: LifecycleMarks = NO_MARKS,
) -> list[Drift]:
    """Every drift flag of one record, in the order of `Drift`: its placement's, a dead pane,
    its unit's, a runtime other than the roster declares (`observed`: the process tree's), held
    by `supervise`, and `stopped` instead of `missing_session` for an agent an operator stopped
    on purpose (`marks`)."""
    row = placement.found.row if placement.found else None
    ragent = placement.ragent
    drift = list(placement.drift)
    if ragent is not None and ragent.name in marks.stopped and Drift.MISSING_SESSION in drift:
        drift[drift.index(Drift.MISSING_SESSION)] = Drift.STOPPED
    if ragent is not None and ragent.name in marks.held:
        drift.append(Drift.HELD)
    if row is not None and row.pane_dead:
        drift.append(Drift.PANE_DEAD)
    drift += unit_drift(ragent, systemd, scan, has_session=row is not None)
    if (
        ragent is not None
        and observed
        and ragent.runtime not in ("other", "")
        and observed != ragent.runtime
    ):
        drift.append(Drift.RUNTIME_MISMATCH)
    return sorted(set(drift), key=DRIFT_ORDER.__getitem__)


def state_source_of(hb: Heartbeat) -> StateSource:
    """`hook` when a hook adapter wrote the heartbeat (`via` "hook:..." or "keepalive:..."),
    else `heartbeat` (the runtime speaks the protocol itself)."""
    via = hb.via or ""
    return StateSource.HOOK if via.startswith(HOOK_PREFIXES) else StateSource.HEARTBEAT


def state_of(
    placement: Placement,
    hb: Heartbeat | None,
    tmux: TmuxInfo | None,
    observed: str | None,
    *,
    captures: Mapping[tuple[str, str], Sequence[str]],
    rules: InferenceRules,
    sessions: Mapping[int, InferredState] | None = None,
) -> tuple[StateSource | None, InferredState | None]:
    """Where the agent's state comes from: its heartbeat (the runtime's or a hook's), else, for
    a Claude agent, Claude Code's session file (`sessions`, by pane pid), else a guess from a
    live agent pane (core/infer.py), else nowhere. Only a heartbeat changes health (invariant
    3). A session file that says `waiting` keeps the prompt read off the pane in its reason,
    for what the agent asks."""
    if hb is not None:
        return state_source_of(hb), None
    found = placement.found
    if found is None or tmux is None or tmux.pane_dead or not placement.is_agent:
        return None, None
    ragent = placement.ragent
    session = session_state(
        sessions or {}, tmux.pane_pid, ragent.runtime if ragent else None, observed
    )
    if session is not None and session.state is not AgentState.WAITING_INPUT:
        return StateSource.SESSION, session
    inferred = infer_state(
        title=tmux.pane_title,
        lines=captures.get((found.socket, tmux.pane_id)),
        idle_s=tmux.idle_s,
        command=tmux.current_command,
        runtime=observed,
        declared_runtime=ragent.runtime if ragent else None,
        rules=rules,
    )
    if session is not None:
        asks = inferred.state is AgentState.WAITING_INPUT and "prompt: '" in inferred.reason
        reason = f"{session.reason}; {inferred.reason}" if asks else session.reason
        return StateSource.SESSION, InferredState(state=session.state, reason=reason)
    return StateSource.INFERRED, inferred


def heartbeat_info(hb: Heartbeat | None, age_s: float | None) -> HeartbeatInfo | None:
    """The heartbeat as the record shows it, its texts sanitized (age 0 when not known)."""
    if hb is None:
        return None
    return HeartbeatInfo(
        ts=hb.ts,
        age_s=round(age_s if age_s is not None else 0.0, 1),
        seq=hb.seq,
        state=hb.state,
        detail=clean_text(hb.detail, max_len=200) if hb.detail else None,
        interval_s=hb.interval_s,
        pid=hb.pid,
        echo=clean_text(hb.echo, max_len=80) if hb.echo else None,
    )


def agent_record(
    inputs: FleetInputs, placement: Placement, timeout_s: float
) -> tuple[AgentRecord, list[str]]:
    """One agent's record, and the warnings building it raised (in the order they arose)."""
    record, warnings, _ = _agent_record(inputs, placement, timeout_s)
    return record, warnings


def _agent_record(
    inputs: FleetInputs, placement: Placement, timeout_s: float
) -> tuple[AgentRecord, list[str], AgentBeat]:
    name, found, ragent = placement.name, placement.found, placement.ragent
    row = found.row if found else None
    beat = heartbeat_for(
        name,
        inputs.heartbeats.get(name) if placement.is_agent else None,
        inputs.tenant_id,
        inputs.host,
    )
    health = health_of(
        placement,
        beat,
        now=inputs.now,
        timeout_s=timeout_s,
        ping=inputs.pings.get(name),
        dead_pids=inputs.dead_pids,
    )
    warnings = list(beat.warnings)
    if health.clock_skew:
        warnings.append(f"agent '{clean_text(name)}': {health.reason}")
    tmux = tmux_info(row, inputs.now) if row else None
    process = process_info(inputs.processes.get(row.pane_pid) if row and row.pane_pid else None)
    observed = process.runtime_detected if process else None
    systemd = systemd_info(ragent, inputs.systemd)
    hb = beat.heartbeat
    source, inferred = state_of(
        placement,
        hb,
        tmux,
        observed,
        captures=inputs.captures,
        rules=inputs.inference,
        sessions=inputs.claude_sessions,
    )
    runtime = ragent.runtime if ragent else (hb.runtime if hb and hb.runtime else observed)
    model = (ragent.model if ragent else None) or (hb.model if hb else None)
    record = AgentRecord(
        tenant_id=inputs.tenant_id,
        host=inputs.host,
        name=name,  # the true name: scripts address sessions by it (JSON)
        role=ragent.role if ragent else None,
        alias=ragent.alias if ragent else None,
        runtime=clean_text(runtime, max_len=32) if runtime else None,
        model=clean_text(model, max_len=48) if model else None,
        lifecycle=ragent.lifecycle if ragent else None,
        in_roster=ragent is not None,
        is_agent=placement.is_agent,
        socket=clean_text(found.socket, max_len=64) if found else placement.roster_socket,
        session=name if found else None,
        tmux=tmux,
        systemd=systemd,
        process=process,
        heartbeat=heartbeat_info(hb, health.age_s),
        health=health.health,
        health_reason=health.reason,
        drift=drift_of(placement, systemd, inputs.systemd, observed, inputs.lifecycle),
        state_source=source,
        inferred=inferred,
        tokens_today=inputs.tokens_today.get(name),
        budget=inputs.budgets.get(name),
    )
    return record, warnings, beat


def record_order(r: AgentRecord) -> tuple[bool, int, str, str]:
    """Agents before plain sessions; orchestrator, enhancer, then the rest; by name, socket."""
    return (not r.is_agent, ROLE_ORDER.get(r.role or "", 2), r.name, r.socket or "")


# -- 3. Sockets and fleet-level warnings -----------------------------------------------------------


def socket_info(scan: SocketScan) -> SocketInfo:
    """A socket as the snapshot shows it."""
    return SocketInfo(
        name=clean_text(scan.name, max_len=64),
        path=clean_text(scan.path, max_len=256),
        state=scan.state,
        sessions=len(scan.sessions()),
        reason=clean_text(scan.reason, max_len=200) if scan.reason else None,
        listed_in_ms=round(scan.listed_in_ms, 2) if scan.listed_in_ms is not None else None,
    )


def socket_warning(scan: SocketScan) -> str | None:
    """The warning a hung or denied socket raises, or a live one that did not answer cleanly."""
    if scan.state in (SocketState.HUNG, SocketState.DENIED) or (
        scan.state is SocketState.LIVE and scan.reason
    ):
        return f"socket '{clean_text(scan.name)}' {scan.state.value}: {clean_text(scan.reason)}"
    return None


def fleet_warnings(inputs: FleetInputs) -> list[str]:
    """Warnings about the fleet as a whole: no roster, the sources', systemd not askable."""
    out: list[str] = []
    roster = inputs.roster
    if roster is None:
        where = f" at {clean_text(inputs.roster_path)}" if inputs.roster_path else ""
        out.append(f"no roster found{where}: showing the sessions that look like agents")
    out.extend(inputs.extra_warnings)
    out.extend(inputs.lifecycle.warnings)
    if roster is not None:
        for ragent in roster.agents:
            hold = inputs.lifecycle.held.get(ragent.name)
            if hold is not None:
                name = clean_text(ragent.name)
                out.append(
                    f"{name} held by supervise since {clean_text(hold.since)}: "
                    f"{clean_text(hold.reason)}; 'fleet-tui up {name}' releases it"
                )
    if (
        inputs.systemd is not None
        and not inputs.systemd.available
        and roster
        and any(a.unit for a in roster.agents)
    ):
        out.append(f"systemd: {inputs.systemd.reason}; unit and boot flags are not checked")
    return out


# -- The join --------------------------------------------------------------------------------------


# -- The incremental join: what the last join built, reused -----------------------------------


@dataclass(slots=True)
class _Kept:
    """One record as the last join built it, and what it was built from (see `JoinCache`)."""

    inputs: tuple[object, ...]
    beat: AgentBeat
    record: AgentRecord


@dataclass
class JoinCache:
    """The records of the last join, for the next one (kept by the caller, e.g. the collector).

    A record whose inputs are equal to the last join's (its placement with the pane's row, its
    heartbeat as read, its process sample, token use, budget and lifecycle marks, under the same
    tenant, host, systemd scan and rules) is not built again: only what moves with the clock or
    with a poll's screens is worked out anew (health and its reason, the heartbeat's age, the
    pane's idle time, and a state without a heartbeat: inferred from the pane's screen, or read
    from Claude Code's session file, from the kept record's pane and process), and when none of
    that moved either, the record is the same OBJECT as in the last snapshot. So a consumer may
    skip a record that `is` the one it saw last (it is equal in every field); an equal record is
    not always the same object.
    """

    context: tuple[object, ...] = ()
    kept: dict[tuple[str, str | None], _Kept] = field(default_factory=dict)
    built: int = 0  # records built in full so far (for tests and benchmarks)
    reused: int = 0  # records kept (same object, or a copy with the clock's fields moved)


def _record_inputs(inputs: FleetInputs, placement: Placement) -> tuple[object, ...]:
    """What `agent_record` reads for one placement, but for `now`, pings, dead pids, captures
    and Claude Code's session states: `refreshed_record` works out again, on every join, the
    health (which reads the first three) and a state without a heartbeat (which reads `now`,
    through the idle time, and the last two)."""
    name, found = placement.name, placement.found
    row = found.row if found else None
    return (
        placement,
        inputs.heartbeats.get(name) if placement.is_agent else None,
        inputs.processes.get(row.pane_pid) if row and row.pane_pid else None,
        inputs.tokens_today.get(name),
        inputs.budgets.get(name),
        inputs.lifecycle.stopped.get(name),
        inputs.lifecycle.held.get(name),
    )


M = TypeVar("M")


def _moved(model: M, update: Mapping[str, object]) -> M:
    """A copy of a (frozen) record with `update` set, keeping a record's cached `key` (unlike
    `model_copy`). Only for values of the fields' own types, none of them what the key is made
    of."""
    cls = type(model)
    new = cls.__new__(cls)
    object.__setattr__(new, "__dict__", {**model.__dict__, **update})
    return new


def _idle_s(tmux: TmuxInfo, now: datetime) -> float | None:
    at = tmux.activity_at
    return round(max((now - at).total_seconds(), 0.0), 1) if at else None


def refreshed_record(
    inputs: FleetInputs, placement: Placement, kept: _Kept, timeout_s: float
) -> tuple[AgentRecord, list[str]]:
    """A kept record at `inputs.now`: health, the heartbeat's age, the pane's idle time and a
    state without a heartbeat (inferred from the pane, or Claude Code's session file) worked
    out as `agent_record` does; the kept object itself when none of them moved."""
    beat, record = kept.beat, kept.record
    health = health_of(
        placement,
        beat,
        now=inputs.now,
        timeout_s=timeout_s,
        ping=inputs.pings.get(placement.name),
        dead_pids=inputs.dead_pids,
    )
    warnings = list(beat.warnings)
    if health.clock_skew:
        warnings.append(f"agent '{clean_text(placement.name)}': {health.reason}")
    update: dict[str, object] = {}
    tmux = record.tmux
    if tmux is not None:
        idle = _idle_s(tmux, inputs.now)
        if idle != tmux.idle_s:
            tmux = update["tmux"] = _moved(tmux, {"idle_s": idle})
    if beat.heartbeat is None:
        process = record.process
        source, inferred = state_of(
            placement,
            None,
            tmux,
            process.runtime_detected if process else None,
            captures=inputs.captures,
            rules=inputs.inference,
            sessions=inputs.claude_sessions,
        )
        if source is not record.state_source:
            update["state_source"] = source
        if inferred != record.inferred:
            update["inferred"] = inferred
    hbinfo = record.heartbeat
    if hbinfo is not None:
        age = round(health.age_s if health.age_s is not None else 0.0, 1)
        if age != hbinfo.age_s:
            update["heartbeat"] = _moved(hbinfo, {"age_s": age})
    if health.health is not record.health:
        update["health"] = health.health
    if health.reason != record.health_reason:
        update["health_reason"] = health.reason
    return (_moved(record, update) if update else record), warnings


def _context(inputs: FleetInputs) -> tuple[object, ...]:
    """What every record depends on: when it changes, no record is kept."""
    return (inputs.tenant_id, inputs.host, inputs.systemd, inputs.inference)


def build_snapshot(inputs: FleetInputs, cache: JoinCache | None = None) -> FleetSnapshot:
    """Join all sources into the fleet snapshot. With a `cache` (the same one every time), only
    the records whose inputs changed since the last join are built again (see `JoinCache`)."""
    timeout_s = timeout_of(inputs)
    if cache is None:
        built = [agent_record(inputs, p, timeout_s) for p in placements(inputs)]
    else:
        built = _build_incremental(inputs, timeout_s, cache)
    warnings = [
        *inputs.roster_warnings,
        *(w for _, record_warnings in built for w in record_warnings),
        *filter(None, (socket_warning(scan) for scan in inputs.sockets)),
        *fleet_warnings(inputs),
    ]
    return FleetSnapshot(
        generated_at=inputs.now,
        host=inputs.host,
        tenant_id=inputs.tenant_id,
        heartbeat_timeout_s=timeout_s,
        roster_path=inputs.roster_path,
        roster_loaded=inputs.roster is not None,
        systemd=inputs.systemd.label if inputs.systemd else None,
        sockets=[socket_info(scan) for scan in inputs.sockets],
        agents=sorted((record for record, _ in built), key=record_order),
        warnings=list(dict.fromkeys(warnings)),
        sources=list(inputs.sources),
    )


def _build_incremental(
    inputs: FleetInputs, timeout_s: float, cache: JoinCache
) -> list[tuple[AgentRecord, list[str]]]:
    context = _context(inputs)
    last = cache.kept if cache.context == context else {}
    kept: dict[tuple[str, str | None], _Kept] = {}
    built: list[tuple[AgentRecord, list[str]]] = []
    for p in placements(inputs):
        key = (p.name, p.found.socket if p.found else None)
        sig = _record_inputs(inputs, p)
        old = last.get(key)
        if old is not None and old.inputs == sig:
            record, warnings = refreshed_record(inputs, p, old, timeout_s)
            cache.reused += 1
            entry = old if record is old.record else _Kept(sig, old.beat, record)
        else:
            record, warnings, beat = _agent_record(inputs, p, timeout_s)
            cache.built += 1
            entry = _Kept(sig, beat, record)
        kept[key] = entry
        built.append((record, warnings))
    cache.context, cache.kept = context, kept
    return built


def apply_usage(
    snapshot: FleetSnapshot,
    tokens_today: Mapping[str, int],
    budgets: Mapping[str, BudgetBrief],
) -> FleetSnapshot:
    """The snapshot with each agent's token use today and budget brief (by agent name), for
    providers that need the joined fleet first (a transcript belongs to the agent whose pane's
    working directory it matches). Records without an entry keep what they had. A count that
    carries its cache reads apart (`core.usage.TokenCount`) sets `cache_read_today` too."""
    agents = []
    for r in snapshot.agents:
        tokens = tokens_today.get(r.name, r.tokens_today)
        budget = budgets.get(r.name, r.budget)
        if tokens is r.tokens_today and budget is r.budget:
            agents.append(r)
        else:
            update: dict[str, object] = {"tokens_today": tokens, "budget": budget}
            if tokens is not None and r.name in tokens_today:
                update["tokens_today"] = int(tokens)
                update["cache_read_today"] = getattr(tokens, "cache_read", None)
            agents.append(r.model_copy(update=update))
    return snapshot.model_copy(update={"agents": agents})
