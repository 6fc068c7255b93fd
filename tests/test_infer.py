"""Inferred state of panes without a heartbeat: the pure rules (core/infer.py), their settings
(fleet-tui.yaml `inference`), and, against REAL tmux, the collector reading only the panes that
need it and `fleet-tui ps --json` showing the guess without ever calling it healthy."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import FleetEnv, wait_until

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.config.settings import load_inference_rules
from fleet_tui.core.infer import (
    DEFAULT_RULES,
    GENERIC,
    SHELL,
    compile_rules,
    infer_state,
    runtime_key,
)
from fleet_tui.model.records import AgentState, BudgetBrief, FleetSnapshot
from fleet_tui.service.collector import FleetCollector

CLAUDE_PROMPT = [
    "● Bash(alembic upgrade head)",
    "╭──────────────────────────────────────────╮",
    "│ Bash command                             │",
    "│   alembic upgrade head                   │",
    "│ Do you want to proceed?                  │",
    "│ ❯ 1. Yes                                 │",
    "│   2. Yes, and don't ask again            │",
    "│   3. No, and tell Claude what to do      │",
    "╰──────────────────────────────────────────╯",
]
CLAUDE_WORKING = ["● Reading files", "", "✻ Thinking… (12s · ↑ 1.2k tokens · esc to interrupt)"]
CLAUDE_IDLE = ["● Done: 142 tests pass.", "", "╭────────╮", "│ >      │", "╰────────╯"]
CODEX_APPROVAL = [
    "Would you like to run the following command?",
    "  $ cargo test",
    "› 1. Yes, proceed (y)",
    "  2. No, and tell Codex what to do differently (esc)",
]
CODEX_WORKING = ["› fix the tests", "", "• Working (12s • esc to interrupt)"]


def infer(lines: list[str] | None, **kw: Any) -> tuple[AgentState, str]:
    kw.setdefault("title", "")
    kw.setdefault("idle_s", 120.0)
    kw.setdefault("command", "node")
    got = infer_state(lines=lines, **kw)
    return got.state, got.reason


# -- the rules --------------------------------------------------------------------------------


def test_claude_permission_prompt_is_waiting_input_and_says_which_prompt() -> None:
    state, reason = infer(CLAUDE_PROMPT, runtime="claude")
    assert state is AgentState.WAITING_INPUT
    assert reason == "claude prompt: 'Do you want to proceed?'"


def test_an_explicit_prompt_beats_every_busy_marker() -> None:
    lines = [*CLAUDE_WORKING, *CLAUDE_PROMPT]
    state, _ = infer(lines, runtime="claude", title="⠙ Claude Code", idle_s=0.5)
    assert state is AgentState.WAITING_INPUT
    # the same pane without the prompt is busy
    assert infer(CLAUDE_WORKING, runtime="claude", title="⠙ Claude Code")[0] is AgentState.BUSY


@pytest.mark.parametrize(
    ("title", "lines", "idle_s", "why"),
    [
        ("⠙ Claude Code", CLAUDE_IDLE, 600.0, "spinner in title: '⠙'"),
        ("◐ fix the tests", CLAUDE_IDLE, 600.0, "spinner in title: '◐'"),
        ("✳ fix the tests", CLAUDE_WORKING, 600.0, "claude shows 'esc to interrupt'"),
        ("✳ fix the tests", CLAUDE_IDLE, 1.0, "output 1 s ago"),
    ],
)
def test_claude_busy_markers(title: str, lines: list[str], idle_s: float, why: str) -> None:
    assert infer(lines, runtime="claude", title=title, idle_s=idle_s) == (AgentState.BUSY, why)


def test_a_quiet_pane_without_markers_is_idle_and_says_how_quiet() -> None:
    # "✳" is Claude Code's idle title glyph: no busy marker
    state, reason = infer(CLAUDE_IDLE, runtime="claude", title="✳ fix the tests", idle_s=300)
    assert state is AgentState.IDLE
    assert reason == "no output for 5 m, no prompt or busy marker"
    state, reason = infer(None, runtime="claude", idle_s=300)
    assert state is AgentState.IDLE and reason.endswith("screen not read")


def test_codex_approval_and_working() -> None:
    assert infer(CODEX_APPROVAL, runtime="codex")[0] is AgentState.WAITING_INPUT
    assert infer(["Allow command?", "  rm -rf build", "Yes (y)  No (n)"], runtime="codex")[0] is (
        AgentState.WAITING_INPUT
    )
    assert infer(CODEX_WORKING, runtime="codex") == (
        AgentState.BUSY,
        "codex shows 'esc to interrupt'",
    )


def test_patterns_are_per_runtime_and_an_unknown_runtime_gets_them_all() -> None:
    # Codex's approval wording means nothing in a Claude pane, and the reverse
    assert infer(CODEX_APPROVAL, runtime="claude")[0] is AgentState.IDLE
    assert infer(CLAUDE_PROMPT, runtime="codex")[0] is AgentState.IDLE
    # a pane whose runtime nobody knows is read with every agent runtime's patterns
    assert infer(CODEX_APPROVAL, runtime=None)[0] is AgentState.WAITING_INPUT
    state, reason = infer(CLAUDE_PROMPT, runtime=None, command="node")
    assert state is AgentState.WAITING_INPUT and reason.startswith("screen prompt:")


def test_opencode_and_pi_patterns() -> None:
    assert infer(["Permission required", "Allow once   Allow always   Reject"], runtime="opencode")[
        0
    ] is (AgentState.WAITING_INPUT)
    assert infer(["⠙ Working..."], runtime="pi")[0] is AgentState.BUSY


def test_a_shell_prompt_on_the_last_line_is_waiting_input() -> None:
    screen = ["$ claude", "Claude exited.", "jarvis@w-jarvis:~/work$ "]
    state, reason = infer(screen, command="bash", runtime=None, declared_runtime="claude")
    assert state is AgentState.WAITING_INPUT and reason == "shell prompt: '$'"
    # a prompt further up is history: the shell runs something that prints
    running = ["jarvis@w-jarvis:~/work$ make test", "building…"]
    assert infer(running, command="bash", idle_s=60)[0] is AgentState.IDLE
    assert infer(running, command="bash", idle_s=1)[0] is AgentState.BUSY


def test_runtime_key_prefers_what_runs_then_a_foreground_shell_then_the_roster() -> None:
    assert runtime_key("codex", "claude", "node") == "codex"
    assert runtime_key(None, "claude", "-bash") == SHELL
    assert runtime_key(None, "claude", "/usr/bin/zsh") == SHELL
    assert runtime_key(None, "claude", "node") == "claude"
    assert runtime_key(None, None, "opencode") == "opencode"
    assert runtime_key(None, "stub", "python3") == GENERIC


def test_reasons_quote_pane_text_only_as_plain_text() -> None:
    rules, _ = compile_rules({"claude": {"prompt": ["proceed.*"]}})
    state, reason = infer(
        ["proceed \x1b]52;c;ZXZpbA==\x07 now\x9b2J"], runtime="claude", rules=rules
    )
    assert state is AgentState.WAITING_INPUT
    assert "\x1b" not in reason and "\x07" not in reason and "\x9b" not in reason


# -- configuration ----------------------------------------------------------------------------


def test_extra_patterns_add_to_the_defaults() -> None:
    rules, notices = compile_rules(
        {"claude": {"prompt": [r"Approve this plan\?"], "busy": ["Compacting"]}}
    )
    assert notices == []
    assert infer(["Approve this plan?"], runtime="claude", rules=rules)[0] is (
        AgentState.WAITING_INPUT
    )
    assert infer(["Compacting conversation"], runtime="claude", rules=rules)[0] is AgentState.BUSY
    assert infer(CLAUDE_PROMPT, runtime="claude", rules=rules)[0] is AgentState.WAITING_INPUT
    # the defaults alone do not know these
    assert infer(["Approve this plan?"], runtime="claude")[0] is AgentState.IDLE


def test_replace_drops_the_defaults_of_that_runtime_only() -> None:
    rules, _ = compile_rules({"claude": {"prompt": [r"READY\?"], "replace": True}})
    assert infer(CLAUDE_PROMPT, runtime="claude", rules=rules)[0] is AgentState.IDLE
    assert infer(["READY?"], runtime="claude", rules=rules)[0] is AgentState.WAITING_INPUT
    assert infer(CODEX_APPROVAL, runtime="codex", rules=rules)[0] is AgentState.WAITING_INPUT


def test_a_runtime_of_ones_own() -> None:
    rules, _ = compile_rules({"aider": {"prompt": [r"\(Y\)es/\(N\)o"], "busy": ["Tokens:"]}})
    lines = ["Add file to the chat? (Y)es/(N)o [Yes]:"]
    assert infer(lines, declared_runtime="aider", command="python3", rules=rules)[0] is (
        AgentState.WAITING_INPUT
    )
    assert infer(["Tokens: 2.1k sent"], declared_runtime="aider", command="python3", rules=rules)[
        0
    ] is (AgentState.BUSY)


def test_a_bad_regex_is_left_out_with_one_line_and_the_rest_is_kept() -> None:
    rules, notices = compile_rules(
        {"claude": {"prompt": ["ok-pattern", "broken(", "also ok"]}}, where="cfg.yaml: inference"
    )
    assert len(notices) == 1
    assert notices[0].startswith("cfg.yaml: inference.claude.prompt[1]: bad regex 'broken(':")
    assert "\n" not in notices[0]
    assert infer(["ok-pattern"], runtime="claude", rules=rules)[0] is AgentState.WAITING_INPUT
    assert infer(["also ok"], runtime="claude", rules=rules)[0] is AgentState.WAITING_INPUT
    assert infer(CLAUDE_PROMPT, runtime="claude", rules=rules)[0] is AgentState.WAITING_INPUT


def test_settings_file_extends_the_rules_and_names_file_and_field_of_a_bad_regex(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "fleet-tui.yaml"
    cfg.write_text(
        "theme: fleet-dark\n"
        "inference:\n"
        "  active_within_s: 10\n"
        "  runtimes:\n"
        "    codex:\n"
        "      prompt: ['Ship it\\?', '[unclosed']\n"
    )
    rules, notices = load_inference_rules(cfg)
    assert notices == [
        f"{cfg}: inference.runtimes.codex.prompt[1]: bad regex '[unclosed': "
        "unterminated character set at position 0; ignored"
    ]
    assert rules.active_within_s == 10
    assert infer(["Ship it?"], runtime="codex", rules=rules)[0] is AgentState.WAITING_INPUT
    assert infer([], runtime="codex", idle_s=8, rules=rules)[0] is AgentState.BUSY


def test_a_bad_settings_file_gives_the_default_rules_and_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "fleet-tui.yaml"
    cfg.write_text("inference:\n  runtimes:\n    claude:\n      promt: ['x']\n")
    rules, notices = load_inference_rules(cfg)
    assert rules.runtimes.keys() == DEFAULT_RULES.runtimes.keys()
    assert len(notices) == 1 and "inference.runtimes.claude.promt" in notices[0]
    assert infer(CLAUDE_PROMPT, runtime="claude", rules=rules)[0] is AgentState.WAITING_INPUT


# -- real tmux ---------------------------------------------------------------------------------

SOCK = "mosaic-fleet"
PROMPT_SCRIPT = (
    "printf '● Bash(alembic upgrade head)\\n│ Do you want to proceed?\\n"
    "│ ❯ 1. Yes\\n│   2. No\\n'; exec sleep infinity"
)


def _agents(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in data["agents"]}


@pytest.mark.tmux
def test_ps_json_shows_a_permission_prompt_as_inferred_waiting_input_never_healthy(
    fleet_env: FleetEnv,
) -> None:
    env = fleet_env
    env.write_roster(
        [
            {"name": "planner", "role": "board", "runtime": "claude"},
            {"name": "coder", "role": "coder"},
        ]
    )
    env.start(SOCK, "planner", ["sh", "-c", PROMPT_SCRIPT])
    env.stub(SOCK, "coder")

    def planner() -> dict[str, Any] | None:
        a = _agents(env.ps_json())["planner"]
        return a if a["inferred"] and a["inferred"]["state"] == "waiting_input" else None

    a = wait_until(planner, timeout=10, message="planner's prompt to be inferred")
    assert a["state_source"] == "inferred"
    assert a["inferred"]["reason"] == "claude prompt: 'Do you want to proceed?'"
    assert a["health"] == "unknown" and a["heartbeat"] is None
    assert a["tmux"]["cwd"] == str(env.base)
    coder = _agents(env.ps_json())["coder"]
    assert coder["state_source"] == "heartbeat" and coder["inferred"] is None
    assert coder["health"] == "healthy"
    # the text table shows the guess as one
    res = env.cli("ps", env={"COLUMNS": "120"})
    line = next(x for x in res.stdout.splitlines() if x.startswith("planner"))
    assert "★ ~waiting_input" in line and "unknown" in line


@pytest.mark.tmux
def test_collector_reads_only_panes_without_heartbeat_and_only_when_they_change(
    fleet_env: FleetEnv,
) -> None:
    env = fleet_env
    env.write_roster([{"name": "quiet", "role": "coder"}, {"name": "beating", "role": "coder"}])
    env.start(SOCK, "quiet", ["sh", "-c", "echo 'Allow command?'; exec sleep infinity"])
    env.stub(SOCK, "beating")
    collector = FleetCollector(FleetConfig.from_flags(), runner=env.runner)
    snap = wait_until(
        lambda: _with_inferred(collector.collect(), "quiet", AgentState.WAITING_INPUT),
        message="quiet's prompt to be read",
    )
    beating = next(a for a in snap.agents if a.name == "beating")
    assert beating.inferred is None and beating.state_source is not None
    # once its output is older than the activity clock's resolution, an unchanged pane is
    # not read again; heartbeat-only polls never read panes
    time.sleep(2.2)
    collector.collect()
    made = collector.captures_made
    for _ in range(3):
        snap = collector.collect()
        collector.collect(heartbeats_only=True)
    assert collector.captures_made == made
    assert _with_inferred(snap, "quiet", AgentState.WAITING_INPUT)
    # new output: read again
    env.tmux(
        SOCK, "respawn-pane", "-k", "-t", "=quiet:", "sh", "-c", "echo working; exec sleep infinity"
    )
    wait_until(
        lambda: (
            _with_inferred(collector.collect(), "quiet", AgentState.BUSY)
            or _with_inferred(collector.collect(), "quiet", AgentState.IDLE)
        ),
        message="quiet's new screen to be read",
    )
    assert collector.captures_made > made


def _with_inferred(snap: FleetSnapshot, name: str, state: AgentState) -> FleetSnapshot | None:
    rec = next((a for a in snap.agents if a.name == name), None)
    return snap if rec and rec.inferred and rec.inferred.state is state else None


@pytest.mark.tmux
def test_providers_set_tokens_and_budgets_and_a_failing_one_degrades_its_source(
    fleet_env: FleetEnv,
) -> None:
    env = fleet_env
    env.write_roster([{"name": "c1", "role": "coder"}])
    env.start(SOCK, "c1", ["sleep", "infinity"])
    brief = BudgetBrief(account="claude-max-a", used_percent=62, pace=1.3, status="ahead")
    calls = {"usage": 0, "budgets": 0}

    def usage(snap: FleetSnapshot, now: datetime) -> dict[str, int]:
        calls["usage"] += 1
        if calls["usage"] > 1:
            raise OSError("transcripts folder vanished")
        assert [a.name for a in snap.agents] == ["c1"]  # the joined fleet is given
        return {"c1": 12_345}

    def budgets(snap: FleetSnapshot, now: datetime) -> dict[str, Any]:
        calls["budgets"] += 1
        # a provider's bad entry is left out (the table could not show it), and said
        return {"c1": brief, "c2": "62%"}

    collector = FleetCollector(
        FleetConfig.from_flags(), runner=env.runner, usage_provider=usage, budget_provider=budgets
    )
    first = collector.collect()
    c1 = first.agents[0]
    assert (c1.tokens_today, c1.budget) == (12_345, brief)
    sources = {s.name: s for s in first.sources}
    assert sources["usage"].ok is True
    assert not sources["budgets"].ok
    assert sources["budgets"].detail == "1 entries ignored: not a budget brief"
    # a failure keeps the last good answer and says so; a heartbeat-only poll asks nobody
    second = collector.collect()
    assert second.agents[0].tokens_today == 12_345
    status = {s.name: s for s in second.sources}["usage"]
    assert not status.ok and status.detail == "OSError: transcripts folder vanished"
    collector.collect(heartbeats_only=True)
    assert calls == {"usage": 2, "budgets": 2}
    data = json.loads(second.to_json())
    assert data["agents"][0]["tokens_today"] == 12_345


@pytest.mark.tmux
def test_a_hostile_working_directory_neither_hides_the_agent_nor_reaches_the_output(
    fleet_env: FleetEnv,
) -> None:
    env = fleet_env
    evil = env.base / "a\x1fb\nc\x1b]0;pwned\x07"
    evil.mkdir()
    env.write_roster([{"name": "c1", "role": "coder"}, {"name": "c2", "role": "coder"}])
    env.runner.ensure_socket_dir()
    env.tmux(SOCK, "new-session", "-d", "-s", "c1", "-c", str(evil), "sleep", "infinity")
    env.tmux(SOCK, "new-session", "-d", "-s", "c2", "sleep", "infinity")
    res = env.cli("ps", "--json")
    assert res.rc == 0, res
    agents = _agents(json.loads(res.stdout))
    assert agents["c1"]["health"] == "unknown" and agents["c2"]["health"] == "unknown"
    cwd = agents["c1"]["tmux"]["cwd"]
    assert cwd.startswith(str(env.base)) and cwd.endswith("a?b?c?]0;pwned?")
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout


def test_a_bad_dashboard_setting_elsewhere_does_not_touch_the_inference_rules(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "fleet-tui.yaml"
    cfg.write_text(
        "poll_interval_s: 0\ninference:\n  runtimes:\n    claude:\n      prompt: ['Ship it\\?']\n"
    )
    rules, notices = load_inference_rules(cfg)
    assert notices == []
    assert infer(["Ship it?"], runtime="claude", rules=rules)[0] is AgentState.WAITING_INPUT
    cfg.write_text("inference: [unclosed\n")
    rules, notices = load_inference_rules(cfg)
    assert notices == [f"{cfg}:2: not valid YAML; default inference rules"]
    assert infer(CLAUDE_PROMPT, runtime="claude", rules=rules)[0] is AgentState.WAITING_INPUT


@pytest.mark.tmux
def test_panes_are_read_in_one_tmux_call_and_a_vanished_pane_hides_no_other(
    fleet_env: FleetEnv,
) -> None:
    env = fleet_env
    names = ["p0", "p1", "p2"]
    for n in names:
        # each pane also prints what a separator could look like: it must stay its own text
        env.start(
            SOCK,
            n,
            ["sh", "-c", f"echo screen-of-{n}; echo fleet-tui-capture-0; exec sleep infinity"],
        )
    ids = {
        n: env.tmux(SOCK, "display-message", "-p", "-t", f"={n}:", "#{pane_id}").stdout.strip()
        for n in names
    }
    wait_until(
        lambda: "screen-of-p2" in env.tmux(SOCK, "capture-pane", "-p", "-t", ids["p2"]).stdout,
        message="the panes to print",
    )
    collector = FleetCollector(FleetConfig.from_flags(), runner=env.runner)
    screens = collector._capture_batch(SOCK, [ids["p0"], ids["p1"], ids["p2"]])
    assert collector.capture_calls == 1
    assert {k: v[0] for k, v in screens.items()} == {ids[n]: f"screen-of-{n}" for n in names}
    assert all(v[-1] == "fleet-tui-capture-0" for v in screens.values())
    # a pane that vanished since the listing: the others are still read
    collector.capture_calls = 0
    screens = collector._capture_batch(SOCK, [ids["p0"], "%999", ids["p2"]])
    assert set(screens) == {ids["p0"], ids["p2"]}
    assert collector.capture_calls == 2
