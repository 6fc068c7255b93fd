"""Safe reads of files we do not control: regular files only, never blocking, always bounded.

Every file fleet_tui reads (heartbeats, pings, roster, budgets, ledgers, queue items, transcripts)
may be something other than a regular file: a FIFO (opening it blocks until a writer comes; with
`O_NONBLOCK` it opens and reads empty), a link to one, `/dev/zero` (never ends) or a directory.
`read_regular` opens with `O_NONBLOCK | O_NOCTTY`, checks with `fstat` on the opened descriptor
(no race with a rename) that it is a regular file, and reads at most `limit` bytes.
`open_regular_binary` gives the same check as a file object, for readers that stream (ledgers,
transcripts); `open_append` is the writers' side (a FIFO with no reader fails at once instead of
blocking the writer).

`valid_text` makes what agents wrote valid Unicode before a model sees it: JSON's `"\\ud800"`
decodes to a lone surrogate, which no UTF-8 output can carry; it becomes U+FFFD.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Protocol


class NotRegularFile(OSError):
    """The path exists but is not a regular file (FIFO, device, directory, socket)."""

    def __init__(self, path: Path | str, kind: str) -> None:
        super().__init__(f"{path}: not a regular file ({kind})")
        self.path = str(path)
        self.kind = kind


class FileTooLarge(OSError):
    """The file holds more than the reader's bound."""

    def __init__(self, path: Path | str, size: int, limit: int) -> None:
        super().__init__(f"{path}: too large ({size} bytes, limit {limit})")
        self.path = str(path)
        self.size = size
        self.limit = limit


def file_kind(mode: int) -> str:
    """A short name for what a non-regular file is, for messages."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def ensure_regular(fd: int, path: Path | str) -> int:
    """`fd` (opened O_NONBLOCK) when it is a regular file, back in blocking mode (a regular
    file never blocks); otherwise it is closed and NotRegularFile raised."""
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, file_kind(mode))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(path: Path | str) -> int:
    """Open `path` read-only without ever blocking; return the descriptor of a regular file.

    Raises FileNotFoundError/PermissionError as `os.open` does, NotRegularFile otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    return ensure_regular(fd, path)


def read_regular(path: Path | str, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes.

    Raises FileNotFoundError, PermissionError, NotRegularFile or FileTooLarge; never blocks on
    a FIFO or a device and never reads more than `limit + 1` bytes."""
    fd = open_regular(path)
    try:
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise FileTooLarge(path, os.fstat(fd).st_size, limit)
        return data
    finally:
        os.close(fd)


FileKey = tuple[str, int, int, int, int, int]
# File times are coarse (a clock tick) and inode numbers are reused: a file changed within this
# long may change again with the same stat, so it is not cached ("racy" entries, as in git).
# A file system whose times are whole seconds (or coarser: FAT's 2 s) needs the long wait; one
# with finer times stamps them from the kernel's coarse clock, a tick (1-10 ms) behind at most,
# so a file older than _FINE_SETTLED_NS when stat'ed cannot be rewritten later with the same
# times. (Heartbeats rewritten every 2 s were otherwise fresh, so read again, at every poll.)
_SETTLED_NS = 2_000_000_000
_FINE_SETTLED_NS = 100_000_000
_NS = 1_000_000_000


def stable_key(path: str, st: os.stat_result) -> FileKey | None:
    """What identifies one version of a file, for a cache of what was read from it (stat it
    BEFORE reading); None when it changed too recently to be trusted."""
    mtime, ctime = st.st_mtime_ns, st.st_ctime_ns
    coarse = mtime % _NS == 0 and ctime % _NS == 0
    settle = _SETTLED_NS if coarse else min(_SETTLED_NS, _FINE_SETTLED_NS)
    if time.time_ns() - max(mtime, ctime) < settle:
        return None
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def is_regular(path: Path | str) -> bool:
    """True when `path` (links followed) is a regular file; never opens it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def open_regular_binary(path: Path | str) -> BinaryIO:
    """`open_regular` as a buffered binary file object (the caller closes it)."""
    fd = open_regular(path)
    try:
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def open_append(path: Path | str, mode: int = 0o600) -> int:
    """Open (creating it) `path` for appending without ever blocking; a regular file only.

    A FIFO with no reader fails with NotRegularFile instead of blocking until one comes; one
    with a reader, a device or a directory is refused after `fstat`."""
    try:
        fd = os.open(path, APPEND_FLAGS, mode)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.EISDIR):
            try:
                kind = file_kind(os.stat(path).st_mode)
            except OSError:
                raise exc from None
            raise NotRegularFile(path, kind) from None
        raise
    return ensure_regular(fd, path)


