"""Deterministic fleets for snapshot tests, screenshots and benchmarks (no tmux, no clock).

Each builder returns a `FleetSnapshot` made by the real join from fixed observations, so what
the screenshots show is what the join really produces for such a fleet: heartbeats from runtimes
and from hook adapters, states inferred from panes without one (a spinner, a permission prompt),
token use today and budget briefs.

The builders of single observations (`pane`, `socket`, `agent`, `roster`, `heartbeat`, `ping`,
`beats`, `inputs`) are the one place such records are made, for these fleets and for the tests
of the pure core alike.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fleet_tui.control.actions import Handover
from fleet_tui.control.panes import ControlError, SendResult
from fleet_tui.core.join import FleetInputs, build_snapshot
from fleet_tui.model.records import (
    AgentRecord,
    AgentState,
    BudgetBrief,
    BudgetStatus,
    FleetSnapshot,
    Heartbeat,
    PaneRow,
    Ping,
    Roster,
    RosterAgent,
    SocketScan,
    SocketState,
    SourceStatus,
    SpoolRead,
    SystemdScan,
    TreeSample,
    UnitState,
)

NOW = datetime(2026, 11, 26, 9, 30, 0, tzinfo=UTC)
TENANT = "jarvis"
HOST = "w-jarvis"
# The instant the builders of single observations date from unless given `now` (the pure-core
# tests' now; the fleets below date from NOW).
BUILDERS_NOW = datetime(2026, 11, 26, 4, 0, 0, tzinfo=UTC)


# -- Builders of single observations (one of each, shared by the fleets below and the tests) ----

_pane_numbers = itertools.count(1)


def pane(
    session: str,
    *,
    index: int | None = None,
    pid: int | None = None,
    command: str = "node",
    dead: bool = False,
    mosaic_agent: str = "",
    title: str = "",
    activity: int | None = None,
    window_activity: int | None = None,
    created: int | None = None,
    window_size: str = "200x50",
    cwd: str = "/w/app",
    now: datetime = BUILDERS_NOW,
) -> PaneRow:
    """One pane as tmux lists it: `index` numbers it (`$i`, `%i`; the next free number when
    None), its process is `pid` (else 1000 + index), created an hour and last active 10 s
    before `now`."""
    n = next(_pane_numbers) if index is None else index
    t = int(now.timestamp())
    return PaneRow(
        session_name=session,
        session_id=f"${n}",
        session_created=created if created is not None else t - 3600,
        session_activity=activity if activity is not None else t - 10,
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
        window_activity=window_activity,
        mosaic_agent=mosaic_agent,
        window_size=window_size,
        pane_title=title,
        current_path=cwd,
    )


def socket(
    name: str,
    *panes: PaneRow,
    state: SocketState = SocketState.LIVE,
    reason: str | None = None,
) -> SocketScan:
    """A socket as scanned, with `panes` when it is live."""
    return SocketScan(
        name=name,
        path=f"/tmp/tmux-0/{name}",
        state=state,
        panes=list(panes),
        reason=reason,
        listed_in_ms=1.5 if state is SocketState.LIVE else None,
    )


def agent(name: str, role: str = "coder", **kw: Any) -> RosterAgent:
    """A roster agent (`kw`: any other field of RosterAgent)."""
    return RosterAgent(name=name, role=role, **kw)


def roster(*agents: RosterAgent, socket_name: str | None = "mosaic-fleet", **kw: Any) -> Roster:
    """A roster of this tenant and host holding `agents` (`kw`: any other field of Roster)."""
    return Roster(
        version=1,
        tenant_id=kw.pop("tenant_id", TENANT),
        host=kw.pop("host", HOST),
        socket_name=socket_name,
        agents=list(agents),
        **kw,
    )


def heartbeat(
    agent_name: str, age_s: float = 4.0, *, now: datetime = BUILDERS_NOW, **kw: Any
) -> Heartbeat:
    """A heartbeat of this tenant and host written `age_s` before `now`: busy running tests
    under codex (`kw`: any field of Heartbeat, to change)."""
    fields: dict[str, Any] = {
        "v": 1,
        "tenant_id": TENANT,
        "host": HOST,
        "agent": agent_name,
        "seq": 17,
        "ts": now - timedelta(seconds=age_s),
        "interval_s": 10,
        "state": AgentState.BUSY,
        "detail": "running tests",
        "runtime": "codex",
        "model": "gpt-5.5",
        "pid": 4242,
    }
    fields.update(kw)
    return Heartbeat(**fields)


def ping(nonce: str, age_s: float, *, now: datetime = BUILDERS_NOW) -> Ping:
    """A ping sent `age_s` before `now`."""
    return Ping(nonce=nonce, ts=now - timedelta(seconds=age_s))


def beats(*hbs: Heartbeat) -> dict[str, SpoolRead]:
    """Heartbeats as the spool reads them, by agent."""
    return {hb.agent: SpoolRead(hb) for hb in hbs}


def inputs(*sockets: SocketScan, **kw: Any) -> FleetInputs:
    """The join's inputs at BUILDERS_NOW for this tenant and host (`kw`: any other field)."""
    kw.setdefault("now", BUILDERS_NOW)
    kw.setdefault("host", HOST)
    kw.setdefault("tenant_id", TENANT)
    return FleetInputs(sockets=list(sockets), **kw)


