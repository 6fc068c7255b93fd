"""Crash handling of the dashboard (fleet_tui/ui/crash.py, the `tui` verb): exit 1, one line naming
the crash log, a log with the traceback and no locals. The crash inside a running dashboard, in a
real terminal, is tests/test_terminal.py::test_a_crash_exits_1_with_one_line_and_a_crash_log_never_agent_data_on_screen.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from conftest import FleetEnv

import fleet_tui.cli.main
import fleet_tui.ui.launch
from fleet_tui.cli.main import main
from fleet_tui.ui import crash


def _crashing_dashboard(config: object, **kw: object) -> int:
    agent_cwd = "/home/op/secret-project"  # a local, as an agent's record would be
    raise RuntimeError("boom \x1b]52;c;UFdORUQ=\x07 " + str(len(agent_cwd)))


@pytest.fixture
def crashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet_tui.ui.launch, "run_dashboard", _crashing_dashboard)
    monkeypatch.setattr(fleet_tui.cli.main, "_has_tty", lambda: True)


def _log_of(line: str) -> Path:
    assert "crash log: " in line, line
    return Path(line.split("crash log: ", 1)[1].strip())


def test_a_crash_outside_the_app_is_exit_1_one_line_and_a_log(
    fleet_env: FleetEnv, crashing: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tui"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("fleet-tui: the dashboard crashed (RuntimeError); crash log: ")
    log = _log_of(err)
    assert log.parent == fleet_env.state_dir / "crash"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "_crashing_dashboard" in text
    assert "secret-project" not in text  # no locals
    assert "\x1b" not in text and "\x07" not in text and "\\x1b]52" in text  # safe to cat
    assert not crash.armed()  # Textual's own handling again once the dashboard has gone


def test_the_log_goes_to_a_temp_file_when_the_state_dir_cannot_hold_it(
    fleet_env: FleetEnv,
    crashing: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    fleet_env.state_dir.mkdir(parents=True)
    (fleet_env.state_dir / "crash").write_text("not a folder")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["tui"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    log = _log_of(err)
    assert log.parent == tmp_path and log.name.startswith("fleet-tui-crash-")
    assert "_crashing_dashboard" in log.read_text()
