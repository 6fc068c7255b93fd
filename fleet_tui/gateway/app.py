"""The reference gateway: FastAPI routes of DESIGN.md "Gateway API, version 1" on PostgreSQL.

Every route that touches tenant rows runs in one transaction as the role `fleet_gateway_app`
(no BYPASSRLS, not the owner) with `fleet.tenant` set to the one tenant it serves: row-level
security then hides every other tenant's rows even from a query that forgets to filter. Token
lookups (table `fleet.tokens`, not visible to that role) run as the connecting user.

Bodies are bounded (`max_body`, 4 MiB by default: 413); every error is
`{"error": {"code", "message"}}`. Tokens are never logged: uvicorn's access log prints the
request line only, and no route echoes a header.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleet_tui.gateway.db import APP_ROLE, token_digest
from fleet_tui.gateway.schemas import (
    BUDGETS_SCHEMA,
    SNAPSHOT_SCHEMA,
    Accepted,
    BudgetsAnswer,
    BudgetsPolicyV1,
    ErrorAnswer,
    HeartbeatV1,
    PsDocumentV1,
    SnapshotAnswer,
    SpendRecordV1,
    UsageSampleV1,
)

API = "/api/fleet/v1"
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorAnswer, "description": "missing, unknown or revoked token"},
    403: {"model": ErrorAnswer, "description": "scope missing, or tenant outside the token"},
    413: {"model": ErrorAnswer, "description": "body larger than the limit (4 MiB)"},
    422: {"model": ErrorAnswer, "description": "invalid request"},
    503: {"model": ErrorAnswer, "description": "the database is unavailable"},
}
MAX_BODY = 4 * 1024 * 1024
MAX_BATCH = 5000
RETENTION_DAYS = 14.0
log = logging.getLogger("fleet_tui.gateway")

Scope = str
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class ApiError(Exception):
    """An answer in the error envelope."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _envelope(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers or None
    )


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Grant:
    """What a valid token allows."""

    token_id: str
    tenants: frozenset[str]
    scopes: frozenset[str]

    def require(self, scope: Scope, tenants: set[str]) -> None:
        if scope not in self.scopes:
            raise ApiError(403, "forbidden", f"this token lacks the {scope!r} scope")
        outside = sorted(tenants - self.tenants)
        if outside:
            raise ApiError(403, "forbidden", f"tenant {outside[0]!r} is outside this token")

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
    """The request's grant from its bearer token (401 when missing, unknown or revoked)."""
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise ApiError(401, "unauthorized", "missing bearer token")
    pool: AsyncConnectionPool = request.app.state.pool
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT token_id, tenants, scopes FROM fleet.tokens"
                " WHERE token_hash = %s AND revoked_at IS NULL",
                [token_digest(creds.credentials)],
            )
        ).fetchone()
    if row is None:
        raise ApiError(401, "unauthorized", "unknown or revoked token")
    return Grant(str(row[0]), frozenset(row[1]), frozenset(row[2]))


Auth = Annotated[Grant, Depends(grant)]


class _DocCache:
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


