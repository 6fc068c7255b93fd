"""The join's steps, each alone (core/join.py): placements, the heartbeat an agent uses, its
health, drift and state, one record, and the socket and fleet warnings.

`tests/test_join.py` checks the whole join; here each step is given exactly its inputs and the
assertions are on what a user sees in the record: state, health and its reason, drift flags,
warnings.
"""

from __future__ import annotations

from datetime import timedelta

from fleet_tui.core.infer import DEFAULT_RULES
from fleet_tui.core.join import (
    AgentBeat,
    Found,
    Placement,
    agent_record,
    drift_of,
    fleet_warnings,
    health_of,
    heartbeat_for,
    heartbeat_info,
    missing_placement,
    other_placements,
    placements,
    process_info,
    record_order,
    roster_placements,
    sessions_by_name,
    socket_info,
    socket_warning,
    state_of,
    systemd_info,
    tmux_info,
    unit_drift,
)
from fleet_tui.model.records import (
    AgentState,
    Drift,
    Health,
    InferredState,
    Lifecycle,
    SocketState,
    SpoolRead,
    StateSource,
    SystemdInfo,
    SystemdScan,
    TreeSample,
    UnitState,
)
from fleet_tui.testing.fleets import (
    BUILDERS_NOW as NOW,
)
from fleet_tui.testing.fleets import (
    HOST,
    TENANT,
    agent,
    heartbeat,
    inputs,
    pane,
    ping,
    roster,
    socket,
)

FLEET = "mosaic-fleet"


def placed(
    name: str = "c1",
    *,
    is_agent: bool = True,
    dead: bool = False,
    title: str = "",
    command: str = "node",
) -> Placement:
    """A placement on the fleet socket with a pane, for the per-agent steps."""
    found = Found(FLEET, pane(name, dead=dead, title=title, command=command))
    return Placement(name, found, None, is_agent)


def no_beat() -> AgentBeat:
    return AgentBeat(None, None)


def unit(name: str, active: str = "active", file_state: str = "enabled") -> UnitState:
    return UnitState(name, "loaded", active, "running", file_state)


# -- placements ---------------------------------------------------------------------------------


def test_sessions_by_name_keeps_one_name_found_on_two_sockets_twice() -> None:
    sessions = sessions_by_name(
        [socket(FLEET, pane("c1"), pane("c2")), socket("default", pane("c1"))]
    )
    assert [f.socket for f in sessions["c1"]] == [FLEET, "default"]
    assert [f.socket for f in sessions["c2"]] == [FLEET]


def test_a_roster_agent_on_its_socket_is_placed_without_drift() -> None:
    r = roster(agent("c1"))
    scans = [socket(FLEET, pane("c1"))]
    (p,) = roster_placements(r, sessions_by_name(scans), {FLEET: scans[0]})
    assert (p.name, p.is_agent, p.drift, p.verdict) == ("c1", True, (), None)
    assert p.found is not None and p.found.socket == FLEET
    assert p.ragent is not None and p.roster_socket == FLEET


def test_a_roster_agent_on_two_sockets_is_a_duplicate_and_a_socket_mismatch_off_its_own() -> None:
    r = roster(agent("c1"))
    scans = [socket("other", pane("c1")), socket(FLEET, pane("c1"))]
    found = roster_placements(r, sessions_by_name(scans), {s.name: s for s in scans})
    # The one on the expected socket comes first, whatever the scan order.
    assert [(p.found.socket if p.found else None, p.drift) for p in found] == [
        (FLEET, (Drift.DUPLICATE,)),
        ("other", (Drift.SOCKET_MISMATCH, Drift.DUPLICATE)),
    ]


