"""Benchmark: the stream screen while an agent writes 10 MB/s, against the same screen idle.

Run from the repository root:

    .venv/bin/python benchmarks/bench_stream.py [--rate-mb 10] [--seconds 10]

A private tmux server (`fleet`) runs two agents from a roster: `busy`, whose pane runs a Python
writer that waits for a start file, then emits coloured log lines (SGR, ~100 characters each)
rate-limited to `--rate-mb` MB/s for `--seconds` s and ends with a unique marker line; and `calm`,
a `fleet-tui stub`. The REAL dashboard (`python -m fleet_tui --roster R --state-dir S`) runs in a
160x48 pane of a second private server (`ui`, outside the folder the dashboard scans); the script
filters to `busy` (`/busy` Enter), opens the stream (`s`), switches to log mode (`Tab`, which
opens the pipe-pane log `S/logs/fleet.busy.log`), then:

1. idle: every 0.5 s it presses `Tab` (screen <-> log mode) and polls `capture-pane -p` every
   10 ms until the title line shows the other mode: input-to-screen latency, writer idle;
2. burst: the same while the writer writes; the dashboard's RSS (`VmRSS`) and CPU
   (utime+stime) are sampled every 0.5 s from outside throughout;
3. after: in log mode, the time from the writer's last line to that marker showing on the
   screen (must be under 2 s), then RSS and latency once more, writer idle again.

Every tmux server runs on a socket in a temporary folder (`/tmp/ftxXXXX`, `TMUX` unset), so the
user's own servers are never touched. On exit (Ctrl-C, SIGTERM, SIGHUP included) every server and
process it started is stopped and the folder removed. Results: benchmarks/results/stream.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# `--tree PATH`: the dashboard under test runs PATH's checkout with PATH's interpreter (the
# writer, the stub and this script stay this checkout's), for before/after in the same run.
DASH_TREE = REPO
from _lab import TmuxLab, cpu_ticks, fresh_bytecode, rss_kb  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "stream.json"
SIZE = (160, 48)
PROBE_EVERY_S = 0.5
POLL_S = 0.01
PROBE_TIMEOUT_S = 5.0
SAMPLE_EVERY_S = 0.5
GOAL_P95_MS = 500.0
GOAL_CATCH_UP_S = 2.0

WRITER = r"""
import json, os, sys, time
start_file, done_file, marker = sys.argv[1], sys.argv[2], sys.argv[3]
rate, seconds = float(sys.argv[4]) * 1e6, float(sys.argv[5])
colours = ["31", "32", "33", "34", "35", "36", "1;31", "38;5;208", "38;2;120;200;80", "1;34"]
words = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega".split()
pool = []
for i in range(4096):
    c1, c2 = colours[i % len(colours)], colours[(i * 7 + 3) % len(colours)]
    body = " ".join(words[(i + k) % len(words)] for k in range(6 + i % 5))
    text = f"INFO worker-{i % 16:02d} {body} took {i % 997} ms "
    pad = "." * max(0, 88 - len(text))
    pool.append(f"\x1b[{c1}mINFO\x1b[0m worker-{i % 16:02d} \x1b[{c2}m{body}\x1b[0m "
                f"\x1b[2mtook {i % 997} ms\x1b[0m {pad}")
sys.stdout.write("writer ready, waiting for the start file\n")
sys.stdout.flush()
while not os.path.exists(start_file):
    time.sleep(0.01)
fd = sys.stdout.fileno()
t0 = time.monotonic()
sent = seq = 0
while True:
    now = time.monotonic()
    if now - t0 >= seconds:
        break
    allowed = rate * (now - t0) - sent
    if allowed < 32768:
        time.sleep(0.005)
        continue
    out = []
    size = 0
    while size < min(allowed, 262144):
        s = f"{pool[seq % 4096]} #{seq:08d}\n"
        out.append(s)
        size += len(s)
        seq += 1
    data = "".join(out).encode()
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    sent += len(data)
end_line = f"\x1b[1;32m{marker}\x1b[0m lines={seq}\n".encode()
os.write(fd, end_line)
sent += len(end_line)
t_end = time.monotonic()
tmp = done_file + ".tmp"
with open(tmp, "w") as fh:
    json.dump({"bytes": sent, "lines": seq + 1, "t_start": t0, "t_end": t_end}, fh)