class _BodyLimit:
    """Pure ASGI middleware: 413 for a body over the limit (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await self._too_large(scope, receive, send)
                    return
        seen = 0
        too_large = False
        started = False

        async def limited() -> Any:
            nonlocal seen, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    too_large = True  # the app sees the client go away; we answer 413
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Any) -> None:
            nonlocal started
            if too_large:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await self._too_large(scope, receive, send)

    async def _too_large(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        answer = _envelope(413, "payload_too_large", f"the body is larger than {self.limit} bytes")
        await answer(scope, receive, send)


_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _nul_free_json(text: str) -> str:
    """JSON text with every NUL escape (`\\u0000`) made U+FFFD: PostgreSQL's json, jsonb and
    text cannot hold NUL, and untrusted agent text may carry one. An escaped backslash followed
    by `u0000` is left alone."""
    return _NUL_ESCAPE.sub(r"\1\\ufffd", text) if "u0000" in text else text


def _nul_free(text: str | None) -> str | None:
    return text.replace("\x00", "\ufffd") if text else text


def _digest(record: dict[str, Any]) -> bytes:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).digest()


def _as_list(body: Any) -> list[Any]:
    return body if isinstance(body, list) else [body]


def create_app(
    dsn: str,
    *,
    pool_min: int = 2,
    pool_max: int = 10,
    max_body: int = MAX_BODY,
    retention_days: float = RETENTION_DAYS,
) -> FastAPI:
    """The gateway app on the (already migrated) database `dsn`."""
    # a request waits at most 5 s for a connection, then gets 503 (the database is down)
    pool = AsyncConnectionPool(
        dsn,
        min_size=pool_min,
        max_size=pool_max,
        open=False,
        timeout=5.0,
        kwargs={"autocommit": True, "connect_timeout": 5},
    )

    async def prune_forever() -> None:
        while True:
            with contextlib.suppress(psycopg.Error, asyncio.TimeoutError):
                async with pool.connection(timeout=10) as conn:
                    await conn.execute(
                        "DELETE FROM fleet.heartbeat_changes"
                        " WHERE ts < now() - make_interval(secs => %s)",
                        [retention_days * 86400],
                    )
            await asyncio.sleep(600)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True, timeout=30)
        pruner = asyncio.create_task(prune_forever())
        try:
            yield
        finally:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
            await pool.close()

    app = FastAPI(
        title="Mosaic Fleet gateway (reference)",
        version="1",
        summary="The cross-host register of Mosaic Fleet: DESIGN.md 'Gateway API, version 1'.",
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{API}/openapi.json",
        lifespan=lifespan,
    )
    app.state.pool = pool
    docs = _DocCache()
    app.add_middleware(_BodyLimit, limit=max_body)

    # -- errors: always the envelope ------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, exc: ApiError) -> JSONResponse:
        extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        return _envelope(exc.status, exc.code, exc.message, **extra)

    async def _refusal(request: Request) -> ApiError | None:
        """Why a request is refused whatever its body says (401, 403), or None.

        FastAPI judges a body (JSON decode, shape) before the route runs; auth comes first:
        a caller without a valid token, or without the route's scope, learns nothing about
        what its body should have been."""
        path = request.url.path
        if not path.startswith(f"{API}/") or path == f"{API}/openapi.json":
            return None
        try:
            g = await grant(request, await _bearer(request))
        except ApiError as exc:
            return exc
        except psycopg.Error:
            return None  # cannot tell: the validation error stands
        scope = "read" if request.method in ("GET", "HEAD") else "publish"
        if scope not in g.scopes:
            return ApiError(403, "forbidden", f"this token lacks the {scope!r} scope")
        return None

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        refused = await _refusal(request)
        if refused is not None:
            return await _api_error(request, refused)
        errors = exc.errors()
        parts = []
        for err in errors[:3]:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
            parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        return _envelope(422, "validation_error", "; ".join(parts) + more)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404:
            message = "no such route"
        return _envelope(exc.status_code, code, message)

    @app.exception_handler(psycopg.DataError)
    async def _unstorable(_r: Request, exc: Exception) -> JSONResponse:
        # e.g. text holding NUL (\u0000), which PostgreSQL text and jsonb cannot store
        first = (str(exc).strip().splitlines() or ["invalid value"])[0][:200]
        return _envelope(422, "validation_error", f"a value cannot be stored: {first}")

    @app.exception_handler(psycopg.OperationalError)
    async def _db_down(_r: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc).__name__)
        return _envelope(503, "unavailable", "the register's database is unavailable")

    @app.exception_handler(Exception)
    async def _internal(_r: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__)
        return _envelope(500, "internal", "internal error")

    # -- auth -------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def as_tenant(
        tenant: str, *, superseded_soon: bool = False
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A transaction as the app role, seeing only `tenant`'s rows (row-level security).

        `superseded_soon`: the rows written are latest-state (a host's snapshot, an agent's
        heartbeat) that the publisher sends again within seconds, so the commit does not wait
        for the WAL flush (`synchronous_commit = off`: a database crash may lose the last
        fraction of a second of them, never corrupt anything). Usage and spend records, which a
        publisher forgets once accepted, keep the durable commit.
        """
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT set_config('role', %s, true), set_config('fleet.tenant', %s, true),"
                " set_config('synchronous_commit',"
                " CASE WHEN %s THEN 'off' ELSE current_setting('synchronous_commit') END, true)",
                [APP_ROLE, tenant, superseded_soon],
            )
            yield conn

    async def _insert_ledger(
        table: str, columns: list[tuple[str, str, Callable[[Any], Any]]], records: list[Any]
    ) -> int:
        """Append-only records (usage samples, spend) of each tenant in one statement, the
        whole record kept as JSON; a record sent again (same digest) is not stored twice.
        Returns how many were new."""
        names = ", ".join(name for name, _, _ in columns)
        arrays = ", ".join(f"%s::{pgtype}[]" for _, pgtype, _ in columns)
        sql = (
            f"INSERT INTO fleet.{table} (tenant_id, {names}, digest, record)"  # names: constants
            f" SELECT %s, * FROM unnest({arrays}, %s::bytea[], %s::jsonb[])"
            " ON CONFLICT (tenant_id, digest) DO NOTHING"
        )
        stored = 0
        for tenant, group in _group(records).items():
            dumped = [r.model_dump(mode="json") for r in group]
            params: list[Any] = [tenant]
            params += [[get(r) for r in group] for _, _, get in columns]
            params += [
                [_digest(d) for d in dumped],
                [_nul_free_json(json.dumps(d)) for d in dumped],
            ]
            async with as_tenant(tenant) as conn:
                cur = await conn.execute(sql, params)
                stored += cur.rowcount
        return stored

    # -- routes -----------------------------------------------------------------------------------

    @app.get(
        "/healthz",
        tags=["health"],
        summary="Readiness: the database answers (no auth).",
        responses={503: _ERRORS[503]},
    )
    async def healthz() -> dict[str, str]:
        async with pool.connection(timeout=5) as conn:
            await conn.execute("SELECT 1")
        return {"status": "ok"}

    @app.get(
        f"{API}/snapshot",
        responses=_ERRORS,
        response_model=SnapshotAnswer,
        tags=["snapshot"],
        summary="The latest ps v1 document of every host of a tenant (scope read).",
    )
    async def get_snapshot(
        g: Auth, tenant: Annotated[str | None, Query(max_length=128)] = None
    ) -> Response:
        t = g.pick(tenant)
        g.require("read", {t})
        async with as_tenant(t) as conn:
            # the row versions first (cheap); documents only for hosts whose version changed
            heads = await (
                await conn.execute(
                    "SELECT host, tenant_id, observed_at, received_at, xmin::text"
                    " FROM fleet.host_snapshots WHERE tenant_id = %s ORDER BY host",
                    [t],
                )
            ).fetchall()
            cached: dict[str, str] = {}
            stale: list[str] = []
            for h, _t, _o, _r, version in heads:
                doc = docs.get(t, h, version)
                if doc is None:
                    stale.append(h)
                else:
                    cached[h] = doc
            fresh: dict[str, tuple[Any, ...]] = {}
            if stale:
                for row in await (
                    await conn.execute(
                        "SELECT host, tenant_id, observed_at, received_at, xmin::text, ps::text"
                        " FROM fleet.host_snapshots WHERE tenant_id = %s AND host = ANY(%s)",
                        [t, stale],
                    )
                ).fetchall():
                    fresh[row[0]] = row
                    docs.put(t, row[0], row[4], row[5])
        rows = []
        for head in heads:
            row = fresh.get(head[0])
            if row is None:
                if head[0] not in cached:  # deleted between the two reads
                    continue
                row = (*head, cached[head[0]])
            rows.append(row[:4] + row[5:])
        hosts = ",".join(
            f'{{"host":{json.dumps(h)},"tenant_id":{json.dumps(tid)},'
            f'"observed_at":"{_ts(obs)}","received_at":"{_ts(rec)}","ps":{ps}}}'
            for h, tid, obs, rec, ps in rows
        )
        body = (
            f'{{"schema":"{SNAPSHOT_SCHEMA}","tenant_id":{json.dumps(t)},'
            f'"generated_at":"{_ts(datetime.now(UTC))}","hosts":[{hosts}]}}'
        )
        return Response(body.encode(), media_type="application/json")

    @app.post(
        f"{API}/snapshot",
        responses=_ERRORS,
        response_model=Accepted,
        tags=["snapshot"],
        summary="Publish one host's ps v1 document (scope publish).",
        description="The tenant is the document's `tenant_id`, else its agents'. Every agent "
        "must carry that tenant and the document's `host` (else 422). A document older than "
        "the stored one (by `generated_at`) is accepted but not stored.",
    )
    async def post_snapshot(doc: PsDocumentV1, request: Request, g: Auth) -> Accepted:
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
        (tenant,) = tenants
        raw = _nul_free_json((await request.body()).decode("utf-8"))
        async with as_tenant(tenant, superseded_soon=True) as conn:
            cur = await conn.execute(
                "INSERT INTO fleet.host_snapshots (tenant_id, host, observed_at, agents, ps)"
                " VALUES (%s, %s, %s, %s, %s::jsonb)"
                " ON CONFLICT (tenant_id, host) DO UPDATE SET observed_at = EXCLUDED.observed_at,"
                " received_at = now(), agents = EXCLUDED.agents, ps = EXCLUDED.ps"
                " WHERE host_snapshots.observed_at <= EXCLUDED.observed_at"
                " OR host_snapshots.observed_at > now() + interval '5 minutes'",
                [tenant, doc.host, doc.generated_at, len(doc.agents), raw],
            )
            stored = cur.rowcount
        return Accepted(accepted=1, stored=stored)

    @app.post(
        f"{API}/heartbeats",
        responses=_ERRORS,
        response_model=Accepted,
        tags=["heartbeats"],
        summary="Publish heartbeat v1 records: one object, or a list (batch, at most 5000).",
        description="The register keeps the latest heartbeat per agent (an older one than "
        "stored is accepted, not stored) and one history row per change of state.",
    )
    async def post_heartbeats(body: HeartbeatV1 | list[HeartbeatV1], g: Auth) -> Accepted:
        records = _as_list(body)
        _bounded(records)
        g.require("publish", {r.tenant_id for r in records})
        stored = 0
        for tenant, group in _group(records).items():
            async with as_tenant(tenant, superseded_soon=True) as conn:
                stored += await _store_heartbeats(conn, tenant, group)
        return Accepted(accepted=len(records), stored=stored)

    @app.post(
        f"{API}/usage",
        responses=_ERRORS,
        response_model=Accepted,
        tags=["budgets"],
        summary="Publish usage samples: a list (or one object). Resent samples are ignored.",
    )
    async def post_usage(body: list[UsageSampleV1] | UsageSampleV1, g: Auth) -> Accepted:
        records = _as_list(body)
        _bounded(records)
        g.require("publish", {r.tenant_id for r in records})
        stored = await _insert_ledger(
            "usage_samples",
            [
                ("host", "text", lambda r: r.host),
                ("account", "text", lambda r: r.account),
                ("window_name", "text", lambda r: r.window),
                ("window_minutes", "int", lambda r: r.window_minutes),
                ("used_percent", "float8", lambda r: r.used_percent),
                ("resets_at", "timestamptz", lambda r: r.resets_at),
                ("reset_confidence", "text", lambda r: _nul_free(r.reset_confidence)),
                ("observed_at", "timestamptz", lambda r: r.observed_at),
                ("source", "text", lambda r: _nul_free(r.source)),
            ],
            records,
        )
        return Accepted(accepted=len(records), stored=stored)

    @app.post(
        f"{API}/spend",
        responses=_ERRORS,
        response_model=Accepted,
        tags=["budgets"],
        summary="Publish spend records: a list (or one object). Resent records are ignored.",
    )
    async def post_spend(body: list[SpendRecordV1] | SpendRecordV1, g: Auth) -> Accepted:
        records = _as_list(body)
        _bounded(records)
        g.require("publish", {r.tenant_id for r in records})
        stored = await _insert_ledger(
            "spend_records",
            [
                ("host", "text", lambda r: r.host),
                ("ts", "timestamptz", lambda r: r.ts),
                ("agent", "text", lambda r: _nul_free(r.agent)),
                ("account", "text", lambda r: r.account),
                ("model", "text", lambda r: _nul_free(r.model)),
                ("input_tokens", "bigint", lambda r: r.input_tokens),
                ("output_tokens", "bigint", lambda r: r.output_tokens),
                ("cost_usd", "float8", lambda r: r.cost_usd),
            ],
            records,
        )
        return Accepted(accepted=len(records), stored=stored)

    @app.put(
        f"{API}/budgets",
        responses=_ERRORS,
        response_model=Accepted,
        tags=["budgets"],
        summary="Publish the tenant's budgets.yaml v1 as JSON (scope publish); latest wins.",
    )
    async def put_budgets(policy: BudgetsPolicyV1, g: Auth) -> Accepted:
        g.require("publish", {policy.tenant_id})
        async with as_tenant(policy.tenant_id) as conn:
            await conn.execute(
                "INSERT INTO fleet.budget_policies (tenant_id, policy) VALUES (%s, %s::jsonb)"
                " ON CONFLICT (tenant_id) DO UPDATE SET policy = EXCLUDED.policy,"
                " received_at = now()",
                [policy.tenant_id, _nul_free_json(policy.model_dump_json())],
            )
        return Accepted(accepted=1, stored=1)

    @app.get(
        f"{API}/budgets",
        responses=_ERRORS,
        response_model=BudgetsAnswer,
        tags=["budgets"],
        summary="Accounts, policy, latest usage sample per account window, month-to-date "
        "spend (scope read).",
    )
    async def get_budgets(
        g: Auth, tenant: Annotated[str | None, Query(max_length=128)] = None
    ) -> Response:
        t = g.pick(tenant)
        g.require("read", {t})
        now = datetime.now(UTC)
        since = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        async with as_tenant(t) as conn:
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
        policy: dict[str, Any] | None = prow[0] if prow else None
        by_id: dict[str, dict[str, Any]] = {}
        for entry in (policy or {}).get("accounts", []):
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                by_id.setdefault(entry["id"], entry)
        names = list(by_id)
        windows: dict[str, list[dict[str, Any]]] = {}
        for account, record, received in samples:
            windows.setdefault(account, []).append({**record, "received_at": _ts(received)})
        spent = {row[0]: row[1:] for row in spend}
        for name in [*windows, *spent]:
            if name not in names:
                names.append(name)
        accounts = []
        for name in names:
            cost, tin, tout, n = spent.get(name, (0.0, 0, 0, 0))
            accounts.append(
                {
                    "account": name,
                    "policy": by_id.get(name),
                    "windows": windows.get(name, []),
                    "spend": {
                        "since": _ts(since),
                        "cost_usd": float(cost),
                        "input_tokens": int(tin),
                        "output_tokens": int(tout),
                        "records": int(n),
                    },
                }
            )
        answer = {
            "schema": BUDGETS_SCHEMA,
            "tenant_id": t,
            "generated_at": _ts(now),
            "policy": policy,
            "policy_received_at": _ts(prow[1]) if prow else None,
            "accounts": accounts,
        }
        return Response(json.dumps(answer).encode(), media_type="application/json")

    return app


