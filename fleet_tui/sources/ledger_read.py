"""Incremental readers of the state dir's append-only ledgers `usage.jsonl` and `spend.jsonl`.

Each read starts at the byte offset where the last one stopped and consumes whole lines only: a
partial last line (a writer mid-append) is left for the next read. A broken line (not JSON, a
field of the wrong type, a usage outside 0..100 %) is reported once as `file:line: field: why`
and skipped; nothing else is lost. A file that was replaced or truncated (another inode, a
shorter size, a different first line) is read again from the start. A ledger that is not a
regular file (a FIFO, `/dev/zero`, a link to one) is never read: it is one warning,
`usage.jsonl: not a regular file (a FIFO)`, and the other ledger still counts. Names in a line
(tenant, account, window, agent) are made valid Unicode; an account or window name carrying
control, escape or invisible characters is refused with its line (it would show as a second row
that looks exactly like the clean one).

Memory is bounded: spend is kept as sums per (tenant, account, hour) and per (tenant, agent, UTC
day) for RETAIN_DAYS before the newest hour (or before tomorrow, if that is sooner: a record
dated in 2099 prunes nothing), usage as the samples of the last 10 days per account window (at
most USAGE_MAX_SAMPLES each), warnings as the first MAX_WARNINGS plus a count. `checkpoint()` / `restore()` turn a reader's state
(offset included) into JSON-able data, which the service keeps in the state dir so that a
restart does not read a large ledger again. Read-only: this module never writes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from fleet_tui.model.series import Series
from fleet_tui.protocol.files import NotRegularFile, loads_valid, open_regular_binary, valid_str
from fleet_tui.protocol.names import row_name_problem

CHUNK = 4 << 20
MAX_LINE = 1 << 20
MAX_WARNINGS = 20
RETAIN_DAYS = 40
USAGE_RETAIN_S = 10 * 86400.0
USAGE_MAX_SAMPLES = 30_000
MAX_KEYS = 100_000  # distinct accounts x windows (usage) or accounts x hours (spend)
HEAD_BYTES = 256
CHECKPOINT_VERSION = 1


@dataclass
class Cursor:
    """Where the last read of a ledger stopped, and which file that was."""

    offset: int = 0
    line_no: int = 0
    inode: int | None = None
    head: str | None = None  # sha256 of the first HEAD_BYTES, to notice a replaced file


@dataclass
class ReadStats:
    lines: int = 0
    bytes: int = 0
    restarted: bool = False
    missing: bool = False
    error: str | None = None  # the ledger exists but cannot be read (a folder, no permission)


def _head_digest(f: Any, size: int) -> str:
    f.seek(0)
    return hashlib.sha256(f.read(min(HEAD_BYTES, size))).hexdigest()


def _open_at(path: Path, cur: Cursor, stats: ReadStats) -> BinaryIO | None:
    """The ledger opened at the cursor (None when there is no file). A replaced or truncated
    file resets the cursor to the start and sets `stats.restarted`."""
    try:
        f = open_regular_binary(path)  # the caller closes it
    except FileNotFoundError:
        stats.missing = True
        return None
    except NotRegularFile as exc:
        if exc.kind == "a directory":
            stats.error = f"{path}: cannot read: Is a directory"
        else:
            stats.error = f"{path}: not a regular file ({exc.kind})"
        return None
    except OSError as exc:  # a folder, no permission: said, and the other ledger still read
        stats.error = f"{path}: cannot read: {exc.strerror or exc}"
        return None
    st = os.fstat(f.fileno())
    head = _head_digest(f, st.st_size) if st.st_size >= HEAD_BYTES else None
    if (
        cur.inode not in (None, st.st_ino)
        or st.st_size < cur.offset
        or (cur.head is not None and head is not None and head != cur.head)
    ):
        cur.offset, cur.line_no, cur.head = 0, 0, None
        stats.restarted = True
    cur.inode = st.st_ino
    if cur.head is None and head is not None:
        cur.head = head
    f.seek(cur.offset)
    return f


def _new_lines(f: BinaryIO, cur: Cursor, stats: ReadStats) -> Iterator[tuple[int, bytes]]:
    """(line number, line without the newline) of each whole line after the cursor; moves the
    cursor past each line it yields. A line longer than MAX_LINE is yielded as b"" (broken)."""
    pending = b""
    skipping = False
    while True:
        chunk = f.read(CHUNK)
        if not chunk:
            return
        data = pending + chunk if pending else chunk
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            line = data[start:nl]
            cur.line_no += 1
            cur.offset += nl + 1 - start
            stats.lines += 1
            stats.bytes += nl + 1 - start
            start = nl + 1
            if skipping:
                skipping = False
                yield cur.line_no, b""
            else:
                yield cur.line_no, line
        pending = data[start:]
        if len(pending) > MAX_LINE:
            # A line this long is broken: consume it up to its newline, then report it.
            cur.offset += len(pending)
            stats.bytes += len(pending)
            pending = b""
            skipping = True


class _Warnings:
    def __init__(self) -> None:
        self.first: list[str] = []
        self.more = 0

    def add(self, text: str) -> None:
        if len(self.first) < MAX_WARNINGS:
            self.first.append(text)
        else:
            self.more += 1

    def lines(self, what: str) -> list[str]:
        out = list(self.first)
        if self.more:
            out.append(f"{what}: {self.more} more broken line(s) skipped")
        return out


_HOUR_CACHE: dict[str, int] = {}


def _epoch(ts: Any) -> float:
    if not isinstance(ts, str):
        raise ValueError("not a timestamp string")
    dt = datetime.fromisoformat(ts)
    if dt.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return dt.timestamp()


def _hour(ts: Any) -> int:
    """Hour bucket (epoch hours) of an RFC 3339 timestamp; UTC ones are cached by prefix."""
    if isinstance(ts, str) and len(ts) >= 20 and (ts[-1] == "Z" or ts.endswith("+00:00")):
        key = ts[:13]
        h = _HOUR_CACHE.get(key)
        if h is None:
            h = int(_epoch(ts) // 3600)
            if len(_HOUR_CACHE) > 100_000:
                _HOUR_CACHE.clear()
            _HOUR_CACHE[key] = h
        return h
    return int(_epoch(ts) // 3600)


def _text(d: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    v = d.get(key)
    if v is None:
        if required:
            raise KeyError(key)
        return None
    if not isinstance(v, str):
        raise TypeError(key)
    return valid_str(v)


def _line_problem(path: Path, n: int, field_name: str, exc: Exception) -> str:
    """The warning of a ledger line a reader skips: not JSON, a bad value (of `field_name`, the
    field being read when it failed), a missing field (KeyError) or one that is no string
    (TypeError, from `_text`)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{path}:{n}: not JSON"
    if isinstance(exc, KeyError):
        return f"{path}:{n}: {exc.args[0]}: missing"
    if isinstance(exc, TypeError):
        return f"{path}:{n}: {exc.args[0]}: must be a string"
    return f"{path}:{n}: {field_name}: {exc}"


