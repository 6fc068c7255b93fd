"""Memory soak of the dashboard: RSS over N minutes of focus changes and screen switches.

    .venv/bin/python benchmarks/bench_soak.py                                  # this tree, 10 min
    .venv/bin/python benchmarks/bench_soak.py --tree /work/i16_before --tree . # before and after
    .venv/bin/python benchmarks/bench_soak.py --minutes 2 --json               # a quick look

Issue 16's row "memory over a 10-minute soak of focus changes and screen switches: flat (within
5 MB)". Each tree runs as a real process in a window (160x48) of a private tmux server (its own
TMUX_TMPDIR, HOME and XDG dirs in a temporary folder; the user's servers and files are never
touched), with the tree's own interpreter (`TREE/.venv/bin/python`) and its `fleet_tui` first on
`sys.path`: `FleetApp` over the fixture fleet `fleet_tui.testing.fleets.big_snapshot(AGENTS)`,
whose clock moves on (ages tick, as dashboard_apps.py's `fleet --tick`), polled every 2 s, no tmux
fleet behind it (the figure is the dashboard's own memory). Several trees run AT THE SAME TIME,
one window each, driven in lockstep (the same key to each in turn), so they see the same machine.

The operator, through `tmux send-keys`, one key every `--pace` seconds (0.5 s), round after round:
`/` (focus to the filter box) `esc` (back to the table), `enter` (agent detail) `esc`,
`b` (budgets) `esc`, `?` (help) `esc`, `i` (inbox) `esc`, `m` (message dialog) `esc`, `down`
(the next agent, so the detail shows another one each round). The first round is checked from the
pane (each key changes what it shows) so a soak whose keys go nowhere is an error.

RSS (`VmRSS` of the app process, from /proc) is sampled every `--every` seconds (5 s). Reported
per tree: RSS at 1 min (after warm-up, the baseline), at the end, the growth between them, the
slope over that span (least squares, MB/min) and the peak. With `--objects`, the app writes
Python's live objects by type (after a gc) at 1 min and at the end (on SIGUSR1), and the types
that grew most are printed: what is left when RSS still climbs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
SIZE = (160, 48)
WARMUP_S = 60.0
GOAL_MB = 5.0
ROW_MARK = "agent000"
# (key for tmux send-keys, what it does); each opening key is followed by Escape
ROUND = [
    ("/", "filter"),
    ("Escape", "table"),
    ("Enter", "detail"),
    ("Escape", "fleet"),
    ("b", "budgets"),
    ("Escape", "fleet"),
    ("?", "help"),
    ("Escape", "fleet"),
    ("i", "inbox"),
    ("Escape", "fleet"),
    ("m", "message"),
    ("Escape", "fleet"),
    ("Down", "next agent"),
]


# -- inside the pane: the dashboard ------------------------------------------------------------


def serve(agents: int, tick: float, objects_path: str | None) -> int:
    from datetime import timedelta

    from fleet_tui.config.settings import DashboardSettings
    from fleet_tui.testing.fleets import NOW, FixedSource, RecordingActions, big_snapshot
    from fleet_tui.ui.app import FleetApp

    started = time.monotonic()

    def moving() -> object:  # the same fleet, seen later: ages and idle times grow
        return big_snapshot(agents, seed=1, now=NOW + timedelta(seconds=time.monotonic() - started))

    def clock() -> object:
        return NOW + timedelta(seconds=time.monotonic() - started)

    if objects_path:
        import gc
        from collections import Counter

        dumps = [0]

        def dump(signum: int, frame: object) -> None:
            gc.collect()
            counts = Counter(type(o).__qualname__ for o in gc.get_objects())
            dumps[0] += 1
            Path(f"{objects_path}.{dumps[0]}").write_text(json.dumps(counts))

        signal.signal(signal.SIGUSR1, dump)

    app = FleetApp(
        FixedSource(moving),  # type: ignore[arg-type]
        settings=DashboardSettings(poll_interval_s=tick),
        clock=clock,  # type: ignore[arg-type]
        watch=False,
        actions=RecordingActions(),  # type: ignore[arg-type]
    )
    app.run()
    return 0


# -- outside: the operator and the measures ----------------------------------------------------


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def slope_mb_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per minute."""
    if len(points) < 2:
        return 0.0
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return (
        60.0 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0
    )


