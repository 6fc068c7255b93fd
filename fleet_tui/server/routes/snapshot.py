"""`/snapshot`: each host publishes its ps v1 document; a reader gets every host's latest.

Per tenant the register holds at most `max_hosts` host snapshots (64) of at most
`max_snapshot_bytes` together (16 MiB): past a cap, 413 naming it. A document older than the
stored one is not stored, unless the stored one was dated ahead of the gateway's clock when
received: then the next one received replaces it, so a host whose clock ran fast is never locked
out once its clock is fixed. Readers age data by `received_at` (the gateway's clock).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fleet_tui.protocol.clock import format_ts
from fleet_tui.server.bodies import body_doc, nul_free_json, read_json, record, ref
from fleet_tui.server.deps import ANSWER_CAP, Auth, Db, ReadTenant
from fleet_tui.server.errors import API, ERRORS, ApiError
from fleet_tui.server.schemas import SNAPSHOT_SCHEMA, Accepted, PsDocumentV1, SnapshotAnswer

router = APIRouter(prefix=API, tags=["snapshot"], responses=ERRORS)

Head = tuple[str, str, datetime, datetime, str, int, float]
"""A stored host's row without its document: host, tenant, observed_at, received_at, row
version, document bytes, age in seconds."""


@router.get(
    "/snapshot",
    response_model=SnapshotAnswer,
    summary="The latest ps v1 document of every host of a tenant (scope read).",
    description="Hosts heard from within the host retention (7 days by default). Each "
    "host carries `received_at` (the gateway's clock when stored) and `age_s` (seconds "
    f"since, at this answer). Hosts past {ANSWER_CAP >> 20} MiB of documents are left out "
    "and named in `omitted_hosts` (only with the tenant caps raised or data older than "
    "them).",
)
async def get_snapshot(t: ReadTenant, db: Db) -> Response:
    async with db.as_tenant(t) as conn:
        # the row versions first (cheap); documents only for hosts whose version changed
        heads: list[Head] = await (
            await conn.execute(
                "SELECT host, tenant_id, observed_at, received_at, xmin::text, ps_bytes,"
                " greatest(0, extract(epoch FROM clock_timestamp() - received_at))::float8"
                " FROM fleet.host_snapshots WHERE tenant_id = %s"
                " AND received_at >= now() - make_interval(secs => %s) ORDER BY host",
                [t, db.caps.host_retention_s],
            )
        ).fetchall()
        kept: list[Head] = []
        omitted: list[str] = []
        size = 0
        for head in heads:
            size += int(head[5])
            if size > db.caps.answer_cap:
                omitted.append(head[0])
                size -= int(head[5])
            else:
                kept.append(head)
        heads = kept
        cached: dict[str, str] = {}
        stale: list[str] = []
        for h, _t, _o, _r, version, _b, _a in heads:
            doc = db.docs.get(t, h, version)
            if doc is None:
                stale.append(h)
            else:
                cached[h] = doc
        fresh: dict[str, str] = {}
        if stale:
            for host, version, text in await (
                await conn.execute(
                    "SELECT host, xmin::text, ps::text"
                    " FROM fleet.host_snapshots WHERE tenant_id = %s AND host = ANY(%s)",
                    [t, stale],
                )
            ).fetchall():
                fresh[host] = text
                db.docs.put(t, host, version, text)
    parts = []
    for h, tid, obs, rec, _v, _b, age in heads:
        ps = fresh.get(h, cached.get(h))
        if ps is None:  # deleted between the two reads
            continue
        parts.append(
            f'{{"host":{json.dumps(h)},"tenant_id":{json.dumps(tid)},'
            f'"observed_at":"{format_ts(obs)}","received_at":"{format_ts(rec)}",'
            f'"age_s":{round(float(age), 3)},"ps":{ps}}}'
        )
    hosts = ",".join(parts)
    extra = f',"omitted_hosts":{json.dumps(omitted)}' if omitted else ""
    body = (
        f'{{"schema":"{SNAPSHOT_SCHEMA}","tenant_id":{json.dumps(t)},'
        f'"generated_at":"{format_ts(datetime.now(UTC))}","hosts":[{hosts}]{extra}}}'
    )
    return Response(body.encode(), media_type="application/json")


@router.post(
    "/snapshot",
    response_model=Accepted,
    summary="Publish one host's ps v1 document (scope publish).",
    description="The tenant is the document's `tenant_id`, else its agents'. Every agent "
    "must carry that tenant and the document's `host` (else 422). A document older than "
    "the stored one is accepted but not stored, unless the stored one was dated ahead of "
    "the gateway's clock when received (then the next one replaces it). Per tenant at "
    "most 64 hosts and 16 MiB of documents (413).",
    openapi_extra=body_doc(ref(PsDocumentV1)),
)
async def post_snapshot(request: Request, g: Auth, db: Db) -> Accepted:
    g.require_scope("publish")
    body, text = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(422, "validation_error", "body: expected a ps v1 object")
    doc = record(PsDocumentV1, body, text)
    tenants = {a.tenant_id for a in doc.agents}
    if doc.tenant_id is not None:
        tenants.add(doc.tenant_id)
    g.require("publish", tenants)
    if not tenants:
        raise ApiError(422, "validation_error", "tenant_id: the document names no tenant")
    if len(tenants) > 1:
        raise ApiError(
            422,
            "validation_error",
            f"agents: more than one tenant ({', '.join(sorted(tenants))})",
        )
    bad = [a.name for a in doc.agents if a.host != doc.host]
    if bad:
        raise ApiError(
            422, "validation_error", f"agents: {bad[0]!r} is on another host than {doc.host!r}"
        )
    g.require_hosts({doc.host})
    (tenant,) = tenants
    raw = nul_free_json(text)
    size = len(raw.encode("utf-8"))
    caps = db.caps
    async with db.as_tenant(tenant, superseded_soon=True) as conn:
        # one writer per tenant at a time: the caps below hold under concurrent hosts
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('fleet.host_snapshots'), hashtext(%s))",
            [tenant],
        )
        await conn.execute(
            "DELETE FROM fleet.host_snapshots WHERE tenant_id = %s"
            " AND received_at < now() - make_interval(secs => %s)",
            [tenant, caps.host_retention_s],
        )  # silent hosts are forgotten: they no longer count against the caps
        row = await (
            await conn.execute(
                "SELECT count(*), coalesce(sum(ps_bytes), 0),"
                " coalesce(sum(ps_bytes) FILTER (WHERE host = %s), 0),"
                " coalesce(bool_or(host = %s), false)"
                " FROM fleet.host_snapshots WHERE tenant_id = %s",
                [doc.host, doc.host, tenant],
            )
        ).fetchone()
        hosts, total, mine, known = row if row is not None else (0, 0, 0, False)
        if not known and hosts >= caps.max_hosts:
            raise ApiError(
                413,
                "cap_reached",
                f"tenant {tenant!r} has {hosts} hosts, the cap of hosts per tenant "
                f"({caps.max_hosts}); a host silent for {caps.host_retention_days:g} days is "
                "forgotten",
            )
        if int(total) - int(mine) + size > caps.max_snapshot_bytes:
            raise ApiError(
                413,
                "cap_reached",
                f"the snapshots of tenant {tenant!r} would take {int(total) - int(mine) + size}"
                f" bytes, past the cap of {caps.max_snapshot_bytes} bytes of snapshots per tenant",
            )
        cur = await conn.execute(
            "INSERT INTO fleet.host_snapshots"
            " (tenant_id, host, observed_at, agents, ps, ps_bytes)"
            " VALUES (%s, %s, %s, %s, %s::json, %s)"
            " ON CONFLICT (tenant_id, host) DO UPDATE SET observed_at = EXCLUDED.observed_at,"
            " received_at = now(), agents = EXCLUDED.agents, ps = EXCLUDED.ps,"
            " ps_bytes = EXCLUDED.ps_bytes"
            # a stored document dated ahead of its receipt (the host's clock ran fast) does
            # not hold back the ones received after it: those replace it
            " WHERE host_snapshots.observed_at <= EXCLUDED.observed_at"
            " OR host_snapshots.observed_at > host_snapshots.received_at",
            [tenant, doc.host, doc.generated_at, len(doc.agents), raw, size],
        )
        stored = cur.rowcount
    return Accepted(accepted=1, stored=stored)
