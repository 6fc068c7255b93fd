"""`fleet-tui units`: systemd --user units for the always-on agents.

This machine runs no systemd: the unit files are checked by `systemd-analyze verify` (it needs
no running systemd), and what systemd would run (`ExecStart`, `ExecStop`, with the unit's
`Environment=`) is run here for real against a private tmux socket.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FleetEnv, unavailable

from fleet_tui.sources.systemd import current_user

pytestmark = pytest.mark.tmux


def _roster(env: FleetEnv) -> None:
    cmd = shlex.join([sys.executable, "-m", "fleet_tui", "stub", "alpha", "--interval", "0.5"])
    env.write_roster(
        [
            {"name": "alpha", "role": "orchestrator", "command": cmd},
            {"name": "beta", "role": "coder", "command": "sleep 600", "unit": "beta.service"},
            {"name": "board", "role": "board"},  # no command: no unit
            {"name": "temp", "role": "coder", "command": "true", "lifecycle": "ephemeral"},
        ]
    )


def _unit_dir(env: FleetEnv) -> Path:
    return env.config_home / "systemd" / "user"


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_units_prints_one_unit_per_always_on_agent(fleet_env: FleetEnv) -> None:
    env = fleet_env
    _roster(env)
    res = env.cli("units")
    assert res.rc == 0, res
    out = res.stdout
    assert f"# {_unit_dir(env)}/mosaic-agent@alpha.service\n" in out
    assert f"# {_unit_dir(env)}/beta.service\n" in out  # the roster's own unit name
    assert "temp" not in out  # ephemeral: no unit
    assert "board: no unit (not startable: no command in the roster)" in out
    assert "Type=oneshot\nRemainAfterExit=yes\n" in out
    assert " up alpha\n" in out and " stop alpha --yes\n" in out
    assert "  fleet-tui units --write\n" in out
    assert "  systemctl --user enable --now mosaic-agent@alpha.service beta.service\n" in out
    assert f"  loginctl enable-linger {current_user()}   #" in out  # nobody lingers here
    assert "  alpha:  unit: mosaic-agent@alpha.service\n" in out
    assert "beta:  unit:" not in out  # named in the roster already
    assert not _unit_dir(env).exists()


def test_units_write_verify_and_run_what_systemd_would(fleet_env: FleetEnv) -> None:
    env = fleet_env
    _roster(env)
    res = env.cli("units", "--write")
    path = _unit_dir(env) / "mosaic-agent@alpha.service"
    assert f"wrote {path}" in res.stdout
    if shutil.which("systemd-analyze") is None:
        unavailable("systemd-analyze is not installed (apt package 'systemd')")
    assert "systemd-analyze verify: ok" in res.stdout, res
    assert res.rc == 0
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    # again: nothing changes
    res = env.cli("units", "--write")
    assert f"unchanged {path}" in res.stdout and res.rc == 0

    # run ExecStart and ExecStop as systemd --user would: the unit's Environment= and a
    # minimal environment of the user manager (no login PATH, cwd /)
    unit = _directives(path.read_text())
    unit_env = dict(a.strip('"').split("=", 1) for a in unit["Environment"])
    base = {
        "HOME": env.env["HOME"],
        "PATH": "/usr/bin:/bin",
        "TMUX_TMPDIR": env.env["TMUX_TMPDIR"],
        "LANG": "C.UTF-8",
    }
    manager_env = {**base, **unit_env}
    assert unit_env["MOSAIC_FLEET_ROSTER"] == str(env.roster_path)
    start = subprocess.run(
        shlex.split(unit["ExecStart"][0]),
        env=manager_env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert start.returncode == 0, start
    assert start.stdout.startswith("alpha: started (socket mosaic-fleet")
    env.wait_heartbeat("alpha")
    stop = subprocess.run(
        shlex.split(unit["ExecStop"][0]),
        env=manager_env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert stop.returncode == 0, stop
    assert "alpha: stopped" in stop.stdout


def test_units_write_leaves_a_foreign_file_alone(fleet_env: FleetEnv) -> None:
    env = fleet_env
    _roster(env)
    folder = _unit_dir(env)
    folder.mkdir(parents=True)
    (folder / "beta.service").write_text("[Service]\nExecStart=/bin/true\n")
    res = env.cli("units", "--write")
    assert res.rc == 1
    assert f"kept {folder / 'beta.service'}: not written by fleet-tui" in res.stdout
    assert (folder / "beta.service").read_text() == "[Service]\nExecStart=/bin/true\n"


def test_units_quotes_paths_with_blanks_and_percent(fleet_env: FleetEnv, tmp_path: Path) -> None:
    env = fleet_env
    odd = tmp_path / "my fleet 100%"
    odd.mkdir()
    roster = odd / "roster.yaml"
    env.write_roster([{"name": "alpha", "role": "coder", "command": "true"}], path=roster)
    res = env.cli("units", "--write", "--roster", str(roster))
    if shutil.which("systemd-analyze") is None:
        unavailable("systemd-analyze is not installed (apt package 'systemd')")
    assert "systemd-analyze verify: ok" in res.stdout, res
    text = (_unit_dir(env) / "mosaic-agent@alpha.service").read_text()
    escaped = str(roster).replace("%", "%%")
    assert f'Environment="MOSAIC_FLEET_ROSTER={escaped}"' in text
