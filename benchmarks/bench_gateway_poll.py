"""What a gateway costs a dashboard poll: `LiveSource.poll()` with no gateway (the baseline),
with a gateway answering 20 hosts x 20 agents on loopback, and with a gateway that never answers.

The claim under test: the gateway is asked beside the local poll (its own thread, own timeouts),
so a slow or dead gateway never makes a local poll slower; merging the answer costs little.

    .venv/bin/python benchmarks/bench_gateway_poll.py [--polls 200] [--hosts 20] [--agents 20]

Runs with a private TMUX_TMPDIR and state dir (no tmux server is started: the local view is empty,
so the figures isolate the gateway's share). Prints medians and p99 and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def answer(hosts: int, agents: int) -> bytes:
    from test_gateway_client import answer as build_answer
    from test_gateway_client import host_row, remote_agent

    rows = [
        host_row(
            f"h{h:02d}", [remote_agent(f"a{h:02d}-{i:02d}", f"h{h:02d}") for i in range(agents)]
        )
        for h in range(hosts)
    ]
    return json.dumps(build_answer(rows)).encode()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    body = b"{}"
    hang = True


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.server.hang:
            time.sleep(30)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(port: int) -> None:
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit("the static server did not start")


def measure(source: Any, polls: int) -> list[float]:
    times = []
    for _ in range(polls):
        t0 = time.perf_counter()
        source.poll()
        times.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.005)
    return times


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--polls", type=int, default=200)
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument(
        "--refresh", type=float, default=2.0, help="gateway refresh (s); 0 = ask at every poll"
    )
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ftg", dir="/tmp"))
    os.environ.update(
        TMUX_TMPDIR=str(base), XDG_STATE_HOME=str(base / "s"), XDG_CONFIG_HOME=str(base / "c")
    )
    os.environ.pop("TMUX", None)
    (base / "c" / "mosaic").mkdir(parents=True)
    (base / "c" / "mosaic" / "roster.yaml").write_text(
        "version: 1\ntenant_id: acme\nhost: bench-local\nagents: []\n"
    )
    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.remote.connection import GatewaySettings, Secret
    from fleet_tui.service.poll import LiveSource

    # the answering gateway runs in its own process (a server thread here would take the GIL
    # from the polls and blame it on the client); the hanging one may live here: it only sleeps
    www = base / "www" / "api" / "fleet" / "v1"
    www.mkdir(parents=True)
    (www / "snapshot").write_bytes(answer(args.hosts, args.agents))
    port = free_port()
    static = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=base / "www",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(port)
    server = Server(("127.0.0.1", 0), Handler)
    server.hang = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = GatewaySettings(
        url=f"http://127.0.0.1:{port}",
        token=Secret("bench"),
        insecure=True,
        read_timeout_s=2.0,
        refresh_s=args.refresh,
    )
    hung_settings = GatewaySettings(
        url=f"http://127.0.0.1:{server.server_address[1]}",
        token=Secret("bench"),
        insecure=True,
        read_timeout_s=60.0,
        deadline_s=60.0,
    )
    try:
        rows = []
        plain = LiveSource(FleetConfig.from_flags())
        with_gw = LiveSource(FleetConfig.from_flags(), gateway=settings)
        hung = LiveSource(FleetConfig.from_flags(), gateway=hung_settings)
        for s in (plain, with_gw):
            s.poll()
        with_gw.gateway.wait(5)  # type: ignore[union-attr]
        results: dict[str, list[float]] = {"no gateway": [], "gateway answering": []}
        for _round in range(4):  # interleaved rounds: fair against drift in machine load
            results["no gateway"] += measure(plain, args.polls // 4)
            results["gateway answering"] += measure(with_gw, args.polls // 4)
        merged = with_gw.poll()
        results["gateway hanging"] = measure(hung, args.polls // 4)
        base_med = statistics.median(results["no gateway"])
        print(f"{args.hosts} hosts x {args.agents} agents from the gateway; {args.polls} polls")
        print(f"merged snapshot: {len(merged.agents)} agents, {len(merged.sources)} sources")
        print(f"{'case':<20} {'median ms':>10} {'p99 ms':>8} {'median/baseline':>16}")
        for name, ts in results.items():
            ts = sorted(ts)
            med = statistics.median(ts)
            p99 = ts[min(len(ts) - 1, int(len(ts) * 0.99))]
            rows.append((name, med, p99))
            print(f"{name:<20} {med:>10.2f} {p99:>8.2f} {med / base_med:>16.2f}")
        for s in (plain, with_gw, hung):
            s.close()
    finally:
        static.terminate()
        static.wait(5)
        server.shutdown()
        shutil.rmtree(base, ignore_errors=True)
    print(f"run at {datetime.now(UTC).isoformat(timespec='seconds')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
