"""The fleet table remakes a row from the last row of its agent, only the cells whose inputs
changed (issue 16: at a poll every age ticks, so every record is a new object). Whatever
changed, the row must be the one made from scratch, and the screen must show the change."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from textual.pilot import Pilot

from fleet_tui.config.settings import DashboardSettings
from fleet_tui.model.records import AgentRecord, FleetSnapshot
from fleet_tui.present.columns import changed_inputs
from fleet_tui.testing.fleets import NOW, FixedSource, big_snapshot, fleet_snapshot
from fleet_tui.ui.app import FleetApp
from fleet_tui.ui.widgets import FleetTable
from fleet_tui.ui.widgets.fleet_table import SHRINK_AFTER, make_row, remake_row


def _records() -> list[AgentRecord]:
    # every health, state source, drift flag, budget and systemd case, and a plain big fleet
    variants = [
        fleet_snapshot(),
        fleet_snapshot(roster=False),
        fleet_snapshot(hung=True, systemd=False, heartbeats=False, usage=False),
    ]
    out = [a for s in variants for a in s.agents]
    return out + list(big_snapshot(40, seed=7).agents)


def _aged(r: AgentRecord, hb_s: float, idle_s: float) -> AgentRecord:
    update: dict[str, object] = {}
    if r.heartbeat is not None:
        update["heartbeat"] = r.heartbeat.model_copy(update={"age_s": hb_s})
    if r.tmux is not None:
        update["tmux"] = r.tmux.model_copy(update={"idle_s": idle_s})
    return r.model_copy(update=update)


@pytest.mark.parametrize("ascii_only", [False, True])
def test_a_row_remade_from_the_last_one_is_the_row_made_from_scratch(ascii_only: bool) -> None:
    records = _records()
    rng = random.Random(16)
    fields = list(AgentRecord.model_fields)
    checked = 0
    for old in records:
        old_row = make_row(old, ascii_only=ascii_only)
        # every field in turn taken from another record (a state, a budget, a process...)
        for field in fields:
            other = rng.choice(records)
            new = old.model_copy(update={field: getattr(other, field)})
            row = remake_row(old, old_row, new, ascii_only=ascii_only)
            fresh = make_row(new, ascii_only=ascii_only)
            assert (row.cells, row.tags) == (fresh.cells, fresh.tags), (old.name, field)
            checked += 1
        # only the ages moved (a kept record at the next poll), across the units' edges
        for hb_s, idle_s in ((0.4, 1.0), (119.9, 120.0), (7300.0, -5.0), (-30.0, 200000.0)):
            new = _aged(old, hb_s, idle_s)
            row = remake_row(old, old_row, new, ascii_only=ascii_only)
            fresh = make_row(new, ascii_only=ascii_only)
            assert (row.cells, row.tags) == (fresh.cells, fresh.tags), (old.name, hb_s, idle_s)
    assert checked > 1000


def test_only_the_moved_ages_count_as_changed_inputs() -> None:
    old = fleet_snapshot().agents[0]
    assert old.heartbeat is not None and old.tmux is not None
    assert changed_inputs(old, old.model_copy()) == set()
    assert changed_inputs(old, _aged(old, 99.0, 98.0)) == {"heartbeat.age_s", "tmux.idle_s"}
    new = old.model_copy(
        update={"heartbeat": old.heartbeat.model_copy(update={"age_s": 99.0, "seq": 12345})}
    )
    assert changed_inputs(old, new) == {"heartbeat"}
    assert changed_inputs(old, old.model_copy(update={"role": "other"})) == {"role"}


def test_a_row_whose_shown_text_did_not_change_is_the_same_row() -> None:
    old = big_snapshot(3, seed=2).agents[1]
    row = make_row(old)
    assert old.heartbeat is not None
    same_text = _aged(old, old.heartbeat.age_s + 0.01, (old.tmux.idle_s or 0) + 0.01)  # type: ignore[union-attr]
    if make_row(same_text).cells == row.cells:
        assert remake_row(old, row, same_text, ascii_only=False) is row


def _line_of(table: FleetTable, name: str) -> str:
    for y in range(1, table.size.height):
        text = table.render_line(y).text
        if f" {name} " in f" {text} ":
            return text
    raise AssertionError(f"{name} is not on screen")


async def test_a_moved_age_and_a_changed_field_show_on_screen_at_the_next_update() -> None:
    base = big_snapshot(60, seed=4)
    app = FleetApp(
        FixedSource(base),
        settings=DashboardSettings(poll_interval_s=3600),
        clock=lambda: NOW + timedelta(seconds=1),
        watch=False,
    )
    async with app.run_test(size=(160, 40)) as pilot:
        for _ in range(100):
            await pilot.pause()
            if app.polls >= 1:
                break
        table = app.fleet_screen.query_one(FleetTable)
        first = table.keys[0]
        name = first.rsplit("/", 1)[1]
        assert "7 m" not in _line_of(table, name).split(name, 1)[1]
        agents: list[AgentRecord] = []
        for a in base.agents:
            a = _aged(a, 420.0, 430.0)  # every age moved, as at a real poll
            if a.key == first:
                a = a.model_copy(update={"role": "reviewer", "health_reason": "moved on"})
            agents.append(a)
        app.apply_snapshot(base.model_copy(update={"agents": agents}))
        await pilot.pause()
        await pilot.pause()
        line = _line_of(table, name)
        assert "reviewer" in line
        assert line.count("7 m") == 2  # HB 420 s and IDLE 430 s
        # and an agent whose only change is its ages shows them too
        other = table.keys[1].rsplit("/", 1)[1]
        assert _line_of(table, other).count("7 m") == 2
        # a longer cell widens its column at once; once it is gone, the column narrows back
        # after SHRINK_AFTER updates (the per-column length counts follow the fleet)
        header = table.render_line(0).text
        long_role = "reviewer-of-very-long-things"
        longer = [a.model_copy(update={"role": long_role}) if a.key == first else a for a in agents]
        app.apply_snapshot(base.model_copy(update={"agents": longer}))
        await pilot.pause()
        assert long_role in _line_of(table, name)
        assert table.render_line(0).text != header
        without = [a for a in agents if a.key != first]
        for _ in range(SHRINK_AFTER):
            app.apply_snapshot(base.model_copy(update={"agents": without}))
            await pilot.pause()
        assert table.render_line(0).text == header


class _Terminal:
    """What an operator's terminal shows: every frame the app writes (full or partial), fed
    to a terminal emulator (pyte) as the escape sequences a real terminal would get."""

    def __init__(self, app: FleetApp, size: tuple[int, int]) -> None:
        import pyte

        self.screen = pyte.Screen(*size)
        self.stream = pyte.Stream(self.screen)
        original = app._display

        def display(screen: object, renderable: object) -> None:
            from textual._compositor import CompositorUpdate

            if isinstance(renderable, CompositorUpdate) and not app._batch_count:
                self.stream.feed(renderable.render_segments(app.console))
            original(screen, renderable)  # type: ignore[arg-type]

        app._display = display  # type: ignore[method-assign]

    def table_lines(self, table: FleetTable) -> list[str]:
        """The table's lines as the terminal shows them (left of its scrollbar)."""
        r = table.scrollable_content_region
        return [line[r.x : r.x + r.width] for line in self.screen.display[r.y : r.y + r.height]]


