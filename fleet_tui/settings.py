"""Dashboard settings: `$XDG_CONFIG_HOME/mosaic/fleet-tui.yaml` (or `MOSAIC_FLEET_TUI_CONFIG`).

```yaml
theme: fleet-dark          # or fleet-light, or any Textual theme
poll_interval_s: 2         # tmux, processes and heartbeats
systemd_interval_s: 30
keymap:                    # binding id -> keys (see the help screen, `?`, for the ids)
  fleet.filter: slash,f
inference:                 # how a pane WITHOUT a heartbeat is read (fleet_tui/core/infer.py)
  active_within_s: 3       # output this recent counts as busy
  runtimes:                # claude, codex, pi, opencode, shell, or a runtime of your own
    claude:
      prompt: ["Approve this plan\\?"]   # extra regexes -> waiting_input
      busy: ["Compacting"]                 # extra regexes on screen -> busy
      title_busy: []                       # extra regexes on the pane title -> busy
      replace: false                       # true: these lists replace the defaults
```
A bad file never stops the dashboard: it starts with the defaults and says why in one line. A
bad regex leaves out that one pattern, with a one-line notice, and keeps the rest.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet_tui.core.infer import ACTIVE_WITHIN_S, InferenceRules, compile_rules
from fleet_tui.paths import _xdg


class RuntimePatternSettings(BaseModel):
    """Extra (or, with `replace`, replacing) inference patterns of one runtime."""

    model_config = ConfigDict(extra="forbid")

    prompt: list[str] = Field(default_factory=list)
    busy: list[str] = Field(default_factory=list)
    title_busy: list[str] = Field(default_factory=list)
    replace: bool = False


class InferenceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    active_within_s: float = Field(default=ACTIVE_WITHIN_S, ge=0, le=3600)
    runtimes: dict[str, RuntimePatternSettings] = Field(default_factory=dict)

    def rules(self, where: str = "inference.runtimes") -> tuple[InferenceRules, list[str]]:
        """The compiled rules and a notice per pattern that does not compile."""
        return compile_rules(
            {rt: spec.model_dump() for rt, spec in self.runtimes.items()},
            active_within_s=self.active_within_s,
            where=where,
        )


class DashboardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    theme: str = "fleet-dark"
    poll_interval_s: float = Field(default=2.0, ge=0.2, le=3600)
    systemd_interval_s: float = Field(default=30.0, ge=1, le=86400)
    keymap: dict[str, str] = Field(default_factory=dict)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)


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


def load_inference_rules(path: Path | None = None) -> tuple[InferenceRules, list[str]]:
    """The inference rules of the settings file's `inference` section, and one-line notices
    about that section only (the rest of the file is the dashboard's business): a bad section
    gives the default rules, a bad regex leaves out that pattern."""
    path = path or settings_path()
    defaults = InferenceSettings()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return defaults.rules()
    except (OSError, UnicodeDecodeError):
        return defaults.rules()[0], [f"{path}: unreadable; default inference rules"]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        return defaults.rules()[0], [f"{path}{line}: not valid YAML; default inference rules"]
    section = data.get("inference") if isinstance(data, dict) else None
    if section is None:
        return defaults.rules()
    try:
        chosen = InferenceSettings.model_validate(section)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in ("inference", *err["loc"]))
        return defaults.rules()[0], [f"{path}: {field}: {err['msg']}; default inference rules"]
    return chosen.rules(where=f"{path}: inference.runtimes")
