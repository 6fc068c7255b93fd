"""The fleet's configuration: where the roster and the state dir are, and loading the roster.

`FleetConfig` is what every verb and the dashboard are built from (the CLI makes it from flags
and the environment). `load_configured_roster` is the one way to read the roster it names, and
`configured_identity` the one "roster -> (tenant_id, host)" (the rule is `identity.local_identity`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fleet_tui.config.identity import local_identity
from fleet_tui.config.paths import Located, alerts_location, roster_location, state_dir_location
from fleet_tui.sources.roster import LoadedRoster, load_roster

if TYPE_CHECKING:
    from fleet_tui.remote.connection import GatewaySettings


@dataclass
class FleetConfig:
    roster: Located
    state_dir: Path
    heartbeat_timeout_s: float | None = None
    tmux_timeout_s: float = 2.0
    gateway: GatewaySettings | None = None  # the dashboard merges the gateway's other hosts
    # alerts.yaml (`--alerts`, MOSAIC_FLEET_ALERTS, XDG default): rules for `alerts run` and
    # the dashboard's terminal channel
    alerts: Located = field(default_factory=alerts_location)

    @classmethod
    def from_flags(
        cls,
        roster: str | None = None,
        state_dir: str | None = None,
        heartbeat_timeout_s: float | None = None,
    ) -> FleetConfig:
        return cls(roster_location(roster), state_dir_location(state_dir).path, heartbeat_timeout_s)


def load_configured_roster(config: FleetConfig, *, strict: bool = True) -> LoadedRoster | None:
    """The roster, or None when the default one does not exist. A named one must exist.

    `strict` (the default: verbs that act on the roster, and the collector, which reports it)
    raises `RosterError` (exit 2) for a named roster that is missing, unreadable or invalid.
    `strict=False` is for callers to whom the roster is optional (pane actions, budgets, usage
    samples): any failure gives None, as if there were no roster, and is someone else's to
    report."""
    try:
        if not config.roster.explicit and not config.roster.path.exists():
            return None
        return load_roster(config.roster.path)
    except Exception:
        if strict:
            raise
        return None


def configured_identity(config: FleetConfig, *, strict: bool = True) -> tuple[str, str]:
    """(tenant_id, host) of this machine's records under `config` (`local_identity` of its
    roster); `strict` as in `load_configured_roster` (False: a broken roster counts as none)."""
    loaded = load_configured_roster(config, strict=strict)
    return local_identity(loaded.roster if loaded else None)
