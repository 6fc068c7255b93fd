"""Benchmark: wall time of one hook run (`fleet-tui hook claude < payload`) against the start of a
bare Python (`python -c pass`), measured in the same run.

Run from the repository root:

    .venv/bin/python benchmarks/bench_hooks.py [--repeat 40]

Every measurement is a fresh process, started the way Claude Code starts a hook (a command with
the payload on stdin), timed from spawn to exit. The measurements alternate round by round (fair
against drift in machine load); the table shows medians and 90th percentiles:

| row | what |
|---|---|
| `python -c pass` | baseline: the interpreter alone (`-I` not used: site, as a hook gets) |
| `hook via cli` | `.venv/bin/fleet-tui hook claude --agent A` as it runs today: `cli.main` builds the whole parser first |
| `hook fast path` | the same hook through `cli_hooks.fast_main` (what `cli.main` runs once it dispatches `hook` before building the parser) |
| `hook fast + tmux` | the fast path finding the agent from `$TMUX_PANE` in a private tmux server (one `display-message`) |
| `statusline via cli` | `fleet-tui statusline` with unchanged windows (nothing appended: the common case) |
| `statusline fast` | the same through `fast_main` |

Nothing touches your own tmux servers or state: a private `TMUX_TMPDIR` and state dir under
/tmp, removed at the end (the tmux server is killed). Results go to benchmarks/results/hooks.json.
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

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "hooks.json"
PY = sys.executable
FLEET_TUI = str(Path(PY).parent / "fleet-tui")
FAST = (
    "import sys, fleet_tui.cli.main; from fleet_tui.cli.hooks import fast_main; "
    "sys.exit(fast_main(sys.argv[1:]))"
)
PAYLOAD = json.dumps(
    {
        "session_id": "0b6c",
        "transcript_path": "/w/app/t.jsonl",
        "cwd": "/w/app",
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "pytest -q"},
        "tool_use_id": "toolu_01",
    }
).encode()
STATUS = json.dumps(
    {
        "model": {"id": "claude-opus-4-7", "display_name": "Opus"},
        "context_window": {"used_percentage": 41},
        "rate_limits": {
            "five_hour": {"used_percentage": 37.5, "resets_at": 1781290000},
            "seven_day": {"used_percentage": 61.0, "resets_at": 1781730000},
        },
    }
).encode()


def timed(argv: list[str], stdin: bytes, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, capture_output=True, env=env, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or (proc.stderr and b"Traceback" in proc.stderr):
        raise SystemExit(f"{argv[:4]} failed: {proc.returncode} {proc.stderr[:300]!r}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=40)
    args = ap.parse_args()

    load = os.getloadavg()
    base = Path(tempfile.mkdtemp(prefix="fthb", dir="/tmp"))
    state = base / "state"
    tmux = shutil.which("tmux")
    sock = base / "tmux-bench"
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    env.update(MOSAIC_FLEET_STATE_DIR=str(state), TMUX_TMPDIR=str(base), HOME=str(base))
    env["MOSAIC_FLEET_ROSTER"] = str(base / "roster.yaml")
    (base / "roster.yaml").write_text("version: 1\ntenant_id: bench\nhost: h1\nagents: []\n")
    hook_args = ["hook", "claude", "--no-keepalive"]
    cases: dict[str, tuple[list[str], bytes, dict[str, str]]] = {
        "python -c pass": ([PY, "-c", "pass"], b"", env),
        "hook via cli": ([FLEET_TUI, *hook_args, "--agent", "bench"], PAYLOAD, env),
        "hook fast path": ([PY, "-c", FAST, *hook_args, "--agent", "bench"], PAYLOAD, env),
        "statusline via cli": ([FLEET_TUI, "statusline", "--account", "a"], STATUS, env),
        "statusline fast": ([PY, "-c", FAST, "statusline", "--account", "a"], STATUS, env),
    }
    try:
        if tmux:
            subprocess.run(
                [tmux, "-S", str(sock), "-f", "/dev/null", "new-session", "-d", "-s", "benchtmux"],
                env=env,
                check=True,
            )
            out = subprocess.run(
                [tmux, "-S", str(sock), "display-message", "-p", "-t", "=benchtmux:",
                 "#{pid},#{pane_id}"],
                env=env, capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            server_pid, pane = out.split(",")
            tenv = {**env, "TMUX": f"{sock},{server_pid},0", "TMUX_PANE": pane}
            cases["hook fast + tmux"] = ([PY, "-c", FAST, *hook_args], PAYLOAD, tenv)
        for argv, stdin, e in cases.values():  # warm the page cache and .pyc files
            timed(argv, stdin, e)
        times: dict[str, list[float]] = {name: [] for name in cases}
        names = list(cases)
        for r in range(args.repeat):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                argv, stdin, e = cases[name]
                times[name].append(timed(argv, stdin, e))
        hb = json.loads((state / "heartbeats" / "bench.json").read_text())
        assert hb["via"] == "hook:claude" and hb["state"] == "busy", hb
        if tmux:
            assert (state / "heartbeats" / "benchtmux.json").exists()
    finally:
        if tmux:
            subprocess.run(
                [tmux, "-S", str(sock), "kill-server"], env=env, capture_output=True, check=False
            )
        shutil.rmtree(base, ignore_errors=True)

    baseline = statistics.median(times["python -c pass"])
    rows = []
    print(f"load average before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f}")
    print(f"{'case':<20} {'median ms':>10} {'p90 ms':>8} {'x python':>9}")
    for name, values in times.items():
        med = statistics.median(values)
        p90 = sorted(values)[int(0.9 * (len(values) - 1))]
        rows.append({"case": name, "median_ms": med * 1000, "p90_ms": p90 * 1000,
                     "ratio_to_python": med / baseline})  # fmt: skip
        print(f"{name:<20} {med * 1000:>10.1f} {p90 * 1000:>8.1f} {med / baseline:>9.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "loadavg_before": load,
                "loadavg_after": os.getloadavg(),
                "repeat": args.repeat,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written to {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
