"""Remote hands in the dashboard (DESIGN.md "Remote hands"): a remote row whose host is mapped
under `hosts:` in fleet-tui.yaml is acted on over SSH (control.remote_hands), never through its
record's tmux coordinates.

- `hands_of(app)`: the app's RemoteHands (built once from its settings and state dir), or None
  when no host is mapped or this view has no state dir.
- `RemoteStreamScreen`: the stream screen fed by `ssh ... stream --color always --follow --
  NAME`: the remote verb sanitizes the pane there, this screen sanitizes what arrives again
  (StreamSanitizer) before the log and the screen show it. Its ssh process ends when the screen
  leaves (the remote stream then sees its reader gone and closes its pipe there).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from fleet_tui.control.remote_hands import RemoteHands, RemoteHost
from fleet_tui.core.sanitize import StreamSanitizer, clean_text
from fleet_tui.model.records import AgentRecord
from fleet_tui.ui.screens.stream import StreamScreen

SCREEN_ROWS = 500  # the screen mode of a remote stream: the last rows that arrived
READ_CHUNK = 1 << 16
SHOW_EVERY_S = 0.1  # a burst is shown in batches, at most this often (the loop stays free)
END_GRACE_S = 2.0  # after SIGTERM, how long ssh may take before it is killed


def hands_of(app: Any) -> RemoteHands | None:
    """The app's remote hands (one per app), or None: no `hosts:` mapped, or no state dir
    (a view without actions) to audit in."""
    hands = getattr(app, "_fleet_remote_hands", None)
    if isinstance(hands, RemoteHands):
        return hands
    settings = getattr(app, "settings", None)
    hosts = getattr(settings, "hosts", None) or {}
    state_dir = getattr(getattr(app, "actions", None), "state_dir", None)
    if state_dir is None:
        config = getattr(app, "lifecycle_config", None)
        state_dir = getattr(config, "state_dir", None)
    if not hosts or state_dir is None:
        return None
    surface = getattr(getattr(app, "surface", None), "name", "tui")
    hands = RemoteHands(hosts, state_dir, surface=surface)
    app._fleet_remote_hands = hands
    return hands


def refusal_for(verb: str, record: AgentRecord, hands: RemoteHands | None) -> str | None:
    """Why a remote row refuses `verb` (one line), or None when its host is mapped."""
    if hands is not None and hands.mapped(record):
        return None
    name, host = clean_text(record.name, max_len=64), clean_text(record.host, max_len=64)
    return f"{verb}: {name} runs on host {host}: map host {host} under hosts: in fleet-tui.yaml"


class RemoteStreamScreen(StreamScreen):
    """The stream screen of a remote agent, over SSH (see the module doc)."""

    def __init__(self, record: AgentRecord, target: RemoteHost, argv: list[str]) -> None:
        super().__init__(record)
        self.target = target
        self.argv = argv
        self.ended: str | None = None  # why the stream ended, once it did

    async def _follow(self) -> None:
        where = f"over ssh {clean_text(self.target.dest, max_len=60)}"
        self._ui(self._set_log_state, where)
        self._ui(self._show_capture, f"connecting to {self.target.where}…")
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                # a process group of its own: a Ctrl-C meant for the dashboard (a terminal in
                # cooked mode during a hand-over) is not ssh's. The same session, though: the
                # web server, which ends a browser session's app by its session, ends this too.
                process_group=0,
            )
        except OSError as exc:
            self._end(f"ssh could not be started: {exc.strerror or exc}")
            return
        assert proc.stdout is not None and proc.stderr is not None
        sanitizer = StreamSanitizer()
        pending = ""
        rows: deque[str] = deque(maxlen=SCREEN_ROWS)
        batch: list[str] = []  # lines not shown yet: shown at most every SHOW_EVERY_S
        shown_at = 0.0
        got = False
        loop = asyncio.get_running_loop()
        try:
            while self._still_wanted():
                wait = 1.0 if not batch else max(shown_at + SHOW_EVERY_S - loop.time(), 0.0)
                data: bytes | None = None
                try:
                    async with asyncio.timeout(wait):
                        data = await proc.stdout.read(READ_CHUNK)
                except TimeoutError:
                    pass
                if data == b"":
                    break
                if data:
                    # sanitized there, and again here: only text and canonical SGR are shown
                    lines = (pending + sanitizer.feed(data)).split("\n")
                    pending = lines.pop()
                    batch += lines
                if batch and loop.time() - shown_at >= SHOW_EVERY_S:
                    got = True
                    rows.extend(batch)
                    self._ui(self._append, batch)
                    self._ui(self._show_capture, "\n".join(rows))
                    batch, shown_at = [], loop.time()
            if not self._still_wanted():
                return
            last = pending + sanitizer.flush()  # a last line without its newline
            if last.strip():
                batch.append(last)
            if batch:
                got = True
                rows.extend(batch)
                self._ui(self._append, batch)
                self._ui(self._show_capture, "\n".join(rows))
            rc = await proc.wait()
            err = (await proc.stderr.read()).decode("utf-8", "replace")
            problem = self.target.explain(rc, err, "stream")
            if problem is None:
                self._end("the remote pane ended", keep=got)
            else:
                self._end(str(problem), keep=got)
        finally:
            await _stop(proc)

    def _end(self, why: str, *, keep: bool = False) -> None:
        self.ended = clean_text(why, max_len=300)
        self._ui(self._set_log_state, f"ended: {self.ended}")
        if not keep:
            self._ui(self._show_capture, self.ended)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """End the ssh process: SIGTERM, then SIGKILL after END_GRACE_S; always reaped."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            async with asyncio.timeout(END_GRACE_S):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
