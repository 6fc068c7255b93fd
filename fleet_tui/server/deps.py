"""What every route of the gateway depends on: the register's database (a transaction scoped to one
tenant by row-level security), the caps of the register, the failed-token limiter, and the
request's grant from its bearer token.

Every request is judged in this order: the client address (429 after too many failed tokens,
without touching the database), the bearer token (401), the route's scope (403): all before a
byte of the body is read. Tokens are never logged, and no route echoes a header.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated

import psycopg
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from fleet_tui import telemetry
from fleet_tui.server.db import APP_ROLE, token_digest
from fleet_tui.server.errors import ApiError

RETENTION_DAYS = 14.0
"""How long the history of heartbeat state changes is kept."""
HOST_RETENTION_DAYS = 7.0
"""A host silent this long (no snapshot, no heartbeat) is forgotten."""
MAX_HOSTS = 64
"""Host snapshots per tenant."""
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024
"""Stored snapshot JSON per tenant: a full GET /snapshot stays far below a client's 32 MB."""
MAX_HEARTBEATS = 16384
"""Latest-heartbeat rows (agents) per tenant."""
ANSWER_CAP = 24 * 1024 * 1024
"""GET /snapshot leaves out (and names) hosts past this many bytes of documents."""
AUTH_FAILURES = 20
AUTH_WINDOW_S = 60.0
"""More than AUTH_FAILURES failed tokens from one address within AUTH_WINDOW_S: 429."""

Scope = str
Conn = psycopg.AsyncConnection[TupleRow]


@dataclass(frozen=True)
class Caps:
    """The register's limits and retentions, as `create_app` was given them."""

    retention_days: float = RETENTION_DAYS
    host_retention_days: float = HOST_RETENTION_DAYS
    max_hosts: int = MAX_HOSTS
    max_snapshot_bytes: int = MAX_SNAPSHOT_BYTES
    max_heartbeats: int = MAX_HEARTBEATS
    answer_cap: int = ANSWER_CAP

    @property
    def host_retention_s(self) -> float:
        return self.host_retention_days * 86400


class DocCache:
    """Published ps documents as stored text, keyed by tenant, host and row version (xmin).

    Only a hint: every read still lists the tenant's rows and their versions in the database
    (under row-level security), and takes a document from here only when its version matches.
    Bounded: emptied when it holds more than `max_bytes`.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.docs: dict[tuple[str, str], tuple[str, str]] = {}

    def get(self, tenant: str, host: str, version: str) -> str | None:
        hit = self.docs.get((tenant, host))
        return hit[1] if hit is not None and hit[0] == version else None

    def put(self, tenant: str, host: str, version: str, doc: str) -> None:
        old = self.docs.pop((tenant, host), None)
        if old is not None:
            self.size -= len(old[1])
        if self.size + len(doc) > self.max_bytes:
            self.docs.clear()
            self.size = 0
        self.docs[(tenant, host)] = (version, doc)
        self.size += len(doc)


@dataclass
class Register:
    """The register's database (a connection pool) and what the routes keep beside it."""

    pool: AsyncConnectionPool[Conn]
    caps: Caps = field(default_factory=Caps)
    docs: DocCache = field(default_factory=DocCache)

    @contextlib.asynccontextmanager
    async def as_tenant(self, tenant: str, *, superseded_soon: bool = False) -> AsyncIterator[Conn]:
        """A transaction as the app role, seeing only `tenant`'s rows (row-level security).

        `superseded_soon`: the rows written are latest-state (a host's snapshot, an agent's
        heartbeat) that the publisher sends again within seconds, so the commit does not wait
        for the WAL flush (`synchronous_commit = off`: a database crash may lose the last
        fraction of a second of them, never corrupt anything). Usage and spend records, which a
        publisher forgets once accepted, keep the durable commit.
        """
        telemetry.note(tenant=tenant)  # the route span says whose rows it served
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT set_config('role', %s, true), set_config('fleet.tenant', %s, true),"
                " set_config('synchronous_commit',"
                " CASE WHEN %s THEN 'off' ELSE current_setting('synchronous_commit') END, true)",
                [APP_ROLE, tenant, superseded_soon],
            )
            yield conn

    async def prune_forever(self) -> None:
        """Every 10 minutes: forget heartbeat changes past the retention, and hosts and agents
        silent past the host retention. A database that does not answer is tried again later."""
        while True:
            with contextlib.suppress(psycopg.Error, asyncio.TimeoutError):
                async with self.pool.connection(timeout=10) as conn:
                    await conn.execute(
                        "DELETE FROM fleet.heartbeat_changes"
                        " WHERE ts < now() - make_interval(secs => %s)",
                        [self.caps.retention_days * 86400],
                    )
                    for table in ("host_snapshots", "heartbeats"):  # silent hosts, agents
                        await conn.execute(
                            f"DELETE FROM fleet.{table}"  # table: a constant
                            " WHERE received_at < now() - make_interval(secs => %s)",
                            [self.caps.host_retention_s],
                        )
            await asyncio.sleep(600)


