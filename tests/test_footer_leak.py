"""Memory (issue 16): moving around the dashboard must not keep what it no longer shows.

Textual keeps a watcher registered on another node until the watched value changes (#6666): the
stock Footer kept every FooterKey it ever showed (8 to 10 per focus change), the message dialog's
TextArea stayed alive after the dialog closed. The real app, as a user drives it: focus between
the table and the filter, open and leave detail, budgets, help, the inbox and the message dialog;
the number of live FooterKeys and TextAreas stays what is on screen."""

from __future__ import annotations

import gc
from datetime import timedelta

import pytest
from textual.widgets import TextArea
from textual.widgets._footer import FooterKey

from fleet_tui.config.settings import DashboardSettings
from fleet_tui.testing.fleets import NOW, FixedSource, RecordingActions, fleet_snapshot
from fleet_tui.ui.app import FleetApp
from fleet_tui.ui.dialogs import ComposeMessageScreen

SIZE = (100, 30)


def alive(kind: type) -> int:
    gc.collect()
    return sum(isinstance(o, kind) for o in gc.get_objects())


def make_app() -> FleetApp:
    return FleetApp(
        FixedSource(fleet_snapshot()),
        actions=RecordingActions(),
        settings=DashboardSettings(poll_interval_s=3600),
        clock=lambda: NOW + timedelta(seconds=1),
        watch=False,
    )


async def settle(pilot, rounds: int = 3) -> None:  # type: ignore[no-untyped-def]
    for _ in range(rounds):
        await pilot.pause()


async def test_focus_changes_do_not_keep_old_footer_keys() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(100):
            await pilot.pause()
            if app.polls:
                break
        screen = app.fleet_screen
        table, box = screen.query_one("#table"), screen.query_one("#filter")
        app.set_focus(box)
        await settle(pilot)
        app.set_focus(table)
        await settle(pilot)
        before = alive(FooterKey)
        for i in range(12):
            app.set_focus(box if i % 2 == 0 else table)
            await pilot.pause()
        await settle(pilot)
        shown = len(screen.query(FooterKey))
        assert shown >= 5  # the footer still shows its keys
        # stock Footer: about 110 more (each focus change kept the previous footer's keys)
        assert alive(FooterKey) <= max(before, shown) + 10


@pytest.mark.slow(seconds=20)  # 10-25 s of Textual work: started first on a worker (conftest)
async def test_screen_switches_and_dialogs_do_not_keep_what_they_showed() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(100):
            await pilot.pause()
            if app.polls:
                break

        async def round_trip(key: str) -> None:
            await pilot.press(key)
            await settle(pilot)
            assert app.screen is not app.fleet_screen, key
            await pilot.press("escape")
            await settle(pilot, 5)
            assert app.screen is app.fleet_screen, (key, app.screen)

        keys = ["enter", "b", "question_mark", "i", "m"]
        for key in keys:  # warm-up: every screen once
            await round_trip(key)
        before = alive(FooterKey), alive(TextArea), alive(ComposeMessageScreen)
        for key in keys:
            await round_trip(key)
        # The last dialog's widgets go a few frames after it closes (later on a loaded
        # machine): counted once they had the time to go. What leaks never goes.
        for _ in range(50):
            after = alive(FooterKey), alive(TextArea), alive(ComposeMessageScreen)
            if after[0] <= before[0] + 20 and after[1] <= before[1] and after[2] <= before[2]:
                break
            await pilot.pause(0.02)
        # stock Footer: ~16 FooterKeys more per round trip (~80 here); TextArea: one per dialog
        assert after[0] <= before[0] + 20, (before, after)
        assert after[1] <= before[1], (before, after)
        assert after[2] <= before[2], (before, after)
