"""Apps that `bench_dashboard.py` runs in a tmux pane (a real terminal) and measures from outside.

    .venv/bin/python benchmarks/dashboard_apps.py datatable --rows 300          # first paint
    .venv/bin/python benchmarks/dashboard_apps.py datatable --rows 50 --tick 2  # idle baseline
    .venv/bin/python benchmarks/dashboard_apps.py fleet --rows 300              # FleetApp, fixture

`datatable` is the baseline: a stock `textual.widgets.DataTable` showing the fixture fleet
(`fleet_tui.testing.fleets.big_snapshot`) with the dashboard's column strings (`COLUMNS`, cells given as
`rich.text.Text`); with `--tick S` it updates the heartbeat-age cell of every row every S seconds
with `update_cell(row_key, col_key, value)` inside `app.batch_update()` (the dolphie way), ages
taken from the same fixture data as the time goes by.

`fleet` is the real `FleetApp` fed by `FixedSource` over the same fixture (no tmux); with
`--tick S` it polls every S seconds a fixture whose clock moves on, so ages tick as in a live fleet.

Both import the fixtures and build the snapshot the same way, so start-up figures compare the
widgets, not the data.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# bench_dashboard.py --tree PATH: the tree under test, else this checkout
sys.path.insert(0, os.environ.get("FLEET_BENCH_TREE") or str(REPO))


def run_datatable(rows: int, tick: float | None) -> int:
    from rich.text import Text
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    from fleet_tui.core.sanitize import clean_text
    from fleet_tui.core.timefmt import human_duration
    from fleet_tui.present.columns import COLUMNS, visible_columns
    from fleet_tui.testing.fleets import big_snapshot

    snapshot = big_snapshot(rows, seed=1)
    records = [a for a in snapshot.agents if a.is_agent]
    columns = visible_columns(records, COLUMNS)
    started = time.monotonic()

    class DataTableApp(App[None]):
        def compose(self) -> ComposeResult:
            yield DataTable(id="table", cursor_type="row")

        def on_mount(self) -> None:
            table = self.query_one(DataTable)
            for c in columns:
                table.add_column(c.title, key=c.key)
            for r in records:
                table.add_row(*[Text(clean_text(c.cell(r))) for c in columns], key=r.key)
            table.focus()
            if tick:
                self.set_interval(tick, self.tick)

        def tick(self) -> None:
            """Every row's heartbeat age, from the fixture, as the time goes by."""
            elapsed = time.monotonic() - started
            table = self.query_one(DataTable)
            with self.batch_update():
                for r in records:
                    age = r.heartbeat.age_s + elapsed if r.heartbeat else None
                    table.update_cell(r.key, "hb", Text(human_duration(age)))

    DataTableApp().run()
    return 0


def run_fleet(rows: int, tick: float | None) -> int:
    from fleet_tui.config.settings import DashboardSettings
    from fleet_tui.testing.fleets import NOW, FixedSource, big_snapshot
    from fleet_tui.ui.app import FleetApp

    first = big_snapshot(rows, seed=1)
    started = time.monotonic()

    def moving() -> object:
        # The same fleet, seen later: ages and idle times grow as in a live fleet.
        return big_snapshot(rows, seed=1, now=NOW + timedelta(seconds=time.monotonic() - started))

    if tick:
        source = FixedSource(moving)  # type: ignore[arg-type]
        settings = DashboardSettings(poll_interval_s=tick)
    else:
        source = FixedSource(first)
        settings = DashboardSettings(poll_interval_s=3600)

    def clock() -> object:
        return NOW + timedelta(seconds=time.monotonic() - started)

    FleetApp(source, settings=settings, clock=clock, watch=False).run()  # type: ignore[arg-type]
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("app", choices=["datatable", "fleet"])
    p.add_argument("--rows", type=int, default=300)
    p.add_argument("--tick", type=float, default=None, help="update every S seconds")
    args = p.parse_args(argv)
    if args.app == "datatable":
        return run_datatable(args.rows, args.tick)
    return run_fleet(args.rows, args.tick)


if __name__ == "__main__":
    raise SystemExit(main())
