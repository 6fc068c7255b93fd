"""Process source: the runtime under each pane (claude, codex, pi, opencode, stub), CPU and memory.

A runtime is named by its command name, its arguments (argv[0] and the script a node or python
runs) and, for native installs whose file name says nothing (Claude Code's installer runs
`~/.local/share/claude/versions/2.1.3`), by its executable's path (`/proc/PID/exe`).

Reads /proc directly: a pane's tree comes from `/proc/PID/task/PID/children`, so a poll touches
only the processes under the fleet's panes instead of scanning every process on the host (what
psutil's `children()` does). Linux only, like the rest of the fleet (systemd, uids).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import NamedTuple

from fleet_tui.model.records import TreeSample

PROC = Path("/proc")
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MAX_TREE = 64
_SHELLS = frozenset({"sh", "bash", "zsh", "fish", "dash", "ksh", "tmux", "env", "sudo", "login"})
_AMBIGUOUS = frozenset({"node", "python", "python3", "bun", "deno", "npx", "uv", "uvx"})


class ProcStat(NamedTuple):
    """One `/proc/PID/stat`, the fields a sample uses (a tuple: ~1,000-3,000 are made per poll)."""

    pid: int
    ppid: int
    comm: str
    ticks: int
    start_ticks: int
    rss_bytes: int
    state: str = "R"  # field 3: "Z" a zombie, "X" dead


def _read(path: str) -> bytes:
    """A whole small file (/proc entries), without pathlib or buffered-IO overhead: a poll of a
    300-agent fleet reads ~900 of them."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 65536)
        # A /proc read may return less than asked with more to come, but never less than a
        # page minus one record (seq_file fills its page-sized buffer; cmdline fills the
        # request): a short answer well below a page is the whole file.
        if len(data) < 2048:
            return data
        chunks = [data]
        while data := os.read(fd, 65536):
            chunks.append(data)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_stat(pid: int, proc: Path = PROC) -> ProcStat | None:
    try:
        raw = _read(f"{proc}/{pid}/stat")
    except OSError:
        return None
    lp, rp = raw.find(b"("), raw.rfind(b")")
    if lp < 0 or rp < 0:
        return None
    comm = raw[lp + 1 : rp].decode("utf-8", "replace")
    rest = raw[rp + 2 :].split(None, 22)  # fields up to rss; the ~30 after it are not needed
    try:
        # fields after comm start at field 3 (state): ppid=4, utime=14, stime=15, start=22, rss=24
        return ProcStat(
            pid=pid,
            ppid=int(rest[1]),
            comm=comm,
            ticks=int(rest[11]) + int(rest[12]),
            start_ticks=int(rest[19]),
            rss_bytes=int(rest[21]) * _PAGE,
            state=rest[0][:1].decode("ascii", "replace"),
        )
    except (IndexError, ValueError):
        return None


def read_cmdline(pid: int, proc: Path = PROC) -> list[str]:
    try:
        raw = _read(f"{proc}/{pid}/cmdline")
    except OSError:
        return []
    return [p.decode("utf-8", "replace") for p in raw.split(b"\0") if p]


def children(pid: int, proc: Path = PROC) -> list[int]:
    try:
        raw = _read(f"{proc}/{pid}/task/{pid}/children")
    except OSError:
        return []
    return [int(x) for x in raw.split()]


def pid_alive(pid: int, proc: Path = PROC) -> bool:
    """True when a process with this pid exists on this host (zombies count as dead)."""
    st = read_stat_state(pid, proc)
    return st is not None and st not in ("Z", "X")


def read_stat_state(pid: int, proc: Path = PROC) -> str | None:
    try:
        raw = _read(f"{proc}/{pid}/stat")
    except OSError:
        return None
    rp = raw.rfind(b")")
    return raw[rp + 2 : rp + 3].decode("ascii", "replace") if rp >= 0 else None


def read_exe(pid: int, proc: Path = PROC) -> str | None:
    """The path of the executable a process runs (`/proc/PID/exe`), or None when unreadable."""
    try:
        return os.readlink(f"{proc}/{pid}/exe")
    except OSError:
        return None


# Codex's native binary as its release archives (and older npm packages) name it:
# `codex-<target triple>`; the kernel's 15-byte command name cuts it ("codex-x86_64-un").
_CODEX_NATIVE = re.compile(
    r"^codex-(x86_64|aarch64|arm64|armv7|i686)-"
    r"(unknown-linux-(musl|gnu|gnueabihf|musleabihf)|apple-darwin|pc-windows-msvc)$"
)
_CODEX_TRIPLES = (
    "codex-x86_64-unknown-linux-musl",
    "codex-x86_64-unknown-linux-gnu",
    "codex-aarch64-unknown-linux-musl",
    "codex-aarch64-unknown-linux-gnu",
)
_COMM_LEN = 15


def _is_codex_native(name: str, *, comm: bool = False) -> bool:
    """`codex-<target triple>`, or (for a command name) the first 15 bytes of one."""
    if _CODEX_NATIVE.match(name):
        return True
    return comm and len(name) == _COMM_LEN and any(t.startswith(name) for t in _CODEX_TRIPLES)


_VERSION = re.compile(r"^\d+\.\d+\.\d+")


