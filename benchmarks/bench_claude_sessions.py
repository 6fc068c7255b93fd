"""Benchmark: what reading Claude Code's session files costs a poll (sources/claude_sessions.py).

Run from the repository root:

    .venv/bin/python benchmarks/bench_claude_sessions.py [--panes 300] [--others 1000]

Starts `--panes` real processes (`sleep`), writes one current-generation session file for each
in a temporary config folder beside `--others` files of other processes and of the legacy
generation (never looked at), and times `ClaudeSessionFiles.by_pane` with the members of a tree
walk: the first read (every file opened), then settled files (nothing opened; best of 5 runs of
20) on a full poll (`walked_now`: the walk's start times are the guard) and on a heartbeat-only
poll (each record's /proc/<pid>/stat read again). Prints one line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from fleet_tui.sources import claude_sessions as cs
from fleet_tui.sources.procs import Member, read_stat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--panes", type=int, default=300)
    ap.add_argument("--others", type=int, default=1000)
    args = ap.parse_args()
    procs = [subprocess.Popen(["sleep", "600"]) for _ in range(args.panes)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "claude" / "sessions"
            folder.mkdir(parents=True)
            members: dict[int, Member] = {}
            for i, p in enumerate(procs):
                st = read_stat(p.pid)
                assert st is not None
                root = 10_000_000 + i
                members[p.pid] = Member(root, st.start_ticks, 1)
                for j in range(2):  # the pane's shell and another child: no session file
                    members[20_000_000 + 3 * i + j] = Member(root, 1, j)
                record = {
                    "pid": p.pid,
                    "sessionId": "0b6c2f1e-5a7d-4c39-9a51-1f2e3d4c5b6a",
                    "cwd": "/w/app",
                    "procStart": str(st.start_ticks),
                    "status": "busy",
                    "version": "2.1.278",
                }
                (folder / f"{p.pid}.json").write_text(json.dumps(record))
            for i in range(args.others):
                name = f"pid-{i}.json" if i % 2 else f"{30_000_000 + i}.json"
                (folder / name).write_text('{"session_id": "x"}')
            files = cs.ClaudeSessionFiles([folder.parent])
            t0 = time.perf_counter()
            assert len(files.by_pane(members)) == args.panes
            first = time.perf_counter() - t0
            cs.SETTLED_NS = 0  # every file counts as settled from now on
            files.by_pane(members)
            opened = files.files_read
            best: dict[bool, float] = {}
            for walked in (True, False):
                runs = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    for _ in range(20):
                        files.by_pane(members, walked_now=walked)
                    runs.append((time.perf_counter() - t0) / 20)
                best[walked] = min(runs)
            assert files.files_read == opened
            print(
                f"{args.panes} Claude panes, {args.others} other files: first read "
                f"{first * 1e3:.1f} ms; settled: full poll {best[True] * 1e3:.2f} ms, "
                f"heartbeat-only poll {best[False] * 1e3:.2f} ms; files opened per settled "
                f"poll 0; folder listings {files.folders_listed}"
            )
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