def _name(d: dict[str, Any], key: str) -> str:
    """A name that becomes a row (account, window): refused when it carries control, escape or
    invisible characters, or spaces around it, which would make a second row look like the
    first."""
    v = _text(d, key)
    assert v is not None
    problem = row_name_problem(v)  # the same rule as the models (and so the gateway)
    if problem is not None:
        raise ValueError(problem)
    return v


@dataclass
class SpendTotals:
    """Sums of a spend ledger: cost and tokens per hour and account, cost per agent and day."""

    by_hour: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)
    by_agent_day: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)
    records: int = 0
    without_cost: int = 0

    def spent(self, tenant: str, account: str, start_h: float, end_h: float) -> float:
        """$ spent by an account in hours [start_h, end_h) (epoch hours, fractions allowed:
        a partly covered hour counts in proportion)."""
        total = 0.0
        for (t, a, h), v in self.by_hour.items():
            if t != tenant or a != account or h + 1 <= start_h or h >= end_h:
                continue
            # the hour holding `end_h` counts whole (its records are before the end)
            covered = (h + 1 if h <= end_h < h + 1 else min(h + 1, end_h)) - max(h, start_h)
            total += v[0] * max(min(covered, 1.0), 0.0)
        return total


class _LedgerReader:
    """What the two ledger readers share: a cursor into the file, the warnings of the lines
    skipped, and the incremental read (only what was appended; all again when the file was
    replaced or truncated: `_reset`, then `_consume` the new lines)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock  # epoch seconds
        self.cursor = Cursor()
        self.read_error: str | None = None
        self._reset()

    def _reset(self) -> None:
        """Forget what was read (the sums and the warnings)."""
        self._warnings = _Warnings()

    def _consume(self, f: BinaryIO, stats: ReadStats) -> None:
        raise NotImplementedError

    def _sums(self) -> dict[str, Any]:
        """What was read, as JSON data (a checkpoint's body)."""
        raise NotImplementedError

    def _sums_from(self, data: dict[str, Any]) -> Callable[[], None]:
        """Read a checkpoint's body back (raising KeyError, TypeError or ValueError when it does
        not fit); the function returned installs it."""
        raise NotImplementedError

    def checkpoint(self) -> dict[str, Any]:
        """The reader's state (`restore` takes it back): the next read goes on from there."""
        return {
            "v": CHECKPOINT_VERSION,
            "path": str(self.path),
            "cursor": vars(self.cursor),
            **self._sums(),
            "warnings": self._warnings.first,
            "more": self._warnings.more,
        }

    def restore(self, data: dict[str, Any]) -> bool:
        """Take a checkpoint's state; False (and nothing changed) when it does not fit."""
        try:
            if data.get("v") != CHECKPOINT_VERSION or data.get("path") != str(self.path):
                return False
            cursor = Cursor(**data["cursor"])
            take = self._sums_from(data)
            warnings = _Warnings()
            warnings.first = [str(w) for w in data["warnings"]][:MAX_WARNINGS]
            warnings.more = int(data["more"])
        except (KeyError, TypeError, ValueError):
            return False
        take()
        self.cursor, self._warnings = cursor, warnings
        return True

    def read(self) -> ReadStats:
        stats = ReadStats()
        f = _open_at(self.path, self.cursor, stats)
        self.read_error = stats.error
        if f is None:
            return stats
        if stats.restarted:
            self._reset()
        with f:
            self._consume(f, stats)
        self._consumed()
        return stats

    def _consumed(self) -> None:
        """After the new lines were read (not when the file could not be opened)."""

    def _lines(self, f: BinaryIO, stats: ReadStats) -> Iterator[tuple[int, bytes]]:
        """(line number, line) of the new lines that are not blank; a line too long to read is
        skipped with a warning."""
        for n, line in _new_lines(f, self.cursor, stats):
            if line.strip():
                yield n, line
            elif line == b"":
                self._warnings.add(f"{self.path}:{n}: line longer than {MAX_LINE} bytes")


class SpendLedgerReader(_LedgerReader):
    """`spend.jsonl`, read incrementally into `SpendTotals` (the clock only bounds how far ahead
    pruning is anchored)."""

    def _reset(self) -> None:
        super()._reset()
        self.totals = SpendTotals()

    def _consume(self, f: BinaryIO, stats: ReadStats) -> None:
        by_hour, by_day = self.totals.by_hour, self.totals.by_agent_day
        loads = loads_valid
        field_name = "(line)"
        for n, line in self._lines(f, stats):
            try:
                d = loads(line)
                if not isinstance(d, dict):
                    raise ValueError("not a JSON object")
                field_name = "ts"
                hour = _hour(d.get("ts"))
                field_name = "account"
                account = _text(d, "account")
                field_name = "tenant_id"
                tenant = _text(d, "tenant_id")
                field_name = "agent"
                agent = _text(d, "agent", required=False) or "-"
                field_name = "cost_usd"
                cost = d.get("cost_usd")
                if cost is not None and (
                    isinstance(cost, bool)
                    or not isinstance(cost, (int, float))
                    or not math.isfinite(cost)
                    or cost < 0
                ):
                    raise ValueError("must be a non-negative number")
                field_name = "tokens"
                tokens = 0
                for k in (
                    "input_tokens",
                    "output_tokens",
                    "cache_read_tokens",
                    "cache_write_tokens",
                ):
                    v = d.get(k, 0)
                    if v is None:
                        continue
                    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                        field_name = k
                        raise ValueError("must be a non-negative integer")
                    tokens += v
            except (ValueError, KeyError, TypeError) as exc:
                self._warnings.add(_line_problem(self.path, n, field_name, exc))
                continue
            assert account is not None and tenant is not None
            self.totals.records += 1
            if cost is None:
                self.totals.without_cost += 1
                cost = 0.0
            k1 = (tenant, account, hour)
            v1 = by_hour.get(k1)
            if v1 is None and len(by_hour) >= MAX_KEYS:
                self._warnings.add(f"{self.path}:{n}: account: too many accounts and hours")
                continue
            if v1 is None:
                by_hour[k1] = [float(cost), float(tokens)]
            else:
                v1[0] += cost
                v1[1] += tokens
            k2 = (tenant, agent, hour // 24)
            v2 = by_day.get(k2)
            if v2 is None and len(by_day) >= MAX_KEYS:
                continue  # counted for its account; too many agents to keep per agent
            if v2 is None:
                by_day[k2] = [float(cost), float(tokens)]
            else:
                v2[0] += cost
                v2[1] += tokens

    def _consumed(self) -> None:
        self._prune()

    def _prune(self) -> None:
        if not self.totals.by_hour:
            return
        # Anchored at the newest hour, but never past tomorrow by the clock: one record dated
        # in 2099 (a broken clock, a typo) must not prune away every real one.
        newest = min(max(k[2] for k in self.totals.by_hour), int(self.clock() // 3600) + 24)
        cut = newest - RETAIN_DAYS * 24
        for k in [k for k in self.totals.by_hour if k[2] < cut]:
            del self.totals.by_hour[k]
        for k in [k for k in self.totals.by_agent_day if k[2] < cut // 24]:
            del self.totals.by_agent_day[k]

    @property
    def warnings(self) -> list[str]:
        out = [self.read_error] if self.read_error else []
        out += self._warnings.lines(str(self.path))
        if self.totals.without_cost:
            out.append(
                f"{self.path}: {self.totals.without_cost} spend record(s) without cost_usd "
                "(tokens counted, $ unknown)"
            )
        return out

    def _sums(self) -> dict[str, Any]:
        return {
            "by_hour": [[*k, *v] for k, v in self.totals.by_hour.items()],
            "by_agent_day": [[*k, *v] for k, v in self.totals.by_agent_day.items()],
            "records": self.totals.records,
            "without_cost": self.totals.without_cost,
        }

    def _sums_from(self, data: dict[str, Any]) -> Callable[[], None]:
        totals = SpendTotals(
            by_hour={(t, a, int(h)): [c, k] for t, a, h, c, k in data["by_hour"]},
            by_agent_day={(t, a, int(d)): [c, k] for t, a, d, c, k in data["by_agent_day"]},
            records=int(data["records"]),
            without_cost=int(data["without_cost"]),
        )

        def take() -> None:
            self.totals = totals

        return take


class UsageLedgerReader(_LedgerReader):
    """`usage.jsonl`, read incrementally into one `Series` per (tenant, account, window)."""

    def _reset(self) -> None:
        super()._reset()
        self.series: dict[tuple[str, str, str], Series] = {}
        self.first_line: dict[tuple[str, str], int] = {}  # (tenant, account) -> line

    def _consume(self, f: BinaryIO, stats: ReadStats) -> None:
        loads = loads_valid
        for n, line in self._lines(f, stats):
            field_name = "(line)"
            try:
                d = loads(line)
                if not isinstance(d, dict):
                    raise ValueError("not a JSON object")
                field_name = "tenant_id"
                tenant = _text(d, "tenant_id")
                field_name = "account"
                account = _name(d, "account")
                field_name = "window"
                window = _name(d, "window")
                field_name = "observed_at"
                t = _epoch(d.get("observed_at"))
                field_name = "used_percent"
                used = d.get("used_percent")
                if isinstance(used, bool) or not isinstance(used, (int, float)):
                    raise ValueError("must be a number")
                if not math.isfinite(used) or used < 0 or used > 100:
                    raise ValueError(f"must be between 0 and 100 (got {used!r})")
                field_name = "resets_at"
                r = d.get("resets_at")
                resets = _epoch(r) if r is not None else None
                field_name = "window_minutes"
                minutes = d.get("window_minutes")
                if minutes is not None and (
                    isinstance(minutes, bool)
                    or not isinstance(minutes, (int, float))
                    or minutes <= 0
                ):
                    raise ValueError("must be a positive number")
                field_name = "reset_confidence"
                conf = d.get("reset_confidence") or "unknown"
                if conf not in ("user", "provider", "estimated", "unknown"):
                    raise ValueError("must be user, provider, estimated or unknown")
            except (ValueError, KeyError, TypeError) as exc:
                self._warnings.add(_line_problem(self.path, n, field_name, exc))
                continue
            assert tenant is not None and account is not None and window is not None
            key = (tenant, account, window)
            s = self.series.get(key)
            if s is None:
                if len(self.series) >= MAX_KEYS:
                    self._warnings.add(f"{self.path}:{n}: account: too many account windows")
                    continue
                s = self.series[key] = Series()
                self.first_line.setdefault((tenant, account), n)
            s.add(t, float(used), resets, conf, float(minutes) if minutes else None)
            if len(s) > USAGE_MAX_SAMPLES:  # anchored like the spend sums (see the module doc)
                s.drop_before(min(max(s.t), self.clock() + 86400.0) - USAGE_RETAIN_S)
                if len(s) > USAGE_MAX_SAMPLES:
                    s.drop_first(len(s) - USAGE_MAX_SAMPLES * 3 // 4)

    @property
    def warnings(self) -> list[str]:
        out = [self.read_error] if self.read_error else []
        return out + self._warnings.lines(str(self.path))

    def _sums(self) -> dict[str, Any]:
        return {
            "series": [
                [
                    *k,
                    s.confidence,
                    s.minutes,
                    s.t,
                    s.used,
                    [None if math.isnan(r) else r for r in s.resets],
                ]
                for k, s in self.series.items()
            ],
            "first_line": [[t, a, n] for (t, a), n in self.first_line.items()],
        }

    def _sums_from(self, data: dict[str, Any]) -> Callable[[], None]:
        series: dict[tuple[str, str, str], Series] = {}
        for tenant, account, window, conf, minutes, ts, used, resets in data["series"]:
            s = Series(
                t=[float(x) for x in ts],
                used=[float(x) for x in used],
                resets=[math.nan if x is None else float(x) for x in resets],
                confidence=str(conf),
                minutes=minutes,
            )
            s._sorted = False
            series[(tenant, account, window)] = s
        first = {(t, a): int(n) for t, a, n in data["first_line"]}

        def take() -> None:
            self.series, self.first_line = series, first

        return take


def utc_day(t: datetime) -> int:
    """Epoch day number (UTC) of a time: the key of the per-agent daily sums."""
    return int(t.astimezone(UTC).timestamp() // 86400)
