"""`fleet-tui usage --json` against ccusage 17.2.1 (`ccusage daily --json --offline`) on the same
synthetic Claude Code transcripts, in the same run: cold (fresh state dir), unchanged re-run, and
incremental (after appending about 1 MB), with wall time and peak RSS of each child process, and
whether the per-day totals agree (with each other and with the generator's ground truth).

    .venv/bin/python benchmarks/bench_usage.py                  # 1 GB (generation ~15 s)
    .venv/bin/python benchmarks/bench_usage.py --size-mb 200 --repeat 1
    .venv/bin/python benchmarks/bench_usage.py --data /tmp/cc   # reuse data (appended to)

Data and the npm install live in a temporary folder, removed at the end (`--keep` keeps it).
Both tools group days in UTC (`TZ=UTC`, `--timezone UTC`). Peak RSS comes from `os.wait4` of
each child (its own maximum resident set). Results: benchmarks/results/usage.json.
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_transcripts import generate  # noqa: E402

CCUSAGE = "ccusage@17.2.1"
Days = dict[str, tuple[int, int, int, int]]


def run(argv: list[str], env: dict[str, str], out: Path) -> tuple[float, int, int]:
    """Run a child to completion; (wall seconds, peak RSS in KiB, exit status)."""
    with open(out, "wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.PIPE, cwd="/")
        assert proc.stderr is not None
        err = proc.stderr.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(f"{argv[:3]} exited {proc.returncode}: {err.decode()[-2000:]}\n")
    return wall, int(usage.ru_maxrss), proc.returncode


def ours_days(path: Path) -> Days:
    doc = json.loads(path.read_text())
    return {
        d["date"]: (
            d["input_tokens"],
            d["output_tokens"],
            d["cache_creation_tokens"],
            d["cache_read_tokens"],
        )
        for d in doc["days"]
    }


def ccusage_days(path: Path) -> Days:
    doc = json.loads(path.read_text())
    return {
        d["date"]: (
            d["inputTokens"],
            d["outputTokens"],
            d["cacheCreationTokens"],
            d["cacheReadTokens"],
        )
        for d in doc["daily"]
    }


def expected(manifests: list[dict[str, Any]], rule: str) -> Days:
    out: dict[str, list[int]] = {}
    for m in manifests:
        for day, tok in m[f"expected_{rule}"].items():
            acc = out.setdefault(day, [0, 0, 0, 0])
            for i in range(4):
                acc[i] += tok[i]
    return {d: (v[0], v[1], v[2], v[3]) for d, v in out.items()}


def diff(a: Days, b: Days) -> str:
    if a == b:
        return "identical"
    days = sorted(set(a) | set(b))
    bad = [d for d in days if a.get(d) != b.get(d)]
    names = ("input", "output", "cache write", "cache read")
    sums = [sum(v[i] for v in a.values()) - sum(v[i] for v in b.values()) for i in range(4)]
    shown = ", ".join(f"{n} {s:+,}" for n, s in zip(names, sums, strict=True) if s)
    return f"{len(bad)} of {len(days)} days differ (sum of differences: {shown or 'none'})"


def append_mb(data: Path, mb: float, seed: int) -> dict[str, Any]:
    """About `mb` MB of new sessions, appended to existing transcripts (as live sessions grow)."""
    extra = Path(tempfile.mkdtemp(prefix="ftuapp", dir=str(data.parent)))
    manifest = generate(extra, mb, seed=seed, days=3)
    files = sorted((data / "projects").rglob("*.jsonl"))[:10]
    new = sorted((extra / "projects").rglob("*.jsonl"))
    for i, src in enumerate(new):
        with open(files[i % len(files)], "ab") as fh:
            fh.write(src.read_bytes())
    shutil.rmtree(extra)
    return manifest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=float, default=1024)
    ap.add_argument("--append-mb", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=2, help="cold runs of each tool (alternated)")
    ap.add_argument("--growing", type=float, default=0.0, help="see gen_transcripts.py")
    ap.add_argument("--gen-time-limit", type=float, default=600.0, help="seconds")
    ap.add_argument("--data", type=Path, help="existing generated data (with expected.json)")
    ap.add_argument("--ccusage-prefix", type=Path, help="an existing npm prefix with ccusage")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "usage.json")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ftubench"))
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "node": subprocess.run(
            ["node", "--version"], capture_output=True, text=True
        ).stdout.strip(),
        "loadavg_before": os.getloadavg(),
    }
    try:
        data = a.data or tmp / "data"
        if a.data is None:
            print(f"generating {a.size_mb:g} MB of transcripts in {data} ...", flush=True)
            manifest = generate(data, a.size_mb, growing=a.growing, time_limit_s=a.gen_time_limit)
        else:
            manifest = json.loads((data / "expected.json").read_text())
        results["data"] = {k: v for k, v in manifest.items() if not k.startswith("expected")}
        print(f"data: {json.dumps(results['data'])}", flush=True)

        prefix = a.ccusage_prefix or tmp / "npm"
        cc_bin = prefix / "node_modules" / ".bin" / "ccusage"
        if not cc_bin.exists():
            print(f"npm install {CCUSAGE} ...", flush=True)
            subprocess.run(
                [
                    "npm",
                    "install",
                    "--silent",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                    str(prefix),
                    CCUSAGE,
                ],
                check=True,
            )
        python = str(REPO / ".venv" / "bin" / "python")
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("MOSAIC_", "CLAUDE"))}
        base_env.update(
            TZ="UTC", PYTHONPATH=str(REPO), TMUX_TMPDIR=str(tmp / "tmux"), HOME=str(tmp / "home")
        )
        (tmp / "tmux").mkdir()
        (tmp / "home").mkdir()
        cc_env = {**base_env, "CLAUDE_CONFIG_DIR": str(data)}
        cc_argv = ["node", str(cc_bin), "daily", "--json", "--offline", "--timezone", "UTC"]

        def ours(state: Path, out: Path) -> tuple[float, int, int]:
            argv = [
                python,
                "-m",
                "fleet_tui",
                "usage",
                "--json",
                "--claude-dir",
                str(data),
                "--codex-home",
                str(tmp / "no-codex"),
                "--state-dir",
                str(state),
            ]
            return run(argv, base_env, out)

        cold_ours: list[tuple[float, int]] = []
        cold_cc: list[tuple[float, int]] = []
        state = tmp / "state"
        for r in range(a.repeat):
            order = ("ours", "cc") if r % 2 == 0 else ("cc", "ours")
            for who in order:
                if who == "ours":
                    shutil.rmtree(state, ignore_errors=True)
                    w, rss, rc = ours(state, tmp / "ours.json")
                    assert rc == 0
                    cold_ours.append((w, rss))
                    print(f"  cold fleet-tui: {w:.2f} s, {rss / 1024:.0f} MiB", flush=True)
                else:
                    w, rss, rc = run(cc_argv, cc_env, tmp / "cc.json")
                    assert rc == 0
                    cold_cc.append((w, rss))
                    print(f"  ccusage:        {w:.2f} s, {rss / 1024:.0f} MiB", flush=True)
        truth_largest = expected([manifest], "keep_largest")
        truth_first = expected([manifest], "keep_first")
        o_days, c_days = ours_days(tmp / "ours.json"), ccusage_days(tmp / "cc.json")
        results["cold"] = {
            "fleet_tui_s": [round(w, 3) for w, _ in cold_ours],
            "fleet_tui_rss_kib": [rss for _, rss in cold_ours],
            "ccusage_s": [round(w, 3) for w, _ in cold_cc],
            "ccusage_rss_kib": [rss for _, rss in cold_cc],
            "ratio_ccusage_over_fleet_tui": round(
                statistics.median(w for w, _ in cold_cc)
                / statistics.median(w for w, _ in cold_ours),
                2,
            ),
            "days": len(o_days),
            "fleet_tui_vs_ccusage": diff(o_days, c_days),
            "fleet_tui_vs_truth_keep_largest": diff(o_days, truth_largest),
            "ccusage_vs_truth_keep_first": diff(c_days, truth_first),
        }

        unchanged = [ours(state, tmp / "ours2.json") for _ in range(3)]
        results["unchanged_rerun_s"] = [round(w, 3) for w, _, _ in unchanged]
        results["unchanged_rerun_rss_kib"] = max(rss for _, rss, _ in unchanged)

        size_before = sum(p.stat().st_size for p in (data / "projects").rglob("*.jsonl"))
        app = append_mb(data, a.append_mb, seed=99)
        grown = sum(p.stat().st_size for p in (data / "projects").rglob("*.jsonl")) - size_before
        if a.data is not None:  # keep the ground truth of the kept data right
            merged = dict(manifest)
            for rule in ("keep_largest", "keep_first"):
                merged[f"expected_{rule}"] = expected([manifest, app], rule)
            (data / "expected.json").write_text(json.dumps(merged, indent=1))
        w_inc, rss_inc, rc = ours(state, tmp / "ours3.json")
        assert rc == 0
        w_cc2, _rss_cc2, rc = run(cc_argv, cc_env, tmp / "cc3.json")
        assert rc == 0
        o3, c3 = ours_days(tmp / "ours3.json"), ccusage_days(tmp / "cc3.json")
        results["incremental"] = {
            "appended_bytes": grown,
            "fleet_tui_s": round(w_inc, 3),
            "fleet_tui_rss_kib": rss_inc,
            "ccusage_full_rerun_s": round(w_cc2, 3),
            "fleet_tui_vs_ccusage": diff(o3, c3),
            "fleet_tui_vs_truth_keep_largest": diff(o3, expected([manifest, app], "keep_largest")),
        }
        results["loadavg_after"] = os.getloadavg()
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(results, indent=2))
        print(json.dumps(results, indent=2))
    finally:
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
