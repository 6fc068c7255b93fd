"""Claude Code's own session status files: a state source for Claude agents without a heartbeat.

Claude Code keeps one file per live process, `<config>/sessions/<pid>.json` (`<config>`: each
folder of `CLAUDE_CONFIG_DIR`, comma-separated, else `~/.claude`; see `usage.claude_roots`), and
rewrites its `status` at once on every turn edge, where its `idle_prompt` hook fires only after
60 s. Nothing documents the file (Claude Code's internal "concurrentSessions" registry), so what
is read here is what public readers of it observed:

- Fields of the current generation (Claude Code 2.1.139 and later): `pid`, `sessionId`, `cwd`,
  `startedAt` and `updatedAt` (epoch ms), `procStart`, `status`, `statusUpdatedAt` (epoch ms),
  `version`, `kind` (interactive, bg, daemon, daemon-worker), `entrypoint`, `name`, `pidDomain`,
  `peerProtocol`, `messagingSocketPath`. An older generation, `pid-<n>.json` with `session_id`
  and `cwd` only, is left behind by old builds: it has no status and is not read.
  (anthropics/claude-code's `utils/concurrentSessions.ts` as mirrored on the web; herdrdev/herdr
  issue 3414, measured on 2.1.236 and 2.1.278; sleep2agi/agent-network issue 18; docs.rs
  `claude-wrapper::sessions` and `tmx-cli::agents::session_meta`.)
- `status`: `busy` (mid-turn), `idle` (at the prompt), `waiting` (a permission or selection
  dialog is up), and in later builds (readers name 2.1.141 and 2.1.197) `shell`, written IN
  PLACE OF `idle` when a turn ended while a background shell (a `run_in_background` Bash task)
  still runs (nimbalyst/nimbalyst issue 1246 and PR 1247, omnigent-ai/omnigent PR 4132,
  herdrdev/herdr issue 3414). The agent is at its prompt then, and its next turn starts only
  when a person types or the shell finishes, so `shell` is shown as idle (the reason says a
  background shell runs), never as busy: showing it busy is the bug those readers fixed.
  Sessions hosted outside the terminal (headless `-p`, the desktop app) may never write a
  status: nothing is known of them here.
- The file is rewritten in place: a read may catch it half-written (a fresh file that does not
  parse keeps its last good record until it settles).
- `procStart` is the pid guard: on Linux the process's start time, `/proc/<pid>/stat` field 22
  in clock ticks since boot, written verbatim as a string (herdr 3414: matched on 14 of 14 live
  sessions). A file outlives a process that crashed, and its pid can be reused; a record is
  trusted only when the pid is alive and its start time equals `procStart`; on a full poll
  the process-tree walk has just read that start time, on a heartbeat-only poll (whose tree is
  the last full poll's) `/proc/<pid>/stat` is read again and a zombie is refused.
  `pidDomain` is not understood and not used: a process of another pid namespace names a pid
  that is either absent here or another process, whose start time differs.

Cheap and quiet, per poll: a `stat` of each folder (listed again only when it changed: a file
created, removed or renamed), and a `stat` of the files whose pid is in the tree of a pane whose
agent has no heartbeat (`ProcessSampler.members`, filtered by the collector; nothing else is
looked at). A file is opened again only when its identity (inode, size, mtime, ctime) changed,
or while it is too fresh to trust a same-size rewrite in the same clock tick. Files larger than
`MAX_BYTES` and names past `MAX_FILES` per folder are skipped. A missing folder, an unreadable or half-written file, bad JSON,
missing fields, an unknown status: the record is ignored, never an exception out of the source.
Read-only: nothing here writes to Claude Code's folders.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet_tui.model.records import AgentState, InferredState
from fleet_tui.protocol.files import loads_valid, read_regular
from fleet_tui.sources.procs import PROC, Member
from fleet_tui.sources.usage_paths import claude_roots

MAX_BYTES = 16 * 1024  # a record is ~600 bytes; a bigger file is not one
MAX_FILES = 4096  # names considered per folder and poll
# A file changed within this long may change again with the same stat (file times are coarse):
# it is opened on every poll until it settles (as the collector does with heartbeats).
SETTLED_NS = 2_000_000_000

# What each status means for the fleet, and the reason shown with it.
STATUS_STATES: dict[str, tuple[AgentState, str]] = {
    "waiting": (AgentState.WAITING_INPUT, "waiting"),
    "busy": (AgentState.BUSY, "busy"),
    "idle": (AgentState.IDLE, "idle"),
    "shell": (AgentState.IDLE, "shell (idle, a background shell runs)"),
}
REASON_PREFIX = "claude session file: "


@dataclass(frozen=True, slots=True)
class ClaudeSession:
    """One current-generation record, as read (not yet guarded: see `alive`)."""

    pid: int
    proc_start: int
    status: str  # a key of STATUS_STATES
    mtime_ns: int = 0

    @property
    def state(self) -> AgentState:
        return STATUS_STATES[self.status][0]

    @property
    def reason(self) -> str:
        return REASON_PREFIX + STATUS_STATES[self.status][1]


def _int(value: object) -> int | None:
    """A non-negative integer written as a number or as decimal digits; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str):
        text = value.strip()
        if 0 < len(text) <= 20 and text.isascii() and text.isdecimal():
            return int(text)
    return None


