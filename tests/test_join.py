"""The join (DESIGN.md "ps --json v1", "Drift flags", agent classification, invariants 1, 3, 5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleet_tui.cli.main import _snapshot_json
from fleet_tui.core.infer import compile_rules
from fleet_tui.core.join import apply_usage, build_snapshot, inference_targets
from fleet_tui.core.sanitize import clean_text
from fleet_tui.model.records import (
    AgentRecord,
    AgentState,
    BudgetBrief,
    Drift,
    FleetSnapshot,
    Health,
    Lifecycle,
    SocketState,
    SpoolRead,
    StateSource,
    SystemdScan,
    TreeSample,
    UnitState,
)
from fleet_tui.sources.roster import parse_roster
from fleet_tui.sources.spool import HeartbeatSpool
from fleet_tui.testing.fleets import (
    BUILDERS_NOW as NOW,
)
from fleet_tui.testing.fleets import (
    HOST,
    TENANT,
    agent,
    beats,
    heartbeat,
    inputs,
    pane,
    ping,
    roster,
    socket,
)

FLEET = "mosaic-fleet"
FACTORY = "mosaic-factory"


def records(snap: FleetSnapshot, name: str) -> list[AgentRecord]:
    return [r for r in snap.agents if r.name == name]


def one(snap: FleetSnapshot, name: str) -> AgentRecord:
    found = records(snap, name)
    assert len(found) == 1, f"expected one record named {name!r}, got {found}"
    return found[0]


def unit(name: str, active: str = "active", file_state: str = "enabled") -> UnitState:
    return UnitState(
        unit=name,
        load_state="loaded",
        active_state=active,
        sub_state="running" if active == "active" else "dead",
        unit_file_state=file_state,
    )


def systemd(*units: UnitState, linger: bool | None = True) -> SystemdScan:
    return SystemdScan(True, None, {u.unit: u for u in units}, linger)


# -- a healthy fleet ---------------------------------------------------------------------------


def test_roster_agent_with_session_and_fresh_heartbeat_is_healthy_without_drift() -> None:
    r = roster(agent("orchestrator", "orchestrator", runtime="claude", alias="Mos"))
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("orchestrator", pid=123, command="node")),
            roster=r,
            heartbeats=beats(heartbeat("orchestrator", age_s=4, runtime="claude")),
            processes={123: TreeSample(123, "claude", 1.5, 1234, 3)},
        )
    )
    rec = one(snap, "orchestrator")
    assert rec.health is Health.HEALTHY
    assert rec.health_reason == "heartbeat 4 s ago, timeout 30 s"
    assert rec.drift == []
    assert rec.in_roster and rec.is_agent
    assert (rec.socket, rec.session, rec.alias, rec.role) == (
        FLEET,
        "orchestrator",
        "Mos",
        "orchestrator",
    )
    assert rec.tmux is not None and rec.tmux.pane_pid == 123 and rec.tmux.current_command == "node"
    assert rec.process is not None and rec.process.runtime_detected == "claude"
    assert rec.heartbeat is not None and rec.heartbeat.age_s == 4.0 and rec.heartbeat.seq == 17


def test_live_pane_without_heartbeat_is_unknown_not_healthy() -> None:
    """Invariant 3: a live pane alone never makes an agent healthy."""
    r = roster(agent("orchestrator", "orchestrator"))
    snap = build_snapshot(inputs(socket(FLEET, pane("orchestrator")), roster=r))
    rec = one(snap, "orchestrator")
    assert rec.health is Health.UNKNOWN
    assert rec.heartbeat is None


def test_unreadable_heartbeat_makes_the_agent_unknown_and_warns() -> None:
    r = roster(agent("c1"))
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("c1")),
            roster=r,
            heartbeats={"c1": SpoolRead(None, "heartbeat file is not JSON")},
        )
    )
    rec = one(snap, "c1")
    assert rec.health is Health.UNKNOWN
    assert rec.health_reason == "heartbeat file is not JSON"
    assert any("c1" in w and "not JSON" in w for w in snap.warnings)


def test_unanswered_ping_and_dead_pid_reach_the_record() -> None:
    r = roster(agent("c1"), agent("c2"))
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("c1"), pane("c2")),
            roster=r,
            heartbeats=beats(heartbeat("c1", age_s=1, pid=11), heartbeat("c2", age_s=1, pid=22)),
            pings={"c1": ping("n-1", age_s=45)},
            dead_pids={22},
        )
    )
    assert one(snap, "c1").health is Health.UNRESPONSIVE
    assert "ping" in one(snap, "c1").health_reason
    assert one(snap, "c2").health is Health.UNRESPONSIVE
    assert "22" in one(snap, "c2").health_reason


def test_heartbeat_of_another_tenant_is_ignored_with_a_warning() -> None:
    r = roster(agent("c1"))
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("c1")),
            roster=r,
            heartbeats=beats(heartbeat("c1", tenant_id="mallory")),
        )
    )
    rec = one(snap, "c1")
    assert rec.health is Health.UNKNOWN
    assert rec.heartbeat is None
    assert any("mallory" in w and "ignored" in w for w in snap.warnings)


def test_future_heartbeat_warns_about_clock_skew() -> None:
    from datetime import timedelta

    r = roster(agent("c1"))
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("c1")),
            roster=r,
            heartbeats=beats(heartbeat("c1", ts=NOW + timedelta(minutes=5))),
        )
    )
    assert one(snap, "c1").health is not Health.HEALTHY
    assert any("c1" in w and "clock skew" in w for w in snap.warnings)


@pytest.mark.parametrize(
    ("given", "roster_value", "expected"),
    [(None, None, 30.0), (None, 12.0, 12.0), (45.0, 12.0, 45.0)],
)
def test_heartbeat_timeout_flag_then_roster_then_30(
    given: float | None, roster_value: float | None, expected: float
) -> None:
    r = roster(agent("c1"), heartbeat_timeout_s=roster_value)
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("c1")),
            roster=r,
            heartbeat_timeout_s=given,
            heartbeats=beats(heartbeat("c1", age_s=20)),
        )
    )
    assert snap.heartbeat_timeout_s == expected
    expected_health = Health.HEALTHY if expected >= 20 else Health.STALE
    assert one(snap, "c1").health is expected_health


# -- drift flags ---------------------------------------------------------------------------


def test_missing_session_always_on_roster_agent_is_down() -> None:
    r = roster(agent("orchestrator", "orchestrator"), agent("coder1"))
    snap = build_snapshot(inputs(socket(FLEET, pane("orchestrator")), roster=r))
    rec = one(snap, "coder1")
    assert rec.health is Health.DOWN
    assert rec.drift == [Drift.MISSING_SESSION]
    assert rec.session is None and rec.tmux is None
    assert rec.socket == FLEET
    assert "coder1" in rec.health_reason and FLEET in rec.health_reason


def test_missing_session_when_the_socket_has_no_server_says_so() -> None:
    r = roster(agent("coder1"))
    for scans in ([], [socket(FLEET, state=SocketState.STALE)]):
        snap = build_snapshot(inputs(*scans, roster=r))
        rec = one(snap, "coder1")
        assert rec.health is Health.DOWN
        assert rec.drift == [Drift.MISSING_SESSION]
        assert "no server" in rec.health_reason


def test_ephemeral_agent_without_session_is_not_missing() -> None:
    r = roster(agent("research1", "research", lifecycle=Lifecycle.EPHEMERAL))
    snap = build_snapshot(inputs(socket(FLEET), roster=r))
    rec = one(snap, "research1")
    assert Drift.MISSING_SESSION not in rec.drift
    assert rec.drift == []
    assert rec.health is Health.DOWN
    assert "ephemeral" in rec.health_reason


def test_not_in_roster_for_a_fleet_socket_session_outside_the_roster() -> None:
    r = roster(agent("orchestrator", "orchestrator"))
    snap = build_snapshot(inputs(socket(FLEET, pane("orchestrator"), pane("stray")), roster=r))
    rec = one(snap, "stray")
    assert rec.is_agent and not rec.in_roster
    assert rec.drift == [Drift.NOT_IN_ROSTER]
    assert one(snap, "orchestrator").drift == []


def test_without_roster_nothing_is_flagged_not_in_roster_and_a_warning_says_why() -> None:
    snap = build_snapshot(inputs(socket(FLEET, pane("stray"))))
    rec = one(snap, "stray")
    assert rec.is_agent
    assert rec.drift == []
    assert snap.roster_loaded is False
    assert any("no roster" in w for w in snap.warnings)


def test_socket_mismatch_roster_agent_found_on_another_socket() -> None:
    r = roster(agent("coder1"))  # expected on mosaic-fleet
    snap = build_snapshot(
        inputs(
            socket(FLEET),
            socket(FACTORY, pane("coder1")),
            roster=r,
            heartbeats=beats(heartbeat("coder1")),
        )
    )
    rec = one(snap, "coder1")
    assert rec.drift == [Drift.SOCKET_MISMATCH]
    assert rec.socket == FACTORY
    assert rec.in_roster
    assert rec.health is Health.HEALTHY  # found, just not where the roster says


def test_duplicate_roster_agent_on_two_sockets_gives_two_flagged_records() -> None:
    r = roster(agent("coder1"))
    snap = build_snapshot(
        inputs(socket(FLEET, pane("coder1")), socket(FACTORY, pane("coder1")), roster=r)
    )
    recs = {rec.socket: rec for rec in records(snap, "coder1")}
    assert set(recs) == {FLEET, FACTORY}
    assert recs[FLEET].drift == [Drift.DUPLICATE]
    assert recs[FACTORY].drift == [Drift.SOCKET_MISMATCH, Drift.DUPLICATE]
    assert len({rec.key for rec in recs.values()}) == 2


def test_a_record_copied_with_another_socket_has_its_own_key() -> None:
    # the key is kept on the record once asked for; a copy that moves the agent (the gateway
    # client blanks a remote row's socket, `send` retargets one) must not inherit the old key
    snap = build_snapshot(inputs(socket(FLEET, pane("coder1")), roster=roster(agent("coder1"))))
    (rec,) = records(snap, "coder1")
    assert rec.key.endswith(f"/{FLEET}/coder1")
    moved = rec.model_copy(update={"socket": None, "name": "coder2"})
    assert moved.key.endswith("/-/coder2")
    assert rec.key.endswith(f"/{FLEET}/coder1")
    assert "key" not in rec.model_dump() and '"key"' not in rec.model_dump_json()
    assert rec == rec.model_copy()


def test_duplicate_outside_the_roster() -> None:
    snap = build_snapshot(inputs(socket(FLEET, pane("x")), socket(FACTORY, pane("x"))))
    recs = records(snap, "x")
    assert len(recs) == 2
    assert all(rec.drift == [Drift.DUPLICATE] for rec in recs)


def test_pane_dead_is_drift_and_down() -> None:
    r = roster(agent("coder1"))
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("coder1", dead=True)),
            roster=r,
            heartbeats=beats(heartbeat("coder1", age_s=1)),
        )
    )
    rec = one(snap, "coder1")
    assert rec.drift == [Drift.PANE_DEAD]
    assert rec.health is Health.DOWN
    assert rec.tmux is not None and rec.tmux.pane_dead is True


def test_unit_inactive() -> None:
    u = "mosaic-agent@coder1.service"
    r = roster(agent("coder1", unit=u))
    snap = build_snapshot(
        inputs(socket(FLEET, pane("coder1")), roster=r, systemd=systemd(unit(u, active="failed")))
    )
    rec = one(snap, "coder1")
    assert rec.drift == [Drift.UNIT_INACTIVE]
    assert rec.systemd is not None
    assert (rec.systemd.unit, rec.systemd.active_state) == (u, "failed")


def test_unit_of_the_roster_unknown_to_systemd_is_inactive_and_not_enabled() -> None:
    u = "mosaic-agent@coder1.service"
    r = roster(agent("coder1", unit=u))
    snap = build_snapshot(inputs(socket(FLEET, pane("coder1")), roster=r, systemd=systemd()))
    rec = one(snap, "coder1")
    assert Drift.UNIT_INACTIVE in rec.drift
    assert Drift.BOOT_DISABLED in rec.drift


def test_unit_without_session() -> None:
    u = "mosaic-agent@coder1.service"
    r = roster(agent("coder1", unit=u))
    snap = build_snapshot(inputs(socket(FLEET), roster=r, systemd=systemd(unit(u))))
    rec = one(snap, "coder1")
    assert rec.drift == [Drift.MISSING_SESSION, Drift.UNIT_WITHOUT_SESSION]
    assert rec.health is Health.DOWN


def test_active_enabled_lingering_unit_with_session_has_no_drift() -> None:
    u = "mosaic-agent@coder1.service"
    r = roster(agent("coder1", unit=u))
    snap = build_snapshot(
        inputs(socket(FLEET, pane("coder1")), roster=r, systemd=systemd(unit(u), linger=True))
    )
    rec = one(snap, "coder1")
    assert rec.drift == []
    assert rec.systemd is not None
    assert (rec.systemd.enabled, rec.systemd.linger) == (True, True)


@pytest.mark.parametrize(
    ("file_state", "linger"), [("disabled", True), ("enabled", False), ("masked", True)]
)
def test_boot_disabled_when_unit_not_enabled_or_user_not_lingering(
    file_state: str, linger: bool
) -> None:
    u = "mosaic-agent@coder1.service"
    r = roster(agent("coder1", unit=u))
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("coder1")),
            roster=r,
            systemd=systemd(unit(u, file_state=file_state), linger=linger),
        )
    )
    assert one(snap, "coder1").drift == [Drift.BOOT_DISABLED]


def test_ephemeral_agent_with_a_disabled_unit_is_not_boot_disabled() -> None:
    u = "mosaic-agent@r1.service"
    r = roster(agent("r1", "research", unit=u, lifecycle=Lifecycle.EPHEMERAL))
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("r1")),
            roster=r,
            systemd=systemd(unit(u, file_state="disabled"), linger=False),
        )
    )
    assert one(snap, "r1").drift == []


def test_without_systemd_no_unit_flag_is_raised_and_a_warning_says_so() -> None:
    u = "mosaic-agent@coder1.service"
    r = roster(agent("coder1", unit=u))
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("coder1")),
            roster=r,
            systemd=SystemdScan(False, "no systemd (/run/systemd/system absent)"),
        )
    )
    rec = one(snap, "coder1")
    assert rec.drift == []
    assert rec.systemd is not None
    assert (rec.systemd.unit, rec.systemd.active_state, rec.systemd.enabled) == (u, None, None)
    assert snap.systemd == "no systemd (/run/systemd/system absent)"
    assert any(w.startswith("systemd: no systemd") and "not checked" in w for w in snap.warnings)


def test_runtime_mismatch_when_the_observed_runtime_differs() -> None:
    r = roster(agent("c1", runtime="claude"), agent("c2", runtime="codex"), agent("c3"))
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("c1", pid=1), pane("c2", pid=2), pane("c3", pid=3)),
            roster=r,
            processes={
                1: TreeSample(1, "codex", 0.0, 1, 1),
                2: TreeSample(2, "codex", 0.0, 1, 1),
                3: TreeSample(3, "pi", 0.0, 1, 1),  # roster says "other": nothing to compare
            },
        )
    )
    assert one(snap, "c1").drift == [Drift.RUNTIME_MISMATCH]
    assert one(snap, "c1").runtime == "claude"
    assert one(snap, "c1").process is not None
    assert one(snap, "c2").drift == []
    assert one(snap, "c3").drift == []


def test_drift_flags_come_in_design_order_without_repeats() -> None:
    u = "mosaic-agent@coder1.service"
    r = roster(agent("coder1", unit=u, runtime="claude"))
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("coder1", pid=9, dead=True)),
            socket(FACTORY, pane("coder1", pid=8)),
            roster=r,
            systemd=systemd(unit(u, active="inactive", file_state="disabled")),
            processes={8: TreeSample(8, "codex", 0.0, 1, 1)},
        )
    )
    by_socket = {rec.socket: rec for rec in records(snap, "coder1")}
    assert by_socket[FLEET].drift == [
        Drift.DUPLICATE,
        Drift.PANE_DEAD,
        Drift.UNIT_INACTIVE,
        Drift.BOOT_DISABLED,
    ]
    assert by_socket[FACTORY].drift == [
        Drift.SOCKET_MISMATCH,
        Drift.DUPLICATE,
        Drift.UNIT_INACTIVE,
        Drift.BOOT_DISABLED,
        Drift.RUNTIME_MISMATCH,
    ]


# -- which sessions are agents -----------------------------------------------------------


def test_operator_shell_on_the_default_socket_is_not_an_agent() -> None:
    snap = build_snapshot(inputs(socket("default", pane("main", command="bash"))))
    rec = one(snap, "main")
    assert rec.is_agent is False
    assert rec.drift == []
    assert rec.in_roster is False


def test_operator_shell_is_not_an_agent_even_beside_a_roster() -> None:
    r = roster(agent("orchestrator", "orchestrator"))
    snap = build_snapshot(
        inputs(socket(FLEET, pane("orchestrator")), socket("default", pane("main")), roster=r)
    )
    rec = one(snap, "main")
    assert rec.is_agent is False
    assert Drift.NOT_IN_ROSTER not in rec.drift
    # agents are listed before non-agents (the `--all` extras)
    assert snap.agents[-1].name == "main"


@pytest.mark.parametrize("sock", [FLEET, FACTORY])
def test_every_session_on_a_fleet_socket_is_an_agent(sock: str) -> None:
    snap = build_snapshot(inputs(socket(sock, pane("anything"))))
    assert one(snap, "anything").is_agent is True


def test_session_with_the_mosaic_agent_option_is_an_agent_on_any_socket() -> None:
    snap = build_snapshot(
        inputs(socket("default", pane("helper", mosaic_agent="1"), pane("shell")))
    )
    assert one(snap, "helper").is_agent is True
    assert one(snap, "shell").is_agent is False


def test_every_session_on_a_roster_socket_is_an_agent() -> None:
    r = roster(
        agent("orchestrator", "orchestrator"),
        agent("solo", socket_name="solo-sock"),
        socket_name="team-a",
    )
    snap = build_snapshot(
        inputs(
            socket("team-a", pane("orchestrator"), pane("extra")),
            socket("solo-sock", pane("solo"), pane("solo-extra")),
            socket("other", pane("bystander")),
            roster=r,
        )
    )
    assert one(snap, "extra").is_agent and one(snap, "extra").drift == [Drift.NOT_IN_ROSTER]
    assert one(snap, "solo-extra").is_agent
    assert one(snap, "solo").in_roster and one(snap, "solo").drift == []
    assert one(snap, "bystander").is_agent is False


def test_roster_agent_on_the_default_socket_is_an_agent_but_its_neighbours_are_not() -> None:
    r = roster(agent("orchestrator", "orchestrator"), socket_name=None)
    snap = build_snapshot(
        inputs(socket("default", pane("orchestrator"), pane("my-shell")), roster=r)
    )
    orch = one(snap, "orchestrator")
    assert orch.is_agent and orch.in_roster and orch.drift == []
    assert orch.socket == "default"
    assert one(snap, "my-shell").is_agent is False


def test_prefix_colliding_names_do_not_match() -> None:
    r = roster(agent("coder0"))
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("coder0-0")),
            roster=r,
            heartbeats=beats(heartbeat("coder0-0")),
        )
    )
    roster_rec = one(snap, "coder0")
    assert roster_rec.drift == [Drift.MISSING_SESSION]
    assert roster_rec.health is Health.DOWN
    assert roster_rec.heartbeat is None
    stray = one(snap, "coder0-0")
    assert stray.in_roster is False
    assert stray.drift == [Drift.NOT_IN_ROSTER]
    assert stray.health is Health.HEALTHY


def test_prefix_colliding_names_do_not_match_the_other_way() -> None:
    r = roster(agent("coder0-0"))
    snap = build_snapshot(inputs(socket(FLEET, pane("coder0")), roster=r))
    assert one(snap, "coder0-0").drift == [Drift.MISSING_SESSION]
    assert one(snap, "coder0").drift == [Drift.NOT_IN_ROSTER]


# -- hung or denied sockets --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (SocketState.HUNG, "tmux did not answer within 2 s"),
        (SocketState.DENIED, "permission denied"),
        (SocketState.LIVE, "list-panes failed"),
    ],
)
def test_unreadable_socket_makes_its_roster_agents_unknown_never_down(
    state: SocketState, reason: str
) -> None:
    r = roster(agent("orchestrator", "orchestrator"), agent("coder1"))
    snap = build_snapshot(
        inputs(
            socket(FLEET, state=state, reason=reason),
            roster=r,
            heartbeats=beats(heartbeat("coder1", age_s=2)),
        )
    )
    for name in ("orchestrator", "coder1"):
        rec = one(snap, name)
        assert rec.health is Health.UNKNOWN
        assert Drift.MISSING_SESSION not in rec.drift
        assert FLEET in rec.health_reason and state.value in rec.health_reason
        assert rec.socket == FLEET
    assert any(FLEET in w and state.value in w for w in snap.warnings)
    assert snap.sockets[0].state is state


# -- tenant and host on every record (invariant 1) --------------------------------------------


def test_every_record_carries_the_roster_tenant_and_host() -> None:
    r = roster(agent("orchestrator", "orchestrator"), agent("gone"))
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("orchestrator"), pane("stray")),
            socket("default", pane("shell")),
            roster=r,
            tenant_id=r.tenant_id,
            host=r.host or "",
        )
    )
    assert len(snap.agents) == 4
    assert {(rec.tenant_id, rec.host) for rec in snap.agents} == {(TENANT, HOST)}
    assert (snap.tenant_id, snap.host) == (TENANT, HOST)


def test_without_roster_records_carry_the_login_and_hostname_given() -> None:
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("a1")),
            socket("default", pane("shell")),
            tenant_id="alice",
            host="vm",
        )
    )
    assert {(rec.tenant_id, rec.host) for rec in snap.agents} == {("alice", "vm")}
    data = json.loads(snap.to_json())
    assert data["host"] == "vm"
    assert all(a["tenant_id"] == "alice" and a["host"] == "vm" for a in data["agents"])


# -- the two-agent floor -------------------------------------------------------------------


def test_two_agent_floor_warnings_of_the_roster_loader_reach_the_snapshot(
    tmp_path: Path,
) -> None:
    text = "version: 1\ntenant_id: jarvis\nagents:\n  - name: coder1\n    role: coder\n"
    loaded = parse_roster(text, tmp_path / "roster.yaml")
    assert len(loaded.warnings) == 2
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("coder1")),
            roster=loaded.roster,
            roster_path=str(loaded.path),
            roster_warnings=loaded.warnings,
        )
    )
    floor = [w for w in snap.warnings if "two-agent floor" in w]
    assert len(floor) == 2
    assert any("no orchestrator" in w for w in floor)
    assert any("no enhancer" in w for w in floor)
    assert snap.roster_loaded is True and snap.roster_path == str(tmp_path / "roster.yaml")


# -- ps --json v1 -------------------------------------------------------------------------

AGENT_KEYS = {
    "tenant_id",
    "host",
    "name",
    "role",
    "alias",
    "runtime",
    "model",
    "lifecycle",
    "in_roster",
    "socket",
    "session",
    "tmux",
    "systemd",
    "process",
    "heartbeat",
    "health",
    "health_reason",
    "drift",
}
TMUX_KEYS = {
    "session_id",
    "pane_id",
    "pane_pid",
    "pane_dead",
    "current_command",
    "attached_clients",
    "activity_at",
    "idle_s",
}


def test_ps_json_v1_has_the_schema_and_the_fields_of_the_design_example() -> None:
    u = "mosaic-agent@coder0-0.service"
    r = roster(
        agent("orchestrator", "orchestrator", runtime="claude"),
        agent("coder0-0", runtime="codex", model="gpt-5.5", unit=u),
        agent("coder9"),
    )
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("coder0-0", pid=123), pane("orchestrator", pid=124)),
            roster=r,
            heartbeats=beats(heartbeat("coder0-0", age_s=4.1)),
            processes={123: TreeSample(130, "codex", 1.2, 1234, 2)},
            systemd=systemd(unit(u)),
        )
    )
    data = json.loads(snap.to_json())
    assert data["schema"] == "mosaic.fleet.ps/v1"
    assert data["generated_at"] == "2026-11-26T04:00:00.000Z"
    assert data["host"] == HOST
    assert data["heartbeat_timeout_s"] == 30
    assert isinstance(data["warnings"], list)
    assert data["sockets"] == [
        {
            "name": FLEET,
            "path": f"/tmp/tmux-0/{FLEET}",
            "state": "live",
            "sessions": 2,
            "reason": None,
            "listed_in_ms": 1.5,
        }
    ]
    for a in data["agents"]:
        assert AGENT_KEYS <= set(a), AGENT_KEYS - set(a)
    coder = next(a for a in data["agents"] if a["name"] == "coder0-0")
    assert coder["tenant_id"] == TENANT
    assert coder["role"] == "coder"
    assert coder["alias"] is None
    assert (coder["runtime"], coder["model"], coder["lifecycle"]) == (
        "codex",
        "gpt-5.5",
        "always-on",
    )
    assert coder["in_roster"] is True
    assert (coder["socket"], coder["session"]) == (FLEET, "coder0-0")
    assert TMUX_KEYS <= set(coder["tmux"])
    assert coder["tmux"]["pane_pid"] == 123 and coder["tmux"]["pane_dead"] is False
    assert coder["tmux"]["idle_s"] == 10.0
    assert coder["tmux"]["activity_at"].endswith("Z")
    assert {"unit", "active_state", "enabled", "linger"} <= set(coder["systemd"])
    assert coder["systemd"]["unit"] == u and coder["systemd"]["enabled"] is True
    assert {"pid", "runtime_detected", "cpu_percent", "rss_bytes"} <= set(coder["process"])
    assert coder["process"]["pid"] == 130 and coder["process"]["rss_bytes"] == 1234
    hb = coder["heartbeat"]
    assert {"ts", "age_s", "seq", "state", "detail"} <= set(hb)
    assert (hb["age_s"], hb["seq"], hb["state"], hb["detail"]) == (4.1, 17, "busy", "running tests")
    assert hb["ts"] == "2026-11-26T03:59:55.900Z"
    assert coder["health"] == "healthy"
    assert coder["health_reason"] == "heartbeat 4 s ago, timeout 30 s"
    assert coder["drift"] == []
    # unknowns are null, not absent
    gone = next(a for a in data["agents"] if a["name"] == "coder9")
    assert gone["tmux"] is None and gone["process"] is None and gone["heartbeat"] is None
    assert gone["systemd"] is None and gone["session"] is None
    assert gone["health"] == "down" and gone["drift"] == ["missing_session"]
    orch = next(a for a in data["agents"] if a["name"] == "orchestrator")
    assert orch["health"] == "unknown" and orch["heartbeat"] is None


# -- hostile text (invariant 5) -------------------------------------------------------------

OSC52 = "\x1b]52;c;ZXZpbA==\x07"
HOSTILE = [
    OSC52 + "clip",
    "\x1bc" + "reset",
    "\x1b[2J\x1b[Hcsi\x1b[6n",
    "c1\x9b31m\x9d0;title\x9c\x85",
    "bell\x07\x00nul\x7fdel",
    "[link=http://evil.example]click[/link]",
    "\x1b]8;;http://evil.example\x1b\\osc8\x1b]8;;\x1b\\",
    "\x1bP+q\x1b\\dcs",
]


def _strings(value: Any) -> list[str]:
    """Every string of a snapshot but the agents' true names (`name`, `session`): those stay
    exactly as tmux said, for scripts; the terminals sanitize them, and `ps --json` escapes."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        if "is_agent" in value:  # an agent record
            value = {k: v for k, v in value.items() if k not in ("name", "session")}
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _assert_terminal_safe(snap: FleetSnapshot) -> None:
    texts = _strings(json.loads(snap.to_json())) + _strings(snap.model_dump(mode="json"))
    bad = [t for t in texts if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in t)]
    assert bad == []
    # what `ps --json` prints holds no raw control character, names included
    printed = _snapshot_json(snap)
    assert [c for c in printed if c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F)] == []
    assert json.loads(printed)["agents"] == json.loads(snap.to_json())["agents"]