# -- The demo fleet ----------------------------------------------------------------------------


def _pane(
    name: str,
    i: int,
    *,
    dead: bool = False,
    idle_s: int = 5,
    cmd: str = "node",
    agent_opt: str = "1",
    title: str | None = None,
) -> PaneRow:
    t = int(NOW.timestamp())
    return pane(
        name,
        index=i,
        pid=10000 + i,
        command=cmd,
        dead=dead,
        mosaic_agent=agent_opt,
        title=name if title is None else title,
        activity=t - idle_s,
        window_activity=t - idle_s,
        created=t - 86400,
        window_size="manual",
        cwd=f"/home/jarvis/work/{name}",
        now=NOW,
    )


def _beat(
    name: str,
    age_s: float,
    state: AgentState,
    detail: str,
    runtime: str,
    model: str | None,
    seq: int = 42,
    via: str | None = None,
) -> SpoolRead:
    return SpoolRead(
        heartbeat(
            name,
            age_s,
            now=NOW,
            seq=seq,
            state=state,
            detail=detail,
            runtime=runtime,
            model=model,
            pid=None,
            via=via,
        )
    )


ROSTER = Roster(
    version=1,
    tenant_id=TENANT,
    host=HOST,
    socket_name="mosaic-fleet",
    heartbeat_timeout_s=30,
    agents=[
        RosterAgent(
            name="orchestrator",
            role="orchestrator",
            alias="Mos",
            runtime="claude",
            model="opus",
            unit="mosaic-agent@orchestrator.service",
        ),
        RosterAgent(
            name="enhancer",
            role="enhancer",
            alias="Lens",
            runtime="codex",
            model="gpt-5.5",
            unit="mosaic-agent@enhancer.service",
        ),
        RosterAgent(name="coder0-0", role="coder", runtime="codex", model="gpt-5.5"),
        RosterAgent(name="coder0-1", role="coder", runtime="claude", model="sonnet"),
        RosterAgent(name="coder0-2", role="coder", runtime="pi"),
        RosterAgent(name="review", role="code-review", runtime="claude", model="sonnet"),
        RosterAgent(name="security", role="security-review", runtime="opencode"),
        RosterAgent(name="coder1-0", role="coder", runtime="codex", model="gpt-5.5"),
        RosterAgent(name="planner", role="board", runtime="claude", model="opus"),
        RosterAgent(name="research", role="research", runtime="claude", lifecycle="ephemeral"),
    ],
)

