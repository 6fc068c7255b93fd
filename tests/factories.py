"""Builders of source observations and heartbeats for the pure-core tests (no tmux needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fleet_tui.core.join import FleetInputs
from fleet_tui.model.records import (
    AgentState,
    Heartbeat,
    PaneRow,
    Ping,
    Roster,
    RosterAgent,
    SocketScan,
    SocketState,
    SpoolRead,
)

NOW = datetime(2026, 11, 26, 4, 0, 0, tzinfo=UTC)
TENANT = "jarvis"
HOST = "w-jarvis"

_pane_counter = iter(range(1, 10_000))


def pane(
    session: str,
    *,
    pid: int | None = None,
    command: str = "node",
    dead: bool = False,
    mosaic_agent: str = "",
    title: str = "",
    activity: int | None = None,
    cwd: str = "/w/app",
) -> PaneRow:
    n = next(_pane_counter)
    return PaneRow(
        session_name=session,
        session_id=f"${n}",
        session_created=int(NOW.timestamp()) - 3600,
        session_activity=activity if activity is not None else int(NOW.timestamp()) - 10,
        session_attached=0,
        window_index=0,
        window_active=True,
        pane_active=True,
        pane_id=f"%{n}",
        pane_pid=pid if pid is not None else 1000 + n,
        current_command=command,
        pane_dead=dead,
        pane_pipe=False,
        pane_in_mode=False,
        window_activity=None,
        mosaic_agent=mosaic_agent,
        window_size="200x50",
        pane_title=title,
        current_path=cwd,
    )


def socket(
    name: str,
    *panes: PaneRow,
    state: SocketState = SocketState.LIVE,
    reason: str | None = None,
) -> SocketScan:
    return SocketScan(
        name=name,
        path=f"/tmp/tmux-0/{name}",
        state=state,
        panes=list(panes),
        reason=reason,
        listed_in_ms=1.5 if state is SocketState.LIVE else None,
    )


def agent(name: str, role: str = "coder", **kw: Any) -> RosterAgent:
    return RosterAgent(name=name, role=role, **kw)


def roster(*agents: RosterAgent, socket_name: str | None = "mosaic-fleet", **kw: Any) -> Roster:
    return Roster(
        version=1,
        tenant_id=kw.pop("tenant_id", TENANT),
        host=kw.pop("host", HOST),
        socket_name=socket_name,
        agents=list(agents),
        **kw,
    )


def heartbeat(agent_name: str, age_s: float = 4.0, **kw: Any) -> Heartbeat:
    fields: dict[str, Any] = {
        "v": 1,
        "tenant_id": TENANT,
        "host": HOST,
        "agent": agent_name,
        "seq": 17,
        "ts": NOW - timedelta(seconds=age_s),
        "interval_s": 10,
        "state": AgentState.BUSY,
        "detail": "running tests",
        "runtime": "codex",
        "model": "gpt-5.5",
        "pid": 4242,
    }
    fields.update(kw)
    return Heartbeat(**fields)


def ping(nonce: str, age_s: float) -> Ping:
    return Ping(nonce=nonce, ts=NOW - timedelta(seconds=age_s))


def beats(*hbs: Heartbeat) -> dict[str, SpoolRead]:
    return {hb.agent: SpoolRead(hb) for hb in hbs}


def inputs(*sockets: SocketScan, **kw: Any) -> FleetInputs:
    kw.setdefault("now", NOW)
    kw.setdefault("host", HOST)
    kw.setdefault("tenant_id", TENANT)
    return FleetInputs(sockets=list(sockets), **kw)
