"""budgets.yaml v1 (DESIGN.md "Budgets, version 1"): load and validate, with errors that name the
file, the line and the field (`file:line: field: why`), parsed with libyaml like the roster.

Grown after v1 (optional): `agents: [names]` on an account (which agents spend from it; else
agents match by runtime), `max_agents` on an account, and ladder rungs written as
`{rung: NAME, account: ID}` to name the account that pays for a rung.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fleet_tui.errors import BadInput
from fleet_tui.protocol.names import TENANT_RE
from fleet_tui.protocol.yamldoc import (
    nearest_line,
    parse_yaml,
    read_text,
    require_version_1,
    validation_error,
)

MAX_BUDGETS_BYTES = 1 << 20

EXAMPLE = """\
version: 1
tenant_id: jarvis
accounts:
  - id: claude-max-a
    provider: anthropic
    runtime: claude
    regime: subscription
    windows:
      - {name: 5h, minutes: 300}
      - {name: weekly, minutes: 10080, resets_at: "2026-11-30T00:00:00Z", reset_confidence: user}
  - id: openai-api
    provider: openai
    runtime: codex
    regime: api
    ceiling_usd: 200
    period: month
ladder: [claude-opus, claude-sonnet, claude-haiku, codex]
"""


class BudgetsError(BadInput):
    """budgets.yaml is missing (when named), unreadable or invalid; names file, line, field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _timestamp_only(v: Any) -> Any:
    """A number is not a time here (pydantic would read 12 as 1970-01-01T00:00:12Z)."""
    if isinstance(v, (bool, int, float)):
        raise ValueError("must be a timestamp with a time zone (e.g. 2026-11-30T00:00:00Z)")
    return v


def _number_only(v: Any) -> Any:
    """`true` is not a number of dollars (pydantic would read it as 1.0)."""
    if isinstance(v, bool):
        raise ValueError("must be a number")
    return v


def _aware(v: datetime | None) -> datetime | None:
    if v is not None and v.tzinfo is None:
        raise ValueError("needs a time zone (e.g. 2026-11-30T00:00:00Z)")
    return v


class WindowConfig(_Strict):
    name: str = Field(min_length=1, max_length=40)
    minutes: int = Field(gt=0, le=366 * 24 * 60, strict=True)
    resets_at: datetime | None = None
    reset_confidence: Literal["user", "provider", "estimated", "unknown"] | None = None

    _ts = field_validator("resets_at", mode="before")(_timestamp_only)
    _tz = field_validator("resets_at")(_aware)

    @property
    def confidence(self) -> str:
        """As written; a reset time given without one is the user's."""
        if self.reset_confidence:
            return self.reset_confidence
        return "user" if self.resets_at is not None else "unknown"


class AccountConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=64)
    provider: Literal["anthropic", "openai", "other"] = "other"
    runtime: str | None = None
    regime: Literal["subscription", "api"] = "subscription"
    windows: list[WindowConfig] = Field(default_factory=list)
    pacing: Literal["even", "rapid"] = "even"
    rapid_authorized_until: datetime | None = None
    ceiling_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    period: Literal["day", "week", "month"] = "month"
    agents: list[str] | None = None
    max_agents: int | None = Field(default=None, ge=0, strict=True)

    _ts = field_validator("rapid_authorized_until", mode="before")(_timestamp_only)
    _tz = field_validator("rapid_authorized_until")(_aware)
    _usd = field_validator("ceiling_usd", mode="before")(_number_only)


class RungConfig(_Strict):
    rung: str = Field(min_length=1)
    account: str | None = None


class Concurrency(_Strict):
    max_agents: int | None = Field(default=None, ge=0, strict=True)


class BudgetsConfig(_Strict):
    version: int
    tenant_id: str = Field(pattern=TENANT_RE)  # as the roster and the gateway: 1-128
    host: str | None = None
    accounts: list[AccountConfig] = Field(default_factory=list)
    ladder: list[str | RungConfig] = Field(default_factory=list)
    concurrency: Concurrency = Field(default_factory=Concurrency)

    def account(self, account_id: str) -> AccountConfig | None:
        return next((a for a in self.accounts if a.id == account_id), None)


@dataclass
class LoadedBudgets:
    config: BudgetsConfig
    path: Path
    warnings: list[str] = field(default_factory=list)
    ladder: list[tuple[str, str | None]] = field(default_factory=list)  # (rung, account)


def _rung_account(rung: str, accounts: list[AccountConfig]) -> str | None:
    """Which account pays for a rung named by a string: an account of that id, else the first
    account whose runtime is the rung's first word ("claude-opus" -> runtime claude)."""
    for a in accounts:
        if a.id == rung:
            return a.id
    head = rung.split("-", 1)[0]
    for a in accounts:
        if a.runtime in (rung, head):
            return a.id
    return None


