"""Benchmark: the dashboard's CPU with 50 agents heartbeating every 2 s, and with nothing changing,
measured from outside (utime+stime of the dashboard process AND its reaped children, the tmux
clients it ran, from /proc/PID/stat), for one or more source trees in the same run.

Run from the repository root:

    .venv/bin/python benchmarks/bench_idle.py --tree /work/i16_before --tree . [--window 60]

The fleet: 50 sessions on a private tmux socket (`fleet`), each pane running `sleep` (a quiet
pane: tmux's activity stamps do not move), listed in a roster; this script writes each agent's
heartbeat every 2 s (seq and ts move, state `busy`), spread evenly over the 2 s as 50 real
runtimes would. Each tree's dashboard (`TREE/.venv/bin/python -m fleet_tui --roster R
--state-dir S`, settings `poll_interval_s: 2`) runs in its own 160x48 pane of a second private
server, all at the same time on the same fleet, so the machine's noise hits every tree alike.
Rows:

- `beating`: heartbeats rewritten every 2 s (the spool watch asks for a heartbeat-only poll at
  most once a second; the full poll runs every 2 s).
- `quiet`: nothing changes (no heartbeat written; the roster's timeout is 1 h so every agent
  stays healthy): what a poll costs when it finds nothing new, plus the age cells' ticking.

Each row is measured over `--window` seconds after `--settle` seconds, `--rounds` times
(beating, quiet, beating, quiet...). Prints % of one core per tree (self, and with children) and
the median over rounds; `--json PATH` keeps the figures.

Every tmux server runs on a socket inside a temporary folder (`TMUX` unset), so the user's own
servers are never touched; on exit everything started is stopped and the folder removed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from _lab import cpu_ticks, fresh_bytecode  # noqa: E402
from bench_dashboard import Lab  # noqa: E402

N = 50
BEAT_S = 2.0
ROW_MARK = "agent000"


def start_quiet_fleet(lab: Lab, n: int) -> tuple[Path, Path, list[str], dict[str, int]]:
    import yaml

    from fleet_tui.control.panes import new_agent_session
    from fleet_tui.sources.spool import HeartbeatSpool
    from fleet_tui.tmux import TmuxRunner

    home = Path(lab.tmp) / "fleet"
    roster, state = home / "roster.yaml", home / "state"
    names = [f"agent{i:03d}" for i in range(n)]
    doc = {
        "version": 1,
        "tenant_id": "bench",
        "host": socket.gethostname(),
        "socket_name": "fleet",
        "heartbeat_timeout_s": 3600,
        "agents": [
            {
                "name": name,
                "role": ("orchestrator", "enhancer")[i] if i < 2 else "coder",
                "runtime": "stub",
                "model": "sonnet",
            }
            for i, name in enumerate(names)
        ],
    }
    home.mkdir(parents=True)
    roster.write_text(yaml.safe_dump(doc, sort_keys=False))
    HeartbeatSpool(state).ensure_writable()
    runner = TmuxRunner(tmpdir=lab.tmp, env=lab.env)
    lab.sockets.add(runner.socket_path("fleet"))
    for name in names:
        new_agent_session(runner, "fleet", name, ["sleep", "100000"], cwd=str(home))
    pids: dict[str, int] = {}
    out = runner.run("fleet", "list-panes", "-a", "-F", "#{session_name} #{pane_pid}")
    for line in out.stdout.splitlines():
        name, pid = line.split()
        pids[name] = int(pid)
        lab.pids.add(int(pid))
    return roster, state, names, pids


class Beater:
    """Rewrites every agent's heartbeat every BEAT_S seconds, spread evenly, while `on`."""

    def __init__(self, state: Path, names: list[str], pids: dict[str, int]) -> None:
        from fleet_tui.sources.spool import HeartbeatSpool

        self.spool = HeartbeatSpool(state)
        self.names, self.pids = names, pids
        self.seq = 0
        self.on = threading.Event()
        self.stop = threading.Event()
        self.written = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def beat(self, name: str) -> None:
        from fleet_tui.protocol.clock import utcnow
        from fleet_tui.protocol.heartbeat import heartbeat_record

        self.spool.write_heartbeat(
            heartbeat_record(
                tenant_id="bench", host=socket.gethostname(), agent=name, seq=self.seq,
                ts=utcnow(), interval_s=BEAT_S, state="busy", detail="working on the bench",
                runtime="stub", model="sonnet", pid=self.pids.get(name),
            )
        )  # fmt: skip
        self.written += 1

    def run(self) -> None:
        gap = BEAT_S / len(self.names)
        t = time.monotonic()
        while not self.stop.is_set():
            self.on.wait()
            self.seq += 1
            for name in self.names:
                if self.stop.is_set() or not self.on.is_set():
                    break
                self.beat(name)
                t += gap
                time.sleep(max(t - time.monotonic(), 0))
            if not self.on.is_set():
                t = time.monotonic()


