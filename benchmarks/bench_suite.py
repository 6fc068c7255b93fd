"""Where the test suite's time goes: per-file totals from pytest's `--durations` report.

    # run the suite and report (the log is kept; --durations=0 lists every phase of every test)
    .venv/bin/python benchmarks/bench_suite.py run --log /tmp/suite.log [-- PYTEST ARGS...]
    # report on a log written earlier (pytest ... --durations=N [-vv], optionally under
    # /usr/bin/time -v, whose wall and CPU figures are read too)
    .venv/bin/python benchmarks/bench_suite.py report /tmp/suite.log [--top 30]

The report: wall time and user+sys CPU (from /usr/bin/time -v, when the log has them; CPU/wall
near the number of workers means CPU-bound, well below it means waiting), the sum of setup,
call and teardown over every listed phase, then per test file (biggest first) the number of
tests listed, the sum of their phases and the slowest test. With `--durations=N` only the N
slowest phases are listed, so per-file sums cover those only: `run` passes `--durations=0
--durations-min=0` to have them all.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

_PHASE = re.compile(r"^\s*(\d+(?:\.\d+)?)s (setup|call|teardown)\s+(\S.*?)\s*$")
_TIME = {
    "user": re.compile(r"User time \(seconds\): ([\d.]+)"),
    "sys": re.compile(r"System time \(seconds\): ([\d.]+)"),
    "wall": re.compile(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)"),
    "rss": re.compile(r"Maximum resident set size \(kbytes\): (\d+)"),
}
_SUMMARY = re.compile(r"^=* ?(\d.*\b(?:passed|failed)\b.*?) in ([\d.]+)s", re.M)


@dataclass
class FileTotal:
    path: str
    tests: set[str] = field(default_factory=set)
    phases: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    slowest: tuple[float, str] = (0.0, "")

    @property
    def total(self) -> float:
        return sum(self.phases.values())


def _seconds(text: str) -> float:
    parts = [float(p) for p in text.split(":")]
    total = 0.0
    for p in parts:
        total = total * 60 + p
    return total


def parse(text: str) -> tuple[dict[str, FileTotal], dict[str, float], str]:
    files: dict[str, FileTotal] = {}
    per_test: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        m = _PHASE.match(line)
        if not m:
            continue
        secs, phase, nodeid = float(m.group(1)), m.group(2), m.group(3)
        path = nodeid.split("::", 1)[0]
        ft = files.setdefault(path, FileTotal(path))
        ft.tests.add(nodeid)
        ft.phases[phase] += secs
        per_test[nodeid] += secs
    for nodeid, secs in per_test.items():
        ft = files[nodeid.split("::", 1)[0]]
        if secs > ft.slowest[0]:
            ft.slowest = (secs, nodeid.split("::", 1)[1])
    figures: dict[str, float] = {}
    for key, rx in _TIME.items():
        found = rx.search(text)
        if found:
            figures[key] = _seconds(found.group(1)) if key == "wall" else float(found.group(1))
    summary = ""
    for m in _SUMMARY.finditer(text):
        summary = f"{m.group(1)} in {m.group(2)} s"
    return files, figures, summary


def report(text: str, top: int) -> str:
    files, figures, summary = parse(text)
    out: list[str] = []
    if summary:
        out.append(f"pytest: {summary}")
    if "wall" in figures:
        cpu = figures.get("user", 0.0) + figures.get("sys", 0.0)
        out.append(
            f"wall {figures['wall']:.1f} s, user {figures.get('user', 0):.1f} s + sys "
            f"{figures.get('sys', 0):.1f} s = {cpu:.1f} s CPU ({cpu / figures['wall']:.2f} cores "
            f"busy on average)"
        )
    machine = re.search(r"^machine: .*$", text, re.M)
    if machine:
        out.append(machine.group(0))
    totals: dict[str, float] = defaultdict(float)
    for ft in files.values():
        for phase, secs in ft.phases.items():
            totals[phase] += secs
    n = sum(len(ft.tests) for ft in files.values())
    out.append(
        f"{n} tests listed: setup {totals['setup']:.1f} s, call {totals['call']:.1f} s, "
        f"teardown {totals['teardown']:.1f} s, sum {sum(totals.values()):.1f} s"
    )
    out.append("")
    out.append(
        f"{'file':<36} {'tests':>5} {'sum s':>7} {'setup':>6} {'call':>7} {'tdown':>6}  slowest"
    )
    ranked = sorted(files.values(), key=lambda f: f.total, reverse=True)
    for ft in ranked[:top]:
        name = ft.path.removeprefix("tests/")
        slow = f"{ft.slowest[0]:.1f} {ft.slowest[1][:48]}"
        out.append(
            f"{name:<36} {len(ft.tests):>5} {ft.total:>7.1f} {ft.phases['setup']:>6.1f} "
            f"{ft.phases['call']:>7.1f} {ft.phases['teardown']:>6.1f}  {slow}"
        )
    rest = ranked[top:]
    if rest:
        out.append(
            f"{'(' + str(len(rest)) + ' more files)':<36} {sum(len(f.tests) for f in rest):>5} "
            f"{sum(f.total for f in rest):>7.1f}"
        )
    return "\n".join(out)


def _machine() -> tuple[float, str]:
    """CPU seconds the whole machine has been busy (from /proc/stat), and the load average."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        ticks = [int(x) for x in fields]
        idle = ticks[3] + ticks[4]  # idle + iowait
        busy = (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")
        load = Path("/proc/loadavg").read_text().split()[0]
    except (OSError, ValueError, IndexError):
        return 0.0, "?"
    return busy, load


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    rp = sub.add_parser("report", help="report on a pytest log with --durations lines")
    rp.add_argument("log", type=Path)
    rp.add_argument("--top", type=int, default=30)
    run = sub.add_parser("run", help="run the suite (-n 2 unless given) and report")
    run.add_argument("--log", type=Path, required=True)
    run.add_argument("--top", type=int, default=30)
    run.add_argument("pytest_args", nargs="*", help="after --: more pytest arguments")
    args = ap.parse_args(argv)
    if args.cmd == "report":
        print(report(args.log.read_text(errors="replace"), args.top))
        return 0
    extra = list(args.pytest_args) or ["-n", "2"]
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    cmd += ["--durations=0", "--durations-min=0", *extra]
    print("$", shlex.join(cmd), file=sys.stderr)
    t0 = time.monotonic()
    busy0, load0 = _machine()
    with args.log.open("w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
        wall = time.monotonic() - t0
        busy1, load1 = _machine()
        # tmux servers and the processes in their panes are not the test run's children: their
        # CPU is missing from /usr/bin/time's figures, and only the whole machine's shows it
        log.write(
            f"machine: {(busy1 - busy0) / wall:.2f} cores busy on average over {wall:.1f} s "
            f"(every process, not only the suite's); load average {load0} at the start, "
            f"{load1} at the end\n"
        )
    print(f"pytest exited {rc} after {wall:.1f} s; log: {args.log}", file=sys.stderr)
    print(report(args.log.read_text(errors="replace"), args.top))
    return rc


if __name__ == "__main__":
    sys.exit(main())