def register(request: Request) -> Register:
    """The app's register (set by `create_app`)."""
    reg = request.app.state.register
    assert isinstance(reg, Register)
    return reg


Db = Annotated[Register, Depends(register)]


class FailureLimiter:
    """Failed authentications per client address: more than `limit` within `window_s` and the
    address is refused (429) until the oldest of them ages out. Bounded: at most `max_clients`
    addresses are remembered (the least recently failing are forgotten first)."""

    def __init__(
        self,
        limit: int = AUTH_FAILURES,
        window_s: float = AUTH_WINDOW_S,
        *,
        max_clients: int = 10000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self.clock = clock
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        seen = self.failures.get(client)
        if seen is None:
            return None
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        if not seen:
            del self.failures[client]
            return None
        return seen

    def retry_after(self, client: str) -> float | None:
        """Seconds until `client` may try again, or None when it may now."""
        now = self.clock()
        seen = self._recent(client, now)
        if seen is None or len(seen) < self.limit:
            return None
        return max(0.0, seen[0] + self.window_s - now)

    def fail(self, client: str) -> None:
        now = self.clock()
        seen = self._recent(client, now)
        if seen is None:
            seen = self.failures[client] = deque()
            while len(self.failures) > self.max_clients:
                self.failures.popitem(last=False)
        else:
            self.failures.move_to_end(client)
        seen.append(now)


@dataclass(frozen=True)
class Grant:
    """What a valid token allows. `hosts`: the hosts a publish token may write (None: any host
    of its tenants)."""

    token_id: str
    tenants: frozenset[str]
    scopes: frozenset[str]
    hosts: frozenset[str] | None = None

    def require_scope(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise ApiError(403, "forbidden", f"this token lacks the {scope!r} scope")

    def require(self, scope: Scope, tenants: set[str]) -> None:
        self.require_scope(scope)
        outside = sorted(tenants - self.tenants)
        if outside:
            raise ApiError(403, "forbidden", f"tenant {outside[0]!r} is outside this token")

    def require_hosts(self, hosts: set[str]) -> None:
        """403 unless the token may write every one of `hosts`."""
        if self.hosts is None:
            return
        outside = sorted(hosts - self.hosts)
        if outside:
            raise ApiError(
                403, "forbidden", f"host {outside[0]!r} is outside this token (bound to hosts)"
            )

    def pick(self, tenant: str | None) -> str:
        """The tenant a read serves: the one asked for, or the token's only tenant."""
        if tenant is not None:
            return tenant
        if len(self.tenants) == 1:
            return next(iter(self.tenants))
        raise ApiError(422, "validation_error", "query parameter 'tenant' is required")


_bearer = HTTPBearer(auto_error=False, description="a token from `fleet-tui gateway token create`")


async def grant(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Grant:
    """The request's grant from its bearer token: 429 while its address has failed too often
    (no database lookup), 401 when missing, unknown or revoked. Runs before the body is read."""
    limiter = request.app.state.limiter
    assert isinstance(limiter, FailureLimiter)
    client = request.client.host if request.client else "-"
    wait = limiter.retry_after(client)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise ApiError(
            429,
            "too_many_failures",
            f"too many failed tokens from this address; retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        limiter.fail(client)
        raise ApiError(401, "unauthorized", "missing bearer token")
    async with register(request).pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT token_id, tenants, scopes, hosts FROM fleet.tokens"
                " WHERE token_hash = %s AND revoked_at IS NULL",
                [token_digest(creds.credentials)],
            )
        ).fetchone()
    if row is None:
        limiter.fail(client)
        raise ApiError(401, "unauthorized", "unknown or revoked token")
    hosts = frozenset(row[3]) if row[3] is not None else None
    return Grant(str(row[0]), frozenset(row[1]), frozenset(row[2]), hosts)


Auth = Annotated[Grant, Depends(grant)]


async def read_tenant(g: Auth, tenant: Annotated[str | None, Query(max_length=128)] = None) -> str:
    """The tenant a read serves (the `tenant` query parameter, or the token's only tenant),
    once the token may read it (403 otherwise)."""
    t = g.pick(tenant)
    g.require("read", {t})
    return t


ReadTenant = Annotated[str, Depends(read_tenant)]
