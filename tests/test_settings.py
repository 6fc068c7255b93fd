"""Dashboard settings (fleet_tui/config/settings.py): the README's own example loads as written, one bad
key drops only itself, and a settings file that is a FIFO never hangs anything."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FleetEnv

from fleet_tui.config.settings import DashboardSettings, load_inference_rules, load_settings

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_settings_block() -> str:
    """The ```yaml block that follows "Settings (optional)" in README.md."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index("Settings (optional)") :]
    found = re.search(r"```yaml\n(.*?)```", after, re.DOTALL)
    assert found, "no yaml block after 'Settings (optional)' in README.md"
    return found.group(1)


def test_the_readme_settings_example_loads_as_written(tmp_path: Path) -> None:
    cfg = tmp_path / "fleet-tui.yaml"
    cfg.write_text(readme_settings_block(), encoding="utf-8")
    settings, notice = load_settings(cfg)
    assert notice is None
    assert settings.theme == "fleet-dark" and settings.poll_interval_s == 2
    assert settings.keymap == {"fleet.filter": "slash,f"}
    rules, notices = load_inference_rules(cfg)
    assert notices == []
    claude = rules.patterns("claude")
    assert "Thinking…" in [p.pattern for p in claude.busy]  # added to the built-in ones
    assert "Do you want to make this edit" in [p.pattern for p in claude.prompt]
    assert "esc to interrupt" in [p.pattern for p in claude.busy]


def test_one_bad_key_drops_only_itself_with_a_notice_naming_it(tmp_path: Path) -> None:
    cfg = tmp_path / "fleet-tui.yaml"
    cfg.write_text(
        "theme: fleet-light\n"
        "poll_interval_s: 0\n"  # out of range
        "colour: blue\n"  # unknown
        "keymap:\n  fleet.filter: slash,f\n"
        "inference:\n"
        "  active_within_s: 7\n"
        "  claude:\n    prompt: ['Ship it\\?']\n    promt: ['typo']\n"
    )
    settings, notice = load_settings(cfg)
    assert settings.theme == "fleet-light"  # kept
    assert settings.keymap == {"fleet.filter": "slash,f"}  # kept
    assert settings.poll_interval_s == DashboardSettings().poll_interval_s  # dropped alone
    assert notice is not None
    lines = notice.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"{cfg}: poll_interval_s: ") and lines[0].endswith("; ignored")
    assert lines[1].startswith(f"{cfg}: colour: ")
    # the inference section: the typo goes, with one line; its neighbours stay
    rules, notices = load_inference_rules(cfg)
    assert notices == [
        f"{cfg}: inference.runtimes.claude.promt: Extra inputs are not permitted; ignored"
    ]
    assert rules.active_within_s == 7
    assert "Ship it\\?" in [p.pattern for p in rules.patterns("claude").prompt]


def test_runtimes_one_level_down_still_load(tmp_path: Path) -> None:
    cfg = tmp_path / "fleet-tui.yaml"
    cfg.write_text("inference:\n  runtimes:\n    codex:\n      busy: ['Crunching']\n")
    rules, notices = load_inference_rules(cfg)
    assert notices == []
    assert "Crunching" in [p.pattern for p in rules.patterns("codex").busy]
    assert load_settings(cfg)[1] is None


def test_an_unreadable_or_broken_file_gives_the_defaults_and_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "fleet-tui.yaml"
    cfg.write_text("theme: [unclosed\n")
    settings, notice = load_settings(cfg)
    assert settings == DashboardSettings() and notice == f"{cfg}:2: not valid YAML; using defaults"
    cfg.write_text("- a list\n")
    settings, notice = load_settings(cfg)
    assert settings == DashboardSettings() and notice is not None and len(notice.splitlines()) == 1
    assert load_settings(tmp_path / "absent.yaml") == (DashboardSettings(), None)
    cfg.write_text("# nothing yet\n")  # an empty file: the defaults, and nothing to say
    assert load_settings(cfg) == (DashboardSettings(), None)
    # (built without validating: the same values, fields and dump as validated defaults)
    defaults, _ = load_settings(cfg)
    assert defaults.model_dump() == DashboardSettings().model_dump()
    assert defaults.model_fields_set == set() and defaults.inference.rules()[1] == []


@pytest.mark.parametrize("what", ["settings", "ps"])
def test_a_fifo_as_the_settings_file_never_hangs(
    fleet_env: FleetEnv, tmp_path: Path, what: str
) -> None:
    fifo = tmp_path / "fleet-tui.yaml"
    os.mkfifo(fifo)
    env = {**fleet_env.env, "MOSAIC_FLEET_TUI_CONFIG": str(fifo)}
    if what == "ps":  # `ps` reads the inference section of the settings
        argv = [sys.executable, "-m", "fleet_tui", "ps"]
    else:
        argv = [
            sys.executable,
            "-c",
            "from fleet_tui.config.settings import load_settings; print(load_settings()[1])",
        ]
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, proc
    said = proc.stdout if what == "settings" else proc.stderr
    assert f"{fifo}: unreadable" in said and "FIFO" in said, said
