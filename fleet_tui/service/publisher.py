"""The publisher: pushes this host's snapshot, heartbeats, usage samples and spend records to the
gateway (DESIGN.md "Gateway API, version 1"), through a bounded on-disk queue.

One cycle:
1. collect this host's snapshot (the `ps` v1 document, agents only) and queue it; a newer
   snapshot supersedes every queued older one (only the latest matters);
2. queue each heartbeat of the spool that changed since the last cycle; a newer heartbeat of an
   agent supersedes its queued older one;
3. read the new whole lines of `usage.jsonl` and `spend.jsonl` from the remembered offsets and
   queue them in batches. A queued batch is a promise: it is written (and fsynced) before the
   offset moves, and it leaves the queue only when the gateway stored it, or, when the gateway
   rejects it as invalid (or refuses, 403, a record queued for a tenant this host no longer
   publishes as), into `gateway-queue/rejected/` with a warning. When the queue is full
   the ledgers are not read further (the lines stay in the ledger, where nothing is lost) and a
   warning says so;
4. drain the queue in order, unless a backoff after failures says to wait.

Nothing one item holds can stop the queue (set aside = moved into `gateway-queue/rejected/`,
counted in the cycle's result and said in a warning):
- a batch the gateway answers with 422 `invalid_items`: the named records are set aside (a file
  `NNN.KIND.-.json.invalid-N.json` holding them and the gateway's reasons), the rest is resent at
  once; a 422 without items sets the request aside (a heartbeat group is first resent one by one);
- a queue file that is not a regular file, too large, not JSON, `null`, or missing a key;
- an item the gateway keeps failing on (500, or an answer that is not the contract's) after
  MAX_TRIES attempts (counted in `gateway-publish.json`, so across runs too); an item that
  failed once is sent alone afterwards;
- strings that are not valid Unicode (lone surrogates) become U+FFFD before anything is queued,
  and agents whose names are outside the DESIGN pattern are left out of the snapshot (a warning).
A full disk (ENOSPC, EDQUOT) pauses queuing for the cycle (a warning; the ledgers keep their
lines) while what is queued is still sent; the next cycle tries again.

Queue files: `gateway-queue/NNNNNNNNNNNN.KIND.KEY.json`, each `{"route", "idempotency_key",
"body"}`, written atomically; retries reuse the idempotency key (the gateway also recognises resent
identical records). Offsets and the last queued heartbeat per agent live in
`gateway-publish.json`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from pydantic import BaseModel, ValidationError

from fleet_tui import telemetry
from fleet_tui.config.fleet import FleetConfig
from fleet_tui.core.sanitize import clean_text
from fleet_tui.errors import StateDirError
from fleet_tui.model.records import FleetSnapshot, SpendRecord, UsageSample
from fleet_tui.protocol.files import NotRegularFile, open_regular, read_regular
from fleet_tui.protocol.ledger import SPEND_FILE, USAGE_FILE
from fleet_tui.protocol.names import AGENT_NAME_RE, HOST_RE
from fleet_tui.remote.connection import Backoff, GatewayError
from fleet_tui.remote.push import GatewayPush
from fleet_tui.service.collector import FleetCollector

_AGENT_NAME = re.compile(AGENT_NAME_RE)
_HOST = re.compile(HOST_RE)
MAX_TRIES = 5  # attempts the gateway may fail (500, nonsense) on one item before it is set aside
MAX_ITEM_BYTES = 64 << 20  # a queue file larger than this is not one we wrote: set aside
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
QUEUE_DIR = "gateway-queue"
REJECTED_DIR = "rejected"
STATE_FILE = "gateway-publish.json"
BATCH_RECORDS = 200
HEARTBEATS_PER_POST = 500
READ_BYTES_PER_CYCLE = 4 << 20
MAX_LINE_BYTES = 1 << 20
KINDS = ("snapshot", "heartbeat", "usage", "spend")
ROUTES = {"snapshot": "/snapshot", "heartbeat": "/heartbeats", "usage": "/usage", "spend": "/spend"}
LEDGERS: dict[str, tuple[str, type[BaseModel]]] = {
    "usage": (USAGE_FILE, UsageSample),
    "spend": (SPEND_FILE, SpendRecord),
}


JsonRecord = dict[str, object]
"""One record as JSON: a snapshot, a heartbeat, a usage sample or a spend record."""
Body = JsonRecord | list[JsonRecord]
"""What one queued request sends: a record, or a batch of them."""


class QueuedRequest(TypedDict):
    """A queue file: where it goes, its idempotency key (a retry reuses it), its body."""

    route: str
    idempotency_key: str
    body: Body


def records_in(body: Body) -> int:
    """How many records a body holds."""
    return len(body) if isinstance(body, list) else 1


@dataclass(frozen=True)
class QueueLimits:
    max_files: int = 2000
    max_bytes: int = 64 << 20


@dataclass(frozen=True)
class QueueItem:
    path: Path
    seq: int
    kind: str
    key: str
    size: int

    def load(self) -> QueuedRequest:
        """The item's request; raises OSError (not a regular file, too large, unreadable) or
        ValueError (not JSON, or not a request of its kind) for a file to set aside."""
        data = json.loads(read_regular(self.path, MAX_ITEM_BYTES))
        if not isinstance(data, dict):
            raise ValueError(f"not a queued request (a JSON {type(data).__name__})")
        for key in ("route", "idempotency_key", "body"):
            if key not in data:
                raise ValueError(f"no '{key}'")
        if data["route"] != ROUTES[self.kind] or not isinstance(data["idempotency_key"], str):
            raise ValueError("route or idempotency_key is not this kind's")
        body = data["body"]
        if self.kind in ("usage", "spend"):
            if not isinstance(body, list) or not body or not all(isinstance(r, dict) for r in body):
                raise ValueError("body is not a list of records")
        elif not isinstance(body, dict):
            raise ValueError("body is not a record")
        return QueuedRequest(
            route=data["route"],
            idempotency_key=data["idempotency_key"],
            body=valid_unicode(body),
        )


def _valid_str(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # lone surrogates (JSON's "\ud800"): U+FFFD, as UTF-8 would
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def valid_unicode(value: Any) -> Any:
    """A JSON value whose strings (keys included) are all valid Unicode."""
    if isinstance(value, str):
        return _valid_str(value)
    if isinstance(value, list):
        return [valid_unicode(v) for v in value]
    if isinstance(value, dict):
        return {
            (_valid_str(k) if isinstance(k, str) else k): valid_unicode(v) for k, v in value.items()
        }
    return value


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    """Write `path` atomically AND durably: the data is fsynced before the rename and the folder
    after it, so a queued batch is on disk before the ledger's offset moves past its lines.
    `protocol.files.atomic_write` does not fsync (the same mode, 0600 from mkstemp, but not the
    promise), hence this one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


