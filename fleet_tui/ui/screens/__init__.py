"""Dashboard screens."""

from fleet_tui.ui.screens.detail import AgentDetailScreen
from fleet_tui.ui.screens.fleet import FleetScreen
from fleet_tui.ui.screens.help import HelpScreen, WarningsScreen

__all__ = ["AgentDetailScreen", "FleetScreen", "HelpScreen", "WarningsScreen"]
