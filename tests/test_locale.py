"""Every tmux call parses correctly in any locale (issue 12, item 3).

Measured with tmux 3.3a: a client whose locale is not UTF-8 (`LANG=C LC_ALL=C`, or no LANG/LC_*
at all, as under cron, systemd or a bare `ssh host cmd`) prints every byte outside printable
ASCII as `_`, the `\\x1f` field separator included, and the non-ASCII letters of session names,
titles and paths too. `tmux -u` keeps them. These tests start real private servers, some sessions
with non-ASCII names, and run `fleet-tui ps --json` as a subprocess in those locales.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import FleetEnv

from fleet_tui.sources.tmux import scan_all
from fleet_tui.tmux import TmuxResult, TmuxRunner

pytestmark = pytest.mark.tmux

SOCK = "mosaic-fleet"
SLEEP = ["sleep", "300"]
NAMES = ("coder0", "café-日本", "naïve_2")
_LOCALE_VARS = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES")


def _ps(world: FleetEnv, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    """`fleet-tui ps --all ARGS` as its own process in `env` (the locale is the process's)."""
    return subprocess.run(
        [sys.executable, "-m", "fleet_tui", "ps", "--all", *args],
        env=env,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        cwd=str(world.base),
        check=False,
    )


def _ps_json(world: FleetEnv, env: dict[str, str]) -> dict[str, object]:
    proc = _ps(world, env, "--json")
    assert proc.returncode == 0, proc.stderr
    data: dict[str, object] = json.loads(proc.stdout.decode("utf-8"))
    return data


def _start_fleet(world: FleetEnv) -> None:
    world.write_roster([{"name": "coder0", "role": "coder"}])
    for name in NAMES:
        world.start(SOCK, name, SLEEP, agent=False)
    world.tmux(SOCK, "select-pane", "-t", "=coder0:", "-T", "tïtle ✓")


def _c_locale(world: FleetEnv) -> dict[str, str]:
    env = {k: v for k, v in world.env.items() if k not in _LOCALE_VARS}
    env.update(LANG="C", LC_ALL="C")
    return env


def _no_locale(world: FleetEnv) -> dict[str, str]:
    return {k: v for k, v in world.env.items() if k not in _LOCALE_VARS}


def _no_locale_no_coercion(world: FleetEnv) -> dict[str, str]:
    # Python coerces a missing locale to C.UTF-8 and exports LC_CTYPE to its children, but only
    # where that locale is installed: without it, tmux sees no locale at all.
    return {**_no_locale(world), "PYTHONCOERCECLOCALE": "0"}


@pytest.mark.parametrize(
    "locale_env",
    [_c_locale, _no_locale, _no_locale_no_coercion],
    ids=["LANG=C", "unset", "unset-no-coercion"],
)
def test_ps_json_sees_every_session_with_its_true_name(
    fleet_env: FleetEnv, locale_env: object
) -> None:
    _start_fleet(fleet_env)
    env = locale_env(fleet_env)  # type: ignore[operator]
    data = _ps_json(fleet_env, env)
    agents = {a["name"]: a for a in data["agents"]}  # type: ignore[attr-defined]
    assert set(agents) == set(NAMES), sorted(agents)
    assert all(a["tmux"] is not None for a in agents.values()), agents
    assert all(s["reason"] is None for s in data["sockets"]), data["sockets"]  # type: ignore[attr-defined]
    assert agents["coder0"]["tmux"]["pane_title"] == "tïtle ✓"
    assert agents["café-日本"]["session"] == "café-日本"


def test_the_runner_parses_in_a_c_locale_in_process(fleet_env: FleetEnv) -> None:
    _start_fleet(fleet_env)
    runner = TmuxRunner(env=_c_locale(fleet_env), timeout=3.0)
    (scan,) = scan_all(runner)
    assert scan.reason is None, scan.reason
    assert set(scan.sessions()) == set(NAMES)
    path = runner.run(SOCK, "display-message", "-p", "-t", "=café-日本:", "#{session_name}")
    assert path.stdout.strip() == "café-日本"


class _NoUtf8Runner(TmuxRunner):
    """A real runner that calls tmux as the runner used to: without `-u`."""

    def run(self, socket: str, *args: str, **kw: object) -> TmuxResult:  # type: ignore[override]
        argv = self.argv(socket, *args)
        proc = subprocess.run(
            argv, env=self._env, capture_output=True, text=True, timeout=3.0, check=False
        )
        return TmuxResult(proc.stdout, proc.stderr, proc.returncode)


def test_output_that_cannot_be_parsed_is_said_not_an_empty_fleet(fleet_env: FleetEnv) -> None:
    _start_fleet(fleet_env)
    (scan,) = scan_all(_NoUtf8Runner(env=_c_locale(fleet_env), timeout=3.0))
    assert scan.panes == []
    assert scan.reason is not None and "could not be read" in scan.reason, scan.reason


@pytest.mark.parametrize(
    "locale_env",
    [_c_locale, _no_locale, lambda w: {**_no_locale(w), "PYTHONIOENCODING": "ascii"}],
    ids=["LANG=C", "unset", "PYTHONIOENCODING=ascii"],
)
def test_ps_table_is_ascii_where_the_terminal_may_not_be_utf8(
    fleet_env: FleetEnv, locale_env: object
) -> None:
    """Like the dashboard: Python's own UTF-8 mode under LANG=C says nothing of the terminal.
    Every row and the summary are ASCII (an agent's letters are `?`), nothing is lost, exit 0."""
    _start_fleet(fleet_env)
    proc = _ps(fleet_env, locale_env(fleet_env))  # type: ignore[operator]
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.isascii(), proc.stdout
    out = proc.stdout.decode("ascii")
    assert "caf?-??" in out and "na?ve_2" in out
    assert out.splitlines()[-1].startswith("3 agents")


def test_ps_table_keeps_unicode_in_a_utf8_locale(fleet_env: FleetEnv) -> None:
    _start_fleet(fleet_env)
    proc = _ps(fleet_env, {**_no_locale(fleet_env), "LANG": "C.UTF-8"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode("utf-8")
    assert "café-日本" in out and "·" in out.splitlines()[-1]


def test_ps_json_to_an_ascii_stdout_is_escaped_not_lost(fleet_env: FleetEnv) -> None:
    """A stdout that cannot encode UTF-8 gets every non-ASCII character as a JSON escape: the
    same document, no crash."""
    _start_fleet(fleet_env)
    env = {**fleet_env.env, "PYTHONIOENCODING": "ascii"}
    proc = _ps(fleet_env, env, "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.isascii()
    agents = {a["name"]: a for a in json.loads(proc.stdout)["agents"]}
    assert set(agents) == set(NAMES)
    assert agents["coder0"]["tmux"]["pane_title"] == "tïtle ✓"


def test_the_json_escape_keeps_characters_beyond_the_bmp() -> None:
    from fleet_tui.cli.main import _NON_ASCII, _json_escape

    text = json.dumps({"title": "ship it 🚀 ✓ é"}, ensure_ascii=False)
    escaped = _NON_ASCII.sub(_json_escape, text)
    assert escaped.isascii()
    assert json.loads(escaped) == {"title": "ship it 🚀 ✓ é"}
