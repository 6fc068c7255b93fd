"""Benchmark: a browser session of `fleet-tui web` against the same dashboard in a tmux pane.

Run from the repository root:

    .venv/bin/python benchmarks/bench_web.py [--runs 3] [--sessions 8]

One private world (a temporary folder: TMUX_TMPDIR, HOME, XDG folders; the user's tmux servers and
files are never touched) with the demo fleet (7 agents, 6 running). Then, in the same run:

1. baseline, one at a time (`--runs` times): the dashboard (`python -P -m fleet_tui tui`) in a
   142x36 pane of a private `ui` tmux server; start time = the `new-session` call to the first
   capture-pane showing the fleet table (`AGENT` and `orchestrator`, polled every 20 ms); memory
   = RSS (VmRSS) of the pane's process tree 5 s after that.
2. web, one at a time (`--runs` times): `fleet-tui web` on 127.0.0.1; a client (aiohttp, no
   browser) posts the login form, loads `/`, opens `/ws?width=142&height=36`, and reads what it
   receives until the fleet table's text (`AGENT`, `orchestrator`) has come: start time = the
   login POST to that first paint (raw bytes, not a terminal emulator: pyte parsing 8 first
   paints in this one process took CPU the 2 cores could not spare, timed as the web's); memory = RSS of the app's process tree (its pid from the web log)
   5 s later; the server's own RSS beside it.
3. `--sessions` at once, both ways: N panes started together, and N web sessions logged in and
   opened together; time until all N show the table; RSS of all N trees (+ the server's) 5 s later.

The browser's own cost (chromium) is left out of both: the pane's terminal (tmux) is left out of
the baseline too. Results: benchmarks/results/web.json. Everything started is stopped at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results" / "web.json"
COLS, ROWS = 142, 36
SETTLE_S = 5.0
PAINT_TIMEOUT_S = 120.0


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def tree(pid: int) -> list[int]:
    """`pid` and its descendants (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def tree_rss_mb(pid: int) -> float:
    return sum(rss_kb(p) for p in tree(pid)) / 1024


class World:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="fwb", dir="/tmp"))
        for d in ("h", "s", "c"):
            (self.tmp / d).mkdir()
        self.python = str(REPO / ".venv" / "bin" / "python")
        if not os.path.exists(self.python):
            self.python = sys.executable
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TEXTUAL", "MOSAIC_", "TMUX")) and k not in ("COLUMNS", "LINES")
        }
        env.update(
            TMUX_TMPDIR=str(self.tmp),
            HOME=str(self.tmp / "h"),
            XDG_STATE_HOME=str(self.tmp / "s"),
            XDG_CONFIG_HOME=str(self.tmp / "c"),
            LANG="C.UTF-8",
            LC_ALL="C.UTF-8",
            COLORTERM="truecolor",
            PYTHONPATH=str(REPO),
        )
        self.env = env
        self.ui = self.tmp / "ui"
        self.procs: list[subprocess.Popen[str]] = []

    def cli(self, *args: str) -> str:
        res = subprocess.run(
            [self.python, "-m", "fleet_tui", *args],
            env=self.env, capture_output=True, text=True, timeout=120, check=True, cwd=REPO,
        )  # fmt: skip
        return res.stdout

    def tmux(self, *args: str, check: bool = True) -> str:
        res = subprocess.run(
            ["tmux", "-S", str(self.ui), *args],
            env=self.env, capture_output=True, text=True, timeout=30, check=check,
        )  # fmt: skip
        return res.stdout

    def start_demo(self) -> None:
        self.cli("demo", "up")
        home = self.tmp / "s" / "mosaic" / "fleet-demo"
        self.env.update(
            MOSAIC_FLEET_ROSTER=str(home / "roster.yaml"),
            MOSAIC_FLEET_STATE_DIR=str(home / "state"),
            MOSAIC_FLEET_BUDGETS=str(home / "budgets.yaml"),
            CLAUDE_CONFIG_DIR=str(home / "claude"),
            CODEX_HOME=str(home / "codex"),
        )

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(15)
            if p.poll() is None:
                p.kill()
        with contextlib.suppress(Exception):
            self.tmux("kill-server", check=False)
        with contextlib.suppress(Exception):
            self.cli("demo", "down")
        shutil.rmtree(self.tmp, ignore_errors=True)


# -- baseline: the dashboard in a tmux pane ------------------------------------------------------


def panes(world: World, n: int) -> dict[str, Any]:
    argv = f"{world.python} -P -m fleet_tui tui"
    names = [f"d{i}" for i in range(n)]
    t0 = time.monotonic()
    for name in names:
        if world.ui.exists() and world.tmux("has-session", "-t", "=d0", check=False) is not None:
            pass
        world.tmux(
            "new-session", "-d", "-s", name, "-x", str(COLS), "-y", str(ROWS), "-c", str(REPO),
            *[f"-e{k}={v}" for k, v in world.env.items() if k.startswith(("MOSAIC_", "XDG_"))],
            argv,
        )  # fmt: skip
    painted: dict[str, float] = {}
    while len(painted) < n:
        if time.monotonic() - t0 > PAINT_TIMEOUT_S:
            raise SystemExit("a dashboard pane never painted its table")
        for name in names:
            if name in painted:
                continue
            screen = world.tmux("capture-pane", "-p", "-t", f"={name}:", check=False)
            if "AGENT" in screen and "orchestrator" in screen:
                painted[name] = time.monotonic() - t0
        time.sleep(0.02)
    time.sleep(SETTLE_S)
    pids = [
        int(world.tmux("display-message", "-p", "-t", f"={name}:", "#{pane_pid}").strip())
        for name in names
    ]
    rss = [tree_rss_mb(pid) for pid in pids]
    for name in names:
        world.tmux("kill-session", "-t", f"={name}", check=False)
    time.sleep(0.5)
    return {"paint_s": sorted(painted.values()), "rss_mb": rss}


