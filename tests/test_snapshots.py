"""Snapshot tests (pytest-textual-snapshot) of each screen on deterministic fleets, at 80x24 and
160x48, including degraded states. Update with `pytest tests/test_snapshots.py --snapshot-update`
after checking the new pictures (snapshot_report.html)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.config.paths import Located
from fleet_tui.config.settings import DashboardSettings
from fleet_tui.errors import TmuxNotInstalled
from fleet_tui.testing.alerts import inbox_snapshot, write_inbox_state
from fleet_tui.testing.fleets import (
    NOW,
    FixedSource,
    RecordingActions,
    empty_snapshot,
    fleet_snapshot,
)
from fleet_tui.ui.alerting import TerminalAlerts
from fleet_tui.ui.app import FleetApp

SIZES = [(80, 24), (160, 48)]


def app_for(source: FixedSource) -> FleetApp:
    return FleetApp(
        source,
        actions=RecordingActions(),
        settings=DashboardSettings(poll_interval_s=3600),
        clock=lambda: NOW + timedelta(seconds=1),
        watch=False,
    )


async def _ready(pilot) -> None:  # type: ignore[no-untyped-def]
    app = pilot.app
    for _ in range(100):
        await pilot.pause()
        if app.polls or app.poll_error:
            break
    await pilot.pause()


def _then(*keys: str) -> Callable[..., object]:
    async def run(pilot) -> None:  # type: ignore[no-untyped-def]
        await _ready(pilot)
        if keys:
            await pilot.press(*keys)
        for _ in range(5):
            await pilot.pause()
        app = pilot.app
        # the stream's follower runs until the screen closes: wait for its first capture only
        for _ in range(100):
            if getattr(app.screen, "captures", 1) >= 1:
                break
            await pilot.pause(0.02)
        others = [w for w in app.workers if w.group != "stream"]
        if others:  # (an empty list would mean "all workers")
            await app.workers.wait_for_complete(others)
        await pilot.pause()

    return run


CASES = {
    "fleet": (lambda: FixedSource(fleet_snapshot()), ()),
    "fleet_no_roster": (lambda: FixedSource(fleet_snapshot(roster=False)), ()),
    "fleet_hung_socket_no_systemd": (
        lambda: FixedSource(fleet_snapshot(hung=True, systemd=False)),
        (),
    ),
    "fleet_no_heartbeats": (lambda: FixedSource(fleet_snapshot(heartbeats=False)), ()),
    "fleet_waiting_filter": (lambda: FixedSource(fleet_snapshot()), ("asterisk",)),
    # coder0-0 (stale): the fifth row, under the three waiting agents and the unresponsive one
    "detail": (lambda: FixedSource(fleet_snapshot()), (*["down"] * 4, "enter")),
    # planner: no heartbeat, a Claude permission prompt on screen -> inferred waiting_input;
    # waiting, it is the first row
    "detail_inferred": (lambda: FixedSource(fleet_snapshot()), ("enter",)),
    "help": (lambda: FixedSource(fleet_snapshot()), ("question_mark",)),
    "stream": (lambda: FixedSource(fleet_snapshot()), ("s",)),
    "attach_confirm": (lambda: FixedSource(fleet_snapshot()), ("a",)),
    "compose": (lambda: FixedSource(fleet_snapshot()), ("m", *"please", "space", *"rebase")),
    "audit": (lambda: FixedSource(fleet_snapshot()), ("L",)),
    "empty_fleet": (lambda: FixedSource(empty_snapshot()), ()),
    "no_tmux": (
        lambda: FixedSource(
            TmuxNotInstalled(
                "tmux is not installed (no 'tmux' on PATH); install it, e.g. 'apt-get install tmux'"
            )
        ),
        (),
    ),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("case", list(CASES))
def test_screen(snap_compare, case: str, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    make_source, keys = CASES[case]
    assert snap_compare(app_for(make_source()), terminal_size=size, run_before=_then(*keys))


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The inbox shows silences in this machine's time: UTC here, whatever the machine's."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_inbox(snap_compare, tmp_path: Path, utc: None, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    """`i`: two open episodes, oldest first; planner's silenced (dimmed, "silenced until")."""
    write_inbox_state(tmp_path / "state")
    alerts, _ = TerminalAlerts.load(Located(tmp_path / "alerts.yaml", False), tmp_path / "state")
    app = app_for(FixedSource(inbox_snapshot()))
    app.alerts = alerts
    assert snap_compare(app, terminal_size=size, run_before=_then("i"))


# (dialog, agent, key): start on a missing agent, stop on a running one (ui.lifecycle)
LIFECYCLE_DIALOGS = {"start_confirm": ("coder1-0", "u"), "stop_confirm": ("review", "x")}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("case", list(LIFECYCLE_DIALOGS))
def test_lifecycle_dialog(snap_compare, case: str, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    """The typed-name confirmations of start and stop, the agent's first letters typed."""
    name, key = LIFECYCLE_DIALOGS[case]
    app = app_for(FixedSource(fleet_snapshot()))
    app.lifecycle_config = FleetConfig.from_flags()  # (the dialogs open only on a fleet)

    async def run(pilot) -> None:  # type: ignore[no-untyped-def]
        await _ready(pilot)
        assert app.snapshot is not None
        app.go_to_agent(next(a.key for a in app.snapshot.agents if a.name == name))
        await _then(key, *name[:3])(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run)