def _fixed_app(snapshot: FleetSnapshot, *, ascii_only: bool | None = None) -> FleetApp:
    glyphs = "auto" if ascii_only is None else "ascii" if ascii_only else "unicode"
    return FleetApp(
        FixedSource(snapshot),
        settings=DashboardSettings(poll_interval_s=3600, glyphs=glyphs),
        clock=lambda: NOW + timedelta(seconds=1),
        watch=False,
    )


def _with_new_states(
    agents: list[AgentRecord], rng: random.Random, count: int
) -> list[AgentRecord]:
    """`agents` with the heartbeat state of `count` of them (at random) drawn anew."""
    from fleet_tui.model.records import AgentState

    states = [AgentState.BUSY, AgentState.IDLE, AgentState.WAITING_INPUT, AgentState.BLOCKED]
    agents = list(agents)
    for i in rng.sample(range(len(agents)), count):
        a = agents[i]
        if a.heartbeat is not None:
            beat = a.heartbeat.model_copy(update={"state": rng.choice(states)})
            agents[i] = a.model_copy(update={"heartbeat": beat})
    return agents


async def _first_poll(pilot: Pilot[None], app: FleetApp) -> FleetTable:
    for _ in range(100):
        await pilot.pause()
        if app.polls >= 1:
            break
    return app.fleet_screen.query_one(FleetTable)


