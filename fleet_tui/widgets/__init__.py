"""Dashboard widgets."""

from fleet_tui.widgets.fleet_table import FleetTable, Row
from fleet_tui.widgets.header import FleetHeader

__all__ = ["FleetHeader", "FleetTable", "Row"]