@pytest.mark.parametrize("evil", HOSTILE)
def test_hostile_session_title_command_and_detail_come_out_as_plain_text(evil: str) -> None:
    name = "ag" + evil
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane(name, title=evil, command=evil)),
            heartbeats=beats(heartbeat(name, detail=evil, runtime=evil, model=evil, echo=evil)),
        )
    )
    _assert_terminal_safe(snap)
    rec = snap.agents[0]
    assert rec.heartbeat is not None and rec.tmux is not None
    assert rec.name == rec.session == name  # the true name, for scripts (ps --json)
    assert clean_text(rec.name) == "ag" + clean_text(evil)  # what a terminal is shown


def test_hostile_session_outside_agents_and_markup_survive_only_as_plain_text() -> None:
    markup = "[link=http://evil.example]click[/link]"
    snap = build_snapshot(inputs(socket("default", pane(markup + "\x1b[31m", title=markup))))
    _assert_terminal_safe(snap)
    rec = snap.agents[0]
    assert rec.name == markup + "\x1b[31m"  # the true name (ps --json escapes it)
    assert clean_text(rec.name) == markup  # plain characters, never interpreted by renderers
    assert rec.tmux is not None and rec.tmux.pane_title == markup


def test_hostile_socket_names_and_reasons_are_cleaned() -> None:
    """A socket file name in the tmux folder and tmux's error text are untrusted too."""
    evil_sock = "sock" + OSC52
    r = roster(agent("orchestrator", "orchestrator"), agent("c1"))
    snap = build_snapshot(
        inputs(
            socket(FLEET, state=SocketState.HUNG, reason="hung\x1bc" + OSC52),
            socket(evil_sock, pane("helper", mosaic_agent="1")),
            roster=r,
        )
    )
    _assert_terminal_safe(snap)
    assert one(snap, "helper").socket is not None