def launch_dashboard(lab: Lab, tree: Path, roster: Path, state: Path, tag: str) -> tuple[int, str]:
    python = tree / ".venv" / "bin" / "python"
    argv = ["env", f"PYTHONPATH={tree}", str(python), "-m", "fleet_tui",
            "--roster", str(roster), "--state-dir", str(state)]  # fmt: skip
    pid, pane = lab.launch(argv, tag, cwd=tree)  # -m puts the working folder first on sys.path
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ROW_MARK in lab.capture(pane):
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
            assert cwd.resolve() == tree.resolve(), f"the dashboard of {tree} runs in {cwd}"
            return pid, pane
        time.sleep(0.05)
    raise RuntimeError(f"{tree}: no agent row after 30 s: {lab.capture(pane)[-400:]}")


def window_cpu(pids: dict[str, int], window: float) -> dict[str, dict[str, float]]:
    hz = os.sysconf("SC_CLK_TCK")
    a = {k: cpu_ticks(p) for k, p in pids.items()}
    t0 = time.monotonic()
    time.sleep(window)
    el = time.monotonic() - t0
    b = {k: cpu_ticks(p) for k, p in pids.items()}
    out = {}
    for k in pids:
        own = (b[k][0] - a[k][0]) / hz / el * 100
        kids = (b[k][1] - a[k][1]) / hz / el * 100
        out[k] = {"pct": round(own, 2), "pct_with_children": round(own + kids, 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--tree", action="append", default=[], help="a checkout with its .venv")
    p.add_argument("--window", type=float, default=60.0)
    p.add_argument("--settle", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--agents", type=int, default=N)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    trees = [Path(t).resolve() for t in (args.tree or [str(HERE.parent)])]
    for tree in trees:
        fresh_bytecode(tree)  # each tree's start-up as installed (see _lab.fresh_bytecode)
    lab = Lab()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        str(t): {"beating": [], "quiet": []} for t in trees
    }
    loads: list[list[float]] = []
    try:
        roster, state, names, pane_pids = start_quiet_fleet(lab, args.agents)
        beater = Beater(state, names, pane_pids)
        for name in names:
            beater.beat(name)
        beater.thread.start()
        dash: dict[str, int] = {}
        for i, tree in enumerate(trees):
            pid, _ = launch_dashboard(lab, tree, roster, state, f"dash{i}")
            dash[str(tree)] = pid
        for rnd in range(args.rounds):
            for row in ("beating", "quiet"):
                if row == "beating":
                    beater.on.set()
                else:
                    beater.on.clear()
                time.sleep(args.settle)
                got = window_cpu(dash, args.window)
                load = list(os.getloadavg())
                loads.append(load)
                for k, v in got.items():
                    results[k][row].append(v)
                cells = "  ".join(
                    f"{Path(k).name}: {v['pct']:.2f} % ({v['pct_with_children']:.2f} % w/ children)"
                    for k, v in got.items()
                )
                print(f"round {rnd + 1} {row:8} load {load[0]:.2f}  {cells}", flush=True)
        beater.stop.set()
        beater.on.set()
    finally:
        lab.cleanup()
    print()
    print(f"median over {args.rounds} rounds, {args.window:g} s windows, {args.agents} agents")
    summary: dict[str, Any] = {}
    for k, rows in results.items():
        summary[k] = {}
        for row, vals in rows.items():
            if not vals:
                continue
            own = statistics.median(v["pct"] for v in vals)
            kids = statistics.median(v["pct_with_children"] for v in vals)
            summary[k][row] = {"pct": own, "pct_with_children": kids}
            print(f"  {k:<28} {row:8} {own:6.2f} % of a core ({kids:.2f} % with children)")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"results": results, "summary": summary, "loadavg": loads}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