# -- web ---------------------------------------------------------------------------------------


def start_server(world: World, sessions: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [world.python, "-m", "fleet_tui", "web", "--listen", "127.0.0.1:0",
         "--max-sessions", str(max(8, sessions))],
        env=world.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    world.procs.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
    if not m:
        raise SystemExit(f"fleet-tui web did not start: {line!r}")
    return proc, m.group(1)


def app_pids(world: World) -> list[int]:
    path = Path(world.env["MOSAIC_FLEET_STATE_DIR"]) / "web" / "web.log"
    pids = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") == "app started":
            pids.append(int(rec["pid"]))
    return pids


async def one_session(url: str, token: str, opened: list[Any]) -> float:
    import aiohttp

    client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with client.get(url + "/login") as r:
        csrf = re.search(r'name="csrf" value="([^"]+)"', await r.text())
    assert csrf
    t0 = time.monotonic()
    async with client.post(url + "/login", data={"token": token, "csrf": csrf.group(1)}) as r:
        assert r.status == 200, r.status  # followed the 303 to /
    ws = await client.ws_connect(f"{url}/ws?width={COLS}&height={ROWS}", origin=url)
    opened.append((client, ws))
    seen = b""
    while True:
        msg = await ws.receive(timeout=PAINT_TIMEOUT_S)
        if msg.type != aiohttp.WSMsgType.BINARY:
            if msg.type == aiohttp.WSMsgType.TEXT:
                continue
            raise SystemExit(f"the socket closed before the table was painted: {msg}")
        # the raw bytes, not a terminal emulator: pyte on 8 first paints in this one process
        # costs more CPU than the 2 cores can spare, and would be timed as the server's
        seen += msg.data
        if b"AGENT" in seen and b"orchestrator" in seen:
            return time.monotonic() - t0


async def web_sessions(world: World, url: str, token: str, n: int) -> dict[str, Any]:
    before = set(app_pids(world))
    opened: list[Any] = []
    t0 = time.monotonic()
    starts = await asyncio.gather(*(one_session(url, token, opened) for _ in range(n)))
    all_painted = time.monotonic() - t0
    await asyncio.sleep(SETTLE_S)
    pids = [p for p in app_pids(world) if p not in before]
    rss = [tree_rss_mb(pid) for pid in pids]
    for client, ws in opened:
        await ws.close()
        await client.close()
    deadline = time.monotonic() + 15
    while any(os.path.exists(f"/proc/{p}") for p in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return {"paint_s": sorted(starts), "all_painted_s": all_painted, "rss_mb": rss}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=8)
    args = ap.parse_args()
    world = World()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    try:
        world.start_demo()
        token = world.cli("web", "token", "create", "--scope", "view", "--label", "bench")
        token = token.strip().splitlines()[-1]
        server, url = start_server(world, args.sessions)

        base_one = [panes(world, 1) for _ in range(args.runs)]
        web_one = [asyncio.run(web_sessions(world, url, token, 1)) for _ in range(args.runs)]
        base_n = panes(world, args.sessions)
        web_n = asyncio.run(web_sessions(world, url, token, args.sessions))
        server_rss = tree_rss_mb(server.pid) - sum(
            tree_rss_mb(p) for p in app_pids(world) if os.path.exists(f"/proc/{p}")
        )

        def med(xs: list[float]) -> float:
            return statistics.median(xs)

        b1_paint = med([r["paint_s"][0] for r in base_one])
        w1_paint = med([r["paint_s"][0] for r in web_one])
        b1_rss = med([r["rss_mb"][0] for r in base_one])
        w1_rss = med([r["rss_mb"][0] for r in web_one])
        summary = {
            "one_session": {
                "baseline_pane": {"start_s": round(b1_paint, 3), "rss_mb": round(b1_rss, 1)},
                "web": {"start_s": round(w1_paint, 3), "rss_mb": round(w1_rss, 1)},
                "ratio_start": round(w1_paint / b1_paint, 2),
                "ratio_rss": round(w1_rss / b1_rss, 2),
            },
            f"{args.sessions}_at_once": {
                "baseline_panes": {
                    "all_painted_s": round(max(base_n["paint_s"]), 3),
                    "rss_total_mb": round(sum(base_n["rss_mb"]), 1),
                },
                "web": {
                    "all_painted_s": round(web_n["all_painted_s"], 3),
                    "apps_rss_total_mb": round(sum(web_n["rss_mb"]), 1),
                    "server_rss_mb": round(server_rss, 1),
                },
                "ratio_all_painted": round(web_n["all_painted_s"] / max(base_n["paint_s"]), 2),
                "ratio_rss": round((sum(web_n["rss_mb"]) + server_rss) / sum(base_n["rss_mb"]), 2),
            },
        }
        result = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "load_before": os.getloadavg(),
            "size": [COLS, ROWS],
            "summary": summary,
            "raw": {"baseline_one": base_one, "web_one": web_one, "baseline_n": base_n,
                    "web_n": web_n},
        }  # fmt: skip
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(summary, indent=1))
        print(f"written: {RESULTS.relative_to(REPO)}")
        return 0
    finally:
        world.cleanup()


if __name__ == "__main__":
    sys.exit(main())