# What the panes without a heartbeat show (sanitized lines, as the collector captures them).
PLANNER_SCREEN = [
    "● I'll apply the pending migrations.",
    "",
    "● Bash(alembic upgrade head)",
    "╭──────────────────────────────────────────────────────────────╮",
    "│ Bash command                                                 │",
    "│                                                              │",
    "│   alembic upgrade head                                       │",
    "│   Apply the pending database migrations                      │",
    "│                                                              │",
    "│ Do you want to proceed?                                      │",
    "│ ❯ 1. Yes                                                     │",
    "│   2. Yes, and don't ask again for alembic commands           │",
    "│   3. No, and tell Claude what to do differently (esc)        │",
    "╰──────────────────────────────────────────────────────────────╯",
]
PI_SCREEN = [
    "> refactor the settings loader",
    "",
    " Reading fleet_tui/config/settings.py",
    " Editing fleet_tui/config/settings.py",
    "⠙ Working...",
]
CLAUDE_MAX = BudgetBrief(
    account="claude-max-a",
    window="weekly",
    used_percent=62.0,
    pace=1.31,
    status=BudgetStatus.AHEAD,
    rung="claude-sonnet",
)
OPENAI_PRO = BudgetBrief(
    account="openai-pro",
    window="weekly",
    used_percent=37.5,
    pace=0.89,
    status=BudgetStatus.ON_PACE,
    rung="codex",
)
TOKENS_TODAY = {
    "orchestrator": 1_234_567,
    "enhancer": 48_200,
    "coder0-0": 312_400,
    "coder0-1": 12_345,
    "review": 5_600,
    "scratch": 950,
    "planner": 88_000,
}
BUDGETS = {
    "orchestrator": CLAUDE_MAX,
    "coder0-1": CLAUDE_MAX,
    "review": CLAUDE_MAX,
    "scratch": CLAUDE_MAX,
    "planner": CLAUDE_MAX,
    "enhancer": OPENAI_PRO,
    "coder0-0": OPENAI_PRO,
}


def fleet_inputs(
    *,
    roster: bool = True,
    hung: bool = False,
    systemd: bool = True,
    heartbeats: bool = True,
    usage: bool = True,
) -> FleetInputs:
    """A fleet of ten sessions showing every health, most drift flags, every state source
    (runtime heartbeat, hook, inferred busy and inferred waiting_input), token use and budgets.
    """
    names = [
        "orchestrator",
        "enhancer",
        "coder0-0",
        "coder0-1",
        "coder0-2",
        "review",
        "security",
        "scratch",
    ]
    titles = {"coder0-2": "⠙ pi: refactor settings", "planner": "⠐ Migrate schema"}
    fleet_panes = [_pane(n, i, title=titles.get(n)) for i, n in enumerate(names) if n != "security"]
    fleet_panes.append(_pane("security", 8, dead=True, cmd="bash"))
    fleet_panes.append(_pane("planner", 9, idle_s=40, title=titles["planner"]))
    beats = {
        "orchestrator": _beat(
            "orchestrator",
            3,
            AgentState.BUSY,
            "planning mission M-12",
            "claude",
            "opus",
            via="hook:claude",
        ),
        "enhancer": _beat(
            "enhancer", 12, AgentState.IDLE, "waiting for the next task", "codex", "gpt-5.5"
        ),
        "coder0-0": _beat("coder0-0", 45, AgentState.BUSY, "running tests", "codex", "gpt-5.5"),
        "coder0-1": _beat("coder0-1", 300, AgentState.BUSY, "editing join.py", "claude", "sonnet"),
        "review": _beat(
            "review",
            6,
            AgentState.WAITING_INPUT,
            "permission: run migrations?",
            "claude",
            "sonnet",
            via="hook:claude",
        ),
        "scratch": _beat(
            "scratch",
            2,
            AgentState.BLOCKED,
            "rate limit until 12:00",
            "claude",
            None,
            via="hook:claude",
        ),
    }
    procs = {
        10000 + i: TreeSample(20000 + i, rt, cpu, rss, 3)
        for i, (rt, cpu, rss) in enumerate(
            [
                ("claude", 4.2, 512 << 20),
                ("codex", 0.3, 210 << 20),
                ("codex", 61.0, 380 << 20),
                ("claude", 1.1, 495 << 20),
                ("codex", 0.0, 90 << 20),
                ("claude", 0.8, 430 << 20),
                ("claude", 0.1, 300 << 20),
                (None, 0.0, 4 << 20),
                (None, 0.0, 4 << 20),
                ("claude", 0.4, 350 << 20),
            ]
        )
    }
    sockets = [
        SocketScan(
            "mosaic-fleet",
            "/tmp/tmux-1000/mosaic-fleet",
            SocketState.LIVE,
            fleet_panes,
            listed_in_ms=6.1,
        ),
        SocketScan(
            "default",
            "/tmp/tmux-1000/default",
            SocketState.LIVE,
            [_pane("ops-shell", 20, cmd="bash", agent_opt="")],
            listed_in_ms=3.2,
        ),
        SocketScan(
            "mosaic-factory",
            "/tmp/tmux-1000/mosaic-factory",
            SocketState.STALE,
            reason="no server (stale socket)",
        ),
    ]
    if hung:
        sockets.append(
            SocketScan(
                "lab",
                "/tmp/tmux-1000/lab",
                SocketState.HUNG,
                reason="tmux did not answer within 2 s",
            )
        )
    units = {
        "mosaic-agent@orchestrator.service": UnitState(
            "mosaic-agent@orchestrator.service", "loaded", "active", "running", "enabled"
        ),
        "mosaic-agent@enhancer.service": UnitState(
            "mosaic-agent@enhancer.service", "loaded", "active", "running", "disabled"
        ),
    }
    sd = (
        SystemdScan(True, None, units, linger=True)
        if systemd
        else SystemdScan(False, "no systemd (/run/systemd/system absent)")
    )
    return FleetInputs(
        now=NOW,
        host=HOST,
        tenant_id=TENANT,
        sockets=sockets,
        roster=ROSTER if roster else None,
        roster_path="/home/jarvis/.config/mosaic/roster.yaml",
        roster_warnings=[],
        heartbeats=beats if heartbeats else {},
        systemd=sd,
        processes=procs,
        sources=[
            SourceStatus(
                name="tmux",
                observed_at=NOW,
                ok=not hung,
                detail="a socket is hung or unreadable" if hung else None,
            ),
            SourceStatus(name="heartbeats", observed_at=NOW),
            SourceStatus(name="systemd", observed_at=NOW, ok=systemd, detail=sd.reason),
        ],
        captures={
            ("mosaic-fleet", "%4"): PI_SCREEN,
            ("mosaic-fleet", "%9"): PLANNER_SCREEN,
        },
        tokens_today=TOKENS_TODAY if usage else {},
        budgets=BUDGETS if usage else {},
    )


