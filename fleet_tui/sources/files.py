"""Safe reads of files we do not control: regular files only, never blocking, always bounded.

Every file fleet_tui reads (heartbeats, pings, roster, budgets, ledgers, queue items, transcripts)
may be something other than a regular file: a FIFO (opening it blocks until a writer comes; with
`O_NONBLOCK` it opens and reads empty), a link to one, `/dev/zero` (never ends) or a directory.
`read_regular` opens with `O_NONBLOCK | O_NOCTTY`, checks with `fstat` on the opened descriptor
(no race with a rename) that it is a regular file, and reads at most `limit` bytes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


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


def open_regular(path: Path | str) -> int:
    """Open `path` read-only without ever blocking; return the descriptor of a regular file.

    Raises FileNotFoundError/PermissionError as `os.open` does, NotRegularFile otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, file_kind(mode))
        # Back to blocking reads: a regular file never blocks, and O_NONBLOCK is meaningless there.
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


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


def is_regular(path: Path | str) -> bool:
    """True when `path` (links followed) is a regular file; never opens it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
