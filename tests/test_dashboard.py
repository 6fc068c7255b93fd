"""Pilot tests of the dashboard on deterministic fleets: navigation, filter, sort, detail,
help, palette, degraded states, and the cursor staying on its agent across updates."""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest
from rich.console import Console
from textual.widgets import Input, Sparkline, Static

from fleet_tui.config.settings import DashboardSettings
from fleet_tui.errors import TmuxNotInstalled
from fleet_tui.model.records import FleetSnapshot
from fleet_tui.testing.fleets import NOW, FixedSource, big_snapshot, empty_snapshot, fleet_snapshot
from fleet_tui.ui.app import FleetApp
from fleet_tui.ui.screens import AgentDetailScreen, HelpScreen
from fleet_tui.ui.widgets import FleetTable

SETTINGS = DashboardSettings(poll_interval_s=3600)


def make_app(source: FixedSource, **kw: object) -> FleetApp:
    return FleetApp(
        source,
        settings=kw.pop("settings", SETTINGS),
        clock=lambda: NOW + timedelta(seconds=1),
        watch=False,
        **kw,
    )  # type: ignore[arg-type]


async def first_poll(pilot, app: FleetApp) -> None:  # type: ignore[no-untyped-def]
    for _ in range(100):
        await pilot.pause()
        if app.polls >= 1 or app.poll_error:
            return
    raise AssertionError("the first poll never arrived")


def table(app: FleetApp) -> FleetTable:
    return app.fleet_screen.query_one(FleetTable)


def screen_text(app: FleetApp) -> str:
    """What the table shows, line by line, as the terminal would (plain text)."""
    t = table(app)
    return "\n".join(t.render_line(y).text for y in range(t.size.height))


async def test_table_lists_agents_with_health_words() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(160, 48)) as pilot:
        await first_poll(pilot, app)
        text = screen_text(app)
        assert "orchestrator (Mos)" in text
        for word in ("healthy", "stale", "unresponsive", "unknown", "down"):
            assert word in text
        assert "★ waiting_input" in text
        # the operator's own shell on the default socket is not an agent
        assert "ops-shell" not in text


async def test_80x24_drops_columns_but_keeps_agent_and_health() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(80, 24)) as pilot:
        await first_poll(pilot, app)
        lines = screen_text(app).splitlines()
        assert lines[0].startswith("AGENT")
        assert "HEALTH" in lines[0] and "MEM" not in lines[0]
        assert all(len(line) <= 80 for line in lines)


async def test_navigation_and_detail_then_back() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        t = table(app)
        # most urgent first: the agents waiting for the operator, then the sick ones
        assert t.cursor_key is not None and t.cursor_key.endswith("/planner")
        await pilot.press("down", "down", "down", "down")
        assert t.cursor_key.endswith("/coder0-0")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, AgentDetailScreen)
        summary = str(app.screen.query_one("#summary", Static).render())
        assert "coder0-0" in summary and "stale" in summary and "45 s" in summary
        await pilot.pause()
        output = str(app.screen.query_one("#output", Static).render())
        assert "142 passed" in output
        await pilot.press("escape")
        assert app.screen is app.fleet_screen
        assert t.cursor_key.endswith("/coder0-0")


async def test_detail_explains_drift_in_words() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        key = next(a.key for a in app.snapshot.agents if a.name == "security")  # type: ignore[union-attr]
        app.open_detail(key)
        await pilot.pause()
        summary = str(app.screen.query_one("#summary", Static).render())
        assert "pane_dead" in summary and "process has exited" in summary


async def test_filter_inverts_with_bang_and_escape_clears() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        t = table(app)
        total = t.row_count
        await pilot.press("slash")
        await pilot.press(*"coder")
        assert all("/coder" in k for k in t.keys) and t.row_count == 4
        box = app.fleet_screen.query_one("#filter", Input)
        box.value = "!coder"
        await pilot.pause()
        assert t.row_count == total - 4 and not any("/coder" in k for k in t.keys)
        box.value = "health:down"
        await pilot.pause()
        assert {k.rsplit("/", 1)[1] for k in t.keys} == {"research", "security", "coder1-0"}
        await pilot.press("escape")
        assert t.row_count == total


