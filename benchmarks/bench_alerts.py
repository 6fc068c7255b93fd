"""Benchmark: alerts (issue 15). What evaluating the rules costs per snapshot, and how long from a
heartbeat saying `waiting_input` to the webhook POST of `alerts run` and to the dashboard's bell.

    .venv/bin/python benchmarks/bench_alerts.py                     # all three parts, N = 10, 300
    .venv/bin/python benchmarks/bench_alerts.py --quick             # fewer rounds, shorter windows
    .venv/bin/python benchmarks/bench_alerts.py --only eval         # or webhook, bell (comma-separated)
    .venv/bin/python benchmarks/bench_alerts.py --agents 300 --rounds 30

1. eval (in-process, no tmux): `core.alerts.evaluate` over the fixture fleet
   (`fleet_tui.testing.fleets.big_snapshot(N)`, every agent given a budget brief) with the rules
   of the README's example (DESIGN's plus a budget rule) and a drift rule, in steady state (the
   episodes are open, nothing new fires); the same with 5 silences; `AlertEngine.step` (the same plus the `stat` of
   silences.json in a real state dir). Baseline in the same run: the join of the same inputs
   (`core.join.build_snapshot`), which every poll pays anyway. Goal: under 1 ms at 300 agents.
2. webhook (real tmux on a private socket, real HTTP): N sessions (`sleep 3600`) + roster +
   heartbeats, `fleet-tui alerts run --every 2` as a subprocess posting to a local HTTP
   receiver; each round writes ONE agent's heartbeat with `waiting_input` and times until the
   POST saying `firing` arrives, then writes `busy` and times the `resolved` POST. Then the poll
   load: CPU of the `alerts run` process per minute while nothing changes, against the CPU of one
   `fleet-tui ps --json` (baseline).
3. bell (the same fleet): the dashboard as `fleet-tui` starts it (`ui.launch.run_dashboard`),
   headless under Textual's `run_test` in this process, its `bell` hooked to record the time;
   the same rounds, timed from the heartbeat write to the bell.

Rounds start after a random wait (seeded) within one poll interval, so the write falls anywhere
in the poll cycle; each round takes the next agent (a new episode) and the rule's `gap_s` is 0.
Every tmux server it starts is killed, every process it starts waited for and the temporary
folder removed on exit, Ctrl-C included. Results: benchmarks/results/alerts.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import queue
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from _lab import REPO, TmuxLab, cpu_ticks

RESULTS = REPO / "benchmarks" / "results" / "alerts.json"
GOAL_EVAL_MS = 1.0
GOAL_LATENCY_S = 2.0
EVERY_S = 2.0  # `alerts run --every` and the dashboard's poll interval
TENANT = "bench"
SIZE = (160, 48)
FAR = "2099-01-01T00:00:00Z"

# The README's example (needs-you, agent-lost, budget; DESIGN's plus a budget rule) and a drift
# rule; every rule sends to one webhook here (the channels do not change the evaluation).
RULES_YAML = """\
version: 1
rules:
  - name: needs-you
    when: {state: [waiting_input, blocked]}
    for_s: 0
    repeat_s: 0
    agents: ["*"]
    to: [terminal, ops]
  - name: agent-lost
    when: {health: [unresponsive, down]}
    for_s: 60
    repeat_s: 3600
    gap_s: 300
    agents: ["coder*", "orchestrator"]
    to: [ops]
  - name: budget
    when: {budget_status: [ahead, exhausted, rung_changed]}
    to: [ops]
  - name: drifted
    when: {drift: [missing_session, pane_dead, socket_mismatch, runtime_mismatch]}
    for_s: 30
    agents: ["agent*", "coder*"]
    to: [ops]
channels:
  - {name: ops, type: webhook, url: "http://127.0.0.1:9/hook"}
"""
SILENCES_YAML = f"""\
silences:
  - {{rule: needs-you, agents: ["agent00*"], until: "{FAR}"}}
  - {{rule: "*", agents: ["agent1?7"], until: "{FAR}"}}
  - {{rule: budget, agents: ["agent2*"], until: "{FAR}", reason: known}}
  - {{rule: agent-lost, agents: ["agent05[0-9]"], until: "{FAR}"}}
  - {{rule: "*", agents: ["nobody-*", "other-*"], until: "{FAR}"}}
