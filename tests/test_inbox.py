"""The dashboard's `terminal` alert channel, as an operator meets it: one bell and a toast when an
agent starts waiting, none again for the same episode (next poll, or a restarted dashboard), the
inbox (`i`) listing what needs you with the agent's question, `z` writing a silence to the state
dir's silences.json (the file `alerts run` reads), `m` opening the composer for that agent, and an
invalid alerts file said once while the rules keep ringing.

The real app, real files in a temporary state dir; only the bell is counted (a subclass). The
fixed fleets of fleet_tui.testing stand for the fleet, and one test runs on the live sources
(real tmux on a private socket, a heartbeat written by the CLI)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import FleetEnv
from rich.console import Console
from rich.segment import Segment
from textual.widgets import Static

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.config.paths import Located
from fleet_tui.config.settings import DashboardSettings
from fleet_tui.model.records import AgentState, FleetSnapshot
from fleet_tui.service.poll import LiveSource
from fleet_tui.testing.alerts import inbox_snapshot, write_inbox_state
from fleet_tui.testing.fleets import NOW, FixedSource, RecordingActions, fleet_snapshot
from fleet_tui.ui.alerting import TerminalAlerts
from fleet_tui.ui.app import FleetApp
from fleet_tui.ui.dialogs import ComposeMessageScreen
from fleet_tui.ui.screens import AgentDetailScreen
from fleet_tui.ui.screens.inbox import InboxList, InboxScreen, SilenceScreen

SETTINGS = DashboardSettings(poll_interval_s=3600)
REVIEW = "jarvis/w-jarvis/mosaic-fleet/review"


@pytest.fixture(autouse=True)
def utc_local_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Silences are shown in this machine's time: make it UTC, so 09:30 + 15 min is 09:45."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


class BellApp(FleetApp):
    """The real dashboard, counting its bells (a headless app writes none)."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.bells = 0

    def bell(self) -> None:
        self.bells += 1
        super().bell()


def only_waiting(*names: str, snapshot: FleetSnapshot | None = None) -> FleetSnapshot:
    """The fixed fleet where, of the agents that wait in it, only `names` still do (the others
    became busy)."""
    snap = snapshot or fleet_snapshot()
    agents = []
    for a in snap.agents:
        if (
            a.name not in names
            and a.heartbeat is not None
            and a.heartbeat.state
            in (
                AgentState.WAITING_INPUT,
                AgentState.BLOCKED,
            )
        ):
            hb = a.heartbeat.model_copy(update={"state": AgentState.BUSY, "detail": "working"})
            a = a.model_copy(update={"heartbeat": hb})
        if a.name not in names and a.inferred is not None and a.name == "planner":
            a = a.model_copy(update={"inferred": None})
        agents.append(a)
    return snap.model_copy(update={"agents": agents})


def alerts_for(tmp_path: Path, text: str | None = None) -> tuple[TerminalAlerts, str | None]:
    path = tmp_path / "alerts.yaml"
    if text is not None:
        path.write_text(text)
    return TerminalAlerts.load(Located(path, False), tmp_path / "state")


def make_app(
    tmp_path: Path,
    source: FixedSource,
    *,
    alerts_text: str | None = None,
    settings: DashboardSettings = SETTINGS,
    clock: Callable[[], datetime] = lambda: NOW + timedelta(seconds=1),
) -> BellApp:
    alerts, notice = alerts_for(tmp_path, alerts_text)
    return BellApp(
        source,
        actions=RecordingActions(),
        settings=settings,
        clock=clock,
        watch=False,
        alerts=alerts,
        startup_notice=notice,
    )


async def polled(pilot, app: FleetApp, n: int = 1) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):
        await pilot.pause()
        if app.polls >= n:
            await pilot.pause()
            return
    raise AssertionError(f"poll {n} never arrived")


async def poll_again(pilot, app: FleetApp) -> None:  # type: ignore[no-untyped-def]
    n = app.polls + 1
    app.request_poll()
    await polled(pilot, app, n)


def toasts(app: FleetApp) -> list[str]:
    return [n.message for n in app._notifications]


def inbox_lines(app: FleetApp) -> list[str]:
    listing = app.screen.query_one(InboxList)
    return [listing.render_line(y).text.rstrip() for y in range(listing.option_count)]


