"""The breach ladder steps DOWN from the model an account actually spends on (issue 12, item 8).

Pure tests of `core.ladder.decide` and `rung_for_model`, then `fleet-tui budget --json` run as a
subprocess on real files: budgets.yaml, spend.jsonl and heartbeats in the test's own state dir.
Last, the dashboard's budget cells: only rows that did not come from the gateway are this host's.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import FleetEnv

from fleet_tui.config.paths import Located
from fleet_tui.core.ladder import AccountStanding, Rung, decide, rung_for_model
from fleet_tui.service.budgets import BudgetService, LiveBudgetSource
from fleet_tui.testing.fleets import fleet_snapshot

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a fixed instant: pure tests need no clock

# The README's ladder: every claude rung is paid (by runtime) by the subscription, codex by
# the openai account; the anthropic api account pays for no rung of its own.
LADDER = [
    Rung("claude-opus", "claude-max-a"),
    Rung("claude-sonnet", "claude-max-a"),
    Rung("claude-haiku", "claude-max-a"),
    Rung("codex", "openai-api"),
]


def _over(account: str, until: datetime | None = None) -> AccountStanding:
    return AccountStanding(
        account, exhausted=True, exhausted_why=f"{account}: ceiling reached", available_at=until
    )


# -- core ----------------------------------------------------------------------------------------


def test_rung_for_model_names_the_rung_of_a_real_model_id() -> None:
    assert rung_for_model(LADDER, "claude-opus") == 0
    assert rung_for_model(LADDER, "claude-opus-4-1-20250805") == 0
    assert rung_for_model(LADDER, "anthropic/claude-sonnet-4-5") == 1
    assert rung_for_model(LADDER, "haiku") == 2  # Claude Code's short alias
    assert rung_for_model(LADDER, "CODEX") == 3
    assert rung_for_model(LADDER, "gpt-5") is None
    assert rung_for_model(LADDER, None) is None
    assert rung_for_model(LADDER, "  ") is None
    # the longest rung name that starts the model wins
    two = [Rung("gpt", "a"), Rung("gpt-5-mini", "b")]
    assert rung_for_model(two, "gpt-5-mini-2025") == 1


def test_an_api_account_over_its_ceiling_steps_down_from_the_model_it_spends_on() -> None:
    standings = {"anthropic-api": _over("anthropic-api")}
    d = decide("anthropic-api", LADDER, standings, T0, current="claude-opus-4-1")
    assert (d.rung, d.action) == ("claude-sonnet", "downgrade")
    assert "from claude-opus to claude-sonnet" in d.reason, d.reason
    assert "to claude-opus" not in d.reason

    d = decide("anthropic-api", LADDER, standings, T0, current="claude-sonnet-4-5")
    assert (d.rung, d.action) == ("claude-haiku", "downgrade")
    assert "from claude-sonnet to claude-haiku" in d.reason


def test_an_account_with_no_known_model_starts_from_the_top_and_says_so() -> None:
    standings = {"anthropic-api": _over("anthropic-api")}
    d = decide("anthropic-api", LADDER, standings, T0)
    assert (d.rung, d.action) == ("claude-opus", "downgrade")
    assert "from the top of the ladder" in d.reason and "no model known" in d.reason
    d = decide("anthropic-api", LADDER, standings, T0, current="gpt-5")
    assert "from the top of the ladder" in d.reason and "gpt-5 is on no rung" in d.reason


def test_an_exhausted_subscription_skips_its_own_rungs_below_its_model() -> None:
    standings = {"claude-max-a": _over("claude-max-a", T0 + timedelta(hours=3))}
    d = decide("claude-max-a", LADDER, standings, T0, current="claude-sonnet")
    assert (d.rung, d.action) == ("codex", "downgrade")
    assert "from claude-sonnet to codex (openai-api)" in d.reason
    d = decide("claude-max-a", LADDER, standings, T0)  # unknown: taken to run at its top rung
    assert (d.rung, d.action) == ("codex", "downgrade")
    assert d.reason == "claude-max-a: ceiling reached: downgrade to codex (openai-api)"


def test_nothing_below_the_current_rung_queues_and_names_it() -> None:
    standings = {
        "claude-max-a": _over("claude-max-a", T0 + timedelta(hours=3)),
        "openai-api": _over("openai-api", T0 + timedelta(hours=1)),
    }
    d = decide("claude-max-a", LADDER, standings, T0, current="claude-haiku")
    assert (d.rung, d.action, d.until) == ("codex", "queue", T0 + timedelta(hours=1))
    assert "every rung below claude-haiku is exhausted" in d.reason
    d = decide("openai-api", LADDER, standings, T0, current="codex")
    assert (d.rung, d.action) == ("codex", "queue")
    assert "no rung below codex" in d.reason


def test_within_budget_an_account_without_rungs_shows_the_rung_it_runs_at() -> None:
    d = decide("anthropic-api", LADDER, {}, T0, current="claude-sonnet-4-5")
    assert (d.rung, d.action) == ("claude-sonnet", "normal")
    assert decide("claude-max-a", LADDER, {}, T0, current="claude-haiku").rung == "claude-opus"


# -- through `fleet-tui budget --json` on real files ----------------------------------------------

BUDGETS = """\
version: 1
tenant_id: jarvis
accounts:
  - id: claude-max-a
    provider: anthropic
    runtime: claude
    regime: subscription
    agents: [coder0]
    windows:
      - {name: weekly, minutes: 10080}
  - id: anthropic-api
    provider: anthropic
    runtime: claude
    regime: api
    ceiling_usd: 5
    period: month
  - id: openai-api
    provider: openai
    runtime: codex
    regime: api
    ceiling_usd: 200
    period: month
