"""`/alerts/lease`: one alert evaluator per tenant (issue 15), so two hosts do not both alert the
same episode.

`POST` takes the tenant's lease when it is free or expired, renews it when the caller already
holds it, and otherwise answers who holds it: in one statement, so of callers racing for a free
lease exactly one gets it. `DELETE` releases it (only its holder can). Times are the gateway's
clock; `expires_in_s` says the same without trusting the caller's clock. Any valid token of
the tenant may use it (read or publish scope): the lease carries no fleet data.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from fleet_tui.protocol.clock import format_ts
from fleet_tui.server.bodies import body_doc, read_json, record, ref
from fleet_tui.server.deps import Auth, Db
from fleet_tui.server.errors import API, ERRORS, ApiError

router = APIRouter(prefix=API, tags=["alerts"], responses=ERRORS)

MIN_TTL_S = 5
MAX_TTL_S = 600
MAX_HOLDER = 200


class _Holder(BaseModel):
    # a newer client's extra fields are ignored: the contract may grow
    model_config = ConfigDict(extra="ignore")

    holder: str = Field(
        min_length=1,
        max_length=MAX_HOLDER,
        description="who asks, unique per evaluator process, e.g. `<host>:<pid>:<random>` "
        "(printable characters)",
    )

    @field_validator("holder")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("only printable characters (no control characters)")
        return value


class AlertLeaseRequest(_Holder):
    """`POST /alerts/lease`: take or renew the tenant's alert-evaluator lease for `ttl_s`."""

    ttl_s: float = Field(
        ge=MIN_TTL_S,
        le=MAX_TTL_S,
        strict=True,
        allow_inf_nan=False,
        description="seconds the lease lasts from now (gateway clock) unless renewed",
    )


class AlertReleaseRequest(_Holder):
    """`DELETE /alerts/lease`: release the lease `holder` holds."""


class AlertLeaseAnswer(BaseModel):
    """Who holds the tenant's lease now (after this request) and until when."""

    holder: str = Field(description="the holder now: the caller when `held`, else the other")
    held: bool = Field(description="true when the caller holds the lease now")
    expires_at: AwareDatetime = Field(description="the gateway's clock")
    expires_in_s: float = Field(
        description="seconds from this answer to `expires_at` (gateway clock): renew well "
        "before, trusting neither clock"
    )


class AlertReleaseAnswer(BaseModel):
    released: bool = Field(
        description="true when the caller held the lease (now free); false when it did not "
        "(nothing changed)"
    )


BODY_MODELS: list[type[BaseModel]] = [AlertLeaseRequest, AlertReleaseRequest]
"""The bodies these routes read themselves, for the OpenAPI document."""


async def lease_tenant(g: Auth, tenant: Annotated[str | None, Query(max_length=128)] = None) -> str:
    """The tenant whose lease is asked for (the `tenant` query parameter, or the token's only
    tenant): any scope of a token of that tenant will do (403 for another tenant)."""
    t = g.pick(tenant)
    if t not in g.tenants:
        raise ApiError(403, "forbidden", f"tenant {t!r} is outside this token")
    return t


LeaseTenant = Annotated[str, Depends(lease_tenant)]

# One statement: the conflicting row is locked and its latest version judged, so concurrent
# callers queue on it and exactly one takes a free lease. A caller that does not get it still
# updates the row (to itself): that is what makes the answer the holder of that same version.
_TAKE = """
INSERT INTO fleet.alert_leases AS l (tenant_id, holder, acquired_at, expires_at)
VALUES (%(tenant)s, %(holder)s, now(), now() + make_interval(secs => %(ttl)s))
ON CONFLICT (tenant_id) DO UPDATE SET
  holder = CASE WHEN l.holder = EXCLUDED.holder OR l.expires_at <= now()
                THEN EXCLUDED.holder ELSE l.holder END,
  acquired_at = CASE WHEN l.expires_at <= now() THEN now() ELSE l.acquired_at END,
  expires_at = CASE WHEN l.holder = EXCLUDED.holder OR l.expires_at <= now()
                    THEN EXCLUDED.expires_at ELSE l.expires_at END
RETURNING holder, holder = %(holder)s, expires_at,
  greatest(0, extract(epoch FROM expires_at - now()))::float8
"""


@router.post(
    "/alerts/lease",
    response_model=AlertLeaseAnswer,
    summary="Take or renew the tenant's alert-evaluator lease (any scope).",
    description="Taken when free or expired, renewed when the caller (`holder`) already "
    "holds it; otherwise `held` is false and `holder` names who holds it. Atomic: of "
    "callers racing for a free lease exactly one gets it. Renew well before `expires_in_s` "
    "runs out; a holder that stops renewing loses it at `expires_at`.",
    openapi_extra=body_doc(ref(AlertLeaseRequest)),
)
async def post_alert_lease(request: Request, t: LeaseTenant, db: Db) -> Response:
    body, text = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(422, "validation_error", "body: expected an object")
    ask = record(AlertLeaseRequest, body, text)
    async with db.as_tenant(t) as conn:
        row = await (
            await conn.execute(_TAKE, {"tenant": t, "holder": ask.holder, "ttl": ask.ttl_s})
        ).fetchone()
    assert row is not None  # INSERT ... ON CONFLICT DO UPDATE always returns its row
    holder, held, expires_at, expires_in = row
    answer = {
        "holder": holder,
        "held": bool(held),
        "expires_at": format_ts(expires_at),
        "expires_in_s": round(float(expires_in), 3),
    }
    return Response(json.dumps(answer).encode(), media_type="application/json")


@router.delete(
    "/alerts/lease",
    response_model=AlertReleaseAnswer,
    summary="Release the tenant's alert-evaluator lease (only its holder can; any scope).",
    description="`released` is false, and nothing changes, when `holder` does not hold it.",
    openapi_extra=body_doc(ref(AlertReleaseRequest)),
)
async def delete_alert_lease(request: Request, t: LeaseTenant, db: Db) -> AlertReleaseAnswer:
    body, text = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(422, "validation_error", "body: expected an object")
    ask = record(AlertReleaseRequest, body, text)
    async with db.as_tenant(t) as conn:
        cur = await conn.execute(
            "DELETE FROM fleet.alert_leases WHERE tenant_id = %s AND holder = %s",
            [t, ask.holder],
        )
    return AlertReleaseAnswer(released=cur.rowcount == 1)