def test_a_missing_always_on_agent_is_down_and_missing_and_says_where_it_looked() -> None:
    live = socket(FLEET)
    p = missing_placement(agent("c1"), FLEET, live)
    assert p.verdict == (Health.DOWN, "no session 'c1' on socket 'mosaic-fleet'")
    assert p.drift == (Drift.MISSING_SESSION,)
    assert p.found is None and p.roster_socket == FLEET
    stale = socket(FLEET, state=SocketState.STALE, reason="no server")
    assert missing_placement(agent("c1"), FLEET, stale).verdict == (
        Health.DOWN,
        "no session 'c1' on socket 'mosaic-fleet' (no server)",
    )
    assert missing_placement(agent("c1"), FLEET, None).verdict == (
        Health.DOWN,
        "no session 'c1' on socket 'mosaic-fleet' (no server)",
    )


def test_a_missing_ephemeral_agent_is_down_but_not_missing() -> None:
    p = missing_placement(agent("r", lifecycle=Lifecycle.EPHEMERAL), FLEET, socket(FLEET))
    assert p.verdict == (Health.DOWN, "not running (ephemeral)")
    assert p.drift == ()


def test_a_missing_agent_on_a_hung_socket_is_unknown_never_down() -> None:
    hung = socket(FLEET, state=SocketState.HUNG, reason="no answer in 2 s\x1b[31m")
    p = missing_placement(agent("c1"), FLEET, hung)
    assert p.verdict == (Health.UNKNOWN, "socket 'mosaic-fleet' hung: no answer in 2 s")
    assert p.drift == ()


def test_other_sessions_are_agents_by_socket_or_option_and_flagged_against_the_roster() -> None:
    scans = [
        socket(FLEET, pane("c1"), pane("c9")),
        socket("default", pane("shell"), pane("tagged", mosaic_agent="1"), pane("c9")),
    ]
    sessions = sessions_by_name(scans)
    out = other_placements(
        scans, sessions, {(FLEET, "c1")}, agent_sockets={FLEET}, roster_loaded=True
    )
    assert [(p.name, p.is_agent, p.drift) for p in out] == [
        ("c9", True, (Drift.NOT_IN_ROSTER, Drift.DUPLICATE)),
        ("shell", False, ()),
        ("tagged", True, (Drift.NOT_IN_ROSTER,)),
        ("c9", False, ()),
    ]
    without_roster = other_placements(
        scans, sessions, set(), agent_sockets={FLEET}, roster_loaded=False
    )
    assert [p.drift for p in without_roster if p.name == "tagged"] == [()]


def test_placements_put_the_roster_first_and_claim_its_sessions_once() -> None:
    out = placements(
        inputs(socket(FLEET, pane("c2"), pane("c1")), roster=roster(agent("c1"), agent("c3")))
    )
    assert [(p.name, p.ragent is not None, p.found is not None) for p in out] == [
        ("c1", True, True),
        ("c3", True, False),
        ("c2", False, True),
    ]


# -- the heartbeat an agent uses -----------------------------------------------------------------


def test_a_heartbeat_of_this_tenant_and_host_is_used_without_warning() -> None:
    hb = heartbeat("c1")
    assert heartbeat_for("c1", SpoolRead(hb), TENANT, HOST) == AgentBeat(hb, None, ())


def test_a_heartbeat_of_another_tenant_is_refused_with_two_warnings() -> None:
    beat = heartbeat_for("c1", SpoolRead(heartbeat("c1", tenant_id="mallory")), TENANT, HOST)
    assert beat.heartbeat is None
    assert beat.error == "heartbeat from another tenant or host"
    assert beat.warnings == (
        f"heartbeat of 'c1' is for mallory@{HOST}, not {TENANT}@{HOST}: ignored",
        "agent 'c1': heartbeat from another tenant or host",
    )


def test_an_unreadable_heartbeat_is_its_cleaned_error() -> None:
    beat = heartbeat_for("c1", SpoolRead(None, "not JSON: \x1b]0;pwn\x07x"), TENANT, HOST)
    assert beat.heartbeat is None
    assert beat.error is not None and "\x1b" not in beat.error and "\x07" not in beat.error
    assert beat.warnings == (f"agent 'c1': {beat.error}",)


