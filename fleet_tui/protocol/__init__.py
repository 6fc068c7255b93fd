"""The file contracts shared by the hooks and the readers: acks, regular files, ledgers, YAML documents. Light: no pydantic, Rich or Textual."""