class PublishQueue:
    """Numbered JSON files in `folder`, oldest first; bounded by count and bytes."""

    def __init__(self, folder: Path, limits: QueueLimits | None = None) -> None:
        self.folder = folder
        self.limits = limits or QueueLimits()

    def ensure(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StateDirError(
                f"gateway queue {self.folder}: cannot create ({exc.strerror})"
            ) from None

    def items(self) -> list[QueueItem]:
        out: list[QueueItem] = []
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return out
        for e in entries:
            parts = e.name.split(".")
            if len(parts) != 4 or parts[3] != "json" or not parts[0].isdigit():
                continue
            if parts[1] not in KINDS:
                continue
            try:
                size = e.stat().st_size
            except OSError:
                continue
            out.append(QueueItem(Path(e.path), int(parts[0]), parts[1], parts[2], size))
        out.sort(key=lambda i: i.seq)
        return out

    def usage(self) -> tuple[int, int]:
        items = self.items()
        return len(items), sum(i.size for i in items)

    def fits(self, extra_bytes: int, *, items: list[QueueItem] | None = None) -> bool:
        items = self.items() if items is None else items
        return (
            len(items) + 1 <= self.limits.max_files
            and sum(i.size for i in items) + extra_bytes <= self.limits.max_bytes
        )

    def put(self, kind: str, key: str, body: Body) -> QueueItem:
        """Queue one request; returns the item (its file is on disk when this returns)."""
        self.ensure()
        items = self.items()
        seq = (items[-1].seq + 1) if items else 1
        path = self.folder / f"{seq:012d}.{kind}.{key}.json"
        return self.write(path, kind, body)

    def write(self, path: Path, kind: str, body: Body, *, key: str | None = None) -> QueueItem:
        """(Re)write the queue file `path` durably; a fresh idempotency key unless given."""
        data = json.dumps(
            {
                "route": ROUTES[kind],
                "idempotency_key": key or str(uuid.uuid4()),
                "body": valid_unicode(body),
            },
            separators=(",", ":"),
        ).encode()
        _write_durably(path, data)
        seq, _kind, name, _json = path.name.split(".")
        return QueueItem(path, int(seq), kind, name, len(data))

    def remove(self, item: QueueItem) -> None:
        with contextlib.suppress(FileNotFoundError):
            item.path.unlink()

    @property
    def aside(self) -> Path:
        return self.folder / REJECTED_DIR

    def set_aside(self, item: QueueItem) -> Path:
        """Move the item into `rejected/`; if even that fails, remove it (it must not block
        the queue). Returns where it went."""
        folder = self.aside
        target = folder / item.path.name
        try:
            folder.mkdir(exist_ok=True, mode=0o700)
            os.replace(item.path, target)
        except FileNotFoundError:
            pass
        except OSError:
            with contextlib.suppress(OSError):
                item.path.unlink()
        return target

    def set_aside_records(
        self, item: QueueItem, records: list[JsonRecord], reasons: list[str]
    ) -> Path:
        """Write the records of `item` the gateway refused (with its reasons) into
        `rejected/`, beside nothing else of the batch."""
        folder = self.aside
        folder.mkdir(exist_ok=True, mode=0o700)
        n = 1
        while (target := folder / f"{item.path.name}.invalid-{n}.json").exists():
            n += 1
        doc = {"route": ROUTES[item.kind], "records": records, "reasons": reasons}
        _write_durably(target, json.dumps(valid_unicode(doc), indent=1).encode())
        return target


def encoded_size(body: Body) -> int:
    return len(json.dumps(valid_unicode(body), separators=(",", ":")).encode()) + 80


@dataclass
class LedgerCursor:
    offset: int = 0
    line: int = 0
    inode: int | None = None


@dataclass
class PublishState:
    """What the publisher remembers between cycles and runs (`gateway-publish.json`)."""

    cursors: dict[str, LedgerCursor] = field(default_factory=dict)
    heartbeats: dict[str, str] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)  # failed attempts, by queue file name

    @classmethod
    def load(cls, path: Path) -> tuple[PublishState, str | None]:
        try:
            raw = json.loads(read_regular(path, 16 << 20))
            cursors = {
                k: LedgerCursor(int(v["offset"]), int(v["line"]), v.get("inode"))
                for k, v in raw.get("cursors", {}).items()
            }
            beats = {str(k): str(v) for k, v in raw.get("heartbeats", {}).items()}
            tries = {str(k): int(v) for k, v in raw.get("tries", {}).items()}
            return cls(cursors, beats, tries), None
        except FileNotFoundError:
            return cls(), None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return cls(), f"{path}: unreadable; the ledgers are published again from the start"

    def save(self, path: Path) -> None:
        data = {
            "v": 1,
            "cursors": {k: vars(c) for k, c in self.cursors.items()},
            "heartbeats": self.heartbeats,
            "tries": self.tries,
        }
        _write_durably(path, json.dumps(data, indent=1).encode())