def _table_now(table: FleetTable) -> list[str]:
    """The table's lines drawn from what it holds now (not from any cache of earlier frames),
    as wide and as many as the terminal shows."""
    r = table.scrollable_content_region
    return [table.render_line(y).text[: r.width] for y in range(r.height)]


async def test_what_the_terminal_shows_after_churn_is_what_the_table_holds() -> None:
    """Random polls that change states (the default order moves agents waiting for the
    operator to the top), drop and bring back agents, while the table is scrolled and the
    cursor moves: after each, every table line the terminal shows is the line the table holds
    now (no line left from an earlier order)."""
    base = big_snapshot(120, seed=11)
    rng = random.Random(5)
    size = (100, 30)
    app = _fixed_app(base)
    async with app.run_test(size=size) as pilot:
        term = _Terminal(app, size)
        table = await _first_poll(pilot, app)
        agents = list(base.agents)
        for step in range(40):
            agents = _with_new_states(agents, rng, 6)
            # now and then some go (and come back at the next step); most polls keep the
            # same agents, so the table repaints line by line, not whole (a new length does)
            gone = set(rng.sample(range(len(agents)), 3)) if step % 7 == 6 else set()
            shown = [a for i, a in enumerate(agents) if i not in gone]
            app.apply_snapshot(base.model_copy(update={"agents": shown}))
            if step % 8 == 4:
                table.scroll_to(y=rng.randrange(0, 60), animate=False)
            if step % 5 == 2:
                table.action_cursor(rng.choice([-3, -1, 1, 4]))
            for _ in range(3):
                await pilot.pause()
            got, want = term.table_lines(table), _table_now(table)
            assert got == want, f"step {step}: " + "\n".join(
                f"{y:2}: {a!r}\n    {b!r}"
                for y, (a, b) in enumerate(zip(got, want, strict=True))
                if a != b
            )


@pytest.mark.parametrize("size", [(100, 30), (80, 24), (160, 48)])
async def test_a_fleet_taller_than_the_table_uses_every_line_and_nothing_hides_under_the_scrollbar(
    size: tuple[int, int],
) -> None:
    """More agents than lines: a vertical scrollbar, never a horizontal one (it took the
    table's last line, a bar across the screen); the columns end left of the scrollbar."""
    app = _fixed_app(big_snapshot(120, seed=3))
    async with app.run_test(size=size) as pilot:
        term = _Terminal(app, size)
        table = await _first_poll(pilot, app)
        table.refresh()  # drawn again, for the terminal that was not there at the first frame
        for _ in range(3):
            await pilot.pause()
        assert table.show_vertical_scrollbar and not table.show_horizontal_scrollbar
        r, whole = table.scrollable_content_region, table.region
        assert r.height == whole.height and r.width == whole.width - 1
        last = term.table_lines(table)[-1]
        assert last.split()[0].startswith("agent"), last  # a row, not a scrollbar
        for y in range(r.height):
            assert not table.render_line(y).text[r.width :].strip(), y