def fleet_snapshot(**kw: bool) -> FleetSnapshot:
    return build_snapshot(fleet_inputs(**kw))


def empty_snapshot() -> FleetSnapshot:
    return build_snapshot(
        FleetInputs(
            now=NOW,
            host=HOST,
            tenant_id="jarvis",
            sockets=[],
            roster=None,
            roster_path="/home/jarvis/.config/mosaic/roster.yaml",
            systemd=SystemdScan(False, "no systemd (/run/systemd/system absent)"),
        )
    )


def big_snapshot(n: int, *, seed: int = 1, now: datetime = NOW) -> FleetSnapshot:
    """`n` healthy-ish agents on three sockets, for benchmarks."""
    rng = random.Random(seed)
    sockets: dict[str, list[PaneRow]] = {"mosaic-fleet": [], "mosaic-factory": [], "bench": []}
    beats: dict[str, SpoolRead] = {}
    procs: dict[int, TreeSample] = {}
    agents = []
    for i in range(n):
        name = f"agent{i:03d}"
        sock = list(sockets)[i % 3]
        sockets[sock].append(_pane(name, i, idle_s=rng.randint(0, 600)))
        beats[name] = _beat(
            name,
            rng.uniform(0, 20),
            rng.choice(list(AgentState)),
            "working",
            "claude",
            "sonnet",
            seq=i,
        )
        procs[10000 + i] = TreeSample(
            20000 + i, "claude", round(rng.uniform(0, 50), 1), rng.randint(50, 900) << 20, 3
        )
        agents.append(
            RosterAgent(
                name=name,
                role="coder" if i > 1 else ("orchestrator" if i == 0 else "enhancer"),
                runtime="claude",
                socket_name=sock,
            )
        )
    roster = Roster(version=1, tenant_id=TENANT, host=HOST, heartbeat_timeout_s=30, agents=agents)
    scans = [SocketScan(k, f"/tmp/tmux-1000/{k}", SocketState.LIVE, v) for k, v in sockets.items()]
    return build_snapshot(
        FleetInputs(
            now=now,
            host=HOST,
            tenant_id=TENANT,
            sockets=scans,
            roster=roster,
            heartbeats=beats,
            processes=procs,
            systemd=SystemdScan(False, "no systemd"),
        )
    )