async def test_waiting_for_you_filter() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        await pilot.press("asterisk")
        names = {k.rsplit("/", 1)[1] for k in table(app).keys}
        assert names == {"review", "scratch", "planner"}
        header = str(app.fleet_screen.query_one("#header", Static).render())
        # at 120 columns the first line is shortened to keep every health count whole
        assert "★ 3 waiting" in header and "○ 3" in header


async def test_sort_by_health_puts_worst_first_and_keeps_cursor() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(160, 48)) as pilot:
        await first_poll(pilot, app)
        t = table(app)
        await pilot.press("down")
        before = t.cursor_key
        await pilot.press("H")
        assert t.keys[0].rsplit("/", 1)[1] in {"research", "security", "coder1-0"}
        assert t.cursor_key == before
        assert "HEALTH▲" in t.render_line(0).text  # ascending severity: the worst first
        await pilot.press("H")
        assert "HEALTH▼" in t.render_line(0).text
        assert t.keys[-1].rsplit("/", 1)[1] in {"research", "security", "coder1-0"}


async def test_cursor_stays_on_agent_across_updates_and_only_changed_rows_repaint() -> None:
    snaps = [big_snapshot(300, seed=1), big_snapshot(300, seed=1, now=NOW + timedelta(seconds=2))]
    source = FixedSource(lambda: snaps[min(source.polls - 1, 1)])
    app = make_app(source)
    async with app.run_test(size=(160, 48)) as pilot:
        await first_poll(pilot, app)
        t = table(app)
        await pilot.press("H")  # sort by health
        for _ in range(7):
            await pilot.press("down")
        chosen = t.cursor_key
        row_before = t.cursor_row
        scroll_before = t.scroll_offset.y
        app.request_poll()
        for _ in range(50):
            await pilot.pause()
            if app.polls >= 2:
                break
        assert app.polls == 2
        assert t.cursor_key == chosen
        assert t.scroll_offset.y == scroll_before
        assert t.cursor_row is not None and row_before is not None


async def test_update_repaints_only_changed_rows() -> None:
    base = big_snapshot(300, seed=3)
    changed_names = {f"agent{i:03d}" for i in range(0, 300, 10)}  # 10 % of the fleet
    agents = [
        a.model_copy(update={"health_reason": a.health_reason + " (changed)"})
        if a.name in changed_names
        else a
        for a in base.agents
    ]
    updated = base.model_copy(update={"agents": agents})
    app = make_app(FixedSource(base))
    async with app.run_test(size=(160, 48)) as pilot:
        await first_poll(pilot, app)
        await pilot.pause()
        t = table(app)
        rendered = t.rows_rendered
        app.apply_snapshot(updated)
        await pilot.pause()
        await pilot.pause()
        repainted = t.rows_rendered - rendered
        visible_changed = sum(
            1 for k in t.keys[: t.size.height - 1] if k.rsplit("/", 1)[1] in changed_names
        )
        assert 0 < repainted <= visible_changed + 1


async def test_help_lists_binding_ids_and_keymap_remaps() -> None:
    settings = DashboardSettings(poll_interval_s=3600, keymap={"fleet.filter": "f"})
    app = make_app(FixedSource(fleet_snapshot()), settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        await pilot.press("f")  # remapped filter key
        assert app.fleet_screen.query_one("#filter", Input).has_focus
        await pilot.press("escape")
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = app.binding_rows()
        assert ("f", "Filter", "fleet.filter") in rows
        assert ("?", "Help", "app.help") in rows
        await pilot.press("escape")
        assert app.screen is app.fleet_screen


async def test_palette_goes_to_agent_by_name() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        await pilot.press("slash", *"orch")  # a filter that hides the target
        await pilot.press("enter")
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"go to agent review")
        for _ in range(20):
            await pilot.pause(0.05)
        await pilot.press("enter")
        await pilot.pause()
        t = table(app)
        assert t.cursor_key is not None and t.cursor_key.endswith("/review")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (FixedSource(empty_snapshot()), ["No agents found", "roster.yaml", "fleet-tui demo"]),
        (
            FixedSource(TmuxNotInstalled("tmux is not installed (no 'tmux' on PATH)")),
            ["could not be read", "tmux is not installed", "apt-get install tmux"],
        ),
    ],
)
async def test_empty_and_failing_fleets_are_explained(
    source: FixedSource, expected: list[str]
) -> None:
    app = make_app(source)
    async with app.run_test(size=(100, 30)) as pilot:
        await first_poll(pilot, app)
        empty = app.fleet_screen.query_one("#empty", Static)
        assert empty.display
        text = str(empty.render())
        for e in expected:
            assert e in text