ladder: [claude-opus, claude-sonnet, claude-haiku, codex]
"""


def _stamp(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _spend(now: datetime, model: str | None, cost: float, minutes_ago: float) -> str:
    rec: dict[str, Any] = {
        "tenant_id": "jarvis",
        "host": "h1",
        "ts": _stamp(now - timedelta(minutes=minutes_ago)),
        "agent": "coder1",
        "account": "anthropic-api",
        "input_tokens": 1000,
        "output_tokens": 100,
        "cost_usd": cost,
    }
    if model is not None:
        rec["model"] = model
    return json.dumps(rec)


def _world(world: FleetEnv, spend: list[str]) -> None:
    budgets = world.config_home / "mosaic" / "budgets.yaml"
    budgets.parent.mkdir(parents=True, exist_ok=True)
    budgets.write_text(BUDGETS)
    world.state_dir.mkdir(parents=True, exist_ok=True)
    (world.state_dir / "spend.jsonl").write_text("".join(line + "\n" for line in spend))


def _api_account(world: FleetEnv) -> dict[str, Any]:
    res = world.cli("budget", "--json")
    assert res.rc == 0, res
    data = json.loads(res.stdout)
    (acct,) = [a for a in data["accounts"] if a["account"] == "anthropic-api"]
    assert acct["rung_action"] == "downgrade", acct
    return dict(acct)


def test_budget_json_steps_down_from_the_latest_spend_records_model(fleet_env: FleetEnv) -> None:
    # the start of this month (or the minute it began, if the test runs in its first minutes)
    now = datetime.now(UTC)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    ago = min(5.0, (now - month).total_seconds() / 120)
    _world(
        fleet_env,
        [
            _spend(now, "claude-haiku-4-5", 1.0, 2 * ago),  # older: not what it spends on now
            _spend(now, "claude-opus-4-1-20250805", 6.0, ago),
            _spend(now, None, 0.5, ago / 2),  # a record without a model changes nothing
        ],
    )
    acct = _api_account(fleet_env)
    assert acct["rung"] == "claude-sonnet", acct["rung_reason"]
    assert "from claude-opus to claude-sonnet" in acct["rung_reason"]


def test_budget_json_falls_back_to_the_model_its_agents_report(fleet_env: FleetEnv) -> None:
    now = datetime.now(UTC)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    ago = min(5.0, (now - month).total_seconds() / 120)
    _world(fleet_env, [_spend(now, None, 6.0, ago)])
    acct = _api_account(fleet_env)
    assert acct["rung"] == "claude-opus" and "no model known" in acct["rung_reason"]

    hb = {
        "v": 1,
        "tenant_id": "jarvis",
        "host": "h1",
        "agent": "coder1",  # not listed by claude-max-a: the api account's, by runtime
        "seq": 3,
        "ts": _stamp(now),
        "interval_s": 10,
        "state": "busy",
        "runtime": "claude",
        "model": "claude-sonnet-4-5",
    }
    beats = fleet_env.state_dir / "heartbeats"
    beats.mkdir(parents=True, exist_ok=True)
    (beats / "coder1.json").write_text(json.dumps(hb))
    acct = _api_account(fleet_env)
    assert acct["rung"] == "claude-haiku", acct["rung_reason"]
    assert "from claude-sonnet to claude-haiku" in acct["rung_reason"]


def test_the_latest_model_survives_a_restart_from_the_checkpoint(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    bpath = tmp_path / "budgets.yaml"
    bpath.write_text(BUDGETS)
    now = T0
    (state / "spend.jsonl").write_text(_spend(now, "claude-opus-4-1", 6.0, 1) + "\n")
    first = BudgetService(Located(bpath, True), state)
    first.load(now)
    first._save("spend", first.spend)
    again = BudgetService(Located(bpath, True), state)
    assert again.spend.cursor.offset > 0  # restored, not read again
    (acct,) = [a for a in again.load(now).accounts if a.account == "anthropic-api"]
    assert (acct.rung, acct.rung_action) == ("claude-sonnet", "downgrade"), acct.rung_reason


# -- budget cells: local rows only ----------------------------------------------------------------


def test_budget_cells_go_to_local_rows_never_to_a_remote_row_named_like_this_host(
    fleet_env: FleetEnv,
) -> None:
    now = datetime.now(UTC)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    ago = min(5.0, (now - month).total_seconds() / 120)
    _world(fleet_env, [_spend(now, "claude-opus-4-1", 1.0, ago)])
    snap = fleet_snapshot()
    local = snap.agents[0]
    agents = [
        local.model_copy(update={"name": "coder0", "runtime": "claude", "host": "elsewhere"}),
        local.model_copy(
            update={"name": "spoof", "runtime": "claude", "host": snap.host, "remote": True}
        ),
    ]
    snap = snap.model_copy(update={"agents": agents})
    source = LiveBudgetSource(
        Located(fleet_env.config_home / "mosaic" / "budgets.yaml", True), fleet_env.state_dir
    )
    briefs = source.briefs(snap, now)
    assert set(briefs) == {"coder0"}, briefs
    assert briefs["coder0"].account == "claude-max-a"
