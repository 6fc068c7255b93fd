"""alerts.yaml, version 1 (DESIGN.md "Alerts, version 1"): rules, channels and silences, as
pydantic records. Read from a file by `sources.alerts` (which maps errors to `file:line:
field: why`); evaluated by `core.alerts`; delivered by `service.alert_channels`.

Grown beyond the DESIGN example (all optional):
- a rule's `gap_s` (default 60): after an episode of a rule resolves for an agent, the next one
  for the same agent fires no sooner than `gap_s` after that resolution (the anti-flapping gap;
  `for_s` is the other half: a condition must hold that long first);
- `budget_status` may name `rung_changed`: an event, not a state. It fires once per change of
  the agent's ladder rung and closes at once (no "resolved" message);
- a channel's secrets come from the environment rather than the file: `url_env` names a variable
  holding the URL (a Slack webhook URL is itself the secret), `token_env` one holding a bearer
  token (webhook, ntfy). Neither a URL's path nor a token is ever logged;
- a `command` channel runs `command` (an argv list, never a shell) with the JSON body on stdin;
- `timeout_s` per channel (default 10);
- a silence's `reason` and `by` (who silenced, the dashboard writes them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fleet_tui.model.records import AgentState, BudgetStatus, Drift, Health

ALERT_SCHEMA = "mosaic.fleet.alert/v1"
TERMINAL = "terminal"  # the built-in channel the dashboard serves (bell, toast, title, inbox)
RUNG_CHANGED = "rung_changed"
NAME_RE = r"^[A-Za-z0-9_.-]{1,64}$"
ENV_RE = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _timestamp_only(v: object) -> object:
    """A number is not a time here (pydantic would read 12 as 1970-01-01T00:00:12Z)."""
    if isinstance(v, (bool, int, float)):
        raise ValueError("must be a timestamp with a time zone (e.g. 2026-12-05T00:00:00Z)")
    return v


def _aware(v: datetime) -> datetime:
    if v.tzinfo is None:
        raise ValueError("needs a time zone (e.g. 2026-12-05T00:00:00Z)")
    return v


def _number_only(v: object) -> object:
    if isinstance(v, bool):
        raise ValueError("must be a number of seconds")
    return v


class When(_Strict):
    """What an agent must show for a rule to hold: every key given must match (AND), any value
    of a key's list will do (OR). Drift holds when the agent has any of the listed flags."""

    state: list[AgentState] | None = Field(default=None, min_length=1)
    health: list[Health] | None = Field(default=None, min_length=1)
    drift: list[Drift] | None = Field(default=None, min_length=1)
    budget_status: list[BudgetStatus | Literal["rung_changed"]] | None = Field(
        default=None, min_length=1
    )

    @model_validator(mode="after")
    def _something(self) -> When:
        if not (self.state or self.health or self.drift or self.budget_status):
            raise ValueError("needs at least one of state, health, drift, budget_status")
        return self


class Rule(_Strict):
    name: str = Field(pattern=NAME_RE)
    when: When
    for_s: float = Field(default=0.0, ge=0, le=7 * 86400, allow_inf_nan=False)
    repeat_s: float = Field(default=0.0, ge=0, le=7 * 86400, allow_inf_nan=False)
    gap_s: float = Field(default=60.0, ge=0, le=7 * 86400, allow_inf_nan=False)
    agents: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    to: list[str] = Field(min_length=1)

    _n = field_validator("for_s", "repeat_s", "gap_s", mode="before")(_number_only)

    @field_validator("repeat_s")
    @classmethod
    def _repeat_bound(cls, v: float) -> float:
        if 0 < v < 10:
            raise ValueError("must be 0 (once per episode) or at least 10 seconds")
        return v

    @field_validator("agents")
    @classmethod
    def _globs(cls, v: list[str]) -> list[str]:
        for g in v:
            if not g or len(g) > 128 or any(ord(c) < 32 for c in g):
                raise ValueError("each agent glob must be 1-128 printable characters")
        return v


ChannelType = Literal["webhook", "ntfy", "slack", "command"]


class Channel(_Strict):
    name: str = Field(pattern=NAME_RE)
    type: ChannelType
    url: str | None = Field(default=None, max_length=2048)
    url_env: str | None = Field(default=None, pattern=ENV_RE)
    token_env: str | None = Field(default=None, pattern=ENV_RE)
    command: list[str] | None = Field(default=None, min_length=1)
    timeout_s: float = Field(default=10.0, gt=0, le=120, allow_inf_nan=False)
    priority: str | None = Field(default=None, max_length=16)  # ntfy's Priority header

    _n = field_validator("timeout_s", mode="before")(_number_only)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v

    @model_validator(mode="after")
    def _complete(self) -> Channel:
        if self.name == TERMINAL:
            raise ValueError("'terminal' is the dashboard's built-in channel: pick another name")
        if self.type == "command":
            if not self.command:
                raise ValueError("a command channel needs command: [program, args...]")
            if self.url or self.url_env:
                raise ValueError("a command channel takes no url")
        else:
            if self.command:
                raise ValueError(f"a {self.type} channel takes no command")
            if (self.url is None) == (self.url_env is None):
                raise ValueError(f"a {self.type} channel needs exactly one of url, url_env")
        return self


class Silence(_Strict):
    rule: str = Field(default="*", pattern=r"^(\*|[A-Za-z0-9_.-]{1,64})$")
    agents: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    until: datetime
    reason: str | None = Field(default=None, max_length=200)
    by: str | None = Field(default=None, max_length=64)

    _ts = field_validator("until", mode="before")(_timestamp_only)
    _tz = field_validator("until")(_aware)


class AlertsConfig(_Strict):
    version: int
    rules: list[Rule] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)
    silences: list[Silence] = Field(default_factory=list)

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)


# With no alerts file, the dashboard still rings when an agent starts waiting for a human, and
# when `supervise` gives up on an agent (held: past its restart limit, an operator must act).
DEFAULT_RULES = AlertsConfig(
    version=1,
    rules=[
        Rule(
            name="needs-you",
            when=When(state=[AgentState.WAITING_INPUT, AgentState.BLOCKED]),
            to=[TERMINAL],
        ),
        Rule(name="agent-held", when=When(drift=[Drift.HELD]), to=[TERMINAL]),
    ],
)
