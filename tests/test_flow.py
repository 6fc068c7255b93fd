"""Issue 14, flow and discoverability: the palette offers every action and sort, `?` lists every
screen's keys, `W` lists the agents that need a look, `y` copies to the clipboard, the budget
signals agree, and watch/attach tell the operator where they are and how to return."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

from rich.console import Console
from textual.widgets import Static

from fleet_tui.config.settings import DashboardSettings
from fleet_tui.model.records import Health
from fleet_tui.present.columns import COLUMNS
from fleet_tui.testing.fleets import NOW, FixedSource, RecordingActions, fleet_snapshot
from fleet_tui.ui.app import FleetApp
from fleet_tui.ui.copy import CopyScreen
from fleet_tui.ui.palette import FleetCommands
from fleet_tui.ui.screens import AgentDetailScreen, HelpScreen, WarningsScreen
from fleet_tui.ui.widgets import FleetTable

SETTINGS = DashboardSettings(poll_interval_s=3600)


def make_app(snapshot: Any = None, **kw: Any) -> FleetApp:
    return FleetApp(
        FixedSource(snapshot if snapshot is not None else fleet_snapshot()),
        settings=kw.pop("settings", SETTINGS),
        clock=lambda: NOW + timedelta(seconds=1),
        watch=False,
        **kw,
    )


async def first_poll(pilot: Any, app: FleetApp) -> None:
    for _ in range(100):
        await pilot.pause()
        if app.polls >= 1 or app.poll_error:
            return
    raise AssertionError("the first poll never arrived")


async def settle(pilot: Any, n: int = 10) -> None:
    for _ in range(n):
        await pilot.pause()


def body_text(app: FleetApp) -> str:
    """The text of the screen's Statics as a terminal would show it (tables included)."""
    console = Console(width=160, record=True, file=io.StringIO(), color_system=None)
    for w in app.screen.query(Static):
        console.print(w.content)
    return console.export_text()


def cursor_name(app: FleetApp) -> str:
    key = app.fleet_screen.query_one(FleetTable).cursor_key
    assert key is not None
    return key.rsplit("/", 1)[-1]


# -- the palette -------------------------------------------------------------------------------


async def palette_labels(app: FleetApp, query: str | None) -> list[str]:
    provider = FleetCommands(app.screen)
    if query is None:
        return [str(hit.text) for hit in [h async for h in provider.discover()]]
    return [str(hit.text) for hit in [h async for h in provider.search(query)]]


async def test_palette_offers_every_action_and_every_column_sort_and_no_non_agent() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        labels = await palette_labels(app, None)
        joined = "\n".join(labels)
        for word in (
            "Stream",
            "Watch",
            "Attach",
            "Send a message",
            "Show budgets",
            "audit log",
            "Show warnings",
            "Help",
            "Copy the selected agent's name",
            "attach command",
            "pane id",
        ):
            assert word in joined, word
        for c in COLUMNS:  # every column's sort by its title: TOKENS and BUDGET too
            assert f"Sort by {c.title}" in labels
        # opened, it lists the agents waiting for you; the others come as you type
        assert "Go to agent review" in labels and "Go to agent planner" in labels  # ~waiting
        assert not any(label.startswith("Go to agent orchestrator") for label in labels)
        assert "Go to agent orchestrator (Mos)" in await palette_labels(app, "orchestrator")
        # ops-shell is a plain shell session, not an agent: never "Go to agent ops-shell"
        assert not any("ops-shell" in label for label in labels)
        found = await palette_labels(app, "ops-shell")
        assert not any(label.startswith("Go to agent ops-shell") for label in found)
        assert "Go to session ops-shell (not an agent)" in found


async def test_palette_sort_by_tokens_and_open_budgets_run() -> None:
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await first_poll(pilot, app)
        await pilot.press("ctrl+p", *"Sort by TOKENS")
        await settle(pilot, 20)
        await pilot.press("enter")
        await settle(pilot)
        assert app.fleet_screen.view.sort_key == "tokens"
        await pilot.press("ctrl+p", *"Show budgets")
        await settle(pilot, 20)
        await pilot.press("enter")
        await settle(pilot)
        assert type(app.screen).__name__ == "BudgetScreen"


