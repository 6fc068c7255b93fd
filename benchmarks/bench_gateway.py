"""Load run of the reference gateway: many hosts publishing, a few dashboards polling.

    .venv/bin/python benchmarks/bench_gateway.py                 # 50 hosts x 20 agents, 60 s
    .venv/bin/python benchmarks/bench_gateway.py --duration 20   # quicker

Starts a private PostgreSQL (initdb in a temp dir, Unix socket only; as root it runs as the
`postgres` user; default settings, fsync on unless `--fast-pg`), migrates it, creates a publish and a read token, and starts a real
`fleet-tui gateway serve` on 127.0.0.1 (access log on, as by default). Then, from separate
processes (httpx async clients): publishers, one task per host, each every `--interval` s
POST /snapshot (a realistic ps v1 document of `--agents` agents) and POST /heartbeats (that
host's heartbeats in one batch; an agent changes state with probability `--change-prob` per
beat); and `--dashboards` pollers, each GET /snapshot every `--poll` s. Hosts and pollers are
spread evenly over the first period. Bounded: every loop stops at `--duration`.

Baselines from the same run: a raw psycopg upsert round trip on the same socket (before the
load) and GET /healthz (auth-free, one `SELECT 1`) sampled once a second during the load.
Database growth: `pg_total_relation_size` of the register's tables after the first full period
and at the end, extrapolated to bytes per day. Results: benchmarks/results/gateway.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

TENANT = "bench"
API = "/api/fleet/v1"


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- what a host publishes --------------------------------------------------------------------


class Host:
    """One host's fleet: a ps v1 document and heartbeats that move on every beat."""

    STATES = ("busy", "idle", "waiting_input", "busy", "idle")

    def __init__(self, index: int, agents: int, change_prob: float, rng: random.Random) -> None:
        self.name = f"w-host{index:03d}"
        self.rng = rng
        self.change_prob = change_prob
        self.agents = [f"coder{index:03d}-{i:02d}" for i in range(agents)]
        self.state = {a: rng.choice(self.STATES) for a in self.agents}
        self.seq = dict.fromkeys(self.agents, 0)

    def beat(self, now: float) -> None:
        for a in self.agents:
            self.seq[a] += 1
            if self.rng.random() < self.change_prob:
                self.state[a] = self.rng.choice([s for s in self.STATES if s != self.state[a]])

    def heartbeats(self, now: float) -> list[dict[str, Any]]:
        return [
            {
                "v": 1,
                "tenant_id": TENANT,
                "host": self.name,
                "agent": a,
                "seq": self.seq[a],
                "ts": iso(now),
                "interval_s": 10,
                "state": self.state[a],
                "detail": "running tests" if self.state[a] == "busy" else None,
                "runtime": "codex",
                "model": "gpt-5.5",
                "pid": 10000 + i,
                "echo": None,
                "acks": [f"sha256:{(i * 7919 + self.seq[a]):064x}"],
                "usage": {"input_tokens": 1000 * self.seq[a], "output_tokens": 200 * self.seq[a]},
            }
            for i, a in enumerate(self.agents)
        ]

    def ps(self, now: float) -> dict[str, Any]:
        agents = []
        for i, a in enumerate(self.agents):
            agents.append(
                {
                    "tenant_id": TENANT,
                    "host": self.name,
                    "name": a,
                    "role": "orchestrator" if i == 0 else ("enhancer" if i == 1 else "coder"),
                    "alias": None,
                    "runtime": "codex",
                    "model": "gpt-5.5",
                    "lifecycle": "always-on",
                    "in_roster": True,
                    "is_agent": True,
                    "socket": "mosaic-fleet",
                    "session": a,
                    "tmux": {
                        "session_id": f"${i}",
                        "pane_id": f"%{i * 2}",
                        "pane_pid": 9000 + i,
                        "pane_dead": False,
                        "current_command": "node",
                        "attached_clients": 0,
                        "activity_at": iso(now - 3),
                        "idle_s": 3.2,
                        "pane_title": f"{a}: running tests",
                        "pane_pipe": False,
                        "pane_in_mode": False,
                        "window_size": "200x50",
                        "cwd": f"/home/bench/work/{a}",
                    },
                    "systemd": {
                        "unit": f"mosaic-agent@{a}.service",
                        "active_state": "active",
                        "sub_state": "running",
                        "enabled": True,
                        "linger": True,
                    },
                    "process": {
                        "pid": 10000 + i,
                        "runtime_detected": "codex",
                        "cpu_percent": 1.5,
                        "rss_bytes": 180_000_000,
                        "processes": 3,
                    },
                    "heartbeat": {
                        "ts": iso(now),
                        "age_s": 0.4,
                        "seq": self.seq[a],
                        "state": self.state[a],
                        "detail": "running tests",
                        "interval_s": 10,
                        "pid": 10000 + i,
                        "echo": None,
                    },
                    "health": "healthy",
                    "health_reason": "heartbeat 0 s ago, timeout 30 s",
                    "drift": [],
                    "state_source": "heartbeat",
                    "inferred": None,
                    "tokens_today": 1_200_000 + i,
                    "budget": {
                        "account": "openai-api",
                        "window": None,
                        "used_percent": None,
                        "pace": None,
                        "status": "on_pace",
                        "rung": "codex",
                    },
                }
            )
        return {
            "schema": "mosaic.fleet.ps/v1",
            "generated_at": iso(now),
            "host": self.name,
            "tenant_id": TENANT,
            "heartbeat_timeout_s": 30,
            "roster_path": None,
            "roster_loaded": True,
            "systemd": "available",
            "sockets": [
                {
                    "name": "mosaic-fleet",
                    "path": "/tmp/tmux-1000/mosaic-fleet",
                    "state": "live",
                    "sessions": len(self.agents),
                    "reason": None,
                    "listed_in_ms": 4.2,
                }
            ],
            "agents": agents,
            "warnings": [],
            "sources": [{"name": "tmux", "observed_at": iso(now), "ok": True, "detail": None}],
        }