async def test_a_waiting_agent_rings_once_toasts_and_waits_in_the_inbox(tmp_path: Path) -> None:
    source = FixedSource(only_waiting("review"))
    app = make_app(tmp_path, source)
    async with app.run_test(size=(100, 30)) as pilot:
        await polled(pilot, app)
        assert app.bells == 1
        assert "★ review needs you: permission: run migrations?" in toasts(app)
        # the terminal title still counts who waits
        assert app.fleet_screen.terminal_title.text is not None
        assert app.fleet_screen.terminal_title.text.startswith("1 waiting · ")
        # the next poll, the same fleet: the same episode, no second bell, no second toast
        await poll_again(pilot, app)
        assert app.bells == 1 and len(toasts(app)) == 1
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, InboxScreen)
        (row,) = inbox_lines(app)
        assert (
            row.split() == "0 s needs-you review waiting_input permission: run migrations?".split()
        )
        title = str(app.screen.query_one("#inbox-title", Static).render())
        assert "1 open" in title
    episodes = json.loads((tmp_path / "state/alerts/episodes-terminal.json").read_text())
    assert [(e["rule"], e["agent"]) for e in episodes["episodes"]] == [("needs-you", "review")]

    # the dashboard again, on the same state dir, the agent still waiting: no bell
    again = make_app(tmp_path, FixedSource(only_waiting("review")))
    async with again.run_test(size=(100, 30)) as pilot:
        await polled(pilot, again)
        assert again.bells == 0 and toasts(again) == []
        assert [a.agent for a in again.open_alerts] == ["review"]


async def test_a_new_episode_rings_again_and_a_resolved_one_does_not(tmp_path: Path) -> None:
    snaps = [only_waiting("review"), only_waiting("review", "scratch"), only_waiting()]
    source = FixedSource(lambda: snaps[min(source.polls, 3) - 1])
    app = make_app(tmp_path, source)
    async with app.run_test(size=(100, 30)) as pilot:
        await polled(pilot, app)
        assert app.bells == 1
        await poll_again(pilot, app)  # scratch starts waiting too
        assert app.bells == 2
        assert toasts(app)[-1] == "★ scratch needs you: rate limit until 12:00"
        await poll_again(pilot, app)  # nobody waits: both resolve, quietly
        assert app.bells == 2 and len(toasts(app)) == 2
        assert app.open_alerts == ()


async def test_more_than_three_at_once_is_one_toast(tmp_path: Path) -> None:
    base = fleet_snapshot()
    agents = []
    for a in base.agents:
        if a.name == "orchestrator" and a.heartbeat is not None:
            hb = a.heartbeat.model_copy(update={"state": AgentState.WAITING_INPUT})
            a = a.model_copy(update={"heartbeat": hb})
        agents.append(a)
    app = make_app(tmp_path, FixedSource(base.model_copy(update={"agents": agents})))
    async with app.run_test(size=(100, 30)) as pilot:
        await polled(pilot, app)
        assert app.bells == 1
        assert toasts(app) == ["★ 4 agents need you"]


async def test_the_bell_can_be_turned_off(tmp_path: Path) -> None:
    settings = DashboardSettings(poll_interval_s=3600, alerts_bell=False)
    app = make_app(tmp_path, FixedSource(only_waiting("review")), settings=settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await polled(pilot, app)
        assert app.bells == 0
        assert "★ review needs you: permission: run migrations?" in toasts(app)


async def test_z_silences_the_rule_for_that_agent_in_the_state_dir(tmp_path: Path) -> None:
    app = make_app(tmp_path, FixedSource(only_waiting("review", "scratch")))
    async with app.run_test(size=(100, 30)) as pilot:
        await polled(pilot, app)
        await pilot.press("i")
        await pilot.pause()
        listing = app.screen.query_one(InboxList)
        assert [line.split()[3] for line in inbox_lines(app)] == ["review", "scratch"]
        await pilot.press("down")  # scratch
        assert listing.highlighted == 1
        polls = app.polls
        await pilot.press("z")
        await pilot.pause()
        assert isinstance(app.screen, SilenceScreen)
        await pilot.press("1")  # 15 minutes
        await polled(pilot, app, polls + 1)  # the write asks for a poll; it shows after it
        await pilot.pause()
        assert isinstance(app.screen, InboxScreen)
        saved = json.loads((tmp_path / "state/alerts/silences.json").read_text())
        (silence,) = saved["silences"]
        assert silence["rule"] == "needs-you" and silence["agents"] == ["scratch"]
        assert silence["until"].startswith("2026-11-26T09:45:01")
        review, scratch = inbox_lines(app)
        assert "silenced" not in review
        assert "silenced until 09:45 · rate limit until 12:00" in scratch
        assert "1 silenced" in str(app.screen.query_one("#inbox-title", Static).render())
        assert any("needs-you silenced for scratch until 09:45" in t for t in toasts(app))
        assert listing.highlighted == 1  # the cursor stayed on its episode


async def test_a_read_only_browser_session_silences_nothing(tmp_path: Path) -> None:
    from fleet_tui.config.surface import Surface

    app = make_app(tmp_path, FixedSource(only_waiting("review")))
    app.surface = Surface("web", "view", "wall")  # what `fleet-tui web` gives a view token
    async with app.run_test(size=(100, 30)) as pilot:
        await polled(pilot, app)
        await pilot.press("i")
        await pilot.pause()
        await pilot.press("z")
        await pilot.pause()
        # no dialog, the reason in one line, nothing written
        assert isinstance(app.screen, InboxScreen)
        assert any(t.startswith("silence: this web session is read-only") for t in toasts(app))
        assert not (tmp_path / "state/alerts/silences.json").exists()


async def test_the_cursor_stays_on_its_episode_when_one_above_resolves(tmp_path: Path) -> None:
    snaps = [only_waiting("planner", "review", "scratch"), only_waiting("review", "scratch")]
    source = FixedSource(lambda: snaps[min(source.polls, 2) - 1])
    app = make_app(tmp_path, source)
    async with app.run_test(size=(100, 30)) as pilot:
        await polled(pilot, app)
        await pilot.press("i")
        await pilot.pause()
        assert [line.split()[3] for line in inbox_lines(app)] == ["planner", "review", "scratch"]
        await pilot.press("down", "down")  # scratch
        await poll_again(pilot, app)  # planner stops waiting: its row goes
        await pilot.pause()
        assert [line.split()[3] for line in inbox_lines(app)] == ["review", "scratch"]
        assert app.screen.query_one(InboxList).highlighted == 1
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, ComposeMessageScreen)
        assert app.screen.record.name == "scratch"