class FixedSource:
    """A `SnapshotSource` serving fixed snapshots (or raising), for tests and screenshots."""

    def __init__(
        self,
        snapshot: FleetSnapshot | Callable[[], FleetSnapshot] | Exception,
        lines: list[str] | None = None,
    ) -> None:
        self._snapshot = snapshot
        self.lines = (
            lines
            if lines is not None
            else [
                "● planning mission M-12",
                "  ⎿ Read(docs/MISSION-MANIFEST.md) ⎿ 212 lines",
                "  ⎿ Bash(pytest -q) ⎿ 142 passed in 3.1s",
            ]
        )
        self.screen_lines = [
            "\x1b[1m● planning mission M-12\x1b[0m",
            "  \x1b[2m⎿\x1b[0m Read(docs/MISSION-MANIFEST.md) ⎿ 212 lines",
            "  \x1b[2m⎿\x1b[0m Bash(pytest -q) ⎿ \x1b[32m142 passed\x1b[0m in 3.1s",
            "\x1b[1;33m? Allow Edit(src/fleet/join.py)?\x1b[0m",
        ]
        self.polls = 0
        self.captures = 0

    @property
    def watch_dir(self) -> Path | None:
        return None

    def poll(self, *, heartbeats_only: bool = False) -> FleetSnapshot:
        self.polls += 1
        if isinstance(self._snapshot, Exception):
            raise self._snapshot
        if callable(self._snapshot):
            return self._snapshot()
        return self._snapshot

    def capture(self, record: AgentRecord) -> list[str]:
        self.captures += 1
        return list(self.lines)

    def capture_screen(self, record: AgentRecord) -> str:
        self.captures += 1
        return "\n".join(self.screen_lines)

    def pane_activity(self, record: AgentRecord) -> str | None:
        return "fixed"


AUDIT_LINES = [
    '{"ts": "2026-11-26T09:12:03.114Z", "tenant_id": "jarvis", "host": "w-jarvis", "uid": 1000, "user": "jarvis", "action": "probe", "agent": "coder0-1", "outcome": "unanswered", "detail": "timeout 10 s"}',
    '{"ts": "2026-11-26T09:14:40.020Z", "tenant_id": "jarvis", "host": "w-jarvis", "uid": 1000, "user": "jarvis", "action": "watch", "agent": "orchestrator", "outcome": "detached", "detail": ""}',
    '{"ts": "2026-11-26T09:20:11.907Z", "tenant_id": "jarvis", "host": "w-jarvis", "uid": 1000, "user": "jarvis", "action": "send", "agent": "review", "outcome": "delivered", "detail": "sha256:3f2a9c… length=24"}',
]


class RecordingActions:
    """Operator actions for screenshots and UI tests: they record what was asked and touch no
    tmux (the real ones are tested against private tmux servers)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def open_log(self, record: AgentRecord) -> tuple[Path | None, str]:
        return None, "fixture: screen mode only"

    def send(self, record: AgentRecord, text: str) -> SendResult:
        from fleet_tui.control.panes import clean_message
        from fleet_tui.protocol.acks import message_hash

        clean = clean_message(text)
        self.calls.append(("send", record.name, message_hash(clean)))
        return SendResult(
            pane_id=record.tmux.pane_id if record.tmux else "%0",
            hash=message_hash(clean),
            length=len(clean),
            lines=clean.count("\n") + 1,
            method="keys",
            left_mode=False,
        )

    def handover(self, record: AgentRecord, *, interactive: bool) -> Handover:
        self.calls.append(("attach" if interactive else "watch", record.name, ""))
        raise ControlError("no terminal hand-over in a fixture")

    def audit(self, action: str, record: AgentRecord, outcome: str, detail: str = "") -> None:
        self.calls.append((action, record.name, outcome))

    def audit_lines(self, limit: int = 200) -> list[str]:
        return AUDIT_LINES[-limit:]
