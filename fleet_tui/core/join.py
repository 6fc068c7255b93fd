"""The join: tmux, roster, heartbeats, systemd and processes into one `FleetSnapshot`.

Pure: every observation and `now` are given (see `FleetInputs`). Decides which sessions are
agents, each agent's health with its reason, the drift flags of DESIGN.md, and where each agent's
state comes from: its heartbeat (written by the runtime, or by a hook adapter: `via`), else,
for a live pane without a readable heartbeat, a state inferred from the pane (core/infer.py),
which never changes health.

An agent's `name` and `session` stay exactly what tmux or the roster said (scripts address the
session by them, through `ps --json`); every other agent-controlled string is sanitized here.
Whatever shows a name on a terminal sanitizes it there (the table, the screens, `ps`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fleet_tui.core.health import assess
from fleet_tui.core.infer import DEFAULT_RULES, InferenceRules, infer_state
from fleet_tui.core.sanitize import clean_text
from fleet_tui.model.records import (
    AgentRecord,
    BudgetBrief,
    Drift,
    FleetSnapshot,
    Health,
    Heartbeat,
    HeartbeatInfo,
    InferredState,
    Lifecycle,
    PaneRow,
    Ping,
    ProcessInfo,
    Roster,
    RosterAgent,
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

FLEET_SOCKETS = ("mosaic-fleet", "mosaic-factory")
DEFAULT_TIMEOUT_S = 30.0
ROLE_ORDER = {"orchestrator": 0, "enhancer": 1}


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
    tokens_today: Mapping[str, int] = field(default_factory=dict)  # by agent name
    budgets: Mapping[str, BudgetBrief] = field(default_factory=dict)  # by agent name


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


def state_source_of(hb: Heartbeat) -> StateSource:
    """`hook` when a hook adapter wrote the heartbeat (`via` "hook:..." or "keepalive:..."),
    else `heartbeat` (the runtime speaks the protocol itself)."""
    via = hb.via or ""
    return StateSource.HOOK if via.startswith(HOOK_PREFIXES) else StateSource.HEARTBEAT


def _valid_heartbeat(inputs: FleetInputs, name: str) -> bool:
    read = inputs.heartbeats.get(name)
    hb = read.heartbeat if read else None
    return hb is not None and hb.tenant_id == inputs.tenant_id and hb.host == inputs.host


def inference_targets(inputs: FleetInputs) -> list[tuple[str, str]]:
    """(socket, pane id) of the live agent panes the join will infer a state for: those
    without a readable heartbeat of this tenant and host. The collector captures only these."""
    agent_sockets = set(FLEET_SOCKETS) | roster_sockets(inputs.roster)
    names = {a.name for a in inputs.roster.agents} if inputs.roster else set()
    out: list[tuple[str, str]] = []
    for scan in inputs.sockets:
        for name, row in scan.sessions().items():
            if row.pane_dead:
                continue
            if not (scan.name in agent_sockets or row.mosaic_agent or name in names):
                continue
            if _valid_heartbeat(inputs, name):
                continue
            out.append((scan.name, row.pane_id))
    return out


def _ts(epoch: int | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None


def _tmux_info(row: PaneRow, now: datetime) -> TmuxInfo:
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


@dataclass
class _Found:
    socket: str
    row: PaneRow


def build_snapshot(inputs: FleetInputs) -> FleetSnapshot:
    """Join all sources into the fleet snapshot."""
    now = inputs.now
    n = timeout_of(inputs)
    roster = inputs.roster
    warnings: list[str] = list(inputs.roster_warnings)
    by_socket = {s.name: s for s in inputs.sockets}
    agent_sockets = set(FLEET_SOCKETS) | roster_sockets(roster)

    # Every session of every live socket, by name.
    sessions: dict[str, list[_Found]] = defaultdict(list)
    for scan in inputs.sockets:
        for name, row in scan.sessions().items():
            sessions[name].append(_Found(scan.name, row))

    records: list[AgentRecord] = []

    def record(
        name: str,
        found: _Found | None,
        ragent: RosterAgent | None,
        *,
        is_agent: bool,
        drift: list[Drift],
        health_override: tuple[Health, str] | None = None,
    ) -> None:
        row = found.row if found else None
        tmux = _tmux_info(row, now) if row else None
        proc_sample = inputs.processes.get(row.pane_pid) if row and row.pane_pid else None
        process = (
            ProcessInfo(
                pid=proc_sample.pid,
                runtime_detected=proc_sample.runtime,
                cpu_percent=proc_sample.cpu_percent,
                rss_bytes=proc_sample.rss_bytes,
                processes=proc_sample.processes,
            )
            if proc_sample
            else None
        )
        read = inputs.heartbeats.get(name) if (ragent or is_agent) else None
        hb = read.heartbeat if read else None
        if hb is not None and (hb.tenant_id != tenant or hb.host != host):
            warnings.append(
                f"heartbeat of '{clean_text(name)}' is for {clean_text(hb.tenant_id)}@"
                f"{clean_text(hb.host)}, not {tenant}@{host}: ignored"
            )
            read, hb = SpoolRead(None, "heartbeat from another tenant or host"), None
        # Spool errors quote the file's content (e.g. the agent it names): untrusted text.
        read_error = clean_text(read.error, max_len=200) if read and read.error else None
        if read_error:
            warnings.append(f"agent '{clean_text(name)}': {read_error}")
        pid_dead = bool(hb and hb.pid is not None and hb.pid in inputs.dead_pids)
        if health_override is not None:
            health, reason, age = health_override[0], health_override[1], None
            if hb is not None:
                age = max((now - hb.ts).total_seconds(), 0.0)
        else:
            a = assess(
                now,
                n,
                has_session=row is not None,
                pane_dead=bool(row and row.pane_dead),
                heartbeat=hb,
                heartbeat_error=read_error,
                ping=inputs.pings.get(name),
                pid_dead=pid_dead,
            )
            health, reason, age = a.health, a.reason, a.age_s
            if a.clock_skew:
                warnings.append(f"agent '{clean_text(name)}': {a.reason}")
        if row is not None and row.pane_dead and Drift.PANE_DEAD not in drift:
            drift.append(Drift.PANE_DEAD)
        systemd = _systemd_info(ragent, inputs.systemd)
        if (
            ragent is not None
            and systemd is not None
            and inputs.systemd
            and inputs.systemd.available
        ):
            unit = inputs.systemd.units.get(systemd.unit)
            active = unit is not None and unit.active_state == "active"
            if not active:
                drift.append(Drift.UNIT_INACTIVE)
            elif row is None:
                drift.append(Drift.UNIT_WITHOUT_SESSION)
            if ragent.lifecycle is Lifecycle.ALWAYS_ON and (
                systemd.enabled is False or systemd.linger is False
            ):
                drift.append(Drift.BOOT_DISABLED)
        observed = process.runtime_detected if process else None
        if (
            ragent is not None
            and observed
            and ragent.runtime not in ("other", "")
            and observed != ragent.runtime
        ):
            drift.append(Drift.RUNTIME_MISMATCH)
        hb_info = (
            HeartbeatInfo(
                ts=hb.ts,
                age_s=round(age if age is not None else 0.0, 1),
                seq=hb.seq,
                state=hb.state,
                detail=clean_text(hb.detail, max_len=200) if hb.detail else None,
                interval_s=hb.interval_s,
                pid=hb.pid,
                echo=clean_text(hb.echo, max_len=80) if hb.echo else None,
            )
            if hb
            else None
        )
        runtime = ragent.runtime if ragent else (hb.runtime if hb and hb.runtime else observed)
        model = (ragent.model if ragent else None) or (hb.model if hb else None)
        source: StateSource | None = None
        inferred: InferredState | None = None
        if hb is not None:
            source = state_source_of(hb)
        elif found is not None and tmux is not None and not tmux.pane_dead and is_agent:
            # A guess from the pane; health stays what `assess` said (unknown): invariant 3.
            inferred = infer_state(
                title=tmux.pane_title,
                lines=inputs.captures.get((found.socket, tmux.pane_id)),
                idle_s=tmux.idle_s,
                command=tmux.current_command,
                runtime=observed,
                declared_runtime=ragent.runtime if ragent else None,
                rules=inputs.inference,
            )
            source = StateSource.INFERRED
        records.append(
            AgentRecord(
                tenant_id=tenant,
                host=host,
                name=name,  # the true name: scripts address sessions by it (JSON)
                role=ragent.role if ragent else None,
                alias=ragent.alias if ragent else None,
                runtime=clean_text(runtime, max_len=32) if runtime else None,
                model=clean_text(model, max_len=48) if model else None,
                lifecycle=ragent.lifecycle if ragent else None,
                in_roster=ragent is not None,
                is_agent=is_agent,
                socket=clean_text(found.socket, max_len=64)
                if found
                else (roster.agent_socket(ragent) if roster and ragent else None),
                session=name if found else None,
                tmux=tmux,
                systemd=systemd,
                process=process,
                heartbeat=hb_info,
                health=health,
                health_reason=reason,
                drift=sorted(set(drift), key=list(Drift).index),
                state_source=source,
                inferred=inferred,
                tokens_today=inputs.tokens_today.get(name),
                budget=inputs.budgets.get(name),
            )
        )

    tenant, host = inputs.tenant_id, inputs.host
    claimed: set[tuple[str, str]] = set()

    # 1. Roster agents: matched exactly by name, on their socket or (drift) another one.
    for ragent in roster.agents if roster else []:
        expected = roster.agent_socket(ragent) if roster else "default"
        found_all = sessions.get(ragent.name, [])
        dup = len(found_all) > 1
        on_expected = [f for f in found_all if f.socket == expected]
        elsewhere = [f for f in found_all if f.socket != expected]
        for f in on_expected:
            claimed.add((f.socket, ragent.name))
            record(ragent.name, f, ragent, is_agent=True, drift=[Drift.DUPLICATE] if dup else [])
        for f in elsewhere:
            claimed.add((f.socket, ragent.name))
            drift = [Drift.SOCKET_MISMATCH] + ([Drift.DUPLICATE] if dup else [])
            record(ragent.name, f, ragent, is_agent=True, drift=drift)
        if found_all:
            continue
        exp_scan = by_socket.get(expected)
        if (
            exp_scan is not None
            and not exp_scan.ok
            and exp_scan.state in (SocketState.HUNG, SocketState.DENIED, SocketState.LIVE)
        ):
            why = clean_text(exp_scan.reason or exp_scan.state.value, max_len=200)
            record(
                ragent.name,
                None,
                ragent,
                is_agent=True,
                drift=[],
                health_override=(
                    Health.UNKNOWN,
                    f"socket '{expected}' {exp_scan.state.value}: {why}",
                ),
            )
            continue
        missing = [Drift.MISSING_SESSION] if ragent.lifecycle is Lifecycle.ALWAYS_ON else []
        if ragent.lifecycle is Lifecycle.EPHEMERAL:
            override = (Health.DOWN, "not running (ephemeral)")
        else:
            where = f"socket '{expected}'" + (
                ""
                if exp_scan is not None and exp_scan.state is SocketState.LIVE
                else " (no server)"
            )
            override = (Health.DOWN, f"no session '{ragent.name}' on {where}")
        record(ragent.name, None, ragent, is_agent=True, drift=missing, health_override=override)

    # 2. Sessions outside the roster: agents by socket or by the @mosaic_agent option.
    for scan in inputs.sockets:
        for name, row in scan.sessions().items():
            if (scan.name, name) in claimed:
                continue
            is_agent = scan.name in agent_sockets or bool(row.mosaic_agent)
            flags: list[Drift] = []
            if is_agent and roster is not None:
                flags.append(Drift.NOT_IN_ROSTER)
            if is_agent and len(sessions.get(name, [])) > 1:
                flags.append(Drift.DUPLICATE)
            record(name, _Found(scan.name, row), None, is_agent=is_agent, drift=flags)

    # 3. Sockets and fleet-level warnings.
    socket_infos = []
    for scan in inputs.sockets:
        socket_infos.append(
            SocketInfo(
                name=clean_text(scan.name, max_len=64),
                path=clean_text(scan.path, max_len=256),
                state=scan.state,
                sessions=len(scan.sessions()),
                reason=clean_text(scan.reason, max_len=200) if scan.reason else None,
                listed_in_ms=round(scan.listed_in_ms, 2) if scan.listed_in_ms is not None else None,
            )
        )
        if scan.state in (SocketState.HUNG, SocketState.DENIED) or (
            scan.state is SocketState.LIVE and scan.reason
        ):
            warnings.append(
                f"socket '{clean_text(scan.name)}' {scan.state.value}: {clean_text(scan.reason)}"
            )
    if roster is None:
        where = f" at {clean_text(inputs.roster_path)}" if inputs.roster_path else ""
        warnings.append(f"no roster found{where}: showing the sessions that look like agents")
    warnings.extend(inputs.extra_warnings)
    if (
        inputs.systemd is not None
        and not inputs.systemd.available
        and roster
        and any(a.unit for a in roster.agents)
    ):
        warnings.append(f"systemd: {inputs.systemd.reason}; unit and boot flags are not checked")

    records.sort(
        key=lambda r: (not r.is_agent, ROLE_ORDER.get(r.role or "", 2), r.name, r.socket or "")
    )
    return FleetSnapshot(
        generated_at=now,
        host=host,
        tenant_id=tenant,
        heartbeat_timeout_s=n,
        roster_path=inputs.roster_path,
        roster_loaded=roster is not None,
        systemd=inputs.systemd.label if inputs.systemd else None,
        sockets=socket_infos,
        agents=records,
        warnings=list(dict.fromkeys(warnings)),
        sources=list(inputs.sources),
    )


def _systemd_info(ragent: RosterAgent | None, scan: SystemdScan | None) -> SystemdInfo | None:
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


def apply_usage(
    snapshot: FleetSnapshot,
    tokens_today: Mapping[str, int],
    budgets: Mapping[str, BudgetBrief],
) -> FleetSnapshot:
    """The snapshot with each agent's token use today and budget brief (by agent name), for
    providers that need the joined fleet first (a transcript belongs to the agent whose pane's
    working directory it matches). Records without an entry keep what they had."""
    agents = []
    for r in snapshot.agents:
        tokens = tokens_today.get(r.name, r.tokens_today)
        budget = budgets.get(r.name, r.budget)
        if tokens is r.tokens_today and budget is r.budget:
            agents.append(r)
        else:
            agents.append(r.model_copy(update={"tokens_today": tokens, "budget": budget}))
    return snapshot.model_copy(update={"agents": agents})
