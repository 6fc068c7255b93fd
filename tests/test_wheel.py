"""The wheel, as a user gets it: built from this checkout, installed with pip into a FRESH venv
(no system site-packages; pip resolves the dependencies from the configured index), and run
from there, far from the checkout.

What it guards: `styles/` lives at the top of the checkout and only reaches the installed package
through pyproject's `force-include` ("styles" -> fleet_tui/styles). A wheel without it still
imports, but the dashboard then starts with no stylesheet (or not at all).

Slow (a venv and a pip install, ~10-30 s): marked `slow`, NOT skipped. conftest starts each `slow`
test first on a worker of its own: under `-n 2` one worker installs while the other runs the rest.
pip runs with the environment the session started with (conftest's `fleet_env` points HOME and
XDG_* at a temporary world for each test), so it keeps the user's pip config and cache.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import FleetEnv

from fleet_tui.model.records import PS_SCHEMA

pytestmark = pytest.mark.slow(seconds=60)  # ~25 s quiet, 60 s with the suite running

CHECKOUT = Path(__file__).resolve().parent.parent
# Taken at import (collection), before any test's `fleet_env` replaced HOME and XDG_*: pip finds
# its user config (index URLs, find-links) and its cache through them.
_SESSION_ENV = dict(os.environ)
_PIP_TIMEOUT_S = 600


def _pip_env() -> dict[str, str]:
    env = {k: v for k, v in _SESSION_ENV.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _run(argv: list[str], *, env: Mapping[str, str], cwd: Path, timeout: float) -> str:
    proc = subprocess.run(
        argv,
        env=dict(env),
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, (
        f"{' '.join(argv)} exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc.stdout


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fleet_tui-*.whl built from the checkout by pip (hatchling backend)."""
    out = tmp_path_factory.mktemp("wheel")
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out)]
    if importlib.util.find_spec("hatchling") is not None:
        # The backend is already here: no isolated build env to fill from the index (~5 s).
        argv.append("--no-build-isolation")
    _run([*argv, str(CHECKOUT)], env=_pip_env(), cwd=out, timeout=_PIP_TIMEOUT_S)
    wheels = sorted(out.glob("fleet_tui-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="session")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (its own site-packages only) with the wheel and its dependencies."""
    root = tmp_path_factory.mktemp("venv") / "v"
    # The interpreter the test venv was made from: a venv made from a venv's python is clean too,
    # but the base one says so plainly.
    base = getattr(sys, "_base_executable", None) or sys.executable
    # --without-pip: the test venv's pip installs into it (`pip --python`), which saves running
    # ensurepip (~3-10 s); what lands in the venv is what `pip install` puts there.
    _run(
        [base, "-m", "venv", "--without-pip", str(root)],
        env=_pip_env(),
        cwd=root.parent,
        timeout=120,
    )
    cfg = (root / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg, cfg
    python = root / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", str(wheel)],
        env=_pip_env(),
        cwd=root.parent,
        timeout=_PIP_TIMEOUT_S,
    )
    return root


# Run by the venv's python with the temp world as cwd: it can only import what pip installed.
_HEADLESS = textwrap.dedent(
    """
    import asyncio, json, sys
    from datetime import timedelta
    from pathlib import Path

    import fleet_tui
    from fleet_tui.ui.app import FleetApp, styles_dir
    from fleet_tui.testing.fleets import NOW, FixedSource, fleet_snapshot
    from fleet_tui.config.settings import DashboardSettings
    from fleet_tui.ui.widgets import FleetTable


    async def main() -> dict:
        app = FleetApp(
            FixedSource(fleet_snapshot()),
            settings=DashboardSettings(poll_interval_s=3600),
            clock=lambda: NOW + timedelta(seconds=1),
            watch=False,
        )
        async with app.run_test(size=(160, 48)) as pilot:
            for _ in range(200):
                await pilot.pause()
                if app.polls >= 1 or app.poll_error:
                    break
            table = app.fleet_screen.query_one(FleetTable)
            header = table.get_component_styles("fleet-table--header")
            return {
                "polls": app.polls,
                "poll_error": app.poll_error,
                "rows": [table.render_line(y).text for y in range(table.size.height)],
                "css_sources": [path for path, _ in app.stylesheet.source],
                "header_bold": bool(header.text_style.bold),
            }


    seen = asyncio.run(main())
    seen.update(
        prefix=sys.prefix,
        package=str(Path(fleet_tui.__file__).resolve().parent),
        styles_dir=str(styles_dir()),
        css_path=FleetApp.CSS_PATH,
        path=sys.path,
    )
    print(json.dumps(seen))
    """
)


def _world_env(world: FleetEnv) -> dict[str, str]:
    """The test's private world (temp HOME, XDG_*, an empty TMUX_TMPDIR), nothing of the checkout."""
    return {k: v for k, v in world.env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def test_wheel_installs_into_a_fresh_venv_and_runs_with_its_styles(
    wheel: Path, venv: Path, fleet_env: FleetEnv
) -> None:
    # The wheel itself carries the stylesheet where the package looks for it.
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert "fleet_tui/styles/app.tcss" in names, sorted(n for n in names if "styles" in n)

    python = venv / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            env=_world_env(fleet_env),
            cwd=fleet_env.base,
            timeout=60,
        ).strip()
    )
    assert site.is_relative_to(venv), site
    installed = site / "fleet_tui" / "styles" / "app.tcss"
    assert installed.is_file(), sorted(p.name for p in (site / "fleet_tui").iterdir())
    assert installed.read_text() == (CHECKOUT / "styles" / "app.tcss").read_text()
    # A clean install: nothing from the test venv (pytest) is importable there.
    assert not (site / "pytest").exists() and not (site / "_pytest").exists()

    # The dashboard, headless, from the installed package.
    script = fleet_env.base / "headless.py"
    script.write_text(_HEADLESS)
    out = _run(
        [str(python), str(script)], env=_world_env(fleet_env), cwd=fleet_env.base, timeout=120
    )
    seen: dict[str, Any] = json.loads(out.splitlines()[-1])
    package = site / "fleet_tui"
    assert Path(seen["prefix"]).resolve() == venv.resolve()
    assert Path(seen["package"]) == package.resolve(), seen["path"]
    assert Path(seen["styles_dir"]) == package.resolve() / "styles"
    assert Path(seen["css_path"]) == installed.resolve()
    assert seen["poll_error"] is None and seen["polls"] >= 1, seen
    rows = "\n".join(seen["rows"])
    assert rows.splitlines()[0].startswith("AGENT"), rows
    assert "orchestrator (Mos)" in rows and "healthy" in rows, rows
    # app.tcss really loaded: read from the installed file, and its rules applied (the table
    # header is bold only because app.tcss says so).
    assert str(installed.resolve()) in seen["css_sources"], seen["css_sources"]
    assert seen["header_bold"] is True

    # The console script, against an empty tmux socket folder and no roster.
    tmux_tmpdir = fleet_env.base / "empty-tmux"
    tmux_tmpdir.mkdir()
    env = {**_world_env(fleet_env), "TMUX_TMPDIR": str(tmux_tmpdir)}
    out = _run(
        [str(venv / "bin" / "fleet-tui"), "ps", "--json"], env=env, cwd=fleet_env.base, timeout=60
    )
    data = json.loads(out)
    assert data["schema"] == PS_SCHEMA == "mosaic.fleet.ps/v1"
    assert data["agents"] == [] and data["sockets"] == []
