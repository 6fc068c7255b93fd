"""The dashboard on the LIVE sources: real tmux servers on private sockets, real stub agents,
real heartbeat files watched with watchfiles."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime

import pytest
from conftest import FleetEnv

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.config.settings import DashboardSettings
from fleet_tui.model.records import Health, SocketState
from fleet_tui.service.collector import FleetCollector
from fleet_tui.service.poll import LiveSource
from fleet_tui.ui.app import FleetApp
from fleet_tui.ui.widgets import FleetTable

pytestmark = pytest.mark.tmux

ROSTER = [
    {"name": "orchestrator", "role": "orchestrator"},
    {"name": "enhancer", "role": "enhancer"},
]


def live_app(poll_interval_s: float = 3600) -> FleetApp:
    return FleetApp(
        LiveSource(FleetConfig.from_flags(), systemd_interval_s=30),
        settings=DashboardSettings(poll_interval_s=poll_interval_s),
    )


async def wait_for(pilot, predicate, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        await pilot.pause(0.05)
    raise AssertionError(f"{what} not seen within {timeout} s")


def row_text(app: FleetApp, name: str) -> str:
    t = app.fleet_screen.query_one(FleetTable)
    for y in range(1, t.size.height):
        line = t.render_line(y).text
        if line.startswith(name + " "):
            return line
    return ""


async def test_new_heartbeat_shows_within_a_second_without_a_full_poll(fleet_env: FleetEnv) -> None:
    fleet_env.write_roster(ROSTER, timeout_s=30)
    fleet_env.start("mosaic-fleet", "orchestrator", ["sleep", "300"])
    fleet_env.start("mosaic-fleet", "enhancer", ["sleep", "300"])
    app = live_app()  # the timer would poll only after an hour: only the spool watch can help
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: app.polls >= 1, 10, "the first poll")
        await pilot.pause(0.5)  # let the watcher start
        assert "unknown" in row_text(app, "orchestrator")
        rc = fleet_env.cli(
            "heartbeat", "orchestrator", "--state", "waiting_input", "--detail", "approve?"
        )
        assert rc.rc == 0, rc.stderr
        # The timer polls once an hour here: the row changes only because the new heartbeat
        # file triggered a poll (about 0.3 s quiet; the bound leaves room for a loaded machine).
        await wait_for(
            pilot,
            lambda: "★ waiting_input" in row_text(app, "orchestrator"),
            15,
            "the new heartbeat",
        )
        assert "healthy" in row_text(app, "orchestrator")


async def test_a_hung_server_degrades_one_socket_and_the_rest_keeps_updating(
    fleet_env: FleetEnv,
) -> None:
    fleet_env.write_roster(ROSTER, timeout_s=30)
    fleet_env.start("mosaic-fleet", "orchestrator", ["sleep", "300"])
    fleet_env.start("lab", "enhancer", ["sleep", "300"])  # the roster wants it on mosaic-fleet
    hung = fleet_env.server_pid("lab")
    app = live_app()
    app.source.collector.runner.timeout = 1.0  # type: ignore[attr-defined]
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: app.polls >= 1, 10, "the first poll")
        os.kill(hung, signal.SIGSTOP)
        try:
            app.request_poll()

            def states() -> dict[str, SocketState]:
                return {s.name: s.state for s in app.snapshot.sockets} if app.snapshot else {}

            await wait_for(pilot, lambda: states().get("lab") is SocketState.HUNG, 10, "lab hung")
            assert states()["mosaic-fleet"] is SocketState.LIVE
            header = str(app.fleet_screen.query_one("#header").render())
            assert "lab hung" in header
            # the agent on the live socket is still shown; nothing claims the fleet is gone
            assert "orchestrator" in row_text(app, "orchestrator")
        finally:
            os.kill(hung, signal.SIGCONT)


def test_a_roster_that_turns_bad_keeps_the_last_good_one_in_the_dashboard(
    fleet_env: FleetEnv,
) -> None:
    path = fleet_env.write_roster(ROSTER)
    collector = FleetCollector(FleetConfig.from_flags(), keep_last_good=True)
    first = collector.collect()
    assert {a.name for a in first.agents if a.in_roster} == {"orchestrator", "enhancer"}
    path.write_text("version: 1\ntenant_id: acme\nagents:\n  - name: a.b\n    role: coder\n")
    second = collector.collect()
    assert {a.name for a in second.agents if a.in_roster} == {"orchestrator", "enhancer"}
    assert any("showing the last good roster" in w for w in second.warnings)
    roster_status = next(s for s in second.sources if s.name == "roster")
    assert roster_status.ok is False and "agents[0].name" in (roster_status.detail or "")


def test_heartbeats_only_refresh_reuses_tmux_and_reads_new_heartbeats(fleet_env: FleetEnv) -> None:
    fleet_env.write_roster(ROSTER)
    fleet_env.start("mosaic-fleet", "orchestrator", ["sleep", "300"])
    collector = FleetCollector(FleetConfig.from_flags())
    first = collector.collect()
    assert next(a for a in first.agents if a.name == "orchestrator").health is Health.UNKNOWN
    fleet_env.start("mosaic-fleet", "enhancer", ["sleep", "300"])  # tmux changes...
    assert fleet_env.cli("heartbeat", "orchestrator", "--state", "busy").rc == 0
    quick = collector.collect(heartbeats_only=True)
    orch = next(a for a in quick.agents if a.name == "orchestrator")
    assert orch.health is Health.HEALTHY and orch.heartbeat is not None
    # ...but a heartbeat-only refresh did not list tmux again: enhancer still has no session
    assert next(a for a in quick.agents if a.name == "enhancer").session is None
    full = collector.collect()
    assert next(a for a in full.agents if a.name == "enhancer").session == "enhancer"


async def test_polling_pauses_while_another_program_holds_the_terminal(fleet_env: FleetEnv) -> None:
    fleet_env.write_roster(ROSTER)
    app = live_app(poll_interval_s=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.polls >= 2, 10, "regular polls")
        app.app_suspend_signal.publish(app)
        await pilot.pause(0.3)  # a poll that was running may still land
        paused_at = app.polls
        await pilot.pause(1.0)
        assert app.polls == paused_at, "polled while the terminal was handed over"
        app.app_resume_signal.publish(app)
        await wait_for(pilot, lambda: app.polls > paused_at, 5, "polls after resume")
        assert app.snapshot is not None
        assert app.snapshot.generated_at <= datetime.now(UTC)