# -- `?` ---------------------------------------------------------------------------------------


async def test_help_lists_every_screens_keys_grouped_with_ids() -> None:
    app = make_app()
    async with app.run_test(size=(120, 60)) as pilot:
        await first_poll(pilot, app)
        rows = app.binding_rows()
        ids = {r[2]: r[0] for r in rows}
        # stream: tab (screen/log), /, n, N, end (follow)
        assert ids["stream.mode"].startswith("tab")
        assert ids["stream.search"] == "/"
        assert ids["stream.next"] == "n" and ids["stream.previous"] == "N"
        assert ids["stream.follow"].startswith("end")
        assert ids["budget.reload"] == "r"
        assert ids["compose.send"] == "^s" and ids["compose.cancel"] == "esc"
        assert "app.copy" in ids and "copy.attach" in ids
        assert len(ids) == len(rows)  # each binding once
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        text = body_text(app)
        lines = [line.strip() for line in text.splitlines()]
        for heading in ("Everywhere", "Fleet", "Agent detail", "Stream", "Budgets"):
            assert heading in lines, heading
        assert "Send a message (m)" in lines
        at = lines.index
        assert at("Stream") < next(i for i, s in enumerate(lines) if "stream.search" in s)
        assert next(i for i, s in enumerate(lines) if "stream.search" in s) < at("Budgets")
        assert "budget.reload" in text and "compose.send" in text


# -- `W` ---------------------------------------------------------------------------------------


def with_long_unresponsive(snapshot: Any, name: str, age_s: float) -> Any:
    agents = []
    for a in snapshot.agents:
        if a.name == name:
            hb = a.heartbeat.model_copy(update={"age_s": age_s})
            a = a.model_copy(update={"heartbeat": hb, "health": Health.UNRESPONSIVE})
        agents.append(a)
    return snapshot.model_copy(update={"agents": agents})


async def test_warnings_list_agents_that_need_a_look_and_the_sources() -> None:
    snap = with_long_unresponsive(fleet_snapshot(hung=True), "coder0-1", 720.0)
    app = make_app(snap)
    async with app.run_test(size=(160, 40)) as pilot:
        await first_poll(pilot, app)
        await pilot.press("W")
        await settle(pilot)
        assert isinstance(app.screen, WarningsScreen)
        text = body_text(app)
        assert "coder0-1: unresponsive, last heartbeat 12 m ago" in text
        assert "coder1-0: missing" in text  # in the roster, no session
        assert "security: its pane is dead" in text
        assert "socket 'lab' hung" in text  # the sources' warnings still there
        assert text.index("Agents") < text.index("coder0-1") < text.index("Sources")
        assert "coder0-0" not in text  # merely stale: not listed


async def test_warnings_do_not_list_an_agent_unresponsive_for_less_than_ten_minutes() -> None:
    app = make_app(with_long_unresponsive(fleet_snapshot(), "coder0-1", 300.0))
    async with app.run_test(size=(160, 40)) as pilot:
        await first_poll(pilot, app)
        await pilot.press("W")
        await settle(pilot)
        assert "coder0-1" not in body_text(app)


# -- copy --------------------------------------------------------------------------------------


async def test_copy_name_attach_command_and_pane_id_from_the_fleet_and_the_detail() -> None:
    app = make_app(actions=RecordingActions())
    written: list[str] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        driver = app._driver
        assert driver is not None
        original = driver.write

        def record(data: str) -> None:
            written.append(data)
            original(data)

        driver.write = record  # type: ignore[method-assign]
        name = cursor_name(app)
        await pilot.press("y")
        await settle(pilot)
        assert isinstance(app.screen, CopyScreen)
        await pilot.press("n")
        await settle(pilot)
        assert app.clipboard == name
        import base64

        assert f"\x1b]52;c;{base64.b64encode(name.encode()).decode()}\a" in written
        notes = [n.message for n in app._notifications]
        assert any(m == f"copied its name: {name}" for m in notes)

        await pilot.press("y", "a")
        await settle(pilot)
        assert app.clipboard.startswith("tmux -S ")
        assert app.clipboard.endswith(f"/mosaic-fleet attach-session -t ={name}:")

        await pilot.press("enter")  # the detail of the agent under the cursor
        await settle(pilot)
        assert isinstance(app.screen, AgentDetailScreen)
        await pilot.press("y", "p")
        await settle(pilot)
        assert app.clipboard.startswith("%")
        await pilot.press("y", "escape")  # cancelled: nothing copied, back on the detail
        await settle(pilot)
        assert isinstance(app.screen, AgentDetailScreen) and app.clipboard.startswith("%")


