"""Benchmark: what the dashboard costs against a stock Textual DataTable, in the same run.

Run from the repository root:

    .venv/bin/python benchmarks/bench_dashboard.py [--quick] [--only updates,idle,startup]

Three figures, each against a baseline built in the same run from the same data (the fixture
fleet `big_snapshot`, the column strings of `fleet_tui.present.columns.COLUMNS`):

1. updates: main-thread CPU (`time.thread_time()`) of ONE table update with its repaint, in a
   160x48 headless app (`App.run_test`), median over many updates: 300 agents of which 30 changed
   (random rows; all off-screen; all 300), and a sort. FleetTable (`set_records`, and the whole
   `FleetApp.apply_snapshot` path) against a stock `DataTable` updated in place with
   `update_cell(row_key, col_key, Text)` inside `app.batch_update()`.
2. idle: CPU of the whole dashboard (`python -m fleet_tui`) watching a REAL fleet of 50 stub
   agents (`fleet-tui stub NAME --interval 10`) on a private tmux socket, at the default poll
   (2 s), read from /proc/PID/stat over a window, from outside the process. Measured over the
   same window: a stock-DataTable app showing the same 50 rows whose age cells tick every 2 s,
   and FleetApp on the fixture (no tmux) polling every 2 s.
3. startup: time from launching the process in a 160x48 tmux pane to the first screen that shows
   an agent row (`capture-pane -p` polled every 10 ms), 300 agents: FleetApp on the fixture against
   the DataTable app on the same fixture.

Every tmux server runs on a socket inside a temporary folder (`/tmp/ftdXXXX`, `TMUX` unset), so
the user's own servers are never touched. On exit (Ctrl-C and SIGTERM included) every server and
process it started is stopped and the folder removed. Results: benchmarks/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# `--tree PATH` re-runs this script with PATH's interpreter and PATH's `fleet_tui` (before/after
# comparisons: the same benchmark code measures both trees); the tree is handed down in this
# variable.
TREE = Path(os.environ.get("FLEET_BENCH_TREE") or REPO).resolve()
sys.path.insert(0, str(TREE))
from _lab import TmuxLab, cpu_ticks, fresh_bytecode, rss_kb  # noqa: E402

from fleet_tui.sources.procs import pid_alive  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "dashboard.json"
APPS = REPO / "benchmarks" / "dashboard_apps.py"
SIZE = (160, 48)
N_UPDATE = 300
N_CHANGED = 30
N_IDLE = 50
N_START = 300
GOAL_UPDATE_MS = 16.0
GOAL_IDLE_PCT = 2.0
GOAL_START_S = 1.0
GOAL_RSS_MB = 150.0
ROW_MARK = "agent000"  # the first row of the fixture fleet and of the live fleet
# any agent row (at 1,000 agents the urgency order does not put agent000 on the first screen)
ROW_RE = re.compile(r"\bagent\d{3}\b")


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def med(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


# =============================================================================================
# 1. One table update, in-process, headless
# =============================================================================================

CASES = ("random30", "offscreen30", "all300", "sort")
CASE_LABEL = {
    "noop": "no update (the measuring floor)",
    "random30": "30 of {n} rows changed (random)",
    "offscreen30": "30 of {n} changed, all off-screen",
    "all300": "all {n} rows changed",
    "sort": "sort by name (flip order)",
    "dashboard30": "30 changed, whole apply_snapshot",  # after the poll thread's prepare
    "dashboardall": "all {n} changed, whole apply_snapshot",  # a real poll: every age moved
}
DASHBOARD_CASES = ("dashboard30", "dashboardall")


class FrameCounter:
    """Wraps `app._display`: counts the frames the compositor hands to the driver and, since the
    headless driver writes nothing, encodes each one as a terminal would get it (the cost of
    `render_segments`, which a real terminal pays, stays in the measurement)."""

    def __init__(self, app: Any) -> None:
        from textual._compositor import CompositorUpdate

        self.frames = 0
        self.app = app
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


async def until_drawn(pilot: Any, counter: FrameCounter) -> int:
    """Let the app process what was posted and draw, until a pause draws nothing more."""
    pauses = 0
    for _ in range(20):
        before = counter.frames
        await pilot.pause()
        pauses += 1
        if counter.frames == before and not _dirty(pilot.app):
            break
    return pauses


def changed_records(records: list[Any], indices: list[int], k: int) -> list[Any]:
    """The same fleet with new heartbeat age, state and CPU in the rows at `indices` (values
    chosen so no column changes width: the update repaints rows, not the layout)."""
    from fleet_tui.model.records import AgentState

    states = list(AgentState)
    out = list(records)
    for j, i in enumerate(indices):
        r = out[i]
        hb = r.heartbeat.model_copy(
            update={
                "age_s": float((int(r.heartbeat.age_s) + 1 + k + j) % 20),
                "state": states[(states.index(r.heartbeat.state) + 1 + k) % len(states)],
            }
        )
        proc = r.process.model_copy(update={"cpu_percent": float((k * 7 + j) % 50) + 0.5})
        out[i] = r.model_copy(update={"heartbeat": hb, "process": proc})
    return out


def pick(case: str, rng: random.Random, n: int) -> list[int]:
    if case == "random30":
        return sorted(rng.sample(range(n), N_CHANGED))
    if case in ("offscreen30", "dashboard30"):
        lo = 100 if case == "offscreen30" else 0
        return sorted(rng.sample(range(lo, n), N_CHANGED))
    if case in ("all300", "dashboardall"):
        return list(range(n))
    return []


class UpdateTarget:
    """One app under test: applies an update (records in display order) or a sort."""

    name = ""
    cases: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.app: Any = None

    def make_app(self, snapshot: Any) -> Any:
        raise NotImplementedError

    async def setup(self, pilot: Any) -> None:
        return None

    def prepare(self, records: list[Any], case: str) -> None:
        """Work done before the clock starts (building the snapshot an update hands over)."""
        return None

    def update(self, records: list[Any], case: str) -> None:
        raise NotImplementedError

    def sort(self, reverse: bool, records: list[Any]) -> None:
        raise NotImplementedError

    def rendered(self) -> int:
        return 0


class FleetTarget(UpdateTarget):
    name = "FleetTable"
    cases = ("noop", *CASES[:3], *DASHBOARD_CASES, "sort")

    def make_app(self, snapshot: Any) -> Any:
        from fleet_tui.config.settings import DashboardSettings
        from fleet_tui.testing.fleets import NOW, FixedSource
        from fleet_tui.ui.app import FleetApp

        self.snapshot = snapshot
        self.app = FleetApp(
            FixedSource(snapshot),
            settings=DashboardSettings(poll_interval_s=3600),
            clock=lambda: NOW,
            poll=False,
            watch=False,
        )
        return self.app

    async def setup(self, pilot: Any) -> None:
        from fleet_tui.ui.widgets import FleetTable

        self.prepare_cpu: dict[str, list[float]] = {c: [] for c in DASHBOARD_CASES}
        self.shown_records: list[Any] = list(self.snapshot.agents)
        self.app.apply_snapshot(self.snapshot)
        self.table = self.app.fleet_screen.query_one(FleetTable)
        self.layouts = self.table._layout_version

    def update(self, records: list[Any], case: str) -> None:
        if case in DASHBOARD_CASES:
            self.app.apply_snapshot(self.pending_snapshot)
        else:
            self.table.set_records(records)
        self.shown_records = records

    def prepare(self, records: list[Any], case: str) -> None:
        if case in DASHBOARD_CASES:
            self.pending_snapshot = self.snapshot.model_copy(update={"agents": records})
            # What the poll thread does as the poll ends (FleetApp.prepare_snapshot), off the
            # event loop: timed apart, not part of the update's main-thread CPU. First, untimed,
            # for the records shown now (the cases between were given to the table alone), so
            # the timed one follows the poll before it, as at a real poll.
            prepare = getattr(self.app, "prepare_snapshot", None)  # (a tree from before it)
            if prepare is not None:
                prepare(self.snapshot.model_copy(update={"agents": self.shown_records}))
                t0 = time.thread_time()
                prepare(self.pending_snapshot)
                self.prepare_cpu[case].append(time.thread_time() - t0)

    def sort(self, reverse: bool, records: list[Any]) -> None:
        from fleet_tui.present.columns import COLUMNS_BY_KEY

        # What FleetScreen.refresh_view does on a sort key: sort the records, hand them over.
        shown = sorted(records, key=COLUMNS_BY_KEY["agent"].sort_key, reverse=reverse)
        self.table.sort_key, self.table.sort_reverse = "agent", reverse
        self.table.set_records(shown)

    def rendered(self) -> int:
        return int(self.table.rows_rendered)


class DataTableTarget(UpdateTarget):
    name = "DataTable"
    cases = ("noop", *CASES)

    def make_app(self, snapshot: Any) -> Any:
        from rich.text import Text
        from textual.app import App, ComposeResult
        from textual.widgets import DataTable

        from fleet_tui.core.sanitize import clean_text
        from fleet_tui.present.columns import COLUMNS, visible_columns

        records = list(snapshot.agents)
        columns = visible_columns(records, COLUMNS)
        self.columns = columns
        self.cells: dict[str, list[str]] = {}
        target = self

        class DataTableApp(App[None]):
            def compose(self) -> ComposeResult:
                yield DataTable(id="table", cursor_type="row")

            def on_mount(self) -> None:
                table = self.query_one(DataTable)
                for c in columns:
                    table.add_column(c.title, key=c.key)
                for r in records:
                    cells = [clean_text(c.cell(r)) for c in columns]
                    target.cells[r.key] = cells
                    table.add_row(*[Text(s) for s in cells], key=r.key)
                table.focus()

        self.Text = Text
        self.clean_text = clean_text
        self.app = DataTableApp()
        return self.app

    async def setup(self, pilot: Any) -> None:
        from textual.widgets import DataTable

        self.table = self.app.query_one(DataTable)

    def update(self, records: list[Any], case: str) -> None:
        # The dolphie way: compute every row's cells, update in place the cells that differ.
        table, cols, text, clean = self.table, self.columns, self.Text, self.clean_text
        with self.app.batch_update():
            for r in records:
                new = [clean(c.cell(r)) for c in cols]
                old = self.cells[r.key]
                if new != old:
                    for c, a, b in zip(cols, old, new, strict=True):
                        if a != b:
                            table.update_cell(r.key, c.key, text(b))
                    self.cells[r.key] = new

    def sort(self, reverse: bool, records: list[Any]) -> None:
        with self.app.batch_update():
            self.table.sort("agent", key=lambda t: t.plain, reverse=reverse)


async def _session(target: Any, snapshot: Any, repeat: int, seed: int) -> dict[str, Any]:
    app = target.make_app(snapshot)
    samples: dict[str, list[float]] = {c: [] for c in target.cases}
    walls: dict[str, list[float]] = {c: [] for c in target.cases}
    repaint_rows: dict[str, list[int]] = {c: [] for c in target.cases}
    frames: dict[str, list[int]] = {c: [] for c in target.cases}
    async with app.run_test(size=SIZE) as pilot:
        counter = FrameCounter(app)
        await target.setup(pilot)
        for _ in range(3):
            await until_drawn(pilot, counter)
        records = list(snapshot.agents)
        rng = random.Random(seed)
        plain = [c for c in target.cases if c != "sort"]
        k = 0
        for r in range(repeat):
            order = plain[r % len(plain) :] + plain[: r % len(plain)]
            for case in order:
                k += 1
                indices = pick(case, rng, len(records))
                new = changed_records(records, indices, k) if indices else records
                target.prepare(new, case)
                await until_drawn(pilot, counter)
                rows0, f0 = target.rendered(), counter.frames
                w0 = time.perf_counter()
                t0 = time.thread_time()
                if case != "noop":
                    target.update(new, case)
                await until_drawn(pilot, counter)
                samples[case].append(time.thread_time() - t0)
                walls[case].append(time.perf_counter() - w0)
                repaint_rows[case].append(target.rendered() - rows0)
                frames[case].append(counter.frames - f0)
                records = new
        if "sort" in target.cases:
            for r in range(repeat):
                await until_drawn(pilot, counter)
                rows0, f0 = target.rendered(), counter.frames
                w0 = time.perf_counter()
                t0 = time.thread_time()
                target.sort(r % 2 == 0, records)
                await until_drawn(pilot, counter)
                samples["sort"].append(time.thread_time() - t0)
                walls["sort"].append(time.perf_counter() - w0)
                repaint_rows["sort"].append(target.rendered() - rows0)
                frames["sort"].append(counter.frames - f0)
        extra: dict[str, Any] = {}
        if isinstance(target, FleetTarget):
            extra["layout_changes"] = target.table._layout_version - target.layouts
            extra["prepare_cpu"] = target.prepare_cpu
        await pilot.pause()
    return {
        "cpu": samples,
        "wall": walls,
        "rows_rendered": repaint_rows,
        "frames": frames,
        **extra,
    }


def measure_updates(repeat: int) -> dict[str, Any]:
    """Sessions F D D F (each half the repeats), so drift in machine load hits both widgets."""
    from fleet_tui.testing.fleets import big_snapshot

    snapshot = big_snapshot(N_UPDATE, seed=1)
    assert len(snapshot.agents) == N_UPDATE
    half = max(repeat // 2, 1)
    merged: dict[str, dict[str, Any]] = {}
    layout_changes = 0
    prepare_cpu: dict[str, list[float]] = {c: [] for c in DASHBOARD_CASES}
    for i, cls in enumerate((FleetTarget, DataTableTarget, DataTableTarget, FleetTarget)):
        target = cls()
        print(f"   session {i + 1}/4: {target.name}, {half} updates per case", flush=True)
        res = asyncio.run(_session(target, snapshot, half, seed=100 + i // 2))
        layout_changes += res.get("layout_changes", 0)
        for case, values in res.get("prepare_cpu", {}).items():
            prepare_cpu[case] += values
        into = merged.setdefault(
            target.name, {"cpu": {}, "wall": {}, "rows_rendered": {}, "frames": {}}
        )
        for kind in ("cpu", "wall", "rows_rendered", "frames"):
            for case, values in res[kind].items():
                into[kind].setdefault(case, []).extend(values)
    out: dict[str, Any] = {
        "repeat": 2 * half,
        "fleet_layout_changes": layout_changes,
        # the dashboard cases: the poll thread's share (FleetApp.prepare_snapshot), off the
        # event loop
        "dashboard30_poll_thread_ms": ms(med(prepare_cpu["dashboard30"])),
        "dashboardall_poll_thread_ms": ms(med(prepare_cpu["dashboardall"])),
        "cases": {},
    }
    for case in ("noop", *CASES[:3], *DASHBOARD_CASES, "sort"):
        row: dict[str, Any] = {"label": CASE_LABEL[case].format(n=N_UPDATE)}
        for name in ("FleetTable", "DataTable"):
            d = merged[name]
            if case not in d["cpu"]:
                continue
            row[name] = {
                "cpu_ms": ms(med(d["cpu"][case])),
                "cpu_min_ms": ms(min(d["cpu"][case])),
                "wall_ms": ms(med(d["wall"][case])),
                "frames": med(d["frames"][case]),
                "rows_rendered": med(d["rows_rendered"][case]) if name == "FleetTable" else None,
            }
        dt_case = {"dashboard30": "random30", "dashboardall": "all300"}.get(case, case)
        if "FleetTable" in row and dt_case in merged["DataTable"]["cpu"]:
            dt = ms(med(merged["DataTable"]["cpu"][dt_case]))
            row["vs_case"] = dt_case
            row["ratio_datatable_over_fleet"] = round(
                dt / max(row["FleetTable"]["cpu_ms"], 0.01), 1
            )
        out["cases"][case] = row
    return out


# =============================================================================================
# tmux plumbing for 2. and 3.
# =============================================================================================


class Lab(TmuxLab):
    """A temporary TMUX_TMPDIR with the fleet's socket (`fleet`, found by the dashboard) and the
    socket of the terminal panes the apps run in (`ui`, outside the folder the dashboard scans)."""

    def __init__(self) -> None:
        super().__init__("ftd")
        self.ui_started = False
        if TREE != REPO:  # every process runs the tree under test (--tree)
            self.python = str(TREE / ".venv" / "bin" / "python")
            self.env["PYTHONPATH"] = str(TREE)

    def start_ui(self) -> None:
        """The terminal server: every window 160x48, truecolor, panes kept after exit."""
        if self.ui_started:
            return
        conf = Path(self.tmp) / "ui.conf"
        conf.write_text(
            "set -g default-terminal tmux-256color\n"
            f"set -g default-size {SIZE[0]}x{SIZE[1]}\n"
            "set -gw remain-on-exit on\n"
            "set -g status off\n"
        )
        self.sockets.add(self.ui_sock)
        self.run(self.ui_sock, "-f", str(conf), "new-session", "-d", "-s", "ui", "-n", "idle",
                 "-x", str(SIZE[0]), "-y", str(SIZE[1]), "sleep", "3600")  # fmt: skip
        self.ui_started = True

    def launch(self, argv: list[str], name: str, cwd: Path = TREE) -> tuple[int, str]:
        """Start argv in a new 160x48 window of the ui server, in `cwd`; (pid, pane id).
        The folder matters: `python -m fleet_tui` puts its working folder first on sys.path,
        so a pane started in this checkout would run this checkout's fleet_tui whatever the
        interpreter and PYTHONPATH (a `--tree` run measured this tree twice)."""
        self.start_ui()
        res = self.run(
            self.ui_sock, "new-window", "-d", "-P", "-F", "#{pane_pid} #{pane_id}",
            "-c", str(cwd), "-t", "=ui:", "-n", name, *argv,
        )  # fmt: skip
        pid_s, pane = res.stdout.split()
        pid = int(pid_s)
        self.pids.add(pid)
        return pid, pane

    def pane_size(self, pane: str) -> str:
        return self.run(
            self.ui_sock, "display-message", "-p", "-t", pane, "#{pane_width}x#{pane_height}"
        ).stdout.strip()

    def close(self, pid: int, pane: str) -> None:
        self.run(self.ui_sock, "kill-pane", "-t", pane, check=False)
        self.wait_gone([pid])

    # -- the live fleet ------------------------------------------------------------------
    def start_fleet(self, n: int) -> tuple[Path, Path]:
        import yaml

        from fleet_tui.control.panes import new_agent_session
        from fleet_tui.sources.spool import HeartbeatSpool
        from fleet_tui.tmux import TmuxRunner

        home = Path(self.tmp) / "fleet"
        roster, state = home / "roster.yaml", home / "state"
        names = [f"agent{i:03d}" for i in range(n)]
        doc = {
            "version": 1,
            "tenant_id": "bench",
            "host": socket.gethostname(),
            "socket_name": "fleet",
            "heartbeat_timeout_s": 30,
            "agents": [
                {
                    "name": name,
                    "role": ("orchestrator", "enhancer")[i] if i < 2 else "coder",
                    "runtime": "stub",
                    "model": "sonnet",
                }
                for i, name in enumerate(names)
            ],
        }
        home.mkdir(parents=True)
        roster.write_text(yaml.safe_dump(doc, sort_keys=False))
        HeartbeatSpool(state).ensure_writable()
        runner = TmuxRunner(tmpdir=self.tmp, env=self.env)
        self.sockets.add(runner.socket_path("fleet"))
        env = {
            "MOSAIC_FLEET_ROSTER": str(roster),
            "MOSAIC_FLEET_STATE_DIR": str(state),
            "PYTHONUNBUFFERED": "1",
        }
        for name in names:
            argv = [self.python, "-m", "fleet_tui", "stub", name, "--interval", "10"]
            new_agent_session(runner, "fleet", name, argv, env=env, cwd=str(home))
        spool = HeartbeatSpool(state)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if all(spool.heartbeat_path(name).exists() for name in names):
                break
            time.sleep(0.2)
        else:
            missing = sum(1 for name in names if not spool.heartbeat_path(name).exists())
            print(f"   warning: {missing}/{n} stubs have not written a heartbeat", flush=True)
        return roster, state


def first_paint(
    lab: Lab, argv: list[str], name: str, timeout: float = 20.0
) -> tuple[float, int, str]:
    """Seconds from launching argv in a pane to the first capture showing an agent row."""
    t0 = time.perf_counter()
    pid, pane = lab.launch(argv, name)
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        if ROW_RE.search(lab.capture(pane)):
            return time.perf_counter() - t0, pid, pane
        time.sleep(0.01)
    tail = lab.capture(pane).strip().splitlines()[-3:]
    raise RuntimeError(f"{name}: no agent row after {timeout:g} s; pane shows {tail}")


# =============================================================================================
# 2. Idle CPU, from outside
# =============================================================================================


def idle_breakdown(roster: Path, state: Path, window: float) -> dict[str, Any]:
    """Where the dashboard's idle CPU goes: the same FleetApp on the same live fleet, in-process
    and headless (frames encoded as for a terminal, see FrameCounter), with the source's polls
    and `apply_snapshot` timed. Polls run in worker threads; the rest is the main thread."""
    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.config.settings import DashboardSettings
    from fleet_tui.service.poll import LiveSource
    from fleet_tui.ui.app import FleetApp

    source = LiveSource(FleetConfig.from_flags(str(roster), str(state), None))
    st: dict[str, float] = {
        "full": 0, "heartbeats_only": 0, "cpu_full": 0.0, "cpu_heartbeats_only": 0.0,
        "apply": 0.0, "applies": 0,
    }  # fmt: skip
    real_poll = source.poll

    def poll(**kw: Any) -> Any:
        t0 = time.thread_time()
        try:
            return real_poll(**kw)
        finally:
            kind = "heartbeats_only" if kw.get("heartbeats_only") else "full"
            st[kind] += 1
            st[f"cpu_{kind}"] += time.thread_time() - t0

    source.poll = poll  # type: ignore[method-assign]
    app = FleetApp(source, settings=DashboardSettings(poll_interval_s=2))
    real_apply = app.apply_snapshot

    def apply(snapshot: Any) -> None:
        t0 = time.thread_time()
        real_apply(snapshot)
        st["apply"] += time.thread_time() - t0
        st["applies"] += 1

    app.apply_snapshot = apply  # type: ignore[method-assign]
    out: dict[str, Any] = {}

    async def run() -> None:
        async with app.run_test(size=SIZE):
            counter = FrameCounter(app)
            await asyncio.sleep(3)
            s0, f0 = dict(st), counter.frames
            t0, p0, w0 = time.thread_time(), time.process_time(), time.monotonic()
            await asyncio.sleep(window)
            el = time.monotonic() - w0
            main = time.thread_time() - t0
            d = {k: st[k] - s0[k] for k in st}
            workers = d["cpu_full"] + d["cpu_heartbeats_only"]
            out.update(
                {
                    "window_s": round(el, 1),
                    "process_pct": round((time.process_time() - p0) / el * 100, 2),
                    "main_thread_pct": round(main / el * 100, 2),
                    "poll_workers_pct": round(workers / el * 100, 2),
                    "full_polls_per_s": round(d["full"] / el, 2),
                    "heartbeat_polls_per_s": round(d["heartbeats_only"] / el, 2),
                    "full_poll_cpu_ms": ms(d["cpu_full"] / max(d["full"], 1)),
                    "heartbeat_poll_cpu_ms": ms(
                        d["cpu_heartbeats_only"] / max(d["heartbeats_only"], 1)
                    ),
                    "apply_snapshot_ms": ms(d["apply"] / max(d["applies"], 1)),
                    "apply_snapshot_pct": round(d["apply"] / el * 100, 2),
                    "main_rest_pct": round((main - d["apply"]) / el * 100, 2),
                    "frames_per_s": round((counter.frames - f0) / el, 2),
                }
            )

    asyncio.run(run())
    return out


def measure_idle(lab: Lab, settle: float, window: float, breakdown_s: float) -> dict[str, Any]:
    print(f"   starting a fleet of {N_IDLE} stub agents on a private tmux socket", flush=True)
    t = time.perf_counter()
    roster, state = lab.start_fleet(N_IDLE)
    fleet_s = time.perf_counter() - t
    time.sleep(2)  # let the stubs' start-up burst pass before launching the dashboard
    dash_argv = [lab.python, "-m", "fleet_tui", "--roster", str(roster), "--state-dir", str(state)]
    print("   starting the dashboard in a 160x48 pane", flush=True)
    paint_s, dash_pid, dash_pane = first_paint(lab, dash_argv, "dashboard")
    procs: dict[str, tuple[int, str]] = {"dashboard": (dash_pid, dash_pane)}
    print("   starting the baselines: stock DataTable app, FleetApp on the fixture", flush=True)
    for key, argv in (
        ("datatable", [lab.python, str(APPS), "datatable", "--rows", str(N_IDLE), "--tick", "2"]),
        ("fleet_fixture", [lab.python, str(APPS), "fleet", "--rows", str(N_IDLE), "--tick", "2"]),
    ):
        _, pid, pane = first_paint(lab, argv, key)
        procs[key] = (pid, pane)
    sizes = {k: lab.pane_size(p) for k, (_, p) in procs.items()}
    print(f"   settling {settle:g} s, then measuring {window:g} s", flush=True)
    time.sleep(settle)
    for key, (pid, _) in procs.items():
        if not pid_alive(pid):
            raise RuntimeError(f"{key} exited early; pane: {lab.capture(procs[key][1])[-400:]}")
    hz = os.sysconf("SC_CLK_TCK")
    slices = max(int(window // 10), 1)
    step = window / slices
    start = {k: cpu_ticks(pid) for k, (pid, _) in procs.items()}
    marks = [dict(start)]
    w0 = time.monotonic()
    for _ in range(slices):
        time.sleep(step)
        marks.append({k: cpu_ticks(pid) for k, (pid, _) in procs.items()})
    elapsed = time.monotonic() - w0
    load = list(os.getloadavg())
    out: dict[str, Any] = {
        "agents": N_IDLE,
        "poll_interval_s": 2,
        "settle_s": settle,
        "window_s": round(elapsed, 1),
        "fleet_start_s": round(fleet_s, 1),
        "dashboard_first_paint_s": round(paint_s, 3),
        "pane_sizes": sizes,
        "loadavg_during": load,
        "procs": {},
    }
    for key in procs:
        self0, kids0 = start[key]
        self1, kids1 = marks[-1][key]
        per_min = (self1 - self0) / hz * 60 / elapsed
        kids_min = (kids1 - kids0) / hz * 60 / elapsed
        slice_pct = [
            round((marks[i + 1][key][0] - marks[i][key][0]) / hz / step * 100, 2)
            for i in range(slices)
        ]
        out["procs"][key] = {
            "cpu_s_per_min": round(per_min, 3),
            "pct_core": round(per_min / 60 * 100, 2),
            "children_cpu_s_per_min": round(kids_min, 3),
            "pct_core_with_children": round((per_min + kids_min) / 60 * 100, 2),
            "slices_pct": slice_pct,
        }
    screen = lab.capture(dash_pane).splitlines()
    out["dashboard_header"] = [line.rstrip() for line in screen[:2]]
    out["dashboard_agent_rows"] = sum(1 for line in screen if "agent0" in line)
    for pid, pane in procs.values():
        lab.close(pid, pane)
    print(
        f"   where the time goes: the same dashboard in-process for {breakdown_s:g} s", flush=True
    )
    out["breakdown"] = idle_breakdown(roster, state, breakdown_s)
    return out


# =============================================================================================
# 3. Time to first useful paint, from outside
# =============================================================================================


def measure_startup(lab: Lab, repeat: int) -> dict[str, Any]:
    argvs = {
        "FleetApp": [lab.python, str(APPS), "fleet", "--rows", str(N_START)],
        "DataTable": [lab.python, str(APPS), "datatable", "--rows", str(N_START)],
    }
    samples: dict[str, list[float]] = {k: [] for k in argvs}
    names = list(argvs)
    for r in range(repeat + 1):  # round 0 warms the page cache and the bytecode: not counted
        order = names[r % 2 :] + names[: r % 2]
        for name in order:
            secs, pid, pane = first_paint(lab, argvs[name], f"{name}-{r}")
            lab.close(pid, pane)
            if r:
                samples[name].append(secs)
            time.sleep(0.3)
    return {
        "agents": N_START,
        "repeat": repeat,
        "median_s": {k: round(med(v), 3) for k, v in samples.items()},
        "min_s": {k: round(min(v), 3) for k, v in samples.items()},
        "samples_s": {k: [round(x, 3) for x in v] for k, v in samples.items()},
        "ratio_datatable_over_fleet": round(
            med(samples["DataTable"]) / med(samples["FleetApp"]), 2
        ),
    }


# =============================================================================================
# 4. Memory and CPU of FleetApp with N agents over a soak of updates (fixture, from outside)
# =============================================================================================


def measure_memory(lab: Lab, soak: float) -> dict[str, Any]:
    """FleetApp on the fixture of N_START agents whose ages move, polling every 2 s (each poll a
    new snapshot: every row's HB and IDLE change), in a 160x48 pane: first paint, RSS then, RSS
    every 10 s of the soak, and CPU over it (from /proc, from outside)."""
    argv = [lab.python, str(APPS), "fleet", "--rows", str(N_START), "--tick", "2"]
    secs, pid, pane = first_paint(lab, argv, "memory")
    py = pid  # the pane runs the interpreter directly
    time.sleep(1.0)
    rss0 = rss_kb(py) / 1024
    hz = os.sysconf("SC_CLK_TCK")
    c0 = cpu_ticks(py)[0]
    w0 = time.monotonic()
    timeline: list[tuple[float, float]] = [(0.0, round(rss0, 1))]
    while time.monotonic() - w0 < soak:
        time.sleep(min(10.0, max(soak - (time.monotonic() - w0), 0.1)))
        timeline.append((round(time.monotonic() - w0, 1), round(rss_kb(py) / 1024, 1)))
    el = time.monotonic() - w0
    cpu = (cpu_ticks(py)[0] - c0) / hz
    rows = sum(1 for line in lab.capture(pane).splitlines() if "agent" in line)
    lab.close(pid, pane)
    return {
        "agents": N_START,
        "first_paint_s": round(secs, 3),
        "rss_after_paint_mb": round(rss0, 1),
        "rss_end_mb": timeline[-1][1],
        "rss_peak_mb": max(v for _, v in timeline),
        "soak_s": round(el, 1),
        "cpu_pct_during_soak": round(cpu / el * 100, 2),
        "rss_timeline_mb": timeline,
        "agent_rows_shown": rows,
        "loadavg": list(os.getloadavg()),
    }


# =============================================================================================
# 5. The real dashboard on a real fleet of N panes (sleep sessions on 10 sockets)
# =============================================================================================

REAL_SOCKETS = 10


def start_sleep_fleet(lab: Lab, n: int) -> tuple[Path, Path]:
    """N `sleep` sessions named agent000.. spread over REAL_SOCKETS private sockets (one tmux
    invocation each), a roster naming them, and one fresh heartbeat each (state busy)."""
    from fleet_tui.model.records import AgentState, Heartbeat
    from fleet_tui.sources.spool import HeartbeatSpool
    from fleet_tui.tmux import TmuxRunner

    runner = TmuxRunner(tmpdir=lab.tmp, env=lab.env)
    socks = [f"fleet{k}" for k in range(REAL_SOCKETS)]
    by_sock: dict[str, list[str]] = {s: [] for s in socks}
    for i in range(n):
        by_sock[socks[i % REAL_SOCKETS]].append(f"agent{i:03d}")
    pids: dict[str, int] = {}
    for sock, names in by_sock.items():
        path = runner.socket_path(sock)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lab.sockets.add(path)
        argv: list[str] = ["-f", "/dev/null"]
        for k, name in enumerate(names):
            if k:
                argv.append(";")
            argv += ["new-session", "-d", "-s", name, "-x", "120", "-y", "40", "sleep", "3600"]
        lab.run(path, *argv)
        out = lab.run(path, "list-panes", "-a", "-F", "#{session_name} #{pane_pid}")
        for line in out.stdout.splitlines():
            name, _, pid = line.partition(" ")
            pids[name] = int(pid)
            lab.pids.add(int(pid))
    home = Path(lab.tmp) / "real"
    roster, state = home / "roster.yaml", home / "state"
    home.mkdir(parents=True)
    host = socket.gethostname()
    lines = ["version: 1", "tenant_id: bench", f"host: {host}", "socket_name: fleet0",
             "heartbeat_timeout_s: 3600", "agents:"]  # fmt: skip
    i = 0
    for sock, names in by_sock.items():
        for name in names:
            role = ("orchestrator", "enhancer")[i] if i < 2 else "coder"
            lines += [f"  - name: {name}", f"    role: {role}", "    runtime: other",
                      f"    socket_name: {sock}"]  # fmt: skip
            i += 1
    roster.write_text("\n".join(lines) + "\n")
    spool = HeartbeatSpool(state)
    spool.ensure_writable()
    now = datetime.now(UTC)
    for names in by_sock.values():
        for seq, name in enumerate(names):
            spool.write_heartbeat(
                Heartbeat(
                    tenant_id="bench",
                    host=host,
                    agent=name,
                    seq=seq,
                    ts=now,
                    interval_s=3600,
                    state=AgentState.BUSY,
                    detail="benchmark",
                    runtime="other",
                    pid=pids.get(name),
                )
            )
    return roster, state


def measure_real(lab: Lab, window: float) -> dict[str, Any]:
    print(f"   starting {N_START} sleep sessions on {REAL_SOCKETS} private sockets", flush=True)
    t = time.perf_counter()
    roster, state = start_sleep_fleet(lab, N_START)
    fleet_s = time.perf_counter() - t
    argv = [lab.python, "-m", "fleet_tui", "--roster", str(roster), "--state-dir", str(state)]
    secs, pid, pane = first_paint(lab, argv, "real", timeout=60)
    hz = os.sysconf("SC_CLK_TCK")
    # The process's CPU from its start to the paint (10 ms ticks, read within ~10 ms of the
    # paint): steadier than the wall time on a shared machine, where another tenant's load
    # stretches the wall but not the work.
    paint_cpu = cpu_ticks(pid)
    time.sleep(1.0)
    rss0 = rss_kb(pid) / 1024
    c0 = cpu_ticks(pid)
    w0 = time.monotonic()
    time.sleep(window)
    el = time.monotonic() - w0
    c1 = cpu_ticks(pid)
    screen = lab.capture(pane).splitlines()
    out = {
        "agents": N_START,
        "sockets": REAL_SOCKETS,
        "fleet_start_s": round(fleet_s, 1),
        "first_paint_s": round(secs, 3),
        "first_paint_cpu_s": round(paint_cpu[0] / hz, 2),
        "first_paint_cpu_with_children_s": round(sum(paint_cpu) / hz, 2),
        "rss_after_paint_mb": round(rss0, 1),
        "rss_after_window_mb": round(rss_kb(pid) / 1024, 1),
        "window_s": round(el, 1),
        "cpu_pct": round((c1[0] - c0[0]) / hz / el * 100, 2),
        "cpu_pct_with_children": round((c1[0] + c1[1] - c0[0] - c0[1]) / hz / el * 100, 2),
        "header": [line.rstrip() for line in screen[:2]],
        "agent_rows_shown": sum(1 for line in screen if "agent" in line),
        "loadavg": list(os.getloadavg()),
    }
    lab.close(pid, pane)
    return out


# =============================================================================================
# report
# =============================================================================================


def print_report(doc: dict[str, Any]) -> list[str]:
    goals: list[str] = []
    up = doc.get("updates")
    if up:
        print()
        print(
            f"1. One table update + repaint, main-thread CPU ms (median of {up['repeat']}), "
            f"{N_UPDATE} agents, {SIZE[0]}x{SIZE[1]} headless"
        )
        head = f"{'case':<36} {'FleetTable':>10} {'DataTable':>10} {'DT/FT':>6} {'FT rows':>8}"
        print(head)
        print("-" * len(head))
        for row in up["cases"].values():
            ft = row.get("FleetTable", {})
            dt = row.get("DataTable", {})
            vs = row.get("vs_case")
            dt_ms = up["cases"][vs]["DataTable"]["cpu_ms"] if vs else dt.get("cpu_ms")
            ratio = row.get("ratio_datatable_over_fleet")
            print(
                f"{row['label']:<36} {ft.get('cpu_ms', float('nan')):>10.2f} "
                f"{dt_ms if dt_ms is not None else float('nan'):>10.2f} "
                f"{ratio if ratio is not None else '-':>6} "
                f"{ft.get('rows_rendered', '-') if ft else '-':>8}"
            )
        worst = max(up["cases"][c]["FleetTable"]["cpu_ms"] for c in ("random30", "dashboard30"))
        ok = worst < GOAL_UPDATE_MS
        goals.append(
            f"update of 30/300 under {GOAL_UPDATE_MS:g} ms: {'met' if ok else 'MISSED'} "
            f"({worst:.1f} ms worst of table/dashboard path)"
        )
        print(
            f"   the poll thread's share before it (FleetApp.prepare_snapshot), off the event "
            f"loop: 30 changed {up['dashboard30_poll_thread_ms']:.2f} ms, all changed "
            f"{up['dashboardall_poll_thread_ms']:.2f} ms"
        )
        if up["fleet_layout_changes"]:
            print(f"   note: FleetTable relaid out {up['fleet_layout_changes']} times (unexpected)")
    idle = doc.get("idle")
    if idle:
        print()
        print(
            f"2. Idle CPU over {idle['window_s']:g} s, {idle['agents']} agents, poll 2 s "
            f"(load average {idle['loadavg_during'][0]:.2f})"
        )
        head = f"{'process':<44} {'CPU-s/min':>9} {'% core':>7} {'+children %':>12}"
        print(head)
        print("-" * len(head))
        labels = {
            "dashboard": "dashboard, live fleet of stubs (tmux)",
            "datatable": "baseline: DataTable, 50 age cells / 2 s",
            "fleet_fixture": "FleetApp on the fixture, poll 2 s (no tmux)",
        }
        for key, p in idle["procs"].items():
            print(
                f"{labels[key]:<44} {p['cpu_s_per_min']:>9.2f} {p['pct_core']:>7.2f} "
                f"{p['pct_core_with_children']:>12.2f}"
            )
        d = idle["procs"]["dashboard"]
        ok = d["pct_core"] < GOAL_IDLE_PCT
        goals.append(
            f"dashboard idle under {GOAL_IDLE_PCT:g} % of a core: {'met' if ok else 'MISSED'} "
            f"({d['pct_core']:.2f} %, {d['pct_core_with_children']:.2f} % with its tmux children)"
        )
        b = idle.get("breakdown")
        if b:
            print(
                f"   where it goes (in-process, headless, {b['window_s']:g} s): "
                f"{b['process_pct']:.2f} % = poll workers {b['poll_workers_pct']:.2f} % "
                f"({b['full_polls_per_s']:.2f} full polls/s x {b['full_poll_cpu_ms']:.1f} ms, "
                f"{b['heartbeat_polls_per_s']:.2f} heartbeat polls/s x "
                f"{b['heartbeat_poll_cpu_ms']:.1f} ms)"
            )
            print(
                f"      + main thread {b['main_thread_pct']:.2f} % (apply_snapshot "
                f"{b['apply_snapshot_ms']:.2f} ms each = {b['apply_snapshot_pct']:.2f} %; frames, "
                f"header clock, events {b['main_rest_pct']:.2f} %; {b['frames_per_s']:.1f} frames/s)"
            )
        print(
            f"   real dashboard, {idle['agents']} live agents: first paint "
            f"{idle['dashboard_first_paint_s']:.2f} s, showing {idle['dashboard_agent_rows']} "
            f"agent rows"
        )
    st = doc.get("startup")
    if st:
        print()
        print(
            f"3. Launch to first frame with agent rows, {st['agents']} agents, "
            f"{SIZE[0]}x{SIZE[1]} tmux pane (median of {st['repeat']})"
        )
        for k in ("FleetApp", "DataTable"):
            print(
                f"   {k:<10} {st['median_s'][k] * 1000:>7.0f} ms   (min {st['min_s'][k] * 1000:.0f})"
            )
        print(f"   DataTable / FleetApp: {st['ratio_datatable_over_fleet']}")
        ok = st["median_s"]["FleetApp"] < GOAL_START_S
        goals.append(
            f"first useful paint under {GOAL_START_S:g} s: {'met' if ok else 'MISSED'} "
            f"({st['median_s']['FleetApp'] * 1000:.0f} ms)"
        )
    mem = doc.get("memory")
    if mem:
        print()
        print(
            f"4. FleetApp on the fixture, {mem['agents']} agents, every row's ages moving every "
            f"2 s, {mem['soak_s']:g} s (load average {mem['loadavg'][0]:.2f})"
        )
        print(
            f"   first paint {mem['first_paint_s'] * 1000:.0f} ms; RSS {mem['rss_after_paint_mb']:.1f} MB "
            f"after it, {mem['rss_end_mb']:.1f} MB at the end (peak {mem['rss_peak_mb']:.1f}); "
            f"CPU {mem['cpu_pct_during_soak']:.1f} % of a core"
        )
        ok = mem["rss_peak_mb"] < GOAL_RSS_MB
        goals.append(
            f"RSS under {GOAL_RSS_MB:g} MB with {mem['agents']} agents: "
            f"{'met' if ok else 'MISSED'} (peak {mem['rss_peak_mb']:.1f} MB)"
        )
    real = doc.get("real")
    if real:
        print()
        print(
            f"5. Real dashboard, {real['agents']} sleep panes on {real['sockets']} sockets "
            f"(load average {real['loadavg'][0]:.2f})"
        )
        print(
            f"   first paint {real['first_paint_s'] * 1000:.0f} ms (CPU to it "
            f"{real['first_paint_cpu_s'] * 1000:.0f} ms, "
            f"{real['first_paint_cpu_with_children_s'] * 1000:.0f} ms with children); RSS "
            f"{real['rss_after_paint_mb']:.1f} MB after it, {real['rss_after_window_mb']:.1f} MB "
            f"after {real['window_s']:g} s; CPU {real['cpu_pct']:.1f} % "
            f"({real['cpu_pct_with_children']:.1f} % with its tmux children)"
        )
        print(f"   header: {real['header'][0][:100]}")
        ok = real["first_paint_s"] < GOAL_START_S
        goals.append(
            f"real dashboard first paint under {GOAL_START_S:g} s with {real['agents']} agents: "
            f"{'met' if ok else 'MISSED'} ({real['first_paint_s'] * 1000:.0f} ms)"
        )
    print()
    for g in goals:
        print(f"goal {g}")
    return goals


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="fewer repeats, shorter idle window")
    p.add_argument("--only", default="updates,idle,startup", help="which figures, comma-separated")
    p.add_argument("--out", default=str(RESULTS), help="JSON results file")
    p.add_argument("--agents", type=int, default=300, help="fleet size of updates/startup/...")
    p.add_argument("--soak", type=float, default=300.0, help="memory: seconds of updates")
    p.add_argument("--tree", default=None, help="measure this checkout (with its .venv)")
    args = p.parse_args(argv)
    if args.tree and Path(args.tree).resolve() != TREE:
        tree = Path(args.tree).resolve()
        rest = list(sys.argv[1:] if argv is None else argv)
        i = rest.index("--tree") if "--tree" in rest else -1
        rest = (
            rest[:i] + rest[i + 2 :] if i >= 0 else [a for a in rest if not a.startswith("--tree=")]
        )
        env = dict(os.environ, FLEET_BENCH_TREE=str(tree))
        py = str(tree / ".venv" / "bin" / "python")
        return subprocess.call([py, str(Path(__file__).resolve()), *rest], env=env)
    global N_UPDATE, N_START
    N_UPDATE = N_START = args.agents
    fresh_bytecode(TREE)  # the tree's start-up as installed (see _lab.fresh_bytecode)
    kinds = {"updates", "idle", "startup", "memory", "real"}
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    if not only <= kinds:
        p.error(f"--only: unknown {sorted(only - kinds)}")
    if only - {"updates"} and not shutil.which("tmux"):
        print("tmux is not installed", file=sys.stderr)
        return 2
    repeat = 8 if args.quick else 20
    settle, window, breakdown_s = (5.0, 20.0, 10.0) if args.quick else (10.0, 60.0, 30.0)
    start_repeat = 2 if args.quick else 5

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    t_start = time.monotonic()
    doc: dict[str, Any] = {
        "schema": "fleet_tui.bench.dashboard/v1",
        "generated_at": datetime.now(UTC).isoformat(),
        "command": " ".join([".venv/bin/python", "benchmarks/bench_dashboard.py", *sys.argv[1:]]),
        "quick": args.quick,
        "tree": str(TREE),
        "agents": args.agents,
    }
    lab: Lab | None = None
    try:
        if "updates" in only:
            print("-- 1. table updates (in-process, headless)", flush=True)
            doc["updates"] = measure_updates(repeat)
        if only - {"updates"}:
            lab = Lab()
        if "startup" in only and lab is not None:
            print("-- 3. start-up to first useful paint (tmux pane)", flush=True)
            doc["startup"] = measure_startup(lab, start_repeat)
        if "idle" in only and lab is not None:
            print("-- 2. idle CPU (real fleet, measured from outside)", flush=True)
            doc["idle"] = measure_idle(lab, settle, window, breakdown_s)
        if "memory" in only and lab is not None:
            print(f"-- 4. memory over {args.soak:g} s of updates, {N_START} agents", flush=True)
            doc["memory"] = measure_memory(lab, args.soak)
        if "real" in only and lab is not None:
            print(f"-- 5. the real dashboard on {N_START} panes", flush=True)
            doc["real"] = measure_real(lab, 20.0 if args.quick else 60.0)
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
    import rich
    import textual

    doc["machine"] = {
        "python": platform.python_version(),
        "textual": textual.__version__,
        "rich": getattr(rich, "__version__", None) or _dist_version("rich"),
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


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
