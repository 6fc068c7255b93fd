"""Where fleet files live (DESIGN.md "Files and environment"): flag, then environment, then XDG."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def settings_path() -> Path:
    """The dashboard's settings file, fleet-tui.yaml (read by `config.settings`)."""
    env = os.environ.get("MOSAIC_FLEET_TUI_CONFIG")
    return Path(env) if env else _xdg("XDG_CONFIG_HOME", ".config") / "mosaic" / "fleet-tui.yaml"


def default_roster_path() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "mosaic" / "roster.yaml"


def default_state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "mosaic" / "fleet"


def default_budgets_path() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "mosaic" / "budgets.yaml"


class Located(NamedTuple):
    """A path and whether the user named it (a named file that is missing is an error).

    A NamedTuple, not a dataclass: importing `dataclasses` costs the hook adapters ~9 ms."""

    path: Path
    explicit: bool


def locate(flag: str | None, env: str, default: Path) -> Located:
    if flag:
        return Located(Path(flag).expanduser(), True)
    value = os.environ.get(env)
    if value:
        return Located(Path(value).expanduser(), True)
    return Located(default, False)


def roster_location(flag: str | None = None) -> Located:
    return locate(flag, "MOSAIC_FLEET_ROSTER", default_roster_path())


def state_dir_location(flag: str | None = None) -> Located:
    return locate(flag, "MOSAIC_FLEET_STATE_DIR", default_state_dir())


def budgets_location(flag: str | None = None) -> Located:
    """`--budgets PATH`, else `MOSAIC_FLEET_BUDGETS`, else `$XDG_CONFIG_HOME/mosaic/budgets.yaml`."""
    return locate(flag, "MOSAIC_FLEET_BUDGETS", default_budgets_path())


def default_alerts_path() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "mosaic" / "alerts.yaml"


def alerts_location(flag: str | None = None) -> Located:
    """`--alerts PATH`, else `MOSAIC_FLEET_ALERTS`, else `$XDG_CONFIG_HOME/mosaic/alerts.yaml`."""
    return locate(flag, "MOSAIC_FLEET_ALERTS", default_alerts_path())