async def test_copy_of_an_agent_without_a_session_says_why() -> None:
    app = make_app(actions=RecordingActions())
    async with app.run_test(size=(120, 40)) as pilot:
        await first_poll(pilot, app)
        key = next(a.key for a in app.snapshot.agents if a.name == "coder1-0")  # type: ignore[union-attr]
        app.go_to_agent(key)
        await settle(pilot)
        await pilot.press("y", "p")
        await settle(pilot)
        assert app.clipboard == ""
        assert any("coder1-0 has no tmux session" in n.message for n in app._notifications)


# -- the budget signals agree --------------------------------------------------------------------

BEHIND_FAST = """\
version: 1
tenant_id: {tenant}
host: {host}
accounts:
  - id: codex-pro
    provider: openai
    runtime: codex
    regime: subscription
    windows:
      - {{name: weekly, minutes: 10080, resets_at: "2026-11-29T21:30:00Z", reset_confidence: user}}
"""


def behind_but_fast_report() -> Any:
    """codex-pro used 30 % of a week half gone (ideal 50 %: behind), but 25 %/day over the last
    day: at that rate it is used up 2.8 days from now, before the reset in 3.5 days."""
    from fleet_tui.config.paths import Located
    from fleet_tui.model.records import UsageSample
    from fleet_tui.service.budgets import BudgetService
    from fleet_tui.sources.budgets import parse_budgets
    from fleet_tui.testing.budgets import BUDGETS_PATH, STATE_DIR
    from fleet_tui.testing.fleets import HOST, TENANT

    start = NOW - timedelta(days=3.5)
    samples = []
    for h in range(0, 85):
        days = h / 24
        used = 2.0 * days if days <= 3.0 else 6.0 + 48.0 * (days - 3.0)
        samples.append(
            UsageSample(
                tenant_id=TENANT,
                host=HOST,
                account="codex-pro",
                window="weekly",
                window_minutes=10080,
                used_percent=round(used, 1),
                resets_at=None,
                reset_confidence="user",
                observed_at=start + timedelta(hours=h),
                source="fixture",
            )
        )
    service = BudgetService(
        Located(BUDGETS_PATH, False), STATE_DIR, host=HOST, tenant_id=TENANT, checkpoints=False
    )
    service.add_samples(samples)
    text = BEHIND_FAST.format(tenant=TENANT, host=HOST)
    return service.report(parse_budgets(text, BUDGETS_PATH), NOW)


def test_a_behind_window_that_runs_out_before_the_reset_is_a_warning_in_the_cli() -> None:
    from fleet_tui.cli.budget import render_report
    from fleet_tui.model.records import BudgetStatus

    report = behind_but_fast_report()
    (window,) = report.accounts[0].windows
    assert window.status == BudgetStatus.BEHIND and window.exhaust_at is not None
    text = render_report(report)
    assert "⚠ RUNS OUT BEFORE RESET" in text.splitlines()[2]  # the account's head line
    assert "⚠ runs out before the reset: in 2 d 19 h (2026-11-29 04:" in text
    ascii_text = render_report(report, ascii_only=True)
    assert "! runs out before the reset: in 2 d 19 h" in ascii_text


