"""Records and enums of the fleet and plain data series.

`kinds` the enums; `records` the snapshot's records (plain frozen dataclasses, `ps --json` v1)
and the sources' observations; `validated` what is read from files and answers (pydantic:
roster, heartbeat, ping, ledger records); `series`, `alerts`, `lifecycle` plain data. Built on
`fleet_tui.protocol` (the name rules, the timestamp format); imports nothing else of the project.
Only `validated` (and `alerts`) import pydantic, and only what reads a file or an answer imports
them.
"""
