"""Benchmark: what one fleet snapshot costs against the raw tmux listing it is built on.

Run from the repository root:

    .venv/bin/python benchmarks/bench_snapshot.py [--agents 10,100,300] [--repeat 15]

For each fleet size N it starts N cheap agent sessions (`sleep 3600`) spread over three private
tmux servers (a temporary `TMUX_TMPDIR`, so the user's own servers are never touched), writes a
roster and a heartbeat per agent, and then measures, alternating the measurements in the same run:

- baseline: the raw `tmux -S SOCK list-panes -a -F FORMAT` processes for the 3 sockets, one after
  the other (what a shell script does) and in parallel;
- snapshot: `FleetCollector.collect()` in-process, on a warm collector (the dashboard's poll) and
  on a cold one (what `ps` does once), plus a breakdown of the pieces and how many heartbeat
  files each warm snapshot decoded (each round first rewrites one fifth of them);
- start-up: wall time of `python -m fleet_tui ps --json` and of the plain table, against
  `python -c pass`; and a check that `ps` does not import Textual.

It prints a table and writes the same figures to benchmarks/results/snapshot.json. Every tmux
server it starts is killed and the temporary folder removed on exit, Ctrl-C included.
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
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# fleet_tui is imported after TMUX_TMPDIR is set (see main), so every default points at our folder.

SOCKETS = ("mosaic-fleet", "mosaic-factory", "bench")
TENANT = "bench"
HEARTBEAT_TIMEOUT_S = 3600  # the run takes minutes: keep every agent healthy throughout
RESULTS = REPO / "benchmarks" / "results" / "snapshot.json"
TMUX_TIMEOUT_S = 30.0
CHURN = 5  # each round rewrites 1/CHURN of the heartbeats


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def median_ms(samples: list[float]) -> float:
    return ms(statistics.median(samples))


class Bench:
    def __init__(self, repeat: int) -> None:
        self.repeat = repeat
        self.tmp = tempfile.mkdtemp(prefix="ftb", dir="/tmp")
        os.environ["TMUX_TMPDIR"] = self.tmp
        os.environ.pop("TMUX", None)
        os.environ.pop("TMUX_PANE", None)
        self.sockdir = Path(self.tmp) / f"tmux-{os.getuid()}"
        self.sockdir.mkdir(mode=0o700)
        self.tmux = shutil.which("tmux") or "tmux"
        self.started: set[Path] = set()
        self.python = str(REPO / ".venv" / "bin" / "python")
        self.beats: list[Any] = []
        self.spool: Any = None
        if not os.path.exists(self.python):
            self.python = sys.executable

    # -- fleet set-up ---------------------------------------------------------------------
    def sock(self, name: str) -> Path:
        return self.sockdir / name

    def tmux_run(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.tmux, "-S", str(self.sock(name)), *args],
            capture_output=True,
            text=True,
            timeout=TMUX_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def kill_servers(self) -> None:
        from fleet_tui.tmux import Liveness, probe_socket

        for path in sorted(self.started):
            try:
                subprocess.run(
                    [self.tmux, "-S", str(path), "kill-server"],
                    capture_output=True,
                    timeout=10,
                    stdin=subprocess.DEVNULL,
                    check=False,
                )
            except (OSError, subprocess.SubprocessError):
                pass
        # kill-server returns before the server has gone: wait until no socket answers.
        deadline = time.monotonic() + 5
        for path in sorted(self.started):
            while time.monotonic() < deadline and probe_socket(path) == Liveness.LIVE:
                time.sleep(0.02)
        self.started.clear()

    def start_fleet(self, n: int) -> dict[str, list[str]]:
        """N sessions over the 3 sockets, one tmux invocation (one server) per socket."""
        self.kill_servers()
        by_socket: dict[str, list[str]] = {s: [] for s in SOCKETS}
        for i in range(n):
            by_socket[SOCKETS[i % len(SOCKETS)]].append(f"a{i:03d}")
        for sock, names in by_socket.items():
            if not names:
                continue
            argv: list[str] = ["-f", "/dev/null"]
            for k, name in enumerate(names):
                if k:
                    argv.append(";")
                argv += ["new-session", "-d", "-s", name, "-x", "120", "-y", "40"]
                argv += ["sleep", "3600"]
            self.started.add(self.sock(sock))
            res = self.tmux_run(sock, *argv)
            if res.returncode != 0:
                raise SystemExit(f"cannot start sessions on {sock}: {res.stderr.strip()}")
        return by_socket

    def write_fleet_files(self, n: int, by_socket: dict[str, list[str]]) -> tuple[Path, Path]:
        from fleet_tui.model.records import AgentState, Heartbeat
        from fleet_tui.sources.spool import HeartbeatSpool

        host = socket.gethostname()
        roster = Path(self.tmp) / f"roster-{n}.yaml"
        state = Path(self.tmp) / f"state-{n}"
        lines = [
            "version: 1",
            f"tenant_id: {TENANT}",
            f"host: {host}",
            "socket_name: bench",
            f"heartbeat_timeout_s: {HEARTBEAT_TIMEOUT_S}",
            "agents:",
        ]
        pids: dict[str, int] = {}
        for sock in by_socket:
            if not by_socket[sock]:
                continue
            out = self.tmux_run(sock, "list-panes", "-a", "-F", "#{session_name} #{pane_pid}")
            for line in out.stdout.splitlines():
                name, _, pid = line.partition(" ")
                pids[name] = int(pid)
        i = 0
        for sock, names in by_socket.items():
            for name in names:
                role = ("orchestrator", "enhancer")[i] if i < 2 else "coder"
                lines += [
                    f"  - name: {name}",
                    f"    role: {role}",
                    "    runtime: other",
                    f"    socket_name: {sock}",
                ]
                i += 1
        roster.write_text("\n".join(lines) + "\n")
        spool = HeartbeatSpool(state)
        now = datetime.now(UTC)
        self.spool = spool
        self.beats = []
        for names in by_socket.values():
            for seq, name in enumerate(names):
                self.beats.append(
                    Heartbeat(
                        tenant_id=TENANT,
                        host=host,
                        agent=name,
                        seq=seq,
                        ts=now,
                        interval_s=10,
                        state=AgentState.BUSY,
                        detail="benchmark",
                        runtime="other",
                        pid=pids.get(name),
                    )
                )
        for hb in self.beats:
            spool.write_heartbeat(hb)
        return roster, state

    def churn(self, round_no: int) -> None:
        """Rewrite one fifth of the heartbeats, as a live fleet does between two polls
        (agents beat every 10 s, the dashboard polls every 2 s)."""
        now = datetime.now(UTC)
        for i in range(round_no % CHURN, len(self.beats), CHURN):
            hb = self.beats[i]
            self.beats[i] = hb.model_copy(update={"ts": now, "seq": hb.seq + 1})
            self.spool.write_heartbeat(self.beats[i])

    # -- measurements ---------------------------------------------------------------------
    def baseline_argv(self) -> list[list[str]]:
        from fleet_tui.sources.tmux import PANE_FORMAT

        return [
            [self.tmux, "-S", str(self.sock(s)), "list-panes", "-a", "-F", PANE_FORMAT]
            for s in SOCKETS
        ]

    @staticmethod
    def _list(argv: list[str]) -> str:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=TMUX_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=True,
        ).stdout

    def measure_size(self, n: int) -> dict[str, Any]:
        from fleet_tui.config.fleet import FleetConfig
        from fleet_tui.config.paths import Located
        from fleet_tui.service.collector import FleetCollector

        print(f"-- N={n}: starting {n} sessions on {len(SOCKETS)} sockets", flush=True)
        t0 = time.perf_counter()
        by_socket = self.start_fleet(n)
        roster, state = self.write_fleet_files(n, by_socket)
        setup_s = time.perf_counter() - t0
        config = FleetConfig(Located(roster, True), state)
        argvs = self.baseline_argv()

        # Sanity: the snapshot sees every agent, healthy.
        snap = FleetCollector(config).collect()
        healthy = sum(1 for a in snap.agents if a.health.value == "healthy")
        if healthy != n:
            print(f"   warning: {healthy}/{n} agents healthy; warnings: {snap.warnings[:3]}")
        listed = sum(self._list(a).count("\n") for a in argvs)
        if listed != n:
            print(f"   warning: the raw listing shows {listed} panes, expected {n}")

        warm = FleetCollector(config)
        warm.collect()
        env = dict(os.environ)
        env["MOSAIC_FLEET_ROSTER"] = str(roster)
        env["MOSAIC_FLEET_STATE_DIR"] = str(state)
        env["COLUMNS"] = "160"
        ps_json = [self.python, "-m", "fleet_tui", "ps", "--json"]
        ps_table = [self.python, "-m", "fleet_tui", "ps"]
        py_pass = [self.python, "-c", "pass"]

        def run_cmd(argv: list[str]) -> Callable[[], object]:
            def go() -> object:
                return subprocess.run(
                    argv,
                    env=env,
                    cwd=REPO,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    stdin=subprocess.DEVNULL,
                    timeout=60,
                    check=True,
                )

            return go

        def seq() -> object:
            return [self._list(a) for a in argvs]

        def par() -> object:
            with ThreadPoolExecutor(max_workers=len(argvs)) as pool:
                return list(pool.map(self._list, argvs))

        # The work a warm snapshot does depends on how many heartbeats it must decode (those
        # changed since the last one), so that count is reported with its time.
        decoded: list[int] = []

        def warm_collect() -> object:
            before = warm.heartbeats_decoded
            snap = warm.collect()
            decoded.append(warm.heartbeats_decoded - before)
            return snap

        measures: dict[str, Callable[[], object]] = {
            "baseline_seq": seq,
            "baseline_par": par,
            "snapshot_warm": warm_collect,
            "snapshot_cold": lambda: FleetCollector(config).collect(),
            "ps_json": run_cmd(ps_json),
            "ps_table": run_cmd(ps_table),
            "python_pass": run_cmd(py_pass),
        }
        samples: dict[str, list[float]] = {k: [] for k in measures}
        parts: dict[str, list[float]] = {}
        names = list(measures)
        for r in range(self.repeat):
            # Rotate the order each round so no measurement always runs first (or last).
            k = r % len(names)
            self.churn(r)
            for name in names[k:] + names[:k]:
                t = time.perf_counter()
                measures[name]()
                samples[name].append(time.perf_counter() - t)
            for piece, secs in breakdown(warm).items():
                parts.setdefault(piece, []).append(secs)

        med = {k: median_ms(v) for k, v in samples.items()}
        row: dict[str, Any] = {
            "agents": n,
            "setup_s": round(setup_s, 2),
            "median_ms": med,
            "min_ms": {k: ms(min(v)) for k, v in samples.items()},
            "breakdown_ms": {k: median_ms(v) for k, v in parts.items()},
            "warm_decoded_heartbeats": decoded,
            "ratio_warm_vs_seq": round(med["snapshot_warm"] / med["baseline_seq"], 2),
            "ratio_cold_vs_seq": round(med["snapshot_cold"] / med["baseline_seq"], 2),
            "ratio_warm_vs_par": round(med["snapshot_warm"] / med["baseline_par"], 2),
            "ps_json_beyond_python_ms": round(med["ps_json"] - med["python_pass"], 2),
            "ps_beyond_python_vs_seq": round(
                (med["ps_json"] - med["python_pass"]) / med["baseline_seq"], 2
            ),
        }
        return row

    def check_no_textual(self) -> dict[str, Any]:
        """Run `ps --json` in a fresh interpreter and report which heavy modules it imported."""
        snippet = (
            "import contextlib, io, json, sys\n"
            "from fleet_tui.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    rc = main(['ps', '--json'])\n"
            "heavy = ['textual', 'rich', 'httpx', 'watchfiles', 'pydantic', 'yaml']\n"
            "print(json.dumps({'rc': rc, 'loaded': [m for m in heavy if m in sys.modules]}))\n"
            "assert 'textual' not in sys.modules, 'ps imported textual'\n"
        )
        roster, state = Path(self.tmp) / "check-roster.yaml", Path(self.tmp) / "check-state"
        env = dict(os.environ)
        env["MOSAIC_FLEET_ROSTER"] = str(roster)
        env["MOSAIC_FLEET_STATE_DIR"] = str(state)
        roster.write_text(f"version: 1\ntenant_id: {TENANT}\nagents: []\n")
        res = subprocess.run(
            [self.python, "-c", snippet],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        info: dict[str, Any] = {"ok": res.returncode == 0}
        if res.stdout.strip():
            info.update(json.loads(res.stdout.strip().splitlines()[-1]))
        if res.returncode != 0:
            info["error"] = res.stderr.strip().splitlines()[-1:] or ["?"]
        return info

    def cleanup(self) -> None:
        self.kill_servers()
        shutil.rmtree(self.tmp, ignore_errors=True)


def breakdown(collector: Any) -> dict[str, float]:
    """Time the pieces of `FleetCollector.collect()` one by one (they overlap in collect: the
    tmux scan runs in a thread while the spool is read)."""
    from fleet_tui.config.fleet import load_configured_roster
    from fleet_tui.config.identity import local_identity
    from fleet_tui.core.join import FleetInputs, build_snapshot
    from fleet_tui.sources.systemd import scan_systemd
    from fleet_tui.sources.tmux import scan_all

    out: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        value = fn()
        out[name] = time.perf_counter() - t
        return value

    timed("roster_parse", lambda: load_configured_roster(collector.config))
    load = getattr(collector, "_load_roster", None)  # the collector's cached load, if any
    loaded = timed("roster", load or (lambda: load_configured_roster(collector.config)))
    roster = loaded.roster if loaded else None
    scans = timed("tmux_scan", lambda: scan_all(collector.runner))
    beats, pings = timed("spool", collector._read_spool)
    tenant, host = local_identity(roster)
    pane_pids = [r.pane_pid for s in scans for r in s.sessions().values() if r.pane_pid]
    processes = timed("processes", lambda: collector.sampler.sample(pane_pids))
    # the collector's own check: the pids the sample found running are not looked up again
    alive = getattr(collector.sampler, "alive", frozenset())
    dead = timed("dead_pids", lambda: collector._dead_pids(beats, host, alive))
    units = sorted({a.unit for a in roster.agents if a.unit}) if roster else []
    systemd = timed("systemd", lambda: scan_systemd(units))
    inputs = FleetInputs(
        now=collector.clock(),
        host=host,
        tenant_id=tenant,
        sockets=scans,
        roster=roster,
        roster_path=str(loaded.path) if loaded else None,
        roster_warnings=loaded.warnings if loaded else [],
        heartbeat_timeout_s=collector.config.heartbeat_timeout_s,
        heartbeats=beats,
        pings=pings,
        systemd=systemd,
        processes=processes,
        dead_pids=dead,
    )
    timed("join", lambda: build_snapshot(inputs))
    return out


def print_report(rows: list[dict[str, Any]], startup: dict[str, Any], repeat: int) -> None:
    print()
    print(f"Medians over {repeat} alternating repeats, milliseconds (wall clock).")
    head = (
        f"{'N':>4} {'list seq':>9} {'list par':>9} {'snap warm':>10} {'snap cold':>10} "
        f"{'warm/seq':>9} {'cold/seq':>9} {'ps --json':>10} {'ps table':>9} {'py pass':>8} "
        f"{'ps-py':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        m = r["median_ms"]
        print(
            f"{r['agents']:>4} {m['baseline_seq']:>9.1f} {m['baseline_par']:>9.1f} "
            f"{m['snapshot_warm']:>10.1f} {m['snapshot_cold']:>10.1f} "
            f"{r['ratio_warm_vs_seq']:>9.2f} {r['ratio_cold_vs_seq']:>9.2f} "
            f"{m['ps_json']:>10.1f} {m['ps_table']:>9.1f} {m['python_pass']:>8.1f} "
            f"{r['ps_json_beyond_python_ms']:>7.1f}"
        )
    print()
    pieces = list(rows[0]["breakdown_ms"]) if rows else []
    print("Breakdown of one warm snapshot (pieces timed one by one), milliseconds:")
    print(f"{'N':>4} " + " ".join(f"{p:>10}" for p in pieces))
    for r in rows:
        print(f"{r['agents']:>4} " + " ".join(f"{r['breakdown_ms'][p]:>10.2f}" for p in pieces))
    print()
    print("Heartbeat files decoded by each warm snapshot (1/5 rewritten before each round):")
    for r in rows:
        print(f"{r['agents']:>4} {r['warm_decoded_heartbeats']}")
    print()
    loaded = ", ".join(startup.get("loaded", [])) or "-"
    verdict = "OK" if startup.get("ok") else f"FAILED {startup.get('error')}"
    print(f"ps imports textual? {'no' if startup.get('ok') else 'YES/unknown'} ({verdict}); ")
    print(f"  heavy modules loaded by ps: {loaded}")
    goal_ratio = all(r["ratio_warm_vs_seq"] <= 2 for r in rows)
    goal_start = all(r["median_ms"]["ps_json"] < 500 for r in rows)
    print(
        f"goal snapshot <= 2x raw listing (warm, vs sequential): {'met' if goal_ratio else 'MISSED'}"
    )
    print(f"goal ps start-up < 500 ms: {'met' if goal_start else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--agents", default="10,100,300", help="fleet sizes, comma-separated")
    p.add_argument("--repeat", type=int, default=15, help="repeats per measurement (median)")
    p.add_argument("--out", default=str(RESULTS), help="JSON results file")
    p.add_argument("--sockets", type=int, default=3, help="tmux servers the fleet is spread over")
    args = p.parse_args(argv)
    global SOCKETS
    SOCKETS = (*SOCKETS, *(f"bench{k}" for k in range(3, args.sockets)))[: max(args.sockets, 1)]
    sizes = [int(x) for x in args.agents.split(",") if x.strip()]
    if not shutil.which("tmux"):
        print("tmux is not installed", file=sys.stderr)
        return 2

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    bench = Bench(args.repeat)
    rows: list[dict[str, Any]] = []
    try:
        startup = bench.check_no_textual()
        for n in sizes:
            rows.append(bench.measure_size(n))
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        bench.cleanup()

    print_report(rows, startup, args.repeat)
    tmux_version = subprocess.run(
        [shutil.which("tmux") or "tmux", "-V"], capture_output=True, text=True, check=False
    ).stdout.strip()
    doc = {
        "schema": "fleet_tui.bench.snapshot/v1",
        "generated_at": datetime.now(UTC).isoformat(),
        "command": " ".join([".venv/bin/python", "benchmarks/bench_snapshot.py", *sys.argv[1:]]),
        "repeat": args.repeat,
        "sockets": list(SOCKETS),
        "machine": {
            "python": platform.python_version(),
            "tmux": tmux_version,
            "cpus": os.cpu_count(),
            "loadavg_after": list(os.getloadavg()),
        },
        "ps_imports": startup,
        "sizes": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