def _runtime_of_path(path: str) -> str | None:
    """Name a runtime from where its program lives, for installs whose file name says nothing:
    Claude Code's native installer runs `~/.local/share/claude/versions/2.1.3`, npm's Codex runs
    `.../@openai/codex/vendor/<triple>/codex/codex` or `.../bin/codex-<triple>`, and a node
    runtime may be given its package's script by its real path."""
    low = path.lower().removesuffix(" (deleted)")  # an upgrade replaced the file under it
    parts = [p for p in low.split("/") if p]
    if (
        len(parts) >= 3
        and parts[-2] == "versions"
        and parts[-3] in ("claude", "claude-code")
        and _VERSION.match(parts[-1])
    ):
        return "claude"
    if "/@anthropic-ai/claude-code/" in low:
        return "claude"
    if "/@openai/codex/" in low:
        return "codex"
    if parts and _is_codex_native(parts[-1]):
        return "codex"
    return None


def detect_runtime(comm: str, argv: list[str], exe: str | None = None) -> str | None:
    """Name the agent runtime a process is, from its name, its arguments and its executable's
    path (`exe`); None if none."""
    names = [comm.lower()]
    names += [os.path.basename(a).lower() for a in argv[:3]]
    for i, name in enumerate(names):
        base = name.removesuffix(".js").removesuffix(".mjs").removesuffix(".exe")
        if base in ("claude", "claude-code"):
            return "claude"
        if base in ("codex", "codex-tui", "codex-exec") or _is_codex_native(base, comm=i == 0):
            return "codex"
        if base == "opencode":
            return "opencode"
        if base in ("pi", "pi-coding-agent"):
            return "pi"
    if "stub" in argv and any(
        a in ("fleet-tui", "fleet_tui") or a.endswith("/fleet-tui") for a in argv[:4]
    ):
        return "stub"
    for path in ([exe] if exe else []) + argv[:3]:
        found = _runtime_of_path(path)
        if found is not None:
            return found
    return None


class Member(NamedTuple):
    """A process seen under a pane by the last sample: the pane's process (`root`), its start
    time in clock ticks (`/proc/PID/stat` field 22) and its place in the walk (0 = the pane's
    process; a smaller `order` is never deeper)."""

    root: int
    start_ticks: int
    order: int


class ProcessSampler:
    """Samples pane process trees. Kept across polls, CPU is the rate since the last poll;
    on the first sample it is the lifetime average. `members` holds every process the last
    sample walked, by pid (what other sources match pids to panes with, without a second
    walk)."""

    def __init__(self, proc: Path = PROC) -> None:
        self.proc = proc
        self.members: dict[int, Member] = {}
        self._prev: dict[tuple[int, int], tuple[int, float]] = {}
        self._cmd_cache: dict[tuple[int, int], str | None] = {}
        self._uptime_base = self._boot_time()

    def _boot_time(self) -> float:
        try:
            up = float((self.proc / "uptime").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return time.time()
        return time.time() - up

    def sample(self, pane_pids: list[int]) -> dict[int, TreeSample]:
        """Walk the trees under `pane_pids`: this sample replaces the last one (`members`, and the
        CPU counters of processes no longer seen are dropped)."""
        out: dict[int, TreeSample] = {}
        seen: set[tuple[int, int]] = set()
        members: dict[int, Member] = {}
        alive: set[int] = set()
        self._walk(pane_pids, out, seen, members, alive)
        self.members = members
        self.alive = alive
        for key in list(self._prev):
            if key not in seen:
                del self._prev[key]
                self._cmd_cache.pop(key, None)
        return out

    def _walk(
        self,
        pane_pids: list[int],
        out: dict[int, TreeSample],
        seen: set[tuple[int, int]],
        members: dict[int, Member],
        alive: set[int],
    ) -> None:
        now = time.time()
        for root in pane_pids:
            tree = self._tree(root)
            if not tree:
                continue
            for order, st in enumerate(tree):
                members.setdefault(st.pid, Member(root, st.start_ticks, order))
                if st.state not in ("Z", "X"):
                    alive.add(st.pid)
            cpu = 0.0
            rss = 0
            runtime: str | None = None
            runtime_pid = root
            for st in tree:
                key = (st.pid, st.start_ticks)
                seen.add(key)
                prev = self._prev.get(key)
                if prev is None:
                    started = self._uptime_base + st.start_ticks / _CLK_TCK
                    span = max(now - started, 1e-3)
                    cpu += (st.ticks / _CLK_TCK) / span * 100
                else:
                    span = max(now - prev[1], 1e-3)
                    cpu += max(st.ticks - prev[0], 0) / _CLK_TCK / span * 100
                self._prev[key] = (st.ticks, now)
                rss += st.rss_bytes
                if runtime is None:
                    found = self._runtime_of(st, key)
                    if found is not None:
                        runtime, runtime_pid = found, st.pid
            out[root] = TreeSample(runtime_pid, runtime, round(cpu, 1), rss, len(tree))

    def _runtime_of(self, st: ProcStat, key: tuple[int, int]) -> str | None:
        if key in self._cmd_cache:
            return self._cmd_cache[key]
        comm = st.comm.lower()
        if comm in _SHELLS:
            found = None
        elif comm in _AMBIGUOUS or comm.startswith("python"):
            found = detect_runtime(st.comm, read_cmdline(st.pid, self.proc))
        else:
            found = detect_runtime(st.comm, [])
            if found is None:
                # a native install is named by its path only (its command name may be
                # "2.1.3"): the arguments, then the executable itself
                found = detect_runtime(
                    st.comm, read_cmdline(st.pid, self.proc), read_exe(st.pid, self.proc)
                )
        self._cmd_cache[key] = found
        return found

    def _tree(self, root: int) -> list[ProcStat]:
        first = read_stat(root, self.proc)
        if first is None:
            return []
        tree = [first]
        queue = [root]
        while queue and len(tree) < MAX_TREE:
            pid = queue.pop(0)
            for child in children(pid, self.proc):
                st = read_stat(child, self.proc)
                if st is not None:
                    tree.append(st)
                    queue.append(child)
        return tree