def test_hostile_heartbeat_file_errors_are_cleaned(tmp_path: Path) -> None:
    """A heartbeat naming another (hostile) agent: its error reaches reasons and warnings."""
    spool = HeartbeatSpool(tmp_path)
    spool.ensure_writable()
    record = heartbeat("c1").model_dump(mode="json")
    record["agent"] = "x" + OSC52 + "\x1bc\x9b2J"
    spool.heartbeat_path("c1").write_text(json.dumps(record))
    read = spool.read_heartbeat("c1")
    assert read.heartbeat is None and read.error
    r = roster(agent("c1"))
    snap = build_snapshot(inputs(socket(FLEET, pane("c1")), roster=r, heartbeats={"c1": read}))
    _assert_terminal_safe(snap)
    rec = one(snap, "c1")
    assert rec.health is Health.UNKNOWN
    assert "names agent" in rec.health_reason


# -- state source, inferred state, token use and budgets ----------------------------------------


@pytest.mark.parametrize(
    ("via", "source"),
    [
        (None, StateSource.HEARTBEAT),
        ("hook:claude", StateSource.HOOK),
        ("keepalive:claude", StateSource.HOOK),
        ("hook:codex", StateSource.HOOK),
        ("wrapper", StateSource.HEARTBEAT),  # only the adapters' prefixes mean "hook"
    ],
)
def test_state_source_says_who_wrote_the_heartbeat(via: str | None, source: StateSource) -> None:
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("c1")),
            roster=roster(agent("c1")),
            heartbeats=beats(heartbeat("c1", via=via)),
        )
    )
    rec = one(snap, "c1")
    assert rec.state_source is source
    assert rec.inferred is None  # a heartbeat is never second-guessed from the pane
    assert json.loads(snap.to_json())["agents"][0]["state_source"] == source.value


