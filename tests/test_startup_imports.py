"""`ps --json` on an empty fleet imports only what it uses (issue 16, start-up).

A fresh interpreter runs `python -X importtime -m fleet_tui ps --json` with an empty HOME, XDG
folders and TMUX_TMPDIR (no server, roster, spool, settings file or usage index); the modules it
imported are read off the importtime lines. What is asserted is the set of modules, never a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Modules `ps --json` has no use for on an empty fleet.
NOT_IMPORTED = (
    "textual",
    "rich",
    "httpx",
    "yaml",
    "sqlite3",
    "fleet_tui.ui",
    "fleet_tui.sources.usage",
    "fleet_tui.core.usage",
    "fleet_tui.remote.client",
    "fleet_tui.service.alerts",
    # no roster, heartbeat or settings file to validate: the snapshot's records are dataclasses
    "pydantic",
    "pydantic_core",
    "fleet_tui.model.validated",
    "fleet_tui.config.settings",
)


def _empty_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MOSAIC_", "TMUX", "XDG_", "FLEET_TUI_", "CLAUDE_", "CODEX_"))
    }
    for sub in ("home", "config", "state", "data", "cache", "tmux"):
        (tmp_path / sub).mkdir(mode=0o700)
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        TMUX_TMPDIR=str(tmp_path / "tmux"),
    )
    return env


def _imported(tmp_path: Path, *argv: str) -> tuple[set[str], str]:
    """The modules `python -m fleet_tui ARGV` imports, and what it printed."""
    return _imported_by(tmp_path, "-m", "fleet_tui", *argv)


def _imported_by(tmp_path: Path, *args: str) -> tuple[set[str], str]:
    """The modules `python -X importtime ARGS` imports (an empty environment), and its stdout."""
    env = _empty_env(tmp_path)
    res = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    names = {
        line.rsplit("|", 1)[-1].strip()
        for line in res.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return names, res.stdout


def test_ps_json_on_an_empty_fleet_imports_only_what_it_uses(tmp_path: Path) -> None:
    names, out = _imported(tmp_path, "ps", "--json")
    assert '"schema": "mosaic.fleet.ps/v1"' in out
    assert "fleet_tui.model.records" in names  # the check sees the imports at all
    loaded = sorted(
        m for m in NOT_IMPORTED if m in names or any(n.startswith(m + ".") for n in names)
    )
    assert loaded == []


def test_help_imports_no_pydantic(tmp_path: Path) -> None:
    names, out = _imported(tmp_path, "--help")
    for verb in ("ps", "heartbeat", "send", "usage", "budget", "alerts"):
        assert verb in out
    assert not any(n == "pydantic" or n.startswith(("pydantic.", "textual", "yaml")) for n in names)


# What `ps --json` on an empty fleet leaves unbuilt, checked in the process that ran it: the
# modules of the other verbs, the settings models (no settings file), the inference patterns
# (no pane to read).
_LEFT_UNBUILT = """
import contextlib, io, sys
from fleet_tui.cli.main import EXTENSIONS, main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(["ps", "--json"])
assert code == 0 and '"schema": "mosaic.fleet.ps/v1"' in out.getvalue()
from fleet_tui.config import settings
from fleet_tui.core.infer import DEFAULT_RULES
print("verb modules:", sorted(m for m in EXTENSIONS if m in sys.modules))
print("settings built:", sorted(
    m.__name__
    for m in (settings.DashboardSettings, settings.InferenceSettings, settings.RuntimePatternSettings)
    if m.__pydantic_complete__
))
print("patterns compiled:", sorted(DEFAULT_RULES.runtimes._compiled))
"""


def test_ps_json_on_an_empty_fleet_leaves_unbuilt_what_it_does_not_use(tmp_path: Path) -> None:
    env = _empty_env(tmp_path)
    res = subprocess.run(
        [sys.executable, "-c", _LEFT_UNBUILT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.splitlines() == [
        "verb modules: []",
        "settings built: []",
        "patterns compiled: []",
    ]


def test_the_dashboards_modules_load_no_http_client(tmp_path: Path) -> None:
    """httpx is imported when a gateway is asked, not with the dashboard's modules (it was
    ~60-90 ms of every dashboard's start, with or without a gateway)."""
    names, _ = _imported_by(tmp_path, "-c", "import fleet_tui.ui.launch")
    assert "fleet_tui.remote.connection" in names  # the gateway's code is there, not httpx
    assert not any(n == "httpx" or n.startswith(("httpx.", "httpcore")) for n in names)


def test_the_dashboard_starts_without_garbage_collection_and_resumes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`fleet-tui` (the dashboard) collects no garbage while it starts, and collects again from
    the app's `on_started` on, or when it ends without ever getting there."""
    import gc

    import fleet_tui.cli.main
    import fleet_tui.ui.launch

    seen: list[tuple[bool, bool]] = []

    def dashboard(
        config: object, *, on_started: Callable[[], None] | None = None, **kw: object
    ) -> int:
        before = gc.isenabled()
        if on_started is not None and len(seen) == 0:
            on_started()
        seen.append((before, gc.isenabled()))
        return 0

    monkeypatch.setattr(fleet_tui.ui.launch, "run_dashboard", dashboard)
    monkeypatch.setattr(fleet_tui.cli.main, "_has_tty", lambda: True)  # pytest's stdio is no TTY
    assert gc.isenabled()
    try:
        assert fleet_tui.cli.main.main(["tui"]) == 0
        assert seen == [(False, True)]  # off while starting, on from `on_started`
        assert gc.isenabled()
        assert fleet_tui.cli.main.main(["tui"]) == 0  # never started: on again at the end
        assert seen[1] == (False, False) and gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()
