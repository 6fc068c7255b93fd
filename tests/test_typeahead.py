"""Type-ahead: the keys typed right behind the key that opens a text box land in that box.

A terminal hands the dashboard what was typed in one read (`/rev` typed quickly, or pasted by
`tmux send-keys / r e v`). `burst` posts the keys the same way: all of them queued before the
first is handled (Pilot's `press` waits for the app to go idle between keys, which hides the bug).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from textual import events
from textual.widgets import Input, TextArea

from fleet_tui.config.paths import Located
from fleet_tui.config.settings import DashboardSettings
from fleet_tui.testing.fleets import NOW, FixedSource, RecordingActions, fleet_snapshot
from fleet_tui.ui.alerting import TerminalAlerts
from fleet_tui.ui.app import FleetApp
from fleet_tui.ui.dialogs import ComposeMessageScreen, ConfirmAttachScreen
from fleet_tui.ui.screens.stream import StreamScreen
from fleet_tui.ui.widgets import FleetTable

CHARS = {"slash": "/", "space": " ", "minus": "-", "question_mark": "?"}


def burst(app: FleetApp, *keys: str) -> None:
    """Queue `keys` to the app at once, as a terminal read of several keys does."""
    assert app._driver is not None
    for key in keys:
        char = CHARS.get(key, key if len(key) == 1 else None)
        event = events.Key(key, char)
        event.set_sender(app)
        app._driver.send_message(event)


def make_app(
    actions: RecordingActions | None = None, alerts: TerminalAlerts | None = None
) -> FleetApp:
    return FleetApp(
        FixedSource(fleet_snapshot()),
        settings=DashboardSettings(poll_interval_s=3600),
        clock=lambda: NOW + timedelta(seconds=1),
        watch=False,
        actions=actions or RecordingActions(),
        alerts=alerts,
    )


async def first_poll(pilot, app: FleetApp) -> None:  # type: ignore[no-untyped-def]
    for _ in range(100):
        await pilot.pause()
        if app.polls >= 1:
            return
    raise AssertionError("the first poll never arrived")


def shown_names(app: FleetApp) -> list[str]:
    return [r.name for r in app.fleet_screen.visible_records()]


async def settle(pilot) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        await pilot.pause(0.05)


async def test_filter_keeps_what_is_typed_right_behind_the_slash() -> None:
    app = make_app()
    async with app.run_test(size=(120, 35)) as pilot:
        await first_poll(pilot, app)
        burst(app, "slash", "r", "e", "v")
        await settle(pilot)
        assert app.fleet_screen.query_one("#filter", Input).value == "rev"
        # the rows it keeps: agent `review`, and `security` by its role security-review
        assert sorted(shown_names(app)) == ["review", "security"]
        table = app.fleet_screen.query_one(FleetTable)
        assert table.cursor_key in {a.key for a in app.fleet_screen.visible_records()}
        # bound keys typed behind `/` are text too: `q` does not quit, `G` does not jump
        burst(app, "escape")
        await settle(pilot)
        burst(app, "slash", "q", "G")
        await settle(pilot)
        assert app.is_running
        assert app.fleet_screen.query_one("#filter", Input).value == "qG"
        # and with the box closed, the keys are the screen's again
        burst(app, "escape")
        await settle(pilot)
        burst(app, "question_mark")
        await settle(pilot)
        assert app.fleet_screen.query_one("#filter", Input).value == ""
        assert type(app.screen).__name__ == "HelpScreen"


async def test_attach_confirmation_takes_the_name_typed_right_behind_a() -> None:
    actions = RecordingActions()
    app = make_app(actions)
    async with app.run_test(size=(120, 35)) as pilot:
        await first_poll(pilot, app)
        app.fleet_screen.query_one(FleetTable).move_cursor_to(
            next(a.key for a in app.snapshot.agents if a.name == "review")  # type: ignore[union-attr]
        )
        # a wrong name, typed at once (with a `q` in it): kept in the box, nothing quits
        burst(app, "a", "q", "u", "x")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmAttachScreen)
        assert app.screen.query_one(Input).value == "qux"
        burst(app, "escape")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmAttachScreen)
        # the right name and enter, all in one read: confirmed (the fixture refuses the
        # hand-over itself, which is recorded)
        burst(app, "a", "r", "e", "v", "i", "e", "w", "enter")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmAttachScreen)
        assert ("attach", "review", "") in actions.calls


async def test_composer_takes_the_text_typed_right_behind_m_also_from_the_inbox(
    tmp_path: Path,
) -> None:
    # the built-in `needs-you` rule: the fixed fleet's waiting agents are in the inbox
    alerts, _ = TerminalAlerts.load(Located(tmp_path / "alerts.yaml", False), tmp_path / "st")
    app = make_app(alerts=alerts)
    async with app.run_test(size=(120, 35)) as pilot:
        await first_poll(pilot, app)
        burst(app, "m", "h", "i", "space", "q", "enter", "x")
        await settle(pilot)
        assert isinstance(app.screen, ComposeMessageScreen)
        assert app.screen.query_one(TextArea).text == "hi q\nx"
        burst(app, "escape")
        await settle(pilot)
        # the inbox's `m` (it answers the agent in view): opened and typed into at once
        burst(app, "i", "m", "o", "k")
        await settle(pilot)
        assert isinstance(app.screen, ComposeMessageScreen)
        assert app.screen.query_one(TextArea).text == "ok"


async def test_the_inbox_shows_its_episodes_from_its_mount_not_from_its_first_resize(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inbox draws its episodes as it mounts: an `m` typed right behind `i` answers the
    first one. (It drew them only at its first resize; on a busy machine the `m` came first and
    said "nothing is selected (the inbox is empty)". Here no resize draws them at all.)"""
    from fleet_tui.ui.screens.inbox import InboxScreen

    monkeypatch.setattr(InboxScreen, "on_resize", lambda self, event: None)
    alerts, _ = TerminalAlerts.load(Located(tmp_path / "alerts.yaml", False), tmp_path / "st")
    app = make_app(alerts=alerts)
    async with app.run_test(size=(120, 35)) as pilot:
        await first_poll(pilot, app)
        burst(app, "i", "m", "o", "k")
        await settle(pilot)
        assert isinstance(app.screen, ComposeMessageScreen)
        assert app.screen.query_one(TextArea).text == "ok"


async def test_stream_search_takes_what_is_typed_right_behind_the_slash() -> None:
    app = make_app()
    async with app.run_test(size=(120, 35)) as pilot:
        await first_poll(pilot, app)
        burst(app, "s")
        await settle(pilot)
        assert isinstance(app.screen, StreamScreen)
        # `b` would open the budgets, `q` leave the stream: typed behind `/`, they are text
        burst(app, "slash", "b", "q", "x")
        await settle(pilot)
        assert isinstance(app.screen, StreamScreen)
        assert app.screen.query_one("#stream-search", Input).value == "bqx"