def test_no_heartbeat_file_is_no_heartbeat_and_no_warning() -> None:
    assert heartbeat_for("c1", None, TENANT, HOST) == AgentBeat(None, None, ())
    assert heartbeat_for("c1", SpoolRead(None), TENANT, HOST) == AgentBeat(None, None, ())


# -- health ---------------------------------------------------------------------------------------


def health(p: Placement, beat: AgentBeat, **kw: object) -> tuple[Health, str, float | None]:
    args: dict[str, object] = {"now": NOW, "timeout_s": 30.0, "ping": None, "dead_pids": set()}
    args.update(kw)
    a = health_of(p, beat, **args)  # type: ignore[arg-type]
    return a.health, a.reason, a.age_s


def test_a_fresh_heartbeat_is_healthy_with_its_age() -> None:
    assert health(placed(), AgentBeat(heartbeat("c1", age_s=4), None)) == (
        Health.HEALTHY,
        "heartbeat 4 s ago, timeout 30 s",
        4.0,
    )


def test_a_live_pane_without_heartbeat_is_unknown() -> None:
    assert health(placed(), no_beat())[:2] == (Health.UNKNOWN, "no heartbeat yet (session alive)")
    assert health(placed(), AgentBeat(None, "heartbeat file is not JSON"))[:2] == (
        Health.UNKNOWN,
        "heartbeat file is not JSON",
    )


def test_a_dead_pid_or_an_unanswered_ping_is_unresponsive() -> None:
    beat = AgentBeat(heartbeat("c1", age_s=1, pid=77), None)
    assert health(placed(), beat, dead_pids={77})[0] is Health.UNRESPONSIVE
    assert health(placed(), beat, ping=ping("n-1", age_s=45))[0] is Health.UNRESPONSIVE
    assert health(placed(), beat, ping=ping("n-1", age_s=5))[0] is Health.HEALTHY


def test_a_placement_verdict_is_the_health_and_the_heartbeat_still_has_its_age() -> None:
    p = missing_placement(agent("c1"), FLEET, socket(FLEET))
    assert health(p, AgentBeat(heartbeat("c1", age_s=12), None)) == (
        Health.DOWN,
        "no session 'c1' on socket 'mosaic-fleet'",
        12.0,
    )
    assert health(p, no_beat())[2] is None


def test_a_future_heartbeat_is_clock_skew_not_health() -> None:
    beat = AgentBeat(heartbeat("c1", ts=NOW + timedelta(minutes=5)), None)
    a = health_of(placed(), beat, now=NOW, timeout_s=30.0, ping=None, dead_pids=set())
    assert a.health is Health.UNKNOWN and a.clock_skew and "clock skew" in a.reason


# -- drift ----------------------------------------------------------------------------------------


def test_unit_drift_inactive_without_session_and_boot_disabled() -> None:
    a = agent("c1", unit="c1.service")
    scan = SystemdScan(True, None, {"c1.service": unit("c1.service")}, linger=True)
    info = systemd_info(a, scan)
    assert unit_drift(a, info, scan, has_session=True) == []
    assert unit_drift(a, info, scan, has_session=False) == [Drift.UNIT_WITHOUT_SESSION]
    off = SystemdScan(True, None, {"c1.service": unit("c1.service", "inactive", "disabled")})
    assert unit_drift(a, systemd_info(a, off), off, has_session=True) == [
        Drift.UNIT_INACTIVE,
        Drift.BOOT_DISABLED,
    ]
    eph = agent("c1", unit="c1.service", lifecycle=Lifecycle.EPHEMERAL)
    assert unit_drift(eph, systemd_info(eph, off), off, has_session=True) == [Drift.UNIT_INACTIVE]


def test_no_unit_drift_when_systemd_cannot_be_asked_or_there_is_no_unit() -> None:
    a = agent("c1", unit="c1.service")
    gone = SystemdScan(False, "no systemd")
    assert systemd_info(a, gone) == SystemdInfo(
        unit="c1.service", active_state=None, enabled=None, linger=None
    )
    assert unit_drift(a, systemd_info(a, gone), gone, has_session=False) == []
    assert systemd_info(agent("c2"), gone) is None
    assert unit_drift(agent("c2"), None, gone, has_session=False) == []


