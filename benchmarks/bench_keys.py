"""Key-to-screen latency of the dashboard: `enter`, `/`, `?`, `ctrl+p` on a 300-agent fleet.

    .venv/bin/python benchmarks/bench_keys.py                         # this tree, 30 presses
    .venv/bin/python benchmarks/bench_keys.py --tree /work/i14_before --tree .   # before, after

Each tree runs with its OWN interpreter (`TREE/.venv/bin/python`, this script handed to it, the
tree's `fleet_tui` first on `sys.path`); trees take turns round by round, so both see the same
machine. In each, a `FleetApp` on the fixture fleet (`fleet_tui.testing.fleets.big_snapshot(300)`,
`FixedSource`, no polling, no tmux) runs headless under Textual's Pilot at 160x48. One press is
timed from just before `pilot.press(key)` until the screen the key opens is there and drawn:

- `enter`: the agent detail screen is the current screen;
- `/`: the filter box has the focus;
- `?`: the help screen is the current screen;
- `ctrl+p`: the command palette is up and its list shows commands;

then until a pause of the loop draws no more frames (each frame encoded as a terminal would get
it, as in bench_dashboard.py). `esc` (not timed) goes back and the next press starts from a
settled fleet screen. Prints median and p95 per key and tree (ms); `--json` prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
KEYS = ("enter", "slash", "question_mark", "ctrl+p")
LABEL = {"enter": "enter", "slash": "/", "question_mark": "?", "ctrl+p": "ctrl+p"}
GOAL_MS = 100.0


# -- inside one tree ---------------------------------------------------------------------------


def _opened(app: Any, key: str) -> bool:
    screen = app.screen
    name = type(screen).__name__
    if key == "enter":
        return name == "AgentDetailScreen"
    if key == "question_mark":
        return name == "HelpScreen"
    if key == "slash":
        focused = app.focused
        return focused is not None and focused.id == "filter"
    if key == "ctrl+p":
        if "CommandPalette" not in name:
            return False
        from textual.command import CommandList

        try:
            return screen.query_one(CommandList).option_count > 0
        except Exception:
            return False
    raise ValueError(key)


class FrameCounter:
    """Counts the frames the compositor hands to the driver and encodes each one as a terminal
    would get it (bench_dashboard.py's, copied: importing that module would put THIS tree's
    `fleet_tui` first on `sys.path`)."""

    def __init__(self, app: Any) -> None:
        from textual._compositor import CompositorUpdate

        self.frames = 0
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            if renderable is not None and not app._batch_count:
                if isinstance(renderable, CompositorUpdate):
                    renderable.render_segments(app.console)
                self.frames += 1
            original(screen, renderable)

        app._display = display


def _dirty(app: Any) -> bool:
    screen = app.screen
    return bool(
        getattr(screen, "_dirty_widgets", None)
        or getattr(screen, "_layout_required", False)
        or getattr(screen, "_repaint_required", False)
        or getattr(screen, "_scroll_required", False)
    )


async def until_drawn(pilot: Any, counter: FrameCounter) -> None:
    """Let the app process what was posted and draw, until a pause draws nothing more."""
    for _ in range(20):
        before = counter.frames
        await pilot.pause()
        if counter.frames == before and not _dirty(pilot.app):
            break


CHARACTER = {"enter": "\r", "slash": "/", "question_mark": "?", "ctrl+p": "\x10"}


async def _press_and_wait(app: Any, counter: FrameCounter, key: str) -> float:
    """Seconds from posting `key` (as the driver does) until its screen is there and a frame
    showing it has gone out with nothing left to draw. Polls every millisecond: no Pilot
    pause in the timed part (each one waits for the process to idle, ~20 ms or more)."""
    from textual import events

    frames = counter.frames
    t0 = time.perf_counter()
    app.post_message(events.Key(key, CHARACTER[key]))
    deadline = t0 + 30.0
    while time.perf_counter() < deadline:
        await asyncio.sleep(0.001)
        # opened, drawn since the press, nothing left to draw (an opened screen is dirty until
        # its first frame went out)
        if _opened(app, key) and counter.frames > frames and not _dirty(app):
            return time.perf_counter() - t0
    raise RuntimeError(f"{key} never opened its screen")


async def _measure(n: int, agents: int) -> dict[str, list[float]]:
    import fleet_tui

    assert Path(fleet_tui.__file__).resolve().is_relative_to(Path.cwd().resolve()), (
        f"fleet_tui from {fleet_tui.__file__}, not from {Path.cwd()}"
    )
    from fleet_tui.config.settings import DashboardSettings
    from fleet_tui.testing.fleets import NOW, FixedSource, big_snapshot
    from fleet_tui.ui.app import FleetApp

    snapshot = big_snapshot(agents, seed=1)
    app = FleetApp(
        FixedSource(snapshot),
        settings=DashboardSettings(poll_interval_s=3600),
        clock=lambda: NOW,
        poll=False,
        watch=False,
    )
    out: dict[str, list[float]] = {k: [] for k in KEYS}
    async with app.run_test(size=(160, 48)) as pilot:
        counter = FrameCounter(app)
        app.apply_snapshot(snapshot)
        await until_drawn(pilot, counter)
        for _round in range(n + 2):  # the first two presses warm up (imports, first compose)
            for key in KEYS:
                await until_drawn(pilot, counter)
                took = await _press_and_wait(app, counter, key)
                if _round >= 2:
                    out[key].append(took * 1000.0)
                for _ in range(10):  # back to a settled fleet screen
                    if app.screen is app.fleet_screen and not _opened(app, "slash"):
                        break
                    await pilot.press("escape")
                    await pilot.pause()
                await until_drawn(pilot, counter)
    return out


def inner(n: int, agents: int) -> int:
    samples = asyncio.run(_measure(n, agents))
    sys.stdout.write(json.dumps(samples) + "\n")
    return 0


# -- the driver ------------------------------------------------------------------------------


def run_tree(tree: Path, n: int, agents: int) -> dict[str, list[float]]:
    python = tree / ".venv" / "bin" / "python"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    env.pop("TMUX", None)
    res = subprocess.run(
        [str(python), str(HERE), "--inner", "--n", str(n), "--agents", str(agents)],
        cwd=str(tree),
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if res.returncode != 0:
        raise RuntimeError(f"{tree}: exit {res.returncode}\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--tree", action="append", default=[], help="a checkout with its .venv")
    p.add_argument("--n", type=int, default=30, help="timed presses per key and tree")
    p.add_argument("--rounds", type=int, default=2, help="turns per tree (presses split)")
    p.add_argument("--agents", type=int, default=300)
    p.add_argument("--json", action="store_true")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.inner:
        return inner(args.n, args.agents)
    trees = [Path(t).resolve() for t in (args.tree or [str(HERE.parent.parent)])]
    per_round = max(1, args.n // args.rounds)
    results: dict[str, dict[str, list[float]]] = {str(t): {k: [] for k in KEYS} for t in trees}
    for _ in range(args.rounds):
        for tree in trees:
            got = run_tree(tree, per_round, args.agents)
            for k in KEYS:
                results[str(tree)][k] += got[k]
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"key-to-screen, {args.agents} agents, 160x48, ms (median / p95 of n presses)")
    print(f"{'tree':<28} " + " ".join(f"{LABEL[k]:>15}" for k in KEYS))
    for tree, res in results.items():
        cells = [
            f"{statistics.median(res[k]):7.1f} /{p95(res[k]):6.1f}" if res[k] else "-" for k in KEYS
        ]
        print(f"{tree[-28:]:<28} " + " ".join(f"{c:>15}" for c in cells))
    n = len(next(iter(results.values()))[KEYS[0]])
    print(f"n = {n} per key and tree; goal: under {GOAL_MS:.0f} ms each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