async def test_failing_poll_keeps_last_data_and_says_so() -> None:
    good = fleet_snapshot()
    calls = {"n": 0}

    def flaky():  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 1:
            raise TmuxNotInstalled("tmux is not installed (no 'tmux' on PATH)")
        return good

    app = make_app(FixedSource(flaky))
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        rows = table(app).row_count
        app.request_poll()
        for _ in range(50):
            await pilot.pause()
            if app.poll_error:
                break
        assert app.poll_error and "tmux is not installed" in app.poll_error
        assert table(app).row_count == rows  # the last good data stays
        header = str(app.fleet_screen.query_one("#header", Static).render())
        assert "⚠" in header and "tmux is not installed" in header


async def test_hostile_agent_text_never_reaches_widgets_as_escapes() -> None:
    snap = fleet_snapshot()
    evil = "\x1b]52;c;ZXZpbA==\x07\x1b]0;pwned\x07[link=http://evil.example]click[/link]\x9b2J\x1bc"
    agents = [
        a.model_copy(update={"health_reason": evil}) if a.name == "orchestrator" else a
        for a in snap.agents
    ]
    app = make_app(FixedSource(snap.model_copy(update={"agents": agents})))
    async with app.run_test(size=(200, 40)) as pilot:
        await first_poll(pilot, app)
        text = screen_text(app)
        assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text
        # markup stays literal text: no link style is produced
        line = table(app).render_line(1)
        assert all(seg.style is None or seg.style.link is None for seg in line)


async def test_detail_heartbeat_history_chart_grows() -> None:
    snaps = [fleet_snapshot(), fleet_snapshot()]
    source = FixedSource(lambda: snaps[0])
    app = make_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        app.request_poll()
        for _ in range(50):
            await pilot.pause()
            if app.polls >= 2:
                break
        key = next(a.key for a in app.snapshot.agents if a.name == "enhancer")  # type: ignore[union-attr]
        app.open_detail(key)
        await pilot.pause()
        assert list(app.screen.query_one(Sparkline).data or []) == [12.0, 12.0]


async def test_warnings_show_in_header_and_list() -> None:
    app = make_app(FixedSource(fleet_snapshot(hung=True, roster=False)))
    async with app.run_test(size=(160, 40)) as pilot:
        await first_poll(pilot, app)
        header = str(app.fleet_screen.query_one("#header", Static).render())
        assert "⚠" in header and "more: W" in header
        assert "tmux 1 s degraded" in header  # the hung socket marks the tmux source
        await pilot.press("W")
        await pilot.pause()
        body = " ".join(str(w.render()) for w in app.screen.query(Static))
        assert "socket 'lab' hung" in body and "no roster found" in body
        await pilot.press("escape")
        assert app.screen is app.fleet_screen


def names(app: FleetApp) -> list[str]:
    return [k.rsplit("/", 1)[1] for k in table(app).keys]


async def test_numeric_sorts_put_the_biggest_first_and_dashes_last_both_ways() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(160, 48)) as pilot:
        await first_poll(pilot, app)
        await pilot.press("K")  # tokens today: the heaviest spender first, as in top
        assert names(app)[:3] == ["orchestrator", "coder0-0", "planner"]
        assert set(names(app)[-4:]) == {"coder0-2", "coder1-0", "research", "security"}
        await pilot.press("K")  # reversed: the lightest first, still no dashes on top
        assert names(app)[:2] == ["scratch", "review"]
        assert set(names(app)[-4:]) == {"coder0-2", "coder1-0", "research", "security"}
        await pilot.press("C")  # CPU: the busiest process first
        assert names(app)[0] == "coder0-0"
        assert set(names(app)[-2:]) == {"coder1-0", "research"}
        await pilot.press("B")  # heartbeat age: the oldest first, no-heartbeat rows last
        assert names(app)[0] == "coder0-1"
        assert names(app)[4] == "orchestrator"
        await pilot.press("P")  # budget: ahead of pace first, agents without one last
        assert "sort: BUDGET ▲" in str(app.fleet_screen.query_one("#header", Static).render())
        assert names(app)[-1] in {"coder0-2", "coder1-0", "research", "security"}
        await pilot.press("P")
        assert names(app)[-1] in {"coder0-2", "coder1-0", "research", "security"}


