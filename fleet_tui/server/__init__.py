"""The reference gateway of the cross-host register (DESIGN.md "Gateway API, version 1").

An ASGI app (FastAPI) on PostgreSQL (psycopg 3): a `fleet` schema created by versioned SQL
migrations, hashed bearer tokens granting tenants and scopes, and row-level security so that a
route bug cannot leak another tenant's rows. Imported by nothing else in fleet_tui except lazily
by `fleet_tui.cli.gateway`; needs the `gateway` extra (`pip install 'fleet-tui[gateway]'`).
"""
