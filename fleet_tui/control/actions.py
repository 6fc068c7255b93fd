"""The dashboard's operator actions, on top of `control`: open a pane's pipe log (stream),
send a message, hand the terminal over (watch, attach), and the audit log of each.

UI layer glue: the screens call an `OperatorActions`; the live one drives tmux through the one
runner and `control`; tests drive the same one against private tmux servers.

Two rules hold for every action (DESIGN.md "Gateway", "Audit log"):

- the target pane is NEVER taken from the record: a remote row (`record.remote`, from the
  gateway) is refused; a local row is re-resolved from a FRESH scan of this host's tmux by its
  exact name, on an agent socket (the fleet sockets and the roster's), or a session marked
  `@mosaic_agent`, or a roster agent on its own socket (`resolve_target`);
- the audit record is written FIRST ("started"); when it cannot be written the action is
  refused with `AuditUnavailable` and nothing reaches the pane.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from fleet_tui import telemetry
from fleet_tui import tmux as recipe
from fleet_tui.config.fleet import FleetConfig, load_configured_roster
from fleet_tui.control import panes as control
from fleet_tui.control.audit import audit_path, record_agent_action
from fleet_tui.core.join import FLEET_SOCKETS, roster_sockets
from fleet_tui.core.sanitize import clean_text
from fleet_tui.errors import AuditUnavailable, Refused
from fleet_tui.model.records import AgentRecord, Roster
from fleet_tui.protocol.acks import message_hash
from fleet_tui.protocol.names import AGENT_NAME_RE
from fleet_tui.sources.tmux import scan_all
from fleet_tui.tmux import TmuxRunner

_AGENT_NAME = re.compile(AGENT_NAME_RE)
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
HISTORY_LINES = 2000  # the scrollback the stream's log mode starts with


@dataclass(frozen=True)
class Handover:
    """What the dashboard runs to give the terminal to tmux (made from a
    `panes.HandoverPlan`, audited and prepared): run `argv` in the foreground (suspending the
    dashboard), or, inside tmux, start it without blocking (a popup or a client switch)."""

    argv: list[str]
    blocking: bool
    env: dict[str, str]


@dataclass(frozen=True)
class PaneTarget:
    """A pane of THIS host, found by a fresh tmux scan: never a record's coordinates."""

    socket: str
    pane_id: str
    name: str


class OperatorActions(Protocol):
    def open_log(self, record: AgentRecord) -> tuple[Path | None, str]: ...

    def send(self, record: AgentRecord, text: str) -> control.SendResult: ...

    def handover(self, record: AgentRecord, *, interactive: bool) -> Handover: ...

    def audit(self, action: str, record: AgentRecord, outcome: str, detail: str = "") -> None: ...

    def audit_lines(self, limit: int = 200) -> list[str]: ...


@runtime_checkable
class StreamActions(Protocol):
    """What the stream screen uses when the actions offer it (the live ones do)."""

    def open_log(self, record: AgentRecord) -> tuple[Path | None, str]: ...

    def resolve_record(self, record: AgentRecord) -> AgentRecord: ...

    def history(self, record: AgentRecord, lines: int = HISTORY_LINES) -> str: ...

    def close_log(self, record: AgentRecord) -> bool: ...


def check_agent_name(name: str) -> str:
    if not _AGENT_NAME.match(name):
        raise Refused(
            f"'{clean_text(name, max_len=64)}' is not a valid agent name "
            "([A-Za-z0-9_-], at most 64): no pane action"
        )
    return name