async def test_the_budget_screen_says_the_same_words_as_the_cli() -> None:
    from fleet_tui.cli.budget import render_report
    from fleet_tui.testing.budgets import FixedBudgetSource
    from fleet_tui.ui.screens.budget import BudgetScreen
    from fleet_tui.ui.widgets.budget_panel import BudgetAccountPanel

    report = behind_but_fast_report()
    app = FleetApp(
        FixedSource(fleet_snapshot()),
        settings=SETTINGS,
        clock=lambda: NOW,
        watch=False,
        budget_source=FixedBudgetSource(report),
    )
    async with app.run_test(size=(160, 48)) as pilot:
        await first_poll(pilot, app)
        await pilot.press("b")
        for _ in range(100):
            await pilot.pause()
            if isinstance(app.screen, BudgetScreen) and app.screen.loads:
                break
        await settle(pilot)
        panel = app.screen.query_one(BudgetAccountPanel)
        shown = "\n".join(panel.render_line(y).text for y in range(panel.size.height))
        title = str(app.screen.query_one("#budget-title", Static).render())
    cli = render_report(report)
    warning = next(line.strip() for line in cli.splitlines() if "runs out before" in line)
    assert warning in shown  # word for word
    assert "⚠ RUNS OUT BEFORE RESET" in shown and "⚠ RUNS OUT BEFORE RESET" in cli
    assert "▽ behind" in shown and "▽ behind" in cli  # the status stays what it is
    assert "⚠ 1 runs out before the reset" in title


# -- watch and attach say which they are and how to return; the popup fits the agent -------------


class OperatorTerminal:
    """A terminal (a pty of `cols` x `rows`) attached to the operator's own tmux server `socket`,
    whose session `dash` plays the dashboard's pane: what a popup is drawn on."""

    def __init__(self, env: Any, cols: int, rows: int, socket: str = "outer") -> None:
        import fcntl
        import os
        import pty
        import struct
        import subprocess
        import termios

        env.start(socket, "dash", ["cat"], agent=False, width=cols, height=rows)
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        argv = env.runner.argv(socket, "attach-session", "-t", "=dash:")
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**env.env, "TERM": "xterm-256color"},
            start_new_session=True,
        )
        os.close(slave)
        self.out = b""

    def read(self) -> bytes:
        import os
        import select

        while select.select([self.master], [], [], 0.05)[0]:
            try:
                self.out += os.read(self.master, 65536)
            except OSError:
                break
        return self.out

    def close(self) -> None:
        import os

        self.proc.kill()
        self.proc.wait(timeout=5)
        os.close(self.master)


def _inner_clients(env: Any) -> list[str]:
    fmt = "#{client_width}x#{client_height} #{client_flags}"
    return env.tmux("mosaic-fleet", "list-clients", "-F", fmt).stdout.splitlines()


def test_watch_inside_tmux_is_a_popup_that_fits_the_agent_and_says_how_to_return(
    fleet_env: Any, monkeypatch: Any
) -> None:
    import subprocess

    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.control.actions import LiveActions
    from fleet_tui.service.collector import FleetCollector
    from tests.conftest import wait_until

    env = fleet_env
    env.start("mosaic-fleet", "rec", ["cat"], width=100, height=30)
    # a server of its own per terminal: one killed a moment ago may still remove its socket file
    for outer, cols, rows, inner in (("op1", 200, 60, "100x31"), ("op2", 80, 24, "78x22")):
        term = OperatorTerminal(env, cols, rows, outer)
        try:
            wait_until(
                lambda o=outer: env.tmux(o, "list-clients", "-F", "#{client_name}").stdout.strip(),
                message="the operator's client",
            )
            sock = env.runner.socket_path(outer)
            pid = env.tmux(outer, "display-message", "-p", "#{pid}").stdout.strip()
            monkeypatch.setenv("TMUX", f"{sock},{pid},0")
            pane = env.tmux(outer, "display-message", "-p", "-t", "=dash:", "#{pane_id}")
            monkeypatch.setenv("TMUX_PANE", pane.stdout.strip())
            actions = LiveActions(env.runner, env.state_dir, FleetConfig.from_flags())
            record = next(
                a
                for a in FleetCollector(FleetConfig.from_flags()).collect().agents
                if a.name == "rec"
            )
            handover = actions.handover(record, interactive=False)
            assert not handover.blocking  # a popup: the dashboard keeps running
            popup = subprocess.Popen(handover.argv, env=handover.env)
            try:
                clients = wait_until(lambda: _inner_clients(env), message="the popup's client")
                size, flags = clients[0].split(" ", 1)
                # the agent's whole window (100x30 and the client's status line) when the
                # operator's terminal has room; else the terminal less the popup's border
                assert size == inner and "read-only" in flags
                wait_until(
                    lambda t=term: b"fleet-tui WATCHING rec (read-only): C-b d returns" in t.read(),
                    message="the cue in the popup's status line",
                )
                assert b"fleet-tui: watching rec (read-only)" in term.out  # the popup's title
                assert (
                    env.tmux(
                        "mosaic-fleet",
                        "display-message",
                        "-p",
                        "-t",
                        "=rec:",
                        "#{window_width}x#{window_height}",
                    ).stdout.strip()
                    == "100x30"
                )
                env.tmux("mosaic-fleet", "detach-client", "-s", "=rec")
                assert popup.wait(timeout=10) == 0  # C-b d closes the popup
            finally:
                if popup.poll() is None:
                    popup.kill()
        finally:
            term.close()
            env.tmux(outer, "kill-server", check=False)