def test_drift_of_adds_a_dead_pane_and_a_runtime_mismatch_in_design_order() -> None:
    p = Placement(
        "c1",
        Found(FLEET, pane("c1", dead=True)),
        agent("c1", runtime="claude"),
        True,
        (Drift.DUPLICATE, Drift.SOCKET_MISMATCH),
    )
    assert drift_of(p, None, None, "codex") == [
        Drift.SOCKET_MISMATCH,
        Drift.DUPLICATE,
        Drift.PANE_DEAD,
        Drift.RUNTIME_MISMATCH,
    ]
    # The runtime the roster declares matches, or declares nothing to compare: no mismatch.
    same = Placement("c1", Found(FLEET, pane("c1")), agent("c1", runtime="codex"), True)
    assert drift_of(same, None, None, "codex") == []
    other = Placement("c1", Found(FLEET, pane("c1")), agent("c1", runtime="other"), True)
    assert drift_of(other, None, None, "codex") == []


# -- state ----------------------------------------------------------------------------------------


def state(
    p: Placement, hb_via: str | None = "", **kw: object
) -> tuple[StateSource | None, InferredState | None]:
    hb = heartbeat(p.name, via=hb_via) if hb_via != "" else None
    tmux = tmux_info(p.found.row, NOW) if p.found else None
    args: dict[str, object] = {"captures": {}, "rules": DEFAULT_RULES}
    args.update(kw)
    return state_of(p, hb, tmux, None, **args)  # type: ignore[arg-type]


def test_the_state_comes_from_the_heartbeat_its_writer_named() -> None:
    assert state(placed(), None) == (StateSource.HEARTBEAT, None)
    assert state(placed(), "hook:claude") == (StateSource.HOOK, None)
    assert state(placed(), "keepalive:codex") == (StateSource.HOOK, None)


def test_without_heartbeat_a_live_agent_pane_is_inferred_from_its_screen() -> None:
    p = placed(title="⠙ Claude Code", command="claude")
    source, inferred = state(p)
    assert source is StateSource.INFERRED
    assert inferred is not None and inferred.state is AgentState.BUSY
    prompt = ["Do you want to proceed?", "❯ 1. Yes", "  2. No"]
    assert p.found is not None
    _, waiting = state(p, captures={(FLEET, p.found.row.pane_id): prompt})
    assert waiting is not None and waiting.state is AgentState.WAITING_INPUT


def test_no_state_for_a_dead_pane_a_missing_session_or_a_plain_session() -> None:
    assert state(placed(dead=True)) == (None, None)
    assert state(placed(is_agent=False)) == (None, None)
    assert state(missing_placement(agent("c1"), FLEET, socket(FLEET))) == (None, None)


# -- what the record shows ------------------------------------------------------------------------


def test_tmux_info_is_cleaned_and_idle_is_counted_from_the_latest_activity() -> None:
    row = pane("c1", title="\x1b[31mred", command="no\x07de", activity=int(NOW.timestamp()) - 42)
    info = tmux_info(row, NOW)
    assert (info.pane_title, info.current_command, info.idle_s) == ("red", "node", 42.0)


def test_process_and_heartbeat_info_show_what_was_sampled() -> None:
    assert process_info(None) is None
    proc = process_info(TreeSample(9, "claude", 2.5, 1024, 3))
    assert proc is not None and (proc.runtime_detected, proc.processes) == ("claude", 3)
    assert heartbeat_info(None, 3.0) is None
    info = heartbeat_info(heartbeat("c1", detail="a\x1b[2Jb", echo="n-1"), 3.04)
    assert info is not None and (info.age_s, info.detail, info.echo) == (3.0, "ab", "n-1")
    unknown_age = heartbeat_info(heartbeat("c1"), None)
    assert unknown_age is not None and unknown_age.age_s == 0.0


