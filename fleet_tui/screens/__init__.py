"""Dashboard screens."""

from fleet_tui.screens.detail import AgentDetailScreen
from fleet_tui.screens.fleet import FleetScreen
from fleet_tui.screens.help import HelpScreen, WarningsScreen

__all__ = ["AgentDetailScreen", "FleetScreen", "HelpScreen", "WarningsScreen"]