def _churn(base: FleetSnapshot, steps: int) -> list[FleetSnapshot]:
    """Polls of a fleet as it churns: every age moves, states change (the default order moves
    agents), a long role comes and goes (its column widens, then narrows after SHRINK_AFTER
    polls), agents leave and come back, new ones arrive."""
    rng = random.Random(9)
    agents = list(base.agents)
    extra = list(big_snapshot(90, seed=21).agents)[80:]  # other names: newcomers
    polls = []
    for step in range(steps):
        agents = [_aged(a, 3.0 * step + i % 5, 4.0 * step + i % 7) for i, a in enumerate(agents)]
        agents = _with_new_states(agents, rng, 5)
        now = list(agents)
        if step == 3:
            now[0] = now[0].model_copy(update={"role": "reviewer-of-very-long-things"})
        elif 4 <= step < 4 + SHRINK_AFTER + 2:
            now = now[1:]  # the long role's agent is gone long enough for the column to narrow
        if step % 6 == 5:
            now = [a for i, a in enumerate(now) if i % 9 != 4]  # some leave for one poll
        if step >= 10:
            now += extra[: step - 9]
        polls.append(base.model_copy(update={"agents": now}))
    return polls


async def _lines_after_each(
    polls: list[FleetSnapshot], *, poll_thread: bool, ascii_only: bool
) -> list[list[str]]:
    import asyncio

    app = _fixed_app(polls[0], ascii_only=ascii_only)
    seen = []
    async with app.run_test(size=(130, 30)) as pilot:
        table = await _first_poll(pilot, app)
        assert table.ascii_only is ascii_only
        made_here = 0
        row_of = table._row_of

        def counted(record: AgentRecord) -> object:
            nonlocal made_here
            made_here += 1
            return row_of(record)

        table._row_of = counted  # type: ignore[assignment,method-assign]
        for snapshot in polls:
            if poll_thread:  # what the poll thread does as each poll ends, in a thread
                await asyncio.to_thread(app.prepare_snapshot, snapshot)
                records, fleet = app.digest.shown(snapshot, app.fleet_screen.view)
                assert app.row_books.find(fleet, records) is not None
            app.apply_snapshot(snapshot)
            await pilot.pause()
            seen.append(_table_now(table))
        # rows made in the poll thread are taken whole: the table made none itself
        assert (made_here == 0) is poll_thread, made_here
    return seen


@pytest.mark.parametrize("ascii_only", [False, True])
async def test_rows_made_in_the_poll_thread_show_what_rows_made_on_screen_show(
    ascii_only: bool,
) -> None:
    """The poll thread makes each poll's rows from the last poll's (issue 16: off the event
    loop at 1,000 agents). Through churn, every line (and so every column's width, which
    comes from counts of the fleet's cell lengths) is what the table shows when it makes the
    rows itself."""
    polls = _churn(big_snapshot(60, seed=12), 30)
    made_there = await _lines_after_each(polls, poll_thread=True, ascii_only=ascii_only)
    made_here = await _lines_after_each(polls, poll_thread=False, ascii_only=ascii_only)
    # the long role changed the columns (at 130 wide, ROLE no longer fits), and they came
    # back once it had been gone for SHRINK_AFTER polls
    assert "ROLE" in made_there[2][0] and "ROLE" not in made_there[3][0]
    assert "ROLE" not in made_there[4 + SHRINK_AFTER - 2][0]
    assert "ROLE" in made_there[4 + SHRINK_AFTER + 1][0]
    for step, (there, here) in enumerate(zip(made_there, made_here, strict=True)):
        assert there == here, f"poll {step}"


def test_a_fleet_with_two_records_of_one_key_gets_no_book_and_no_error() -> None:
    """Two records of one key (a join gone wrong): the poll thread makes no rows for that poll
    (the table then works it out itself, as it always could) instead of failing on the counts."""
    from fleet_tui.ui.widgets.fleet_table import RowBooks

    books = RowBooks()
    first = list(big_snapshot(5, seed=3).agents)
    books.prepare(first, first, ascii_only=False)
    assert books.find(first, first) is not None
    aged = [_aged(a, 400.0, 500.0) for a in first]
    twice = [*aged, aged[0]]
    books.prepare(twice, twice, ascii_only=False)
    assert books.find(twice, twice) is None
    books.prepare(aged, aged, ascii_only=False)  # and the next poll is made afresh
    book = books.find(aged, aged)
    assert book is not None
    assert book.shown_rows == [make_row(a) for a in aged]