async def test_m_opens_the_composer_for_the_chosen_agent_and_enter_its_detail(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path, FixedSource(only_waiting("review", "scratch")))
    async with app.run_test(size=(100, 30)) as pilot:
        await polled(pilot, app)
        await pilot.press("i")
        await pilot.pause()
        await pilot.press("down", "m")
        await pilot.pause()
        assert isinstance(app.screen, ComposeMessageScreen)
        assert app.screen.record.name == "scratch"
        asks = str(app.screen.query_one("#compose-question", Static).render())
        assert "rate limit until 12:00" in asks
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, InboxScreen)
        await pilot.press("up", "enter")
        await pilot.pause()
        assert isinstance(app.screen, AgentDetailScreen)
        assert app.screen.key == REVIEW


async def test_an_empty_inbox_says_so_and_where_the_rules_come_from(tmp_path: Path) -> None:
    app = make_app(tmp_path, FixedSource(only_waiting()))
    async with app.run_test(size=(80, 24)) as pilot:
        await polled(pilot, app)
        assert app.bells == 0
        await pilot.press("i")
        await pilot.pause()
        text = str(app.screen.query_one("#inbox-empty", Static).render())
        assert text.startswith("Nothing needs you.")
        assert "Built-in rule needs-you" in text and "alerts.yaml" in text
        await pilot.press("m")  # nothing to answer: said, and no composer for another agent
        await pilot.pause()
        assert isinstance(app.screen, InboxScreen)


BAD = "version: 1\nrules:\n  - name: x\n    when: {state: [waitin]}\n    to: [terminal]\n"
GOOD = (
    "version: 1\nrules:\n  - name: scratch-only\n    when: {state: [blocked]}\n"
    "    agents: [scratch]\n    to: [terminal]\n"
)


async def test_an_invalid_alerts_file_is_said_and_the_built_in_rule_still_rings(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path, FixedSource(only_waiting("review")), alerts_text=BAD)
    async with app.run_test(size=(100, 30)) as pilot:
        await polled(pilot, app)
        warning = next(t for t in toasts(app) if "alerts.yaml:4:" in t)
        assert "rules[0].when.state[0]" in warning
        assert warning.endswith(": using the built-in rule")
        assert app.bells == 1
        assert "★ review needs you: permission: run migrations?" in toasts(app)


async def test_a_file_that_turns_invalid_keeps_the_last_good_rules_and_says_so_once(
    tmp_path: Path,
) -> None:
    snaps = [only_waiting(), only_waiting("review", "scratch")]
    source = FixedSource(lambda: snaps[min(source.polls, 2) - 1])
    app = make_app(tmp_path, source, alerts_text=GOOD)
    async with app.run_test(size=(100, 30)) as pilot:
        await polled(pilot, app)
        assert toasts(app) == []
        (tmp_path / "alerts.yaml").write_text(BAD + "# edited\n")
        await poll_again(pilot, app)
        # the last good rule (scratch-only) still rings; review waits but no rule of it is
        # for review
        assert app.bells == 1
        shown = toasts(app)
        assert sum("alerts.yaml:4:" in t for t in shown) == 1
        assert any(t.endswith(": keeping the last good rules") for t in shown)
        assert "★ scratch needs you: rate limit until 12:00" in shown
        assert not any("review" in t for t in shown)
        await poll_again(pilot, app)
        assert sum("alerts.yaml:4:" in t for t in toasts(app)) == 1  # once, not per poll
        assert [(a.rule, a.agent) for a in app.open_alerts] == [("scratch-only", "scratch")]


