"""Benchmark: start-up of the command line on an empty fleet, one tree against another.

Run from the repository root:

    .venv/bin/python benchmarks/bench_startup.py [--before /work/i16_before] [--rounds 20]

Each tree is run with its own interpreter (`TREE/.venv/bin/python`, else this one) from its own
folder, so `python -m fleet_tui` imports that tree's package. The fleet is empty: a temporary
HOME, XDG folders and TMUX_TMPDIR (no tmux server, no roster, no spool, no settings file, no
usage index), and no MOSAIC_* or TMUX variables. `--agents N` instead runs the commands on a
fleet of N `sleep` panes over 10 private sockets in that TMUX_TMPDIR, with a roster naming them
and a fresh heartbeat each (MOSAIC_FLEET_ROSTER / MOSAIC_FLEET_STATE_DIR): what `ps` costs
when it has a fleet to read, validate, join and print.

Bytecode: by default each tree gets its own PYTHONPYCACHEPREFIX in the temporary folder (the
trees are not written to) and PYTHONDONTWRITEBYTECODE is unset, and one warm-up run fills it:
what an installed `fleet-tui` does, whose modules are compiled once. `--no-bytecode` measures
with the caller's setting instead (compiling every module from source on every run when
PYTHONDONTWRITEBYTECODE is set, as in some CI and sandbox shells).

Commands, alternated round by round in a rotating order (every command of every tree once per
round): `python -c pass` (the interpreter alone), `ps --json`, `ps` (the table) and `--help`.
For each: median, p95 and min wall time, and the median CPU time (user + sys of the child, less
moved by the other load on a shared machine than wall time). Then, once per tree, the modules
`ps --json` imported (`python -X importtime`): how many, and which of a list of heavy ones.

Prints a table and writes benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "startup.json"
GOAL_MS = 250.0

COMMANDS: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "ps --json": ["-m", "fleet_tui", "ps", "--json"],
    "ps": ["-m", "fleet_tui", "ps"],
    "--help": ["-m", "fleet_tui", "--help"],
}

# Modules `ps --json` on an empty fleet has no use for (reported when imported).
HEAVY = (
    "textual",
    "rich",
    "httpx",
    "httpcore",
    "anyio",
    "yaml",
    "sqlite3",
    "watchfiles",
    "fastapi",
    "uvicorn",
    "psycopg",
    "tomllib",
    "fleet_tui.sources.usage",
    "fleet_tui.core.usage",
    "fleet_tui.sources.claude_sessions",
    "fleet_tui.model.alerts",
    "fleet_tui.service.alerts",
    "fleet_tui.remote.client",
    "fleet_tui.ui",
    "pydantic",
)


def python_of(tree: Path) -> str:
    venv = tree / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def empty_env(tmp: Path, label: str, bytecode: bool) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MOSAIC_", "TMUX", "XDG_", "FLEET_TUI_"))
        and k not in ("COLUMNS", "LINES")
    }
    home = tmp / "home"
    for sub in ("home", "config", "state", "data", "cache", "tmux"):
        (tmp / sub).mkdir(mode=0o700, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(tmp / "config"),
        XDG_STATE_HOME=str(tmp / "state"),
        XDG_DATA_HOME=str(tmp / "data"),
        XDG_CACHE_HOME=str(tmp / "cache"),
        TMUX_TMPDIR=str(tmp / "tmux"),
        COLUMNS="100",
    )
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pyc" / label)
    return env


def run_once(python: str, args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of one run; raises on a non-zero exit."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [python, *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else b""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{args} in {cwd}: exit {proc.returncode}: {err[-400:]!r}")
    return wall, usage.ru_utime + usage.ru_stime


def imports_of(python: str, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    res = subprocess.run(
        [python, "-X", "importtime", "-m", "fleet_tui", "ps", "--json"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    names = [
        line.split("|")[-1].strip()
        for line in res.stderr.splitlines()
        if line.startswith("import time:") and "|" in line and "cumulative" not in line
    ]
    ours = [n for n in names if n.startswith("fleet_tui")]
    loaded = set(names)
    return {
        "modules": len(names),
        "fleet_tui_modules": len(ours),
        "heavy": [m for m in HEAVY if m in loaded],
    }


REAL_SOCKETS = 10


def start_fleet(tmp: Path, n: int, env: dict[str, str]) -> tuple[Path, Path]:
    """N `sleep` sessions (agent0000..) over REAL_SOCKETS private sockets in `env`'s
    TMUX_TMPDIR (one tmux call a socket), a roster naming them, one fresh `busy` heartbeat
    each (the heartbeat v1 JSON, written directly: no fleet_tui import here)."""
    tmux = shutil.which("tmux") or "tmux"
    folder = Path(env["TMUX_TMPDIR"]) / f"tmux-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    by_sock: dict[str, list[str]] = {f"fleet{k}": [] for k in range(REAL_SOCKETS)}
    for i in range(n):
        by_sock[f"fleet{i % REAL_SOCKETS}"].append(f"agent{i:04d}")
    for sock, names in by_sock.items():
        argv = [tmux, "-S", str(folder / sock), "-f", "/dev/null"]
        for k, name in enumerate(names):
            argv += [";"] if k else []
            argv += ["new-session", "-d", "-s", name, "-x", "120", "-y", "40", "sleep", "3600"]
        if names:
            subprocess.run(argv, env=env, check=True, timeout=120, stdin=subprocess.DEVNULL)
    roster, state = tmp / "roster.yaml", tmp / "fleet-state"
    lines = [
        "version: 1",
        "tenant_id: bench",
        "host: bench",
        "heartbeat_timeout_s: 3600",
        "agents:",
    ]
    for sock, names in by_sock.items():
        for name in names:
            lines += [f"  - name: {name}", "    role: coder", f"    socket_name: {sock}"]
    roster.write_text("\n".join(lines) + "\n")
    beats = state / "heartbeats"
    beats.mkdir(parents=True, mode=0o700)
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for names in by_sock.values():
        for name in names:
            hb = {"v": 1, "tenant_id": "bench", "host": "bench", "agent": name, "seq": 1,
                  "ts": now, "interval_s": 3600, "state": "busy"}  # fmt: skip
            (beats / f"{name}.json").write_text(json.dumps(hb))
    return roster, state


def stop_fleet(env: dict[str, str]) -> None:
    tmux = shutil.which("tmux") or "tmux"
    folder = Path(env["TMUX_TMPDIR"]) / f"tmux-{os.getuid()}"
    for sock in sorted(folder.glob("fleet*")):
        subprocess.run([tmux, "-S", str(sock), "kill-server"], env=env, check=False,
                       capture_output=True, timeout=30)  # fmt: skip


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, default=Path("/work/i16_before"), help="baseline tree")
    ap.add_argument("--after", type=Path, default=REPO, help="tree under test (this one)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--no-bytecode", action="store_true", help="keep PYTHONDONTWRITEBYTECODE")
    ap.add_argument("--only", default=None, help="comma-separated command names to run")
    ap.add_argument(
        "--agents",
        type=int,
        default=0,
        help="a fleet of N sleep panes on 10 sockets, with roster and heartbeats (default: empty)",
    )
    args = ap.parse_args(argv)

    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    if not (trees["before"] / "fleet_tui").is_dir():
        print(f"no tree at {trees['before']}: comparing 'after' alone", file=sys.stderr)
        del trees["before"]
    commands = dict(COMMANDS)
    if args.only:
        keep = [c.strip() for c in args.only.split(",")]
        commands = {k: v for k, v in commands.items() if k in keep}
    tmp = Path(tempfile.mkdtemp(prefix="ftstart", dir="/tmp"))
    try:
        envs = {t: empty_env(tmp, t, not args.no_bytecode) for t in trees}
        if args.agents:
            roster, state = start_fleet(tmp, args.agents, envs["after"])
            for env in envs.values():
                env.update(MOSAIC_FLEET_ROSTER=str(roster), MOSAIC_FLEET_STATE_DIR=str(state))
        jobs = [
            (t, c) for t in trees for c in commands if not (c == "python -c pass" and t != "after")
        ]
        for t, c in jobs:  # warm-up: fills the bytecode cache, checks that each command works
            run_once(python_of(trees[t]), commands[c], trees[t], envs[t])
        walls: dict[tuple[str, str], list[float]] = {j: [] for j in jobs}
        cpus: dict[tuple[str, str], list[float]] = {j: [] for j in jobs}
        load0 = os.getloadavg()
        for r in range(args.rounds):
            order = jobs[r % len(jobs) :] + jobs[: r % len(jobs)]
            if r % 2:
                order.reverse()
            for t, c in order:
                wall, cpu = run_once(python_of(trees[t]), commands[c], trees[t], envs[t])
                walls[(t, c)].append(wall)
                cpus[(t, c)].append(cpu)
        load1 = os.getloadavg()
        imports = {t: imports_of(python_of(trees[t]), trees[t], envs[t]) for t in trees}
    finally:
        if args.agents:
            stop_fleet(envs["after"])
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for t, c in jobs:
        w, u = walls[(t, c)], cpus[(t, c)]
        rows.append(
            {
                "tree": t,
                "command": c,
                "median_ms": round(statistics.median(w) * 1000, 1),
                "p95_ms": round(pct(w, 0.95) * 1000, 1),
                "min_ms": round(min(w) * 1000, 1),
                "cpu_median_ms": round(statistics.median(u) * 1000, 1),
            }
        )
    by = {(r["tree"], r["command"]): r for r in rows}
    print(
        f"start-up, {f'{args.agents} agents' if args.agents else 'empty fleet'}: {args.rounds} rounds, bytecode "
        f"{'as the shell has it' if args.no_bytecode else 'cached'}; load average "
        f"{load0[0]:.2f} -> {load1[0]:.2f} ({os.cpu_count()} cores)"
    )
    print(f"{'tree':7} {'command':15} {'median':>8} {'p95':>8} {'min':>8} {'cpu':>8}  vs before")
    for r in rows:
        base = by.get(("before", r["command"]))
        ratio = (
            f"x{r['median_ms'] / base['median_ms']:.2f}"
            if base and r["tree"] == "after" and base["median_ms"]
            else ""
        )
        print(
            f"{r['tree']:7} {r['command']:15} {r['median_ms']:8.1f} {r['p95_ms']:8.1f} "
            f"{r['min_ms']:8.1f} {r['cpu_median_ms']:8.1f}  {ratio}"
        )
    for t, info in imports.items():
        print(
            f"{t}: ps --json imports {info['modules']} modules ({info['fleet_tui_modules']} of "
            f"fleet_tui); of the heavy ones: {', '.join(info['heavy']) or 'none'}"
        )
    after = by.get(("after", "ps --json"))
    if after and not args.agents:
        verdict = "met" if after["median_ms"] < GOAL_MS else "MISSED"
        print(f"goal ps --json < {GOAL_MS:.0f} ms (median wall): {verdict}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": platform.platform(),
                "python": platform.python_version(),
                "rounds": args.rounds,
                "agents": args.agents,
                "bytecode_cached": not args.no_bytecode,
                "loadavg": [load0, load1],
                "trees": {k: str(v) for k, v in trees.items()},
                "rows": rows,
                "imports": imports,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
