"""Synthetic Claude Code transcripts for the usage benchmark: deterministic, realistic shapes.

Writes `<out>/projects/<project>/<session>.jsonl` files in the documented transcript format
(RUNTIME-FORMATS.md): user lines (prompts and tool results of 0.3 to 40 KB), assistant responses
of one to three lines each (one per content block, same `message.id` and `requestId`), sub-agent
files under `<session>/subagents/` and resumed sessions that start by repeating lines of an earlier
session (duplicates across files), spread over `--days` days in UTC. Also writes
`<out>/expected.json`: the per-day token totals that the generator knows to be right, under the
keep-largest rule (the truth) and under keep-first (ccusage's rule).

With `--growing 0` (the default) every line of one response carries the same usage, so both rules
give the same totals; with `--growing F` a fraction F of multi-line responses has output_tokens
growing across its lines (as streaming snapshots do), and the two rules differ by exactly the
amount recorded in expected.json.

    .venv/bin/python benchmarks/gen_transcripts.py --out /tmp/cc --size-mb 1024
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

MODELS = ("claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001")
WORDS = (
    "the build fails because the fixture starts tmux before the socket folder exists so we "
    "create it first then retry the test and check that the pane shows the prompt again while "
    "the dashboard keeps polling every two seconds without blocking its event loop"
).split()


def _filler(rng: random.Random, size: int) -> str:
    out: list[str] = []
    n = 0
    while n < size:
        w = WORDS[rng.randrange(len(WORDS))]
        out.append(w)
        n += len(w) + 1
    return " ".join(out)


class Gen:
    def __init__(self, out: Path, seed: int, days: int, growing: float) -> None:
        self.out = out
        self.rng = random.Random(seed)
        self.start = datetime(2026, 9, 1, tzinfo=UTC)
        self.days = days
        self.growing = growing
        self.bytes = 0
        self.files = 0
        self.lines = 0
        self.responses = 0
        # day -> [input, output, cache write, cache read] for keep-largest and keep-first
        self.largest: dict[str, list[int]] = {}
        self.first: dict[str, list[int]] = {}
        self.texts = [_filler(self.rng, s) for s in (300, 800, 2000, 5000, 12000, 40000)]
        self.seq = 0

    def _id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}{self.seq:012d}{self.rng.getrandbits(40):010x}"

    def _count(
        self, day: str, largest: tuple[int, ...] | None, first: tuple[int, ...] | None
    ) -> None:
        for book, tok in ((self.largest, largest), (self.first, first)):
            if tok is None:
                continue
            acc = book.setdefault(day, [0, 0, 0, 0])
            for i in range(4):
                acc[i] += tok[i]

    def session(self, project: str, cwd: str, replay: list[str]) -> list[str]:
        """One session file's lines; returns the assistant lines (for later replays)."""
        rng = self.rng
        sid = f"{rng.getrandbits(64):016x}-{self.seq:08d}"
        day0 = self.start + timedelta(days=rng.randrange(self.days), seconds=rng.randrange(86000))
        ts = day0
        model = MODELS[rng.randrange(len(MODELS))]
        lines: list[str] = list(replay)
        assistants: list[str] = []
        turns = rng.randint(20, 120)
        for _ in range(turns):
            ts += timedelta(seconds=rng.randint(5, 300))
            text = self.texts[rng.choices(range(6), weights=(30, 30, 20, 10, 7, 3))[0]]
            lines.append(
                json.dumps(
                    {
                        "parentUuid": None,
                        "isSidechain": False,
                        "userType": "external",
                        "cwd": cwd,
                        "sessionId": sid,
                        "version": "2.1.120",
                        "gitBranch": "main",
                        "type": "user",
                        "message": {"role": "user", "content": text},
                        "uuid": self._id("u-"),
                        "timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    },
                    separators=(",", ":"),
                )
            )
            mid, req = self._id("msg_01"), self._id("req_011C")
            usage = [
                rng.randint(1, 40),
                rng.randint(20, 4000),
                rng.randint(0, 30000),
                rng.randint(0, 200000),
            ]
            blocks = rng.choices((1, 2, 3), weights=(40, 40, 20))[0]
            grow = blocks > 1 and rng.random() < self.growing
            first_out = max(1, usage[1] // 4) if grow else usage[1]
            days: list[str] = []  # each line's day: a response can straddle midnight
            for b in range(blocks):
                out = usage[1] if (not grow or b == blocks - 1) else first_out
                ts += timedelta(milliseconds=rng.randint(50, 3000))
                days.append(ts.date().isoformat())
                content = self.texts[rng.choices(range(4), weights=(40, 35, 20, 5))[0]]
                line = json.dumps(
                    {
                        "parentUuid": None,
                        "isSidechain": False,
                        "userType": "external",
                        "cwd": cwd,
                        "sessionId": sid,
                        "version": "2.1.120",
                        "gitBranch": "main",
                        "message": {
                            "id": mid,
                            "type": "message",
                            "role": "assistant",
                            "model": model,
                            "content": [{"type": "text", "text": content}],
                            "stop_reason": None,
                            "usage": {
                                "input_tokens": usage[0],
                                "cache_creation_input_tokens": usage[2],
                                "cache_read_input_tokens": usage[3],
                                "cache_creation": {
                                    "ephemeral_5m_input_tokens": 0,
                                    "ephemeral_1h_input_tokens": usage[2],
                                },
                                "output_tokens": out,
                                "service_tier": "standard",
                            },
                        },
                        "requestId": req,
                        "type": "assistant",
                        "uuid": self._id("a-"),
                        "timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    },
                    separators=(",", ":"),
                )
                lines.append(line)
                assistants.append(line)
            self.responses += 1
            tok = tuple(usage)
            first = (usage[0], first_out, usage[2], usage[3])
            # The response counts on the day of the line kept: the first line when all carry
            # the same usage (both rules keep the first of equals), else the last (largest)
            # for keep-largest and the first for keep-first. Replayed copies carry the same
            # timestamps as the originals, so they change nothing here.
            self._count(days[-1] if grow else days[0], tok, None)
            self._count(days[0], None, first)
        path = self.out / "projects" / project / f"{sid}.jsonl"
        self._write(path, lines)
        if rng.random() < 0.15:  # a sub-agent file repeating some of this session's lines
            sub = self.out / "projects" / project / sid / "subagents" / f"agent-{sid[:8]}.jsonl"
            k = rng.randint(1, max(1, len(assistants) // 5))
            self._write(sub, assistants[-k:])
        return assistants

    def _write(self, path: Path, lines: list[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = ("\n".join(lines) + "\n").encode()
        path.write_bytes(data)
        self.bytes += len(data)
        self.files += 1
        self.lines += len(lines)


def generate(
    out: Path,
    size_mb: float,
    *,
    seed: int = 1,
    days: int = 45,
    growing: float = 0.0,
    projects: int = 40,
    time_limit_s: float = 900.0,
) -> dict[str, object]:
    """Write transcripts until `size_mb` (or the time limit) is reached; return the manifest."""
    gen = Gen(out, seed, days, growing)
    target = int(size_mb * 1024 * 1024)
    t0 = time.monotonic()
    names = [f"-w-proj{p:02d}" for p in range(projects)]
    previous: dict[str, list[str]] = {}
    while gen.bytes < target and time.monotonic() - t0 < time_limit_s:
        p = gen.rng.randrange(projects)
        project = names[p]
        replay: list[str] = []
        if project in previous and gen.rng.random() < 0.2:  # a resumed session
            prev = previous[project]
            replay = prev[-gen.rng.randint(1, max(1, len(prev) // 3)) :]
        previous[project] = gen.session(project, f"/w/proj{p:02d}", replay)
    manifest = {
        "seed": seed,
        "days": days,
        "growing": growing,
        "bytes": gen.bytes,
        "files": gen.files,
        "lines": gen.lines,
        "responses": gen.responses,
        "seconds": round(time.monotonic() - t0, 1),
        "complete": gen.bytes >= target,
        "expected_keep_largest": {d: gen.largest[d] for d in sorted(gen.largest)},
        "expected_keep_first": {d: gen.first[d] for d in sorted(gen.first)},
    }
    (out / "expected.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--size-mb", type=float, default=1024)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=int, default=45)
    ap.add_argument("--growing", type=float, default=0.0)
    ap.add_argument("--time-limit", type=float, default=900.0, help="seconds")
    a = ap.parse_args()
    if a.out.exists() and any(a.out.iterdir()):
        sys.stderr.write(f"{a.out}: not empty\n")
        return 2
    os.makedirs(a.out, exist_ok=True)
    m = generate(
        a.out, a.size_mb, seed=a.seed, days=a.days, growing=a.growing, time_limit_s=a.time_limit
    )
    print(json.dumps({k: v for k, v in m.items() if not k.startswith("expected")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