# -- worker processes ---------------------------------------------------------------------------


async def _timed(
    client: httpx.AsyncClient, out: list[tuple[str, float, int, float]], route: str, **kw: Any
) -> int:
    t0 = time.perf_counter()
    try:
        r = await client.request(**kw)
        await r.aread()
        status = r.status_code
    except httpx.HTTPError:
        status = 0
    out.append((route, (time.perf_counter() - t0) * 1000, status, time.time()))
    return status


async def run_publishers(cfg: dict[str, Any]) -> list[tuple[str, float, int, float]]:
    out: list[tuple[str, float, int, float]] = []
    start, end, interval = cfg["start"], cfg["end"], cfg["interval"]
    headers = {"Authorization": f"Bearer {cfg['token']}", "Content-Type": "application/json"}

    async def host_loop(index: int) -> None:
        host = Host(index, cfg["agents"], cfg["change_prob"], random.Random(index))
        # one connection per host, as separate machines would have
        async with httpx.AsyncClient(base_url=cfg["url"], headers=headers, timeout=10) as c:
            tick = start + interval * index / cfg["hosts_total"]
            while tick < end:
                await asyncio.sleep(max(0.0, tick - time.time()))
                now = time.time()
                host.beat(now)
                await _timed(
                    c,
                    out,
                    "POST /snapshot",
                    method="POST",
                    url=f"{API}/snapshot",
                    content=json.dumps(host.ps(now)),
                )
                await _timed(
                    c,
                    out,
                    "POST /heartbeats",
                    method="POST",
                    url=f"{API}/heartbeats",
                    content=json.dumps(host.heartbeats(now)),
                )
                tick += interval

    await asyncio.gather(*(host_loop(i) for i in cfg["hosts"]))
    return out


async def run_dashboards(cfg: dict[str, Any]) -> list[tuple[str, float, int, float]]:
    out: list[tuple[str, float, int, float]] = []
    start, end, poll = cfg["start"], cfg["end"], cfg["poll"]
    headers = {"Authorization": f"Bearer {cfg['token']}"}

    async def poller(index: int) -> None:
        async with httpx.AsyncClient(base_url=cfg["url"], headers=headers, timeout=10) as c:
            tick = start + poll * index / cfg["dashboards"]
            while tick < end:
                await asyncio.sleep(max(0.0, tick - time.time()))
                await _timed(
                    c,
                    out,
                    "GET /snapshot",
                    method="GET",
                    url=f"{API}/snapshot",
                    params={"tenant": TENANT},
                )
                tick += poll

    await asyncio.gather(*(poller(i) for i in range(cfg["dashboards"])))
    return out


def worker_main(kind: str, cfg_json: str) -> int:
    cfg = json.loads(cfg_json)
    run = run_publishers if kind == "publish" else run_dashboards
    samples = asyncio.run(run(cfg))
    json.dump(samples, sys.stdout)
    return 0


