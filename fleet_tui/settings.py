"""Dashboard settings: `$XDG_CONFIG_HOME/mosaic/fleet-tui.yaml` (or `MOSAIC_FLEET_TUI_CONFIG`).

```yaml
theme: fleet-dark          # or fleet-light, or any Textual theme
poll_interval_s: 2         # tmux, processes and heartbeats
systemd_interval_s: 30
keymap:                    # binding id -> keys (see the help screen, `?`, for the ids)
  fleet.filter: slash,f
```
A bad file never stops the dashboard: it starts with the defaults and says why in one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet_tui.paths import _xdg


class DashboardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    theme: str = "fleet-dark"
    poll_interval_s: float = Field(default=2.0, ge=0.2, le=3600)
    systemd_interval_s: float = Field(default=30.0, ge=1, le=86400)
    keymap: dict[str, str] = Field(default_factory=dict)


def settings_path() -> Path:
    env = os.environ.get("MOSAIC_FLEET_TUI_CONFIG")
    return Path(env) if env else _xdg("XDG_CONFIG_HOME", ".config") / "mosaic" / "fleet-tui.yaml"


def load_settings(path: Path | None = None) -> tuple[DashboardSettings, str | None]:
    """The settings and, when the file is bad, a one-line reason (defaults are used then)."""
    path = path or settings_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DashboardSettings(), None
    except (OSError, UnicodeDecodeError) as exc:
        return DashboardSettings(), f"{path}: unreadable ({exc}); using defaults"
    try:
        data = yaml.safe_load(text) or {}
        return DashboardSettings.model_validate(data), None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        return DashboardSettings(), f"{path}{line}: not valid YAML; using defaults"
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        return DashboardSettings(), f"{path}: {field}: {err['msg']}; using defaults"
