"""The reference gateway: FastAPI routes of DESIGN.md "Gateway API, version 1" on PostgreSQL.

`create_app` only wires: the connection pool and its pruner, the body limit, the error envelope
(`errors`), the dependencies every route shares (`deps`: register, caps, token, limiter) and the
routers (`routes/`). Bodies are read and judged in `bodies`.

Every route that touches tenant rows runs in one transaction as the role `fleet_gateway_app`
(no BYPASSRLS, not the owner) with `fleet.tenant` set to the one tenant it serves: row-level
security then hides every other tenant's rows even from a query that forgets to filter. Token
lookups (table `fleet.tokens`, not visible to that role) run as the connecting user.

Every request is judged in this order: the client address (429 after too many failed tokens,
without touching the database), the bearer token (401), the route's scope (403): all before a
byte of the body is read. Then the body: bounded (`max_body`, 4 MiB by default: 413), strict
JSON in valid Unicode (invalid UTF-8, a lone surrogate escape, NaN or Infinity: 422, never 500),
then its records (422 naming the field; a batch names every invalid item and stores none of it),
then the tenant and host the token may write (403). Every error is
`{"error": {"code", "message"}}`. Tokens are never logged: uvicorn's access log prints the
request line only, and no route echoes a header.

Per tenant the register holds at most `max_hosts` host snapshots (64) of at most
`max_snapshot_bytes` together (16 MiB), and `max_heartbeats` latest heartbeats (16384): past a
cap, 413 naming it. A host (its snapshot, its heartbeats) silent for `host_retention_days` (7)
is forgotten. A record older than the stored one is not stored, unless the stored one was dated
ahead of the gateway's clock when received: then the next record received replaces it, so a host
whose clock ran fast is never locked out once its clock is fixed. Readers age data by
`received_at` (the gateway's clock), never by the host's dates.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool
from pydantic.json_schema import models_json_schema

from fleet_tui import telemetry
from fleet_tui.server.bodies import BODY_MODELS, MAX_BODY, BodyLimit
from fleet_tui.server.deps import (
    ANSWER_CAP,
    AUTH_FAILURES,
    AUTH_WINDOW_S,
    HOST_RETENTION_DAYS,
    MAX_HEARTBEATS,
    MAX_HOSTS,
    MAX_SNAPSHOT_BYTES,
    RETENTION_DAYS,
    Caps,
    Conn,
    FailureLimiter,
    Register,
)
from fleet_tui.server.errors import API, install_handlers
from fleet_tui.server.observe import Observe, RouteStats
from fleet_tui.server.routes import alerts, budgets, health, heartbeats, metrics, snapshot


def create_app(
    dsn: str,
    *,
    pool_min: int = 2,
    pool_max: int = 10,
    max_body: int = MAX_BODY,
    retention_days: float = RETENTION_DAYS,
    host_retention_days: float = HOST_RETENTION_DAYS,
    max_hosts: int = MAX_HOSTS,
    max_snapshot_bytes: int = MAX_SNAPSHOT_BYTES,
    max_heartbeats: int = MAX_HEARTBEATS,
    answer_cap: int = ANSWER_CAP,
    auth_failures: int = AUTH_FAILURES,
    auth_window_s: float = AUTH_WINDOW_S,
) -> FastAPI:
    """The gateway app on the (already migrated) database `dsn`."""
    telemetry.set_service_name("fleet-tui-gateway")
    telemetry.enabled()  # traces (OTEL_*): the SDK is set up now, not in the first request
    # a request waits at most 5 s for a connection, then gets 503 (the database is down)
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        dsn,
        min_size=pool_min,
        max_size=pool_max,
        open=False,
        timeout=5.0,
        kwargs={"autocommit": True, "connect_timeout": 5},
    )
    caps = Caps(
        retention_days=retention_days,
        host_retention_days=host_retention_days,
        max_hosts=max_hosts,
        max_snapshot_bytes=max_snapshot_bytes,
        max_heartbeats=max_heartbeats,
        answer_cap=answer_cap,
    )
    register = Register(pool, caps)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True, timeout=30)
        pruner = asyncio.create_task(register.prune_forever())
        try:
            yield
        finally:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
            await pool.close()

    # FastAPI's own request telemetry (newer releases) is off: `Observe` makes the route spans
    # (named by route, with our attributes) and the /metrics figures; no body reaches a span.
    native: dict[str, Any] = {}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        off = ("tracing", "metrics", "logs", "operation_spans", "auto_configure")
        native["telemetry"] = dict.fromkeys(off, False)
    app = FastAPI(
        **native,
        title="Mosaic Fleet gateway (reference)",
        version="1",
        summary="The cross-host register of Mosaic Fleet: DESIGN.md 'Gateway API, version 1'.",
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{API}/openapi.json",
        lifespan=lifespan,
    )
    app.state.register = register
    app.state.limiter = FailureLimiter(auth_failures, auth_window_s)
    app.state.route_stats = RouteStats()
    app.add_middleware(BodyLimit, limit=max_body)
    # outermost: times every answer, the body limit's 413 too
    app.add_middleware(Observe, stats=app.state.route_stats, router=app.router)
    install_handlers(app)
    for area in (health, snapshot, heartbeats, budgets, alerts, metrics):
        app.include_router(area.router)

    generated_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document plus the record schemas of the bodies the routes read themselves
        (after judging the token, so FastAPI does not see them)."""
        if app.openapi_schema:
            return app.openapi_schema
        doc = generated_openapi()
        _, defs = models_json_schema(
            [(m, "validation") for m in [*BODY_MODELS, *alerts.BODY_MODELS]],
            ref_template="#/components/schemas/{model}",
        )
        doc.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
    return app
