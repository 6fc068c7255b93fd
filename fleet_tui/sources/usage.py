"""Token use read from the runtimes' own files: Claude Code transcripts and Codex rollouts, read
incrementally through an index kept in the state dir.

The index is a cache of what these files said (offsets, de-duplication keys, daily sums); it is
the only thing this module writes. Deleting it costs one full re-read (and hands out the Codex
rate-limit samples still in the rollouts once more).

Rules (the pure parts are in `fleet_tui.core.usage`): a Claude Code response is counted once per
(message id, request id) (message id alone without a request id), its largest line kept, across
files and runs; Codex `token_count` events count their `last_token_usage` (else the delta of
`total_token_usage`), with cached input reported as cache read; a forked rollout's replay of its
parent is counted once (see `UsageIndex._read_codex`).

Why sqlite3 (stdlib) and not a JSON file: de-duplication must hold across files and across runs,
so the index remembers one key per counted response (hundreds of thousands for a year of heavy
use). A JSON file would have to be loaded and rewritten whole on every run, which costs more than
reading a few appended lines; sqlite looks up only the keys of the new lines, updates rows in
place, and its transactions keep two concurrent refreshes (the dashboard's poll and a `usage`
run) from counting the same lines twice.

Only regular files are read (a FIFO or a link to `/dev/zero` named `*.jsonl` is skipped, never
opened), and their strings are made valid Unicode before they reach the index. Keys are stored as 64-bit BLAKE2b hashes (an
`INTEGER PRIMARY KEY`: 8 bytes a row; a collision needs ~4e9 responses to become likely).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet_tui.core.usage import (
    PROJECT_PREFIX,
    Attribution,
    BadRecord,
    Bucket,
    CodexTotal,
    RateSample,
    TokenCount,
    Tokens,
    agents_by_cwd,
    claude_record,
    codex_event_tokens,
    codex_rate_samples,
    larger,
    thin_samples,
    today_by_agent,
)
from fleet_tui.errors import NotReadYet
from fleet_tui.protocol.files import NotRegularFile, loads_valid, open_regular_binary, read_regular
from fleet_tui.sources.usage_paths import (
    INDEX_VERSION,
    claude_roots,
    codex_home,
    index_path,
)

MAX_LINE_BYTES = 32 * 1024 * 1024
"""Longer lines are skipped (and reported): memory stays bounded whatever a file holds."""
CHUNK_BYTES = 4 * 1024 * 1024
_TAIL = 32  # bytes before the offset remembered to notice a file rewritten in place
_MAX_PROBLEMS = 20
_MAX_PENDING_SAMPLES = 20_000
_CORRUPT = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB

CLAUDE = "claude"
CODEX = "codex"

if TYPE_CHECKING:
    from fleet_tui.model.records import FleetSnapshot


# -- where the files are -------------------------------------------------------------------------


# claude_roots, codex_home and index_path are in `sources.usage_paths`.


@dataclass(frozen=True, slots=True)
class Found:
    path: str
    kind: str  # CLAUDE | CODEX
    dev: int
    ino: int
    size: int
    mtime_ns: int
    project: str  # Claude: the project folder under projects/ ("" for Codex)


def _walk(top: str, kind: str, project: str | None) -> Iterator[Found]:
    """Files of one kind under `top` (no symlinked folders followed: no loops)."""
    try:
        it = os.scandir(top)
    except OSError:
        return
    with it:
        for entry in it:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    yield from _walk(entry.path, kind, name if project is None else project)
                    continue
                if not name.endswith(".jsonl"):
                    continue
                if kind == CODEX and not name.startswith("rollout-"):
                    continue
                st = entry.stat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue  # a FIFO, a device, a link to one: never opened (it would block)
            yield Found(
                entry.path, kind, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, project or ""
            )


def discover(roots: Sequence[Path], codex: Path | None) -> list[Found]:
    """Every transcript (`<root>/projects/**/*.jsonl`, sub-agent files included) and rollout
    (`<codex>/sessions/**/rollout-*.jsonl`, `<codex>/archived_sessions/**`). Rollouts come
    sorted by file name (their creation time), so a forked session's parent is read first."""
    found: list[Found] = []
    for root in roots:
        found.extend(_walk(str(root / "projects"), CLAUDE, None))
    if codex is not None:
        rollouts = [
            f
            for sub in ("sessions", "archived_sessions")
            for f in _walk(str(codex / sub), CODEX, "")
        ]
        rollouts.sort(key=lambda f: (os.path.basename(f.path), f.path))
        found.extend(rollouts)
    return found