def _safe_part(text: str) -> str:
    """`text` as a file name part: itself when it is plain, else a mapped, unique spelling."""
    if _AGENT_NAME.match(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{_UNSAFE.sub('_', text)[:40]}-{digest}"


def log_path(state_dir: Path, socket: str, name: str) -> Path:
    """`logs/<socket>.<agent>.log` in the state dir. The agent name must be a valid agent name
    (refused otherwise); the socket name is mapped to a safe file name; the result is checked
    to lie directly inside `logs/`."""
    check_agent_name(name)
    logs = state_dir / "logs"
    path = logs / f"{_safe_part(socket or 'default')}.{name}.log"
    inside = os.path.realpath(state_dir) + os.sep
    if os.path.dirname(os.path.abspath(path)) != os.path.abspath(logs) or not (
        os.path.realpath(path).startswith(inside)
    ):
        raise Refused(f"stream log path for {name} leaves the state dir: refused")
    return path


def resolve_target(runner: TmuxRunner, record: AgentRecord, roster: Roster | None) -> PaneTarget:
    """The pane of `record`'s agent on THIS host, from a fresh scan (see the module doc).

    Raises `Refused` for a remote row or an invalid name, `control.ControlError` when no agent
    session has exactly this name (or several do, on sockets other than the record's)."""
    if record.remote:
        raise Refused(
            f"{clean_text(record.name, max_len=64)} is a remote agent (host "
            f"{clean_text(record.host, max_len=64)}): pane actions reach only this host's agents"
        )
    name = check_agent_name(record.name)
    agent_sockets = set(FLEET_SOCKETS) | roster_sockets(roster)
    ragent = next((a for a in roster.agents if a.name == name), None) if roster else None
    own_socket = roster.agent_socket(ragent) if roster is not None and ragent is not None else None
    found: list[PaneTarget] = []
    not_agent: list[str] = []
    for scan in scan_all(runner):
        row = scan.sessions().get(name)
        if row is None:
            continue
        if scan.name in agent_sockets or row.mosaic_agent or scan.name == own_socket:
            found.append(PaneTarget(scan.name, row.pane_id, name))
        else:
            not_agent.append(scan.name)
    if record.socket in not_agent:  # the row chosen is that session: it is no agent
        raise control.ControlError(
            f"the session '{name}' on socket '{clean_text(record.socket, max_len=64)}' "
            "is not an agent (no agent socket, no @mosaic_agent mark): no pane action"
        )
    if not found:
        why = (
            f" (the session on socket '{clean_text(not_agent[0], max_len=64)}' is not an agent)"
            if not_agent
            else ""
        )
        raise control.ControlError(f"no agent session '{name}' in this host's tmux{why}")
    same = [t for t in found if t.socket == record.socket]
    if same:
        return same[0]
    if len(found) == 1:
        return found[0]
    sockets = ", ".join(sorted(t.socket for t in found))
    raise control.ControlError(f"agent '{name}' has sessions on several sockets ({sockets})")


class LiveActions:
    def __init__(
        self,
        runner: TmuxRunner,
        state_dir: Path,
        config: FleetConfig | None = None,
        *,
        surface: str = "tui",
    ) -> None:
        self.runner = runner
        self.state_dir = state_dir
        self.config = config
        self.surface = surface  # what the audit lines say: `tui`, or `web` in a browser session

    # -- the target ---------------------------------------------------------------------------
    def _roster(self) -> Roster | None:
        config = self.config or FleetConfig.from_flags(state_dir=str(self.state_dir))
        # not strict: with a bad roster, agents are still known by socket and marker
        loaded = load_configured_roster(config, strict=False)
        return loaded.roster if loaded is not None else None

    def resolve(self, record: AgentRecord) -> PaneTarget:
        return resolve_target(self.runner, record, self._roster())

    def resolve_record(self, record: AgentRecord) -> AgentRecord:
        """`record` with the socket and pane of a fresh resolution (for captures)."""
        target = self.resolve(record)
        if record.tmux is None:
            raise control.ControlError(f"{record.name} has no tmux session")
        tmux = record.tmux.model_copy(update={"pane_id": target.pane_id})
        return record.model_copy(update={"socket": target.socket, "tmux": tmux})

    # -- the audit ----------------------------------------------------------------------------
    def _record(self, action: str, record: AgentRecord, outcome: str, detail: str) -> None:
        record_agent_action(self.state_dir, record, action, outcome, detail, surface=self.surface)

    def _intent(self, action: str, record: AgentRecord, detail: str = "") -> None:
        """The record written before acting: raises `AuditUnavailable` (do not act)."""
        self._record(action, record, "started", detail)

    def audit(self, action: str, record: AgentRecord, outcome: str, detail: str = "") -> None:
        """An outcome line. Best effort: the action's "started" line was written (or the
        action refused) before; a log that broke since must not crash the dashboard."""
        with contextlib.suppress(AuditUnavailable):
            self._record(action, record, outcome, detail)

    def audit_lines(self, limit: int = 200) -> list[str]:
        return read_audit(self.state_dir, limit)

    # -- stream -------------------------------------------------------------------------------
    def open_log(self, record: AgentRecord) -> tuple[Path | None, str]:
        target = self.resolve(record)
        path = log_path(self.state_dir, target.socket, target.name)
        state = control.ensure_pipe_log(
            self.runner,
            target.socket,
            target.pane_id,
            path,
            before_open=lambda: self._intent("pipe", record, str(path)),
        )
        if state == "opened":
            self.audit("pipe", record, "opened", str(path))
            return path, "piped to the state dir"
        if state == "ours":
            return path, "piped to the state dir"
        return None, "another pipe is open on this pane: screen mode only"

    def close_log(self, record: AgentRecord) -> bool:
        """Close the stream's pipe when it is ours (nobody streams any more); True if closed."""
        target = self.resolve(record)
        path = log_path(self.state_dir, target.socket, target.name)
        closed = control.close_pipe_log(self.runner, target.socket, target.pane_id, path)
        if closed:
            self.audit("pipe", record, "closed", str(path))
        return closed

    def history(self, record: AgentRecord, lines: int = HISTORY_LINES) -> str:
        """The pane's scrollback and screen (SGR kept, wrapped lines joined), raw."""
        target = self.resolve(record)
        res = self.runner.run(
            target.socket,
            *recipe.capture(target.pane_id, history=lines, escapes=True),
            timeout=3.0,
        )
        return res.stdout

    # -- send ---------------------------------------------------------------------------------
    def send(self, record: AgentRecord, text: str) -> control.SendResult:
        who = {"tenant": record.tenant_id, "host": record.host, "agent": record.name}
        with telemetry.span("fleet.send", **who, surface=self.surface) as span:
            target = self.resolve(record)
            cleaned = control.clean_message(text)
            self._intent("send", record, f"{message_hash(cleaned)} length={len(cleaned)}")
            try:
                result = control.send_message(self.runner, target.socket, target.pane_id, text)
            except Exception as exc:
                span.set(outcome="failed")
                self.audit("send", record, "failed", clean_text(str(exc), max_len=200))
                raise
            span.set(outcome="delivered", length=result.length)
            self.audit("send", record, "delivered", f"{result.hash} length={result.length}")
            return result

    # -- watch, attach ------------------------------------------------------------------------
    def handover(self, record: AgentRecord, *, interactive: bool) -> Handover:
        target = self.resolve(record)
        verb = "attach" if interactive else "watch"
        env = dict(os.environ)
        # inside tmux: a popup or a switch needs a client of the operator's server, and the
        # popup its terminal's size to fit the agent's window in
        client = need_client(self.runner.binary, env) if control.operator_server(env) else None
        plan = control.plan_handover(
            self.runner,
            target.socket,
            target.name,
            read_only=not interactive,
            environ=env,
            client_size=client,
        )
        self._intent(verb, record, plan.how)
        if not interactive:
            control.prepare_watch(self.runner, target.socket, target.name)  # never resizes
        return Handover(plan.argv, blocking=plan.how == "attach", env=plan.env)

    async def run_detached(self, verb: str, record: AgentRecord, handover: Handover) -> str | None:
        """Run a non-blocking hand-over (popup, client switch) to its end and audit how it
        ended; returns None when it succeeded, else a one-line reason to show."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *handover.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=handover.env,
            )
            _out, err = await proc.communicate()
        except OSError as exc:
            reason = clean_text(str(exc), max_len=200)
        else:
            if proc.returncode == 0:
                self.audit(verb, record, "detached")
                return None
            said = clean_text(err.decode("utf-8", "replace").strip(), max_len=200)
            reason = f"tmux exited with status {proc.returncode}" + (f": {said}" if said else "")
        self.audit(verb, record, "failed", reason)
        return reason


def need_client(binary: str, env: dict[str, str]) -> tuple[int, int] | None:
    """A popup (or client switch) is drawn on a CLIENT of the operator's tmux server: without
    one attached to the dashboard's session, tmux answers "no current client" and nothing is
    shown. Ask first (`#{client_name}` is empty then) and refuse with a reason; else answer the
    client's terminal size (columns, rows), None when tmux does not say."""
    try:
        res = subprocess.run(
            recipe.client_info(binary),
            env=env,
            capture_output=True,
            text=True,
            timeout=3.0,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise control.ControlError(f"the dashboard's tmux did not answer: {exc}") from None
    fields = res.stdout.strip("\n").split(recipe.FIELD_SEP)
    if res.returncode != 0 or not fields[0].strip():
        said = clean_text(res.stderr.strip(), max_len=120)
        raise control.ControlError(
            "no tmux client is attached to the dashboard's session: a popup cannot be shown"
            + (f" ({said})" if said else "")
        )
    try:
        return int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        return None


def read_audit(state_dir: Path, limit: int = 200) -> list[str]:
    """The last `limit` lines of the audit log (raw JSON lines; the caller sanitizes)."""
    from fleet_tui.protocol.files import open_regular

    path = audit_path(state_dir)
    try:
        fd = open_regular(path)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(size - 256 * 1024, 0))
        data = fh.read()
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-limit:]