def _has_surrogate(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def valid_str(s: str) -> str:
    """`s` with every lone surrogate (U+D800..U+DFFF) replaced by U+FFFD."""
    if not _has_surrogate(s):
        return s
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)


def valid_text(obj: Any) -> Any:
    """A JSON value (as `json.loads` gives it) whose strings, keys included, are valid Unicode.

    Returns `obj` itself when nothing needed replacing (no copy for the common case)."""
    if isinstance(obj, str):
        return valid_str(obj)
    if isinstance(obj, dict):
        out: dict[Any, Any] | None = None
        for k, v in obj.items():
            nk = valid_str(k) if isinstance(k, str) else k
            nv = valid_text(v)
            if out is None and (nk is not k or nv is not v):
                out = {}
                for k2, v2 in obj.items():
                    if k2 is k:
                        break
                    out[k2] = v2
            if out is not None:
                out[nk] = nv
        return obj if out is None else out
    if isinstance(obj, list):
        items = [valid_text(v) for v in obj]
        if all(a is b for a, b in zip(items, obj, strict=True)):
            return obj
        return items
    return obj


def reason(exc: OSError, label: str) -> str:
    """One line on why `label` (a short name of the file) could not be read."""
    if isinstance(exc, NotRegularFile):
        return f"{label}: not a regular file ({exc.kind})"
    if isinstance(exc, FileTooLarge):
        return f"{label}: too large ({exc.size} bytes, limit {exc.limit})"
    return f"{label}: cannot read: {exc.strerror or exc}"


def loads_valid(raw: bytes | str) -> Any:
    """`json.loads`, its strings made valid Unicode (`valid_text`). Only text that can hold a
    surrogate (a `\\uD...` escape, or the UTF-8 lead byte 0xED that `json.loads` decodes with
    surrogatepass) is walked: the common line costs nothing more.

    Nesting deeper than the decoder's recursion limit (`[[[[...`: 4 KiB of it do) raises
    `json.JSONDecodeError` like any other text that is no record, never RecursionError."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None
    if isinstance(raw, bytes):
        maybe = b"\\ud" in raw or b"\\uD" in raw or b"\xed" in raw
    else:
        maybe = "\\ud" in raw or "\\uD" in raw or _has_surrogate(raw)
    return valid_text(data) if maybe else data


LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@contextlib.contextmanager
def exclusive_lock(path: Path, wait_s: float) -> Iterator[bool]:
    """Hold an flock on `path` (created 0600, opened without ever blocking) for a
    read-modify-write; yields whether it was taken. After `wait_s` (a writer stuck holding it)
    the caller goes on without it rather than hang, and a lock file that cannot be opened at
    all is the same as one not taken."""
    try:
        fd = os.open(path, LOCK_FLAGS, 0o600)
    except OSError:
        yield False
        return
    deadline = time.monotonic() + wait_s
    locked = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    break
                time.sleep(0.005)
        yield locked
    finally:
        os.close(fd)


_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def atomic_write(path: Path | str, data: bytes | str, mode: int | None = None) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never a part.

    A temp file in the same folder (created 0600 and exclusively, as `tempfile.mkstemp` does,
    without importing it: every hook run writes here), renamed over `path`; `mode` (e.g. 0o600)
    is set before the rename, so the file is never visible with looser permissions. Raises
    `OSError` (callers that speak of a state dir wrap it); the temp file never stays behind.
    """
    path = Path(path)
    for attempt in range(100):
        tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
        try:
            fd = os.open(tmp, _TEMP_FLAGS, 0o600)
            break
        except FileExistsError:
            if attempt == 99:
                raise
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


JsonObject = dict[str, object]  # a JSON object as `json.loads` gives it: read it with isinstance


class JsonModel(Protocol):
    """A record that writes its own JSON: a pydantic model, as the readers validate it (this
    package never imports pydantic; anything with this method will do)."""

    def model_dump_json(self, *, exclude_none: bool = ...) -> str: ...


JsonRecord = Mapping[str, Any] | JsonModel


def json_bytes(record: JsonRecord) -> bytes:
    """`record` as compact UTF-8 JSON: a model's own dump (None fields kept), or a dict in the
    same form (no spaces, non-ASCII as is), so both kinds of writer produce the same bytes."""
    if isinstance(record, Mapping):
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
    return record.model_dump_json(exclude_none=False).encode()
