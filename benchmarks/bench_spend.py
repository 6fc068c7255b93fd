"""Benchmark: incremental ingest of a large `spend.jsonl` (default 1 GB).

Run from the repository root:

    .venv/bin/python benchmarks/bench_spend.py [--mb 1024] [--append-mb 1] [--keep]

It writes a deterministic spend ledger of `--mb` MB in a temporary folder (~250-byte records
of 40 agents on 6 accounts over 30 days, one broken line in 100,000), then measures:

- `cold`: a new `SpendLedgerReader` reading the whole file (what a first start pays), against
  two baselines measured in the same run: `scan` (reading the file in 4 MiB chunks and counting
  newlines: the I/O floor) and `parse` (`json.loads` of every line: the parse floor);
- `restart`: a new reader restored from the checkpoint the service keeps in the state dir, then
  reading `--append-mb` MB appended after it (what the next start pays);
- `append`: the long-lived reader reading the same appended MB (what a refresh pays).

Peak RSS is measured in a child process per phase (`ru_maxrss` of the child), so the bounded
memory of the reader shows apart from the baselines. Prints a table and writes
benchmarks/results/spend.json. If 1 GB is too slow on a loaded machine, pass a smaller `--mb`:
the result records the size actually run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results" / "spend.json"
SEED = 20261126
START = datetime(2026, 11, 1, tzinfo=UTC).timestamp()


def write_ledger(path: Path, mb: float, rng: random.Random, t0: float) -> int:
    agents = [f"coder{i // 8}-{i % 8}" for i in range(40)]
    accounts = ["claude-max-a", "claude-max-b", "codex-pro", "openai-api", "anthropic-api", "other"]
    target = int(mb * (1 << 20))
    written = 0
    n = 0
    with open(path, "a", encoding="utf-8") as f:
        buf: list[str] = []
        while written < target:
            n += 1
            ts = t0 + n * 0.6
            stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            if n % 100_000 == 0:
                line = '{"tenant_id": "bench", "broken\n'
            else:
                tin, tout = rng.randrange(100, 90_000), rng.randrange(10, 9_000)
                cache, cost = rng.randrange(0, 200_000), rng.random() / 5
                line = (
                    f'{{"tenant_id":"bench","host":"w-bench","ts":"{stamp}",'
                    f'"agent":"{agents[n % 40]}","account":"{accounts[n % 6]}",'
                    f'"model":"claude-sonnet-4-5","mission":"M-12","task":"T-{n % 997}",'
                    f'"input_tokens":{tin},"output_tokens":{tout},'
                    f'"cache_read_tokens":{cache},"cache_write_tokens":0,'
                    f'"cost_usd":{cost:.6f},"projected_tokens":null}}\n'
                )
            buf.append(line)
            written += len(line)
            if len(buf) >= 10_000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))
    return written


CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from fleet_tui.sources.ledger_read import SpendLedgerReader
phase, path, ckpt = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
t0 = time.perf_counter()
out = {{}}
if phase == "scan":
    lines = 0
    with open(path, "rb") as f:
        while chunk := f.read(4 << 20):
            lines += chunk.count(b"\n")
    out["lines"] = lines
elif phase == "parse":
    loads = json.loads
    bad = 0
    with open(path, "rb") as f:
        for line in f:
            try:
                loads(line)
            except ValueError:
                bad += 1
    out["bad"] = bad
elif phase == "cold":
    r = SpendLedgerReader(path)
    st = r.read()
    out["lines"] = st.lines
    out["records"] = r.totals.records
    out["warnings"] = len(r.warnings)
    t1 = time.perf_counter()
    ckpt.write_text(json.dumps(r.checkpoint()))
    out["checkpoint_s"] = time.perf_counter() - t1
    out["checkpoint_bytes"] = ckpt.stat().st_size
elif phase == "restart":
    r = SpendLedgerReader(path)
    assert r.restore(json.loads(ckpt.read_text()))
    st = r.read()
    out["lines"] = st.lines
    out["records"] = r.totals.records
out["s"] = time.perf_counter() - t0
out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def child(phase: str, path: Path, ckpt: Path) -> dict[str, Any]:
    code = CHILD.format(repo=str(REPO))
    res = subprocess.run(
        [sys.executable, "-c", code, phase, str(path), str(ckpt)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(res.stdout))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=1024)
    ap.add_argument("--append-mb", type=float, default=1.0)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    from fleet_tui.sources.ledger_read import SpendLedgerReader

    tmp = Path(tempfile.mkdtemp(prefix="ftbspend", dir="/tmp"))
    try:
        path, ckpt = tmp / "spend.jsonl", tmp / "spend.jsonl.checkpoint"
        rng = random.Random(SEED)
        t = time.perf_counter()
        size = write_ledger(path, args.mb, rng, START)
        print(f"wrote {size / 1e6:.0f} MB in {time.perf_counter() - t:.1f} s")
        # warm the page cache once so that every phase reads from memory alike
        child("scan", path, ckpt)
        scan = child("scan", path, ckpt)
        cold = child("cold", path, ckpt)
        parse = child("parse", path, ckpt)
        # the long-lived reader of a dashboard: caught up, then one appended MB
        live = SpendLedgerReader(path)
        live.restore(json.loads(ckpt.read_text()))
        add = write_ledger(path, args.append_mb, rng, START + 86400 * 29)
        t = time.perf_counter()
        st = live.read()
        append_s = time.perf_counter() - t
        restart = child("restart", path, ckpt)
        result: dict[str, Any] = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "mb": args.mb,
            "bytes": size,
            "lines": scan["lines"],
            "scan_s": round(scan["s"], 3),
            "parse_s": round(parse["s"], 3),
            "cold_s": round(cold["s"], 3),
            "cold_mb_s": round(size / cold["s"] / 1e6, 1),
            "cold_vs_parse": round(cold["s"] / parse["s"], 3),
            "cold_vs_scan": round(cold["s"] / scan["s"], 2),
            "cold_rss_mb": round(cold["rss_mb"], 1),
            "parse_rss_mb": round(parse["rss_mb"], 1),
            "scan_rss_mb": round(scan["rss_mb"], 1),
            "checkpoint_bytes": cold["checkpoint_bytes"],
            "checkpoint_write_s": round(cold["checkpoint_s"], 3),
            "warnings": cold["warnings"],
            "append_bytes": add,
            "append_lines": st.lines,
            "append_s": round(append_s, 4),
            "append_mb_s": round(add / append_s / 1e6, 1),
            "restart_s": round(restart["s"], 3),
            "restart_rss_mb": round(restart["rss_mb"], 1),
            "bench_peak_rss_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
            ),
        }
        print(f"{'phase':<26} {'time':>9} {'MB/s':>8} {'peak RSS':>9}")
        rows = [
            ("scan (I/O floor)", scan["s"], size, scan["rss_mb"]),
            ("parse (json.loads floor)", parse["s"], size, parse["rss_mb"]),
            ("cold reader", cold["s"], size, cold["rss_mb"]),
            (f"append {args.append_mb:g} MB (live)", append_s, add, None),
            ("restart + append", restart["s"], add, restart["rss_mb"]),
        ]
        for name, secs, nbytes, rss in rows:
            rss_s = f"{rss:.0f} MB" if rss is not None else "-"
            print(f"{name:<26} {secs:>8.3f}s {nbytes / secs / 1e6:>8.1f} {rss_s:>9}")
        print(
            f"cold/parse {result['cold_vs_parse']}x, cold/scan {result['cold_vs_scan']}x; "
            f"checkpoint {cold['checkpoint_bytes'] / 1e3:.0f} kB"
        )
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {RESULTS.relative_to(REPO)}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