"""


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def pct(samples: list[float], q: float) -> float:
    """The q-quantile (0..1), nearest rank."""
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def spread(samples: list[float], scale: float = 1000.0, nd: int = 3) -> dict[str, Any]:
    """Median, p95, min, max (in ms by default) and the count."""
    return {
        "median": round(statistics.median(samples) * scale, nd),
        "p95": round(pct(samples, 0.95) * scale, nd),
        "min": round(min(samples) * scale, nd),
        "max": round(max(samples) * scale, nd),
        "n": len(samples),
    }


# =============================================================================================
# 1. eval: the rules over one snapshot, in-process
# =============================================================================================


def fixture_inputs(n: int) -> Any:
    """The join's inputs of `big_snapshot(n)` (caught on their way to `build_snapshot`), every
    agent given a budget brief (one account ahead of its pace, one on pace, alternately)."""
    from fleet_tui.testing import fleets

    caught: list[Any] = []
    real = fleets.build_snapshot

    def catch(inputs: Any) -> Any:
        caught.append(inputs)
        return real(inputs)

    fleets.build_snapshot = catch  # type: ignore[assignment]
    try:
        fleets.big_snapshot(n)
    finally:
        fleets.build_snapshot = real  # type: ignore[assignment]
    inputs = caught[0]
    briefs = (fleets.CLAUDE_MAX, fleets.OPENAI_PRO)
    budgets = {a.name: briefs[i % 2] for i, a in enumerate(inputs.roster.agents)}
    return dataclasses.replace(inputs, budgets=budgets)


def measure_eval(sizes: list[int], repeat: int, batch: int, tmp: Path) -> dict[str, Any]:
    from fleet_tui.sources.alerts import parse_alerts

    plain = parse_alerts(RULES_YAML, Path("bench-alerts.yaml")).config
    with_silences = parse_alerts(RULES_YAML + SILENCES_YAML, Path("bench-alerts.yaml")).config
    rules = plain.rules
    silences = with_silences.silences
    out: dict[str, Any] = {
        "rules": [r.name for r in rules],
        "silences": len(silences),
        "evaluations_per_sample": batch,
        "sizes": {},
    }
    for n in sizes:
        out["sizes"][str(n)] = eval_size(n, rules, with_silences, repeat, batch, tmp)
    return out


def eval_size(
    n: int, rules: list[Any], config: Any, repeat: int, batch: int, tmp: Path
) -> dict[str, Any]:
    """The cases for one fleet size, alternated round by round (median per evaluation)."""
    from fleet_tui.core.alerts import AlertBook, evaluate
    from fleet_tui.core.join import build_snapshot
    from fleet_tui.service.alerts import AlertEngine, AlertStore, for_outside

    silences = config.silences
    inputs = fixture_inputs(n)
    snap = build_snapshot(inputs)
    agents = snap.agents
    t0 = inputs.now
    # Warm up into the steady state: first evaluation opens the episodes, the second (an
    # hour later) fires those with a for_s; after that nothing new happens.
    books = {"rules": AlertBook(), "rules+silences": AlertBook()}
    for when in (t0, t0 + timedelta(hours=1)):
        evaluate(rules, agents, when, books["rules"])
        evaluate(rules, agents, when, books["rules+silences"], silences=silences)
    state_dir = tmp / f"eval-state-{n}"
    engine = AlertEngine(config, AlertStore(state_dir), "bench", wants=for_outside)
    for when in (t0, t0 + timedelta(hours=1)):
        engine.step(snap, when)
    clock = [t0 + timedelta(hours=1)]
    events: list[int] = []

    def tick() -> datetime:
        clock[0] += timedelta(milliseconds=1)
        return clock[0]

    def ev_rules() -> None:
        for _ in range(batch):
            events.append(len(evaluate(rules, agents, tick(), books["rules"])))

    def ev_silenced() -> None:
        for _ in range(batch):
            got = evaluate(rules, agents, tick(), books["rules+silences"], silences=silences)
            events.append(len(got))

    def ev_engine() -> None:
        for _ in range(batch):
            events.append(len(engine.step(snap, tick())))

    def ev_fresh() -> float:
        # what `alerts run` pays per poll: the step on records just out of the join, whose
        # cached `key` nobody has asked for yet (the join itself is not timed)
        spent = 0.0
        for _ in range(max(1, batch // 10)):
            fresh = build_snapshot(inputs)
            t = time.perf_counter()
            events.append(len(engine.step(fresh, tick())))
            spent += time.perf_counter() - t
        return spent

    def join() -> None:
        build_snapshot(inputs)

    measures: dict[str, tuple[Callable[[], float | None], int]] = {
        "join": (join, 1),
        "rules": (ev_rules, batch),
        "rules+silences": (ev_silenced, batch),
        "engine.step": (ev_engine, batch),
        "step, fresh records": (ev_fresh, max(1, batch // 10)),
    }
    samples: dict[str, list[float]] = {k: [] for k in measures}
    names = list(measures)
    for r in range(repeat):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn, per = measures[name]
            t = time.perf_counter()
            spent = fn()
            if spent is None:
                spent = time.perf_counter() - t
            samples[name].append(spent / per)
    book = books["rules+silences"]
    row: dict[str, Any] = {
        "agents": n,
        "per_evaluation_ms": {k: spread(v) for k, v in samples.items()},
        "episodes_open": len(books["rules"].episodes),
        "episodes_by_rule": {
            r.name: sum(1 for e in books["rules"].episodes.values() if e.rule == r.name)
            for r in rules
        },
        "silenced_episodes": sum(1 for e in book.episodes.values() if e.silenced),
        "events_in_steady_state": sum(events),
    }
    join_med = statistics.median(samples["join"])
    row["ratio_to_join"] = {
        k: round(statistics.median(samples[k]) / join_med, 4) for k in names if k != "join"
    }
    print(
        f"   N={n}: join {ms(join_med):.3f} ms; "
        + "; ".join(
            f"{k} {row['per_evaluation_ms'][k]['median']:.3f} ms "
            f"(x{row['ratio_to_join'][k]:.3f} of the join)"
            for k in names
            if k != "join"
        )
        + f"; {row['episodes_open']} episodes open, {row['events_in_steady_state']} events",
        flush=True,
    )
    return row


# =============================================================================================
# the live fleet for 2. and 3.
# =============================================================================================


class Receiver:
    """A local HTTP server taking the webhook's POSTs: (arrival time, JSON body) on a queue."""

    def __init__(self) -> None:
        self.posts: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.other: list[dict[str, Any]] = []  # POSTs no round waited for
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                t = time.perf_counter()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {"unreadable": body[:200].decode("utf-8", "replace")}
                posts.put((t, doc if isinstance(doc, dict) else {"body": doc}))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, agent: str, status: str, timeout: float) -> float | None:
        """Arrival time of the next POST saying `status` for `agent` (None: none in time)."""
        deadline = time.perf_counter() + timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            try:
                t, doc = self.posts.get(timeout=left)
            except queue.Empty:
                return None
            if doc.get("agent") == agent and doc.get("status") == status:
                return t
            self.other.append(doc)

    def drain(self) -> list[dict[str, Any]]:
        got = []
        while True:
            try:
                got.append(self.posts.get_nowait()[1])
            except queue.Empty:
                return got

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Lab(TmuxLab):
    """A temporary TMUX_TMPDIR with the fleet's socket (`fleet`), a roster, a state dir, an
    alerts.yaml whose one rule (`needs-you`, gap_s 0) goes to the dashboard's terminal channel
    and to a webhook on the local receiver."""

    def __init__(self) -> None:
        super().__init__("fta")
        self.receiver: Receiver | None = None
        self.names: list[str] = []
        self.beats: dict[str, Any] = {}
        self.home = Path(self.tmp)
        self.fleet_sock: Path | None = None

    @property
    def roster(self) -> Path:
        return self.home / "roster.yaml"

    @property
    def state(self) -> Path:
        return self.home / "state"

    @property
    def alerts(self) -> Path:
        return self.home / "alerts.yaml"

    def fleet_env(self) -> dict[str, str]:
        env = dict(self.env)
        env.update(
            {
                "MOSAIC_FLEET_ROSTER": str(self.roster),
                "MOSAIC_FLEET_STATE_DIR": str(self.state),
                "MOSAIC_FLEET_ALERTS": str(self.alerts),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def start_fleet(self, n: int) -> None:
        """N sessions running `sleep 3600` on the `fleet` socket (one tmux invocation), a roster
        naming them, and a `busy` heartbeat each (pid = the pane's)."""
        import yaml

        from fleet_tui.model.records import AgentState
        from fleet_tui.tmux import TmuxRunner

        t0 = time.perf_counter()
        self.home = Path(self.tmp) / f"fleet-{n}"
        self.state.mkdir(parents=True)
        if self.receiver is None:
            self.receiver = Receiver()
        self.names = [f"agent{i:03d}" for i in range(n)]
        runner = TmuxRunner(tmpdir=self.tmp, env=self.env)
        self.fleet_sock = runner.socket_path("fleet")
        self.fleet_sock.parent.mkdir(mode=0o700, exist_ok=True)
        self.sockets.add(self.fleet_sock)
        argv: list[str] = ["-f", "/dev/null"]
        for k, name in enumerate(self.names):
            if k:
                argv.append(";")
            argv += ["new-session", "-d", "-s", name, "-x", "120", "-y", "40", "sleep", "3600"]
        self.run(self.fleet_sock, *argv)
        out = self.run(self.fleet_sock, "list-panes", "-a", "-F", "#{session_name} #{pane_pid}")
        pids = {}
        for line in out.stdout.splitlines():
            name, _, pid = line.partition(" ")
            pids[name] = int(pid)
        doc = {
            "version": 1,
            "tenant_id": TENANT,
            "host": socket.gethostname(),
            "socket_name": "fleet",
            "heartbeat_timeout_s": 3600,  # the run takes minutes: every agent stays healthy
            "agents": [
                {
                    "name": name,
                    "role": ("orchestrator", "enhancer")[i] if i < 2 else "coder",
                    "runtime": "other",
                }
                for i, name in enumerate(self.names)
            ],
        }
        self.roster.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.alerts.write_text(
            "version: 1\n"
            "rules:\n"
            "  - name: needs-you\n"
            "    when: {state: [waiting_input, blocked]}\n"
            "    gap_s: 0\n"
            "    to: [terminal, hook]\n"
            "channels:\n"
            f'  - {{name: hook, type: webhook, url: "{self.receiver.url}", timeout_s: 5}}\n'
        )
        self.beats = {}
        for name in self.names:
            self.beat(name, AgentState.BUSY, pid=pids.get(name))
        print(f"   {n} sessions, roster, heartbeats: {time.perf_counter() - t0:.1f} s", flush=True)

    def beat(self, name: str, state: Any, pid: int | None = None) -> float:
        """Write `name`'s heartbeat with `state`; returns perf_counter() just before the write."""
        from fleet_tui.model.records import Heartbeat
        from fleet_tui.sources.spool import HeartbeatSpool

        old = self.beats.get(name)
        hb = Heartbeat(
            tenant_id=TENANT,
            host=socket.gethostname(),
            agent=name,
            seq=old.seq + 1 if old is not None else 0,
            ts=datetime.now(UTC),
            interval_s=10,
            state=state,
            detail="benchmark: which branch?" if str(state) == "waiting_input" else "benchmark",
            runtime="other",
            pid=pid if pid is not None else (old.pid if old is not None else None),
        )
        spool = HeartbeatSpool(self.state)
        t = time.perf_counter()
        spool.write_heartbeat(hb)
        self.beats[name] = hb
        return t

    def all_busy(self) -> None:
        from fleet_tui.model.records import AgentState

        for name, hb in self.beats.items():
            if str(hb.state) != "busy":
                self.beat(name, AgentState.BUSY)

    def stop_fleet(self) -> None:
        if self.fleet_sock is None:
            return
        out = self.run(self.fleet_sock, "list-panes", "-a", "-F", "#{pane_pid}", check=False)
        pids = [int(p) for p in out.stdout.split() if p.isdigit()]
        self.run(self.fleet_sock, "kill-server", check=False)
        self.wait_gone(pids)
        self.sockets.discard(self.fleet_sock)
        self.fleet_sock = None

    def cleanup(self) -> None:
        if self.receiver is not None:
            self.receiver.close()
        super().cleanup()


def round_order(lab: Lab, rounds: int) -> list[str]:
    """The agent of each round: spread over the fleet, the next one each round."""
    n = len(lab.names)
    step = max(1, n // max(rounds, 1))
    return [lab.names[(1 + r * step) % n] for r in range(rounds)]


# =============================================================================================
# 2. webhook: alerts run as a subprocess, a real HTTP receiver
# =============================================================================================


def child_cpu(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of argv, its own children included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(
        argv,
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
        check=True,
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def measure_webhook(lab: Lab, rounds: int, window: float, rng: random.Random) -> dict[str, Any]:
    from fleet_tui.model.records import AgentState

    assert lab.receiver is not None
    receiver = lab.receiver
    env = lab.fleet_env()
    log = lab.home / "alerts-run.log"
    argv = [lab.python, "-m", "fleet_tui", "alerts", "run", "--every", f"{EVERY_S:g}"]
    with log.open("wb") as f:
        proc = subprocess.Popen(
            argv, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT
        )
    lab.pids.add(proc.pid)
    row: dict[str, Any] = {"agents": len(lab.names), "every_s": EVERY_S, "rounds": rounds}
    try:
        # Warm-up round (not counted): proves the evaluator runs and the receiver is reached.
        name = lab.names[0]
        lab.beat(name, AgentState.WAITING_INPUT)
        if receiver.wait(name, "firing", 60) is None:
            tail = log.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"alerts run posted nothing in 60 s; its output: {tail}")
        lab.beat(name, AgentState.BUSY)
        receiver.wait(name, "resolved", 30)
        receiver.drain()
        lat: dict[str, list[float]] = {"firing": [], "resolved": []}
        missed = {"firing": 0, "resolved": 0}
        for name in round_order(lab, rounds):
            for state, status in (
                (AgentState.WAITING_INPUT, "firing"),
                (AgentState.BUSY, "resolved"),
            ):
                time.sleep(rng.uniform(0, EVERY_S))
                t0 = lab.beat(name, state)
                got = receiver.wait(name, status, 20)
                if got is None:
                    missed[status] += 1
                else:
                    lat[status].append(got - t0)
        row["latency_s"] = {k: spread(v, 1.0) for k, v in lat.items() if v}
        row["missed"] = missed
        row["samples_s"] = {k: [round(x, 3) for x in v] for k, v in lat.items()}
        row["unexpected_posts"] = receiver.other[:5]
        receiver.other.clear()
        print(
            "   latency firing "
            + (f"{row['latency_s']['firing']['median']:.3f} s median" if lat["firing"] else "-")
            + f", {missed['firing']} missed",
            flush=True,
        )
        # Poll load while nothing changes.
        print(f"   poll load: {window:g} s of alerts run with nothing changing", flush=True)
        time.sleep(3)
        hz = os.sysconf("SC_CLK_TCK")
        self0, kids0 = cpu_ticks(proc.pid)
        w0 = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - w0
        self1, kids1 = cpu_ticks(proc.pid)
        quiet_posts = receiver.drain()
        per_min = (self1 - self0) / hz * 60 / elapsed
        kids_min = (kids1 - kids0) / hz * 60 / elapsed
        ps = [lab.python, "-m", "fleet_tui", "ps", "--json"]
        ps_runs = [child_cpu(ps, env) for _ in range(3)]
        ps_cpu = statistics.median(c for c, _ in ps_runs)
        ps_wall = statistics.median(w for _, w in ps_runs)
        total = per_min + kids_min
        row["load"] = {
            "window_s": round(elapsed, 1),
            "cpu_s_per_min": round(per_min, 3),
            "pct_core": round(per_min / 60 * 100, 2),
            "cpu_s_per_min_with_children": round(total, 3),
            "cpu_ms_per_poll": round(total / (60 / EVERY_S) * 1000, 1),
            "ps_json_cpu_s": round(ps_cpu, 3),
            "ps_json_wall_s": round(ps_wall, 3),
            "ps_json_equivalents_per_min": round(total / ps_cpu, 2) if ps_cpu else None,
            "posts_while_quiet": len(quiet_posts),
            "loadavg": list(os.getloadavg()),
        }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        lab.pids.discard(proc.pid)
        lab.all_busy()
    warnings = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    row["alerts_run_output"] = warnings[-10:]
    # Baseline: what one poll costs without any alerting, the dashboard's LiveSource in-process.
    poll_cpu = live_poll_cpu(lab, 15)
    load = row["load"]
    load["live_poll_cpu_ms"] = round(poll_cpu * 1000, 1)
    load["per_poll_vs_live_poll"] = round(load["cpu_ms_per_poll"] / (poll_cpu * 1000), 2)
    return row


def live_poll_cpu(lab: Lab, polls: int) -> float:
    """CPU seconds per `LiveSource.poll()` on this fleet (tmux children included), warm: the
    cost of one poll of the dashboard, with no alert evaluation."""
    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.service.poll import LiveSource

    source = LiveSource(FleetConfig.from_flags(str(lab.roster), str(lab.state)))
    try:
        source.poll()
        time.sleep(0.5)

        def used() -> float:
            a = resource.getrusage(resource.RUSAGE_SELF)
            b = resource.getrusage(resource.RUSAGE_CHILDREN)
            return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

        total = 0.0
        for _ in range(polls):
            c = used()
            source.poll()
            total += used() - c
            time.sleep(0.3)
        return total / polls
    finally:
        source.close()


# =============================================================================================
# 3. bell: the dashboard, headless in this process
# =============================================================================================


def measure_bell(lab: Lab, rounds: int, rng: random.Random) -> dict[str, Any]:
    """`ui.launch.run_dashboard` as the CLI calls it, its FleetApp swapped for a subclass whose
    `bell` records the time and whose `run` drives the rounds under `run_test`."""
    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.config.paths import alerts_location
    from fleet_tui.config.settings import DashboardSettings
    from fleet_tui.model.records import AgentState
    from fleet_tui.ui import launch

    config = dataclasses.replace(
        FleetConfig.from_flags(str(lab.roster), str(lab.state)),
        alerts=alerts_location(str(lab.alerts)),
    )
    rang: list[float] = []
    row: dict[str, Any] = {"agents": len(lab.names), "poll_interval_s": EVERY_S, "rounds": rounds}
    lat: list[float] = []
    missed = [0]
    problem: list[str] = []

    async def ring(t0: float, n0: int, timeout: float) -> float | None:
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if len(rang) > n0:
                return rang[n0] - t0
            await asyncio.sleep(0.005)
        return None

    async def drive(app: Any) -> None:
        async with app.run_test(size=SIZE):
            await asyncio.sleep(3)  # first polls, the table filled
            name = lab.names[0]
            n0 = len(rang)
            t0 = await asyncio.to_thread(lab.beat, name, AgentState.WAITING_INPUT)
            if await ring(t0, n0, 30) is None:
                problem.append("no bell within 30 s of a waiting_input heartbeat")
                return
            await asyncio.to_thread(lab.beat, name, AgentState.BUSY)
            await asyncio.sleep(EVERY_S * 2)
            for name in round_order(lab, rounds):
                await asyncio.sleep(rng.uniform(0, EVERY_S))
                n0 = len(rang)
                t0 = await asyncio.to_thread(lab.beat, name, AgentState.WAITING_INPUT)
                got = await ring(t0, n0, 20)
                if got is None:
                    missed[0] += 1
                else:
                    lat.append(got)
                await asyncio.sleep(rng.uniform(0, EVERY_S))
                await asyncio.to_thread(lab.beat, name, AgentState.BUSY)
                await asyncio.sleep(EVERY_S * 1.5)  # resolved before the next round

    base = launch.FleetApp

    class BenchApp(base):  # type: ignore[misc, valid-type]
        def bell(self) -> None:
            rang.append(time.perf_counter())
            super().bell()

        def run(self, *args: Any, **kwargs: Any) -> Any:
            asyncio.run(drive(self))
            return None

    launch.FleetApp = BenchApp  # type: ignore[misc]
    saved = {k: os.environ.get(k) for k in ("MOSAIC_FLEET_TUI_CONFIG", "MOSAIC_FLEET_ALERTS")}
    os.environ["MOSAIC_FLEET_TUI_CONFIG"] = str(lab.settings)
    os.environ["MOSAIC_FLEET_ALERTS"] = str(lab.alerts)
    try:
        launch.run_dashboard(config, settings=DashboardSettings(poll_interval_s=EVERY_S))
    finally:
        launch.FleetApp = base  # type: ignore[misc]
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        lab.all_busy()
    row["latency_s"] = {"bell": spread(lat, 1.0)} if lat else {}
    row["missed"] = {"bell": missed[0]}
    row["samples_s"] = [round(x, 3) for x in lat]
    row["bells"] = len(rang)
    if problem:
        row["problem"] = problem
        print(f"   {problem[0]}", flush=True)
    elif lat:
        print(f"   latency bell {statistics.median(lat):.3f} s median, {missed[0]} missed")
    return row


# =============================================================================================
# report
# =============================================================================================


def print_report(doc: dict[str, Any]) -> list[str]:
    goals: list[str] = []
    ev = doc.get("eval")
    if ev:
        print("\n1. rules per snapshot (ms per evaluation, median / p95; ratio to the join)")
        cases = ("rules", "rules+silences", "engine.step", "step, fresh records")
        print(
            f"{'N':>5} {'join':>14} {'rules':>22} {'+5 silences':>22} {'engine.step':>22}"
            f" {'step, fresh records':>22}"
        )
        for n, row in ev["sizes"].items():
            pe, ratio = row["per_evaluation_ms"], row["ratio_to_join"]
            cells = [f"{pe['join']['median']:.3f} / {pe['join']['p95']:.3f}"]
            for k in cases:
                cells.append(f"{pe[k]['median']:.3f} / {pe[k]['p95']:.3f} x{ratio[k]:.3f}")
            print(f"{n:>5} {cells[0]:>14} " + " ".join(f"{c:>22}" for c in cells[1:]))
        worst = max(
            row["per_evaluation_ms"][k]["median"] for row in ev["sizes"].values() for k in cases
        )
        goals.append(
            f"evaluation under {GOAL_EVAL_MS:g} ms per snapshot: worst median {worst:.3f} ms -> "
            + ("met" if worst < GOAL_EVAL_MS else "MISSED")
        )
    for part, title in (("webhook", "heartbeat -> webhook POST"), ("bell", "heartbeat -> bell")):
        got = doc.get(part)
        if not got:
            continue
        print(f"\n{'2' if part == 'webhook' else '3'}. {title} (s, median / p95 / max)")
        for n, row in got["sizes"].items():
            for k, v in row["latency_s"].items():
                miss = f", {row['missed'][k]} missed" if row["missed"].get(k) else ""
                print(
                    f"   N={n:>4} {k:<9} {v['median']:.3f} / {v['p95']:.3f} / {v['max']:.3f}"
                    f"  (n={v['n']}{miss})"
                )
            if "load" in row:
                ld = row["load"]
                print(
                    f"   N={n:>4} poll load: alerts run {ld['cpu_s_per_min']:.3f} CPU-s/min "
                    f"({ld['pct_core']:.2f} % of a core; with children "
                    f"{ld['cpu_s_per_min_with_children']:.3f}); one ps --json "
                    f"{ld['ps_json_cpu_s']:.3f} CPU-s -> {ld['ps_json_equivalents_per_min']:.1f} "
                    f"ps --json per minute, {ld['cpu_ms_per_poll']:.1f} ms CPU per poll"
                )
                if "live_poll_cpu_ms" in ld:
                    print(
                        f"   N={n:>4} baseline: a dashboard poll (LiveSource.poll, no alerts) "
                        f"{ld['live_poll_cpu_ms']:.1f} ms CPU -> alerts run per poll "
                        f"x{ld['per_poll_vs_live_poll']:.2f}"
                    )
            worst = max(v["p95"] for v in row["latency_s"].values() if v.get("n"))
            missed = sum(row["missed"].values())
            goals.append(
                f"{part} N={n}: under {GOAL_LATENCY_S:g} s end to end: p95 {worst:.3f} s"
                + (f", {missed} missed" if missed else "")
                + " -> "
                + ("met" if worst < GOAL_LATENCY_S and not missed else "MISSED")
            )
    print()
    for g in goals:
        print(f"goal {g}")
    return goals


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="fewer rounds, shorter load window")
    p.add_argument("--only", default="eval,webhook,bell", help="which parts, comma-separated")
    p.add_argument("--agents", default="10,300", help="fleet sizes, comma-separated")
    p.add_argument("--rounds", type=int, default=None, help="rounds per size (webhook, bell)")
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--out", default=str(RESULTS), help="JSON results file")
    args = p.parse_args(argv)
    parts = {"eval", "webhook", "bell"}
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    if not only <= parts:
        p.error(f"--only: unknown {sorted(only - parts)}")
    sizes = [int(x) for x in args.agents.split(",") if x.strip()]
    if only & {"webhook", "bell"} and not shutil.which("tmux"):
        print("tmux is not installed", file=sys.stderr)
        return 2
    repeat, batch = (7, 20) if args.quick else (21, 50)
    rounds = args.rounds or (6 if args.quick else 20)
    window = 20.0 if args.quick else 60.0

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    t_start = time.monotonic()
    doc: dict[str, Any] = {
        "schema": "fleet_tui.bench.alerts/v1",
        "generated_at": datetime.now(UTC).isoformat(),
        "command": " ".join([".venv/bin/python", "benchmarks/bench_alerts.py", *sys.argv[1:]]),
        "quick": args.quick,
        "loadavg_before": list(os.getloadavg()),
    }
    lab: Lab | None = None
    try:
        lab = Lab()
        if "eval" in only:
            print("-- 1. eval: the rules over one snapshot (in-process)", flush=True)
            doc["eval"] = measure_eval(sizes, repeat, batch, Path(lab.tmp))
        if only & {"webhook", "bell"}:
            rng = random.Random(args.seed)
            for n in sizes:
                lab.start_fleet(n)
                if "webhook" in only:
                    print(f"-- 2. webhook, N={n}: alerts run --every {EVERY_S:g}", flush=True)
                    row = measure_webhook(lab, rounds, window, rng)
                    doc.setdefault("webhook", {"sizes": {}})["sizes"][str(n)] = row
                if "bell" in only:
                    print(f"-- 3. bell, N={n}: the dashboard, headless", flush=True)
                    row = measure_bell(lab, rounds, rng)
                    doc.setdefault("bell", {"sizes": {}})["sizes"][str(n)] = row
                lab.stop_fleet()
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        if lab is not None:
            lab.cleanup()
    doc["goals"] = print_report(doc)
    tmux_version = subprocess.run(
        [shutil.which("tmux") or "tmux", "-V"], capture_output=True, text=True, check=False
    ).stdout.strip()
    doc["machine"] = {
        "python": platform.python_version(),
        "tmux": tmux_version,
        "cpus": os.cpu_count(),
        "loadavg_after": list(os.getloadavg()),
    }
    doc["run_s"] = round(time.monotonic() - t_start, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {out} (run took {doc['run_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
