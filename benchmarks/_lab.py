"""Shared plumbing of the tmux benchmarks: a private TMUX_TMPDIR, a `ui` server whose panes play
the operator's terminal, tmux calls, /proc readings, and a clean-up that leaves nothing behind.

Imported by bench_dashboard.py and bench_stream.py (scripts run from the repo; `benchmarks/` is
on sys.path as the script's folder).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The checkout whose fleet_tui is measured: bench_dashboard's `--tree` hands it down in this
# variable, and it must come first here too, since this module imports fleet_tui (with REPO
# first, an in-process `--tree` run measured this checkout instead of the tree).
sys.path.insert(0, str(Path(os.environ.get("FLEET_BENCH_TREE") or REPO).resolve()))

from fleet_tui.sources.procs import pid_alive  # noqa: E402
from fleet_tui.tmux import Liveness, probe_socket  # noqa: E402

TMUX_TIMEOUT_S = 30.0


def fresh_bytecode(tree: Path) -> None:
    """Compile `tree`'s fleet_tui to bytecode with its own interpreter, as an installed package
    is: every tree measured then imports from up-to-date .pyc files (the tree must be writable).
    Without it, under PYTHONDONTWRITEBYTECODE a tree whose .pyc files were never written
    compiled every module at every start: a first paint ~150 ms slower than the same
    code in a checkout with .pyc files (found comparing two checkouts of one commit)."""
    python = tree / ".venv" / "bin" / "python"
    subprocess.run(
        [str(python if python.exists() else sys.executable), "-m", "compileall", "-q",
         str(tree / "fleet_tui")],
        check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONDONTWRITEBYTECODE=""),
    )  # fmt: skip


def connects(path: Path) -> bool:
    """A tmux server answers on this socket file."""
    return probe_socket(path) == Liveness.LIVE


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(utime+stime, cutime+cstime) of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class TmuxLab:
    """A temporary TMUX_TMPDIR (short path: socket paths are limited to 108 bytes), the `ui`
    socket for terminal panes, and every server and pid started, for `cleanup`."""

    def __init__(self, prefix: str) -> None:
        self.tmp = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        os.environ["TMUX_TMPDIR"] = self.tmp
        os.environ.pop("TMUX", None)
        os.environ.pop("TMUX_PANE", None)
        self.tmux = shutil.which("tmux") or "tmux"
        self.python = str(REPO / ".venv" / "bin" / "python")
        if not os.path.exists(self.python):
            self.python = sys.executable
        self.ui_sock = Path(self.tmp) / "ui"
        self.sockets: set[Path] = set()
        self.pids: set[int] = set()
        self.settings = Path(self.tmp) / "fleet-tui.yaml"
        self.settings.write_text("poll_interval_s: 2\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTUAL", "MOSAIC_"))}
        self.env.update(
            {
                "TMUX_TMPDIR": self.tmp,
                "MOSAIC_FLEET_TUI_CONFIG": str(self.settings),
                "COLORTERM": "truecolor",
                "PYTHONPATH": str(REPO),  # every process runs the checkout this script is in
            }
        )

    def run(self, sock: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [self.tmux, "-S", str(sock), *args],
            capture_output=True,
            text=True,
            timeout=TMUX_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            env=self.env,
            check=False,
        )
        if check and res.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args[:3])}: {res.stderr.strip()}")
        return res

    def capture(self, pane: str) -> str:
        return self.run(self.ui_sock, "capture-pane", "-p", "-t", pane, check=False).stdout

    def wait_gone(self, pids: list[int], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for pid in pids:
            while time.monotonic() < deadline and pid_alive(pid):
                time.sleep(0.02)
            if pid_alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.pids.discard(pid)

    def cleanup(self) -> None:
        for path in sorted(self.sockets):
            if not connects(path):
                continue
            try:
                out = self.run(path, "list-panes", "-a", "-F", "#{pane_pid}", check=False)
                self.pids.update(int(p) for p in out.stdout.split() if p.isdigit())
                self.run(path, "kill-server", check=False)
            except (OSError, subprocess.SubprocessError):
                pass
        deadline = time.monotonic() + 5
        for path in sorted(self.sockets):
            while time.monotonic() < deadline and connects(path):
                time.sleep(0.02)
        self.wait_gone(sorted(self.pids))
        self.sockets.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)