async def test_filter_by_state_source_and_inferred_state() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(160, 48)) as pilot:
        await first_poll(pilot, app)
        await pilot.press("slash", *"src:inferred")
        assert sorted(names(app)) == ["coder0-2", "planner"]
        await pilot.press("escape", "slash", *"state:~")
        assert sorted(names(app)) == ["coder0-2", "planner"]
        await pilot.press("escape", "slash", *"state:busy")
        assert sorted(names(app)) == ["coder0-0", "coder0-1", "coder0-2", "orchestrator"]
        await pilot.press("escape", "slash", *"hook")
        assert sorted(names(app)) == ["orchestrator", "review", "scratch"]


async def test_wide_table_fills_the_width_and_keeps_a_narrow_column_that_fits() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(170, 48)) as pilot:
        await first_poll(pilot, app)
        head = table(app).render_line(0).text
        assert "TOKENS" in head and "BUDGET" in head and "ASKS" in head
        # SOCKET (12) does not fit; CPU, less important but narrower, takes the room
        assert "SOCKET" not in head and "CPU" in head
        # ASKS, the flexible column, runs to the right edge
        assert len(head) == table(app).size.width and head.rstrip().endswith("ASKS")


async def test_header_keeps_two_lines_after_a_resize() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(160, 48)) as pilot:
        await first_poll(pilot, app)
        header = app.fleet_screen.query_one("#header", Static)
        lines = header.size.height
        for size in ((80, 24), (100, 30), (160, 48)):
            await pilot.resize_terminal(*size)
            for _ in range(5):
                await pilot.pause()
            assert header.size.height == lines, size
            assert table(app).region.y == header.region.bottom


async def test_detail_of_a_down_agent_says_there_is_nothing_to_collect_or_show() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        key = next(a.key for a in app.snapshot.agents if a.name == "research")  # type: ignore[union-attr]
        app.open_detail(key)
        for _ in range(5):
            await pilot.pause()
        title = str(app.screen.query_one("#chart-title", Static).render())
        assert "no heartbeat" in title and "collecting" not in title
        output = str(app.screen.query_one("#output", Static).render())
        assert "no tmux session" in output


async def test_header_at_80_columns_keeps_every_health_count() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(80, 24)) as pilot:
        await first_poll(pilot, app)
        first = str(app.fleet_screen.query_one("#header", Static).render()).splitlines()[0]
        assert "…" not in first
        for part in ("★ 3 waiting", "● 4", "◐ 1", "✖ 1", "? 2", "○ 3"):
            assert part in first, part
        # all agents are shown: no "(N shown)" just because a non-agent session exists
        assert "shown" not in first


async def test_stream_search_tells_no_match_from_no_more_matches() -> None:
    from fleet_tui.testing.fleets import RecordingActions
    from fleet_tui.ui.screens.stream import StreamScreen

    app = make_app(FixedSource(fleet_snapshot()), actions=RecordingActions())
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        await pilot.press("s")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, StreamScreen)
        await pilot.press("tab")  # log mode
        screen._append(["● write migration 0007", "  ⎿ Bash(pytest -q) ⎿ 25 passed"])
        await pilot.press("slash", *"nothing-like-this", "enter")
        title = str(screen.query_one("#stream-title", Static).render())
        assert "no match for 'nothing-like-this'" in title
        await pilot.press("escape", "slash")
        screen.query_one("#stream-search", Input).value = ""
        await pilot.press(*"write", "enter")  # its only match is the top line, on screen
        title = str(screen.query_one("#stream-title", Static).render())
        assert "no more matches for 'write'" in title


