"""The dashboard's lifecycle keys (issue 17): start a down or missing agent (`u`), restart it
(`r`), stop it (`x`), on the fleet table's row or the agent in the detail.

Each is behind the typed-name confirmation of attach (`ui.dialogs.ConfirmLifecycleScreen`); a row
where the verb does not apply says why in one line instead (`refusal`). The verb runs in a thread
worker, never on the event loop (a stop waits up to its grace period): `control.lifecycle`'s
`start_agents` / `restart_agent` / `stop_agent` with surface `tui`, which load the roster, plan
before they change anything, audit themselves and fail closed. One at a time per agent: a second
press meanwhile says "already stopping NAME". The result (or error) is a toast, and a poll is
asked for at once so that the table follows.

A remote row (from the gateway) whose host is mapped under `hosts:` in fleet-tui.yaml gets the
same dialog, then `up -- NAME` / `stop --yes -- NAME` / `restart --yes -- NAME` runs on that host
over SSH (control.remote_hands; that host's roster decides there); an unmapped one is refused
with the line that says how to map it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from textual.app import App
from textual.message import Message

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.control.remote_hands import RemoteHands, unmapped_line
from fleet_tui.core.sanitize import clean_text
from fleet_tui.errors import FleetError
from fleet_tui.model.records import AgentRecord, Drift, FleetSnapshot, Roster
from fleet_tui.ui.context import ActionHost
from fleet_tui.ui.dialogs import ConfirmLifecycleScreen
from fleet_tui.ui.remote import hands_of
from fleet_tui.ui.workers import in_thread

GRACE_S = 10.0  # how long a runtime asked to end may take before its session is closed
SETTLE_S = 1.5  # how long a started agent is watched for a command that exits at once

HOST_ONLY = "lifecycle reaches another host only over SSH"
NOT_STARTABLE = "not startable: no command in the roster"
NOT_HERE = "not available in this view (no fleet configuration)"


@dataclass(frozen=True)
class Verb:
    """What one lifecycle key does, in the words of its dialog and toasts."""

    name: str  # start | restart | stop: the action, the audit's action
    key: str  # the key that asks for it (shown in the dialog's cancel line and the help)
    title: str  # "Start"
    doing: str  # "starting"
    done: str  # "started"
    headline: str  # the dialog's first line: what it will do
    explain: str  # the dialog's second line ({grace} filled in)


VERBS: dict[str, Verb] = {
    v.name: v
    for v in (
        Verb(
            "start",
            "u",
            "Start",
            "starting",
            "started",
            "Start: run this agent's roster command in a new session",
            "A session named after the agent runs its roster command in its cwd, through your "
            "login shell. A stop remembered or a supervise hold on it is cleared.",
        ),
        Verb(
            "restart",
            "r",
            "Restart",
            "restarting",
            "restarted",
            "Restart: the session is ended: its scrollback is lost",
            "The runtime is asked to end, its session closed after up to {grace} s, then "
            "started again from its roster definition.",
        ),
        Verb(
            "stop",
            "x",
            "Stop",
            "stopping",
            "stopped",
            "Stop: the session is ended: its scrollback is lost",
            "The runtime is asked to end, its session closed after up to {grace} s. Remembered "
            "as stopped on purpose: supervise and 'fleet-tui up' leave it alone until you "
            "start it (u).",
        ),
    )
}


def refusal(
    verb: str,
    record: AgentRecord,
    roster: Roster | None,
    snapshot: FleetSnapshot | None,
    hands: RemoteHands | None = None,
) -> str | None:
    """Why `verb` does not apply to `record` (one line), or None when it does. `roster` is the
    one the last poll read (None: not known here; the worker's own check then says it). A
    remote row applies when `hands` maps its host (that host's fleet-tui decides the rest)."""
    if record.remote:
        if hands is not None and hands.mapped(record):
            return None
        return f"{HOST_ONLY}: {unmapped_line(record.host)}"
    if snapshot is not None and record.host != snapshot.host:
        return HOST_ONLY
    if not record.in_roster:
        return NOT_STARTABLE
    if roster is not None:
        agent = next((a for a in roster.agents if a.name == record.name), None)
        if agent is None or not (agent.command or "").strip():
            return NOT_STARTABLE
    if verb == "start" and record.tmux is not None and Drift.PANE_DEAD not in record.drift:
        return "already running"
    return None


def last_roster(source: object) -> Roster | None:
    """The roster the dashboard's last poll read (the live source's collector keeps it; read
    here without I/O), or None when this source has none (a fixed fleet, no roster)."""
    collector = getattr(source, "collector", None)
    loaded = getattr(collector, "_last_roster", None)
    roster = getattr(loaded, "roster", None)
    return roster if isinstance(roster, Roster) else None


@dataclass(frozen=True)
class Outcome:
    """What a lifecycle call did, for the toast: one line (sanitized), and whether it failed."""

    text: str
    failed: bool = False


def _start_line(name: str, res: Any) -> Outcome:
    """A StartResult (control.lifecycle) as the toast's line."""
    detail = clean_text(str(res.detail or ""), max_len=300)
    pane = f", pane {clean_text(res.pane.pane_id)}" if res.pane is not None else ""
    socket = f"socket {clean_text(res.socket)}" if res.socket else ""
    if res.outcome == "started":
        return Outcome(f"{name} started ({socket}{pane})")
    if res.outcome == "already_running":
        return Outcome(f"{name}: already running ({socket}{pane})")
    if res.outcome == "down":
        last = [clean_text(str(line), max_len=160) for line in res.last][-3:]
        tail = "; last output: " + " | ".join(last) if last else ""
        return Outcome(f"{name}: down: {detail}{tail}", failed=True)
    if res.outcome == "not_startable":
        return Outcome(f"{name}: {NOT_STARTABLE}", failed=True)
    return Outcome(f"{name}: error: {detail or res.outcome}", failed=True)


def run_verb(
    config: FleetConfig, verb: str, name: str, *, grace_s: float, surface: str = "tui"
) -> Outcome:
    """Do `verb` to `name` (blocking: call it from a worker thread). Raises what the control
    layer raises (BadInput, AgentNotFound, AuditUnavailable, FleetError): one line each."""
    from fleet_tui.control import lifecycle as lc

    if verb == "start":
        results = lc.start_agents(config, [name], surface=surface, settle_s=SETTLE_S)
        res = next((r for r in results if r.name == name), None)
        if res is None:
            return Outcome(f"{name}: nothing was started", failed=True)
        return _start_line(name, res)
    if verb == "stop":
        stopped = lc.stop_agent(config, name, grace_s=grace_s, surface=surface)
        detail = clean_text(stopped.detail, max_len=300)
        if stopped.outcome == "not_running":
            return Outcome(f"{name} was not running ({detail}); remembered as stopped")
        return Outcome(f"{name} stopped ({detail})")
    if verb == "restart":
        again = lc.restart_agent(config, name, grace_s=grace_s, surface=surface, settle_s=SETTLE_S)
        line = _start_line(name, again.start)
        if again.start.outcome == "started":
            was = "" if again.stop.outcome == "stopped" else "; it was not running"
            return Outcome(line.text.replace(" started (", " restarted (", 1) + was)
        return line
    raise ValueError(f"unknown lifecycle verb {verb!r}")


def run_remote(hands: RemoteHands, verb: str, record: AgentRecord) -> Outcome:
    """Do `verb` to a remote row's agent on its mapped host over SSH (blocking: call it from a
    worker thread): the remote verb's report line, or its one-line error."""
    name = clean_text(record.name, max_len=64)
    try:
        line = hands.lifecycle(record, verb)
    except FleetError as exc:
        return Outcome(f"{name}: {clean_text(str(exc), max_len=400)}", failed=True)
    return Outcome(f"{clean_text(line, max_len=400)} (on {clean_text(record.host, max_len=64)})")


def audit_declined(
    config: FleetConfig, verb: str, name: str, detail: str, *, surface: str = "tui"
) -> None:
    """The operator did not confirm (esc, or a wrong name): one audit record, as the CLI
    writes (blocking: call it from a worker thread)."""
    from fleet_tui.control import lifecycle as lc

    fleet = lc.load_fleet_roster(config, verb)
    lc.audit_action(
        fleet, action=verb, agent=name, outcome="declined", detail=detail, surface=surface
    )


class LifecycleDone(Message):
    """A lifecycle call ended: its outcome, or the error's line."""

    def __init__(self, verb: str, name: str, outcome: Outcome | None, error: str | None) -> None:
        super().__init__()
        self.verb, self.name, self.outcome, self.error = verb, name, outcome, error


class Declined(Message):
    """The declined record was written (or why not: said only when it failed)."""

    def __init__(self, result: None, error: str | None) -> None:
        super().__init__()
        self.error = error


class Host(ActionHost, Protocol):
    """What the lifecycle keys need of the dashboard besides the App itself."""

    lifecycle_config: FleetConfig | None
    lifecycle_grace_s: float


class Lifecycle:
    """The lifecycle keys of `app`: which agent is being acted on, the dialog, the worker.
    `current` gives the agent in view (the detail's, or the fleet cursor's)."""

    def __init__(
        self, app: App[Any], host: Host, current: Callable[[], AgentRecord | None]
    ) -> None:
        self.app = app
        self.host = host
        self.current = current
        self.running: dict[str, str] = {}  # agent name -> the verb running on it

    def busy_line(self, name: str) -> str | None:
        verb = self.running.get(name)
        return None if verb is None else f"already {VERBS[verb].doing} {clean_text(name)}"

    def request(self, verb: str) -> None:
        """The key of `verb` was pressed: say why not, or open the confirmation."""
        record = self.current()
        if record is None:
            self.app.notify(f"{verb}: select an agent first", severity="warning")
            return
        name = clean_text(record.name, max_len=64)
        why = self.host.surface.refusal(verb)  # a browser session's scope comes first
        hands = hands_of(self.app)
        if why is None:
            roster = last_roster(self.host.source)
            why = refusal(verb, record, roster, self.host.snapshot, hands)
        if why is None and self.host.lifecycle_config is None and not record.remote:
            why = NOT_HERE
        if why is None:
            why = self.busy_line(record.name)
        if why is not None:
            self.app.notify(f"{verb} {name}: {why}", severity="warning", markup=False)
            return

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.run(verb, record)
            else:
                self._declined(verb, record, "confirmation cancelled")

        self.host.show_screen(self.dialog(verb, record), confirmed)

    def dialog(self, verb: str, record: AgentRecord) -> ConfirmLifecycleScreen:
        """The typed-name confirmation of `verb` on `record`'s agent."""
        v = VERBS[verb]
        grace = f"{self.host.lifecycle_grace_s:g}"
        return ConfirmLifecycleScreen(
            record,
            verb=verb,
            headline=v.headline,
            explain=v.explain.format(grace=grace),
            done=v.done,
        )

    def run(self, verb: str, record: AgentRecord) -> None:
        """Run `verb` on `record`'s agent in a thread worker (one at a time per agent)."""
        config = self.host.lifecycle_config
        name = record.name
        shown = clean_text(name, max_len=64)
        busy = self.busy_line(name)
        hands = hands_of(self.app) if record.remote else None
        if busy is not None or (config is None and hands is None):
            self.app.notify(f"{verb} {shown}: {busy or NOT_HERE}", severity="warning", markup=False)
            return
        self.running[name] = verb
        self.app.notify(f"{VERBS[verb].doing} {shown}…", timeout=3, markup=False)
        if hands is not None:  # a mapped host's agent: over SSH
            in_thread(
                self.app,
                partial(run_remote, hands, verb, record),
                partial(LifecycleDone, verb, name),
                name=f"lifecycle {name}",
                description=f"{verb} {shown} over ssh",
            )
            return
        assert config is not None
        call = partial(
            run_verb,
            config,
            verb,
            name,
            grace_s=self.host.lifecycle_grace_s,
            surface=self.host.surface.name,
        )
        in_thread(
            self.app,
            call,
            partial(LifecycleDone, verb, name),
            name=f"lifecycle {name}",
            description=f"{verb} {shown}",
        )

    def done(self, message: LifecycleDone) -> None:
        """The worker of `message.name` ended: say how, and poll at once."""
        self.running.pop(message.name, None)
        shown = clean_text(message.name, max_len=64)
        if message.outcome is not None:
            failed = message.outcome.failed
            text = message.outcome.text
        else:
            failed = True
            text = f"{shown}: error: {message.error or 'failed'}"
        self.app.notify(
            clean_text(text, max_len=500),
            title=VERBS[message.verb].title,
            severity="error" if failed else "information",
            timeout=10 if failed else 5,
            markup=False,
        )
        self.host.request_poll()

    def _declined(self, verb: str, record: AgentRecord, detail: str) -> None:
        hands = hands_of(self.app) if record.remote else None
        if hands is not None:
            remote = partial(hands.audit, verb, record, "declined", detail)
            in_thread(
                self.app, remote, Declined, name="audit", description="audit a declined action"
            )
            return
        config = self.host.lifecycle_config
        if config is None:
            return
        call = partial(
            audit_declined, config, verb, record.name, detail, surface=self.host.surface.name
        )
        in_thread(self.app, call, Declined, name="audit", description="audit a declined action")