# -- the run --------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def pg_cpu_s(data: Path) -> float:
    """CPU seconds of the postmaster and its children (backends, autovacuum, writers)."""
    try:
        master = int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            rest = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == master or int(rest[1]) == master:
            total += (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    return total


def sizes(dsn: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'fleet' AND c.relkind = 'r'"
        ).fetchall()
    return {str(name): int(size) for name, size in rows}


def change_count(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM fleet.heartbeat_changes").fetchone()
    return int(row[0]) if row else 0


def raw_baseline(dsn: str, n: int = 300) -> list[float]:
    """Round trip of one upsert of a heartbeat-sized row, autocommit, same socket."""
    import psycopg

    out = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.bench_scratch (k int PRIMARY KEY, v jsonb)")
        row = json.dumps({"state": "busy", "detail": "running tests", "seq": 1, "pad": "x" * 300})
        for i in range(n):
            t0 = time.perf_counter()
            conn.execute(
                "INSERT INTO public.bench_scratch VALUES (%s, %s::jsonb)"
                " ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
                [i % 50, row],
            )
            out.append((time.perf_counter() - t0) * 1000)
        conn.execute("DROP TABLE public.bench_scratch")
    return out


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        return worker_main(sys.argv[2], sys.argv[3])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--interval", type=float, default=10.0, help="publish period per host (s)")
    ap.add_argument("--dashboards", type=int, default=5)
    ap.add_argument("--poll", type=float, default=2.0, help="dashboard poll period (s)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load (max 600)")
    ap.add_argument("--publisher-procs", type=int, default=2)
    ap.add_argument(
        "--change-prob",
        type=float,
        default=1 / 30,
        help="chance an agent changes state per beat (default: every ~5 min)",
    )
    ap.add_argument(
        "--fast-pg", action="store_true", help="fsync and synchronous_commit off (as the tests)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/gateway.json")
    args = ap.parse_args()
    args.duration = min(args.duration, 600.0)

    from fleet_tui.server.db import create_token, migrate
    from fleet_tui.testing.pgcluster import PrivateCluster, find_bindir

    bindir = find_bindir()
    if bindir is None:
        sys.stderr.write("no PostgreSQL binaries (apt install postgresql)\n")
        return 2
    cluster = PrivateCluster(bindir, prefix="fleet-bench-pg-", durable=not args.fast_pg)
    procs: list[subprocess.Popen[bytes]] = []
    server: subprocess.Popen[bytes] | None = None
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-gw-"))
    try:
        cluster.start()
        import psycopg

        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE fleet_bench")
        dsn = cluster.dsn("fleet_bench")
        migrate(dsn)
        pub_token = create_token(dsn, [TENANT], ["publish"])[1]
        read_token = create_token(dsn, [TENANT], ["read"])[1]
        raw = raw_baseline(dsn)

        log = tmp / "server.log"
        with log.open("wb") as f:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fleet_tui",
                    "gateway",
                    "serve",
                    "--dsn",
                    dsn,
                    "--listen",
                    "127.0.0.1:0",
                ],
                stdout=f,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + 30
        url = None
        while time.monotonic() < deadline and url is None:
            text = log.read_text(errors="replace")
            if "startup complete" in text:
                line = next(x for x in text.splitlines() if "listening on" in x)
                url = line.split("listening on ")[1].split()[0]
            elif server.poll() is not None:
                raise SystemExit(f"gateway exited: {text[-500:]}")
            time.sleep(0.05)
        if url is None:
            raise SystemExit("gateway did not start")

        with httpx.Client(base_url=url, timeout=10) as c:
            idle_health = []
            for _ in range(100):
                t0 = time.perf_counter()
                c.get("/healthz").raise_for_status()
                idle_health.append((time.perf_counter() - t0) * 1000)

        start = time.time() + 2.0
        end = start + args.duration
        hosts = list(range(args.hosts))
        common = {
            "url": url,
            "start": start,
            "end": end,
            "interval": args.interval,
            "agents": args.agents,
            "change_prob": args.change_prob,
            "hosts_total": args.hosts,
        }
        for k in range(args.publisher_procs):
            cfg = {**common, "token": pub_token, "hosts": hosts[k :: args.publisher_procs]}
            procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--worker", "publish", json.dumps(cfg)],
                    stdout=subprocess.PIPE,
                )
            )
        cfg = {**common, "token": read_token, "dashboards": args.dashboards, "poll": args.poll}
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "--worker", "dashboard", json.dumps(cfg)],
                stdout=subprocess.PIPE,
            )
        )

        cpu0, pg0, load0 = cpu_s(server.pid), pg_cpu_s(cluster.data), os.getloadavg()
        busy_health: list[float] = []
        series: list[tuple[float, dict[str, int]]] = []  # (s since start, bytes per table)
        hb_tables = ("heartbeats", "heartbeat_changes")
        before: dict[str, int] | None = None
        changes_before = 0
        t_before = t_after = 0.0
        with httpx.Client(base_url=url, timeout=10) as c:
            while time.time() < end:
                t0 = time.perf_counter()
                with contextlib.suppress(httpx.HTTPError):
                    c.get("/healthz")
                busy_health.append((time.perf_counter() - t0) * 1000)
                if before is None and time.time() >= start + args.interval + 1:
                    before, t_before = sizes(dsn), time.time()
                    changes_before = change_count(dsn)
                if before is not None:
                    series.append((round(time.time() - start, 1), sizes(dsn)))
                time.sleep(1.0)
        samples: list[tuple[str, float, int, float]] = []
        for p in procs:
            stdout, _ = p.communicate(timeout=60)
            samples += [tuple(s) for s in json.loads(stdout)]  # type: ignore[misc]
        cpu1, pg1 = cpu_s(server.pid), pg_cpu_s(cluster.data)
        after, t_after = sizes(dsn), time.time()
        before = before or after

        with psycopg.connect(dsn) as conn:
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM fleet.heartbeats),"
                " (SELECT count(*) FROM fleet.heartbeat_changes),"
                " (SELECT avg(pg_column_size(h.*)) FROM fleet.heartbeats h),"
                " (SELECT pg_relation_size('fleet.heartbeats_pkey'))"
            ).fetchone()
        assert counts is not None
        hb_rows, change_rows, avg_row, pk_size = counts

        routes: dict[str, Any] = {}
        span = args.duration
        for route in ("POST /snapshot", "POST /heartbeats", "GET /snapshot"):
            lat = [s[1] for s in samples if s[0] == route]
            errors = sum(1 for s in samples if s[0] == route and s[2] != 200)
            routes[route] = {
                "requests": len(lat),
                "errors": errors,
                "per_s": len(lat) / span,
                "p50_ms": pct(lat, 50),
                "p99_ms": pct(lat, 99),
                "max_ms": max(lat, default=0),
            }
        all_lat = [s[1] for s in samples]
        beats = sum(1 for s in samples if s[0] == "POST /heartbeats" and s[2] == 200) * args.agents
        per_day = 86400 / max(1e-9, t_after - t_before)
        growth = {
            name: (after.get(name, 0) - before.get(name, 0)) * per_day for name in sorted(after)
        }
        # bounded tables (one row per agent / host): growth over the last half of the run
        half = [x for x in series if x[0] >= series[-1][0] / 2] if series else []
        late_growth = (
            {
                name: (half[-1][1][name] - half[0][1][name])
                * 86400
                / max(1e-9, half[-1][0] - half[0][0])
                for name in ("heartbeats", "host_snapshots")
            }
            if len(half) > 1
            else {}
        )
        change_rows_per_day = (change_rows - changes_before) * per_day
        change_row_bytes = after.get("heartbeat_changes", 0) / max(1, change_rows)
        heartbeats_per_day = args.hosts * args.agents * 86400 / args.interval
        full_history_row = float(avg_row or 0) + 4 + pk_size / max(1, hb_rows) + 24
        result = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "loadavg_start": load0,
                "loadavg_end": os.getloadavg(),
            },
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "routes": routes,
            "all": {
                "requests": len(all_lat),
                "per_s": len(all_lat) / span,
                "p50_ms": pct(all_lat, 50),
                "p99_ms": pct(all_lat, 99),
                "errors": sum(1 for s in samples if s[2] != 200),
            },
            "heartbeats_stored_per_s": beats / span,
            "baseline": {
                "raw_upsert_p50_ms": pct(raw, 50),
                "raw_upsert_p99_ms": pct(raw, 99),
                "healthz_idle_p50_ms": pct(idle_health, 50),
                "healthz_idle_p99_ms": pct(idle_health, 99),
                "healthz_loaded_p50_ms": pct(busy_health, 50),
                "healthz_loaded_max_ms": max(busy_health, default=0),
            },
            "server_cpu_percent": 100 * (cpu1 - cpu0) / span,
            "postgres_cpu_percent": 100 * (pg1 - pg0) / span,
            "db": {
                "measured_over_s": t_after - t_before,
                "sizes_before": before,
                "sizes_after": after,
                "growth_bytes_per_day": growth,
                "heartbeat_tables_bytes_per_day": sum(growth.get(t, 0) for t in hb_tables),
                "bytes_series": series,
                "latest_tables_growth_last_half_bytes_per_day": late_growth,
                "change_rows_per_day": change_rows_per_day,
                "change_row_bytes": change_row_bytes,
                "changes_bytes_per_day": change_rows_per_day * change_row_bytes,
                "changes_bytes_at_retention": change_rows_per_day * change_row_bytes * 14,
                "heartbeat_rows_latest": hb_rows,
                "heartbeat_change_rows": change_rows,
                "heartbeats_per_day": heartbeats_per_day,
                "full_history_bytes_per_day_estimate": full_history_row * heartbeats_per_day,
            },
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        report(result)
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        cluster.stop()
        with contextlib.suppress(OSError):
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()