def _bounded(records: list[Any]) -> None:
    if not records:
        raise ApiError(422, "validation_error", "body: an empty list")
    if len(records) > MAX_BATCH:
        raise ApiError(422, "validation_error", f"body: more than {MAX_BATCH} records")


def _group(records: list[Any]) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for r in records:
        groups.setdefault(r.tenant_id, []).append(r)
    return groups


async def _store_heartbeats(
    conn: psycopg.AsyncConnection[Any], tenant: str, group: list[HeartbeatV1]
) -> int:
    """Upsert the latest heartbeat per agent; record each change of state. Returns rows stored."""
    group = sorted(group, key=lambda r: r.ts)
    keys = sorted({(r.host, r.agent) for r in group})
    prev_rows = await (
        await conn.execute(
            "SELECT host, agent, state, ts FROM fleet.heartbeats"
            " WHERE tenant_id = %s AND (host, agent) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[])) FOR UPDATE",
            [tenant, [k[0] for k in keys], [k[1] for k in keys]],
        )
    ).fetchall()
    prev: dict[tuple[str, str], tuple[str | None, datetime | None]] = {
        (h, a): (s, ts) for h, a, s, ts in prev_rows
    }
    changes: list[tuple[str, str, datetime, int, str, str | None, str | None]] = []
    latest: dict[tuple[str, str], HeartbeatV1] = {}
    for r in group:
        key = (r.host, r.agent)
        state, ts = prev.get(key, (None, None))
        if ts is None or r.ts > ts:
            if r.state.value != state:
                changes.append(
                    (r.host, r.agent, r.ts, r.seq, r.state.value, state, _nul_free(r.detail))
                )
            prev[key] = (r.state.value, r.ts)
        latest[key] = r
    if changes:
        await conn.execute(
            "INSERT INTO fleet.heartbeat_changes"
            " (tenant_id, host, agent, ts, seq, state, prev_state, detail)"
            " SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::bigint[],"
            " %s::text[], %s::text[], %s::text[])",
            [tenant, *(list(col) for col in zip(*changes, strict=True))],
        )
    rows = list(latest.values())
    cur = await conn.execute(
        "INSERT INTO fleet.heartbeats AS h (tenant_id, host, agent, seq, ts, state, record)"
        " SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[],"
        " %s::text[], %s::jsonb[])"
        " ON CONFLICT (tenant_id, host, agent) DO UPDATE SET seq = EXCLUDED.seq,"
        " ts = EXCLUDED.ts, state = EXCLUDED.state, record = EXCLUDED.record, received_at = now()"
        " WHERE h.ts <= EXCLUDED.ts OR h.ts > now() + interval '5 minutes'",
        [
            tenant,
            [r.host for r in rows],
            [r.agent for r in rows],
            [r.seq for r in rows],
            [r.ts for r in rows],
            [r.state.value for r in rows],
            [_nul_free_json(r.model_dump_json()) for r in rows],
        ],
    )
    return cur.rowcount
