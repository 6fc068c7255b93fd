"""The dashboard's start (`u`), restart (`r`) and stop (`x`) on a real private tmux fleet.

The agents are roster agents whose `command` runs the stub runtime (`fleet-tui stub`), started
and stopped by the dashboard through control.lifecycle, as `up`/`stop`/`restart` do. What the
operator notices is asserted: the confirmation dialog, the toasts, the sessions tmux has, the
audit log (surface `tui`), and keys handled while a stop waits its grace period.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from conftest import FleetEnv
from test_typeahead import burst
from textual.widgets import Input

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.config.settings import DashboardSettings
from fleet_tui.control.actions import LiveActions
from fleet_tui.model.records import Drift
from fleet_tui.service.poll import LiveSource
from fleet_tui.testing.fleets import NOW, FixedSource, RecordingActions, fleet_snapshot
from fleet_tui.ui.app import FleetApp
from fleet_tui.ui.dialogs import ConfirmLifecycleScreen
from fleet_tui.ui.lifecycle import HOST_ONLY, NOT_STARTABLE, refusal
from fleet_tui.ui.screens import AgentDetailScreen, HelpScreen

pytestmark = pytest.mark.tmux

SOCK = "mosaic-fleet"


def stub_agent(name: str, **kw: Any) -> dict[str, Any]:
    argv = [sys.executable, "-m", "fleet_tui", "stub", name, "--interval", "0.5"]
    return {"name": name, "role": "coder", "command": shlex.join(argv), **kw}


def live_app() -> FleetApp:
    config = FleetConfig.from_flags()
    source = LiveSource(config, systemd_interval_s=30)
    return FleetApp(
        source,
        settings=DashboardSettings(poll_interval_s=3600),
        actions=LiveActions(source.runner, config.state_dir, config),
        watch=False,
    )


async def wait_for(pilot, predicate: Callable[[], object], what: str, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"{what} not seen within {timeout} s")


async def polled(pilot, app: FleetApp) -> None:  # type: ignore[no-untyped-def]
    """A fresh poll has landed (asked for now)."""
    n = app.polls
    app.request_poll()
    await wait_for(pilot, lambda: app.polls > n, "a poll")


async def on_agent(pilot, app: FleetApp, name: str) -> None:  # type: ignore[no-untyped-def]
    await polled(pilot, app)
    assert app.snapshot is not None
    key = next(a.key for a in app.snapshot.agents if a.name == name)
    app.go_to_agent(key)
    await pilot.pause()


def toasts(app: FleetApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


def has_session(env: FleetEnv, name: str) -> bool:
    try:
        env.tmux(SOCK, "has-session", "-t", f"={name}")
    except Exception:
        return False
    return True


def audits(env: FleetEnv, action: str) -> list[tuple[str, str, str]]:
    return [
        (a["agent"], a["outcome"], a.get("surface", ""))
        for a in env.audit_lines()
        if a["action"] == action
    ]


async def confirm(pilot, app: FleetApp, key: str, name: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmLifecycleScreen), "the dialog")
    await pilot.press(*name, "enter")


async def test_start_a_missing_agent_after_typing_its_name(fleet_env: FleetEnv) -> None:
    env = fleet_env
    env.write_roster([stub_agent("coder-1")])
    app = live_app()
    async with app.run_test(size=(120, 35)) as pilot:
        await on_agent(pilot, app, "coder-1")
        # esc: nothing started (and the decline is audited)
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmLifecycleScreen), "dialog")
        dialog = app.screen
        text = " ".join(str(s.render()) for s in dialog.query("Static"))
        assert "Start: run this agent's roster command" in text
        assert "coder-1" in text and "socket mosaic-fleet" in text and "host h1" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmLifecycleScreen), "esc")
        await wait_for(pilot, lambda: ("coder-1", "declined", "tui") in audits(env, "start"), "au")
        # a wrong name: said in the dialog, nothing started
        await confirm(pilot, app, "u", "coder-2")
        await pilot.pause(0.3)
        assert isinstance(app.screen, ConfirmLifecycleScreen)
        error = str(app.screen.query_one("#confirm-error").render())
        assert "not the agent's name: nothing started" in error
        assert not has_session(env, "coder-1")
        # the name: started in a worker; the toast says so; the table follows
        await pilot.press(*"coder-1", "enter")
        await wait_for(pilot, lambda: any("coder-1 started" in t for t in toasts(app)), "toast")
        assert has_session(env, "coder-1")
        env.wait_heartbeat("coder-1")
        await wait_for(
            pilot,
            lambda: (
                app.snapshot is not None
                and any(a.name == "coder-1" and a.tmux is not None for a in app.snapshot.agents)
            ),
            "the row with its session",
        )
        assert ("coder-1", "started", "tui") in audits(env, "start")
        assert ("coder-1", "running", "tui") in audits(env, "start")
        # start on a live agent: said in one line, no dialog
        await pilot.press("u")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmLifecycleScreen)
        assert "start coder-1: already running" in toasts(app)


async def test_stop_and_restart_from_the_table_and_the_detail(fleet_env: FleetEnv) -> None:
    env = fleet_env
    env.write_roster([stub_agent("coder-1")])
    assert env.cli("up").rc == 0
    env.wait_heartbeat("coder-1")
    first = env.pane_pid(SOCK, "coder-1")
    app = live_app()
    async with app.run_test(size=(120, 35)) as pilot:
        await on_agent(pilot, app, "coder-1")
        # restart from the detail screen
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentDetailScreen), "detail")
        await confirm(pilot, app, "r", "coder-1")
        await wait_for(pilot, lambda: any("coder-1 restarted" in t for t in toasts(app)), "toast")
        # a new session (the server may have ended with the last one: pane ids start again)
        assert has_session(env, "coder-1") and env.pane_pid(SOCK, "coder-1") != first
        assert ("coder-1", "running", "tui") in audits(env, "restart")
        # stop from the fleet table: the session is gone, the stop remembered
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.fleet_screen, "back on the fleet")
        await on_agent(pilot, app, "coder-1")
        await confirm(pilot, app, "x", "coder-1")
        await wait_for(pilot, lambda: any("coder-1 stopped" in t for t in toasts(app)), "toast")
        assert not has_session(env, "coder-1")
        assert ("coder-1", "stopped", "tui") in audits(env, "stop")
        stopped = json.loads((env.state_dir / "lifecycle" / "stopped.json").read_text())
        assert stopped["agents"]["coder-1"]["surface"] == "tui"
        # the row says `stopped` (not missing), and the detail says what starts it again
        await polled(pilot, app)
        assert app.snapshot is not None
        row = next(a for a in app.snapshot.agents if a.name == "coder-1")
        assert Drift.STOPPED in row.drift and Drift.MISSING_SESSION not in row.drift
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentDetailScreen), "detail")
        summary = str(app.screen.query_one("#summary").render())
        assert "an operator stopped it on purpose" in summary
        assert "u (start) here or 'fleet-tui up coder-1' starts it again" in summary


async def test_rows_where_a_verb_does_not_apply_say_why(fleet_env: FleetEnv) -> None:
    env = fleet_env
    env.write_roster([{"name": "board", "role": "board"}, stub_agent("coder-1")])
    env.start(SOCK, "scratch", ["sleep", "300"])  # an agent session the roster does not list
    app = live_app()
    async with app.run_test(size=(120, 35)) as pilot:
        await on_agent(pilot, app, "board")
        for key in ("u", "r", "x"):
            await pilot.press(key)
            await pilot.pause(0.1)
            assert not isinstance(app.screen, ConfirmLifecycleScreen)
        said = toasts(app)
        for verb in ("start", "restart", "stop"):
            assert f"{verb} board: not startable: no command in the roster" in said
        await on_agent(pilot, app, "scratch")
        await pilot.press("x")
        await pilot.pause(0.1)
        assert "stop scratch: not startable: no command in the roster" in toasts(app)
        assert has_session(env, "scratch")
        assert audits(env, "stop") == [] and audits(env, "start") == []


async def test_keys_are_handled_while_a_stop_waits_its_grace(fleet_env: FleetEnv) -> None:
    env = fleet_env
    # a runtime that ignores C-c: the stop waits the whole grace period, then kills the session
    stubborn = "trap '' INT; exec sleep 300"
    env.write_roster([{"name": "stubborn", "role": "coder", "command": stubborn}])
    assert env.cli("up").rc == 0
    app = live_app()
    app.lifecycle_grace_s = 6.0
    async with app.run_test(size=(120, 35)) as pilot:
        await on_agent(pilot, app, "stubborn")
        await confirm(pilot, app, "x", "stubborn")
        await wait_for(pilot, lambda: "stopping stubborn…" in toasts(app), "the stop began")
        # meanwhile: a second stop is refused in one line, and other keys work
        await pilot.press("x")
        await wait_for(pilot, lambda: "stop stubborn: already stopping stubborn" in toasts(app), "")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "help", timeout=5)
        # handled while the stop still waits its grace period (no clock: the stop's own state)
        assert app.lifecycle.running.get("stubborn") == "stop"
        assert not any("stubborn stopped" in t for t in toasts(app))
        assert has_session(env, "stubborn")
        await pilot.press("escape")
        await wait_for(pilot, lambda: any("stubborn stopped" in t for t in toasts(app)), "done")
        assert not has_session(env, "stubborn")
        line = next(t for t in toasts(app) if "stubborn stopped" in t)
        assert "grace period" in line


async def test_a_start_that_fails_says_why_on_screen(fleet_env: FleetEnv) -> None:
    env = fleet_env
    env.write_roster([stub_agent("coder-1", cwd="/nonexistent/x")])
    app = live_app()
    async with app.run_test(size=(120, 35)) as pilot:
        await on_agent(pilot, app, "coder-1")
        await confirm(pilot, app, "u", "coder-1")
        await wait_for(pilot, lambda: any("coder-1: error:" in t for t in toasts(app)), "toast")
        line = next(t for t in toasts(app) if "coder-1: error:" in t)
        assert "cwd /nonexistent/x does not exist" in line
        assert not has_session(env, "coder-1")
        assert ("coder-1", "failed", "tui") in audits(env, "start")


def test_another_hosts_row_and_a_session_outside_the_roster_are_refused() -> None:
    snap = fleet_snapshot()
    by_name = {a.name: a for a in snap.agents}
    remote = by_name["coder1-0"].model_copy(update={"remote": True})
    assert refusal("start", remote, None, snap) == (
        f"{HOST_ONLY}: map host {remote.host} under hosts: in fleet-tui.yaml"
    )
    assert refusal("stop", by_name["scratch"], None, snap) == NOT_STARTABLE  # not in the roster
    assert refusal("start", by_name["review"], None, snap) == "already running"
    assert refusal("start", by_name["coder1-0"], None, snap) is None  # missing: startable
    assert refusal("start", by_name["security"], None, snap) is None  # a dead pane: startable
    assert refusal("restart", by_name["review"], None, snap) is None


async def test_the_name_typed_right_behind_the_key_lands_in_the_dialog() -> None:
    app = FleetApp(
        FixedSource(fleet_snapshot()),
        actions=RecordingActions(),
        settings=DashboardSettings(poll_interval_s=3600),
        clock=lambda: NOW + timedelta(seconds=1),
        watch=False,
        lifecycle_config=FleetConfig.from_flags(),
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.polls >= 1, "the first poll")
        assert app.snapshot is not None
        app.go_to_agent(next(a.key for a in app.snapshot.agents if a.name == "coder1-0"))
        await pilot.pause()
        burst(app, "u", "c", "o", "q")  # one terminal read: `q` is text here, not quit
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmLifecycleScreen), "dialog")
        await pilot.pause(0.2)
        assert app.screen.query_one(Input).value == "coq"
        await pilot.press("escape")


def test_the_detail_explains_a_held_agent_and_what_releases_it() -> None:
    from fleet_tui.ui.screens.detail import summary_text

    record = next(a for a in fleet_snapshot().agents if a.name == "coder1-0")
    held = record.model_copy(update={"drift": [Drift.HELD]})
    text = summary_text(held).plain
    assert "⚑ held: supervise gave up on it" in text
    assert "u (start) or r (restart) here, or 'fleet-tui up coder1-0', releases it" in text
