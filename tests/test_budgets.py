"""budgets.yaml v1, the incremental ledger readers, bad input, and the `budget` verb run through
fleet_tui.cli.main.main on real files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleet_tui.cli.main import main
from fleet_tui.config.paths import Located, budgets_location
from fleet_tui.service.budgets import BudgetService, briefs_for
from fleet_tui.sources.budgets import BudgetsError, parse_budgets
from fleet_tui.sources.ledger_read import SpendLedgerReader, UsageLedgerReader
from fleet_tui.testing.budgets import budget_report
from fleet_tui.testing.fleets import fleet_snapshot

# "Now" of the test that runs: `_fresh_now` sets it before each test (the suite takes
# minutes; a value taken at import would be minutes old by the time a test reads it).
NOW: datetime  # no clock read at import: every test reads the one its fixture took


@pytest.fixture(autouse=True)
def _fresh_now() -> None:
    global NOW
    NOW = datetime.now(UTC).replace(microsecond=0)


GOOD = """\
version: 1
tenant_id: jarvis
accounts:
  - id: claude-max-a
    provider: anthropic
    runtime: claude
    regime: subscription
    windows:
      - {name: 5h, minutes: 300}
      - {name: weekly, minutes: 10080, resets_at: "2026-11-30T00:00:00Z", reset_confidence: user}
  - id: openai-api
    provider: openai
    regime: api
    ceiling_usd: 200
    period: month