SESSIONS_PATH = ("hooks", "sessions.json")  # written by the hook adapters
_SESSIONS_MAX_BYTES = 4 * 1024 * 1024


def session_agents(state_dir: Path | None) -> dict[str, str]:
    """Runtime session id -> agent name, as the hook adapters noted them (a hook knows its
    pane): a transcript of such a session is that agent's, whatever its working directory.
    Empty when there is no such note or it cannot be read."""
    if state_dir is None:
        return {}
    try:
        doc = loads_valid(read_regular(state_dir.joinpath(*SESSIONS_PATH), _SESSIONS_MAX_BYTES))
    except (OSError, ValueError):
        return {}
    known = doc.get("sessions") if isinstance(doc, dict) else None
    if not isinstance(known, dict):
        return {}
    return {
        sid: v[0]
        for sid, v in known.items()
        if isinstance(v, list) and v and isinstance(v[0], str) and v[0]
    }


# -- time ----------------------------------------------------------------------------------------


def tz_fingerprint() -> str:
    """What the local time zone is, as far as dates of days go (the index keeps local days)."""
    return json.dumps(
        [time.timezone, time.altzone, time.daylight, list(time.tzname), os.environ.get("TZ", "")]
    )


def _parse_ts(ts: str) -> datetime:
    try:
        dt = datetime.fromisoformat(ts)
    except ValueError:
        raise BadRecord(f"timestamp: not a date ('{ts[:40]}')") from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _local_day(dt: datetime, ts: str) -> str:
    try:
        return dt.astimezone().date().isoformat()
    except (OverflowError, OSError, ValueError):  # year 1 or 9999 moved across a day line
        raise BadRecord(f"timestamp: out of range ('{ts[:40]}')") from None


class _Days:
    """Local day (and epoch seconds) of RFC 3339 timestamps; UTC ones cached by minute."""

    def __init__(self) -> None:
        self._minutes: dict[str, str] = {}

    def day(self, ts: str) -> str:
        if len(ts) >= 17 and ts[-1] == "Z" and ts[10] == "T":
            key = ts[:16]
            found = self._minutes.get(key)
            if found is None:
                _parse_ts(ts)  # the rest of it must be a date too
                found = _local_day(_parse_ts(key + ":00+00:00"), ts)
                self._minutes[key] = found
            return found
        return _local_day(_parse_ts(ts), ts)


def epoch(ts: str) -> float:
    try:
        return _parse_ts(ts).timestamp()
    except (OverflowError, OSError, ValueError):
        raise BadRecord(f"timestamp: out of range ('{ts[:40]}')") from None


def _version() -> str:
    """What the index's sums depend on: its layout and the local time zone."""
    return f"{INDEX_VERSION} {tz_fingerprint()}"


def _key(*parts: str) -> int:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# -- the index -----------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);
CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, kind TEXT, dev INT, ino INT, size INT,
    mtime INT, off INT, line INT, tail BLOB, state TEXT);
CREATE TABLE IF NOT EXISTS seen(k INTEGER PRIMARY KEY, b INT, i INT, o INT, cw INT, cr INT);
CREATE TABLE IF NOT EXISTS buckets(id INTEGER PRIMARY KEY, day TEXT, runtime TEXT, model TEXT,
    cwd TEXT, session TEXT, i INT, o INT, cw INT, cr INT, n INT);
CREATE TABLE IF NOT EXISTS sessions(sid TEXT PRIMARY KEY, root TEXT);
CREATE TABLE IF NOT EXISTS samples(window TEXT, minute INT, observed REAL, minutes INT,
    used REAL, resets REAL, PRIMARY KEY(window, minute));
