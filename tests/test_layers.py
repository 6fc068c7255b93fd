"""The layer rules of DESIGN.md hold, and the check that guards them really fails on a breach.

`lint-imports` reads the contracts in pyproject.toml `[tool.importlinter]`. The suite runs it on
the tree as it is (all contracts kept), then on a copy of the package with one deliberate upward
import (the pure core reaching up to the dashboard), where it must fail and name the contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    if not LINT.exists():
        pytest.fail(f"lint-imports not installed next to {sys.executable} (the test extra has it)")
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT), str(cwd / "pyproject.toml"), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_tree(dest: Path) -> Path:
    shutil.copytree(
        ROOT / "fleet_tui", dest / "fleet_tui", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_the_tree_keeps_every_layer_contract(tmp_path: Path) -> None:
    result = lint(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout
    assert "Contracts: 5 kept, 0 broken." in result.stdout


def test_an_upward_import_fails_the_check(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    health = tree / "fleet_tui" / "core" / "health.py"
    health.write_text(health.read_text() + "\nfrom fleet_tui.ui import app as _breach  # noqa\n")
    result = lint(tree)
    assert result.returncode != 0
    assert "Layers: imports point down BROKEN" in result.stdout
    assert "fleet_tui.core.health -> fleet_tui.ui.app" in result.stdout
