"""Benchmark: throughput of the stream sanitizer against a plain copy of the same bytes.

Run from the repository root:

    .venv/bin/python benchmarks/bench_sanitize.py [--mb 4] [--repeat 15] [--chunks 65536,100]

It builds three data sets of about `--mb` MB each (deterministic, seeded):

- `plain`: ASCII log lines of ~100 characters, no escape sequence;
- `colour`: agent-like output (tool calls, diffs, test results) with an SGR every few words,
  256-colour and truecolour included;
- `hostile`: text mixed with OSC 52 clipboard writes, titles, hyperlinks, DCS, cursor and screen
  controls, report requests, `ESC c`, 8-bit C1, NUL, bidi overrides and invalid UTF-8.

For each data set and each chunk size it measures, alternating the measurements in the same run
(fair against drift in machine load): `StreamSanitizer.feed` over the data in chunks of that size,
and the baselines `bytes(memoryview(data))` (a real copy) and `data.decode()` (UTF-8 decoding, `errors="replace"`),
chunked the same way. It also times one line at a time through `ansi_to_text` against
`rich.text.Text.from_ansi` (lines per second) on the coloured lines.

It prints a table and writes the same figures to benchmarks/results/sanitize.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rich.text import Text  # noqa: E402

from fleet_tui.core.sanitize import StreamSanitizer  # noqa: E402
from fleet_tui.present.ansi import ansi_to_text  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "sanitize.json"
SEED = 20261126

WORDS = (
    "worker request processed ok cache miss retry queue item path api user token model reply "
    "tool call read file write edit test passed failed build step run diff hunk line"
).split()
HOSTILE = [
    "\x1b]52;c;ZXZpbCBjbGlwYm9hcmQgY29udGVudA==\x07",
    "\x1b]0;pwned\x1b\\",
    "\x1b]8;;http://evil.example/\x1b\\click here\x1b]8;;\x1b\\",
    "\x1bPq#0;2;0;0;0#1!6~-\x1b\\",
    "\x1b[6n",
    "\x1b[?1049h",
    "\x1b[2J\x1b[H",
    "\x1b[10;20H",
    "\x1bc",
    "\x1b(0",
    "\x9b2J",
    "\x9d0;title\x9c",
    "\x00",
    "\u202e",
    "\r",
    "\x1b[200~",
]


def make_plain(rng: random.Random, size: int) -> bytes:
    lines: list[str] = []
    total = 0
    while total < size:
        words = " ".join(rng.choice(WORDS) for _ in range(10))
        line = (
            f"2026-11-26 04:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}"
            f" INFO {words} id={rng.randrange(10**6)} ms={rng.random() * 100:.1f}"
        )[:100]
        lines.append(line)
        total += len(line) + 1
    return ("\n".join(lines) + "\n").encode()


def make_colour(rng: random.Random, size: int) -> bytes:
    styles = [
        "\x1b[1m",
        "\x1b[2m",
        "\x1b[31m",
        "\x1b[32m",
        "\x1b[1;33m",
        "\x1b[38;5;244m",
        "\x1b[38;2;120;200;80m",
        "\x1b[48;5;236m",
        "\x1b[4m",
    ]
    lines: list[str] = []
    total = 0
    while total < size:
        parts: list[str] = []
        for _ in range(4):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4)))
            parts.append(f"{rng.choice(styles)}{words}\x1b[0m")
        prefix = rng.choice(["● ", "✓ ", "  ⎿ ", "+ ", "- ", "> "])
        line = prefix + " ".join(parts)
        lines.append(line)
        total += len(line.encode()) + 1
    return ("\n".join(lines) + "\n").encode()


def make_hostile(rng: random.Random, size: int) -> bytes:
    out: list[bytes] = []
    total = 0
    while total < size:
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
        seq = rng.choice(HOSTILE).encode()
        if rng.random() < 0.1:
            seq += b"\xff\xc3"  # invalid UTF-8
        chunk = words.encode() + seq + (b"\n" if rng.random() < 0.2 else b" ")
        out.append(chunk)
        total += len(chunk)
    return b"".join(out)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def run_sanitizer(chunks: list[bytes]) -> int:
    san = StreamSanitizer()
    n = 0
    for c in chunks:
        n += len(san.feed(c))
    return n + len(san.flush())


def run_copy(chunks: list[bytes]) -> int:
    # bytes(b) of a bytes object returns the same object in CPython: copy through a memoryview.
    n = 0
    for c in chunks:
        n += len(bytes(memoryview(c)))
    return n


def run_decode(chunks: list[bytes]) -> int:
    n = 0
    for c in chunks:
        n += len(c.decode("utf-8", "replace"))
    return n


def time_once(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(
    datasets: dict[str, bytes], chunk_sizes: list[int], repeat: int
) -> list[dict[str, Any]]:
    cases: list[tuple[str, int, str, Callable[[], object]]] = []
    for name, data in datasets.items():
        for size in chunk_sizes:
            chunks = chunked(data, size)
            runners: dict[str, Callable[[list[bytes]], int]] = {
                "sanitize": run_sanitizer,
                "copy": run_copy,
                "decode": run_decode,
            }
            for kind, runner in runners.items():
                cases.append((name, size, kind, partial(runner, chunks)))
    samples: dict[tuple[str, int, str], list[float]] = {(n, s, k): [] for n, s, k, _ in cases}
    for case in cases:  # warm-up (regex compile, caches)
        case[3]()
    for r in range(repeat):
        rot = r % len(cases)
        for name, size, kind, call in cases[rot:] + cases[:rot]:
            samples[(name, size, kind)].append(time_once(call))
    rows: list[dict[str, Any]] = []
    for name, data in datasets.items():
        for size in chunk_sizes:
            mb = len(data) / 1e6
            med = {
                k: statistics.median(samples[(name, size, k)])
                for k in ("sanitize", "copy", "decode")
            }
            best = {k: min(samples[(name, size, k)]) for k in ("sanitize", "copy", "decode")}
            sanitize_mbps = mb / med["sanitize"]
            rows.append(
                {
                    "dataset": name,
                    "bytes": len(data),
                    "chunk": size,
                    "mb_per_s": {k: round(mb / v, 1) for k, v in med.items()},
                    "mb_per_s_best": {k: round(mb / v, 1) for k, v in best.items()},
                    "us_per_100_bytes": round(100 / sanitize_mbps, 2),
                    "slowdown_vs_decode": round(med["sanitize"] / med["decode"], 1),
                    "slowdown_vs_copy": round(med["sanitize"] / med["copy"], 1),
                    "output_chars": run_sanitizer(chunked(data, size)),
                }
            )
    return rows


def measure_lines(data: bytes, repeat: int, max_lines: int = 5000) -> dict[str, Any]:
    lines = data.decode().split("\n")[:max_lines]

    def ours() -> None:
        for line in lines:
            ansi_to_text(line)

    def rich_from_ansi() -> None:
        for line in lines:
            Text.from_ansi(line)

    ours()
    rich_from_ansi()
    t_ours: list[float] = []
    t_rich: list[float] = []
    for r in range(max(3, repeat // 3)):
        pair = [(ours, t_ours), (rich_from_ansi, t_rich)]
        for fn, acc in pair if r % 2 == 0 else pair[::-1]:
            acc.append(time_once(fn))
    n = len(lines)
    return {
        "lines": n,
        "avg_line_chars": round(sum(map(len, lines)) / n, 1),
        "lines_per_s": {
            "ansi_to_text": round(n / statistics.median(t_ours)),
            "Text.from_ansi": round(n / statistics.median(t_rich)),
        },
    }


def print_report(rows: list[dict[str, Any]], lines: dict[str, Any], repeat: int) -> None:
    print()
    print(f"Medians over {repeat} alternating repeats; MB/s of input bytes (higher is better).")
    head = (
        f"{'data':>8} {'MB':>5} {'chunk':>6} {'sanitize':>9} {'decode':>8} {'copy':>8} "
        f"{'x decode':>9} {'us/100B':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        m = r["mb_per_s"]
        print(
            f"{r['dataset']:>8} {r['bytes'] / 1e6:>5.1f} {r['chunk']:>6} {m['sanitize']:>9.1f} "
            f"{m['decode']:>8.1f} {m['copy']:>8.1f} {r['slowdown_vs_decode']:>9.1f} "
            f"{r['us_per_100_bytes']:>8.2f}"
        )
    print()
    lps = lines["lines_per_s"]
    print(
        f"coloured lines ({lines['lines']}, ~{lines['avg_line_chars']:.0f} chars) to Rich Text, "
        f"lines/s: ansi_to_text {lps['ansi_to_text']:,}  Text.from_ansi {lps['Text.from_ansi']:,}"
    )
    slowest = min(r["mb_per_s"]["sanitize"] for r in rows)
    print(
        f"goal >= 10 MB/s (an agent can write 10 MB/s): slowest case {slowest:.1f} MB/s -> "
        f"{'met' if slowest >= 10 else 'MISSED'}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--mb", type=float, default=4.0, help="size of each data set, MB")
    p.add_argument("--repeat", type=int, default=15, help="repeats per measurement (median)")
    p.add_argument("--chunks", default="65536,100", help="feed sizes in bytes, comma-separated")
    p.add_argument("--out", default=str(RESULTS), help="JSON results file")
    args = p.parse_args(argv)
    chunk_sizes = [int(x) for x in args.chunks.split(",") if x.strip()]
    size = int(args.mb * 1e6)
    rng = random.Random(SEED)
    datasets = {
        "plain": make_plain(rng, size),
        "colour": make_colour(rng, size),
        "hostile": make_hostile(rng, size),
    }
    rows = measure(datasets, chunk_sizes, args.repeat)
    lines = measure_lines(datasets["colour"], args.repeat)
    print_report(rows, lines, args.repeat)
    doc = {
        "schema": "fleet_tui.bench.sanitize/v1",
        "generated_at": datetime.now(UTC).isoformat(),
        "command": " ".join([".venv/bin/python", "benchmarks/bench_sanitize.py", *sys.argv[1:]]),
        "repeat": args.repeat,
        "seed": SEED,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_after": list(os.getloadavg()),
        },
        "throughput": rows,
        "lines_to_rich_text": lines,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
