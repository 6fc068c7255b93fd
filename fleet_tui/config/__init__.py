"""One place for where files live (`paths`), what the fleet is configured with (`fleet`: the
roster and state dir), who this host's records belong to (`identity`), and the dashboard's
settings (`settings`)."""