@dataclass
class CycleResult:
    """What one cycle did; `line()` says it in one line."""

    queued: dict[str, int] = field(default_factory=dict)  # records queued this cycle, by kind
    delivered: dict[str, int] = field(default_factory=dict)  # records the gateway took
    pending_files: int = 0
    pending_bytes: int = 0
    error: GatewayError | None = None
    retry_in_s: float | None = None
    skipped_drain: bool = False
    warnings: list[str] = field(default_factory=list)
    set_aside: int = 0  # records the gateway refused, or queue files that were not usable
    not_published: int = 0  # ledger lines (and agents) left out as invalid
    aside_dir: Path | None = None
    disk_full: bool = False

    @property
    def drained(self) -> bool:
        return self.pending_files == 0 and self.error is None and not self.disk_full

    @property
    def refused_some(self) -> bool:
        """Something of this cycle will never be delivered as it is (the operator must look)."""
        return bool(self.set_aside or self.not_published)

    def refused_text(self) -> str:
        parts = []
        if self.set_aside:
            parts.append(f"{self.set_aside} set aside in {self.aside_dir}")
        if self.not_published:
            parts.append(f"{self.not_published} invalid, not published")
        return "; ".join(parts)

    def line(self, url: str, *, once: bool = False) -> str:
        """One line for the operator; `once`: no retry follows in this process, so the line
        says the next run sends the queue instead of a retry delay."""

        def counts(d: dict[str, int]) -> str:
            plural = {"snapshot": "snapshots", "heartbeat": "heartbeats"}
            parts = [f"{d[k]} {plural.get(k, k) if d[k] > 1 else k}" for k in KINDS if d.get(k)]
            return ", ".join(parts) or "nothing new"

        stamp = datetime.now(UTC).strftime("%H:%M:%SZ")
        if self.error is not None:
            retry = f"; retry in {self.retry_in_s:.0f} s" if self.retry_in_s is not None else ""
            if once:
                retry = "; the next publish sends them first"
            refused = f"; {self.refused_text()}" if self.refused_some else ""
            return (
                f"{stamp} {clean_text(str(self.error), max_len=300)}: "
                f"{self.pending_files} queued for later ({self.pending_bytes} bytes){retry}"
                f"{refused}"
            )
        if self.skipped_drain:
            return (
                f"{stamp} backing off: {self.pending_files} queued for later"
                f"; retry in {self.retry_in_s or 0:.0f} s"
            )
        refused = f"; {self.refused_text()}" if self.refused_some else ""
        full = "; disk full: queuing paused" if self.disk_full else ""
        return (
            f"{stamp} published to {url}: {counts(self.delivered)}{refused}{full}"
            f"; queue {self.pending_files}"
        )


