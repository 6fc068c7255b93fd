"""Blocking calls off the event loop: run one in a thread worker, post its outcome as a message.

`in_thread(node, call, done)` runs `call()` in a thread worker of `node` and posts
`done(result, error)` to `node` when it ends (`error` is the exception's text, cleaned, when
`call` raised; the result is then None). The handler of that message is where the UI takes the
result: on the event loop, in order, with no Worker.StateChanged bookkeeping by group."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from textual.dom import DOMNode
from textual.message import Message
from textual.worker import Worker

from fleet_tui.core.sanitize import clean_text
from fleet_tui.model.records import FleetSnapshot
from fleet_tui.service.poll import SnapshotSource
from fleet_tui.ui.alerting import AlertUpdate, TerminalAlerts

T = TypeVar("T")


def error_text(exc: BaseException) -> str:
    """What a failed call says on screen: its message (or its type), cleaned and bounded."""
    return clean_text(str(exc) or type(exc).__name__, max_len=300)


def in_thread(
    node: DOMNode,
    call: Callable[[], T],
    done: Callable[[T | None, str | None], Message],
    *,
    name: str,
    description: str,
) -> Worker[None]:
    """Run `call()` in a thread worker of `node`; post `done(result, error)` to `node`."""

    def run() -> None:
        try:
            result = call()
        except Exception as exc:  # said on screen by the message's handler, never a crash
            node.post_message(done(None, error_text(exc)))
            return
        node.post_message(done(result, None))

    return node.run_worker(
        run, thread=True, group=name, name=name, exit_on_error=False, description=description
    )


class Polled(Message):
    """A poll ended: its snapshot, or why it failed, and what the `terminal` alert channel made
    of it (`alerts`, None without alerts). A newer one replaces one not yet handled, unless this
    one carries something that fired or a notice (never lost: one bell, its toasts)."""

    def __init__(
        self,
        snapshot: FleetSnapshot | None,
        error: str | None,
        alerts: AlertUpdate | None = None,
    ) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.error = error
        self.alerts = alerts

    @classmethod
    def landed(cls, result: PollResult | None, error: str | None) -> Polled:
        """The message of `poll_and_alert`'s outcome (for `in_thread`)."""
        if result is None:
            return cls(None, error)
        return cls(result[0], error, result[1])

    def can_replace(self, message: Message) -> bool:
        # (Textual asks the older message whether it may give way to a newer one)
        news = self.alerts is not None and bool(self.alerts.fired or self.alerts.notice)
        return isinstance(message, Polled) and not news


PollResult = tuple[FleetSnapshot, AlertUpdate | None]


def poll_and_alert(
    source: SnapshotSource,
    alerts: TerminalAlerts | None,
    clock: Callable[[], datetime],
    *,
    heartbeats_only: bool = False,
    prepare: Callable[[FleetSnapshot], None] | None = None,
) -> PollResult:
    """In the poll thread: poll, then evaluate the alert rules over the new snapshot (the
    engine's evaluation and its file writes stay off the event loop). An evaluation that fails
    does not lose the poll: it is said as a notice. `prepare(snapshot)` then works out what the
    screens will ask of it (a failure there loses nothing: they work it out themselves)."""
    snapshot = source.poll(heartbeats_only=heartbeats_only)
    update: AlertUpdate | None = None
    if alerts is not None:
        try:
            update = alerts.step(snapshot, clock())
        except Exception as exc:  # the fleet is still shown; the operator is told once per poll
            update = AlertUpdate(open=alerts.last_open, notice=f"alerts: {error_text(exc)}")
    if prepare is not None:
        with contextlib.suppress(Exception):
            prepare(snapshot)
    return snapshot, update


async def watch_folder(folder: Path, changed: Callable[[], None], *, every_s: float) -> None:
    """Call `changed()` now and whenever files of `folder` change, at most once per `every_s`
    (changes made meanwhile are collected by the watcher and arrive as the next batch)."""
    from watchfiles import awatch

    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            break
        except OSError:  # not ours to create (yet): the timer polls keep working
            await asyncio.sleep(5.0)
    changed()  # whatever arrived before the watch began
    async for _changes in awatch(folder, debounce=200, step=50, recursive=False):
        changed()
        await asyncio.sleep(every_s)


class WatchCount:
    """How many `watch_file` watchers run now (a screen that leaves must leave none behind)."""

    live = 0


async def watch_file(
    path: Path, changed: Callable[[], None], *, debounce_ms: int = 100, step_ms: int = 50
) -> None:
    """Call `changed()` whenever the file `path` is created, written, truncated, replaced or
    removed; return when it cannot be watched (the caller's own slow re-check then has to do).
    Cancel the task to stop: the watcher's thread ends within `step_ms`.

    It watches the file's FOLDER (created 0700 when missing), not the file: a watch on the file
    itself is lost when the file is replaced or removed, and cannot start before it exists.
    A change is reported `step_ms` after writes pause, or every `debounce_ms` while they go on."""
    from watchfiles import Change, awatch

    folder, name = path.parent, path.name

    def ours(_change: Change, changed_path: str) -> bool:
        return os.path.basename(changed_path) == name

    try:
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return
    WatchCount.live += 1
    try:
        async for _changes in awatch(
            folder,
            watch_filter=ours,
            debounce=debounce_ms,
            step=step_ms,
            recursive=False,
            ignore_permission_denied=True,
        ):
            changed()
    except (OSError, RuntimeError):  # watch limit reached, folder gone: the caller re-checks
        return
    finally:
        WatchCount.live -= 1