def _segments(app: FleetApp) -> list[Segment]:
    """The whole screen as the compositor hands it to the terminal (the ASCII filter applied)."""
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    console = Console(width=app.size.width, height=app.size.height, file=io.StringIO())
    return list(console.render(update))


@pytest.mark.parametrize("term", ["ascii", "xterm16"])
async def test_the_inbox_at_80x24_in_ascii_and_in_16_colours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, term: str
) -> None:
    """Two episodes, planner's silenced: whole lines at 80 columns; with `glyphs: ascii` not a
    character outside ASCII; on a 16-colour terminal the silenced row is told apart by `dim`,
    not by a shade."""
    write_inbox_state(tmp_path / "state")
    if term == "xterm16":
        monkeypatch.setenv("TERM", "xterm")
        monkeypatch.delenv("COLORTERM", raising=False)
    glyphs = "ascii" if term == "ascii" else "auto"
    settings = DashboardSettings(poll_interval_s=3600, glyphs=glyphs)
    app = make_app(tmp_path, FixedSource(inbox_snapshot()), settings=settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await polled(pilot, app)
        await pilot.press("i")
        await pilot.pause()
        await pilot.pause()
        segments = _segments(app)
        text = "".join(s.text for s in segments if not s.control)
        rows = inbox_lines(app)
    assert app.bells == 0
    assert rows[0].split()[:4] == ["12", "m", "needs-you", "review"]
    assert "silenced until 10:15" in rows[1] and rows[1].endswith("…")
    if term == "ascii":
        assert app.ascii_only
        assert text.isascii(), sorted({c for c in text if not c.isascii()})
        assert "silenced until 10:15 . Do you want" in text
    else:
        assert app.theme == "fleet-ansi"
        quiet = [s for s in segments if "silenced until" in s.text]
        assert quiet and all(s.style is not None and s.style.dim for s in quiet)


@pytest.mark.tmux
async def test_live_a_heartbeat_saying_waiting_input_rings_the_bell(fleet_env: FleetEnv) -> None:
    """Real tmux on a private socket, a real heartbeat written by the CLI, the live sources and
    the state dir's alerts folder: the dashboard rings once, with the agent's question."""
    fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}], timeout_s=30)
    fleet_env.start("mosaic-fleet", "orchestrator", ["sleep", "300"])
    config = FleetConfig.from_flags()
    alerts, notice = TerminalAlerts.load(config.alerts, config.state_dir)
    assert notice is None  # no alerts.yaml in this world: the built-in rule, quietly
    app = BellApp(
        LiveSource(config, systemd_interval_s=30),
        settings=DashboardSettings(poll_interval_s=3600),  # only the spool watch polls
        alerts=alerts,
    )
    async with app.run_test(size=(120, 30)) as pilot:
        for _ in range(400):
            await pilot.pause(0.05)
            if app.polls >= 1:
                break
        await pilot.pause(0.5)  # let the spool watcher start
        assert app.bells == 0
        rc = fleet_env.cli(
            "heartbeat", "orchestrator", "--state", "waiting_input", "--detail", "approve?"
        )
        assert rc.rc == 0, rc.stderr
        for _ in range(300):  # about a second quiet; 15 s for a loaded machine
            await pilot.pause(0.05)
            if app.bells:
                break
        assert app.bells == 1
        assert "★ orchestrator needs you: approve?" in toasts(app)
        assert [a.agent for a in app.open_alerts] == ["orchestrator"]
    book = config.state_dir / "alerts" / "episodes-terminal.json"
    assert "orchestrator" in book.read_text()


async def test_agent_text_is_never_markup_nor_control_in_toast_and_inbox(tmp_path: Path) -> None:
    """A question with markup and an escape sequence (here straight into the record, past the
    join's own sanitizer): the toast and the row show it as plain text."""
    hostile = "[link=http://evil.example]click[/link] \x1b]52;c;SGVsbG8=\x07 [b]ok?"
    snap = only_waiting("review")
    agents = []
    for a in snap.agents:
        if a.name == "review" and a.heartbeat is not None:
            a = a.model_copy(
                update={"heartbeat": a.heartbeat.model_copy(update={"detail": hostile})}
            )
        agents.append(a)
    app = make_app(tmp_path, FixedSource(snap.model_copy(update={"agents": agents})))
    async with app.run_test(size=(120, 30)) as pilot:
        await polled(pilot, app)
        (toast,) = toasts(app)
        assert "\x1b" not in toast and "\x07" not in toast
        assert "[link=http://evil.example]click[/link]" in toast
        await pilot.press("i")
        await pilot.pause()
        (row,) = inbox_lines(app)
        assert "[link=http://evil.example]click[/link]" in row and "\x1b" not in row
        listing = app.screen.query_one(InboxList)
        assert not any(s.style and s.style.link for s in listing.render_line(0))
