"""Regenerate the SVG screenshots in this folder from the deterministic fixtures.

    .venv/bin/python screenshots/generate.py [WORD]   # WORD: only the shots whose name has it

The same fleets as the snapshot tests (fleet_tui/testing/fleets.py): no tmux, a fixed clock.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.config.paths import Located
from fleet_tui.config.settings import DashboardSettings
from fleet_tui.errors import TmuxNotInstalled
from fleet_tui.testing.alerts import inbox_snapshot, write_inbox_state
from fleet_tui.testing.budgets import (
    FixedBudgetSource,
    broken_budgets_report,
    budget_report,
    missing_budgets_report,
)
from fleet_tui.testing.fleets import (
    NOW,
    FixedSource,
    RecordingActions,
    empty_snapshot,
    fleet_snapshot,
)
from fleet_tui.ui.alerting import TerminalAlerts
from fleet_tui.ui.app import FleetApp

HERE = Path(__file__).resolve().parent

SHOTS: list[tuple[str, Callable[[], FixedSource], tuple[int, int], tuple[str, ...]]] = [
    ("fleet-160x48", lambda: FixedSource(fleet_snapshot()), (160, 48), ()),
    ("fleet-80x24", lambda: FixedSource(fleet_snapshot()), (80, 24), ()),
    ("fleet-filter-waiting", lambda: FixedSource(fleet_snapshot()), (120, 30), ("asterisk",)),
    ("fleet-sorted-by-health", lambda: FixedSource(fleet_snapshot()), (120, 30), ("H",)),
    (
        "fleet-degraded",
        lambda: FixedSource(fleet_snapshot(hung=True, systemd=False, roster=False)),
        (120, 30),
        (),
    ),
    ("detail", lambda: FixedSource(fleet_snapshot()), (120, 40), ("down", "down", "enter")),
    ("detail-inferred", lambda: FixedSource(fleet_snapshot()), (120, 40), (*["down"] * 6, "enter")),
    ("help", lambda: FixedSource(fleet_snapshot()), (120, 40), ("question_mark",)),
    ("stream", lambda: FixedSource(fleet_snapshot()), (120, 30), ("s",)),
    ("attach-confirm", lambda: FixedSource(fleet_snapshot()), (120, 30), ("a",)),
    (
        "send-composer",
        lambda: FixedSource(fleet_snapshot()),
        (120, 30),
        ("m", *"please", "space", *"rebase"),
    ),
    ("audit-log", lambda: FixedSource(fleet_snapshot()), (120, 30), ("L",)),
    ("empty-fleet", lambda: FixedSource(empty_snapshot()), (100, 24), ()),
    (
        "no-tmux",
        lambda: FixedSource(
            TmuxNotInstalled(
                "tmux is not installed (no 'tmux' on PATH); install it, e.g. 'apt-get install tmux'"
            )
        ),
        (100, 24),
        (),
    ),
]


# The budget screen (`b`) on the fixed budgets of fleet_tui/testing/budgets.py.
BUDGET_SHOTS: list[tuple[str, Callable[[], FixedBudgetSource], tuple[int, int]]] = [
    ("budget-160x48", lambda: FixedBudgetSource(budget_report()), (160, 48)),
    ("budget-80x24", lambda: FixedBudgetSource(budget_report()), (80, 24)),
    ("budget-no-file", lambda: FixedBudgetSource(missing_budgets_report()), (100, 30)),
    ("budget-broken-file", lambda: FixedBudgetSource(broken_budgets_report()), (120, 24)),
]


async def shoot(
    name: str,
    source: FixedSource,
    size: tuple[int, int],
    keys: tuple[str, ...],
    budgets: FixedBudgetSource | None = None,
    alerts: TerminalAlerts | None = None,
    agent: str | None = None,
) -> Path:
    """The screen after `keys`; with `agent`, on that agent's row, on a fleet whose lifecycle
    keys open their dialogs (a configuration: nothing runs before a name is typed)."""
    app = FleetApp(
        source,
        actions=RecordingActions(),
        settings=DashboardSettings(poll_interval_s=3600),
        clock=lambda: NOW + timedelta(seconds=1),
        watch=False,
        budget_source=budgets,
        alerts=alerts,
    )
    async with app.run_test(size=size) as pilot:
        for _ in range(100):
            await pilot.pause()
            if app.polls or app.poll_error:
                break
        if agent is not None and app.snapshot is not None:
            app.lifecycle_config = FleetConfig.from_flags()
            app.go_to_agent(next(a.key for a in app.snapshot.agents if a.name == agent))
            await pilot.pause()
        if keys:
            await pilot.press(*keys)
        for _ in range(10):
            await pilot.pause(0.05)
        others = [w for w in app.workers if w.group != "stream"]  # the stream follows forever
        if others:
            await app.workers.wait_for_complete(others)
        await pilot.pause()
        path = HERE / f"{name}.svg"
        path.write_text(app.export_screenshot(title=f"fleet-tui — {name}"))
        return path


async def main() -> None:
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    # the dashboard's colours follow the terminal (ui.themes.colour_depth): draw the 24-bit
    # themes whatever terminal this runs in
    os.environ["COLORTERM"] = "truecolor"
    for name in ("NO_COLOR", "TEXTUAL_COLOR_SYSTEM"):
        os.environ.pop(name, None)
    for name, source, size, keys in SHOTS:
        if only in name:
            print(await shoot(name, source(), size, keys))
    for name, budgets, size in BUDGET_SHOTS:
        if only in name:
            print(await shoot(name, FixedSource(fleet_snapshot()), size, ("b",), budgets()))
    if only in "inbox":
        print(await shoot_inbox())
    for name, agent, keys in LIFECYCLE_SHOTS:
        if only in name:
            print(await shoot(name, FixedSource(fleet_snapshot()), (120, 30), keys, agent=agent))


# The typed-name confirmations of start (a missing agent) and stop (ui.lifecycle).
LIFECYCLE_SHOTS: list[tuple[str, str, tuple[str, ...]]] = [
    ("start-confirm", "coder1-0", ("u", *"coder1")),
    ("stop-confirm", "review", ("x",)),
]


async def shoot_inbox() -> Path:
    """The inbox (`i`) with two open episodes, planner's silenced (fleet_tui.testing.alerts),
    its times in UTC."""
    os.environ["TZ"] = "UTC"
    time.tzset()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        write_inbox_state(state)
        alerts, _ = TerminalAlerts.load(Located(Path(tmp) / "alerts.yaml", False), state)
        return await shoot("inbox", FixedSource(inbox_snapshot()), (120, 30), ("i",), alerts=alerts)


if __name__ == "__main__":
    asyncio.run(main())