BUSY_LOOKING = pane(
    "c1", title="⠙ Claude Code", command="claude", activity=int(NOW.timestamp()) - 1
)


def test_a_busy_looking_pane_without_heartbeat_is_inferred_busy_and_stays_unknown() -> None:
    """Invariant 3: a spinner, fresh output and 'esc to interrupt' are a guess, never health."""
    snap = build_snapshot(
        inputs(
            socket(FLEET, BUSY_LOOKING),
            roster=roster(agent("c1", runtime="claude")),
            captures={(FLEET, BUSY_LOOKING.pane_id): ["✻ Thinking… (3s · esc to interrupt)"]},
        )
    )
    rec = one(snap, "c1")
    assert rec.state_source is StateSource.INFERRED
    assert rec.inferred is not None and rec.inferred.state is AgentState.BUSY
    assert rec.health is Health.UNKNOWN and rec.heartbeat is None
    data = json.loads(snap.to_json())["agents"][0]
    assert data["health"] == "unknown"
    assert data["inferred"] == {"state": "busy", "reason": rec.inferred.reason}


def test_a_permission_prompt_without_heartbeat_is_inferred_waiting_input() -> None:
    p = pane("c1", command="claude", title="⠐ Claude Code")
    snap = build_snapshot(
        inputs(
            socket(FLEET, p),
            roster=roster(agent("c1", runtime="claude")),
            captures={(FLEET, p.pane_id): ["│ Do you want to proceed?", "│ ❯ 1. Yes", "│   2. No"]},
        )
    )
    rec = one(snap, "c1")
    assert rec.inferred is not None
    assert rec.inferred.state is AgentState.WAITING_INPUT
    assert "Do you want to proceed?" in rec.inferred.reason
    assert rec.health is Health.UNKNOWN