CREATE TABLE IF NOT EXISTS panes(day TEXT, cwd TEXT, agent TEXT, PRIMARY KEY(day, cwd, agent));
"""
PANE_DAYS = 7
"""Days of pane directories kept (`UsageIndex.remember_panes`); older ones are dropped."""


@dataclass(slots=True)
class _FileRow:
    kind: str
    dev: int
    ino: int
    size: int
    mtime: int
    off: int
    line: int
    tail: bytes
    state: str


@dataclass
class RefreshStats:
    """What one refresh did; `problems` holds the first few skipped lines as 'file:line: why'."""

    files: int = 0
    files_read: int = 0
    bytes_read: int = 0
    records: int = 0
    reread: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def problem(self, path: str, line: int, why: str) -> None:
        self.problem_count += 1
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(f"{path}:{line}: {why}")


class UsageIndex:
    """Token use of the given sources, summed per (local day, runtime, model, cwd, session).

    `refresh()` reads what was appended since the last refresh (of this process or any other
    sharing the state dir): per file it remembers device, inode, size, the offset after the last
    complete line (a partial last line waits until it is complete), the line number there and
    the bytes just before it. A file whose inode changed, that shrank below the offset, or whose
    bytes before the offset differ is read again from the start; de-duplication keys make that
    safe. Keep one instance per poller: a refresh where nothing changed costs a directory walk.
    """

    def __init__(
        self,
        state_dir: Path | None,
        roots: Sequence[Path],
        codex: Path | None,
        *,
        max_line_bytes: int | None = None,
    ) -> None:
        self.roots = list(roots)
        self.codex = codex
        self.max_line = max_line_bytes or MAX_LINE_BYTES
        self.warning: str | None = None
        self.path: Path | None = None
        if state_dir is not None:
            self.path = index_path(state_dir, self.roots, codex)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                try:
                    self._open(self.path)
                except sqlite3.DatabaseError as exc:
                    if getattr(exc, "sqlite_errorcode", None) not in _CORRUPT:
                        raise
                    # A cache, damaged (a crash, a disk error): set aside, rebuilt from the files.
                    aside = self.path.with_name(self.path.name + ".corrupt")
                    os.replace(self.path, aside)
                    for suffix in ("-wal", "-shm"):
                        with contextlib.suppress(OSError):
                            os.unlink(str(self.path) + suffix)
                    self.warning = f"usage index {self.path} was damaged ({exc}): moved to "
                    self.warning += f"{aside.name}, rebuilt from the files"
                    self._open(self.path)
            except (OSError, sqlite3.Error) as exc:
                self.warning = f"usage index {self.path} not usable ({exc}); reading everything"
                self.path = None
        if self.path is None:
            self.db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self._setup()
        self._gen = -1
        self._files: dict[str, _FileRow] = {}
        self._buckets: dict[int, list[Any]] = {}
        self._bucket_ids: dict[tuple[str, str, str, str, str], int] = {}
        self._sessions: dict[str, str] = {}
        self._next_bucket = 0
        self._panes: dict[str, set[tuple[str, str]]] = {}  # day -> (agent, cwd), as stored

    def _open(self, path: Path) -> None:
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            self._setup()
            self.db.execute("SELECT COUNT(*) FROM files").fetchone()
        except BaseException:
            self.db.close()
            raise

    def _setup(self) -> None:
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> UsageIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state kept in memory between refreshes ---------------------------------------------
    def _meta(self, k: str) -> str | None:
        row = self.db.execute("SELECT v FROM meta WHERE k=?", (k,)).fetchone()
        return None if row is None else str(row[0])

    def _generation(self) -> int:
        return int(self._meta("gen") or 0)

    def _load(self) -> None:
        """(Re)load files, sums and sessions; wipe everything when made for another version
        or another local time zone (days are local)."""
        version = _version()
        if self._meta("version") != version:
            # Sums are redone from the files; what was handed out as rate-limit samples is not
            # (it is in usage.jsonl already), so those marks and the pending samples stay.
            for table in ("files", "seen", "buckets", "sessions"):
                self.db.execute(f"DELETE FROM {table}")
            self.db.execute("DELETE FROM meta WHERE k NOT LIKE 'rl:%'")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES('version', ?)", (version,))
        self._files = {
            r[0]: _FileRow(*r[1:])
            for r in self.db.execute(
                "SELECT path, kind, dev, ino, size, mtime, off, line, tail, state FROM files"
            )
        }
        self._buckets = {r[0]: list(r[1:]) for r in self.db.execute("SELECT * FROM buckets")}
        self._bucket_ids = {(v[0], v[1], v[2], v[3], v[4]): k for k, v in self._buckets.items()}
        self._next_bucket = max(self._buckets, default=0)
        self._sessions = dict(self.db.execute("SELECT sid, root FROM sessions").fetchall())

    # -- reading -----------------------------------------------------------------------------
    def refresh(self) -> RefreshStats:
        """Read what was appended; commit offsets and sums in one transaction."""
        stats = RefreshStats()
        found = discover(self.roots, self.codex)
        stats.files = len(found)
        if self._generation() != self._gen or self._gen < 0:
            # A load that wipes the sums writes: take the write lock first (waiting for another
            # refresh), since a read transaction that turns into a write fails at once.
            wipe = self._meta("version") != _version()
            self.db.execute("BEGIN IMMEDIATE" if wipe else "BEGIN")
            try:
                self._load()
                self._gen = self._generation()
            finally:
                self.db.execute("COMMIT")
        if not any(self._stale(f) for f in found) and not self._gone(found):
            return stats
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if self._generation() != self._gen:
                self._load()
            self._read(found, stats)
            gen = self._generation() + 1
            self.db.execute("INSERT OR REPLACE INTO meta VALUES('gen', ?)", (str(gen),))
            self.db.execute("COMMIT")
            self._gen = gen
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self._gen = -1
            raise
        return stats

    def _stale(self, f: Found) -> bool:
        row = self._files.get(f.path)
        return row is None or self._stale_row(row, f)

    @staticmethod
    def _stale_row(row: _FileRow, f: Found) -> bool:
        return (row.dev, row.ino, row.size, row.mtime) != (f.dev, f.ino, f.size, f.mtime_ns)

    def _gone(self, found: list[Found]) -> bool:
        return len(self._files) != len(found)

    def _read(self, found: list[Found], stats: RefreshStats) -> None:
        paths = {f.path for f in found}
        moved = {
            (r.dev, r.ino): p for p, r in self._files.items() if p not in paths
        }  # renamed files (a rollout archived) keep their offset
        cand: dict[int, tuple[int, Tokens]] = {}
        samples: list[RateSample] = []
        days = _Days()
        changed: list[tuple[str, _FileRow]] = []
        for f in found:
            row = self._files.get(f.path)
            if row is None and (f.dev, f.ino) in moved:
                row = self._files.get(moved.pop((f.dev, f.ino)))
            if row is not None and not self._stale_row(row, f):
                if f.path not in self._files:
                    changed.append((f.path, row))
                continue
            row = self._resume(f, row, stats)
            if f.kind == CLAUDE:
                self._read_claude(f, row, cand, days, stats)
            else:
                self._read_codex(f, row, cand, samples, days, stats)
            changed.append((f.path, row))
        stats.records = self._merge(cand)
        self.db.executemany(
            "INSERT OR REPLACE INTO files VALUES(?,?,?,?,?,?,?,?,?,?)",
            [
                (p, r.kind, r.dev, r.ino, r.size, r.mtime, r.off, r.line, r.tail, r.state)
                for p, r in changed
            ],
        )
        for p, r in changed:
            self._files[p] = r
        for p in [p for p in self._files if p not in paths]:
            del self._files[p]
            self.db.execute("DELETE FROM files WHERE path=?", (p,))
        self._queue_samples(samples)

    def _resume(self, f: Found, row: _FileRow | None, stats: RefreshStats) -> _FileRow:
        """Where to read from: the remembered offset, or the start when the file is new, was
        replaced (inode), shrank, or its bytes before the offset changed."""
        if row is not None and (row.dev, row.ino) == (f.dev, f.ino) and f.size >= row.off:
            if row.off == 0 or self._tail(f.path, row.off) == row.tail:
                return _FileRow(
                    f.kind, f.dev, f.ino, f.size, f.mtime_ns, row.off, row.line, row.tail, row.state
                )
        if row is not None:
            stats.reread.append(f.path)
        return _FileRow(f.kind, f.dev, f.ino, f.size, f.mtime_ns, 0, 0, b"", "")

    @staticmethod
    def _tail(path: str, off: int) -> bytes:
        try:
            with open_regular_binary(path) as fh:
                fh.seek(max(0, off - _TAIL))
                return fh.read(min(off, _TAIL))
        except OSError:
            return b""

    def _blocks(self, f: Found, row: _FileRow, stats: RefreshStats) -> Iterator[tuple[int, bytes]]:
        """Blocks of complete lines appended since `row.off`, with the line number before each;
        advances `row.off`/`row.line`/`row.tail`. Lines longer than the limit are skipped."""
        try:
            fh = open_regular_binary(f.path)
        except NotRegularFile as exc:
            stats.problem(f.path, row.line, f"not a regular file ({exc.kind})")
            return
        except OSError as exc:
            stats.problem(f.path, row.line, f"not readable ({exc.strerror})")
            return
        stats.files_read += 1
        with fh:
            fh.seek(row.off)
            buf = b""
            skipping = 0  # bytes of an over-long line discarded so far
            while True:
                chunk = fh.read(CHUNK_BYTES)
                if not chunk:
                    break
                stats.bytes_read += len(chunk)
                if skipping:
                    nl = chunk.find(b"\n")
                    if nl < 0:
                        skipping += len(chunk)
                        continue
                    row.off += skipping + nl + 1
                    row.line += 1
                    stats.problem(f.path, row.line, f"line longer than {self.max_line} bytes")
                    skipping = 0
                    chunk = chunk[nl + 1 :]
                buf = buf + chunk if buf else chunk
                nl = buf.rfind(b"\n")
                if nl >= 0:
                    block = buf[:nl]
                    yield row.line, block
                    row.off += nl + 1
                    row.line += block.count(b"\n") + 1
                    buf = buf[nl + 1 :]
                if len(buf) > self.max_line:
                    skipping, buf = len(buf), b""
            fh.seek(max(0, row.off - _TAIL))
            row.tail = fh.read(min(row.off, _TAIL))

    def _bucket(self, day: str, runtime: str, model: str, cwd: str, session: str) -> int:
        key = (day, runtime, model, cwd, session)
        bid = self._bucket_ids.get(key)
        if bid is None:
            self._next_bucket += 1
            bid = self._next_bucket
            self._bucket_ids[key] = bid
            self._buckets[bid] = [*key, 0, 0, 0, 0, 0]
        return bid

    def _read_claude(
        self,
        f: Found,
        row: _FileRow,
        cand: dict[int, tuple[int, Tokens]],
        days: _Days,
        stats: RefreshStats,
    ) -> None:
        loads, needle, limit = loads_valid, b'"input_tokens"', self.max_line
        fallback = PROJECT_PREFIX + f.project
        for base, block in self._blocks(f, row, stats):
            for i, line in enumerate(block.split(b"\n"), start=base + 1):
                if needle not in line:
                    continue
                if len(line) > limit:
                    stats.problem(f.path, i, f"line longer than {limit} bytes")
                    continue
                try:
                    rec = claude_record(loads(line))
                    if rec is None:
                        continue
                    day = days.day(rec.timestamp)
                except BadRecord as exc:
                    stats.problem(f.path, i, str(exc))
                    continue
                except ValueError:
                    stats.problem(f.path, i, "not valid JSON (truncated or malformed line)")
                    continue
                bid = self._bucket(day, CLAUDE, rec.model, rec.cwd or fallback, rec.session or "")
                k = _key(CLAUDE, rec.key)
                old = cand.get(k)
                if old is None or larger(rec.tokens, old[1]):
                    cand[k] = (bid, rec.tokens)

    def _read_codex(
        self,
        f: Found,
        row: _FileRow,
        cand: dict[int, tuple[int, Tokens]],
        samples: list[RateSample],
        days: _Days,
        stats: RefreshStats,
    ) -> None:
        """Token use of one rollout. Fork rule: a rollout whose `session_meta` has
        `forked_from_id` starts with a replay of its parent's history. Its events are keyed by
        the lineage's root session and the cumulative `total_token_usage`, so a replayed event
        has the key of the parent's original and is counted once (whichever file is read
        first); and events timestamped before the fork's own start (`session_meta.timestamp`)
        are replay, never counted, whatever their totals. Replayed events still advance the
        running total, so the fork's first own event is a delta from where the parent was."""
        st: dict[str, Any] = json.loads(row.state) if row.state else {}
        loads = loads_valid
        for base, block in self._blocks(f, row, stats):
            for i, line in enumerate(block.split(b"\n"), start=base + 1):
                if (
                    b'"token_count"' not in line
                    and b'"turn_context"' not in line
                    and b'"session_meta"' not in line
                ):
                    continue
                try:
                    self._codex_line(loads(line), st, f, cand, samples, days)
                except BadRecord as exc:
                    stats.problem(f.path, i, str(exc))
                except ValueError:
                    stats.problem(f.path, i, "not valid JSON (truncated or malformed line)")
        row.state = json.dumps(st, separators=(",", ":"))

    def _codex_line(
        self,
        obj: Any,
        st: dict[str, Any],
        f: Found,
        cand: dict[int, tuple[int, Tokens]],
        samples: list[RateSample],
        days: _Days,
    ) -> None:
        if not isinstance(obj, dict):
            raise BadRecord("not a JSON object")
        kind, payload = obj.get("type"), obj.get("payload")
        if not isinstance(payload, dict):
            return
        if kind == "session_meta":
            if "sid" in st:  # a replayed parent's meta inside a fork: the first one rules
                return
            sid = payload.get("id") if isinstance(payload.get("id"), str) else None
            sid = sid or os.path.basename(f.path)
            parent = payload.get("forked_from_id")
            root = sid
            if isinstance(parent, str) and parent:
                root = self._sessions.get(parent, parent)
                start = payload.get("timestamp") or obj.get("timestamp")
                try:
                    st["fork_start"] = epoch(start) if isinstance(start, str) else None
                except BadRecord:  # the totals rule alone then tells the replay
                    st["fork_start"] = None
            st["sid"], st["root"] = sid, root
            if isinstance(payload.get("cwd"), str):
                st["cwd"] = payload["cwd"]
            if sid not in self._sessions:
                self._sessions[sid] = root
                self.db.execute("INSERT OR REPLACE INTO sessions VALUES(?, ?)", (sid, root))
            return
        if kind == "turn_context":
            for k in ("model", "cwd"):
                if isinstance(payload.get(k), str) and payload[k]:
                    st[k] = payload[k]
            return
        if kind != "event_msg" or payload.get("type") != "token_count":
            return
        ts = obj.get("timestamp")
        if not isinstance(ts, str):
            raise BadRecord("timestamp: missing")
        at = epoch(ts)
        p = st.get("prev")
        prev: CodexTotal | None = (p[0], p[1], p[2], p[3]) if p else None
        tokens, total = codex_event_tokens(payload.get("info"), prev)
        if total is not None:
            st["prev"] = list(total)
        fork_start = st.get("fork_start")
        if fork_start is not None and at < fork_start:
            return  # the parent's history, replayed
        samples.extend(codex_rate_samples(payload.get("rate_limits"), at))
        if tokens is None:
            return
        sid = st.get("sid") or os.path.basename(f.path)
        if total is not None:
            key = _key(CODEX, st.get("root") or sid, *map(str, total))
        else:
            key = _key(CODEX, sid, ts, *map(str, tokens))
        bid = self._bucket(
            days.day(ts), CODEX, st.get("model") or "(unknown)", st.get("cwd") or "", sid
        )
        cand.setdefault(key, (bid, tokens))

    def _merge(self, cand: dict[int, tuple[int, Tokens]]) -> int:
        """Fold this refresh's records into the sums, against what earlier refreshes counted:
        a key seen before is replaced only by a larger record (its old sum taken back)."""
        existing: dict[int, tuple[int, Tokens]] = {}
        if cand and self.db.execute("SELECT 1 FROM seen LIMIT 1").fetchone():
            keys = list(cand)
            for n in range(0, len(keys), 900):
                part = keys[n : n + 900]
                marks = ",".join("?" * len(part))
                for k, b, *tok in self.db.execute(
                    f"SELECT k, b, i, o, cw, cr FROM seen WHERE k IN ({marks})",
                    part,
                ):
                    existing[k] = (b, (tok[0], tok[1], tok[2], tok[3]))
        buckets = self._buckets
        dirty: set[int] = set()
        writes: list[tuple[int, int, int, int, int, int]] = []
        counted = 0
        for k, (bid, tok) in cand.items():
            old = existing.get(k)
            if old is not None:
                if not larger(tok, old[1]):
                    continue
                ob = buckets.get(old[0])
                if ob is not None:
                    for j in range(4):
                        ob[5 + j] -= old[1][j]
                    ob[9] -= 1
                    dirty.add(old[0])
            else:
                counted += 1
            b = buckets[bid]
            b[5] += tok[0]
            b[6] += tok[1]
            b[7] += tok[2]
            b[8] += tok[3]
            b[9] += 1
            dirty.add(bid)
            writes.append((k, bid, *tok))
        self.db.executemany("INSERT OR REPLACE INTO seen VALUES(?,?,?,?,?,?)", writes)
        self.db.executemany(
            "INSERT OR REPLACE INTO buckets VALUES(?,?,?,?,?,?,?,?,?,?,?)",
            [(bid, *buckets[bid]) for bid in sorted(dirty)],
        )
        return counted

    # -- rate-limit samples ------------------------------------------------------------------
    def _recorded_minutes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for window, minute in self.db.execute("SELECT window, MAX(minute) FROM samples GROUP BY 1"):
            out[window] = int(minute)
        for k, v in self.db.execute("SELECT k, v FROM meta WHERE k LIKE 'rl:%'"):
            out[k[3:]] = max(out.get(k[3:], -1), int(v))
        return out

    def _queue_samples(self, samples: list[RateSample]) -> None:
        fresh = thin_samples(samples, self._recorded_minutes())
        self.db.executemany(
            "INSERT OR REPLACE INTO samples VALUES(?,?,?,?,?,?)",
            [
                (
                    s.window,
                    int(s.observed_at // 60),
                    s.observed_at,
                    s.window_minutes,
                    s.used_percent,
                    s.resets_at,
                )
                for s in fresh
            ],
        )
        (count,) = self.db.execute("SELECT COUNT(*) FROM samples").fetchone()
        if count > _MAX_PENDING_SAMPLES:
            self.db.execute(
                "DELETE FROM samples WHERE rowid IN (SELECT rowid FROM samples "
                "ORDER BY observed LIMIT ?)",
                (count - _MAX_PENDING_SAMPLES,),
            )

    def take_samples(self) -> list[RateSample]:
        """The rate-limit samples read since the last call (at most one per window per minute,
        each newer than any handed out before), and forget them: the caller records them."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            rows = self.db.execute(
                "SELECT window, minute, observed, minutes, used, resets FROM samples "
                "ORDER BY observed, window"
            ).fetchall()
            last: dict[str, int] = {}
            for window, minute, *_ in rows:
                last[window] = max(last.get(window, -1), int(minute))
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES(?, ?)",
                [(f"rl:{w}", str(m)) for w, m in last.items()],
            )
            self.db.execute("DELETE FROM samples")
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return [RateSample(r[2], r[0], int(r[3]), float(r[4]), r[5]) for r in rows]

    # -- where agents worked today ----------------------------------------------------------
    def remember_panes(self, day: str, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Note that these agents' panes worked in these directories on `day` (a local date),
        and return every (agent, directory) noted for that day, by any process sharing the
        state dir: an agent whose session ended, or that moved, keeps the day's use it made
        there (`Attribution` gets them with the live panes). Not a cache of the files: kept
        when the sums are redone; days older than PANE_DAYS are dropped."""
        known = self._panes.get(day)
        if known is None:
            rows = self.db.execute("SELECT agent, cwd FROM panes WHERE day=?", (day,)).fetchall()
            known = self._panes[day] = {(str(a), str(c)) for a, c in rows}
            for old in [d for d in self._panes if d < day]:
                del self._panes[old]
        new = {(a, c) for a, c in pairs if a and c} - known
        if new:
            cutoff = (date.fromisoformat(day) - timedelta(days=PANE_DAYS)).isoformat()
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(
                    "INSERT OR IGNORE INTO panes VALUES(?, ?, ?)",
                    sorted((day, c, a) for a, c in new),
                )
                self.db.execute("DELETE FROM panes WHERE day < ?", (cutoff,))
                rows = self.db.execute(
                    "SELECT agent, cwd FROM panes WHERE day=?", (day,)
                ).fetchall()
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            known.update((str(a), str(c)) for a, c in rows)
        return sorted(known)

    def noted_panes(self) -> dict[str, list[tuple[str, str]]]:
        """Every day's noted (agent, directory) pairs (the last PANE_DAYS days)."""
        out: dict[str, list[tuple[str, str]]] = {}
        for day, cwd, agent in self.db.execute("SELECT day, cwd, agent FROM panes ORDER BY 1, 3"):
            out.setdefault(str(day), []).append((str(agent), str(cwd)))
        return out

    # -- results -----------------------------------------------------------------------------
    def buckets(self) -> list[Bucket]:
        """The sums, as of the last refresh."""
        return [
            Bucket(v[0], v[1], v[2], v[3], v[4], (v[5], v[6], v[7], v[8]), v[9])
            for v in self._buckets.values()
            if v[9] > 0 or any(v[5:9])
        ]


def tokens_today(
    index: UsageIndex,
    agents_by_cwd: Mapping[str, str],
    now: datetime,
    agents_by_session: Mapping[str, str] | None = None,
) -> dict[str, TokenCount]:
    """Tokens per agent name on the local day of `now`, cache reads apart (`TokenCount`), after
    an incremental refresh (a directory walk and nothing else when no file grew). Blocking."""
    with contextlib.suppress(sqlite3.OperationalError):  # index busy: the last sums will do
        index.refresh()
    day = now.astimezone().date().isoformat()
    return today_by_agent(index.buckets(), Attribution(agents_by_cwd, agents_by_session), day)


def local_panes(snapshot: FleetSnapshot) -> list[tuple[str, str]]:
    """(agent, pane directory) of this host's agents with a pane: the transcripts read here
    are this host's."""
    return [
        (a.name, a.tmux.cwd)
        for a in snapshot.agents
        if a.is_agent and a.tmux is not None and a.tmux.cwd and not a.remote
    ]


def agents_today(
    snapshot: FleetSnapshot,
    found: Mapping[str, int],
    by_cwd: Mapping[str, str],
    by_session: Mapping[str, str],
) -> dict[str, int]:
    """Tokens today of this host's agents in the snapshot: those whose use can be told apart
    (a pane directory of their own today, live or earlier, or a session a hook named) get a
    number, 0 without use."""
    here = {a.name for a in snapshot.agents if a.is_agent and not a.remote}
    out: dict[str, int] = {
        name: TokenCount(0)
        for name in (*by_cwd.values(), *by_session.values())
        if name in here  # a name joined by '+' (a shared directory) never is
    }
    out.update({k: v for k, v in found.items() if k in out})
    return out


def attribution_today(
    index: UsageIndex, snapshot: FleetSnapshot, day: str, by_session: Mapping[str, str]
) -> tuple[Attribution, dict[str, str]]:
    """The attribution of `day`'s use: sessions the hooks saw, then the directories this host's
    agents worked in today: their live panes and those noted earlier (an agent whose session
    ended keeps its day). A directory that two agents worked in is theirs jointly ('a+b'),
    so neither gets a number for it. Notes the live panes (a write only when one is new)."""
    pairs = index.remember_panes(day, local_panes(snapshot))
    by_cwd = agents_by_cwd(pairs)
    return Attribution(by_cwd, by_session), by_cwd


class TodayTokens:
    """The dashboard's usage provider (`service.UsageProvider`): token use today per agent name,
    each a `TokenCount` (without cache reads, the cache reads beside).

    A call never waits on the files: it starts a refresh in a background thread when none is
    running and answers from the sums of the last finished one (nothing, so "not known" rather
    than 0, until the first, cold read is done; a later poll shows it). The refresh also notes
    the panes' directories of the call before it (`UsageIndex.remember_panes`): an agent keeps
    the day's use it made in a directory after its session ended. Agents with a known directory
    and no use today get 0; agents sharing one directory are left out (their use cannot be
    split). When the last refresh failed, a call raises with the reason (the poller marks the
    source degraded and keeps the last good answer).
    """

    def __init__(
        self,
        state_dir: Path | None,
        roots: Sequence[Path] | None = None,
        codex: Path | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.roots = list(roots) if roots is not None else claude_roots()
        self.codex = codex if codex is not None else codex_home()
        self.error: str | None = None
        self._index: UsageIndex | None = None
        self._buckets: list[Bucket] = []
        self._ready = False
        self._sessions: dict[str, str] = {}
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        # The panes of the last call, noted by the next refresh; what is noted for a day.
        self._panes: tuple[str, list[tuple[str, str]]] | None = None
        self._noted: dict[str, list[tuple[str, str]]] = {}

    def _refresh(self) -> None:
        try:
            if self._index is None:
                self._index = UsageIndex(self.state_dir, self.roots, self.codex)
            self._index.refresh()
            panes = self._panes
            if panes is not None:
                day, pairs = panes
                self._noted = {day: self._index.remember_panes(day, pairs)}
            self._buckets = self._index.buckets()
            self._sessions = session_agents(self.state_dir)
            self._ready = True
            self.error = None
        except Exception as exc:  # shown by the next call, never lost with the thread
            self.error = f"{type(exc).__name__}: {exc}"

    def __call__(self, snapshot: FleetSnapshot, now: datetime) -> dict[str, int]:
        day = now.astimezone().date().isoformat()
        live = local_panes(snapshot)
        with self._lock:
            # What the last FINISHED refresh left, taken before starting the next one: a
            # refresh that is quick to end cannot make this answer depend on thread timing.
            ready, error = self._ready, self.error
            buckets, by_session, noted = self._buckets, self._sessions, self._noted
            self._panes = (day, live)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._refresh, name="usage-refresh", daemon=True
                )
                self._worker.start()
        if error is not None:  # the poller shows the source degraded, with this reason
            raise RuntimeError(f"token use not read: {error}")
        if not ready:  # the first read is still going: unknown, not zero
            raise NotReadYet("token use: first read of the transcripts in progress")
        by_cwd = agents_by_cwd(sorted({*live, *noted.get(day, [])}))
        found = today_by_agent(buckets, Attribution(by_cwd, by_session), day)
        return agents_today(snapshot, found, by_cwd, by_session)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the running refresh (tests, and before closing)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