os.rename(tmp, done_file)
time.sleep(3600)
"""


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def pct(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not samples:
        return float("nan")
    s = sorted(samples)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def summary(samples: list[float], timeouts: int) -> dict[str, Any]:
    return {
        "n": len(samples),
        "timeouts": timeouts,
        "median_ms": ms(statistics.median(samples)) if samples else None,
        "p95_ms": ms(pct(samples, 95)) if samples else None,
        "max_ms": ms(max(samples)) if samples else None,
        "min_ms": ms(min(samples)) if samples else None,
        "samples_ms": [ms(x) for x in samples],
    }


def python_pid(pid: int) -> int:
    """The pane's process, or its python child when the pane runs a wrapper."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return pid
    if comm.startswith("python"):
        return pid
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pid
    for k in kids:
        try:
            if Path(f"/proc/{k}/comm").read_text().startswith("python"):
                return int(k)
        except OSError:
            continue
    return pid


class Lab(TmuxLab):
    """The temporary TMUX_TMPDIR: the fleet's socket (found by the dashboard), the `ui` socket
    for the dashboard's terminal (outside the folder the dashboard scans), roster and state."""

    def __init__(self, rate_mb: float, seconds: float) -> None:
        super().__init__("ftx")
        self.rate_mb, self.seconds = rate_mb, seconds
        self.marker = f"BENCH-END-{uuid.uuid4().hex[:12]}"
        self.home = Path(self.tmp) / "fleet"
        self.roster = self.home / "roster.yaml"
        self.state = self.home / "state"
        self.start_file = Path(self.tmp) / "go"
        self.done_file = Path(self.tmp) / "done.json"
        self.fleet_sock: Path | None = None

    def start_fleet(self) -> tuple[int, int]:
        """Roster + state dir, `busy` (the writer) and `calm` (a stub); their pane pids."""
        import yaml

        from fleet_tui.control.panes import new_agent_session
        from fleet_tui.sources.spool import HeartbeatSpool
        from fleet_tui.tmux import TmuxRunner

        doc = {
            "version": 1,
            "tenant_id": "bench",
            "host": socket.gethostname(),
            "socket_name": "fleet",
            "heartbeat_timeout_s": 30,
            "agents": [
                {"name": "busy", "role": "coder", "runtime": "other"},
                {"name": "calm", "role": "orchestrator", "runtime": "stub"},
            ],
        }
        self.home.mkdir(parents=True)
        self.roster.write_text(yaml.safe_dump(doc, sort_keys=False))
        HeartbeatSpool(self.state).ensure_writable()
        writer = Path(self.tmp) / "writer.py"
        writer.write_text(WRITER)
        runner = TmuxRunner(tmpdir=self.tmp, env=self.env)
        self.fleet_sock = runner.socket_path("fleet")
        self.sockets.add(self.fleet_sock)
        env = {
            "MOSAIC_FLEET_ROSTER": str(self.roster),
            "MOSAIC_FLEET_STATE_DIR": str(self.state),
            "PYTHONUNBUFFERED": "1",
        }
        new_agent_session(
            runner,
            "fleet",
            "busy",
            [self.python, str(writer), str(self.start_file), str(self.done_file), self.marker,
             str(self.rate_mb), str(self.seconds)],
            env=env,
            cwd=str(self.home),
        )  # fmt: skip
        stub = [self.python, "-m", "fleet_tui", "stub", "calm", "--interval", "2"]
        new_agent_session(runner, "fleet", "calm", stub, env=env, cwd=str(self.home))
        out = self.run(self.fleet_sock, "list-panes", "-a", "-F", "#{session_name} #{pane_pid}")
        pids = dict(line.split() for line in out.stdout.splitlines() if line.strip())
        self.pids.update(int(p) for p in pids.values())
        spool = HeartbeatSpool(self.state)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not spool.heartbeat_path("calm").exists():
            time.sleep(0.1)
        return int(pids["busy"]), int(self.server_pid(self.fleet_sock))

    def server_pid(self, sock: Path) -> int:
        return int(self.run(sock, "display-message", "-p", "#{pid}").stdout.strip())

    def start_dashboard(self) -> tuple[int, str]:
        conf = Path(self.tmp) / "ui.conf"
        conf.write_text(
            "set -g default-terminal tmux-256color\n"
            f"set -g default-size {SIZE[0]}x{SIZE[1]}\n"
            "set -gw remain-on-exit on\n"
            "set -g status off\n"
        )
        argv = [
            "env", "-u", "TMUX", "-u", "TMUX_PANE", f"TMUX_TMPDIR={self.tmp}",
            f"MOSAIC_FLEET_TUI_CONFIG={self.settings}", "TERM=tmux-256color",
            f"PYTHONPATH={DASH_TREE}",
            str(DASH_TREE / ".venv" / "bin" / "python") if DASH_TREE != REPO else self.python,
            "-m", "fleet_tui", "--roster", str(self.roster),
            "--state-dir", str(self.state),
        ]  # fmt: skip
        self.sockets.add(self.ui_sock)
        res = self.run(
            self.ui_sock, "-f", str(conf), "new-session", "-d", "-s", "ui",
            # in the tree's folder: `python -m` puts the working folder first on sys.path, so a
            # pane started from this checkout would run this checkout whatever PYTHONPATH says
            "-c", str(DASH_TREE),
            "-x", str(SIZE[0]), "-y", str(SIZE[1]), "-P", "-F", "#{pane_pid} #{pane_id}", *argv,
        )  # fmt: skip
        pid_s, pane = res.stdout.split()
        self.pids.add(int(pid_s))
        return int(pid_s), pane

    def keys(self, pane: str, *k: str) -> None:
        self.run(self.ui_sock, "send-keys", "-t", pane, *k)

    def wait_for(self, pane: str, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < deadline:
            shown = self.capture(pane)
            if text in shown:
                return shown
            time.sleep(0.05)
        tail = [line.rstrip() for line in shown.splitlines() if line.strip()][:6]
        raise RuntimeError(f"{text!r} did not show within {timeout:g} s; screen: {tail}")


class Sampler(threading.Thread):
    """RSS and CPU ticks of some pids every SAMPLE_EVERY_S: (monotonic, {name: (rss_kb, ticks)})."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.samples: list[tuple[float, dict[str, tuple[int, int]]]] = []
        self.stop = threading.Event()

    def take(self) -> tuple[float, dict[str, tuple[int, int]]]:
        row: dict[str, tuple[int, int]] = {}
        for name, pid in self.pids.items():
            try:
                row[name] = (rss_kb(pid), cpu_ticks(pid)[0])
            except (OSError, ValueError, IndexError):
                row[name] = (0, 0)
        s = (time.monotonic(), row)
        self.samples.append(s)
        return s

    def run(self) -> None:
        while not self.stop.is_set():
            self.take()
            self.stop.wait(SAMPLE_EVERY_S)

    def between(self, t0: float, t1: float) -> list[tuple[float, dict[str, tuple[int, int]]]]:
        return [s for s in self.samples if t0 <= s[0] <= t1]


def title_mode(screen: str) -> str | None:
    for line in screen.splitlines():
        if "read-only" in line:
            if "log mode" in line:
                return "log"
            if "screen mode" in line:
                return "screen"
    return None


def probe(lab: Lab, pane: str) -> tuple[float | None, str, str | None]:
    """Press Tab; seconds until the title shows the other mode (None: timeout), from, to."""
    mode = None
    for _ in range(50):
        mode = title_mode(lab.capture(pane))
        if mode:
            break
        time.sleep(POLL_S)
    if mode is None:
        raise RuntimeError("the stream screen's title line is not on the screen")
    want = "screen" if mode == "log" else "log"
    t0 = time.monotonic()
    lab.keys(pane, "Tab")
    while time.monotonic() - t0 < PROBE_TIMEOUT_S:
        if title_mode(lab.capture(pane)) == want:
            return time.monotonic() - t0, mode, want
        time.sleep(POLL_S)
    return None, mode, want


def probe_loop(lab: Lab, pane: str, until: Any) -> dict[str, Any]:
    """Probe every PROBE_EVERY_S until `until()` is true."""
    lat: list[float] = []
    by_dir: dict[str, list[float]] = {"to_log": [], "to_screen": []}
    timeouts = 0
    next_at = time.monotonic()
    while not until():
        now = time.monotonic()
        if now < next_at:
            time.sleep(min(next_at - now, 0.02))
            continue
        next_at = now + PROBE_EVERY_S
        dt, _src, dst = probe(lab, pane)
        if dt is None:
            timeouts += 1
            continue
        lat.append(dt)
        by_dir[f"to_{dst}"].append(dt)
    out = summary(lat, timeouts)
    out["median_ms_by_direction"] = {
        k: ms(statistics.median(v)) if v else None for k, v in by_dir.items()
    }
    return out


def ensure_mode(lab: Lab, pane: str, mode: str) -> None:
    for _ in range(3):
        if title_mode(lab.capture(pane)) == mode:
            return
        probe(lab, pane)
    raise RuntimeError(f"could not get the stream screen into {mode} mode")


def measure(lab: Lab, idle_s: float, after_s: float) -> dict[str, Any]:
    print("   starting the fleet: busy (writer) and calm (stub) on a private socket", flush=True)
    writer_pid, tmux_pid = lab.start_fleet()
    print("   starting the dashboard in a 160x48 pane; /name:busy, s, Tab", flush=True)
    pane_pid, pane = lab.start_dashboard()
    lab.wait_for(pane, "calm")
    lab.wait_for(pane, "busy")
    dash = python_pid(pane_pid)
    time.sleep(0.5)
    lab.keys(pane, "/")
    lab.wait_for(pane, "filter: words")  # the filter box has the focus only once it is shown
    time.sleep(0.3)
    lab.keys(pane, "-l", "name:busy")
    lab.wait_for(pane, "(1 shown)")
    lab.keys(pane, "Enter")
    time.sleep(0.5)
    lab.keys(pane, "s")
    shown = lab.wait_for(pane, "read-only")
    title = next(line for line in shown.splitlines() if "read-only" in line)
    if " busy " not in title + " ":
        raise RuntimeError(f"the stream opened on the wrong agent: {title.strip()}")
    lab.wait_for(pane, "writer ready")  # screen mode shows the writer's pane
    ensure_mode(lab, pane, "log")
    lab.wait_for(pane, "log: piped to the state dir")
    log_file = lab.state / "logs" / "fleet.busy.log"
    sampler = Sampler({"dashboard": dash, "tmux_fleet": tmux_pid, "writer": writer_pid})
    sampler.start()
    time.sleep(1.0)

    out: dict[str, Any] = {"dashboard_pid_is_pane_pid": dash == pane_pid}
    print(f"   idle: Tab every {PROBE_EVERY_S:g} s for {idle_s:g} s (writer idle)", flush=True)
    t_idle0 = time.monotonic()
    out["latency_idle"] = probe_loop(lab, pane, lambda: time.monotonic() - t_idle0 >= idle_s)
    t_idle1 = time.monotonic()
    ensure_mode(lab, pane, "log")

    print(
        f"   burst: the writer writes {lab.rate_mb:g} MB/s for {lab.seconds:g} s; Tab every "
        f"{PROBE_EVERY_S:g} s",
        flush=True,
    )
    s_before = sampler.take()
    lab.start_file.touch()
    hard_stop = time.monotonic() + lab.seconds + 60
    out["latency_burst"] = probe_loop(
        lab, pane, lambda: lab.done_file.exists() or time.monotonic() > hard_stop
    )
    seen_done = time.monotonic()
    if not lab.done_file.exists():
        raise RuntimeError("the writer did not finish")
    w = json.loads(lab.done_file.read_text())
    s_after_burst = sampler.take()

    # did the log view keep up: the marker on the log-mode screen within GOAL_CATCH_UP_S
    ensure_mode(lab, pane, "log")
    catch_up: float | None = None
    deadline = w["t_end"] + 10
    while time.monotonic() < deadline:
        shown = lab.capture(pane)
        if lab.marker in shown and title_mode(shown) == "log":
            catch_up = time.monotonic() - w["t_end"]
            break
        time.sleep(POLL_S)
    log_size = log_file.stat().st_size if log_file.exists() else 0

    print(f"   after: {after_s:g} s more, writer idle", flush=True)
    t_after0 = time.monotonic()
    out["latency_after"] = probe_loop(lab, pane, lambda: time.monotonic() - t_after0 >= after_s)
    time.sleep(1.0)
    s_end = sampler.take()
    sampler.stop.set()
    sampler.join()

    hz = os.sysconf("SC_CLK_TCK")

    def cpu_pct(a: Any, b: Any, name: str) -> float:
        return round(float((b[1][name][1] - a[1][name][1]) / hz / max(b[0] - a[0], 1e-9) * 100), 1)

    idle_samples = sampler.between(t_idle0, t_idle1)
    burst_samples = sampler.between(w["t_start"], seen_done)
    mb = 1 / 1024
    rss_idle = [s[1]["dashboard"][0] * mb for s in idle_samples]
    rss_burst = [s[1]["dashboard"][0] * mb for s in burst_samples]
    half = [s for s in burst_samples if s[0] >= w["t_start"] + (seen_done - w["t_start"]) / 2]
    growth = None
    if len(half) >= 2:
        growth = round(
            (half[-1][1]["dashboard"][0] - half[0][1]["dashboard"][0]) * mb
            / max(half[-1][0] - half[0][0], 1e-9), 2,
        )  # fmt: skip
    out["memory_mb"] = {
        "before": round(statistics.median(rss_idle), 1) if rss_idle else None,
        "peak_burst": round(max(rss_burst), 1) if rss_burst else None,
        "end_of_burst": round(s_after_burst[1]["dashboard"][0] * mb, 1),
        "after": round(s_end[1]["dashboard"][0] * mb, 1),
        "growth_second_half_mb_per_s": growth,
        "timeline": [
            (round(t - w["t_start"], 1), round(r["dashboard"][0] * mb, 1))
            for t, r in sampler.samples
        ],
    }
    idle_a, idle_b = (idle_samples[0], idle_samples[-1]) if idle_samples else (None, None)
    out["cpu_pct_core"] = {
        "dashboard_burst": cpu_pct(s_before, s_after_burst, "dashboard"),
        "dashboard_idle_probing": cpu_pct(idle_a, idle_b, "dashboard") if idle_a else None,
        "tmux_fleet_server_burst": cpu_pct(s_before, s_after_burst, "tmux_fleet"),
        "writer_burst": cpu_pct(s_before, s_after_burst, "writer"),
    }
    secs = w["t_end"] - w["t_start"]
    out["writer"] = {
        "bytes": w["bytes"],
        "lines": w["lines"],
        "seconds": round(secs, 2),
        "mb_per_s": round(w["bytes"] / 1e6 / max(secs, 1e-9), 2),
        "pipe_log_bytes": log_size,
    }
    out["catch_up"] = {
        "marker_seen_s_after_last_write": round(catch_up, 3) if catch_up is not None else None,
        "kept_up": catch_up is not None and catch_up <= GOAL_CATCH_UP_S,
    }
    final = lab.capture(pane).splitlines()
    out["final_title"] = next((line.strip() for line in final if "read-only" in line), None)
    return out


def print_report(doc: dict[str, Any]) -> list[str]:
    m = doc["measure"]
    w = m["writer"]
    print()
    print(
        f"Stream screen, log mode, 160x48; writer {w['mb_per_s']:.2f} MB/s achieved for "
        f"{w['seconds']:.1f} s ({w['bytes'] / 1e6:.0f} MB, {w['lines']:,} lines; load average "
        f"{doc['machine']['loadavg_before'][0]:.1f})"
    )
    head = f"{'Tab -> title shows new mode':<30} {'n':>4} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'timeouts':>9}"
    print(head)
    print("-" * len(head))
    for key, label in (
        ("latency_idle", "baseline: writer idle"),
        ("latency_burst", "writer at full rate"),
        ("latency_after", "after the burst"),
    ):
        s = m[key]
        print(
            f"{label:<30} {s['n']:>4} {s['median_ms'] or float('nan'):>10.1f} "
            f"{s['p95_ms'] or float('nan'):>8.1f} {s['max_ms'] or float('nan'):>8.1f} "
            f"{s['timeouts']:>9}"
        )
    mem = m["memory_mb"]
    print()
    print(
        f"dashboard RSS MB: before {mem['before']}, peak during {mem['peak_burst']}, end of burst "
        f"{mem['end_of_burst']}, after {mem['after']} (second half of the burst: "
        f"{mem['growth_second_half_mb_per_s']} MB/s)"
    )
    c = m["cpu_pct_core"]
    print(
        f"CPU % of a core during the burst: dashboard {c['dashboard_burst']} (idle, probing: "
        f"{c['dashboard_idle_probing']}), tmux fleet server {c['tmux_fleet_server_burst']}, "
        f"writer {c['writer_burst']}"
    )
    cu = m["catch_up"]
    print(
        f"log view kept up: {'yes' if cu['kept_up'] else 'NO'} (marker on screen "
        f"{cu['marker_seen_s_after_last_write']} s after the last write; pipe log "
        f"{w['pipe_log_bytes'] / 1e6:.1f} MB)"
    )
    goals = []
    p95 = m["latency_burst"]["p95_ms"]
    ok = p95 is not None and p95 <= GOAL_P95_MS and m["latency_burst"]["timeouts"] == 0
    goals.append(
        f"latency p95 during the burst under {GOAL_P95_MS:g} ms: {'met' if ok else 'MISSED'} ({p95} ms)"
    )
    goals.append(
        f"log view caught up within {GOAL_CATCH_UP_S:g} s: {'met' if cu['kept_up'] else 'MISSED'}"
    )
    print()
    for g in goals:
        print(f"goal {g}")
    return goals


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rate-mb", type=float, default=10.0, help="writer rate, MB/s")
    p.add_argument("--seconds", type=float, default=10.0, help="writer duration")
    p.add_argument("--idle", type=float, default=10.0, help="baseline window, s")
    p.add_argument("--after", type=float, default=5.0, help="window after the burst, s")
    p.add_argument("--out", default=str(RESULTS), help="JSON results file")
    p.add_argument("--tree", default=None, help="the dashboard runs this checkout (its .venv)")
    args = p.parse_args(argv)
    if args.tree:
        global DASH_TREE
        DASH_TREE = Path(args.tree).resolve()
    fresh_bytecode(DASH_TREE)  # the tree's start-up as installed (see _lab.fresh_bytecode)
    if not shutil.which("tmux"):
        print("tmux is not installed", file=sys.stderr)
        return 2

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    t_start = time.monotonic()
    doc: dict[str, Any] = {
        "schema": "fleet_tui.bench.stream/v1",
        "generated_at": datetime.now(UTC).isoformat(),
        "command": " ".join([".venv/bin/python", "benchmarks/bench_stream.py", *sys.argv[1:]]),
        "rate_mb": args.rate_mb,
        "seconds": args.seconds,
        "dashboard_tree": str(DASH_TREE),
    }
    load_before = list(os.getloadavg())
    lab = Lab(args.rate_mb, args.seconds)
    try:
        doc["measure"] = measure(lab, args.idle, args.after)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        lab.cleanup()
    tmux_version = subprocess.run(
        [shutil.which("tmux") or "tmux", "-V"], capture_output=True, text=True, check=False
    ).stdout.strip()
    from importlib.metadata import version

    import rich
    import textual

    doc["machine"] = {
        "python": platform.python_version(),
        "textual": textual.__version__,
        "rich": getattr(rich, "__version__", None) or version("rich"),
        "tmux": tmux_version,
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": list(os.getloadavg()),
    }
    doc["goals"] = print_report(doc)
    doc["run_s"] = round(time.monotonic() - t_start, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {out} (run took {doc['run_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
