"""Benchmark: what an open stream screen on a QUIET pane costs (CPU of the dashboard, idle).

Run from the repository root:

    .venv/bin/python benchmarks/bench_stream_idle.py [--seconds 30]

Same lab as bench_stream.py (private TMUX_TMPDIR, `busy` writer that waits for a start file that
never comes: its pane stays quiet; `calm`, a stub). The REAL dashboard runs in a 160x48 pane of
the `ui` server. Three windows of `--seconds` each, CPU (utime+stime from /proc/<pid>/stat) and
the dashboard's thread count (/proc/<pid>/task) read at both ends:

1. fleet: the fleet list, no stream screen (the reference: polls every 2 s);
2. screen: the stream screen open on `busy`, screen mode;
3. log: the same screen in log mode (`Tab`).

Then `escape` closes the stream, and after 3 s the thread count is read once more (a follower
that outlives its screen shows here). Results: benchmarks/results/stream_idle.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from _lab import cpu_ticks  # noqa: E402
from bench_stream import Lab, ensure_mode, python_pid  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "stream_idle.json"


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def task_ticks(pid: int) -> dict[int, int]:
    """utime+stime of each thread of `pid`, by thread id."""
    out: dict[int, int] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = int(rest[11]) + int(rest[12])
    return out


def window(pid: int, seconds: float) -> dict[str, Any]:
    hz = os.sysconf("SC_CLK_TCK")
    t0, c0, k0 = time.monotonic(), cpu_ticks(pid)[0], task_ticks(pid)
    time.sleep(seconds)
    t1, c1, k1 = time.monotonic(), cpu_ticks(pid)[0], task_ticks(pid)
    main = k1.get(pid, 0) - k0.get(pid, 0)
    return {
        "seconds": round(t1 - t0, 2),
        "cpu_s": round((c1 - c0) / hz, 3),
        "cpu_pct": round(100.0 * (c1 - c0) / hz / (t1 - t0), 2),
        "main_thread_pct": round(100.0 * main / hz / (t1 - t0), 2),
        "threads": threads(pid),
    }


def measure(lab: Lab, seconds: float) -> dict[str, Any]:
    lab.start_fleet()
    pane_pid, pane = lab.start_dashboard()
    lab.wait_for(pane, "calm")
    lab.wait_for(pane, "busy")
    dash = python_pid(pane_pid)
    time.sleep(2.0)
    out: dict[str, Any] = {}
    print(f"   fleet list, {seconds:g} s", flush=True)
    out["fleet"] = window(dash, seconds)
    lab.keys(pane, "/")
    lab.wait_for(pane, "filter: words")
    time.sleep(0.3)
    lab.keys(pane, "-l", "name:busy")
    lab.wait_for(pane, "(1 shown)")
    lab.keys(pane, "Enter")
    time.sleep(0.5)
    lab.keys(pane, "s")
    lab.wait_for(pane, "writer ready")
    time.sleep(2.0)
    print(f"   stream screen, screen mode, {seconds:g} s", flush=True)
    out["screen"] = window(dash, seconds)
    ensure_mode(lab, pane, "log")
    time.sleep(2.0)
    print(f"   stream screen, log mode, {seconds:g} s", flush=True)
    out["log"] = window(dash, seconds)
    lab.keys(pane, "Escape")
    time.sleep(3.0)
    out["threads_after_close"] = threads(dash)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=30.0, help="each window, s")
    p.add_argument("--out", default=str(RESULTS), help="JSON results file")
    args = p.parse_args(argv)
    doc: dict[str, Any] = {
        "schema": "fleet_tui.bench.stream_idle/v1",
        "generated_at": datetime.now(UTC).isoformat(),
        "command": " ".join([".venv/bin/python", "benchmarks/bench_stream_idle.py", *sys.argv[1:]]),
        "loadavg_before": list(os.getloadavg()),
    }
    lab = Lab(1.0, 1.0)
    try:
        doc["measure"] = measure(lab, args.seconds)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        lab.cleanup()
    doc["loadavg_after"] = list(os.getloadavg())
    m = doc["measure"]
    print(f"\nidle CPU of the dashboard, % of a core over {args.seconds:g} s (threads at the end)")
    for key in ("fleet", "screen", "log"):
        w = m[key]
        print(
            f"  {key:<8} {w['cpu_pct']:6.2f} %  (main thread {w['main_thread_pct']:.2f} %, "
            f"{w['threads']} threads)"
        )
    print(f"  threads 3 s after closing the stream: {m['threads_after_close']}")
    print(
        f"  load average before/after: {doc['loadavg_before'][0]:.2f}/{doc['loadavg_after'][0]:.2f}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
