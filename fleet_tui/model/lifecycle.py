"""What the lifecycle files say about agents, as the join takes it (DESIGN.md "Lifecycle and
supervision"): the agents an operator stopped on purpose (`lifecycle/stopped.json`) and the
agents the supervisor gave up on, held (`lifecycle/supervise.json`). Read by
`sources.lifecycle_state`, written by `control.lifecycle` / `control.supervise`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StopMark:
    """An operator's stop: when, by whom, from where (cli, tui, web)."""

    ts: str
    user: str
    surface: str


@dataclass(frozen=True)
class Hold:
    """The supervisor gave up on an agent: since when, why, after how many restarts."""

    since: str
    reason: str
    restarts: int


@dataclass(frozen=True)
class LifecycleMarks:
    """Stopped and held agents by name; `warnings` says a file could not be read."""

    stopped: Mapping[str, StopMark] = field(default_factory=dict)
    held: Mapping[str, Hold] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


NO_MARKS = LifecycleMarks()