def at(samples: list[tuple[float, float]], t: float) -> float:
    """The RSS sample nearest to t seconds."""
    return min(samples, key=lambda s: abs(s[0] - t))[1]


def soak(trees: list[Path], args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(HERE.parent))
    from _lab import TmuxLab

    lab = TmuxLab("fsk")
    tmp = Path(lab.tmp)
    for d in ("home", "config", "state", "cache", "data"):
        (tmp / d).mkdir()
    lab.env.update(
        {
            "HOME": str(tmp / "home"),
            "XDG_CONFIG_HOME": str(tmp / "config"),
            "XDG_STATE_HOME": str(tmp / "state"),
            "XDG_CACHE_HOME": str(tmp / "cache"),
            "XDG_DATA_HOME": str(tmp / "data"),
        }
    )
    conf = tmp / "ui.conf"
    conf.write_text(
        "set -g default-terminal tmux-256color\n"
        f"set -g default-size {SIZE[0]}x{SIZE[1]}\n"
        "set -gw remain-on-exit on\n"
        "set -g status off\n"
        "set -g escape-time 0\n"
    )
    lab.sockets.add(lab.ui_sock)
    runs: list[dict[str, Any]] = []
    try:
        lab.run(lab.ui_sock, "-f", str(conf), "new-session", "-d", "-s", "ui", "-n", "idle",
                "-x", str(SIZE[0]), "-y", str(SIZE[1]), "sleep", "86400")  # fmt: skip
        for i, tree in enumerate(trees):
            python = tree / ".venv" / "bin" / "python"
            if not python.exists():
                python = Path(sys.executable)
            objects = str(tmp / f"objects{i}") if args.objects else ""
            argv = [
                "env", f"PYTHONPATH={tree}", f"FLEET_BENCH_TREE={tree}",
                str(python), str(HERE), "--serve", "--agents", str(args.agents),
                "--tick", str(args.tick), *(["--objects-path", objects] if objects else []),
            ]  # fmt: skip
            res = lab.run(
                lab.ui_sock, "new-window", "-d", "-P", "-F", "#{pane_id}",
                "-t", "=ui:", "-n", f"t{i}", *argv,
            )  # fmt: skip
            pane = res.stdout.strip()
            runs.append({"tree": str(tree), "pane": pane, "objects": objects, "samples": []})
        # the app process: `env` execs python, so the pane's pid is the app's
        for run in runs:
            out = lab.run(lab.ui_sock, "display-message", "-p", "-t", run["pane"], "#{pane_pid}")
            run["pid"] = int(out.stdout.strip())
            lab.pids.add(run["pid"])
        deadline = time.monotonic() + 60
        for run in runs:
            while ROW_MARK not in lab.capture(run["pane"]):
                if time.monotonic() > deadline:
                    tail = lab.capture(run["pane"]).strip().splitlines()[-5:]
                    raise RuntimeError(f"{run['tree']}: no fleet after 60 s: {tail}")
                time.sleep(0.1)
        time.sleep(2.0)

        total = args.minutes * 60.0
        t0 = time.monotonic()
        next_sample = 0.0
        step = 0
        rounds = 0
        checked = False
        dumped_start = False
        while (now := time.monotonic() - t0) < total:
            if now >= next_sample:
                for run in runs:
                    run["samples"].append((round(now, 1), rss_kb(run["pid"]) / 1024))
                next_sample += args.every
            if args.objects and not dumped_start and now >= WARMUP_S:
                for run in runs:
                    os.kill(run["pid"], signal.SIGUSR1)
                dumped_start = True
            key, what = ROUND[step % len(ROUND)]
            before = [lab.capture(r["pane"]) for r in runs] if not checked else []
            for run in runs:
                lab.run(lab.ui_sock, "send-keys", "-t", run["pane"], key)
            if not checked:  # the first round: every key must change the screen
                for run, seen in zip(runs, before, strict=True):
                    limit = time.monotonic() + 10
                    while lab.capture(run["pane"]) == seen:
                        if time.monotonic() > limit:
                            raise RuntimeError(f"{run['tree']}: {key!r} ({what}) changed nothing")
                        time.sleep(0.05)
            step += 1
            if step % len(ROUND) == 0:
                rounds += 1
                checked = True
            time.sleep(args.pace)
        for run in runs:
            run["samples"].append((round(time.monotonic() - t0, 1), rss_kb(run["pid"]) / 1024))
            if args.objects:
                os.kill(run["pid"], signal.SIGUSR1)
        time.sleep(3.0 if args.objects else 0.0)
    finally:
        for run in runs:
            run["grew"] = _grown_types(run["objects"]) if run.get("objects") else []
        lab.cleanup()

    out: dict[str, Any] = {
        "minutes": args.minutes, "pace_s": args.pace, "agents": args.agents, "tick_s": args.tick,
        "keys": step, "rounds": rounds, "load": os.getloadavg(), "trees": [],
    }  # fmt: skip
    for run in runs:
        samples = run["samples"]
        end_t = samples[-1][0]
        base_t = min(WARMUP_S, end_t / 2)  # a quick run: the middle stands for the 1-minute mark
        span = [s for s in samples if s[0] >= base_t]
        base, end = at(samples, base_t), samples[-1][1]
        out["trees"].append(
            {
                "tree": run["tree"],
                "rss_start_mb": round(samples[0][1], 1),
                "baseline_at_s": round(base_t),
                "rss_baseline_mb": round(base, 1),
                "rss_end_mb": round(end, 1),
                "growth_mb": round(end - base, 1),
                "slope_mb_per_min": round(slope_mb_per_min(span), 2),
                "peak_mb": round(max(s[1] for s in samples), 1),
                "flat": abs(end - base) <= GOAL_MB,
                "grew": run["grew"],
                "samples": samples if args.samples else None,
            }
        )
    return out