def test_agent_record_joins_the_steps_and_returns_its_warnings() -> None:
    r = roster(agent("c1", runtime="claude", model="opus", alias="Mo"))
    given = inputs(
        socket(FLEET, pane("c1", pid=5)),
        roster=r,
        heartbeats={"c1": SpoolRead(heartbeat("c1", age_s=40, tenant_id="mallory"))},
        processes={5: TreeSample(6, "codex", 1.0, 10, 2)},
    )
    (p,) = placements(given)
    rec, warnings = agent_record(given, p, 30.0)
    assert (rec.name, rec.alias, rec.runtime, rec.model) == ("c1", "Mo", "claude", "opus")
    assert (rec.socket, rec.session, rec.in_roster, rec.is_agent) == (FLEET, "c1", True, True)
    assert rec.health is Health.UNKNOWN
    assert rec.health_reason == "heartbeat from another tenant or host"
    assert rec.heartbeat is None and rec.state_source is StateSource.INFERRED
    assert rec.drift == [Drift.RUNTIME_MISMATCH]
    assert len(warnings) == 2 and "mallory" in warnings[0]


def test_a_missing_roster_agent_record_names_its_expected_socket() -> None:
    given = inputs(socket(FLEET), roster=roster(agent("c1")))
    rec, warnings = agent_record(given, placements(given)[0], 30.0)
    assert (rec.socket, rec.session, rec.tmux, rec.health) == (FLEET, None, None, Health.DOWN)
    assert rec.drift == [Drift.MISSING_SESSION] and warnings == []


def test_a_clock_skewed_heartbeat_warns_in_the_record_step() -> None:
    given = inputs(
        socket(FLEET, pane("c1")),
        roster=roster(agent("c1")),
        heartbeats={"c1": SpoolRead(heartbeat("c1", ts=NOW + timedelta(minutes=5)))},
    )
    rec, warnings = agent_record(given, placements(given)[0], 30.0)
    assert rec.health is Health.UNKNOWN
    assert warnings == [f"agent 'c1': {rec.health_reason}"]


def test_records_sort_agents_first_orchestrator_and_enhancer_on_top() -> None:
    given = inputs(
        socket(FLEET, pane("b"), pane("enh"), pane("orc"), pane("a")),
        socket("default", pane("shell")),
        roster=roster(agent("orc", "orchestrator"), agent("enh", "enhancer"), agent("b")),
    )
    recs = sorted((agent_record(given, p, 30.0)[0] for p in placements(given)), key=record_order)
    assert [r.name for r in recs] == ["orc", "enh", "a", "b", "shell"]


# -- sockets and the fleet ------------------------------------------------------------------------


def test_a_hung_or_denied_socket_warns_and_a_stale_one_does_not() -> None:
    hung = socket("lab", state=SocketState.HUNG, reason="no answer")
    assert socket_warning(hung) == "socket 'lab' hung: no answer"
    assert socket_warning(socket("gone", state=SocketState.STALE, reason="no server")) is None
    assert socket_warning(socket(FLEET, pane("c1"))) is None
    info = socket_info(socket(FLEET, pane("c1"), pane("c2")))
    assert (info.name, info.sessions, info.state) == (FLEET, 2, SocketState.LIVE)


def test_fleet_warnings_no_roster_then_the_sources_then_systemd() -> None:
    assert fleet_warnings(inputs(roster_path="/r.yaml", extra_warnings=["usage: late"])) == [
        "no roster found at /r.yaml: showing the sessions that look like agents",
        "usage: late",
    ]
    with_units = inputs(
        roster=roster(agent("c1", unit="c1.service")), systemd=SystemdScan(False, "no systemd")
    )
    assert fleet_warnings(with_units) == [
        "systemd: no systemd; unit and boot flags are not checked"
    ]
    assert fleet_warnings(inputs(roster=roster(agent("c1")), systemd=SystemdScan(True))) == []
