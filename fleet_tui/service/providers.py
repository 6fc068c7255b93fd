"""Token use today and budget cells for the fleet table: the collector's optional providers.

Service layer. The dashboard's usage provider never waits on the transcripts (a background
refresh); `ps` reads the usage index synchronously, but only when one exists already (made by
`fleet-tui usage` or the dashboard), so a first `ps` never walks gigabytes of transcripts.
Imports are lazy: `ps` pays for the budget engine only when there is a budgets file, and for the
usage index only when there is one.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.config.paths import budgets_location
from fleet_tui.service.collector import BudgetProvider, UsageProvider

if TYPE_CHECKING:
    from fleet_tui.model.records import FleetSnapshot
    from fleet_tui.service.budgets import LiveBudgetSource


def budget_provider(budgets: LiveBudgetSource) -> BudgetProvider:
    """Budget cells from the budget source (none while no budgets file exists)."""
    return budgets.briefs


def ps_budget_provider(config: FleetConfig) -> BudgetProvider | None:
    """Budget cells for `ps`; None (nothing imported) when no budgets file is configured."""
    located = budgets_location()
    if not located.explicit and not located.path.exists():
        return None
    from fleet_tui.service.budgets import LiveBudgetSource

    return budget_provider(LiveBudgetSource.for_config(config))


def dashboard_usage_provider(config: FleetConfig) -> UsageProvider:
    from fleet_tui.sources.usage import TodayTokens

    return TodayTokens(config.state_dir)


def ps_usage_provider(config: FleetConfig) -> UsageProvider | None:
    """A blocking, incremental read of an existing usage index; None when there is none."""
    from fleet_tui.sources.usage_paths import claude_roots, codex_home, index_path

    roots, codex = claude_roots(), codex_home()
    if not index_path(config.state_dir, roots, codex).exists():
        return None

    def provide(snapshot: FleetSnapshot, now: datetime) -> dict[str, int]:
        import contextlib
        import sqlite3

        from fleet_tui.core.usage import today_by_agent
        from fleet_tui.sources.usage import (
            UsageIndex,
            agents_today,
            attribution_today,
            session_agents,
        )

        by_session = session_agents(config.state_dir)
        day = now.astimezone().date().isoformat()
        with UsageIndex(config.state_dir, roots, codex) as index:
            with contextlib.suppress(sqlite3.OperationalError):  # busy: the last sums will do
                index.refresh()
            attribution, by_cwd = attribution_today(index, snapshot, day, by_session)
            found = today_by_agent(index.buckets(), attribution, day)
        return agents_today(snapshot, found, by_cwd, by_session)

    return provide