async def test_state_of_a_silent_agent_is_dimmed_and_dated() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(160, 48)) as pilot:
        await first_poll(pilot, app)
        t = table(app)

        def state_style(name: str):  # type: ignore[no-untyped-def]
            y = 1 + next(i for i, k in enumerate(t.keys) if k.endswith("/" + name))
            seg = next(s for s in t.render_line(y) if s.text.strip().startswith("busy"))
            return seg.style

        # coder0-1 is unresponsive, its "busy" is 5 minutes old; coder0-0's is stale;
        # orchestrator (hook) and enhancer are healthy
        assert state_style("coder0-1") != state_style("orchestrator")
        assert state_style("coder0-1") == state_style("coder0-0")
        key = next(k for k in t.keys if k.endswith("/coder0-1"))
        app.open_detail(key)
        await pilot.pause()
        summary = str(app.screen.query_one("#summary", Static).render())
        assert "as of 5 m ago, may be out of date" in summary
        await pilot.press("escape")
        key = next(k for k in t.keys if k.endswith("/enhancer"))
        app.open_detail(key)
        await pilot.pause()
        assert "out of date" not in str(app.screen.query_one("#summary", Static).render())


@pytest.mark.parametrize("via_stream", [False, True])
async def test_palette_opens_another_detail_from_a_detail_without_crashing(
    via_stream: bool,
) -> None:
    from fleet_tui.testing.fleets import RecordingActions

    app = make_app(FixedSource(fleet_snapshot()), actions=RecordingActions())
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        await pilot.press("enter")  # orchestrator
        if via_stream:
            await pilot.press("s")
        await pilot.press("ctrl+p", *"Open detail of review")
        for _ in range(10):
            await pilot.pause()
        await pilot.press("enter")
        for _ in range(10):
            await pilot.pause()
        assert isinstance(app.screen, AgentDetailScreen)
        assert sum(isinstance(s, AgentDetailScreen) for s in app.screen_stack) == 1
        summary = str(app.screen.query_one("#summary", Static).render())
        assert summary.startswith("review")
        await pilot.press("escape")
        assert app.screen is app.fleet_screen


async def test_footer_shows_the_palette_key_once() -> None:
    from textual.widgets._footer import FooterKey

    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(160, 48)) as pilot:
        await first_poll(pilot, app)
        keys = [k for k in app.screen.query(FooterKey) if k.description == "Palette"]
        assert len(keys) == 1
        assert any(row[2] == "app.palette" for row in app.binding_rows())  # still in `?`


async def test_a_heartbeat_dated_in_the_future_never_shows_a_negative_age() -> None:
    """A host whose clock runs ahead (or a bad heartbeat) dated 1123 days from now: the table and
    the detail say it is dated ahead, never "-1123 d ago"."""
    snap = fleet_snapshot()
    ahead = -1123 * 86400.0
    agents = [
        a.model_copy(update={"heartbeat": a.heartbeat.model_copy(update={"age_s": ahead})})
        if a.name == "enhancer" and a.heartbeat is not None
        else a
        for a in snap.agents
    ]
    app = make_app(FixedSource(snap.model_copy(update={"agents": agents})))
    async with app.run_test(size=(160, 48)) as pilot:
        await first_poll(pilot, app)
        await first_poll(pilot, app)
        row = next(line for line in screen_text(app).splitlines() if line.startswith("enhancer"))
        assert "-1123" not in row and "ahead" in row
        app.open_detail(next(k for k in table(app).keys if k.endswith("/enhancer")))
        await pilot.pause()
        await pilot.pause()
        console = Console(width=150, file=io.StringIO(), record=True)
        console.print(app.screen.query_one("#facts", Static).content)
        facts = console.export_text()
        summary = str(app.screen.query_one("#summary", Static).render())
        assert "-1123" not in facts + summary
        assert "in the future" in facts


@pytest.mark.parametrize("page", ["pageup", "pagedown"])
async def test_a_page_key_right_after_opening_the_palette_does_not_crash(page: str) -> None:
    """Textual's option list pages by its laid-out lines: `pageup` typed right after `ctrl+p`
    (before the palette's list was laid out) raised KeyError and the dashboard
    died (found by tests/test_monkey.py)."""
    from textual import events
    from textual.command import CommandPalette

    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        assert app._driver is not None
        for key in ("ctrl+p", page):  # as the driver delivers them; no wait for a repaint
            app._driver.send_message(events.Key(key, None))
            await pilot.pause(0)
        for _ in range(5):
            await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press("down", page, "escape", "escape")  # the list, then the palette
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)


