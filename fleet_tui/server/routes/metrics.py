"""`GET /metrics`: the gateway's Prometheus text (no auth, no tenant data: see `observe`)."""

from __future__ import annotations

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from fleet_tui.server.deps import Db
from fleet_tui.server.observe import CONTENT_TYPE, RouteStats, host_ages, render

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, db: Db) -> PlainTextResponse:
    stats = request.app.state.route_stats
    assert isinstance(stats, RouteStats)
    hosts: list[tuple[str, float]] | None
    try:
        hosts = await host_ages(db)
    except (psycopg.Error, TimeoutError):
        hosts = None  # the database is down: the route and pool figures still say so
    pool = None if db.pool.closed else dict(db.pool.get_stats())
    return PlainTextResponse(render(stats, hosts, pool), media_type=CONTENT_TYPE)
