"""roster.yaml v1: load and validate, with errors that name the file, the line and the field."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet_tui.errors import RosterError
from fleet_tui.protocol.files import FileKey, stable_key
from fleet_tui.protocol.yamldoc import (
    Lines,
    parse_yaml,
    read_text,
    require_version_1,
    validation_error,
)

if TYPE_CHECKING:
    from fleet_tui.model.validated import Roster

MAX_ROSTER_BYTES = 1 << 20
ROLES_FLOOR = ("orchestrator", "enhancer")


@dataclass
class LoadedRoster:
    roster: Roster
    path: Path
    warnings: list[str] = field(default_factory=list)


def parse_roster(text: str, path: Path) -> LoadedRoster:
    """Parse and validate roster text; `path` is only used in messages."""
    data, lines = parse_yaml(
        text,
        path,
        "the roster is empty (expected 'version: 1', 'tenant_id', 'agents')",
        RosterError,
    )
    if not isinstance(data, dict):
        raise RosterError(
            f"{path}:1: the roster must be a mapping with 'version', 'tenant_id', 'agents'"
        )
    require_version_1(data, lines, path, "roster", RosterError)
    from pydantic import ValidationError  # only with a roster to read (issue 16, start-up)

    from fleet_tui.model.validated import Roster

    try:
        roster = Roster.model_validate(data)
    except ValidationError as exc:
        raise RosterError(
            validation_error(exc, lines, path, loc_filter=_roster_loc, message=_roster_message)
        ) from None
    warnings = _check_fleet(roster, lines, path)
    return LoadedRoster(roster, path, warnings)


def _roster_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """pydantic names a bad mapping key `(..., KEY, "[key]")`: the key is the field."""
    return tuple(loc[:-1]) if loc and loc[-1] == "[key]" else tuple(loc)


def _roster_message(err: dict[str, Any], loc: tuple[str | int, ...]) -> str:
    if err["type"] == "string_pattern_mismatch" and loc and loc[-1] == "name":
        return "must match [A-Za-z0-9_-]+ (tmux rewrites '.' and ':' in session names)"
    if len(loc) >= 2 and loc[-2] == "env":
        if tuple(err["loc"])[-1:] == ("[key]",):
            return "not an environment variable name (letters, digits, '_'; no digit first)"
        if err["type"] == "string_type":
            return "must be a string (quote it)"
    return "unknown field" if err["type"] == "extra_forbidden" else str(err["msg"])


def _check_fleet(roster: Roster, lines: Lines, path: Path) -> list[str]:
    seen: dict[str, int] = {}
    for i, agent in enumerate(roster.agents):
        if agent.name in seen:
            line = lines.get(("agents", i, "name"), 1)
            raise RosterError(
                f"{path}:{line}: agents[{i}].name: '{agent.name}' is already defined "
                f"(agents[{seen[agent.name]}])"
            )
        seen[agent.name] = i
    orchestrators = [i for i, a in enumerate(roster.agents) if a.role == "orchestrator"]
    if len(orchestrators) > 1:
        i = orchestrators[1]
        line = lines.get(("agents", i, "role"), 1)
        first = roster.agents[orchestrators[0]].name
        raise RosterError(
            f"{path}:{line}: agents[{i}].role: a second orchestrator "
            f"('{roster.agents[i].name}'; '{first}' is one already): one per fleet"
        )
    roles = {a.role for a in roster.agents}
    return [
        f"roster {path}: no {role}: the fleet is below its two-agent floor"
        for role in ROLES_FLOOR
        if role not in roles
    ]


# The last roster parsed, by its file's identity: while the file is unchanged, every reader of
# the process shares one parse (the dashboard's budgets and its poller both read it at start,
# and each poll after them; 1,000 agents: ~80 ms a parse).
_last: tuple[FileKey, LoadedRoster] | None = None


def load_roster(path: Path) -> LoadedRoster:
    """Read and validate a roster file. Raises `RosterError` with file, line and field. The
    same `LoadedRoster` again while the file has not changed (never mutate it)."""
    global _last
    try:
        key = stable_key(str(path), os.stat(path))  # before the read: a change after it shows
    except OSError:
        key = None  # read_text says why
    last = _last
    if key is not None and last is not None and last[0] == key:
        return last[1]
    loaded = parse_roster(read_text(path, "roster", MAX_ROSTER_BYTES, RosterError), path)
    if key is not None:
        _last = (key, loaded)
    return loaded