@pytest.mark.parametrize("keys", [("enter", "escape"), ("down", "enter", "enter", "escape")])
async def test_keys_typed_right_behind_the_one_that_closed_the_palette_leave_the_fleet_alone(
    keys: tuple[str, ...],
) -> None:
    """Textual's palette dismisses by popping the TOP screen: an `esc` (or a second `enter`)
    queued behind the `enter` that closed it popped the fleet screen itself, and the command
    then ran on a screen without a table (NoMatches; found by tests/test_monkey.py)."""
    from textual import events

    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        assert app._driver is not None
        for key in ("ctrl+p", *keys):  # as the driver delivers them; no wait for a repaint
            app._driver.send_message(events.Key(key, None))
            await pilot.pause(0)
        for _ in range(5):
            await pilot.pause()
        assert app.fleet_screen in app.screen_stack
        await pilot.press("escape", "escape")
        assert app.screen is app.fleet_screen
        assert table(app).row_count > 0


@pytest.mark.parametrize("fails", [False, True])
async def test_on_started_runs_once_when_the_first_poll_is_on_screen(fails: bool) -> None:
    """The start's end (the CLI turns garbage collection back on there): once, after the first
    poll's result is drawn, whether the poll gave a fleet or an error; not at later polls."""
    source = FixedSource(TmuxNotInstalled("tmux is not installed") if fails else fleet_snapshot())
    seen: list[str] = []
    app = make_app(source, on_started=lambda: seen.append(screen_text(app)))
    async with app.run_test(size=(160, 48)) as pilot:
        await first_poll(pilot, app)
        for _ in range(20):
            await pilot.pause()
            if seen:
                break
        assert len(seen) == 1
        if not fails:
            assert "orchestrator (Mos)" in seen[0]  # the fleet was on the table by then
        app.request_poll()
        for _ in range(5):
            await pilot.pause()
        assert len(seen) == 1


async def test_a_poll_asked_for_while_the_first_is_drawn_runs_right_after_its_frame() -> None:
    """The spool watcher asks for a poll as it starts, most often while the first poll runs.
    That poll is not lost, keeps its kind (heartbeats only), and starts once the first poll is
    on the screen rather than beside its drawing (it would take the GIL from the first frame)."""
    seen: list[str] = []
    polls: list[tuple[bool, bool]] = []  # (heartbeats_only, the first frame was drawn)
    app: FleetApp

    class Source(FixedSource):
        def poll(self, *, heartbeats_only: bool = False) -> FleetSnapshot:
            polls.append((heartbeats_only, bool(seen)))
            if len(polls) == 1:  # as the watcher does, while the first poll runs
                app.call_from_thread(app.request_poll, heartbeats_only=True)
            return super().poll(heartbeats_only=heartbeats_only)

    app = make_app(Source(fleet_snapshot()), on_started=lambda: seen.append(screen_text(app)))
    async with app.run_test(size=(160, 48)) as pilot:
        for _ in range(100):
            await pilot.pause()
            if app.polls >= 2:
                break
        assert polls == [(False, False), (True, True)]
        assert "orchestrator (Mos)" in seen[0]  # the first frame showed the fleet


async def test_quitting_runs_on_exit_while_a_poll_still_waits() -> None:
    """`on_exit` runs as the app shuts down, while its poll thread still waits (the first
    poll on its forked child: on_exit stops the child, which lets the poll go); not after the
    interpreter has waited for that thread."""
    release = threading.Event()
    calls: list[bool] = []

    class Waiting(FixedSource):
        def poll(self, *, heartbeats_only: bool = False) -> FleetSnapshot:
            release.wait(30)
            return super().poll(heartbeats_only=heartbeats_only)

    def on_exit() -> None:
        calls.append(release.is_set())  # the poll was still waiting
        release.set()

    app = make_app(Waiting(fleet_snapshot()), on_exit=on_exit)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        assert app.polls == 0
        await pilot.press("q")
    assert calls == [False]


async def test_on_started_runs_once_even_when_no_poll_ever_lands() -> None:
    """A first poll that never lands (polling off here; a hang in life) still ends the start,
    after `started_latest_s`: the CLI's garbage collection is never left off."""
    seen: list[int] = []
    app = make_app(FixedSource(fleet_snapshot()), poll=False, on_started=lambda: seen.append(1))
    app.started_latest_s = 0.2
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(50):
            await pilot.pause(0.05)
            if seen:
                break
        assert seen == [1]
        assert app.polls == 0
        await pilot.pause(0.3)
        assert seen == [1]
