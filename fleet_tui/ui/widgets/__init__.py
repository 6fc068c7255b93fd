"""Dashboard widgets."""

from fleet_tui.ui.widgets.fleet_table import FleetTable, Row
from fleet_tui.ui.widgets.header import FleetHeader

__all__ = ["FleetHeader", "FleetTable", "Row"]
