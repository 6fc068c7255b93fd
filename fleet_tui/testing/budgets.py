"""Deterministic budgets for snapshot tests, screenshots and benchmarks (no files, no clock).

Each builder returns a `BudgetReport` made by the real service from fixed budgets text, usage
samples and spend sums, at the fleet fixtures' NOW (Thursday 2026-11-26 09:30 UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleet_tui.config.paths import Located
from fleet_tui.model.records import UsageSample
from fleet_tui.service.budgets import BudgetReport, BudgetService
from fleet_tui.sources.budgets import BudgetsError, parse_budgets
from fleet_tui.testing.fleets import HOST, NOW, TENANT

BUDGETS_PATH = Path("/home/jarvis/.config/mosaic/budgets.yaml")
STATE_DIR = Path("/nonexistent/fleet-tui-fixture-state")

BUDGETS_TEXT = f"""\
version: 1
tenant_id: {TENANT}
host: {HOST}
accounts:
  - id: claude-max-a
    provider: anthropic
    runtime: claude
    regime: subscription
    windows:
      - {{name: 5h, minutes: 300}}
      - {{name: weekly, minutes: 10080, resets_at: "2026-11-30T00:00:00Z", reset_confidence: user}}
  - id: claude-max-b
    provider: anthropic
    runtime: claude
    regime: subscription
    agents: [research]
    windows:
      - {{name: weekly, minutes: 10080}}
  - id: codex-pro
    provider: openai
    runtime: codex
    regime: subscription
    windows:
      - {{name: weekly, minutes: 10080, resets_at: "2026-12-01T08:00:00Z", reset_confidence: estimated}}
  - id: openai-api
    provider: openai
    regime: api
    ceiling_usd: 200
    period: month
ladder:
  - {{rung: claude-opus, account: claude-max-b}}
  - {{rung: claude-sonnet, account: claude-max-a}}
  - {{rung: claude-haiku, account: claude-max-a}}
  - {{rung: codex, account: codex-pro}}
concurrency: {{max_agents: 6}}
"""


def _sample(
    account: str,
    window: str,
    minutes: int,
    at: datetime,
    used: float,
    resets: datetime | None,
    confidence: str = "provider",
) -> UsageSample:
    return UsageSample(
        tenant_id=TENANT,
        host=HOST,
        account=account,
        window=window,
        window_minutes=minutes,
        used_percent=round(used, 1),
        resets_at=resets,
        reset_confidence=confidence,
        observed_at=at,
        source="fixture",
    )


def fixture_samples(now: datetime = NOW) -> list[UsageSample]:
    """A week of hourly samples: claude-max-a ahead on its weekly window (faster lately),
    on pace on its 5-hour one; claude-max-b exhausted; codex-pro behind."""
    out: list[UsageSample] = []
    week_a = datetime(2026, 11, 23, tzinfo=UTC)
    h = 0
    while week_a + timedelta(hours=h) <= now:
        t = week_a + timedelta(hours=h)
        days = h / 24
        used = 12.0 * days + (18.0 * (days - 2.0) if days > 2.0 else 0.0)
        out.append(_sample("claude-max-a", "weekly", 10080, t, min(used, 100.0), None))
        h += 1
    five_reset = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    for m in range(0, 151, 10):
        t = five_reset - timedelta(minutes=300) + timedelta(minutes=m)
        out.append(_sample("claude-max-a", "5h", 300, t, m * 0.23, five_reset))
    b_reset = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
    for hh in range(0, 96, 2):
        t = now - timedelta(hours=96 - hh)
        out.append(_sample("claude-max-b", "weekly", 10080, t, min(100.0, 40 + hh * 1.1), b_reset))
    c_start = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    for hh in range(0, 49, 3):
        t = c_start + timedelta(hours=hh)
        out.append(
            _sample("codex-pro", "weekly", 10080, t, hh * 0.35, None, confidence="estimated")
        )
    return out


SPEND_TODAY = [
    ("orchestrator", 4.12, 812_000),
    ("coder0-1", 2.30, 455_000),
    ("coder0-0", 1.75, 390_000),
    ("review", 0.85, 160_000),
]


def fixture_service(now: datetime = NOW, *, text: str = BUDGETS_TEXT) -> BudgetService:
    service = BudgetService(
        Located(BUDGETS_PATH, False), STATE_DIR, host=HOST, tenant_id=TENANT, checkpoints=False
    )
    service.add_samples(fixture_samples(now))
    totals = service.spend.totals
    month_start_h = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() // 3600)
    now_h = int(now.timestamp() // 3600)
    for h in range(month_start_h, now_h, 6):  # $150 over the month so far, for openai-api
        totals.by_hour[(TENANT, "openai-api", h)] = [150.0 / ((now_h - month_start_h) / 6), 0.0]
    day = now_h // 24
    for agent, cost, tokens in SPEND_TODAY:
        totals.by_agent_day[(TENANT, agent, day)] = [cost, float(tokens)]
    return service


def budget_report(now: datetime = NOW) -> BudgetReport:
    """The fixture fleet's budgets: throttle, downgrade, behind and an api ceiling."""
    service = fixture_service(now)
    return service.report(parse_budgets(BUDGETS_TEXT, BUDGETS_PATH), now)


def missing_budgets_report(now: datetime = NOW) -> BudgetReport:
    """No budgets file at the default place (the screen explains how to start)."""
    service = fixture_service(now)
    return service.report(None, now)


def broken_budgets_report(now: datetime = NOW) -> BudgetReport:
    """A budgets file that does not parse: a degraded report naming file, line and field."""
    try:
        parse_budgets(BUDGETS_TEXT.replace("period: month", "period: fortnight"), BUDGETS_PATH)
    except BudgetsError as exc:
        error = str(exc)
    else:  # pragma: no cover - the text above is invalid on purpose
        raise AssertionError("expected a budgets error")
    base = missing_budgets_report(now)
    return BudgetReport(
        generated_at=now,
        tenant_id=base.tenant_id,
        host=base.host,
        budgets_path=str(BUDGETS_PATH),
        budgets_found=True,
        accounts=[],
        spend_today=base.spend_today,
        warnings=[],
        error=error,
    )


class FixedBudgetSource:
    """A `BudgetSource` serving a fixed report (or raising), for tests and screenshots."""

    def __init__(self, report: BudgetReport | Exception | None = None) -> None:
        self.report = report if report is not None else budget_report()
        self.loads = 0

    def load(self) -> BudgetReport:
        self.loads += 1
        if isinstance(self.report, Exception):
            raise self.report
        return self.report
