"""Dashboard widgets."""

from fleet_tui.ui.widgets.fleet_table import FleetTable, Row
from fleet_tui.ui.widgets.footer import FleetFooter, prune_closed_watchers
from fleet_tui.ui.widgets.header import FleetHeader

__all__ = ["FleetFooter", "FleetHeader", "FleetTable", "Row", "prune_closed_watchers"]