def test_an_unreadable_heartbeat_is_no_heartbeat_so_the_pane_is_inferred() -> None:
    snap = build_snapshot(
        inputs(
            socket(FLEET, BUSY_LOOKING),
            roster=roster(agent("c1")),
            heartbeats={"c1": SpoolRead(None, "heartbeats/c1.json: not valid JSON")},
        )
    )
    rec = one(snap, "c1")
    assert rec.state_source is StateSource.INFERRED and rec.health is Health.UNKNOWN


def test_no_inference_for_dead_panes_missing_sessions_or_operator_shells() -> None:
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("dead", dead=True)),
            socket("default", pane("shell", command="bash")),
            roster=roster(agent("dead"), agent("gone")),
        )
    )
    for name in ("dead", "gone", "shell"):
        rec = one(snap, name)
        assert rec.state_source is None and rec.inferred is None, name


def test_inference_targets_are_live_agent_panes_without_a_heartbeat() -> None:
    with_beat, without, dead = pane("a"), pane("b"), pane("c", dead=True)
    other_tenant = pane("d")
    shell = pane("shell", command="bash")
    marked = pane("marked", mosaic_agent="1")
    ins = inputs(
        socket(FLEET, with_beat, without, dead, other_tenant),
        socket("default", shell, marked),
        roster=roster(agent("a"), agent("b"), agent("c"), agent("d")),
        heartbeats=beats(heartbeat("a"), heartbeat("d", tenant_id="someone-else")),
    )
    assert set(inference_targets(ins)) == {
        (FLEET, without.pane_id),
        (FLEET, other_tenant.pane_id),  # another tenant's heartbeat is ignored: read the pane
        ("default", marked.pane_id),
    }