ladder: [claude-opus, claude-sonnet, claude-haiku, codex]
concurrency: {max_agents: 6}
"""


def parse_error(text: str) -> str:
    with pytest.raises(BudgetsError) as exc:
        parse_budgets(text, Path("b.yaml"))
    return str(exc.value)


def test_the_design_example_parses() -> None:
    loaded = parse_budgets(GOOD, Path("b.yaml"))
    a = loaded.config.accounts[0]
    assert a.windows[1].resets_at == datetime(2026, 11, 30, tzinfo=UTC)
    assert a.windows[1].confidence == "user" and a.windows[0].confidence == "unknown"
    assert loaded.ladder[0] == ("claude-opus", "claude-max-a")  # by runtime
    assert loaded.ladder[3] == ("codex", None)
    assert any("ladder[3]: no account pays for rung 'codex'" in w for w in loaded.warnings)
    assert loaded.config.concurrency.max_agents == 6


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("version: 1", "version: 2"),
            "b.yaml:1: version: this fleet-tui reads budgets version 1 (got 2)",
        ),
        (
            ("regime: api", "regime: metered"),
            "b.yaml:13: accounts[1].regime: Input should be 'subscription' or 'api'",
        ),
        (
            ("minutes: 300", "minutes: -5"),
            "b.yaml:9: accounts[0].windows[0].minutes: Input should be greater than 0",
        ),
        (
            ("reset_confidence: user", "reset_confidence: sure"),
            "b.yaml:10: accounts[0].windows[1].reset_confidence",
        ),
        (
            ('"2026-11-30T00:00:00Z"', "2026-11-30 00:00:00"),
            "b.yaml:10: accounts[0].windows[1].resets_at: needs a time zone",
        ),
        (
            ("ceiling_usd: 200", "ceiling_usd: -1"),
            "b.yaml:14: accounts[1].ceiling_usd: Input should be greater than 0",
        ),
        (("period: month", "period: fortnight"), "b.yaml:15: accounts[1].period"),
        (
            ("    runtime: claude\n", "    runtime: claude\n    colour: red\n"),
            "b.yaml:7: accounts[0].colour: unknown field",
        ),
        (
            ("  - id: openai-api", "  - id: claude-max-a"),
            "b.yaml:11: accounts[1].id: 'claude-max-a' is already defined",
        ),
        (
            ("      - {name: 5h, minutes: 300}", "      - {name: weekly, minutes: 300}"),
            "accounts[0].windows[1].name: 'weekly' is already defined",
        ),
        (
            ("tenant_id: jarvis\n", "tenant_id: jarvis\ntenant_id: x\n"),
            "b.yaml:3: duplicate key 'tenant_id'",
        ),
        (
            ("    regime: subscription\n", "    regime: subscription\n    pacing: rapid\n"),
            "b.yaml:8: accounts[0].pacing: rapid needs rapid_authorized_until",
        ),
        (("accounts:", "accounts: ["), "b.yaml:"),
        # YAML reads these as numbers or booleans; pydantic would quietly coerce them.
        (
            ("minutes: 300", "minutes: true"),
            "b.yaml:9: accounts[0].windows[0].minutes: Input should be a valid integer (got True)",
        ),
        (
            ('"2026-11-30T00:00:00Z"', "12"),
            "b.yaml:10: accounts[0].windows[1].resets_at: must be a timestamp with a time zone",
        ),
        (
            ("ceiling_usd: 200", "ceiling_usd: .inf"),
            "b.yaml:14: accounts[1].ceiling_usd: Input should be a finite number",
        ),
        (
            ("ceiling_usd: 200", "ceiling_usd: true"),
            "b.yaml:14: accounts[1].ceiling_usd: must be a number (got True)",
        ),
        (
            ("concurrency: {max_agents: 6}", "concurrency: {max_agents: yes}"),
            "b.yaml:17: concurrency.max_agents: Input should be a valid integer",
        ),
        (
            ("version: 1", "version: true"),
            "b.yaml:1: version: this fleet-tui reads budgets version 1 (got True)",
        ),
        (
            ("    provider: anthropic\n", "\tprovider: anthropic\n"),
            "(a tab: YAML indents with spaces only)",
        ),
    ],
)
def test_bad_budgets_name_file_line_and_field(edit: tuple[str, str], expected: str) -> None:
    old, new = edit
    assert old in GOOD
    assert expected in parse_error(GOOD.replace(old, new, 1))


def test_missing_ceiling_is_a_warning_not_an_error() -> None:
    loaded = parse_budgets(GOOD.replace("    ceiling_usd: 200\n", ""), Path("b.yaml"))
    assert any("b.yaml:11: accounts[1].ceiling_usd: missing" in w for w in loaded.warnings)


def test_settings_of_the_other_regime_are_warned_about_not_silently_dropped() -> None:
    text = GOOD.replace(
        "    regime: subscription\n", "    regime: subscription\n    ceiling_usd: 50\n"
    ).replace("    period: month\n", "    period: month\n    windows: [{name: 5h, minutes: 300}]\n")
    w = parse_budgets(text, Path("b.yaml")).warnings
    assert any(x.startswith("b.yaml:8: accounts[0].ceiling_usd: ignored") for x in w), w
    assert any(x.startswith("b.yaml:17: accounts[1].windows: ignored") for x in w), w


# -- ledgers ------------------------------------------------------------------------------------


def usage_line(account: str = "claude-max-a", used: float = 10.0, **kw: object) -> str:
    rec = {
        "tenant_id": "jarvis",
        "host": "h",
        "account": account,
        "window": "weekly",
        "window_minutes": 10080,
        "used_percent": used,
        "resets_at": (NOW + timedelta(days=3)).isoformat().replace("+00:00", "Z"),
        "reset_confidence": "provider",
        "observed_at": NOW.isoformat().replace("+00:00", "Z"),
        "source": "test",
    }
    rec.update(kw)
    return json.dumps(rec)


def spend_line(
    agent: str, cost: float | None, ts: datetime | None = None, account: str = "openai-api"
) -> str:
    ts = ts or NOW
    return json.dumps(
        {
            "tenant_id": "jarvis",
            "host": "h",
            "ts": ts.isoformat().replace("+00:00", "Z"),
            "agent": agent,
            "account": account,
            "model": "gpt",
            "input_tokens": 100,
            "output_tokens": 50,
            "cost_usd": cost,
        }
    )


def test_spend_reader_is_incremental_keeps_partial_lines_and_skips_broken_ones(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spend.jsonl"
    path.write_text(spend_line("a", 1.5) + "\n" + "{not json\n" + spend_line("b", 2.0)[:30])
    r = SpendLedgerReader(path)
    r.read()
    assert r.totals.records == 1
    assert r.warnings == [f"{path}:2: not JSON"]
    offset = r.cursor.offset
    # the writer finishes its line, appends another with a bad field
    with open(path, "a") as f:
        f.write(spend_line("b", 2.0)[30:] + "\n")
        f.write(spend_line("c", -3.0) + "\n")
    stats = r.read()
    assert stats.lines == 2 and r.cursor.offset > offset
    assert r.totals.records == 2
    day = int(NOW.timestamp() // 86400)
    assert r.totals.by_agent_day[("jarvis", "b", day)][0] == 2.0
    assert f"{path}:4: cost_usd: must be a non-negative number" in r.warnings
    # nothing new: nothing read
    assert r.read().lines == 0


def test_spend_reader_restarts_on_a_replaced_file_and_restores_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "spend.jsonl"
    path.write_text("".join(spend_line(f"a{i}", 1.0) + "\n" for i in range(10)))
    r = SpendLedgerReader(path)
    r.read()
    assert r.totals.records == 10
    ckpt = json.loads(json.dumps(r.checkpoint()))
    r2 = SpendLedgerReader(path)
    assert r2.restore(ckpt)
    with open(path, "a") as f:
        f.write(spend_line("late", 4.0) + "\n")
    assert r2.read().lines == 1 and r2.totals.records == 11
    # replaced by a shorter file: read from the start
    tmp = tmp_path / "new"
    tmp.write_text(spend_line("z", 9.0) + "\n")
    os.replace(tmp, path)
    stats = r2.read()
    assert stats.restarted and r2.totals.records == 1


def test_usage_reader_reports_out_of_range_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    path.write_text(
        "\n".join(
            [
                usage_line(used=10.0),
                usage_line(used=-4.0),
                usage_line(used=140.0),
                usage_line(used="lots"),
                usage_line(observed_at="yesterday"),
                usage_line(used=12.0, observed_at=(NOW + timedelta(minutes=1)).isoformat()),
            ]
        )
        + "\n"
    )
    r = UsageLedgerReader(path)
    r.read()
    s = r.series[("jarvis", "claude-max-a", "weekly")]
    assert s.used == [10.0, 12.0]
    w = r.warnings
    assert f"{path}:2: used_percent: must be between 0 and 100 (got -4.0)" in w
    assert f"{path}:3: used_percent: must be between 0 and 100 (got 140.0)" in w
    assert f"{path}:4: used_percent: must be a number" in w
    assert any(x.startswith(f"{path}:5: observed_at:") for x in w)


def _setup(tmp_path: Path, budgets: str = GOOD) -> tuple[Path, Path]:
    """A budgets file and a state dir. GOOD's fixed weekly reset becomes one 3 days from now
    (the window began 4 days ago): samples of the last hours are in the current window
    whatever the day and hour the suite runs (with the fixed one, a sample 3 h old fell in the
    window before during the first hours of each week's window)."""
    state = tmp_path / "state"
    state.mkdir()
    bpath = tmp_path / "budgets.yaml"
    anchor = (NOW + timedelta(days=3)).isoformat().replace("+00:00", "Z")
    bpath.write_text(budgets.replace("2026-11-30T00:00:00Z", anchor))
    return bpath, state


def test_service_warns_of_unknown_accounts_and_past_resets(tmp_path: Path) -> None:
    text = GOOD.replace("2026-11-30T00:00:00Z", (NOW - timedelta(days=9)).isoformat())
    bpath, state = _setup(tmp_path, text)
    (state / "usage.jsonl").write_text(
        usage_line(used=20.0) + "\n" + usage_line("nobody", used=5.0) + "\n"
    )
    svc = BudgetService(Located(bpath, True), state)
    report = svc.load(NOW)
    w = report.warnings
    assert (
        f"{state / 'usage.jsonl'}:2: account: 'nobody' is not in {bpath} (its samples are left out)"
        in w
    )
    assert any("claude-max-a weekly: reset" in x and "rolled forward 2 window(s)" in x for x in w)
    weekly = report.accounts[0].windows[1]
    assert weekly.resets_at is not None and weekly.resets_at > NOW
    assert weekly.reset_confidence == "estimated" and weekly.used_percent == 20.0


def test_briefs_map_agents_by_list_else_runtime() -> None:
    report = budget_report()
    briefs = briefs_for(report, fleet_snapshot().agents)
    assert briefs["orchestrator"].account == "claude-max-a"  # runtime claude
    assert briefs["orchestrator"].status == "ahead"
    assert briefs["research"].account == "claude-max-b"  # listed by name
    assert briefs["research"].status == "exhausted"
    assert briefs["coder0-0"].account == "codex-pro"
    assert "coder0-2" not in briefs  # runtime pi: no account


# -- the verb -----------------------------------------------------------------------------------


def test_budget_json_v1_through_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bpath, state = _setup(tmp_path)
    (state / "usage.jsonl").write_text(usage_line(used=30.0) + "\n")
    (state / "spend.jsonl").write_text(
        spend_line("coder0-0", 12.5) + "\n" + "garbage\n" + spend_line("review", 0.5) + "\n"
    )
    rc = main(["budget", "--json", "--budgets", str(bpath), "--state-dir", str(state)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["schema"] == "mosaic.fleet.budget/v1"
    acct = {a["account"]: a for a in out["accounts"]}
    claude = acct["claude-max-a"]
    for key in (
        "tenant_id",
        "host",
        "provider",
        "regime",
        "pacing",
        "windows",
        "spent_usd",
        "ceiling_usd",
        "rung",
        "rung_reason",
    ):
        assert key in claude
    weekly = next(w for w in claude["windows"] if w["name"] == "weekly")
    for key in (
        "window_minutes",
        "used_percent",
        "resets_at",
        "reset_confidence",
        "observed_at",
        "ideal_used_percent",
        "pace",
        "allowed_per_day",
        "recent_rate_per_day",
        "projected_at_reset",
        "exhaust_at",
        "status",
    ):
        assert key in weekly
    assert weekly["used_percent"] == 30.0
    assert acct["openai-api"]["spent_usd"] == 13.0 and acct["openai-api"]["ceiling_usd"] == 200
    assert [s["agent"] for s in out["spend_today"]] == ["coder0-0", "review"]
    assert f"{state / 'spend.jsonl'}:2: not JSON" in out["warnings"]


def _human_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`fleet-tui budget` of GOOD (the weekly window resets in 3.5 days, 90 % used): rc, out, err."""
    text = GOOD.replace("2026-11-30T00:00:00Z", (NOW + timedelta(days=3, hours=12)).isoformat())
    bpath, state = _setup(tmp_path, text)
    (state / "usage.jsonl").write_text(usage_line(used=90.0) + "\n")
    rc = main(["budget", "--budgets", str(bpath), "--state-dir", str(state)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_budget_human_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _human_report(tmp_path, capsys)
    assert rc == 0
    assert "claude-max-a  anthropic subscription" in out
    weekly = next(line for line in out.splitlines() if line.strip().startswith("weekly"))
    assert "90.0 % used" in weekly and "ideal 50.0 %" in weekly and "ahead" in weekly
    assert re.search(r"resets in 3 d 1[12] h \(\d{4}-\d\d-\d\d \d\d:\d\dZ, user\)", out)
    assert "THROTTLE · rung claude-opus" in out
    assert "throttle to the even rate" in out
    assert "warning:" in err  # the ladder rung 'codex' that no account pays for


def test_budget_human_output_is_ascii_under_lang_c(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No locale (LANG=C), as the dashboard: Python's own UTF-8 mode says nothing of the
    terminal, so the gauges, marks and separators are ASCII and the words are the same."""
    for name in ("LC_ALL", "LC_CTYPE", "LANGUAGE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C")
    rc, out, _ = _human_report(tmp_path, capsys)
    assert rc == 0
    assert out.isascii(), [c for c in out if not c.isascii()]
    weekly = next(line for line in out.splitlines() if line.strip().startswith("weekly"))
    assert "90.0 % used" in weekly and "ideal 50.0 %" in weekly and "^ AHEAD" in weekly
    assert "[" in weekly and "#" in weekly  # the gauge, drawn in ASCII
    assert "THROTTLE - rung claude-opus" in out


def test_explicit_missing_budgets_is_exit_2_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["budget", "--budgets", str(tmp_path / "nope.yaml")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == f"fleet-tui: {tmp_path / 'nope.yaml'}: budgets file not found\n"


def test_bad_budgets_is_exit_2_with_file_line_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bpath, _state = _setup(tmp_path, GOOD.replace("minutes: 300", "minutes: soon"))
    rc = main(["budget", "--budgets", str(bpath)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert f"{bpath}:9: accounts[0].windows[0].minutes:" in err


def test_no_default_budgets_says_where_it_looked(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["budget"])
    out = capsys.readouterr().out
    assert rc == 0
    assert str(budgets_location().path) in out
    assert "No budgets file found there" in out and "version: 1" in out


def test_a_large_ledger_is_not_read_again_after_a_restart(tmp_path: Path) -> None:
    """The checkpoint in the state dir: a second service starts where the first stopped."""
    bpath, state = _setup(tmp_path)
    line = spend_line("coder0-0", 0.01) + "\n"
    n = (2 << 20) // len(line) + 1  # over the 1 MiB checkpoint threshold
    (state / "spend.jsonl").write_text(line * n)
    first = BudgetService(Located(bpath, True), state)
    first.load(NOW)
    assert (state / "spend.jsonl.checkpoint").exists()
    second = BudgetService(Located(bpath, True), state)
    assert second.spend.cursor.offset == (state / "spend.jsonl").stat().st_size
    with open(state / "spend.jsonl", "a") as f:
        f.write(spend_line("late", 1.0) + "\n")
    second.read_ledgers()
    assert second.spend.totals.records == n + 1


def test_hostile_names_in_the_ledger_never_reach_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bpath, state = _setup(tmp_path)
    evil = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J"
    (state / "usage.jsonl").write_text(
        usage_line(window=f"w{evil}", used=5.0) + "\n" + usage_line(f"x{evil}", used=5.0) + "\n"
    )
    rc = main(["budget", "--budgets", str(bpath), "--state-dir", str(state)])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "\x1b" not in out and "\x07" not in out
    assert "\x1b" not in err and "\x07" not in err
    # both lines are still reported, by line: their names are refused (a second row that
    # looks like 'w' or 'x' would mislead), the escapes shown escaped
    assert "usage.jsonl:1: window:" in err and "usage.jsonl:2: account:" in err
    assert "carries control or invisible characters" in err


API_LADDER = """\
version: 1
tenant_id: jarvis
accounts:
  - id: openai-api
    provider: openai
    runtime: codex
    regime: api
    ceiling_usd: 10
    period: day
  - id: claude-max-a
    provider: anthropic
    runtime: claude
    windows:
      - {name: weekly, minutes: 10080}
ladder:
  - {rung: gpt-api, account: openai-api}
  - {rung: claude-sonnet, account: claude-max-a}
"""


def test_an_api_ceiling_reached_downgrades_then_queues_until_the_period_ends(
    tmp_path: Path,
) -> None:
    bpath, state = _setup(tmp_path, API_LADDER)
    (state / "spend.jsonl").write_text(
        spend_line("coder0-0", 6.0) + "\n" + spend_line("coder0-1", 4.5) + "\n"
    )
    (state / "usage.jsonl").write_text(usage_line(used=40.0) + "\n")
    svc = BudgetService(Located(bpath, True), state)
    report = svc.load(NOW)
    api = report.accounts[0]
    assert api.spent_usd == 10.5 and api.windows[0].status == "exhausted"
    assert (api.rung, api.rung_action) == ("claude-sonnet", "downgrade")
    assert "ceiling $10 reached this day" in api.rung_reason
    # the sub below runs out too: queue at the cheapest rung until the soonest reset
    with open(state / "usage.jsonl", "a") as f:
        f.write(usage_line(used=100.0, observed_at=(NOW + timedelta(seconds=1)).isoformat()) + "\n")
    report = svc.load(NOW + timedelta(seconds=2))
    api = report.accounts[0]
    tomorrow = (NOW + timedelta(days=1)).replace(hour=0, minute=0, second=0)
    assert (api.rung, api.rung_action) == ("claude-sonnet", "queue")
    assert api.rung_until == min(tomorrow, NOW + timedelta(days=3))


def test_gateway_samples_join_the_local_ones(tmp_path: Path) -> None:
    from fleet_tui.model.records import UsageSample

    bpath, state = _setup(tmp_path)
    (state / "usage.jsonl").write_text(
        usage_line(used=20.0, observed_at=(NOW - timedelta(hours=2)).isoformat()) + "\n"
    )
    svc = BudgetService(Located(bpath, True), state)
    later = UsageSample(
        tenant_id="jarvis",
        host="other-host",
        account="claude-max-a",
        window="weekly",
        window_minutes=10080,
        used_percent=26.0,
        resets_at=NOW + timedelta(days=3),
        reset_confidence="provider",
        observed_at=NOW - timedelta(minutes=1),
        source="gateway",
    )
    bad = later.model_copy(update={"used_percent": 150.0})
    assert svc.add_samples([later, bad]) == 1
    weekly = svc.load(NOW).accounts[0].windows[1]
    assert weekly.used_percent == 26.0  # the gateway's newer sample wins
    assert weekly.recent_rate_per_day is not None and weekly.recent_rate_per_day > 0


def test_an_api_account_without_a_ceiling_says_so_and_still_counts_spend(tmp_path: Path) -> None:
    bpath, state = _setup(tmp_path, GOOD.replace("    ceiling_usd: 200\n", ""))
    (state / "spend.jsonl").write_text(spend_line("coder0-0", 3.0) + "\n")
    report = BudgetService(Located(bpath, True), state).load(NOW)
    api = report.accounts[1]
    assert api.spent_usd == 3.0 and api.windows[0].status == "unknown"
    assert api.rung_reason == "no ceiling_usd set: spend is not limited"
    assert any("accounts[1].ceiling_usd: missing" in w for w in report.warnings)


def test_the_dashboard_source_turns_a_bad_file_into_a_degraded_report(tmp_path: Path) -> None:
    from fleet_tui.service.budgets import LiveBudgetSource

    bpath, state = _setup(tmp_path, GOOD.replace("ceiling_usd: 200", "ceiling_usd: lots"))
    (state / "spend.jsonl").write_text(spend_line("coder0-0", 3.0) + "\n")
    report = LiveBudgetSource(Located(bpath, True), state, tenant_id="jarvis").load()
    assert report.error is not None
    assert report.error.startswith(f"{bpath}:14: accounts[1].ceiling_usd:")
    assert [s.agent for s in report.spend_today] == ["coder0-0"]  # the rest is not lost
    # fixed: the next load (same source) shows the accounts again
    bpath.write_text(GOOD)
    os.utime(bpath, ns=(1, 1))
    report = LiveBudgetSource(Located(bpath, True), state).load()
    assert report.error is None and len(report.accounts) == 2


def test_urgent_work_overrides_even_pacing_only_within_the_authorization(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    until = (NOW + timedelta(hours=6)).isoformat()
    text = GOOD.replace(
        "    regime: subscription\n",
        f'    regime: subscription\n    rapid_authorized_until: "{until}"\n',
    ).replace("2026-11-30T00:00:00Z", (NOW + timedelta(days=3, hours=12)).isoformat())
    bpath, state = _setup(tmp_path, text)
    (state / "usage.jsonl").write_text(usage_line(used=90.0) + "\n")
    assert main(["budget", "--json", "--budgets", str(bpath), "--state-dir", str(state)]) == 0
    claude = json.loads(capsys.readouterr().out)["accounts"][0]
    assert claude["rung_action"] == "throttle"  # pacing even: ordinary work is throttled
    assert claude["urgent"]["action"] == "normal"  # urgent work runs within the authorization
    # without the authorization, urgency changes nothing
    bpath.write_text(GOOD.replace("2026-11-30T00:00:00Z", (NOW + timedelta(days=3)).isoformat()))
    assert main(["budget", "--json", "--budgets", str(bpath), "--state-dir", str(state)]) == 0
    claude = json.loads(capsys.readouterr().out)["accounts"][0]
    assert claude["rung_action"] == claude["urgent"]["action"] == "throttle"


def test_the_api_rate_at_the_start_of_a_period_ignores_last_periods_spend(tmp_path: Path) -> None:
    # Two hours into a month, $24 spent over the last day of the previous month must not be
    # divided by those two hours (that read as 288 %/day and "runs out" within hours).
    now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    text = GOOD.replace("ceiling_usd: 200", "ceiling_usd: 100")
    bpath, state = _setup(tmp_path, text)
    lines = [spend_line("a", 1.0, now - timedelta(hours=h, minutes=30)) for h in range(24)]
    (state / "spend.jsonl").write_text("\n".join(lines) + "\n")
    api = BudgetService(Located(bpath, True), state).load(now).accounts[1]
    month = api.windows[0]
    assert api.spent_usd == 2.0  # 00:30 and 01:30 of December
    assert month.recent_rate_per_day == pytest.approx(24.0)  # $2 in 2 h of $100 = 24 %/day
    # at 24 %/day the 98 % left last until Dec 5 (288 %/day would have said 10:10 today)
    assert month.exhaust_at is not None and month.exhaust_at.date().isoformat() == "2026-12-05"


def test_short_windows_read_per_hour_and_the_last_minutes_say_what_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)  # the verb reads the clock: not the module's NOW, minutes old by now
    soon = (now + timedelta(minutes=30)).isoformat()
    text = GOOD.replace("2026-11-30T00:00:00Z", soon)
    bpath, state = _setup(tmp_path, text)
    five = lambda used, ago: usage_line(  # noqa: E731
        used=used,
        window="5h",
        window_minutes=300,
        resets_at=(now + timedelta(hours=2)).isoformat(),
        observed_at=(now - timedelta(minutes=ago)).isoformat(),
    )
    (state / "usage.jsonl").write_text(
        "\n".join([five(30.0, 120), five(45.0, 60), five(60.0, 0), usage_line(used=70.0)]) + "\n"
    )
    rc = main(["budget", "--budgets", str(bpath), "--state-dir", str(state)])
    out = capsys.readouterr().out
    assert rc == 0
    # 40 % left over 2 h of a 5-hour window: 20 %/h (not "480.0 %/day"); 15 points an hour
    assert "allowed 20.0 %/h · recent 15.0 %/h" in out, out
    # 30 % left of the weekly window in its last half hour: said as such, not as 1440 %/day
    assert re.search(r"allowed 30\.0 % left for (29|30) m", out), out
    assert "%/day ·" not in out.split("weekly")[1].splitlines()[1], out


def test_an_unreadable_ledger_is_a_warning_and_the_other_one_still_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bpath, state = _setup(tmp_path)
    (state / "usage.jsonl").mkdir()  # e.g. a botched bind mount
    (state / "spend.jsonl").write_text(spend_line("coder0-0", 2.5) + "\n")
    rc = main(["budget", "--json", "--budgets", str(bpath), "--state-dir", str(state)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert f"{state / 'usage.jsonl'}: cannot read: Is a directory" in out["warnings"]
    assert {a["account"]: a["spent_usd"] for a in out["accounts"]}["openai-api"] == 2.5


def test_an_api_account_has_a_chart_of_its_spend_over_the_period(tmp_path: Path) -> None:
    now = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # half-way through November
    bpath, state = _setup(tmp_path, GOOD.replace("ceiling_usd: 200", "ceiling_usd: 100"))
    lines = [spend_line("a", 5.0, datetime(2026, 11, d, 12, tzinfo=UTC)) for d in range(1, 16)]
    lines.append(spend_line("a", 50.0, datetime(2026, 10, 31, 12, tzinfo=UTC)))  # last month
    (state / "spend.jsonl").write_text("\n".join(lines) + "\n")
    api = BudgetService(Located(bpath, True), state).load(now).accounts[1]
    curve = api.curves["month"]
    known = [v for v in curve if v is not None]
    assert len(curve) == 96 and len(known) == 49  # drawn up to the column holding now
    assert known == sorted(known) and known[0] == 0.0
    assert known[-1] == pytest.approx(75.0) == api.windows[0].used_percent


def test_an_ascii_terminal_gets_ascii_not_an_encoding_crash(tmp_path: Path) -> None:
    bpath, state = _setup(tmp_path)
    (state / "usage.jsonl").write_text(usage_line(used=30.0) + "\n")
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "MOSAIC_FLEET_BUDGETS": str(bpath)}
    env["MOSAIC_FLEET_STATE_DIR"] = str(state)
    done = subprocess.run(
        [sys.executable, "-m", "fleet_tui", "budget"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode("ascii")  # raises if anything else got through
    assert "30.0 % used - ideal" in out and "[" in out


def test_one_spend_record_dated_far_ahead_prunes_nothing_real(tmp_path: Path) -> None:
    path = tmp_path / "spend.jsonl"
    real = [spend_line("coder0-0", 1.0, NOW - timedelta(days=d)) for d in range(3)]
    typo = spend_line("coder0-0", 1.0, datetime(2099, 1, 1, tzinfo=UTC))
    path.write_text("\n".join([*real, typo]) + "\n")
    r = SpendLedgerReader(path)
    r.read()
    now_h = NOW.timestamp() / 3600
    assert r.totals.spent("jarvis", "openai-api", now_h - 24 * 5, now_h + 1) == 3.0


def test_an_old_sample_says_how_old_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bpath, state = _setup(tmp_path)
    old = (NOW - timedelta(hours=3)).isoformat()
    (state / "usage.jsonl").write_text(usage_line(used=30.0, observed_at=old) + "\n")
    assert main(["budget", "--budgets", str(bpath), "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    weekly = out.split("  weekly")[1]
    assert re.search(r"sampled 3 h [01] m ago", weekly), out
    assert "sampled" not in out.split("  weekly")[0]  # the 5h window has no sample at all
