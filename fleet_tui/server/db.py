"""The register's database: versioned migrations and tokens (synchronous psycopg 3).

Migrations are the SQL files `migrations/NNNN_name.sql`, applied in order inside one
transaction under an advisory lock (two servers starting together do not race), each recorded
in `fleet.schema_migrations` with its sha256; an applied file that changed since is refused.
Tokens are random (256 bits), shown once, and stored as their sha256 only. A publish token may
be bound to hosts: it then writes only those hosts' rows.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import psycopg

from fleet_tui.protocol.names import HOST_RE, TENANT_RE

APP_ROLE = "fleet_gateway_app"
"""The role route queries run as (SET LOCAL ROLE): not the owner, no BYPASSRLS."""
SCOPES = ("read", "publish")
TENANT_PATTERN = re.compile(TENANT_RE)
HOST_PATTERN = re.compile(HOST_RE)
_LOCK_KEY = 0x666C656574  # "fleet"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class GatewayDbError(Exception):
    """A database problem the operator must fix (bad DSN, changed migration, missing rights)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """The migration files shipped in the package, in version order."""
    found: list[Migration] = []
    for entry in resources.files("fleet_tui.server").joinpath("migrations").iterdir():
        m = _FILE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise GatewayDbError(f"two migration files share a version: {versions}")
    return found


def connect(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    """A connection, or a one-line GatewayDbError naming what failed."""
    try:
        return psycopg.connect(dsn, connect_timeout=10)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GatewayDbError(f"cannot connect to the database: {first}") from None


def migrate(dsn: str) -> tuple[int, list[int]]:
    """Apply the pending migrations; return (schema version, versions applied now)."""
    applied_now: list[int] = []
    with connect(dsn) as conn:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
                conn.execute("CREATE SCHEMA IF NOT EXISTS fleet")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS fleet.schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                rows = conn.execute(
                    "SELECT version, name, checksum FROM fleet.schema_migrations"
                ).fetchall()
                done = {int(str(v)): (str(n), str(c)) for v, n, c in rows}
                known = migrations()
                for mig in known:
                    if mig.version in done:
                        if done[mig.version][1] != mig.checksum:
                            raise GatewayDbError(
                                f"migration {mig.version:04d}_{mig.name}.sql changed after it "
                                "was applied; refusing to run on this database"
                            )
                        continue
                    conn.execute(mig.sql.encode())
                    conn.execute(
                        "INSERT INTO fleet.schema_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)",
                        [mig.version, mig.name, mig.checksum],
                    )
                    applied_now.append(mig.version)
                newer = sorted(set(done) - {m.version for m in known})
                if newer:
                    raise GatewayDbError(
                        f"the database is at schema version {max(done)}, newer than this "
                        f"fleet-tui knows ({max(m.version for m in known)}); upgrade fleet-tui"
                    )
                version = max([*done, *applied_now], default=0)
        except psycopg.Error as exc:
            raise GatewayDbError(f"migration failed: {_first_line(exc)}") from None
    return version, applied_now


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def token_digest(token: str) -> bytes:
    """What the database keeps of a token: its sha256 (the token has 256 bits of entropy)."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    tenants: tuple[str, ...]
    scopes: tuple[str, ...]
    label: str | None
    created_at: datetime
    revoked_at: datetime | None
    hosts: tuple[str, ...] | None = None


def check_hosts(hosts: list[str] | None, scopes: list[str]) -> None:
    if hosts is None:
        return
    if not hosts:
        raise GatewayDbError("--host: give at least one host")
    for h in hosts:
        if not HOST_PATTERN.match(h):
            raise GatewayDbError(
                f"--host {h!r}: use letters, digits, '_', '.', '-', starting with a letter or "
                "digit (1-253)"
            )
    if "publish" not in scopes:
        raise GatewayDbError("--host binds a publish token: add --scope publish")


def _check_grants(tenants: list[str], scopes: list[str]) -> None:
    if not tenants:
        raise GatewayDbError("a token needs at least one --tenant")
    for t in tenants:
        if not TENANT_PATTERN.match(t):
            raise GatewayDbError(f"--tenant {t!r}: use letters, digits, '_', '.', '-' (1-128)")
    if not scopes:
        raise GatewayDbError("a token needs at least one --scope (read, publish)")
    for s in scopes:
        if s not in SCOPES:
            raise GatewayDbError(f"--scope {s!r}: must be one of {', '.join(SCOPES)}")


def create_token(
    dsn: str,
    tenants: list[str],
    scopes: list[str],
    label: str | None = None,
    hosts: list[str] | None = None,
) -> tuple[str, str]:
    """Store a new token (hashed) granting these tenants and scopes; return (id, plain token).

    `hosts`: the only hosts whose rows the token may publish (None: any host of its tenants).
    The tenants are registered if new. The plain token exists only in the return value.
    """
    tenants = sorted(set(tenants))
    scopes = sorted(set(scopes))
    hosts = sorted(set(hosts)) if hosts is not None else None
    _check_grants(tenants, scopes)
    check_hosts(hosts, scopes)
    token_id = "tok_" + secrets.token_hex(6)
    token = f"fleet_{secrets.token_urlsafe(32)}"
    with connect(dsn) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO fleet.tenants (tenant_id) SELECT unnest(%s::text[])"
            " ON CONFLICT DO NOTHING",
            [tenants],
        )
        conn.execute(
            "INSERT INTO fleet.tokens (token_id, token_hash, tenants, scopes, label, hosts)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [token_id, token_digest(token), tenants, scopes, label, hosts],
        )
    return token_id, token


def list_tokens(dsn: str) -> list[TokenInfo]:
    with connect(dsn) as conn:
        rows = conn.execute(
            "SELECT token_id, tenants, scopes, label, created_at, revoked_at, hosts"
            " FROM fleet.tokens ORDER BY created_at, token_id"
        ).fetchall()
    out: list[TokenInfo] = []
    for row in rows:
        r: Any = row
        hosts = tuple(r[6]) if r[6] is not None else None
        out.append(TokenInfo(str(r[0]), tuple(r[1]), tuple(r[2]), r[3], r[4], r[5], hosts))
    return out


def revoke_token(dsn: str, token_id: str) -> bool:
    """Revoke a token by id; False when no such (unrevoked) token exists."""
    with connect(dsn) as conn, conn.transaction():
        cur = conn.execute(
            "UPDATE fleet.tokens SET revoked_at = now() WHERE token_id = %s AND revoked_at IS NULL",
            [token_id],
        )
        return cur.rowcount == 1