def test_inference_rules_are_given_to_the_join() -> None:
    rules, notices = compile_rules({"claude": {"prompt": ["Approve the plan\\?"]}})
    p = pane("c1", command="claude")
    ins = inputs(
        socket(FLEET, p),
        roster=roster(agent("c1", runtime="claude")),
        captures={(FLEET, p.pane_id): ["Approve the plan?"]},
    )
    assert one(build_snapshot(ins), "c1").inferred.state is AgentState.IDLE  # type: ignore[union-attr]
    ins.inference = rules
    assert notices == []
    assert one(build_snapshot(ins), "c1").inferred.state is AgentState.WAITING_INPUT  # type: ignore[union-attr]


def test_tokens_today_and_budget_brief_land_on_their_agents_by_name() -> None:
    brief = BudgetBrief(
        account="claude-max-a", window="weekly", used_percent=62, pace=1.3, status="ahead"
    )
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("c1"), pane("c2")),
            roster=roster(agent("c1"), agent("c2"), agent("c3")),
            tokens_today={"c1": 12_345, "nobody": 5},
            budgets={"c1": brief, "c3": brief},
        )
    )
    assert (one(snap, "c1").tokens_today, one(snap, "c1").budget) == (12_345, brief)
    assert (one(snap, "c2").tokens_today, one(snap, "c2").budget) == (None, None)
    assert one(snap, "c3").budget == brief  # down agents keep their account's budget
    data = {a["name"]: a for a in json.loads(snap.to_json())["agents"]}
    assert data["c1"]["tokens_today"] == 12_345
    assert data["c1"]["budget"]["status"] == "ahead" and data["c2"]["budget"] is None


