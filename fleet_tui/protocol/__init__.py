"""The file contracts, shared by the hooks that write them and the readers: the heartbeat spool
(`heartbeat`), acks (`acks`), ledgers (`ledger`), regular-file reads and atomic writes
(`files`), YAML documents (`yamldoc`), the name rules (`names`) and the clock (`clock`).

Standard library only (and PyYAML in `yamldoc`): no pydantic, Rich or Textual, so a hook that runs
on every runtime event starts fast. The bottom of the project's layers but `tmux` and `errors`.
"""