def parse_budgets(text: str, path: Path) -> LoadedBudgets:
    """Parse and validate budgets text; `path` is only used in messages."""
    data, lines = parse_yaml(
        text, path, "the budgets file is empty (expected 'version: 1', ...)", BudgetsError
    )
    if not isinstance(data, dict):
        raise BudgetsError(f"{path}:1: budgets must be a mapping with 'version', 'accounts'")
    require_version_1(data, lines, path, "budgets", BudgetsError)
    try:
        config = BudgetsConfig.model_validate(data)
    except ValidationError as exc:
        raise BudgetsError(
            validation_error(exc, lines, path, loc_filter=_model_loc, message=_budgets_message)
        ) from None
    return _check(config, lines, path)


def _model_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """The error's place in the file: without pydantic's union branch names."""
    loc = tuple(p for p in loc if not (isinstance(p, str) and p[:1].isupper()))
    return tuple(p for p in loc if p not in ("str", "RungConfig"))


def _budgets_message(err: dict[str, Any], loc: tuple[str | int, ...]) -> str:
    msg = "unknown field" if err["type"] == "extra_forbidden" else str(err["msg"])
    return msg.removeprefix("Value error, ")


def _check(
    config: BudgetsConfig, lines: dict[tuple[str | int, ...], int], path: Path
) -> LoadedBudgets:
    def at(*loc: str | int) -> int:
        return nearest_line(lines, loc)

    seen: dict[str, int] = {}
    warnings: list[str] = []
    for i, a in enumerate(config.accounts):
        if a.id in seen:
            raise BudgetsError(
                f"{path}:{at('accounts', i, 'id')}: accounts[{i}].id: '{a.id}' is already "
                f"defined (accounts[{seen[a.id]}])"
            )
        seen[a.id] = i
        names: set[str] = set()
        for j, w in enumerate(a.windows):
            if w.name in names:
                raise BudgetsError(
                    f"{path}:{at('accounts', i, 'windows', j, 'name')}: "
                    f"accounts[{i}].windows[{j}].name: '{w.name}' is already defined"
                )
            names.add(w.name)
        if a.pacing == "rapid" and a.rapid_authorized_until is None:
            raise BudgetsError(
                f"{path}:{at('accounts', i, 'pacing')}: accounts[{i}].pacing: rapid needs "
                "rapid_authorized_until (an explicit authorization with an end)"
            )
        if a.regime == "api" and a.ceiling_usd is None:
            warnings.append(
                f"{path}:{at('accounts', i)}: accounts[{i}].ceiling_usd: missing: api account "
                f"'{a.id}' has no $ ceiling, its spend is shown but not limited"
            )
        if a.regime == "api" and a.windows:
            warnings.append(
                f"{path}:{at('accounts', i, 'windows')}: accounts[{i}].windows: ignored: api "
                f"account '{a.id}' is paced by ceiling_usd per {a.period}"
            )
        if a.regime == "subscription" and a.ceiling_usd is not None:
            warnings.append(
                f"{path}:{at('accounts', i, 'ceiling_usd')}: accounts[{i}].ceiling_usd: "
                f"ignored: subscription account '{a.id}' is paced by its windows "
                "(regime: api for a $ ceiling)"
            )
        if a.regime == "subscription" and not a.windows:
            warnings.append(
                f"{path}:{at('accounts', i)}: accounts[{i}].windows: none: the windows of "
                f"'{a.id}' come from usage samples only"
            )
    ladder: list[tuple[str, str | None]] = []
    for k, item in enumerate(config.ladder):
        if isinstance(item, RungConfig):
            if item.account is not None and item.account not in seen:
                raise BudgetsError(
                    f"{path}:{at('ladder', k, 'account')}: ladder[{k}].account: no account "
                    f"'{item.account}' in accounts"
                )
            acct = item.account or _rung_account(item.rung, config.accounts)
            ladder.append((item.rung, acct))
        else:
            acct = _rung_account(item, config.accounts)
            ladder.append((item, acct))
        if acct is None:
            warnings.append(
                f"{path}:{at('ladder', k)}: ladder[{k}]: no account pays for rung "
                f"'{ladder[-1][0]}' (name an account id, or a runtime as its first word)"
            )
    return LoadedBudgets(config, path, warnings, ladder)


def load_budgets(path: Path) -> LoadedBudgets:
    """Read and validate a budgets file. Raises `BudgetsError` with file, line and field."""
    return parse_budgets(read_text(path, "budgets file", MAX_BUDGETS_BYTES, BudgetsError), path)
