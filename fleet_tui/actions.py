"""The dashboard's operator actions, on top of `control`: open a pane's pipe log (stream),
send a message, hand the terminal over (watch, attach), and the audit log of each.

UI layer glue: the screens call an `OperatorActions`; the live one drives tmux through the one
runner and `control`; tests drive the same one against private tmux servers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from fleet_tui import control
from fleet_tui.audit import audit_path, record_action
from fleet_tui.model import AgentRecord
from fleet_tui.tmux import TmuxRunner


@dataclass(frozen=True)
class Handover:
    """How to give the terminal to tmux: run `argv` in the foreground (suspending the
    dashboard), or, inside tmux, start it without blocking (a popup or a client switch)."""

    argv: list[str]
    blocking: bool
    env: dict[str, str]


class OperatorActions(Protocol):
    def open_log(self, record: AgentRecord) -> tuple[Path | None, str]: ...

    def send(self, record: AgentRecord, text: str) -> control.SendResult: ...

    def handover(self, record: AgentRecord, *, interactive: bool) -> Handover: ...

    def audit(self, action: str, record: AgentRecord, outcome: str, detail: str = "") -> None: ...

    def audit_lines(self, limit: int = 200) -> list[str]: ...


def log_path(state_dir: Path, record: AgentRecord) -> Path:
    return state_dir / "logs" / f"{record.socket or 'default'}.{record.name}.log"


class LiveActions:
    def __init__(self, runner: TmuxRunner, state_dir: Path) -> None:
        self.runner = runner
        self.state_dir = state_dir

    def _need_pane(self, record: AgentRecord) -> tuple[str, str]:
        if record.tmux is None or record.socket is None:
            raise control.ControlError(f"{record.name} has no tmux session")
        return record.socket, record.tmux.pane_id

    def open_log(self, record: AgentRecord) -> tuple[Path | None, str]:
        socket, pane = self._need_pane(record)
        path = log_path(self.state_dir, record)
        state = control.ensure_pipe_log(self.runner, socket, pane, path)
        if state == "opened":
            self.audit("pipe", record, "opened", str(path))
            return path, "piped to the state dir"
        if state == "ours":
            return path, "piped to the state dir"
        return None, "another pipe is open on this pane: screen mode only"

    def send(self, record: AgentRecord, text: str) -> control.SendResult:
        socket, pane = self._need_pane(record)
        try:
            result = control.send_message(self.runner, socket, pane, text)
        except Exception as exc:
            self.audit("send", record, "failed", str(exc)[:200])
            raise
        self.audit("send", record, "delivered", f"{result.hash} length={result.length}")
        return result

    def handover(self, record: AgentRecord, *, interactive: bool) -> Handover:
        socket, _pane = self._need_pane(record)
        if not interactive:
            control.prepare_watch(self.runner, socket, record.name)  # a watcher never resizes
        plan = control.plan_handover(self.runner, socket, record.name, read_only=not interactive)
        return Handover(plan.argv, blocking=plan.how == "attach", env=plan.env)

    def audit(self, action: str, record: AgentRecord, outcome: str, detail: str = "") -> None:
        record_action(
            self.state_dir,
            now=datetime.now(UTC),
            tenant_id=record.tenant_id,
            host=record.host,
            action=action,
            agent=record.name,
            outcome=outcome,
            detail=detail,
        )

    def audit_lines(self, limit: int = 200) -> list[str]:
        return read_audit(self.state_dir, limit)


def read_audit(state_dir: Path, limit: int = 200) -> list[str]:
    """The last `limit` lines of the audit log (raw JSON lines; the caller sanitizes)."""
    path = audit_path(state_dir)
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(size - 256 * 1024, 0))
            data = fh.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-limit:]
