"""Records and enums of the fleet (pydantic, `records`) and plain data series (`series`).

Built on `fleet_tui.protocol` (the name rules, the timestamp format); imports nothing else of the
project. Importing this package imports no pydantic: only `records` does.
"""