def test_apply_usage_updates_only_the_agents_it_names() -> None:
    snap = build_snapshot(
        inputs(socket(FLEET, pane("c1"), pane("c2")), roster=roster(agent("c1"), agent("c2")))
    )
    after = apply_usage(snap, {"c1": 7}, {})
    assert one(after, "c1").tokens_today == 7 and one(after, "c2").tokens_today is None
    assert one(after, "c2") is one(snap, "c2")
    assert one(snap, "c1").tokens_today is None  # the snapshot given is not changed


def test_pane_cwd_is_reported_and_cleaned() -> None:
    snap = build_snapshot(
        inputs(
            socket(FLEET, pane("c1", cwd="/home/j/w/app é"), pane("c2", cwd="/w/\u202eevil\x9b2J")),
            roster=roster(agent("c1"), agent("c2")),
        )
    )
    assert one(snap, "c1").tmux.cwd == "/home/j/w/app é"  # type: ignore[union-attr]
    hostile = one(snap, "c2").tmux.cwd  # type: ignore[union-attr]
    assert hostile is not None and hostile.startswith("/w/evil")
    assert "\u202e" not in hostile and "\x9b" not in hostile


# -- how the table shows them (core/columns.py) --------------------------------------------------


def test_state_cell_marks_its_source_and_src_column_names_it() -> None:
    from fleet_tui.present.columns import COLUMNS_BY_KEY
    from fleet_tui.testing.fleets import fleet_snapshot

    snap = fleet_snapshot()
    state, src = COLUMNS_BY_KEY["state"], COLUMNS_BY_KEY["src"]
    cells = {a.name: (state.cell(a), src.cell(a)) for a in snap.agents}
    assert cells["enhancer"] == ("idle", "heartbeat")
    assert cells["orchestrator"] == ("busyʰ", "hook")
    assert cells["review"] == ("★ waiting_inputʰ", "hook")
    assert cells["coder0-2"] == ("~busy", "inferred")
    assert cells["planner"] == ("★ ~waiting_input", "inferred")
    assert cells["coder1-0"] == ("-", "-")
    # sorting by state puts everyone waiting for the operator first, inferred ones included
    ordered = sorted(snap.agents, key=state.sort_key)
    assert {a.name for a in ordered[:3]} == {"planner", "review", "scratch"}


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "-"),
        (0, "0"),
        (950, "950"),
        (12_345, "12.3k"),
        (312_400, "312k"),
        (1_234_567, "1.2M"),
        (987_654_321, "988M"),
        (3_400_000_000, "3.4B"),
        (999_999, "1.0M"),  # never "1000k"
    ],
)
def test_tokens_are_compact(n: int | None, text: str) -> None:
    from fleet_tui.present.columns import human_tokens

    assert human_tokens(n) == text


