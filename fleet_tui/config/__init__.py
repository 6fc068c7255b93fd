"""One place for where files live, the local identity, and the dashboard's settings."""
