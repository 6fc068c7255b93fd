"""The unread end of a pane's pipe-pane log (`logs/<socket>.<agent>.log` in the state dir), read
as sanitized complete lines: one reader for the dashboard's stream screen (`ui.screens.stream`)
and `fleet-tui stream --follow` (`cli.stream`).

The log starts over from its beginning when it shrank (emptied at a dashboard's cap, or by
someone) or is another file: a new inode (replaced), or a name that was missing since the last
read (removed and created again, even on the old inode number, which ext4 hands out again).
A missing log is not an error (the pipe creates it). It never follows a link and never blocks on
something that is not a regular file. Reads happen in the caller's thread: never call it on an
event loop.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fleet_tui.core.sanitize import StreamSanitizer

READ_CHUNK = 1 << 20


class PipeLogTail:
    """`read` returns the new complete lines, sanitized, from the last offset.

    `max_backlog`: more unread than this, skip ahead to the last `max_backlog` bytes (a view
    whose older lines would scroll away anyway); None reads everything. `cap`: a log past this
    size is emptied (`O_APPEND` writers go on at 0); None never empties it."""

    def __init__(
        self,
        path: Path,
        *,
        max_backlog: int | None = None,
        cap: int | None = None,
        chunk: int = READ_CHUNK,
    ) -> None:
        self.path = path
        self.max_backlog = max_backlog
        self.cap = cap
        self.chunk = chunk
        self.offset = 0
        self._file: tuple[int, int] | None = None  # (device, inode) of the file being read
        self._seen: tuple[int, int, int] | None = None  # (device, inode, size) last looked at
        self._pending = ""
        self._sanitizer = StreamSanitizer()

    def _restart(self, offset: int = 0) -> None:
        self.offset, self._pending = offset, ""
        self._sanitizer = StreamSanitizer()

    def _empty_if_past_cap(self, size: int) -> None:
        if self.cap is not None and size > self.cap:
            try:
                os.truncate(self.path, 0)  # the writer appends (O_APPEND): it goes on at 0
            except OSError:
                pass

    def start_at_end(self) -> None:
        """Read only what is written from now on."""
        try:
            st = os.stat(self.path)
        except OSError:
            return
        self._file, self.offset = (st.st_dev, st.st_ino), st.st_size

    def peek(self) -> bool:
        """Whether the log changed since it was last looked at, without reading it. A log past
        the cap is emptied here too."""
        try:
            st = os.lstat(self.path)
        except OSError:
            return False
        seen = (st.st_dev, st.st_ino, st.st_size)
        changed, self._seen = seen != self._seen, seen
        if stat.S_ISREG(st.st_mode):
            self._empty_if_past_cap(st.st_size)
        return changed

    def read(self) -> tuple[list[str], bool, bool]:
        """(new lines, whether the log grew, whether more is left unread)."""
        try:  # never through a link, never blocking on something that is not a file
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
        except FileNotFoundError:
            # gone: the next file under the name is read from its start, even when the file
            # system gives it the old inode number back (seen in CI: the rest of a longer
            # first line was shown)
            if self._file is not None:
                self._file = None
                self._restart()
            return [], False, False
        except OSError:
            return [], False, False
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return [], False, False
            ident = (st.st_dev, st.st_ino)
            if self._file is not None and ident != self._file:
                self._restart()  # another file under the name
            self._file = ident
            size = st.st_size
            self._seen = (*ident, size)
            if size < self.offset:  # emptied: start over
                self._restart()
            if size == self.offset:
                return [], False, False
            if self.max_backlog is not None and size - self.offset > self.max_backlog:
                self._restart(size - self.max_backlog)
            fh.seek(self.offset)
            data = fh.read(self.chunk)
        self.offset += len(data)
        lines = (self._pending + self._sanitizer.feed(data)).split("\n")
        self._pending = lines.pop()
        self._empty_if_past_cap(self.offset)
        return lines, True, size > self.offset

    def rest(self) -> list[str]:
        """At the end: what is left, the last line even without its newline."""
        lines = self.read()[0]
        last = self._pending + self._sanitizer.flush()
        self._pending = ""
        return [*lines, last] if last.strip() else lines
