"""Budgets: `POST /usage` and `POST /spend` (append-only records; one sent again is stored once),
`PUT /budgets` (the tenant's policy, latest wins) and `GET /budgets` (accounts, policy, latest
usage sample per account window, month-to-date spend)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypedDict, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fleet_tui.protocol.clock import format_ts
from fleet_tui.server.bodies import (
    body_doc,
    digest,
    group,
    nul_free,
    nul_free_json,
    one_or_batch,
    publishable,
    read_json,
    record,
    ref,
)
from fleet_tui.server.deps import Auth, Db, Grant, ReadTenant, Register
from fleet_tui.server.errors import API, ERRORS, ApiError
from fleet_tui.server.schemas import (
    BUDGETS_SCHEMA,
    Accepted,
    BudgetsAnswer,
    BudgetsPolicyV1,
    SpendRecordV1,
    UsageSampleV1,
)

router = APIRouter(prefix=API, tags=["budgets"], responses=ERRORS)

L = TypeVar("L", UsageSampleV1, SpendRecordV1)


class Ledger(Generic[L]):
    """An append-only table of records (usage samples, spend), each kept whole as JSON beside
    the columns the register queries; a record sent again (same digest) is not stored twice."""

    def __init__(
        self, table: str, model: type[L], columns: list[tuple[str, str, Callable[[L], object]]]
    ) -> None:
        self.model: type[L] = model
        names = ", ".join(name for name, _, _ in columns)
        arrays = ", ".join(f"%s::{pgtype}[]" for _, pgtype, _ in columns)
        self.sql = (
            f"INSERT INTO fleet.{table} (tenant_id, {names}, digest, record)"  # names: constants
            f" SELECT %s, * FROM unnest({arrays}, %s::bytea[], %s::jsonb[])"
            " ON CONFLICT (tenant_id, digest) DO NOTHING"
        )
        self.getters: list[Callable[[L], object]] = [get for _, _, get in columns]

    async def publish(self, request: Request, g: Grant, db: Register) -> Accepted:
        """Store the records of a publish body, in one statement per tenant."""
        records = await publishable(request, g, self.model)
        stored = 0
        for tenant, rows in group(records).items():
            dumped = [r.model_dump(mode="json") for r in rows]
            params: list[object] = [tenant]
            params += [[get(r) for r in rows] for get in self.getters]
            params += [
                [digest(d) for d in dumped],
                [nul_free_json(json.dumps(d)) for d in dumped],
            ]
            async with db.as_tenant(tenant) as conn:
                cur = await conn.execute(self.sql, params)
                stored += cur.rowcount
        return Accepted(accepted=len(records), stored=stored)

    def route(self, path: str, summary: str) -> None:
        """Add `POST path` (`post_<path>`) publishing into this ledger to the router."""

        async def publish(request: Request, g: Auth, db: Db) -> Accepted:
            return await self.publish(request, g, db)

        router.add_api_route(
            path,
            publish,
            methods=["POST"],
            name=f"post_{path.strip('/')}",
            response_model=Accepted,
            summary=summary,
            description="A batch with an invalid item is refused whole (422 `invalid_items`, "
            "naming each by index); the publisher drops those and sends the rest again.",
            openapi_extra=one_or_batch(self.model),
        )


USAGE = Ledger(
    "usage_samples",
    UsageSampleV1,
    [
        ("host", "text", lambda r: r.host),
        ("account", "text", lambda r: r.account),
        ("window_name", "text", lambda r: r.window),
        ("window_minutes", "int", lambda r: r.window_minutes),
        ("used_percent", "float8", lambda r: r.used_percent),
        ("resets_at", "timestamptz", lambda r: r.resets_at),
        ("reset_confidence", "text", lambda r: nul_free(r.reset_confidence)),
        ("observed_at", "timestamptz", lambda r: r.observed_at),
        ("source", "text", lambda r: nul_free(r.source)),
    ],
)
SPEND = Ledger(
    "spend_records",
    SpendRecordV1,
    [
        ("host", "text", lambda r: r.host),
        ("ts", "timestamptz", lambda r: r.ts),
        ("agent", "text", lambda r: nul_free(r.agent)),
        ("account", "text", lambda r: r.account),
        ("model", "text", lambda r: nul_free(r.model)),
        ("input_tokens", "bigint", lambda r: r.input_tokens),
        ("output_tokens", "bigint", lambda r: r.output_tokens),
        ("cost_usd", "float8", lambda r: r.cost_usd),
    ],
)
USAGE.route("/usage", "Publish usage samples: a list (or one object). Resent samples are ignored.")
SPEND.route("/spend", "Publish spend records: a list (or one object). Resent records are ignored.")


@router.put(
    "/budgets",
    response_model=Accepted,
    summary="Publish the tenant's budgets.yaml v1 as JSON (scope publish); latest wins.",
    description="Tenant-wide: a token bound to hosts may not write it (403).",
    openapi_extra=body_doc(ref(BudgetsPolicyV1)),
)
async def put_budgets(request: Request, g: Auth, db: Db) -> Accepted:
    g.require_scope("publish")
    if g.hosts is not None:
        raise ApiError(403, "forbidden", "this token is bound to hosts; budgets are tenant-wide")
    body, text = await read_json(request)
    policy = record(BudgetsPolicyV1, body, text)
    g.require("publish", {policy.tenant_id})
    async with db.as_tenant(policy.tenant_id) as conn:
        await conn.execute(
            "INSERT INTO fleet.budget_policies (tenant_id, policy) VALUES (%s, %s::jsonb)"
            " ON CONFLICT (tenant_id) DO UPDATE SET policy = EXCLUDED.policy,"
            " received_at = now()",
            [policy.tenant_id, nul_free_json(policy.model_dump_json())],
        )
    return Accepted(accepted=1, stored=1)


Json = dict[str, Any]
"""A JSON object as stored (jsonb): the policy, an account of it, a usage sample."""


class _Spend(TypedDict):
    since: str
    cost_usd: float
    input_tokens: int
    output_tokens: int
    records: int


class _Account(TypedDict):
    account: str
    policy: Json | None
    windows: list[Json]
    spend: _Spend


class _Answer(TypedDict):
    """`GET /budgets` as sent (`BudgetsAnswer` documents it; the samples keep every field)."""

    schema: str
    tenant_id: str
    generated_at: str
    policy: Json | None
    policy_received_at: str | None
    accounts: list[_Account]


@router.get(
    "/budgets",
    response_model=BudgetsAnswer,
    summary="Accounts, policy, latest usage sample per account window, month-to-date "
    "spend (scope read).",
)
async def get_budgets(t: ReadTenant, db: Db) -> Response:
    now = datetime.now(UTC)
    since = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    async with db.as_tenant(t) as conn:
        prow = await (
            await conn.execute(
                "SELECT policy, received_at FROM fleet.budget_policies WHERE tenant_id = %s",
                [t],
            )
        ).fetchone()
        samples = await (
            await conn.execute(
                "SELECT DISTINCT ON (account, window_name) account, record, received_at"
                " FROM fleet.usage_samples WHERE tenant_id = %s"
                " ORDER BY account, window_name, observed_at DESC, id DESC",
                [t],
            )
        ).fetchall()
        spend = await (
            await conn.execute(
                "SELECT account, coalesce(sum(cost_usd), 0), coalesce(sum(input_tokens), 0),"
                " coalesce(sum(output_tokens), 0), count(*) FROM fleet.spend_records"
                " WHERE tenant_id = %s AND ts >= %s GROUP BY account",
                [t, since],
            )
        ).fetchall()
    policy: Json | None = prow[0] if prow else None
    by_id: dict[str, Json] = {}
    for entry in (policy or {}).get("accounts", []):
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            by_id.setdefault(entry["id"], entry)
    names = list(by_id)
    windows: dict[str, list[Json]] = {}
    for account, sample, received in samples:
        windows.setdefault(account, []).append({**sample, "received_at": format_ts(received)})
    spent = {row[0]: row[1:] for row in spend}
    for name in [*windows, *spent]:
        if name not in names:
            names.append(name)
    accounts: list[_Account] = []
    for name in names:
        cost, tin, tout, n = spent.get(name, (0.0, 0, 0, 0))
        accounts.append(
            {
                "account": name,
                "policy": by_id.get(name),
                "windows": windows.get(name, []),
                "spend": {
                    "since": format_ts(since),
                    "cost_usd": float(cost),
                    "input_tokens": int(tin),
                    "output_tokens": int(tout),
                    "records": int(n),
                },
            }
        )
    answer: _Answer = {
        "schema": BUDGETS_SCHEMA,
        "tenant_id": t,
        "generated_at": format_ts(now),
        "policy": policy,
        "policy_received_at": format_ts(prow[1]) if prow else None,
        "accounts": accounts,
    }
    return Response(json.dumps(answer).encode(), media_type="application/json")