def report(r: dict[str, Any]) -> None:
    c = r["config"]
    print(
        f"gateway load: {c['hosts']} hosts x {c['agents']} agents every {c['interval']:g} s, "
        f"{c['dashboards']} dashboards every {c['poll']:g} s, {c['duration']:g} s"
    )
    print(
        f"{'route':<18}{'requests':>9}{'req/s':>8}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'p50/healthz':>13}"
    )
    h = r["baseline"]["healthz_idle_p50_ms"]
    for route, s in [*r["routes"].items(), ("all", {**r["all"], "max_ms": float("nan")})]:
        print(
            f"{route:<18}{s['requests']:>9}{s['per_s']:>8.1f}{s['errors']:>8}"
            f"{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}{s['max_ms']:>9.1f}"
            f"{s['p50_ms'] / h:>13.1f}"
        )
    worst = max(s["p99_ms"] for s in r["routes"].values())
    errors = r["all"]["errors"]
    verdict = "met" if worst < 100 and errors == 0 else "NOT met"
    print(f"goal p99 < 100 ms on every route, no errors: {verdict} (worst p99 {worst:.1f} ms)")
    b = r["baseline"]
    print(
        f"baseline: raw psycopg upsert p50 {b['raw_upsert_p50_ms']:.3f} ms "
        f"(p99 {b['raw_upsert_p99_ms']:.3f}); GET /healthz idle p50 "
        f"{b['healthz_idle_p50_ms']:.2f} ms (p99 {b['healthz_idle_p99_ms']:.2f}), under load "
        f"p50 {b['healthz_loaded_p50_ms']:.2f} ms"
    )
    print(
        f"heartbeats stored: {r['heartbeats_stored_per_s']:.1f}/s; CPU: gateway "
        f"{r['server_cpu_percent']:.0f} %, PostgreSQL {r['postgres_cpu_percent']:.0f} % of one "
        f"core; load average {r['machine']['loadavg_start'][0]:.1f} at the start, "
        f"{r['machine']['loadavg_end'][0]:.1f} at the end ({r['machine']['cpus']} CPUs)"
    )
    d = r["db"]
    mib = 1024 * 1024
    sa = d["sizes_after"]
    late = d["latest_tables_growth_last_half_bytes_per_day"]
    print(
        f"heartbeats, latest per agent: {d['heartbeat_rows_latest']} rows, "
        f"{sa['heartbeats'] / mib:.1f} MiB at the end, growth over the last half "
        f"{late.get('heartbeats', float('nan')) / mib:.1f} MiB/day (bounded: replaced in place)"
    )
    print(
        f"heartbeat changes (history): {d['change_rows_per_day']:,.0f} rows/day x "
        f"{d['change_row_bytes']:.0f} B = {d['changes_bytes_per_day'] / mib:.1f} MiB/day; "
        f"{d['changes_bytes_at_retention'] / mib:.0f} MiB at the 14-day retention"
    )
    print(
        f"host snapshots: {sa['host_snapshots'] / mib:.1f} MiB at the end, growth over the last "
        f"half {late.get('host_snapshots', float('nan')) / mib:.1f} MiB/day (TOAST churn until "
        "autovacuum)"
    )
    print(
        f"naive extrapolation over {d['measured_over_s']:.0f} s: "
        + ", ".join(f"{k} {v / mib:.1f}" for k, v in d["growth_bytes_per_day"].items() if v)
        + " MiB/day"
    )
    print(
        f"for comparison, keeping every heartbeat ({d['heartbeats_per_day']:,.0f}/day) would "
        f"take about {d['full_history_bytes_per_day_estimate'] / 1024**3:.2f} GiB/day"
    )


if __name__ == "__main__":
    raise SystemExit(main())