def _other_tenants(bodies: list[Body], tenant: str | None) -> str | None:
    """The first tenant_id in queued bodies that is not `tenant` (None: all are `tenant`, or
    `tenant` is not known yet)."""
    if tenant is None:
        return None
    for body in bodies:
        for record in body if isinstance(body, list) else [body]:
            other = record.get("tenant_id") if isinstance(record, dict) else None
            if isinstance(other, str) and other != tenant:
                return other
    return None


class Publisher:
    """Publishes one host (one state dir, one roster) to one gateway. Not thread-safe."""

    def __init__(
        self,
        config: FleetConfig,
        client: GatewayPush,
        *,
        limits: QueueLimits | None = None,
        backoff: Backoff | None = None,
        collector: FleetCollector | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.client = client
        self.collector = collector or FleetCollector(config, keep_last_good=True)
        self.queue = PublishQueue(config.state_dir / QUEUE_DIR, limits)
        self.state_path = config.state_dir / STATE_FILE
        self.backoff = backoff or Backoff(base_s=1.0, cap_s=60.0)
        self.monotonic = monotonic
        self.state, warn = PublishState.load(self.state_path)
        self._tenant: str | None = None  # this host's tenant as of the last collect
        self._host: str | None = None
        self._startup_warnings = [warn] if warn else []

    @property
    def tenant(self) -> str | None:
        """This host's tenant as of the last cycle (None before the first)."""
        return self._tenant

    @property
    def host(self) -> str | None:
        """This host's name as of the last cycle (None before the first)."""
        return self._host

    # -- one cycle ---------------------------------------------------------------------------
    def cycle(self, *, drain: bool = True) -> CycleResult:
        """Collect, queue, drain. Raises FleetError for what the operator must fix (roster,
        state dir); gateway failures are in the result. With traces on: a `fleet.publish` span
        (its requests carry `traceparent`: the gateway's route spans are its children)."""
        with telemetry.span("fleet.publish") as span:
            result = self._cycle(drain)
            if span.recording:
                error = result.error
                outcome = "failed" if error else "backoff" if result.skipped_drain else "ok"
                span.set(
                    tenant=self._tenant,
                    host=self._host,
                    outcome=outcome,
                    error_kind=error.kind if error else None,
                    delivered=sum(result.delivered.values()),
                    pending=result.pending_files,
                    set_aside=result.set_aside,
                )
            return result

    def _cycle(self, drain: bool) -> CycleResult:
        result = CycleResult(warnings=list(self._startup_warnings), aside_dir=self.queue.aside)
        self._startup_warnings = []
        self.queue.ensure()
        snapshot = self.collector.collect()
        self._tenant, self._host = snapshot.tenant_id, snapshot.host
        try:
            if not _HOST.match(snapshot.host):
                result.not_published += 1
                result.warnings.append(
                    f"this host's name '{clean_text(snapshot.host, max_len=80)}' is outside the "
                    "DESIGN pattern (letters, digits, '_', '.', '-'): nothing but the ledgers is "
                    "published; set `host:` in the roster"
                )
            else:
                self._queue_snapshot(snapshot, result)
                self._queue_heartbeats(snapshot, result)
            for kind in LEDGERS:
                self._queue_ledger(kind, snapshot, result)
            self.state.save(self.state_path)
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            result.disk_full = True
            result.warnings.append(
                f"{self.config.state_dir}: no space left ({exc.strerror}): queuing paused this "
                "cycle (the ledgers keep their lines); what is queued is still sent"
            )
        if drain:
            self.drain(result)
        result.pending_files, result.pending_bytes = self.queue.usage()
        return result

    def _save_state(self, result: CycleResult) -> None:
        try:
            self.state.save(self.state_path)
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            result.disk_full = True

    def _make_room(self, need: int, result: CycleResult) -> bool:
        """Room for one more file of `need` bytes; drops the oldest queued heartbeats (a
        snapshot queued later says as much) when needed. Never drops usage or spend."""
        items = self.queue.items()
        if self.queue.fits(need, items=items):
            return True
        dropped = 0
        for item in [i for i in items if i.kind == "heartbeat"]:
            self.queue.remove(item)
            dropped += 1
            items = [i for i in items if i.path != item.path]
            if self.queue.fits(need, items=items):
                break
        if dropped:
            result.warnings.append(
                f"gateway queue full: dropped {dropped} older queued heartbeat(s) "
                "(superseded by the snapshot)"
            )
        return self.queue.fits(need, items=items)

    def _queue_snapshot(self, snapshot: FleetSnapshot, result: CycleResult) -> None:
        agents = [a for a in snapshot.agents if a.is_agent and not a.remote]  # this host's only
        named = [a for a in agents if _AGENT_NAME.match(a.name)]
        if len(named) < len(agents):
            bad = next(a.name for a in agents if not _AGENT_NAME.match(a.name))
            result.not_published += len(agents) - len(named)
            result.warnings.append(
                f"{len(agents) - len(named)} agent(s) left out of the published snapshot: a name "
                f"outside the DESIGN pattern, e.g. '{clean_text(bad, max_len=64)}'"
            )
        shown = snapshot.model_copy(update={"agents": named})
        body = valid_unicode(shown.model_dump(mode="json", by_alias=True))
        for item in self.queue.items():
            if item.kind == "snapshot":
                self.queue.remove(item)  # only the latest snapshot matters
        if not self._make_room(encoded_size(body), result):
            result.warnings.append(
                "gateway queue full of usage and spend: this cycle's snapshot is not queued"
            )
            return
        self.queue.put("snapshot", "-", body)
        result.queued["snapshot"] = 1

    def _queue_heartbeats(self, snapshot: FleetSnapshot, result: CycleResult) -> None:
        spool = self.collector.spool
        try:
            names = sorted(
                e.name[:-5]
                for e in os.scandir(spool.heartbeats)
                if e.name.endswith(".json") and not e.name.startswith(".")
            )
        except OSError:
            return
        queued = {i.key: i for i in self.queue.items() if i.kind == "heartbeat"}
        count = 0
        for name in names:
            if not _AGENT_NAME.match(name):
                continue  # not an agent name (a queue file name must hold it): never queued
            read = spool.read_heartbeat(name)
            hb = read.heartbeat
            if hb is None:
                continue
            if hb.tenant_id != snapshot.tenant_id or hb.host != snapshot.host:
                continue  # the join already warns about it; the gateway would refuse it
            mark = f"{hb.seq}@{hb.model_dump(mode='json')['ts']}"
            if self.state.heartbeats.get(name) == mark:
                continue
            body = valid_unicode(hb.model_dump(mode="json"))
            old = queued.get(name)
            if old is not None:
                self.queue.remove(old)  # a newer heartbeat of the same agent supersedes it
            if not self._make_room(encoded_size(body), result):
                result.warnings.append(
                    "gateway queue full of usage and spend: heartbeats are not queued"
                )
                break
            self.queue.put("heartbeat", name, body)
            self.state.heartbeats[name] = mark
            count += 1
        if count:
            result.queued["heartbeat"] = count

    def _queue_ledger(self, kind: str, snapshot: FleetSnapshot, result: CycleResult) -> None:
        fname, model = LEDGERS[kind]
        path = self.config.state_dir / fname
        cur = self.state.cursors.setdefault(kind, LedgerCursor())
        try:
            fd = open_regular(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            why = exc.kind if isinstance(exc, NotRegularFile) else exc.strerror
            result.warnings.append(f"{path}: unreadable ({why}): not published")
            return
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if (cur.inode is not None and cur.inode != st.st_ino) or st.st_size < cur.offset:
                result.warnings.append(
                    f"{path}: replaced or truncated since line {cur.line}: published from the start"
                )
                cur.offset, cur.line = 0, 0
            cur.inode = st.st_ino
            fh.seek(cur.offset)
            data = fh.read(READ_BYTES_PER_CYCLE)
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) > MAX_LINE_BYTES:  # one line longer than any record: skip it
                result.warnings.append(f"{path}:{cur.line + 1}: line too long: not published")
                cur.offset += len(data)
            return
        lines = data[: end + 1].split(b"\n")[:-1]
        batch: list[JsonRecord] = []
        offset, line_no = cur.offset, cur.line
        batch_start = (offset, line_no)
        total = 0

        def flush() -> bool:
            nonlocal batch, batch_start, total
            if not batch:
                cur.offset, cur.line = offset, line_no
                return True
            if not self._make_room(encoded_size(batch), result):
                files, size = self.queue.usage()
                result.warnings.append(
                    f"gateway queue full ({files} files, {size} bytes): {path.name} is not read "
                    f"past line {batch_start[1]}; those lines stay in the ledger and are "
                    "published when the queue drains"
                )
                cur.offset, cur.line = batch_start
                return False
            self.queue.put(kind, "-", batch)
            total += len(batch)
            cur.offset, cur.line = offset, line_no
            self.state.save(self.state_path)  # the promise is on disk: move the offset
            batch = []
            batch_start = (offset, line_no)
            return True

        for raw in lines:
            offset += len(raw) + 1
            line_no += 1
            if not raw.strip():
                continue
            try:
                record = model.model_validate_json(raw)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err["loc"]) or "line"
                result.warnings.append(
                    f"{path}:{line_no}: {clean_text(loc, max_len=60)}: "
                    f"{clean_text(err['msg'], max_len=120)} (not published)"
                )
                result.not_published += 1
                continue
            tenant = getattr(record, "tenant_id", None)
            if tenant != snapshot.tenant_id:
                result.warnings.append(
                    f"{path}:{line_no}: tenant_id: '{clean_text(str(tenant), max_len=40)}' "
                    f"is not this host's tenant '{snapshot.tenant_id}' (not published)"
                )
                result.not_published += 1
                continue
            batch.append(record.model_dump(mode="json"))
            if len(batch) >= BATCH_RECORDS and not flush():
                break
        else:
            flush()
        if total:
            result.queued[kind] = result.queued.get(kind, 0) + total

    # -- delivery ---------------------------------------------------------------------------
    def drain(self, result: CycleResult) -> None:
        """Send the queue in order until it is empty or the gateway fails (then back off).
        What the gateway refuses, or keeps failing on, is set aside and never blocks the rest."""
        now = self.monotonic()
        if not self.backoff.ready(now):
            result.skipped_drain = True
            result.retry_in_s = self.backoff.wait_s(now)
            return
        items = self.queue.items()
        live = {i.path.name for i in items}
        for name in [n for n in self.state.tries if n not in live]:
            del self.state.tries[name]
        i = 0
        while i < len(items):
            group = [items[i]]
            if items[i].kind == "heartbeat" and not self.state.tries.get(items[i].path.name):
                while (
                    i + len(group) < len(items)
                    and items[i + len(group)].kind == "heartbeat"
                    and not self.state.tries.get(items[i + len(group)].path.name)
                    and len(group) < HEARTBEATS_PER_POST
                ):
                    group.append(items[i + len(group)])
            i += len(group)
            pairs: list[tuple[QueueItem, QueuedRequest]] = []
            for g in group:
                try:
                    pairs.append((g, g.load()))
                except FileNotFoundError:
                    continue  # gone meanwhile (superseded): nothing to send
                except (OSError, ValueError) as exc:
                    where = self.queue.set_aside(g)
                    result.set_aside += 1
                    result.warnings.append(
                        f"{g.path.name}: unusable queue file "
                        f"({clean_text(str(exc), max_len=120)}): set aside in {where.parent}"
                    )
            try:
                sent = not pairs or self._send(pairs, result)
            except OSError as exc:  # rewriting what is left of a batch, or setting aside
                if exc.errno not in DISK_FULL:
                    raise
                result.disk_full = True
                result.warnings.append(
                    f"{self.queue.folder}: no space left ({exc.strerror}): the queue is sent "
                    "again next cycle"
                )
                sent = False
            if not sent:
                self._save_state(result)
                return
        self.backoff.succeeded()
        self._save_state(result)

    def _aside(self, g: QueueItem, result: CycleResult, why: str, records: int = 1) -> None:
        where = self.queue.set_aside(g)
        self.state.tries.pop(g.path.name, None)
        result.set_aside += records
        result.warnings.append(f"queued {g.kind} {g.path.name}: {why}; set aside in {where.parent}")

    def _send(self, pairs: list[tuple[QueueItem, QueuedRequest]], result: CycleResult) -> bool:
        """Deliver one request (a group of heartbeats, or one queue file), resending at once
        what is left after the gateway named invalid items. False: stop draining (backoff)."""
        while pairs:
            kind = pairs[0][0].kind
            if kind == "heartbeat":
                body: object = [d["body"] for _g, d in pairs]
                key = pairs[0][1]["idempotency_key"] if len(pairs) == 1 else None
            else:
                body, key = pairs[0][1]["body"], pairs[0][1]["idempotency_key"]
            try:
                self.client.post(ROUTES[kind], body, idempotency_key=key)
            except GatewayError as exc:
                outcome = self._refused(pairs, exc, result)
                if outcome is None:
                    return False
                pairs = outcome
                continue
            except (TypeError, ValueError) as exc:  # cannot be encoded: it never will be
                for g, d in pairs:
                    n = records_in(d["body"])
                    why = f"cannot be sent ({clean_text(str(exc), max_len=120)})"
                    self._aside(g, result, why, n)
                return True
            n = sum(records_in(d["body"]) for _g, d in pairs)
            result.delivered[kind] = result.delivered.get(kind, 0) + (
                n if kind in ("usage", "spend") else len(pairs)
            )
            for g, _d in pairs:
                self.queue.remove(g)
                self.state.tries.pop(g.path.name, None)
            return True
        return True

    def _refused(
        self,
        pairs: list[tuple[QueueItem, QueuedRequest]],
        exc: GatewayError,
        result: CycleResult,
    ) -> list[tuple[QueueItem, QueuedRequest]] | None:
        """What to resend at once after `exc` ([] nothing), or None: stop (a retryable
        failure; `result.error` says it and the backoff is started)."""
        kind = pairs[0][0].kind
        why = clean_text(str(exc), max_len=200)
        stale = _other_tenants([d["body"] for _g, d in pairs], self._tenant)
        if exc.kind == "refused" and exc.status == 403 and stale:
            # queued while this host published as another tenant (the roster's tenant_id
            # changed): no token of this host will take it, so it must not hold up the rest
            for g, d in pairs:
                n = records_in(d["body"])
                self._aside(
                    g,
                    result,
                    f"is for tenant '{clean_text(stale, max_len=40)}', this host now publishes "
                    f"as '{clean_text(str(self._tenant), max_len=40)}' and the gateway refused "
                    "it (403)",
                    n,
                )
            return []
        if exc.kind == "rejected":
            bad = sorted({i for i, _m in exc.items})
            reasons = {i: m for i, m in exc.items}
            if kind == "heartbeat" and len(pairs) > 1:
                if not bad or bad[-1] >= len(pairs):
                    for g, _d in pairs:  # the gateway did not say which: one by one
                        self.state.tries[g.path.name] = max(self.state.tries.get(g.path.name, 0), 1)
                    for pair in pairs:
                        if not self._send([pair], result):
                            return None  # a retryable failure: said, backing off
                    return []
                for i in bad:
                    g = pairs[i][0]
                    self._aside(g, result, f"refused by the gateway ({reasons.get(i, why)})")
                return [p for i, p in enumerate(pairs) if i not in set(bad)]
            g, d = pairs[0]
            body = d["body"]
            if isinstance(body, list) and bad and bad[-1] < len(body):
                records = [body[i] for i in bad]
                texts = [f"[{i}] {reasons[i]}" for i in bad]
                where = self.queue.set_aside_records(g, records, texts)
                result.set_aside += len(records)
                result.warnings.append(
                    f"gateway refused {len(records)} of {len(body)} {kind} records of "
                    f"{g.path.name} (first: {clean_text(texts[0], max_len=160)}); set aside in "
                    f"{where.parent}, the other {len(body) - len(records)} resent"
                )
                rest = [r for i, r in enumerate(body) if i not in set(bad)]
                if not rest:
                    self.queue.remove(g)
                    return []
                item = self.queue.write(g.path, kind, rest)
                again = QueuedRequest(
                    route=d["route"], idempotency_key=str(uuid.uuid4()), body=rest
                )
                return [(item, again)]
            n = len(body) if isinstance(body, list) else 1
            self._aside(g, result, f"gateway rejected it ({why})", n)
            return []
        if exc.kind == "invalid" or (exc.kind == "server" and exc.status == 500):
            # the gateway answered, and failed on this very request: count the tries
            for g, d in pairs:
                tries = self.state.tries.get(g.path.name, 0) + 1
                self.state.tries[g.path.name] = tries
                if tries >= MAX_TRIES:
                    n = records_in(d["body"])
                    self._aside(g, result, f"the gateway failed on it {tries} times ({why})", n)
            if all(not g.path.exists() for g, _d in pairs):
                return []
        result.error = exc
        result.retry_in_s = self.backoff.failed(self.monotonic())
        return None
