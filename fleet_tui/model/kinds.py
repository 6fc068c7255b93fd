"""The enums of the fleet's records: health, state, drift, sockets, lifecycle, budgets.

Their own module so that both the snapshot records (`records`) and the validated input models
(`validated`) take them from below, without importing each other. Values follow DESIGN.md exactly.
"""

from __future__ import annotations

from enum import StrEnum


class Health(StrEnum):
    """Liveness only (DESIGN.md "Health"); `state` is shown beside it."""

    HEALTHY = "healthy"
    STALE = "stale"
    UNRESPONSIVE = "unresponsive"
    UNKNOWN = "unknown"
    DOWN = "down"


class AgentState(StrEnum):
    """What the runtime says it is doing (heartbeat `state`)."""

    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    WAITING_INPUT = "waiting_input"
    BLOCKED = "blocked"
    ERROR = "error"
    STOPPING = "stopping"


class Drift(StrEnum):
    """Differences between what the roster says and what runs (DESIGN.md "Drift flags")."""

    MISSING_SESSION = "missing_session"
    NOT_IN_ROSTER = "not_in_roster"
    SOCKET_MISMATCH = "socket_mismatch"
    DUPLICATE = "duplicate"
    PANE_DEAD = "pane_dead"
    UNIT_INACTIVE = "unit_inactive"
    UNIT_WITHOUT_SESSION = "unit_without_session"
    BOOT_DISABLED = "boot_disabled"
    RUNTIME_MISMATCH = "runtime_mismatch"
    # Grown since v1 (additive): `supervise` gave up on the agent (past its restart limit) until
    # an operator starts it; an always-on agent an operator stopped on purpose (instead of
    # `missing_session`, which would cry wolf).
    HELD = "held"
    STOPPED = "stopped"


class SocketState(StrEnum):
    """What a socket file in the tmux folder turned out to be."""

    LIVE = "live"
    STALE = "stale"
    HUNG = "hung"
    DENIED = "denied"


class Lifecycle(StrEnum):
    ALWAYS_ON = "always-on"
    EPHEMERAL = "ephemeral"


KNOWN_RUNTIMES = ("claude", "codex", "pi", "opencode", "stub", "other")


class StateSource(StrEnum):
    HEARTBEAT = "heartbeat"
    HOOK = "hook"
    SESSION = "session"  # Claude Code's own session status file (sources/claude_sessions.py)
    INFERRED = "inferred"


class BudgetStatus(StrEnum):
    """Where an account window's use stands against its even spread (core/pacing.py)."""

    ON_PACE = "on_pace"
    AHEAD = "ahead"
    BEHIND = "behind"
    EXHAUSTED = "exhausted"
    UNKNOWN = "unknown"
