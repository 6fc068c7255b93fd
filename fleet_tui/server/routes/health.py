"""`GET /healthz`: readiness, the database answers (no auth)."""

from __future__ import annotations

from fastapi import APIRouter

from fleet_tui.server.deps import Db
from fleet_tui.server.errors import ERRORS

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    summary="Readiness: the database answers (no auth).",
    responses={503: ERRORS[503]},
)
async def healthz(db: Db) -> dict[str, str]:
    async with db.pool.connection(timeout=5) as conn:
        await conn.execute("SELECT 1")
    return {"status": "ok"}
