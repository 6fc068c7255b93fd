"""`POST /heartbeats`: the register keeps the latest heartbeat per agent and one history row per
change of state; at most `max_heartbeats` agents per tenant (16384: 413 past it)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from fleet_tui.server.bodies import group, nul_free, nul_free_json, one_or_batch, publishable
from fleet_tui.server.deps import HOST_RETENTION_DAYS, MAX_HEARTBEATS, Auth, Conn, Db
from fleet_tui.server.errors import API, ERRORS, ApiError
from fleet_tui.server.schemas import Accepted, HeartbeatV1

router = APIRouter(prefix=API, tags=["heartbeats"], responses=ERRORS)


@router.post(
    "/heartbeats",
    response_model=Accepted,
    summary="Publish heartbeat v1 records: one object, or a list (batch, at most 5000).",
    description="The register keeps the latest heartbeat per agent (an older one than "
    "stored is accepted, not stored, unless the stored one was dated ahead of the "
    "gateway's clock when received) and one history row per change of state. A batch "
    "with an invalid "
    "item is refused whole (422 `invalid_items`, naming each).",
    openapi_extra=one_or_batch(HeartbeatV1),
)
async def post_heartbeats(request: Request, g: Auth, db: Db) -> Accepted:
    records = await publishable(request, g, HeartbeatV1)
    stored = 0
    for tenant, beats in group(records).items():
        async with db.as_tenant(tenant, superseded_soon=True) as conn:
            stored += await store_heartbeats(
                conn,
                tenant,
                beats,
                max_rows=db.caps.max_heartbeats,
                retention_s=db.caps.host_retention_s,
            )
    return Accepted(accepted=len(records), stored=stored)


async def store_heartbeats(
    conn: Conn,
    tenant: str,
    beats: list[HeartbeatV1],
    *,
    max_rows: int = MAX_HEARTBEATS,
    retention_s: float = HOST_RETENTION_DAYS * 86400,
) -> int:
    """Upsert the latest heartbeat per agent; record each change of state. Returns rows stored.

    A stored heartbeat dated ahead of its receipt (the host's clock ran fast) never holds back
    the ones received after it: those replace it, whatever their dates."""
    now = datetime.now(UTC)
    beats = sorted(beats, key=lambda r: r.ts)
    keys = sorted({(r.host, r.agent) for r in beats})
    prev_rows = await (
        await conn.execute(
            "SELECT host, agent, state, ts, ts > received_at FROM fleet.heartbeats"
            " WHERE tenant_id = %s AND (host, agent) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[])) FOR UPDATE",
            [tenant, [k[0] for k in keys], [k[1] for k in keys]],
        )
    ).fetchall()
    prev: dict[tuple[str, str], tuple[str | None, datetime | None, bool]] = {
        (h, a): (s, ts, ahead) for h, a, s, ts, ahead in prev_rows
    }
    new_keys = len(keys) - len(prev)
    if new_keys > 0:
        await conn.execute(
            "DELETE FROM fleet.heartbeats WHERE tenant_id = %s"
            " AND received_at < now() - make_interval(secs => %s)",
            [tenant, retention_s],
        )  # agents silent past the retention are forgotten: they no longer count
        row = await (
            await conn.execute(
                "SELECT count(*) FROM fleet.heartbeats WHERE tenant_id = %s", [tenant]
            )
        ).fetchone()
        rows = int(row[0]) if row else 0
        if rows + new_keys > max_rows:
            raise ApiError(
                413,
                "cap_reached",
                f"tenant {tenant!r} has {rows} agents' heartbeats; {new_keys} more would pass "
                f"the cap of {max_rows} per tenant",
            )
    changes: list[tuple[str, str, datetime, int, str, str | None, str | None]] = []
    latest: dict[tuple[str, str], HeartbeatV1] = {}
    for r in beats:
        key = (r.host, r.agent)
        state, ts, ahead = prev.get(key, (None, None, False))
        if ts is None or ahead or r.ts > ts:
            if r.state.value != state:
                changes.append(
                    (r.host, r.agent, r.ts, r.seq, r.state.value, state, nul_free(r.detail))
                )
            prev[key] = (r.state.value, r.ts, r.ts > now)
        latest[key] = r
    if changes:
        await conn.execute(
            "INSERT INTO fleet.heartbeat_changes"
            " (tenant_id, host, agent, ts, seq, state, prev_state, detail)"
            " SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::bigint[],"
            " %s::text[], %s::text[], %s::text[])",
            [tenant, *(list(col) for col in zip(*changes, strict=True))],
        )
    rows_now = list(latest.values())
    cur = await conn.execute(
        "INSERT INTO fleet.heartbeats AS h (tenant_id, host, agent, seq, ts, state, record)"
        " SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[],"
        " %s::text[], %s::jsonb[])"
        " ON CONFLICT (tenant_id, host, agent) DO UPDATE SET seq = EXCLUDED.seq,"
        " ts = EXCLUDED.ts, state = EXCLUDED.state, record = EXCLUDED.record, received_at = now()"
        " WHERE h.ts <= EXCLUDED.ts OR h.ts > h.received_at",
        [
            tenant,
            [r.host for r in rows_now],
            [r.agent for r in rows_now],
            [r.seq for r in rows_now],
            [r.ts for r in rows_now],
            [r.state.value for r in rows_now],
            [nul_free_json(r.model_dump_json()) for r in rows_now],
        ],
    )
    return cur.rowcount