# -- how they look -------------------------------------------------------------------------------


def _snapshot_app(snapshot: Any = None, budgets: Any = None) -> FleetApp:
    return FleetApp(
        FixedSource(snapshot if snapshot is not None else fleet_snapshot()),
        actions=RecordingActions(),
        settings=SETTINGS,
        clock=lambda: NOW,
        watch=False,
        budget_source=budgets,
    )


def _after(*keys: str) -> Any:
    async def run(pilot: Any) -> None:
        await first_poll(pilot, pilot.app)
        await pilot.press(*keys)
        await settle(pilot)
        await pilot.app.workers.wait_for_complete()
        await settle(pilot, 3)

    return run


def test_warnings_with_agent_problems_look(snap_compare: Any) -> None:
    snap = with_long_unresponsive(fleet_snapshot(hung=True), "coder0-1", 720.0)
    assert snap_compare(_snapshot_app(snap), terminal_size=(80, 24), run_before=_after("W"))


def test_copy_dialog_look(snap_compare: Any) -> None:
    assert snap_compare(_snapshot_app(), terminal_size=(80, 24), run_before=_after("y"))


def test_budget_runs_out_before_the_reset_look(snap_compare: Any) -> None:
    from fleet_tui.testing.budgets import FixedBudgetSource

    app = _snapshot_app(budgets=FixedBudgetSource(behind_but_fast_report()))
    assert snap_compare(app, terminal_size=(80, 24), run_before=_after("b"))


async def test_ascii_terminal_gets_no_glyph_in_palette_warnings_or_budget_title() -> None:
    from fleet_tui.testing.budgets import FixedBudgetSource
    from fleet_tui.ui.screens.budget import BudgetScreen

    settings = DashboardSettings(poll_interval_s=3600, glyphs="ascii")
    snap = with_long_unresponsive(fleet_snapshot(), "coder0-1", 720.0)
    app = FleetApp(
        FixedSource(snap),
        settings=settings,
        clock=lambda: NOW,
        watch=False,
        budget_source=FixedBudgetSource(behind_but_fast_report()),
    )
    async with app.run_test(size=(160, 48)) as pilot:
        await first_poll(pilot, app)
        labels = await palette_labels(app, None)
        assert "Go to agent review" in labels
        assert all(label.isascii() for label in labels)
        await pilot.press("W")
        await settle(pilot)
        text = body_text(app)
        assert "! coder0-1: unresponsive" in text and text.isascii()
        await pilot.press("escape", "b")
        for _ in range(100):
            await pilot.pause()
            if isinstance(app.screen, BudgetScreen) and app.screen.loads:
                break
        await settle(pilot)
        title = str(app.screen.query_one("#budget-title", Static).render())
        assert "! 1 runs out before the reset" in title and title.isascii()