def parse_session(raw: bytes, name_pid: int, mtime_ns: int = 0) -> ClaudeSession | None:
    """The record in the bytes of `<name_pid>.json`, or None when it is not one we can trust:
    not a JSON object, no known `status`, no `procStart`, or a `pid` other than its name's."""
    try:
        data = loads_valid(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    status = data.get("status")
    if not isinstance(status, str):
        return None
    status = status.strip().lower()
    if status not in STATUS_STATES:
        return None
    proc_start = _int(data.get("procStart"))
    if proc_start is None:
        return None
    if "pid" in data and _int(data.get("pid")) != name_pid:
        return None
    return ClaudeSession(name_pid, proc_start, status, mtime_ns)


def alive(session: ClaudeSession, proc: Path = PROC) -> bool:
    """The pid guard: the record's process runs (not a zombie) and is the one that wrote it
    (its start time is the record's `procStart`). One read of `/proc/<pid>/stat`."""
    try:
        fd = os.open(f"{proc}/{session.pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        raw = os.read(fd, 4096)
    except OSError:
        return False
    finally:
        os.close(fd)
    rp = raw.rfind(b")")
    fields = raw[rp + 2 :].split() if rp >= 0 else []
    # after "(comm) ": state is field 3, starttime field 22
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return False
    try:
        return int(fields[19]) == session.proc_start
    except ValueError:
        return False


_Key = tuple[int, int, int, int, int]
_Entry = tuple[_Key | None, bytes, ClaudeSession | None]
# The state and reason of each status, built once (frozen records: shared by every snapshot).
_SHOWN = {
    k: InferredState(state=v[0], reason=REASON_PREFIX + v[1]) for k, v in STATUS_STATES.items()
}


def _settled(st: os.stat_result) -> bool:
    return time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) >= SETTLED_NS


class ClaudeSessionFiles:
    """Reads the session folders of every Claude Code config folder; one instance per collector
    (it keeps what it read: each folder's names while the folder is unchanged, each file's
    record while the file is). `files_read` counts files opened (for tests)."""

    def __init__(self, roots: Sequence[Path] | None = None, *, proc: Path = PROC) -> None:
        self.folders = [Path(r) / "sessions" for r in (claude_roots() if roots is None else roots)]
        self.proc = proc
        self.files_read = 0
        self.folders_listed = 0
        self._names: dict[Path, tuple[tuple[int, int, int, int], list[tuple[int, str]]]] = {}
        self._cache: dict[str, _Entry] = {}

    def _list(self, folder: Path) -> list[tuple[int, str]]:
        """(pid, path) of the `<pid>.json` names of a folder: listed again only when the folder
        changed (a file created, removed or renamed) or is too fresh to tell."""
        try:
            st = os.stat(folder)
        except OSError:
            self._names.pop(folder, None)
            return []
        key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._names.get(folder)
        if cached is not None and cached[0] == key and _settled(st):
            return cached[1]
        names: list[tuple[int, str]] = []
        try:
            with os.scandir(folder) as it:
                for _, entry in zip(range(MAX_FILES), it, strict=False):
                    stem, dot, ext = entry.name.partition(".")
                    if ext == "json" and dot and stem.isdigit() and stem.isascii():
                        names.append((int(stem), entry.path))
        except OSError:
            return []
        self.folders_listed += 1
        self._names[folder] = (key, names)
        return names

    def read(self, pids: Collection[int] | None = None) -> dict[int, ClaudeSession]:
        """Every parseable record, by pid (only those of `pids` when given). Not guarded."""
        out: dict[int, ClaudeSession] = {}
        cache: dict[str, _Entry] = {}
        for folder in self.folders:
            for pid, path in self._list(folder):
                if pids is not None and pid not in pids:
                    continue
                session = self._file(path, pid, cache)
                if session is not None:
                    have = out.get(pid)
                    if have is None or session.mtime_ns > have.mtime_ns:
                        out[pid] = session
        self._cache = cache
        return out

    def _file(self, path: str, pid: int, cache: dict[str, _Entry]) -> ClaudeSession | None:
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
            return None
        key: _Key | None = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev)
        if not _settled(st):
            key = None  # too fresh: its stat may not change with its next rewrite
        cached = self._cache.get(path)
        if key is not None and cached is not None and cached[0] == key:
            cache[path] = cached
            return cached[2]
        try:
            raw = read_regular(path, MAX_BYTES)
        except OSError:
            return None
        self.files_read += 1
        if cached is not None and cached[1] == raw:
            session = cached[2]
        else:
            session = parse_session(raw, pid, st.st_mtime_ns)
        if session is None and key is None and cached is not None and cached[2] is not None:
            # a fresh file that does not parse may be caught mid-write (Claude Code rewrites
            # it in place): keep the last good record until the file settles
            cache[path] = (None, cached[1], cached[2])
            return cached[2]
        cache[path] = (key, raw, session)
        return session

    def by_pane(
        self, members: Mapping[int, Member], *, walked_now: bool = False
    ) -> dict[int, InferredState]:
        """The state of each pane (by its process's pid) whose tree holds a Claude Code process
        with a trusted record: the one nearest the pane's process when there are several (a
        `claude -p` run by the agent's shell is not the agent). `walked_now`: `members` comes
        from a tree walk of this very poll (see `pane_states`). Never raises."""
        try:
            return pane_states(self.read(members.keys()), members, self.proc, walked_now=walked_now)
        except Exception:  # an undocumented format: whatever it turns into, the poll goes on
            self._cache.clear()
            self._names.clear()
            return {}


def pane_states(
    sessions: Mapping[int, ClaudeSession],
    members: Mapping[int, Member],
    proc: Path = PROC,
    *,
    walked_now: bool = False,
) -> dict[int, InferredState]:
    """Match records to panes: a record's pid must be in a pane's tree with the record's start
    time, and pass the guard (`alive`). A tree walked in this very poll read each process's
    start time a moment ago, which is the guard already (`walked_now`); the tree of an earlier
    poll (a heartbeat-only poll's) may name a process that ended since: checked again."""
    best: dict[int, tuple[int, ClaudeSession]] = {}
    for pid, session in sessions.items():
        member = members.get(pid)
        if member is None or member.start_ticks != session.proc_start:
            continue
        have = best.get(member.root)
        if have is not None and have[0] <= member.order:
            continue
        if walked_now or alive(session, proc):
            best[member.root] = (member.order, session)
    return {root: _SHOWN[s.status] for root, (_, s) in best.items()}
