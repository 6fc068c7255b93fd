"""Alert rules (DESIGN.md "Alerts, version 1"): the alerts file's errors, and episodes over
snapshots as an operator would see them: one message when an agent starts waiting, one when it
stops, none while it goes on, none more for a flapping agent, and none again after a restart."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleet_tui.core.alerts import AlertBook, AlertEvent, evaluate
from fleet_tui.model.alerts import Rule, Silence, When
from fleet_tui.model.records import (
    AgentRecord,
    AgentState,
    BudgetBrief,
    BudgetStatus,
    Drift,
    FleetSnapshot,
    Health,
    HeartbeatInfo,
)
from fleet_tui.service.alerts import AlertEngine, AlertStore, for_outside, for_terminal
from fleet_tui.sources.alerts import EXAMPLE, AlertsError, load_alerts, parse_alerts
from fleet_tui.testing.fleets import big_snapshot

T0 = datetime(2026, 12, 5, 9, 0, 0, tzinfo=UTC)
BASE = big_snapshot(1, now=T0)


def rec(name: str, state: AgentState | None = AgentState.BUSY, **kw: Any) -> AgentRecord:
    base = BASE.agents[0]
    hb = None
    if state is not None:
        assert base.heartbeat is not None
        hb = base.heartbeat.model_copy(update={"state": state, "detail": kw.pop("detail", None)})
    update: dict[str, Any] = {"name": name, "heartbeat": hb, "health": Health.HEALTHY}
    update.update(kw)
    return base.model_copy(update=update)


def snap(*agents: AgentRecord, host: str | None = None) -> FleetSnapshot:
    return BASE.model_copy(update={"agents": list(agents), "host": host or BASE.host})


def rule(**kw: Any) -> Rule:
    when = kw.pop("when", {"state": ["waiting_input", "blocked"]})
    return Rule.model_validate({"name": "needs-you", "to": ["ops"], "when": when, **kw})


def run(rules: list[Rule], agents: list[AgentRecord], at: float, book: AlertBook, **kw: Any):
    return evaluate(rules, agents, T0 + timedelta(seconds=at), book, **kw)


def summary(events: list[AlertEvent]) -> list[tuple[str, str, str]]:
    return [(e.status, e.rule.name, e.episode.agent) for e in events]


# -- the file ---------------------------------------------------------------------------------


def test_the_design_example_loads(tmp_path: Path) -> None:
    p = tmp_path / "alerts.yaml"
    p.write_text(EXAMPLE)
    loaded = load_alerts(p)
    assert [r.name for r in loaded.config.rules] == ["needs-you", "agent-lost"]
    assert loaded.config.channel("ops") is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: 1\nrules:\n  - name: x\n    when: {state: [waitin]}\n    to: [terminal]\n",
            "a.yaml:4: rules[0].when.state[0]: Input should be",
        ),
        (
            "version: 1\nrules:\n  - name: x\n    when: {health: [down]}\n    to: [ops]\n",
            "a.yaml:5: rules[0].to[0]: no channel 'ops' (channels: terminal)",
        ),
        (
            "version: 1\nrules:\n  - name: x\n    when: {}\n    to: [terminal]\n",
            "a.yaml:4: rules[0].when: needs at least one of state, health, drift, budget_status",
        ),
        (
            "version: 1\nchannels:\n  - {name: ops, type: slack}\n",
            "a.yaml:3: channels[0]: a slack channel needs exactly one of url, url_env",
        ),
        (
            "version: 1\nrules:\n  - {name: x, when: {health: [down]}, to: [terminal], repeat_s: 2}\n",
            "a.yaml:3: rules[0].repeat_s: must be 0 (once per episode) or at least 10 seconds",
        ),
        ("version: 2\n", "a.yaml:1: version: this fleet-tui reads alerts version 1 (got 2)"),
        (
            "version: 1\nsilences:\n  - {rule: nope, until: '2026-12-06T00:00:00Z'}\n",
            "a.yaml:3: silences[0].rule: no rule 'nope'",
        ),
    ],
)
def test_a_bad_file_is_one_line_naming_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(AlertsError) as err:
        parse_alerts(text, Path("a.yaml"))
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_a_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AlertsError, match="alerts file not found"):
        load_alerts(tmp_path / "nope.yaml")


# -- episodes ---------------------------------------------------------------------------------


def test_an_episode_fires_once_and_resolves_once() -> None:
    book, rules = AlertBook(), [rule()]
    assert run(rules, [rec("a")], 0, book) == []
    events = run(rules, [rec("a", AgentState.WAITING_INPUT, detail="Allow edit?")], 2, book)
    assert summary(events) == [("firing", "needs-you", "a")]
    body = events[0].body()
    assert body["schema"] == "mosaic.fleet.alert/v1"
    assert (body["status"], body["state"], body["detail"]) == (
        "firing",
        "waiting_input",
        "Allow edit?",
    )
    assert body["since"] == "2026-12-05T09:00:02.000Z"
    assert set(body) == {
        "schema", "status", "rule", "tenant_id", "host", "agent", "health", "state", "detail",
        "since", "ts",
    }  # fmt: skip
    # it goes on waiting: nothing more
    for t in range(4, 300, 2):
        assert run(rules, [rec("a", AgentState.WAITING_INPUT)], t, book) == []
    events = run(rules, [rec("a", AgentState.BUSY)], 300, book)
    assert summary(events) == [("resolved", "needs-you", "a")]
    assert events[0].body()["state"] == "busy"  # what it does now, not what it did
    assert events[0].body()["since"] == "2026-12-05T09:00:02.000Z"
    assert run(rules, [rec("a", AgentState.BUSY)], 302, book) == []


def test_for_s_must_hold_before_it_fires_and_a_short_blip_never_fires() -> None:
    book, rules = AlertBook(), [rule(when={"health": ["down"]}, for_s=60)]
    assert run(rules, [rec("a", health=Health.DOWN)], 0, book) == []
    assert run(rules, [rec("a", health=Health.DOWN)], 30, book) == []
    assert run(rules, [rec("a")], 40, book) == []  # back before 60 s: nothing at all
    assert run(rules, [rec("a", health=Health.DOWN)], 50, book) == []
    assert run(rules, [rec("a", health=Health.DOWN)], 100, book) == []
    assert summary(run(rules, [rec("a", health=Health.DOWN)], 110, book)) == [
        ("firing", "needs-you", "a")
    ]


def test_repeat_s_fires_again_while_it_holds() -> None:
    book, rules = AlertBook(), [rule(repeat_s=60)]
    waiting = [rec("a", AgentState.WAITING_INPUT)]
    fired = [t for t in range(0, 200, 10) if run(rules, waiting, t, book)]
    assert fired == [0, 60, 120, 180]


def test_a_flapping_agent_alerts_at_most_once_per_gap() -> None:
    """Waiting / busy every 2 s for 10 minutes: one firing (and its resolve) per gap_s."""
    book, rules = AlertBook(), [rule(gap_s=120)]
    sent = []
    for i, t in enumerate(range(0, 600, 2)):
        state = AgentState.WAITING_INPUT if i % 2 == 0 else AgentState.BUSY
        sent += [(t, e.status) for e in run(rules, [rec("a", state)], t, book)]
    firings = [t for t, s in sent if s == "firing"]
    assert len(firings) == 5, sent  # 0, then every >=120 s: not 150 of them
    assert all(b - a >= 120 for a, b in itertools.pairwise(firings))
    assert [s for _, s in sent].count("resolved") == len(firings)


def test_a_rule_that_matches_every_agent_every_poll_is_one_episode_each() -> None:
    book, rules = AlertBook(), [rule(when={"health": ["healthy"]})]
    fleet = [rec(f"a{i}") for i in range(50)]
    assert len(run(rules, fleet, 0, book)) == 50
    for t in range(2, 120, 2):
        assert run(rules, fleet, t, book) == []
    assert len(book.episodes) == 50


def test_agent_globs_choose_who_a_rule_covers() -> None:
    book, rules = AlertBook(), [rule(agents=["coder*", "rev?ew"])]
    agents = [rec(n, AgentState.BLOCKED) for n in ("coder1", "review", "orchestrator")]
    assert sorted(e.episode.agent for e in run(rules, agents, 0, book)) == ["coder1", "review"]


def test_a_silence_holds_an_episode_back_until_it_ends() -> None:
    book, rules = AlertBook(), [rule()]
    until = T0 + timedelta(seconds=100)
    silences = [Silence(rule="needs-you", agents=["a"], until=until)]
    waiting = [rec("a", AgentState.WAITING_INPUT), rec("b", AgentState.WAITING_INPUT)]
    events = run(rules, waiting, 0, book, silences=silences)
    assert summary(events) == [("firing", "needs-you", "b")]
    assert [(e.agent, e.detail) for e in book.open_episodes() if e.silenced] == [
        ("a", "waiting_input")  # held back, still saying what it waits for
    ]
    assert run(rules, waiting, 50, book, silences=silences) == []
    # the silence ends while "a" still waits: it fires then, once
    assert summary(run(rules, waiting, 102, book, silences=silences)) == [
        ("firing", "needs-you", "a")
    ]
    assert run(rules, waiting, 104, book, silences=silences) == []


def test_a_silenced_episode_that_ends_sends_nothing() -> None:
    book, rules = AlertBook(), [rule()]
    silences = [Silence(until=T0 + timedelta(hours=1))]  # every rule, every agent
    assert run(rules, [rec("a", AgentState.WAITING_INPUT)], 0, book, silences=silences) == []
    assert run(rules, [rec("a")], 10, book, silences=silences) == []


def test_drift_and_budget_rules() -> None:
    book = AlertBook()
    rules = [
        rule(name="drifted", when={"drift": ["missing_session", "pane_dead"]}),
        rule(name="spend", when={"budget_status": ["ahead", "exhausted"]}),
    ]
    ahead = BudgetBrief(account="max", window="5h", used_percent=81, status=BudgetStatus.AHEAD)
    agents = [
        rec("a", drift=[Drift.PANE_DEAD]),
        rec("b", budget=ahead),
        rec("c", drift=[Drift.BOOT_DISABLED]),
    ]
    events = run(rules, agents, 0, book)
    assert summary(events) == [("firing", "drifted", "a"), ("firing", "spend", "b")]
    assert events[0].body()["detail"] == "drift: pane_dead"
    assert events[1].body()["detail"] == "budget max/5h: ahead 81% used"


def test_a_rung_change_fires_once_and_ends_without_a_resolve() -> None:
    book, rules = AlertBook(), [rule(name="rung", when={"budget_status": ["rung_changed"]})]

    def on(rung: str) -> list[AgentRecord]:
        b = BudgetBrief(account="max", status=BudgetStatus.ON_PACE, rung=rung)
        return [rec("a", budget=b)]

    assert run(rules, on("claude-opus"), 0, book) == []  # first sight is not a change
    events = run(rules, on("claude-sonnet"), 2, book)
    assert summary(events) == [("firing", "rung", "a")]
    assert events[0].body()["detail"] == "ladder rung claude-opus -> claude-sonnet"
    assert run(rules, on("claude-sonnet"), 4, book) == []
    assert book.episodes == {}


def test_no_data_from_a_host_is_not_a_resolve() -> None:
    book, rules = AlertBook(), [rule()]
    remote = rec("r", AgentState.WAITING_INPUT, host="other-host", remote=True)
    assert len(run(rules, [rec("a"), remote], 0, book)) == 1
    # the gateway did not answer: other-host's rows are absent, its episode stays open
    assert run(rules, [rec("a")], 2, book, hosts={BASE.host}) == []
    assert [e.agent for e in book.open_episodes()] == ["r"]
    # it answered again: the agent no longer waits
    assert summary(
        run(rules, [rec("a"), remote.model_copy(update={"heartbeat": None})], 4, book)
    ) == [("resolved", "needs-you", "r")]


def test_an_agent_that_vanished_resolves() -> None:
    book, rules = AlertBook(), [rule()]
    run(rules, [rec("a", AgentState.WAITING_INPUT)], 0, book)
    assert summary(run(rules, [rec("b")], 2, book)) == [("resolved", "needs-you", "a")]


# -- the state dir: a restart neither fires again nor forgets -----------------------------------


def test_a_restart_mid_episode_neither_fires_again_nor_forgets(tmp_path: Path) -> None:
    config = parse_alerts(EXAMPLE, Path("a.yaml")).config
    waiting = snap(rec("a", AgentState.WAITING_INPUT))
    engine = AlertEngine(config, AlertStore(tmp_path), "run", wants=for_outside)
    assert summary(engine.step(waiting, T0)) == [("firing", "needs-you", "a")]
    # the evaluator restarts: a new engine reads the book from the state dir
    again = AlertEngine(config, AlertStore(tmp_path), "run", wants=for_outside)
    assert again.step(waiting, T0 + timedelta(seconds=5)) == []
    assert summary(again.step(snap(rec("a")), T0 + timedelta(seconds=9))) == [
        ("resolved", "needs-you", "a")
    ]
    assert (tmp_path / "alerts" / "episodes-run.json").stat().st_mode & 0o777 == 0o600


def test_dashboard_and_evaluator_keep_separate_books(tmp_path: Path) -> None:
    config = parse_alerts(EXAMPLE, Path("a.yaml")).config
    waiting = snap(rec("a", AgentState.WAITING_INPUT), rec("b", health=Health.DOWN))
    run_ = AlertEngine(config, AlertStore(tmp_path), "run", wants=for_outside)
    term = AlertEngine(config, AlertStore(tmp_path), "terminal", wants=for_terminal)
    assert [r.name for r in term.rules] == ["needs-you"]  # agent-lost goes to ops only
    assert len(run_.step(waiting, T0)) == 1  # agent-lost waits for its for_s (60 s)
    assert summary(term.step(waiting, T0)) == [("firing", "needs-you", "a")]


def test_an_operator_silence_is_read_by_every_evaluator(tmp_path: Path) -> None:
    config = parse_alerts(EXAMPLE, Path("a.yaml")).config
    term = AlertEngine(config, AlertStore(tmp_path), "terminal", wants=for_terminal)
    run_ = AlertEngine(config, AlertStore(tmp_path), "run", wants=for_outside)
    term.silence("needs-you", ["a"], T0 + timedelta(minutes=15), T0, by="op")
    waiting = snap(rec("a", AgentState.WAITING_INPUT))
    assert run_.step(waiting, T0 + timedelta(seconds=1)) == []
    assert term.step(waiting, T0 + timedelta(seconds=1)) == []
    later = T0 + timedelta(minutes=16)
    assert summary(run_.step(waiting, later)) == [("firing", "needs-you", "a")]


def test_a_damaged_book_is_read_as_far_as_it_goes(tmp_path: Path) -> None:
    store = AlertStore(tmp_path)
    store.dir.mkdir(parents=True)
    store.book_path("run").write_text('{"version": 1, "episodes": [{"rule": "x"}, 7]')
    assert store.load_book("run").episodes == {}
    store.book_path("run").write_text('{"version": 1, "episodes": [{"rule": "x"}, 7]}')
    assert store.load_book("run").episodes == {}


def test_when_needs_the_agent_to_meet_every_key() -> None:
    r = Rule(
        name="stuck",
        when=When(state=[AgentState.BUSY], health=[Health.UNRESPONSIVE]),
        to=["terminal"],
    )
    book = AlertBook()
    agents = [
        rec("busy-ok"),
        rec("busy-unresponsive", health=Health.UNRESPONSIVE),
        rec("idle-unresponsive", AgentState.IDLE, health=Health.UNRESPONSIVE),
    ]
    assert [e.episode.agent for e in run([r], agents, 0, book)] == ["busy-unresponsive"]


def test_heartbeat_info_is_what_state_rules_read() -> None:
    """The state of a rule is the one the table shows: the heartbeat's, else the inferred one."""
    from fleet_tui.model.records import InferredState

    book, rules = AlertBook(), [rule()]
    inferred = InferredState(state=AgentState.WAITING_INPUT, reason="claude prompt: 'Allow?'")
    agents = [rec("a", None, inferred=inferred)]
    events = run(rules, agents, 0, book)
    assert summary(events) == [("firing", "needs-you", "a")]
    assert events[0].body()["detail"] == "claude prompt: 'Allow?'"
    assert isinstance(BASE.agents[0].heartbeat, HeartbeatInfo)