def test_budget_cell_and_its_sort_put_exhausted_and_ahead_first() -> None:
    from fleet_tui.present.columns import COLUMNS_BY_KEY, budget_cell

    def brief(used: float | None, status: str) -> BudgetBrief:
        return BudgetBrief(account="a", used_percent=used, status=status)

    assert budget_cell(None) == "-"
    assert budget_cell(brief(61.6, "ahead")) == "62% »"  # ▲ and ▼ are the sort arrows only
    assert budget_cell(brief(100, "exhausted")) == "100% ✖"
    assert budget_cell(brief(37.5, "on_pace")) == "38%"
    assert budget_cell(brief(None, "unknown")) == "?"
    snap = build_snapshot(
        inputs(
            socket(FLEET, *(pane(n) for n in ("a", "b", "c", "d"))),
            roster=roster(*(agent(n) for n in ("a", "b", "c", "d"))),
            budgets={
                "a": brief(20, "on_pace"),
                "b": brief(100, "exhausted"),
                "c": brief(70, "ahead"),
            },
        )
    )
    ordered = sorted(snap.agents, key=COLUMNS_BY_KEY["budget"].sort_key)
    assert [a.name for a in ordered] == ["b", "c", "a", "d"]


def test_80_columns_keep_idle_and_tokens_before_budget_and_drift() -> None:
    from fleet_tui.present.columns import COLUMNS, fit_columns, visible_columns
    from fleet_tui.testing.fleets import fleet_snapshot

    agents = [a for a in fleet_snapshot().agents if a.is_agent]
    cols = visible_columns(agents, COLUMNS)
    natural = {c.key: max([len(c.title), *(len(c.cell(a)) for a in agents)]) for c in cols}
    chosen, widths = fit_columns(cols, natural, 76)
    keys = [c.key for c in chosen]
    assert keys[:6] == ["agent", "health", "state", "hb", "idle", "tokens"]
    assert "src" not in keys and "drift" not in keys
    assert sum(widths[k] for k in keys) + 2 * (len(keys) - 1) <= 76
    wide, wide_widths = fit_columns(cols, natural, 200)
    assert {"src", "tokens", "budget", "drift", "asks"} <= {c.key for c in wide}
    # the flexible columns take the rest: the row is exactly as wide as the screen
    assert sum(wide_widths[c.key] for c in wide) + 2 * (len(wide) - 1) == 200
