"""systemd --user source: all units in ONE `systemctl --user show` call, plus linger.

Where there is no systemd (containers, this CI) the scan says so plainly ("no systemd") instead of
failing: `/run/systemd/system` is checked before any call (TMUX-FACTS.md).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from fleet_tui.model.records import SystemdScan, UnitState

SHOW_PROPS = "Id,LoadState,ActiveState,SubState,UnitFileState"


def parse_show(text: str) -> dict[str, UnitState]:
    """Parse `systemctl show -p Id,... U1 U2 ...`: blocks of `Key=Value` split by blank lines."""
    units: dict[str, UnitState] = {}
    for block in text.replace("\r\n", "\n").split("\n\n"):
        props: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                props[key.strip()] = value.strip()
        unit = props.get("Id")
        if not unit:
            continue
        units[unit] = UnitState(
            unit=unit,
            load_state=props.get("LoadState") or None,
            active_state=props.get("ActiveState") or None,
            sub_state=props.get("SubState") or None,
            unit_file_state=props.get("UnitFileState") or None,
        )
    return units


def linger_enabled(user: str, root: Path = Path("/var/lib/systemd/linger")) -> bool:
    """Lingering users have a file named after them here (what `loginctl` reads)."""
    return (root / user).exists()


def current_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER") or str(os.getuid())


def scan_systemd(
    units: list[str],
    *,
    run_dir: Path = Path("/run/systemd/system"),
    timeout: float = 3.0,
) -> SystemdScan:
    """Ask systemd --user about `units` in one process; never raises."""
    if not run_dir.is_dir():
        return SystemdScan(False, f"no systemd ({run_dir} absent)")
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return SystemdScan(False, "no systemd (systemctl not installed)")
    linger = linger_enabled(current_user())
    if not units:
        return SystemdScan(True, None, {}, linger)
    try:
        proc = subprocess.run(
            [systemctl, "--user", "show", "-p", SHOW_PROPS, "--", *units],
            capture_output=True,
            text=True,
            encoding="utf-8",  # never the locale's, and a stray byte never raises
            errors="replace",
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return SystemdScan(
            False, f"systemctl --user did not answer within {timeout:g} s", linger=linger
        )
    except OSError as exc:
        return SystemdScan(False, f"systemctl --user failed: {exc.strerror}", linger=linger)
    if proc.returncode != 0 and not proc.stdout.strip():
        first = (proc.stderr.strip().splitlines() or ["exit status " + str(proc.returncode)])[0]
        return SystemdScan(False, f"systemctl --user: {first}", linger=linger)
    return SystemdScan(True, None, parse_show(proc.stdout), linger)