def _grown_types(path: str, top: int = 12) -> list[tuple[str, int, int]]:
    try:
        first = json.loads(Path(f"{path}.1").read_text())
        last = json.loads(Path(f"{path}.2").read_text())
    except (OSError, ValueError):
        return []
    rows = [(name, first.get(name, 0), n) for name, n in last.items()]
    rows.sort(key=lambda r: r[2] - r[1], reverse=True)
    return [r for r in rows[:top] if r[2] > r[1]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--tree", action="append", type=Path, help="tree to soak (repeatable)")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--pace", type=float, default=0.5, help="seconds between keys")
    p.add_argument("--every", type=float, default=5.0, help="seconds between RSS samples")
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--tick", type=float, default=2.0, help="poll interval of the dashboard")
    p.add_argument("--objects", action="store_true", help="types that grew, from inside")
    p.add_argument("--samples", action="store_true", help="keep every RSS sample in --json")
    p.add_argument("--json", action="store_true")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--objects-path", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        tree = os.environ.get("FLEET_BENCH_TREE")
        if tree:
            sys.path.insert(0, tree)
        return serve(args.agents, args.tick, args.objects_path or None)

    trees = [t.resolve() for t in (args.tree or [REPO])]
    out = soak(trees, args)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    load = " ".join(f"{x:.2f}" for x in out["load"])
    print(
        f"soak: {out['minutes']:g} min, {out['rounds']} rounds, {out['keys']} keys "
        f"(one every {out['pace_s']:g} s), {out['agents']} agents polled every "
        f"{out['tick_s']:g} s, trees side by side; load average at the end {load}"
    )
    for t in out["trees"]:
        print(
            f"  {t['tree']}: RSS {t['rss_start_mb']} MB at start, {t['rss_baseline_mb']} MB at "
            f"{t['baseline_at_s']} s, {t['rss_end_mb']} MB at the end: {t['growth_mb']:+} MB "
            f"({t['slope_mb_per_min']:+} MB/min), peak {t['peak_mb']} MB; "
            f"{'flat' if t['flat'] else 'NOT flat'} (goal: within {GOAL_MB:g} MB)"
        )
        for name, a, b in t["grew"]:
            print(f"      {name}: {a} -> {b} (+{b - a})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
