"""alerts.yaml v1 (DESIGN.md "Alerts, version 1"): read and validate, with errors that name the
file, the line and the field (`file:line: field: why`), as the roster and budgets files do.

Beyond what pydantic checks per field: rule and channel names are unique, every name in a
rule's `to` is a channel of the file or `terminal`, a silence names a rule of the file (or `*`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fleet_tui.errors import BadInput
from fleet_tui.model.alerts import TERMINAL, AlertsConfig
from fleet_tui.protocol.yamldoc import (
    Lines,
    nearest_line,
    parse_yaml,
    read_text,
    require_version_1,
    validation_error,
)

MAX_ALERTS_BYTES = 1 << 20

EXAMPLE = """\
version: 1
rules:
  - name: needs-you
    when: {state: [waiting_input, blocked]}
    for_s: 0
    to: [terminal, ops]
  - name: agent-lost
    when: {health: [unresponsive, down]}
    for_s: 60
    to: [ops]
channels:
  - {name: ops, type: webhook, url: "http://127.0.0.1:9000/hook"}
"""


class AlertsError(BadInput):
    """alerts.yaml is missing (when named), unreadable or invalid; names file, line, field."""


@dataclass
class LoadedAlerts:
    config: AlertsConfig
    path: Path | None  # None: the built-in default rules (no file)
    warnings: list[str] = field(default_factory=list)


def _model_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """The error's place in the file, without pydantic's union branch names."""
    keep: list[str | int] = []
    for p in loc:
        if isinstance(p, str) and (p[:1].isupper() or p.startswith(("literal[", "function-"))):
            continue
        keep.append(p)
    return tuple(keep)


def _message(err: dict[str, Any], loc: tuple[str | int, ...]) -> str:
    msg = "unknown field" if err["type"] == "extra_forbidden" else str(err["msg"])
    return msg.removeprefix("Value error, ")


def parse_alerts(text: str, path: Path) -> LoadedAlerts:
    """Parse and validate alerts text; `path` is only used in messages."""
    data, lines = parse_yaml(
        text, path, "the alerts file is empty (expected 'version: 1', 'rules: ...')", AlertsError
    )
    if not isinstance(data, dict):
        raise AlertsError(f"{path}:1: alerts must be a mapping with 'version', 'rules'")
    require_version_1(data, lines, path, "alerts", AlertsError)
    try:
        config = AlertsConfig.model_validate(data)
    except ValidationError as exc:
        raise AlertsError(
            validation_error(exc, lines, path, loc_filter=_model_loc, message=_message)
        ) from None
    return _check(config, lines, path)


def _check(config: AlertsConfig, lines: Lines, path: Path) -> LoadedAlerts:
    def at(*loc: str | int) -> int:
        return nearest_line(lines, loc)

    warnings: list[str] = []
    channels: dict[str, int] = {}
    for i, c in enumerate(config.channels):
        if c.name in channels:
            raise AlertsError(
                f"{path}:{at('channels', i, 'name')}: channels[{i}].name: '{c.name}' is already "
                f"defined (channels[{channels[c.name]}])"
            )
        channels[c.name] = i
    rules: dict[str, int] = {}
    for i, r in enumerate(config.rules):
        if r.name in rules:
            raise AlertsError(
                f"{path}:{at('rules', i, 'name')}: rules[{i}].name: '{r.name}' is already "
                f"defined (rules[{rules[r.name]}])"
            )
        rules[r.name] = i
        for j, to in enumerate(r.to):
            if to != TERMINAL and to not in channels:
                known = ", ".join([TERMINAL, *channels]) or TERMINAL
                raise AlertsError(
                    f"{path}:{at('rules', i, 'to', j)}: rules[{i}].to[{j}]: no channel '{to}' "
                    f"(channels: {known})"
                )
    for i, s in enumerate(config.silences):
        if s.rule != "*" and s.rule not in rules:
            raise AlertsError(
                f"{path}:{at('silences', i, 'rule')}: silences[{i}].rule: no rule '{s.rule}' "
                "(name a rule of this file, or '*')"
            )
    if not config.rules:
        warnings.append(f"{path}:1: rules: none: nothing will alert")
    return LoadedAlerts(config, path, warnings)


def load_alerts(path: Path) -> LoadedAlerts:
    """Read and validate an alerts file. Raises `AlertsError` with file, line and field."""
    return parse_alerts(read_text(path, "alerts file", MAX_ALERTS_BYTES, AlertsError), path)
