"""The operator's pane actions: stream, watch, attach, send, the audit log. Each one is behind a
screen or a confirmation, refuses a row without a pane, and is audited. Copy (the agent's name,
attach command, pane id to the clipboard) only reads the record.

A remote row (from the gateway) is never acted on through its record's tmux coordinates: when
its host is mapped under `hosts:` in fleet-tui.yaml, the same verb runs on that host over SSH
(ui.remote, control.remote_hands: `stream --follow`, `watch`, `attach --yes` after the local
typed confirmation, `send - --verify`); otherwise it is refused with the line that says how to
map it. A browser session's scope (config.surface) is checked before anything else."""

from __future__ import annotations

import asyncio
import subprocess
from functools import partial
from typing import Any, Protocol

from textual.app import App, SuspendNotSupported

from fleet_tui.control.actions import Handover, OperatorActions
from fleet_tui.control.panes import wait_for_ack
from fleet_tui.control.remote_hands import RemoteHands
from fleet_tui.core.sanitize import clean_text
from fleet_tui.model.records import AgentRecord
from fleet_tui.tmux import socket_dir
from fleet_tui.ui.context import ActionHost
from fleet_tui.ui.copy import WHAT, CopyScreen, copy_text
from fleet_tui.ui.dialogs import AuditScreen, ComposeMessageScreen, ConfirmAttachScreen
from fleet_tui.ui.remote import RemoteStreamScreen, hands_of, refusal_for
from fleet_tui.ui.screens import FleetScreen
from fleet_tui.ui.screens.stream import StreamScreen
from fleet_tui.ui.widgets import FleetTable


class Host(ActionHost, Protocol):
    """What the actions need of the dashboard besides the App itself."""

    actions: OperatorActions | None
    fleet_screen: FleetScreen


