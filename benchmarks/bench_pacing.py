"""Benchmark: even-spread pacing of 100 accounts over a 7-day history at one sample per minute.

Run from the repository root:

    .venv/bin/python benchmarks/bench_pacing.py [--accounts 100] [--days 7] [--repeat 7] [--no-ingest]

The history (deterministic, seeded): per account one weekly window, a sample every minute for
`--days` days (100 x 10,080 = 1,008,000 samples), used % growing at a per-account rate with
jumps, gaps of missing samples, and for one account in five a reset half-way (the window moved).

Measured in the same run, alternating (fair against drift in load), medians of `--repeat`:

- `pace`: `pace_window` for every account (status, rates, projection: the engine itself);
- `naive`: the baseline, a first-to-last rate over every sample of every account (one pass over
  the whole history; wrong across resets, but the least work any rate needs without an index);
- `report`: `BudgetService.report` for all accounts (pacing, ladder, 96-column curves), with the
  samples fed through `add_samples`;
- ingest (unless `--no-ingest`): the samples written as `usage.jsonl` (~230 MB), then read once
  by `UsageLedgerReader` against the raw parse baseline (`json.loads` of every line).

Prints a table and writes benchmarks/results/pacing.json. Peak RSS is the process's maximum.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fleet_tui.config.paths import Located  # noqa: E402
from fleet_tui.core.pacing import Series, naive_rate, pace_window  # noqa: E402
from fleet_tui.service.budgets import BudgetService  # noqa: E402
from fleet_tui.sources.budgets import parse_budgets  # noqa: E402
from fleet_tui.sources.ledger_read import UsageLedgerReader  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "pacing.json"
SEED = 20261126
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WEEK_MIN = 10080


def make_history(accounts: int, days: int) -> dict[str, Series]:
    rng = random.Random(SEED)
    start = NOW - timedelta(days=days)
    out: dict[str, Series] = {}
    for a in range(accounts):
        s = Series()
        rate = rng.uniform(4.0, 22.0) / 1440.0  # % per minute
        moved = a % 5 == 0
        reset = (NOW + timedelta(days=rng.uniform(0.2, 6.8))).timestamp()
        if moved:
            reset_old = reset - WEEK_MIN * 60 / 2
        used = rng.uniform(0, 30)
        t0 = start.timestamp()
        for m in range(days * 1440):
            t = t0 + m * 60.0
            r = reset
            if moved and t < reset_old:
                r = reset_old
            elif moved and t - 60.0 < reset_old <= t:
                used = 0.0
            used = min(100.0, used + rate * rng.uniform(0.0, 2.0))
            if rng.random() < 0.0005:
                used = min(100.0, used + rng.uniform(2, 10))  # a jump
            if rng.random() < 0.01:
                continue  # a missing sample
            s.add(t, round(used, 1), r, "provider", WEEK_MIN)
        out[f"acct{a:03d}"] = s
    return out


def budgets_text(names: list[str]) -> str:
    lines = ["version: 1", "tenant_id: bench", "accounts:"]
    for n in names:
        lines += [
            f"  - id: {n}",
            "    provider: anthropic",
            "    runtime: claude",
            "    windows:",
            f"      - {{name: weekly, minutes: {WEEK_MIN}}}",
        ]
    lines.append("ladder: [" + ", ".join(names[:4]) + "]")
    return "\n".join(lines) + "\n"


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-ingest", action="store_true")
    args = ap.parse_args()

    t0 = time.perf_counter()
    hist = make_history(args.accounts, args.days)
    n_samples = sum(len(s) for s in hist.values())
    print(
        f"history: {args.accounts} accounts, {n_samples:,} samples, built in "
        f"{time.perf_counter() - t0:.1f} s"
    )

    def pace_all() -> None:
        for s in hist.values():
            pace_window("weekly", WEEK_MIN, s, NOW)

    def naive_all() -> None:
        for s in hist.values():
            naive_rate(s)
            sum(s.used)  # a pass over every sample, as a full-history method must make

    names = sorted(hist)
    loaded = parse_budgets(budgets_text(names), Path("bench-budgets.yaml"))
    service = BudgetService(
        Located(Path("/nonexistent/budgets.yaml"), False),
        Path("/nonexistent/bench-state"),
        checkpoints=False,
    )
    for n, s in hist.items():
        service.gateway[("bench", n, "weekly")] = s

    def report_all() -> None:
        service.report(loaded, NOW)

    times: dict[str, list[float]] = {"pace": [], "naive": [], "report": []}
    fns = {"pace": pace_all, "naive": naive_all, "report": report_all}
    order = list(fns)
    for i in range(args.repeat):
        for name in order[i % 3 :] + order[: i % 3]:
            times[name].append(timed(fns[name]))
    med = {k: statistics.median(v) for k, v in times.items()}
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "accounts": args.accounts,
        "days": args.days,
        "samples": n_samples,
        "repeat": args.repeat,
        "median_s": {k: round(v, 5) for k, v in med.items()},
        "pace_per_account_us": round(med["pace"] / args.accounts * 1e6, 1),
        "pace_vs_naive": round(med["pace"] / med["naive"], 4),
        "report_vs_naive": round(med["report"] / med["naive"], 4),
    }
    print(f"{'what':<8} {'median':>10} {'vs naive':>9}")
    for k in ("naive", "pace", "report"):
        print(f"{k:<8} {med[k] * 1000:>8.1f} ms {med[k] / med['naive']:>8.3f}x")

    if not args.no_ingest:
        tmp = Path(tempfile.mkdtemp(prefix="ftbpace", dir="/tmp"))
        try:
            path = tmp / "usage.jsonl"
            with open(path, "w") as f:
                for n, s in hist.items():
                    for i in range(len(s)):
                        reset = datetime.fromtimestamp(s.resets[i], UTC)
                        seen = datetime.fromtimestamp(s.t[i], UTC)
                        f.write(
                            f'{{"tenant_id":"bench","host":"h","account":"{n}",'
                            f'"window":"weekly","window_minutes":10080,'
                            f'"used_percent":{s.used[i]},'
                            f'"resets_at":"{reset:%Y-%m-%dT%H:%M:%SZ}",'
                            f'"reset_confidence":"provider",'
                            f'"observed_at":"{seen:%Y-%m-%dT%H:%M:%SZ}","source":"bench"}}\n'
                        )
            size = path.stat().st_size

            def raw() -> None:
                loads = json.loads
                with open(path, "rb") as f:
                    for line in f:
                        loads(line)

            def ingest() -> None:
                UsageLedgerReader(path).read()

            t_raw, t_ing = [], []
            for i in range(3):
                if i % 2:
                    t_raw.append(timed(raw))
                    t_ing.append(timed(ingest))
                else:
                    t_ing.append(timed(ingest))
                    t_raw.append(timed(raw))
            mr, mi = statistics.median(t_raw), statistics.median(t_ing)
            result["ingest"] = {
                "bytes": size,
                "raw_parse_s": round(mr, 3),
                "reader_s": round(mi, 3),
                "reader_vs_raw_parse": round(mi / mr, 3),
                "reader_mb_s": round(size / mi / 1e6, 1),
            }
            print(
                f"ingest {size / 1e6:.0f} MB: raw json.loads {mr:.2f} s, reader {mi:.2f} s "
                f"({mi / mr:.2f}x, {size / mi / 1e6:.0f} MB/s)"
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(f"peak RSS {result['peak_rss_mb']} MB")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
