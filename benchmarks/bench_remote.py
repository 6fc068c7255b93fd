"""Benchmark: the round trip of a remote `send --verify` over loopback SSH (issue 19), against a
local `send --verify` baseline in the same run.

Run from the repository root as root or as a user that may run sshd (needs Debian's
openssh-server, as the tests do; the test extra for the tests' helpers):

    .venv/bin/python benchmarks/bench_remote.py [--rounds 20]

One private world (tests/conftest.FleetEnv: its own TMUX_TMPDIR, HOME and XDG folders) with one
agent, a `fleet-tui stub` that acks what it is sent (heartbeat every 0.1 s), and a real sshd on
a free loopback port (tests/sshd_support.py: throwaway host key, one authorized key, an
ssh_config of its own) whose remote fleet-tui command is a wrapper pointing at that world. Each
round, alternated (so that the machine's load falls on all alike):

- local: `python -m fleet_tui send STUB - --verify` as a new process (what the remote end runs);
- ssh: `control.remote_hands.RemoteHost.run("send", ...)`, exactly what the dashboard's `m`
  runs on a mapped host: ssh (a new connection: key exchange, auth), the remote shell, env, the
  wrapper, the same `send --verify`;
- ssh + ControlMaster: the same with `-o ControlMaster=auto -o ControlPath=... -o
  ControlPersist=60` in the host's `ssh_options` (what a user can set for a host they act on
  often): the connection is set up once and reused;
- bare ssh: `ssh ... true` (a connection and a remote shell, no fleet-tui), for reference.

Then the stream (`--marks N`): a `cat` agent; one `fleet-tui stream --follow` here and one over
ssh (what the dashboard's `s` runs on a mapped host) read it at once; N times a marker is typed
into the pane (`send-keys`), and the time until each follower printed it is taken.

Prints a table (median and p90 in ms, and the ratio of medians to local) and writes
benchmarks/results/remote.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
RESULTS = REPO / "benchmarks" / "results" / "remote.json"
SOCK = "mosaic-fleet"
AGENT = "bench-stub"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--marks", type=int, default=30)
    args = parser.parse_args()

    from conftest import FleetEnv  # the tests' private world
    from sshd_support import start_sshd

    from fleet_tui.config.settings import HostSettings
    from fleet_tui.control.remote_hands import RemoteHost

    world = FleetEnv()
    sshd = None
    try:
        world.write_roster([{"name": AGENT, "role": "coder"}], host="far-host")
        world.stub(SOCK, AGENT, interval=0.1)
        sshd = start_sshd(world.base / "sshd", world)
        plain = RemoteHost("far-host", HostSettings.model_validate(sshd.mapping()))
        control_path = world.base / "cm-%C"
        master = RemoteHost(
            "far-host",
            HostSettings.model_validate(
                sshd.mapping(
                    ssh_options=[
                        "-F",
                        str(sshd.client_config),
                        "-o",
                        "ControlMaster=auto",
                        "-o",
                        f"ControlPath={control_path}",
                        "-o",
                        "ControlPersist=60",
                    ]
                )
            ),
        )
        env = dict(world.env)

        def local(text: str) -> None:
            proc = subprocess.run(
                [sys.executable, "-m", "fleet_tui", "send", AGENT, "-", "--verify"],
                input=text,
                env=env,
                capture_output=True,
                text=True,
                cwd=str(world.base),
                timeout=60,
                check=False,
            )
            if proc.returncode != 0:
                raise SystemExit(f"local send failed: {proc.stderr.strip()}")

        def over(host: RemoteHost) -> object:
            def run(text: str) -> None:
                host.run("send", ["--verify", "--", AGENT, "-"], input=text, timeout_s=60)

            return run

        def bare(text: str) -> None:
            argv = [*plain.argv("send", [])[:-1], "true"]
            subprocess.run(argv, capture_output=True, timeout=60, check=True)

        cases = {
            "local send --verify": local,
            "ssh send --verify": over(plain),
            "ssh + ControlMaster send --verify": over(master),
            "bare ssh (connect + true)": bare,
        }
        for name, fn in cases.items():  # warm up: caches, the master connection
            fn(f"warm-up {name}")  # type: ignore[operator]
        times: dict[str, list[float]] = {name: [] for name in cases}
        for i in range(args.rounds):
            for name, fn in cases.items():
                t0 = time.perf_counter()
                fn(f"round {i} {name} {time.time_ns()}")  # type: ignore[operator]
                times[name].append((time.perf_counter() - t0) * 1000)
        marks = stream_latency(world, plain, args.marks)
        subprocess.run(
            [
                *master.argv("send", [])[:3],
                "-O",
                "exit",
                "-o",
                f"ControlPath={control_path}",
                "--",
                sshd.dest,
            ],
            capture_output=True,
            timeout=10,
            check=False,
        )
    finally:
        if sshd is not None:
            sshd.stop()
        world.close()

    base = statistics.median(times["local send --verify"])
    rows = []
    for name, samples in times.items():
        med = statistics.median(samples)
        p90 = sorted(samples)[max(math.ceil(len(samples) * 0.9) - 1, 0)]
        rows.append(
            {
                "case": name,
                "median_ms": round(med, 1),
                "p90_ms": round(p90, 1),
                "ratio": round(med / base, 2),
                "samples": len(samples),
            }
        )
    for name, samples in marks.items():
        rows.append(
            {
                "case": name,
                "median_ms": round(statistics.median(samples), 1),
                "p90_ms": round(sorted(samples)[max(math.ceil(len(samples) * 0.9) - 1, 0)], 1),
                "ratio": None,
                "samples": len(samples),
            }
        )
    width = max(len(r["case"]) for r in rows)
    print(f"{'case':<{width}}  median ms  p90 ms  x local")
    for r in rows:
        ratio = "" if r["ratio"] is None else r["ratio"]
        print(f"{r['case']:<{width}}  {r['median_ms']:>9}  {r['p90_ms']:>6}  {ratio:>7}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "bench": "remote",
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load": os.getloadavg(),
                },
                "rounds": args.rounds,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


def stream_latency(world: object, host: object, marks: int) -> dict[str, list[float]]:
    """Milliseconds from typing a marker into a `cat` pane until a `stream --follow` here and
    one over ssh printed it."""
    import select

    env = world.env  # type: ignore[attr-defined]
    world.start(SOCK, "bench-cat", ["cat"])  # type: ignore[attr-defined]
    local = subprocess.Popen(
        [sys.executable, "-m", "fleet_tui", "stream", "--follow", "--", "bench-cat"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        cwd=str(world.base),  # type: ignore[attr-defined]
    )
    remote = subprocess.Popen(
        host.argv("stream", ["--follow", "--", "bench-cat"]),  # type: ignore[attr-defined]
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    procs = {"stream --follow here: a line seen": local, "stream over ssh: a line seen": remote}
    seen: dict[str, bytes] = {name: b"" for name in procs}

    out: dict[str, list[float]] = {name: [] for name in procs}
    try:
        time.sleep(3)  # both followers started (a new interpreter; ssh's connection)
        for i in range(-1, marks):  # the first is a warm-up (both pipes open)
            marker = f"mark-{i}-{time.time_ns()}"
            t0 = time.perf_counter()
            world.tmux(SOCK, "send-keys", "-t", "=bench-cat:", "-l", marker)  # type: ignore[attr-defined]
            world.tmux(SOCK, "send-keys", "-t", "=bench-cat:", "Enter")  # type: ignore[attr-defined]
            pending = set(procs)
            while pending:
                for name in list(pending):
                    if marker.encode() in seen[name]:
                        if i >= 0:
                            out[name].append((time.perf_counter() - t0) * 1000)
                        pending.discard(name)
                if not pending:
                    break
                streams = {procs[n].stdout: n for n in pending}
                ready, _, _ = select.select(list(streams), [], [], 30)
                if not ready:
                    raise SystemExit(f"{marker} not seen by {sorted(pending)}")
                for stdout in ready:
                    seen[streams[stdout]] += os.read(stdout.fileno(), 65536)  # type: ignore[union-attr]
            time.sleep(0.2)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=10)
    return out


if __name__ == "__main__":
    sys.exit(main())