class Operator:
    """The actions of `app` (the running App) on the panes of `host`'s fleet (the same app)."""

    def __init__(self, app: App[Any], host: Host) -> None:
        self.app = app
        self.host = host

    def current_record(self) -> AgentRecord | None:
        """The agent the operator is looking at: the detail's, the stream's, or the cursor's."""
        screen = self.app.screen
        key = getattr(screen, "key", None)
        if key is None and isinstance(screen, StreamScreen):
            key = screen.record.key
        if key is None:
            key = self.host.fleet_screen.query_one(FleetTable).cursor_key
        if self.host.snapshot is None or key is None:
            return None
        return next((a for a in self.host.snapshot.agents if a.key == key), None)

    def _actionable(self, verb: str, *, needs_actions: bool = True) -> AgentRecord | None:
        """The agent in view when `verb` may act on it (a remote row only when its host is
        mapped: the caller then goes over SSH), else None after saying why in one line."""
        record = self.current_record()
        if record is None:
            self.app.notify(f"{verb}: select an agent first", severity="warning")
            return None
        why = self.host.surface.refusal(verb)  # a browser session's scope comes first
        if why is not None:
            self.app.notify(f"{verb}: {why}", severity="warning", markup=False)
            return None
        if record.remote:  # from the gateway: whatever its host name says, not this host's pane
            unmapped = refusal_for(verb, record, hands_of(self.app))
            if unmapped is not None:
                self.app.notify(unmapped, severity="warning", markup=False)
                return None
            return record  # its host is mapped: over SSH, never at the record's coordinates
        if record.tmux is None:
            self.app.notify(f"{verb}: {record.name} has no tmux session", severity="warning")
            return None
        if needs_actions and self.host.actions is None:
            self.app.notify(f"{verb}: not available in this view", severity="warning")
            return None
        return record

    def stream(self) -> None:
        record = self._actionable("stream", needs_actions=False)
        if record is None:
            return
        hands = hands_of(self.app)
        if record.remote and hands is not None:
            try:
                argv = hands.stream_argv(record)
                target = hands.host(record)
            except Exception as exc:
                self.app.notify(f"stream: {clean_text(str(exc), max_len=200)}", severity="error")
                return
            self.host.show_screen(RemoteStreamScreen(record, target, argv))
            return
        self.host.show_screen(StreamScreen(record))

    def watch(self) -> None:
        record = self._actionable("watch")
        if record is not None:
            self.hand_over(record, interactive=False)

    def attach(self) -> None:
        record = self._actionable("attach")
        if record is None:
            return

        def confirmed(ok: bool | None) -> None:
            hands = hands_of(self.app)
            if ok:
                self.hand_over(record, interactive=True)
            elif record.remote and hands is not None:
                hands.audit("attach", record, "declined", "confirmation cancelled")
            elif self.host.actions is not None:
                self.host.actions.audit("attach", record, "declined", "confirmation cancelled")

        self.host.show_screen(ConfirmAttachScreen(record), confirmed)

    def hand_over(self, record: AgentRecord, *, interactive: bool) -> None:
        """Give the terminal to `tmux attach` (read-only for watch) and come back on detach;
        for a remote row of a mapped host, to `ssh -t ... watch|attach` (ui.remote)."""
        hands = hands_of(self.app)
        if record.remote and hands is not None:
            self._hand_over_remote(hands, record, interactive=interactive)
            return
        assert self.host.actions is not None
        verb = "attach" if interactive else "watch"
        try:
            handover = self.host.actions.handover(record, interactive=interactive)
        except Exception as exc:
            self.host.actions.audit(verb, record, "failed", clean_text(str(exc), max_len=200))
            self.app.notify(f"{verb}: {clean_text(str(exc), max_len=200)}", severity="error")
            return
        if not handover.blocking:  # inside tmux: a popup or a client switch, we keep running
            # `handover()` wrote the "started" record already; the end is audited by the run.
            self.app.run_worker(
                self._run_detached(verb, record, handover),
                group="handover",
                exit_on_error=False,
            )
            return
        try:
            with self.app.suspend():
                rc = subprocess.call(handover.argv, env=handover.env)
        except SuspendNotSupported:
            self.host.actions.audit(verb, record, "failed", "this terminal cannot be handed over")
            self.app.notify(f"{verb}: this terminal cannot be handed over", severity="error")
            return
        except OSError as exc:
            self.host.actions.audit(verb, record, "failed", clean_text(str(exc), max_len=200))
            self.app.notify(f"{verb}: {clean_text(str(exc), max_len=200)}", severity="error")
            return
        outcome = "detached" if rc == 0 else f"exit {rc}"
        self.host.actions.audit(verb, record, outcome)
        if rc != 0:
            self.app.notify(f"{verb}: tmux exited with status {rc}", severity="error")
        self.host.request_poll()

    def _hand_over_remote(
        self, hands: RemoteHands, record: AgentRecord, *, interactive: bool
    ) -> None:
        """`ssh -t ... watch|attach --yes -- NAME` on the mapped host: in the foreground (the
        dashboard suspended), or inside tmux in a popup; audited here (via ssh DEST) and there
        (surface ssh). ssh's own complaint (host key, timeout...) is said in one line."""
        import tempfile

        verb = "attach" if interactive else "watch"
        try:
            handover = hands.handover(record, interactive=interactive)
        except Exception as exc:
            hands.audit(verb, record, "failed", clean_text(str(exc), max_len=200))
            self.app.notify(f"{verb}: {clean_text(str(exc), max_len=200)}", severity="error")
            return
        if not handover.blocking:  # a popup on the operator's tmux: we keep running
            self.app.run_worker(
                self._run_remote_popup(hands, verb, record, handover),
                group="handover",
                exit_on_error=False,
            )
            return
        target = hands.host(record)
        with tempfile.TemporaryFile() as err:
            try:
                with self.app.suspend():
                    rc = subprocess.call(handover.argv, env=handover.env, stderr=err)
            except SuspendNotSupported:
                hands.audit(verb, record, "failed", "this terminal cannot be handed over")
                self.app.notify(f"{verb}: this terminal cannot be handed over", severity="error")
                return
            except OSError as exc:
                hands.audit(verb, record, "failed", clean_text(str(exc), max_len=200))
                self.app.notify(f"{verb}: {clean_text(str(exc), max_len=200)}", severity="error")
                return
            err.seek(0)
            said = err.read(64 * 1024).decode("utf-8", "replace")
        problem = target.explain(rc, said, verb)
        hands.audit(verb, record, "detached" if problem is None else "failed", str(problem or ""))
        if problem is not None:
            self.app.notify(f"{verb}: {clean_text(str(problem), max_len=300)}", severity="error")
        self.host.request_poll()

    async def _run_remote_popup(
        self, hands: RemoteHands, verb: str, record: AgentRecord, handover: Handover
    ) -> None:
        proc = await asyncio.create_subprocess_exec(
            *handover.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=handover.env,
        )
        _out, err = await proc.communicate()
        if proc.returncode == 0:
            hands.audit(verb, record, "detached")
        else:
            said = clean_text(err.decode("utf-8", "replace").strip(), max_len=200)
            reason = f"the popup ended with status {proc.returncode}" + (
                f": {said}" if said else ""
            )
            hands.audit(verb, record, "failed", reason)
            self.app.notify(f"{verb}: {reason}", severity="error")
        self.host.request_poll()

    async def _run_detached(self, verb: str, record: AgentRecord, handover: Handover) -> None:
        """Run a popup or client switch to its end; a failure is said on screen (and audited
        by the actions that ran it)."""
        run = getattr(self.host.actions, "run_detached", None)
        if run is not None:
            reason = await run(verb, record, handover)
        else:  # actions without their own runner (tests' recording actions)
            proc = await asyncio.create_subprocess_exec(
                *handover.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                env=handover.env,
            )
            rc = await proc.wait()
            reason = None if rc == 0 else f"tmux exited with status {rc}"
        if reason:
            self.app.notify(f"{verb}: {clean_text(reason, max_len=200)}", severity="error")
        self.host.request_poll()

    def message(self) -> None:
        record = self._actionable("send")
        if record is None:
            return

        def composed(text: str | None) -> None:
            if text:
                self._send(record, text)

        self.host.show_screen(ComposeMessageScreen(record), composed)

    def _send(self, record: AgentRecord, text: str) -> None:
        hands = hands_of(self.app)
        if record.remote and hands is not None:
            self.app.run_worker(
                partial(self._send_remote, hands, record, text),
                thread=True,
                group="send",
                exit_on_error=False,
                description="send a message over ssh",
            )
            return
        self.app.run_worker(
            partial(self._send_and_wait, record, text),
            thread=True,
            group="send",
            exit_on_error=False,
            description="send a message",
        )

    def _send_and_wait(self, record: AgentRecord, text: str) -> None:
        assert self.host.actions is not None
        spool = getattr(self.host.source, "spool", None)
        before = spool.read_heartbeat(record.name).heartbeat if spool is not None else None
        try:
            result = self.host.actions.send(record, text)
        except Exception as exc:
            self.app.call_from_thread(
                self.app.notify,
                f"send to {record.name} failed: {clean_text(str(exc), max_len=200)}",
                severity="error",
            )
            return
        self.app.call_from_thread(
            self.app.notify, f"sent to {record.name} ({result.length} chars); waiting for its ack…"
        )
        accepted = spool is not None and (
            wait_for_ack(
                lambda: spool.read_heartbeat(record.name).heartbeat,
                before,
                result.hash,
                timeout_s=10.0,
            )
            is not None
        )
        if accepted:
            self.app.call_from_thread(self.app.notify, f"{record.name} accepted the message")
        else:
            self.app.call_from_thread(
                self.app.notify,
                f"{record.name}: delivered, not confirmed within 10 s",
                severity="warning",
            )

    def _send_remote(self, hands: RemoteHands, record: AgentRecord, text: str) -> None:
        """`send --verify -- NAME -` on the mapped host (the message on stdin): the remote
        verb types it and waits for the runtime's ack there; its line is the toast."""
        name = clean_text(record.name, max_len=64)
        self.app.call_from_thread(
            self.app.notify, f"sending to {name} over ssh; waiting for its ack…", markup=False
        )
        try:
            sent = hands.send(record, text)
        except Exception as exc:
            self.app.call_from_thread(
                self.app.notify,
                f"send to {name}: {clean_text(str(exc), max_len=300)}",
                severity="warning" if getattr(exc, "exit_code", 0) == 4 else "error",
                markup=False,
            )
            return
        self.app.call_from_thread(
            self.app.notify, clean_text(sent.line, max_len=300), title="Sent", markup=False
        )

    def copy(self, what: str = "") -> None:
        """Copy `what` ("name", "attach", "pane") of the agent in view to the clipboard (OSC 52);
        without `what`, ask which first (`CopyScreen`). A notice says what was copied."""
        record = self.current_record()
        if record is None:
            self.app.notify("copy: select an agent first", severity="warning")
            return
        if not what:

            def chosen(choice: str | None) -> None:
                if choice:
                    self._copy(record, choice)

            self.host.show_screen(CopyScreen(record), chosen)
            return
        self._copy(record, what)

    def _copy(self, record: AgentRecord, what: str) -> None:
        runner = getattr(self.host.actions, "runner", None)
        folder = str(runner.socket_dir) if runner is not None else str(socket_dir())
        text, why = copy_text(record, what, folder)
        if text is None:
            self.app.notify(f"copy: {clean_text(why, max_len=200)}", severity="warning")
            return
        self.app.copy_to_clipboard(text)
        self.app.notify(
            f"copied {WHAT.get(what, what)}: {clean_text(text, max_len=200)}",
            title="Clipboard",
        )

    def audit(self) -> None:
        lines = self.host.actions.audit_lines() if self.host.actions is not None else []
        self.host.show_screen(AuditScreen(lines))
