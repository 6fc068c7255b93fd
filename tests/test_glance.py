"""Issue 14, "the glance": what an operator who leaves the dashboard open all day notices on the
fleet table. Pilot tests on the deterministic fleet (testing.fleets), snapshots of the new looks.

The fleet: planner (inferred waiting_input), review (waiting_input from a hook), scratch (blocked)
wait for the operator; coder0-1 is unresponsive, coder0-0 stale, coder1-0 and security down while
always on; research is down but ephemeral (done, not sick)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from textual.widgets import Input

from fleet_tui.config.settings import DashboardSettings
from fleet_tui.model.records import AgentRecord, AgentState, FleetSnapshot, Health
from fleet_tui.present.columns import COLUMNS_BY_KEY, question, urgency_order
from fleet_tui.present.text import render_table
from fleet_tui.present.view import FleetView, filter_problem
from fleet_tui.testing.fleets import NOW, FixedSource, RecordingActions, fleet_snapshot
from fleet_tui.ui.app import FleetApp
from fleet_tui.ui.dialogs import ComposeMessageScreen
from fleet_tui.ui.title import title_text
from fleet_tui.ui.viewfile import SavedSort, load_sort
from fleet_tui.ui.widgets import FleetHeader, FleetTable

URGENT = ["planner", "review", "scratch", "coder0-1", "coder0-0", "coder1-0", "security"]
REST = ["orchestrator", "enhancer", "coder0-2", "research"]


def make_app(
    source: FixedSource, *, glyphs: str = "unicode", view_file: Path | None = None
) -> FleetApp:
    return FleetApp(
        source,
        actions=RecordingActions(),
        settings=DashboardSettings(poll_interval_s=3600, glyphs=glyphs),  # type: ignore[arg-type]
        clock=lambda: NOW + timedelta(seconds=1),
        watch=False,
        view_file=view_file,
    )


async def ready(pilot) -> None:  # type: ignore[no-untyped-def]
    app = pilot.app
    for _ in range(100):
        await pilot.pause()
        if app.polls or app.poll_error:
            break
    await pilot.pause()


def table(app: FleetApp) -> FleetTable:
    return app.fleet_screen.query_one(FleetTable)


def names(app: FleetApp) -> list[str]:
    return [k.rsplit("/", 1)[1] for k in table(app).keys]


def header(app: FleetApp) -> str:
    return table(app).render_line(0).text


def cursor_name(app: FleetApp) -> str:
    key = table(app).cursor_key
    assert key is not None
    return key.rsplit("/", 1)[1]


def with_agent(snap: FleetSnapshot, name: str, change: Callable[[AgentRecord], AgentRecord]):  # type: ignore[no-untyped-def]
    return snap.model_copy(
        update={"agents": [change(a) if a.name == name else a for a in snap.agents]}
    )


def waiting(a: AgentRecord, detail: str) -> AgentRecord:
    assert a.heartbeat is not None
    beat = a.heartbeat.model_copy(update={"state": AgentState.WAITING_INPUT, "detail": detail})
    return a.model_copy(update={"heartbeat": beat})


# -- 1. urgency first -----------------------------------------------------------------------------


async def test_the_default_order_puts_who_needs_a_human_on_top() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        # waiting (in the fleet's own order), unresponsive, stale, down-but-always-on, the rest
        assert names(app) == URGENT + REST
        assert cursor_name(app) == "planner"
        # no sort arrow: no column claims the order
        assert "▲" not in header(app) and "▼" not in header(app)


def test_ps_uses_the_same_order_as_the_dashboard() -> None:
    snap = fleet_snapshot()
    agents = [a for a in snap.agents if a.is_agent]
    out = render_table(snap, agents, width=None, color=False)
    rows = [line.split()[0] for line in out.splitlines()[1:]]
    assert rows == URGENT + REST
    assert [a.name for a in urgency_order(agents)] == rows


async def test_the_chosen_sort_is_remembered_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "state" / "dashboard.json"
    app = make_app(FixedSource(fleet_snapshot()), view_file=path)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        await pilot.press("B", "B")  # heartbeat age, reversed: the youngest first
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "HB▲" in header(app)
    assert load_sort(path) == SavedSort("hb", True)
    again = make_app(FixedSource(fleet_snapshot()), view_file=path)
    async with again.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        await again.workers.wait_for_complete()
        await pilot.pause()
        assert "HB▲" in header(again)
        assert names(again)[0] == "scratch"  # the freshest heartbeat (2 s)


@pytest.mark.parametrize(
    "content",
    ["", "{not json", '{"version": 1, "sort": {"key": "nope"}}', "[1, 2]", '{"version": 9}'],
)
async def test_a_missing_or_broken_sort_file_means_the_default_order(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "dashboard.json"
    if content:
        path.write_text(content)
    app = make_app(FixedSource(fleet_snapshot()), view_file=path)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert names(app) == URGENT + REST


# -- 2. the question on the table -------------------------------------------------------------------


async def test_the_question_shows_in_an_asks_column_when_there_is_room() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(200, 48)) as pilot:
        await ready(pilot)
        assert "ASKS" in header(app)
        t = table(app)
        rows = {names(app)[i]: t.render_line(i + 1).text for i in range(t.row_count)}
        assert "permission: run migrations?" in rows["review"]  # the hook's detail
        assert "Do you want to proceed?" in rows["planner"]  # the prompt read off the pane
        assert "rate limit until 12:00" in rows["scratch"]
        assert "running tests" not in rows["orchestrator"]  # a busy agent asks nothing


async def test_the_composer_shows_what_the_agent_asks_on_top_sanitized() -> None:
    hostile = "run \x1b]2;pwned\x07migrations\x1b[31m? [y/n]"
    snap = with_agent(fleet_snapshot(), "review", lambda a: waiting(a, hostile))
    app = make_app(FixedSource(snap))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("down")  # review
        assert cursor_name(app) == "review"
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, ComposeMessageScreen)
        shown = str(app.screen.query_one("#compose-question").render())
        assert shown.startswith("★ It asks: ")
        assert "migrations" in shown and "\x1b" not in shown and "\x07" not in shown
        await pilot.press("escape")
        app.go_to_agent(next(a.key for a in snap.agents if a.name == "orchestrator"))
        await pilot.press("m")  # orchestrator waits for nothing: no question line
        await pilot.pause()
        assert not app.screen.query("#compose-question")


def test_question_is_the_detail_or_the_inferred_prompt_and_only_when_waiting() -> None:
    by_name = {a.name: a for a in fleet_snapshot().agents}
    assert question(by_name["review"]) == "permission: run migrations?"
    assert question(by_name["planner"]) == "Do you want to proceed?"
    assert question(by_name["orchestrator"]) is None  # busy, with a detail: asks nothing


# -- 3. jump keys ------------------------------------------------------------------------------------


async def test_jump_to_the_next_waiting_and_unhealthy_agent_and_back_wrapping() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        await pilot.press("end")  # research, the last row
        await pilot.press("right_square_bracket")
        assert cursor_name(app) == "planner"  # wrapped to the top
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert cursor_name(app) == "scratch"
        await pilot.press("left_square_bracket")
        assert cursor_name(app) == "review"
        await pilot.press("right_curly_bracket")
        assert cursor_name(app) == "coder0-1"
        await pilot.press(*["right_curly_bracket"] * 3)
        assert cursor_name(app) == "security"
        await pilot.press("right_curly_bracket")  # research is down but ephemeral: skipped
        assert cursor_name(app) == "coder0-1"
        await pilot.press("left_curly_bracket")
        assert cursor_name(app) == "security"
        assert len(names(app)) == 11  # nothing was filtered


async def test_a_jump_with_nobody_to_jump_to_says_so() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        await pilot.press("slash", *"orchestrator", "enter")
        await pilot.press("right_square_bracket")
        notes = [n.message for n in app._notifications]
        assert any(
            "No agent is waiting for you in view (3 hidden by the filter)" in n for n in notes
        )
        assert cursor_name(app) == "orchestrator"


def test_jump_keys_have_keymap_ids_and_clash_with_nothing() -> None:
    from fleet_tui.ui.screens import FleetScreen

    ids = {b.id: b.key for b in FleetScreen.BINDINGS if b.id}
    assert ids["fleet.next_waiting"] == "right_square_bracket"
    assert ids["fleet.previous_waiting"] == "left_square_bracket"
    assert ids["fleet.next_unhealthy"] == "right_curly_bracket"
    assert ids["fleet.previous_unhealthy"] == "left_curly_bracket"
    # one binding listed twice under its id is no clash: the fleet screen's footer hint for `i`
    # is the app's `app.inbox`, shown there only while the inbox has something
    bound = {
        (k, b.id or id(b))
        for b in (*FleetApp.BINDINGS, *FleetScreen.BINDINGS, *FleetTable.BINDINGS)
        for k in b.key.split(",")
    }
    keys = [k for k, _ in bound]
    assert len(keys) == len(set(keys))


# -- 4. colours and glyphs that mean one thing ------------------------------------------------------


async def test_needs_you_has_its_own_colour_and_the_sort_arrows_are_the_usual_ones() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        t = table(app)
        attention = t.get_component_rich_style("fleet-table--attention", partial=True).color
        stale = t.get_component_rich_style("fleet-table--stale", partial=True).color
        ahead = t.get_component_rich_style("fleet-table--budget-ahead", partial=True).color
        assert attention is not None and attention not in (stale, ahead)
        text = "\n".join(t.render_line(y).text for y in range(t.row_count + 1))
        assert "▲" not in text  # budget ahead of pace is », not the sort arrow
        assert "62% »" in text
        await pilot.press("N")  # A-Z
        assert "AGENT▲" in header(app)
        assert names(app)[:2] == ["coder0-0", "coder0-1"]
        await pilot.press("N")
        assert "AGENT▼" in header(app)
        await pilot.press("B")  # heartbeat age: the oldest first
        assert "HB▼" in header(app)


def test_describe_names_the_column_never_the_internal_key() -> None:
    assert FleetView(sort_key="hb").describe() == "sort: HB ▼"
    assert FleetView(sort_key="hb", sort_reverse=True).describe() == "sort: HB ▲"
    assert FleetView(sort_key="agent").describe() == "sort: AGENT ▲"
    assert FleetView(sort_key="tokens").describe() == "sort: TOKENS ▼"


def test_the_star_only_ever_means_waiting_for_you() -> None:
    for a in fleet_snapshot().agents:
        cells = " ".join(c.cell(a) for c in COLUMNS_BY_KEY.values())
        assert ("★" in cells) == (a.name in ("planner", "review", "scratch")), a.name


# -- 5. columns that stay put --------------------------------------------------------------------------


async def test_the_header_stays_put_when_a_filter_changes_or_an_agent_starts_waiting() -> None:
    base = fleet_snapshot()
    asks = with_agent(
        base,
        "coder0-0",
        lambda a: waiting(a, "shall I force-push the rebased branch onto main? " * 3).model_copy(
            update={"health": Health.HEALTHY}
        ),
    )
    snaps = [base, asks]
    source = FixedSource(lambda: snaps[min(source.polls - 1, 1)])
    app = make_app(source)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        first = header(app)
        for text in ("coder", "review", "health:down", "!coder"):
            await pilot.press("slash", *text)
            assert header(app) == first, text
            await pilot.press("escape")
        await pilot.press("asterisk")  # waiting only
        assert header(app) == first
        await pilot.press("asterisk")
        app.request_poll()
        for _ in range(50):
            await pilot.pause()
            if app.polls >= 2:
                break
        await pilot.pause()
        assert "coder0-0" in names(app)[:4]  # it waits now: up with the others
        assert header(app) == first


# -- 6. 80x24 ----------------------------------------------------------------------------------------


async def test_80_columns_keep_idle_and_tokens_and_the_footer_keeps_help_and_quit() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        head = header(app)
        for title in ("AGENT", "HEALTH", "STATE", "HB", "IDLE", "TOKENS"):
            assert title in head
        assert "DRIFT" not in head
        svg = app.export_screenshot()
        assert "Help" in svg and "Quit" in svg


# -- 7. mouse ------------------------------------------------------------------------------------------


async def test_clicking_a_column_title_sorts_by_it_and_a_second_click_reverses() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        x = header(app).index("TOKENS")
        await pilot.click(FleetTable, offset=(x + 1, 0))
        await pilot.pause()
        assert "TOKENS▼" in header(app)
        assert names(app)[0] == "orchestrator"  # the heaviest spender
        await pilot.click(FleetTable, offset=(x + 1, 0))
        await pilot.pause()
        assert "TOKENS▲" in header(app)


# -- 8. filter mistakes --------------------------------------------------------------------------------


def test_filter_problems_are_named() -> None:
    assert filter_problem("coder health:stale") is None
    problem = filter_problem("foo:bar")
    assert problem is not None and problem.startswith("foo: is not a field; fields: tenant, host")
    assert filter_problem("drift:") == "drift: needs a value, e.g. drift:missing"
    assert filter_problem("!foo:") is not None


async def test_a_filter_mistake_is_named_and_the_table_keeps_the_last_valid_filter() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        await pilot.press("slash", *"coder")
        shown = names(app)
        box = app.fleet_screen.query_one("#filter", Input)
        box.value = "coder foo:bar"  # pasted in one go
        await pilot.pause()
        assert "foo: is not a field; fields: tenant, host" in str(box.border_subtitle)
        assert box.has_class("-invalid")
        assert names(app) == shown  # the last filter that made sense
        box.value = "coder"
        await pilot.pause()
        await pilot.press("space", *"drift:")
        assert "drift: needs a value, e.g. drift:missing" in str(box.border_subtitle)
        await pilot.press(*"missing")
        assert box.border_subtitle is None and not box.has_class("-invalid")
        assert names(app) == ["coder1-0"]


# -- 9. the terminal title --------------------------------------------------------------------------


async def test_the_terminal_title_says_how_many_wait() -> None:
    app = make_app(FixedSource(fleet_snapshot()))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        title = app.fleet_screen.terminal_title
        assert title.text == "3 waiting · jarvis@w-jarvis · fleet-tui"
        assert title.sent[0].startswith("\x1b[22;2t\x1b]2;3 waiting")  # saved, then set
        sent = len(title.sent)
        app.fleet_screen.refresh_view()
        assert len(title.sent) == sent  # only when the text changes
    assert title.sent[-1] == "\x1b[23;2t"  # restored when the dashboard goes


def test_the_title_without_waiting_agents_and_with_hostile_names() -> None:
    calm = [
        a.model_copy(update={"heartbeat": None, "inferred": None}) for a in fleet_snapshot().agents
    ]
    assert title_text(calm) == "jarvis@w-jarvis · fleet-tui"
    evil = [a.model_copy(update={"host": "h\x1b]2;x\x07\x9b"}) for a in calm[:1]]
    from fleet_tui.ui.title import _safe

    text = _safe(title_text(evil))
    assert text.isprintable() and "\x1b" not in text and "\x07" not in text


# -- 10. ASCII ---------------------------------------------------------------------------------------


async def test_ascii_mode_draws_the_table_in_ascii() -> None:
    app = make_app(FixedSource(fleet_snapshot()), glyphs="ascii")
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        await pilot.press("N")
        t = table(app)
        text = "\n".join(t.render_line(y).text for y in range(t.row_count + 1))
        assert text.isascii()
        assert "AGENT^" in text and "* ~waiting_input" in text and "+ healthy" in text
        assert "waiting_inputh" in text and "62% >" in text


# -- snapshots ----------------------------------------------------------------------------------------


def _then(*keys: str) -> Callable[..., object]:
    async def run(pilot) -> None:  # type: ignore[no-untyped-def]
        await ready(pilot)
        if keys:
            await pilot.press(*keys)
        for _ in range(3):
            await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return run


SNAPSHOTS = {
    "urgency_80x24": ((80, 24), "unicode", ()),
    "asks_200x40": ((200, 40), "unicode", ()),
    "ascii_80x24": ((80, 24), "ascii", ()),
    "sorted_by_name_120x30": ((120, 30), "unicode", ("N",)),
    "filter_mistake_120x30": ((120, 30), "unicode", ("slash", *"coder", "space", *"foo:")),
    "composer_question_100x30": ((100, 30), "unicode", ("m",)),
}


@pytest.mark.parametrize("case", list(SNAPSHOTS))
def test_glance_snapshot(snap_compare, case: str) -> None:  # type: ignore[no-untyped-def]
    size, glyphs, keys = SNAPSHOTS[case]
    app = make_app(FixedSource(fleet_snapshot()), glyphs=glyphs)
    assert snap_compare(app, terminal_size=size, run_before=_then(*keys))


def test_sort_file_is_small_json(tmp_path: Path) -> None:
    from fleet_tui.ui.viewfile import save_sort

    path = tmp_path / "a" / "dashboard.json"
    save_sort(path, SavedSort("tokens", False))
    assert json.loads(path.read_text()) == {
        "version": 1,
        "sort": {"key": "tokens", "reverse": False},
    }
    assert path.stat().st_mode & 0o777 == 0o600
    save_sort(path, SavedSort())
    assert load_sort(path) == SavedSort()


async def test_a_column_grows_at_once_and_shrinks_only_after_a_while() -> None:
    from fleet_tui.ui.widgets.fleet_table import SHRINK_AFTER

    base = fleet_snapshot()
    longer = with_agent(base, "review", lambda a: a.model_copy(update={"role": "r" * 30}))
    app = make_app(FixedSource(base))
    async with app.run_test(size=(200, 48)) as pilot:
        await ready(pilot)
        t = table(app)
        plain = header(app)
        fleet = [a for a in longer.agents if a.is_agent]
        t.set_records(fleet, fleet)
        await pilot.pause()
        wide = header(app)
        assert wide.index("HEALTH") > plain.index("HEALTH")  # grew at once
        fleet = [a for a in base.agents if a.is_agent]
        for _ in range(SHRINK_AFTER - 1):
            t.set_records(fleet, fleet)
        await pilot.pause()
        assert header(app) == wide  # not yet
        t.set_records(fleet, fleet)
        await pilot.pause()
        assert header(app) == plain


async def test_a_view_changed_after_the_poll_thread_prepared_a_snapshot_is_the_one_shown() -> None:
    """The poll thread works out what the fleet screen shows of each snapshot under the view
    of that moment (`FleetApp.prepare_snapshot`); a filter typed before the snapshot is shown
    wins: the table shows the filtered fleet, and the header counts the new snapshot."""
    from dataclasses import replace

    snap = fleet_snapshot()
    app = make_app(FixedSource(snap))
    async with app.run_test(size=(160, 40)) as pilot:
        await ready(pilot)
        shown = table(app)
        assert len(shown.keys) > 2
        fewer = snap.model_copy(update={"agents": [a for a in snap.agents if a.name != "review"]})
        app.prepare_snapshot(fewer)  # in the poll thread, under the unfiltered view
        app.fleet_screen.view = replace(app.fleet_screen.view, filter="coder0")  # meanwhile
        app.apply_snapshot(fewer)
        await pilot.pause()
        assert sorted(names(app)) == ["coder0-0", "coder0-1", "coder0-2"]
        counts = app.fleet_screen.query_one(FleetHeader).counts()
        assert counts is not None and counts.agents == sum(1 for a in fewer.agents if a.is_agent)
        app.fleet_screen.view = replace(app.fleet_screen.view, filter="")
        app.fleet_screen.refresh_view()  # the view it was prepared for: its rows, all of them
        await pilot.pause()
        assert len(shown.keys) == sum(1 for a in fewer.agents if a.is_agent)
