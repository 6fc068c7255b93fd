"""The newcomer's first ten minutes (issue 14): the demo fleet says what it did and how to point a
shell at it and stop it; the README's roster example loads with the real loader."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fleet_tui.model.records import Roster, RosterAgent
from fleet_tui.sources.roster import load_roster
from tests.conftest import FleetEnv

README = Path(__file__).resolve().parent.parent / "README.md"


def _eval_demo_env_then(fleet_env: FleetEnv, *verb: str) -> subprocess.CompletedProcess[str]:
    """What a newcomer types: `eval "$(fleet-tui demo env)"`, then a verb, in a fresh shell that
    knows nothing of the demo's paths."""
    import shlex
    import sys

    me = f"{shlex.quote(sys.executable)} -m fleet_tui"
    script = f'eval "$({me} demo env)" && {me} {" ".join(map(shlex.quote, verb))}'
    env = {
        k: v
        for k, v in fleet_env.env.items()
        if not k.startswith("MOSAIC_FLEET_") and k not in ("CLAUDE_CONFIG_DIR", "CODEX_HOME")
    }
    return subprocess.run(
        ["bash", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(fleet_env.base),
        check=False,
    )


def _agents(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in data["agents"]}


@pytest.mark.tmux
def test_the_demo_says_how_to_reach_it_and_stop_it(fleet_env: FleetEnv) -> None:
    res = fleet_env.cli("demo", "--agents", "3", "--no-ui", timeout=60)
    try:
        assert res.rc == 0, res
        assert "A demo fleet of 3 agents started" in res.stdout
        # One line to point a shell at it, and how to stop it.
        assert 'eval "$(' in res.stdout and 'demo env)"' in res.stdout
        assert "demo down" in res.stdout

        # The line works: a fresh shell without the demo's paths sees the demo fleet.
        shell = _eval_demo_env_then(fleet_env, "ps", "--json")
        assert shell.returncode == 0, shell
        agents = _agents(json.loads(shell.stdout))
        assert {"orchestrator", "enhancer", "coder0-0"} <= set(agents)
        assert agents["orchestrator"]["tenant_id"] == "demo"
        shell = _eval_demo_env_then(fleet_env, "budget", "--json")
        assert shell.returncode == 0, shell
        assert "claude-max-a" in shell.stdout

        # `demo env` prints shell lines only (comments and exports): safe to eval.
        out = fleet_env.cli("demo", "env")
        assert out.rc == 0, out
        lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
        assert lines and all(ln.startswith(("#", "export ")) for ln in lines), lines
        assert any("MOSAIC_FLEET_ROSTER=" in ln for ln in lines)
    finally:
        down = fleet_env.cli("demo", "down")
    assert down.rc == 0 and "stopped" in down.stdout, down
    # Stopped means stopped: the shell pointed at it sees every agent down.
    shell = _eval_demo_env_then(fleet_env, "ps", "--json")
    assert shell.returncode == 0, shell
    assert all(a["health"] == "down" for a in json.loads(shell.stdout)["agents"])
    # `demo env` with no demo running still prints the lines, and says there is none.
    out = fleet_env.cli("demo", "env")
    assert out.rc == 0 and "no demo fleet is running" in out.stderr, out


@pytest.mark.tmux
def test_demo_agents_n_on_a_running_demo_restarts_it_and_says_so(fleet_env: FleetEnv) -> None:
    try:
        res = fleet_env.cli("demo", "--agents", "2", "--no-ui", timeout=60)
        assert res.rc == 0, res
        first = fleet_env.cli("demo", "env")
        pid_before = fleet_env.server_pid("fleet-demo")

        # No size asked: the running demo is kept, and that is said.
        res = fleet_env.cli("demo", "--no-ui", timeout=60)
        assert res.rc == 0, res
        assert "A demo fleet of 2 agents was already running" in res.stdout
        assert "kept it" in res.stdout
        assert fleet_env.server_pid("fleet-demo") == pid_before

        # Another size: restarted with it, and that is said.
        res = fleet_env.cli("demo", "--agents", "6", "--no-ui", timeout=60)
        assert res.rc == 0, res
        assert "restarted with 6 agents" in res.stdout and "of 2 agents" in res.stdout
        assert fleet_env.server_pid("fleet-demo") != pid_before
        shell = _eval_demo_env_then(fleet_env, "ps", "--json")
        agents = _agents(json.loads(shell.stdout))
        started = [a for a in agents.values() if a["health"] != "down"]
        assert len(started) == 6, agents
        assert fleet_env.cli("demo", "env").stdout == first.stdout  # same place

        # The same size again: kept.
        res = fleet_env.cli("demo", "--agents", "6", "--no-ui", timeout=60)
        assert "A demo fleet of 6 agents was already running" in res.stdout
    finally:
        fleet_env.cli("demo", "down")


# -- the README's roster example --------------------------------------------------------------


def _readme_roster() -> str:
    text = README.read_text()
    m = re.search(r"<!-- roster-example[^>]*-->\n```yaml\n(.*?)```", text, re.S)
    assert m, "README.md has no roster example block (<!-- roster-example --> then ```yaml)"
    return m.group(1)


def test_the_readme_roster_example_loads_with_every_field_commented(tmp_path: Path) -> None:
    block = _readme_roster()
    path = tmp_path / "roster.yaml"
    path.write_text(block)
    loaded = load_roster(path)
    assert loaded.warnings == []  # an orchestrator and an enhancer: above the floor
    assert [a.name for a in loaded.roster.agents] == ["orchestrator", "enhancer"]

    # Every field the loader knows is shown, each with a comment on its line.
    keys: dict[str, str] = {}  # a field -> the line that first shows it
    for line in block.splitlines():
        if m := re.match(r"^\s*(?:- )?([a-z_]+):", line):
            keys.setdefault(m.group(1), line)
    for field in (*Roster.model_fields, *RosterAgent.model_fields):
        assert field in keys, f"README roster example lacks '{field}'"
        assert "#" in keys[field], f"README roster example: '{field}' has no comment"
    first = loaded.roster.agents[0]
    assert all(getattr(first, f) is not None for f in RosterAgent.model_fields), first
