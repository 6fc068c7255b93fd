"""The budget screen: snapshots on fixed budgets (80x24 and 160x48, a missing and a broken
budgets file), and Pilot tests: `b` opens it from the fleet table, `esc` goes back, accounts
ahead of pace stand out, a failing source is a degraded message, data loads off the UI thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from textual.widget import Widget
from textual.widgets import Static

from fleet_tui.config.settings import DashboardSettings
from fleet_tui.service.budgets import BudgetReport
from fleet_tui.testing.budgets import (
    FixedBudgetSource,
    broken_budgets_report,
    budget_report,
    missing_budgets_report,
)
from fleet_tui.testing.fleets import NOW, FixedSource, RecordingActions, fleet_snapshot
from fleet_tui.ui.app import FleetApp
from fleet_tui.ui.screens import FleetScreen
from fleet_tui.ui.screens.budget import BudgetScreen
from fleet_tui.ui.widgets.budget_panel import BudgetAccountPanel

SIZES = [(80, 24), (160, 48)]


def app_for(budgets: FixedBudgetSource | None) -> FleetApp:
    return FleetApp(
        FixedSource(fleet_snapshot()),
        actions=RecordingActions(),
        settings=DashboardSettings(poll_interval_s=3600),
        clock=lambda: NOW + timedelta(seconds=1),
        watch=False,
        budget_source=budgets,
    )


async def open_budgets(pilot) -> None:  # type: ignore[no-untyped-def]
    app = pilot.app
    for _ in range(100):
        await pilot.pause()
        if app.polls or app.poll_error:
            break
    await pilot.press("b")
    for _ in range(100):
        await pilot.pause()
        screen = app.screen
        if isinstance(screen, BudgetScreen) and screen.loads:
            break
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


CASES: dict[str, Callable[[], FixedBudgetSource]] = {
    "budgets": lambda: FixedBudgetSource(budget_report()),
    "budgets_missing_file": lambda: FixedBudgetSource(missing_budgets_report()),
    "budgets_broken_file": lambda: FixedBudgetSource(broken_budgets_report()),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("case", list(CASES))
def test_budget_screen(snap_compare, case: str, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(app_for(CASES[case]()), terminal_size=size, run_before=open_budgets)


def panel_text(widget: Widget) -> str:
    """What a widget shows, line by line (plain text)."""
    return "\n".join(widget.render_line(y).text for y in range(widget.size.height))


class ThreadRecordingSource(FixedBudgetSource):
    def __init__(self, report: BudgetReport | Exception) -> None:
        super().__init__(report)
        self.threads: list[str] = []

    def load(self) -> BudgetReport:
        self.threads.append(threading.current_thread().name)
        return super().load()


async def test_b_opens_budgets_and_esc_goes_back() -> None:
    source = ThreadRecordingSource(budget_report())
    app = app_for(source)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_budgets(pilot)
        screen = app.screen
        assert isinstance(screen, BudgetScreen)
        assert source.threads and threading.main_thread().name not in source.threads
        panels = list(screen.query(BudgetAccountPanel))
        assert [p.account.account for p in panels] == [
            "claude-max-a",
            "claude-max-b",
            "codex-pro",
            "openai-api",
        ]
        ahead = panels[0]
        assert ahead.has_class("-ahead") and not panels[2].has_class("-ahead")
        assert panels[1].has_class("-exhausted")
        text = panel_text(ahead)
        assert "▲ AHEAD OF PACE" in text
        assert "65.2 % used · ideal 48.5 %" in text
        assert "resets in 3 d 14 h" in text and "(user)" in text
        assert "allowed 9.7 %/day · recent 30.0 %/day" in text
        assert "THROTTLE" in text and "throttle to the even rate" in text
        assert "DOWNGRADE" in panel_text(panels[1])
        spend = panel_text(screen.query_one("#budget-spend", Static))
        assert "orchestrator" in spend and "$4.12" in spend
        title = panel_text(screen.query_one("#budget-title", Static))
        assert "▲ 1 ahead of pace" in title
        await pilot.press("b")  # already there: not pushed twice
        assert sum(isinstance(s, BudgetScreen) for s in app.screen_stack) == 1
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)


async def test_a_failing_budget_source_is_degraded_not_a_crash() -> None:
    app = app_for(FixedBudgetSource(OSError("disk on fire")))
    async with app.run_test(size=(100, 30)) as pilot:
        await open_budgets(pilot)
        assert isinstance(app.screen, BudgetScreen)
        notice = panel_text(app.screen.query_one("#budget-notice", Static))
        assert "Budgets could not be read." in notice and "disk on fire" in notice
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_a_broken_budgets_file_names_file_line_and_field() -> None:
    app = app_for(FixedBudgetSource(broken_budgets_report()))
    async with app.run_test(size=(120, 30)) as pilot:
        await open_budgets(pilot)
        notice = panel_text(app.screen.query_one("#budget-notice", Static))
        assert "budgets.yaml:" in notice and "accounts[3].period" in notice
        assert not list(app.screen.query(BudgetAccountPanel))


async def test_without_a_budget_source_the_screen_says_so() -> None:
    app = app_for(None)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_budgets(pilot)
        notice = panel_text(app.screen.query_one("#budget-notice", Static))
        assert "not available in this view" in notice


async def test_live_source_on_real_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The dashboard's own source, on a budgets file and a usage ledger on disk."""
    import json as _json
    from datetime import UTC, datetime

    from fleet_tui.config.paths import Located
    from fleet_tui.service.budgets import LiveBudgetSource

    now = datetime.now(UTC)
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "version: 1\ntenant_id: jarvis\naccounts:\n  - id: claude-max-a\n    runtime: claude\n"
        "    windows:\n      - {name: weekly, minutes: 10080}\n"
    )
    state = tmp_path / "state"
    state.mkdir()
    sample = {
        "tenant_id": "jarvis",
        "host": "h",
        "account": "claude-max-a",
        "window": "weekly",
        "window_minutes": 10080,
        "used_percent": 97.0,
        "resets_at": (now + timedelta(days=6)).isoformat(),
        "reset_confidence": "provider",
        "observed_at": now.isoformat(),
        "source": "statusline",
    }
    (state / "usage.jsonl").write_text(_json.dumps(sample) + "\n")
    app = app_for(None)
    app.budget_source = LiveBudgetSource(Located(budgets, True), state)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_budgets(pilot)
        panels = list(app.screen.query(BudgetAccountPanel))
        assert len(panels) == 1 and panels[0].has_class("-ahead")
        assert "97.0 % used" in panel_text(panels[0])


@pytest.mark.parametrize("width", [40, 74, 156])
def test_panel_lines_fit_and_continue_indented(width: int) -> None:
    # 74 cells: a panel's content at 80 columns. A line that wrapped on its own would start at
    # the panel's left edge, under the window names; ours continue under the text they extend.
    from fleet_tui.ui.widgets.budget_panel import LABEL, account_text

    report = budget_report()
    for account in report.accounts:
        lines = account_text(account, width, report.generated_at).plain.split("\n")
        assert all(len(line) <= width for line in lines), [x for x in lines if len(x) > width]
        window_names = {w.name for w in account.windows}
        for line in lines[1:]:
            head = line[:LABEL].strip()
            assert line.startswith(" ") or line.startswith("rung ") or head in window_names, line
    reasons = [
        line
        for a in report.accounts
        for line in account_text(a, 74, report.generated_at).plain.split("\n")
        if line.startswith("     ") and not line.startswith("      ")
    ]
    assert reasons, "a long rung reason continues indented under its start"
