"""The outbox of `alerts run`: alerts not yet delivered wait on disk, bounded, never dropped
silently (DESIGN.md "Alerts, version 1": failed deliveries are retried with backoff and kept).

One file per delivery (one alert to one channel) in `folder` (mode 0700):
`<seq>.json` (mode 0600), `seq` growing, so names sort oldest first. It holds
`{"v": 1, "channel", "body", "created", "attempts", "next_try", "last_error"}`. New files are
written whole under a temporary name and linked into place (never a part, never over another);
retries rewrite them atomically.

`flush` tries every item that is due, oldest first and in order per channel: the first item of a
channel that is not delivered (not due yet, or it failed now) holds back that channel's later
items, so a receiver gets its alerts in order and a dead one is asked once per flush. A failure
(`DeliveryFailed`) waits `5 s * 2^(attempts-1)`, at most 300 s, plus up to 10 % jitter.

Given up, with a reason and a log line, into `undeliverable.jsonl` (its last MAX_GIVEN_UP_BYTES
kept): an item older than `max_age_s`, one whose channel is no longer in the file, and the oldest
items when more than `max_items` wait ("outbox full"). A file that is not an item (truncated
JSON, a stray file) is renamed `*.bad` and logged. Time is a parameter (`now`) throughout.

Delivery is at least once: a crash between a receiver's answer and the removal of the file sends
that alert again on the next run. One process flushes a folder at a time (an flock on `.lock`; a
second flusher finds it taken and tries nothing).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import random
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fleet_tui.core.sanitize import clean_text
from fleet_tui.errors import FleetError
from fleet_tui.model.alerts import Channel
from fleet_tui.protocol.clock import format_ts, parse_ts
from fleet_tui.protocol.files import (
    atomic_write,
    exclusive_lock,
    loads_valid,
    open_append,
    read_regular,
)
from fleet_tui.service.alert_channels import DeliveryFailed

UNDELIVERABLE = "undeliverable.jsonl"
LOCK = ".lock"
MAX_ITEM_BYTES = 256 << 10
MAX_GIVEN_UP_BYTES = 1 << 20  # undeliverable.jsonl keeps about its last MiB of lines
BACKOFF_BASE_S = 5.0
BACKOFF_MAX_S = 300.0
JITTER = 0.1
_ITEM = re.compile(r"^(\d{12})\.json$")
_Stamp = tuple[int, int, int]  # a file's inode, size and mtime_ns
_LABEL = ("rule", "agent", "status")
_log = logging.getLogger("fleet_tui.alerts")


class OutboxError(FleetError):
    """The outbox folder cannot be written (one line: the path and why)."""


@dataclass(frozen=True)
class FlushResult:
    """What one flush did: `delivered` (sent, removed), `failed` (tried now, waiting again
    with backoff), `waiting` (not tried now: not due yet, or behind an earlier item of its
    channel), `given_up` (moved to undeliverable.jsonl now)."""

    delivered: int = 0
    failed: int = 0
    waiting: int = 0
    given_up: int = 0


@dataclass
class _Item:
    name: str
    seq: int
    channel: str
    body: dict[str, Any]
    created: datetime
    attempts: int
    next_try: datetime
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "channel": self.channel,
            "body": self.body,
            "created": format_ts(self.created),
            "attempts": self.attempts,
            "next_try": format_ts(self.next_try),
            "last_error": self.last_error,
        }

    def label(self) -> str:
        """`needs-you rec firing`: the alert, for a log line (names, never a secret)."""
        parts = (clean_text(str(self.body.get(k) or "?"), max_len=64) for k in _LABEL)
        return " ".join(" ".join(p.split()) for p in parts)


def backoff_s(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds before the next try after `attempts` failures: 5, 10, 20 ... 300, plus up to
    10 % jitter (none without `rng`)."""
    delay: float = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0 ** max(0, min(attempts - 1, 16)))
    return delay + (rng.uniform(0.0, JITTER * delay) if rng is not None else 0.0)


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _aware(now: datetime) -> datetime:
    """`now` with a time zone (naive taken as UTC), as the outbox compares times."""
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def _fmt_age(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


class Outbox:
    """Undelivered alerts of one sender, on disk. `put` may be called from one thread while
    another flushes (a flush lets go of the lock only while it sends); one flush at a time."""

    def __init__(
        self,
        folder: Path,
        *,
        max_items: int = 1000,
        max_age_s: float = 86400.0,
        log: Callable[[str], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.folder = Path(folder)
        self._dir = str(self.folder)
        self.max_items = max(1, max_items)
        self.max_age_s = max_age_s
        self._log = log if log is not None else _log.warning
        self._rng = rng if rng is not None else random.Random()
        self._next_seq: int | None = None
        self._lock = threading.RLock()
        self._sending: str | None = None  # the item a flush is sending (the lock let go)
        self._cache: dict[str, tuple[tuple[int, int, int], _Item]] = {}
        self._ready = False

    # -- the folder --------------------------------------------------------------------------

    def _ensure(self) -> None:
        if self._ready:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self.folder.stat().st_mode & 0o077:
                os.chmod(self.folder, 0o700)
        except OSError as exc:
            raise OutboxError(f"{self.folder}: cannot write: {exc.strerror or exc}") from None
        self._ready = True

    def _names(self) -> list[str]:
        try:
            return os.listdir(self.folder)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise OutboxError(f"{self.folder}: cannot read: {exc.strerror or exc}") from None

    def _item_names(self) -> list[tuple[int, str]]:
        out = []
        for name in self._names():
            m = _ITEM.match(name)
            if m:
                out.append((int(m.group(1)), name))
        out.sort()
        return out

    def _move_aside(self, name: str, why: str, log: Callable[[str], None]) -> None:
        src = self.folder / name
        dst = self.folder / f"{name}.bad"
        n = 1
        while dst.exists() and n < 100:
            dst = self.folder / f"{name}.{n}.bad"
            n += 1
        try:
            self._cache.pop(name, None)
            os.replace(src, dst)
        except FileNotFoundError:
            return
        except OSError as exc:
            log(f"alert outbox: {name}: {why}; cannot move it aside: {exc.strerror or exc}")
            return
        log(f"alert outbox: {name}: {why}; moved aside to {dst.name}")

    def _read(self, name: str, seq: int, stamp: _Stamp | None = None) -> _Item:
        """The item in `name` (a copy: the caller may change it); ValueError (with why) when
        it is not one. Parsed once per version of the file: its `stat` (the inode, size and
        time; `stamp` when the caller has it from scandir) tells a file read before from a
        new one."""
        if stamp is None:
            st = os.stat(os.path.join(self._dir, name))
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        hit = self._cache.get(name)
        if hit is not None and hit[0] == stamp:
            return copy.copy(hit[1])
        item = self._parse(name, seq)
        if len(self._cache) >= 2 * self.max_items + 100:
            self._cache.clear()
        self._cache[name] = (stamp, item)
        return copy.copy(item)

    def _entries(self) -> tuple[list[tuple[int, str, _Stamp | None]], list[str]]:
        """The item files, oldest first, with their stamps; and the other names."""
        items: list[tuple[int, str, _Stamp | None]] = []
        others: list[str] = []
        try:
            with os.scandir(self._dir) as it:
                for entry in it:
                    m = _ITEM.match(entry.name)
                    if m is None:
                        others.append(entry.name)
                        continue
                    try:
                        st = entry.stat()
                        stamp: _Stamp | None = (st.st_ino, st.st_size, st.st_mtime_ns)
                    except OSError:
                        stamp = None
                    items.append((int(m.group(1)), entry.name, stamp))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OutboxError(f"{self.folder}: cannot read: {exc.strerror or exc}") from None
        items.sort()
        return items, others

    def _parse(self, name: str, seq: int) -> _Item:
        try:
            raw = read_regular(self.folder / name, MAX_ITEM_BYTES)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise ValueError(str(exc).replace(str(self.folder / name), "file")) from None
        try:
            d = loads_valid(raw)
        except ValueError:
            raise ValueError("not JSON (truncated?)") from None
        if not isinstance(d, dict) or d.get("v") != 1:
            raise ValueError("not an outbox item")
        channel, body = d.get("channel"), d.get("body")
        created, next_try = parse_ts(d.get("created")), parse_ts(d.get("next_try"))
        attempts, last_error = d.get("attempts"), d.get("last_error")
        if (
            not isinstance(channel, str)
            or not isinstance(body, dict)
            or created is None
            or next_try is None
            or not isinstance(attempts, int)
            or isinstance(attempts, bool)
            or not (last_error is None or isinstance(last_error, str))
        ):
            raise ValueError("not an outbox item (a field is missing or wrong)")
        return _Item(name, seq, channel, body, created, attempts, next_try, last_error)

    def _scan(self, log: Callable[[str], None]) -> list[_Item]:
        """Every item, oldest first; anything else that should not be here moved aside."""
        entries, others = self._entries()
        for name in others:
            if name in (UNDELIVERABLE, LOCK) or name.endswith(".bad"):
                continue
            if name.startswith(".") and name.endswith(".tmp"):
                continue  # a write under way (or left by a crash: harmless, never read)
            self._move_aside(name, "not an outbox item", log)
        items: list[_Item] = []
        for seq, name, stamp in entries:
            try:
                items.append(self._read(name, seq, stamp))
            except FileNotFoundError:
                continue
            except ValueError as exc:
                self._move_aside(name, str(exc), log)
        return items

    # -- writing -----------------------------------------------------------------------------

    def _seq(self) -> int:
        if self._next_seq is None:
            names = self._item_names()
            self._next_seq = names[-1][0] + 1 if names else 1
        return self._next_seq

    def _create(self, data: bytes) -> str:
        """A new item file, written whole, under the next free name (never over another)."""
        tmp = self.folder / f".new.{os.urandom(6).hex()}.tmp"
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            seq = self._seq()
            for _ in range(10000):
                name = f"{seq:012d}.json"
                try:
                    os.link(tmp, self.folder / name)
                except FileExistsError:
                    seq += 1  # another writer took it
                    continue
                self._next_seq = seq + 1
                return name
            raise OSError("no free item name")
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def put(self, channel_name: str, body: Mapping[str, Any], now: datetime) -> str:
        """Keep one delivery of `body` to `channel_name`, due at once; returns its file name.
        When more than `max_items` wait, the oldest are given up ("outbox full")."""
        with self._lock:
            return self._put(channel_name, body, _aware(now))

    def _put(self, channel_name: str, body: Mapping[str, Any], now: datetime) -> str:
        self._ensure()
        item = _Item("", 0, channel_name, dict(body), now, 0, now, None)
        try:
            name = self._create(_dumps(item.to_json()))
        except OSError as exc:
            raise OutboxError(
                f"{self.folder}: cannot keep an alert: {exc.strerror or exc}"
            ) from None
        names = self._item_names()
        extra = len(names) - self.max_items
        if extra > 0:
            moved = 0
            for seq, old in names[:extra]:
                if old == self._sending:
                    continue  # a flush is sending it right now
                try:
                    it = self._read(old, seq)
                except FileNotFoundError:
                    continue
                except ValueError as exc:
                    self._move_aside(old, str(exc), self._log)
                    continue
                if self._give_up(it, f"outbox full ({self.max_items} waiting)", now, self._log):
                    moved += 1
            if moved:
                self._log(
                    f"alert outbox full ({self.max_items} waiting): the {moved} oldest "
                    f"moved to {self.folder / UNDELIVERABLE}"
                )
        return name

    def _give_up(self, item: _Item, reason: str, now: datetime, log: Callable[[str], None]) -> bool:
        """Move `item` to undeliverable.jsonl (False when it was gone already)."""
        path = self.folder / item.name
        line = {
            "given_up": format_ts(now),
            "reason": reason,
            "channel": item.channel,
            "created": format_ts(item.created),
            "attempts": item.attempts,
            "last_error": item.last_error,
            "body": item.body,
        }
        try:
            self._append(_dumps(line))
        except OSError as exc:
            log(
                f"alert outbox: cannot write {UNDELIVERABLE} ({exc.strerror or exc}); "
                f"{item.name} stays"
            )
            return False
        try:
            self._cache.pop(item.name, None)
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True

    def _append(self, data: bytes) -> None:
        path = self.folder / UNDELIVERABLE
        fd = open_append(path, 0o600)
        try:
            os.write(fd, data)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size > MAX_GIVEN_UP_BYTES:
            raw = read_regular(path, 4 * MAX_GIVEN_UP_BYTES)
            tail = raw[-(MAX_GIVEN_UP_BYTES * 3 // 4) :]
            cut = tail.find(b"\n")
            atomic_write(path, tail[cut + 1 :] if cut >= 0 else b"", mode=0o600)

    # -- reading -----------------------------------------------------------------------------

    def pending(self) -> int:
        """How many deliveries wait."""
        return len(self._item_names())

    def given_up(self) -> int:
        """How many deliveries were given up (lines in undeliverable.jsonl, its last MiB)."""
        try:
            raw = read_regular(self.folder / UNDELIVERABLE, 4 * MAX_GIVEN_UP_BYTES)
        except OSError:
            return 0
        return raw.count(b"\n")

    def next_due(self) -> datetime | None:
        """When the next flush has something to try: the earliest next try of the first
        waiting item of each channel (later ones wait behind it). None when nothing waits."""
        heads: dict[str, datetime] = {}
        for seq, name, stamp in self._entries()[0]:
            try:
                item = self._read(name, seq, stamp)
            except (OSError, ValueError):
                continue  # the next flush moves it aside
            heads.setdefault(item.channel, item.next_try)
        return min(heads.values()) if heads else None

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(channel, body) of every waiting delivery, oldest first (for `alerts` to show)."""
        for seq, name in self._item_names():
            with contextlib.suppress(OSError, ValueError):
                item = self._read(name, seq)
                yield item.channel, item.body

    # -- delivering --------------------------------------------------------------------------

    def flush(
        self,
        channels: Mapping[str, Channel],
        now: datetime,
        send: Callable[[Channel, dict[str, Any]], None],
        log: Callable[[str], None],
    ) -> FlushResult:
        """Try every due item (see the module's docstring). `send` raises DeliveryFailed (its
        text is redacted); any other exception counts as a failure too, by its type only."""
        if not self.folder.is_dir():
            return FlushResult()
        self._ensure()
        with exclusive_lock(self.folder / LOCK, 0.0) as locked:
            if not locked:
                return FlushResult(waiting=self.pending())
            with self._lock:
                return self._flush(channels, _aware(now), send, log)

    def _flush(
        self,
        channels: Mapping[str, Channel],
        now: datetime,
        send: Callable[[Channel, dict[str, Any]], None],
        log: Callable[[str], None],
    ) -> FlushResult:
        delivered = failed = waiting = given_up = 0
        held: set[str] = set()  # channels whose earlier item was not delivered in this flush
        for item in self._scan(log):
            age = (now - item.created).total_seconds()
            channel = channels.get(item.channel)
            reason = None
            if channel is None:
                reason = f"channel {item.channel!r} is no longer configured"
            elif age > self.max_age_s:
                last = f" (last: {item.last_error})" if item.last_error else ""
                reason = f"not delivered within {_fmt_age(self.max_age_s)}{last}"
            if reason is not None:
                if self._give_up(item, reason, now, log):
                    given_up += 1
                    log(
                        f"alert to {item.channel}: {item.label()}: given up after "
                        f"{item.attempts} attempt(s): {reason}"
                    )
                else:
                    waiting += 1
                continue
            assert channel is not None
            if item.channel in held or item.next_try > now:
                held.add(item.channel)
                waiting += 1
                continue
            if not os.path.exists(os.path.join(self._dir, item.name)):
                continue  # given up by a `put` while this flush was sending another
            why = self._send(send, channel, item)
            if why is None:
                with contextlib.suppress(FileNotFoundError):
                    self._cache.pop(item.name, None)
                    os.unlink(self.folder / item.name)
                delivered += 1
                continue
            held.add(item.channel)
            failed += 1
            item.attempts += 1
            delay = backoff_s(item.attempts, self._rng)
            item.next_try = now + timedelta(seconds=delay)
            item.last_error = why
            try:
                self._cache.pop(item.name, None)
                atomic_write(self.folder / item.name, _dumps(item.to_json()), mode=0o600)
            except OSError as exc:
                log(f"alert outbox: cannot update {item.name}: {exc.strerror or exc}")
            log(
                f"alert to {item.channel}: {item.label()}: not delivered ({why}); "
                f"attempt {item.attempts}, next in {delay:.0f} s"
            )
        return FlushResult(delivered, failed, waiting, given_up)

    def _send(
        self, send: Callable[[Channel, dict[str, Any]], None], channel: Channel, item: _Item
    ) -> str | None:
        """`send` the item without holding the lock (a `put` may come meanwhile; it leaves
        this item alone); None when delivered, else the redacted reason."""
        self._sending = item.name
        self._lock.release()
        try:
            send(channel, item.body)
        except DeliveryFailed as exc:
            return str(exc)
        except Exception as exc:
            return f"{channel.name}: failed ({type(exc).__name__})"
        finally:
            self._lock.acquire()
            self._sending = None
        return None
