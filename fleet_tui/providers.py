"""Token use today and budget cells for the fleet table: the collector's optional providers.

Service layer. The dashboard's usage provider never waits on the transcripts (a background
refresh); `ps` reads the usage index synchronously, but only when one exists already (made by
`fleet-tui usage` or the dashboard), so a first `ps` never walks gigabytes of transcripts.
"""

from __future__ import annotations

from datetime import datetime

from fleet_tui.budget_service import LiveBudgetSource
from fleet_tui.core.usage import agents_by_cwd
from fleet_tui.model import FleetSnapshot
from fleet_tui.service import BudgetProvider, FleetConfig, UsageProvider
from fleet_tui.sources.usage import (
    TodayTokens,
    UsageIndex,
    agents_today,
    claude_roots,
    codex_home,
    index_path,
    session_agents,
    tokens_today,
)


def budget_provider(budgets: LiveBudgetSource) -> BudgetProvider:
    """Budget cells from the budget source (none while no budgets file exists)."""
    return budgets.briefs


def dashboard_usage_provider(config: FleetConfig) -> UsageProvider:
    return TodayTokens(config.state_dir)


def ps_usage_provider(config: FleetConfig) -> UsageProvider | None:
    """A blocking, incremental read of an existing usage index; None when there is none."""
    roots, codex = claude_roots(), codex_home()
    if not index_path(config.state_dir, roots, codex).exists():
        return None

    def provide(snapshot: FleetSnapshot, now: datetime) -> dict[str, int]:
        pairs = [
            (a.name, a.tmux.cwd)
            for a in snapshot.agents
            if a.is_agent and a.tmux is not None and a.host == snapshot.host
        ]
        by_cwd = agents_by_cwd(pairs)
        by_session = session_agents(config.state_dir)
        with UsageIndex(config.state_dir, roots, codex) as index:
            found = tokens_today(index, by_cwd, now, by_session)
        return agents_today(snapshot, found, by_cwd, by_session)

    return provide
