"""The reference gateway: FastAPI routes of DESIGN.md "Gateway API, version 1" on PostgreSQL.

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
import hashlib
import json
import logging
import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import psycopg
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleet_tui.server.db import APP_ROLE, token_digest
from fleet_tui.server.schemas import (
    BUDGETS_SCHEMA,
    SNAPSHOT_SCHEMA,
    Accepted,
    BudgetsAnswer,
    BudgetsPolicyV1,
    ErrorAnswer,
    HeartbeatV1,
    InvalidItem,
    PsDocumentV1,
    SnapshotAnswer,
    SpendRecordV1,
    UsageSampleV1,
)

API = "/api/fleet/v1"
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorAnswer, "description": "missing, unknown or revoked token"},
    403: {
        "model": ErrorAnswer,
        "description": "scope missing, or a tenant or host outside the token",
    },
    413: {
        "model": ErrorAnswer,
        "description": "body larger than the limit (4 MiB), or a tenant cap reached",
    },
    422: {
        "model": ErrorAnswer,
        "description": "invalid request; for a batch, code `invalid_items` names every "
        "invalid item and nothing of the batch is stored",
    },
    429: {
        "model": ErrorAnswer,
        "description": "too many failed tokens from this address (see Retry-After)",
    },
    503: {"model": ErrorAnswer, "description": "the database is unavailable"},
}
MAX_BODY = 4 * 1024 * 1024
MAX_BATCH = 5000
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
log = logging.getLogger("fleet_tui.server")

Scope = str
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class ApiError(Exception):
    """An answer in the error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        items: list[InvalidItem] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.items = items


def _envelope(
    status: int,
    code: str,
    message: str,
    items: list[InvalidItem] | None = None,
    **headers: str,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if items is not None:
        error["items"] = [i.model_dump() for i in items]
    return JSONResponse({"error": error}, status_code=status, headers=headers or None)


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


async def grant(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Grant:
    """The request's grant from its bearer token: 429 while its address has failed too often
    (no database lookup), 401 when missing, unknown or revoked. Runs before the body is read."""
    limiter: FailureLimiter = request.app.state.limiter
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
    pool: AsyncConnectionPool = request.app.state.pool
    async with pool.connection() as conn:
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


M = TypeVar("M", bound=BaseModel)
_SURROGATE_HINT = re.compile(r"\\u[dD][89a-fA-F]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _read_json(request: Request) -> tuple[Any, str]:
    """The body as (parsed JSON, its text): strict UTF-8, no NaN or Infinity (422 otherwise).

    Python's json module would let through what PostgreSQL and the other readers refuse: NaN,
    Infinity, and (from bytes) UTF-8-encoded surrogates; so the text is decoded strictly first.
    Lone surrogate escapes (`"\\ud800"`) are judged by `_unicode_error` per record."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            422, "validation_error", f"body: not valid UTF-8 (at byte {exc.start})"
        ) from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(
            422, "validation_error", f"body: not JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    except ValueError as exc:  # NaN/Infinity, an integer of more than 4300 digits
        raise ApiError(422, "validation_error", f"body: {str(exc)[:120]}") from None
    except RecursionError:
        raise ApiError(422, "validation_error", "body: nested too deeply") from None
    return data, text


def _bad_text(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where `value` holds a string that is not valid Unicode (a lone surrogate), or None."""
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _bad_text(key, (*path, str(key).encode("utf-8", "replace").decode()))
            if found is not None:
                return found
            found = _bad_text(item, (*path, str(key).encode("utf-8", "replace").decode()))
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _bad_text(item, (*path, i))
            if found is not None:
                return found
    return None


def _where(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path) or "body"


def _unicode_error(value: Any, text: str) -> str | None:
    """`"<field>: <why>"` when `value` (parsed from `text`) holds a lone surrogate, else None."""
    if not _SURROGATE_HINT.search(text):  # no surrogate escape at all: the usual, cheap case
        return None
    found = _bad_text(value)
    if found is None:
        return None
    return f"{_where(found)}: not valid Unicode (a lone surrogate)"


def _why(exc: ValidationError, *, most: int = 3) -> str:
    """`"<field>: <why>"` of a validation error (at most `most` of them)."""
    errors = exc.errors()
    parts = []
    for err in errors[:most]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - most} more)" if len(errors) > most else ""
    return "; ".join(parts) + more


def _record(model: type[M], value: Any, text: str) -> M:
    """One record of a body, or 422 naming the field."""
    bad = _unicode_error(value, text)
    if bad is not None:
        raise ApiError(422, "validation_error", bad)
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ApiError(422, "validation_error", _why(exc)) from None


def _records(model: type[M], body: Any, text: str) -> list[M]:
    """The records of a batch body (a list, or one object).

    One object: 422 `validation_error` naming the field. A list: every item is judged; if any
    is invalid, 422 `invalid_items` naming each one by index, and nothing is stored."""
    if isinstance(body, dict):
        return [_record(model, body, text)]
    if not isinstance(body, list):
        raise ApiError(422, "validation_error", "body: expected an object or a list of objects")
    if not body:
        raise ApiError(422, "validation_error", "body: an empty list")
    if len(body) > MAX_BATCH:
        raise ApiError(422, "validation_error", f"body: more than {MAX_BATCH} records")
    check_unicode = _SURROGATE_HINT.search(text) is not None
    records: list[M] = []
    invalid: list[InvalidItem] = []
    for i, item in enumerate(body):
        found = _bad_text(item) if check_unicode else None
        if found is not None:
            why = f"{_where(found)}: not valid Unicode (a lone surrogate)"
            invalid.append(InvalidItem(index=i, message=why))
            continue
        try:
            records.append(model.model_validate(item))
        except ValidationError as exc:
            invalid.append(InvalidItem(index=i, message=_why(exc, most=1)))
    if invalid:
        raise ApiError(
            422,
            "invalid_items",
            f"{len(invalid)} of {len(body)} items invalid",
            items=invalid,
        )
    return records


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` describing a JSON body the route reads itself (after auth)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _one_or_batch(model: type[BaseModel]) -> dict[str, Any]:
    return _body_doc(
        {
            "anyOf": [
                _ref(model),
                {"type": "array", "items": _ref(model), "minItems": 1, "maxItems": MAX_BATCH},
            ]
        }
    )


_BODY_MODELS: list[type[BaseModel]] = [
    PsDocumentV1,
    HeartbeatV1,
    UsageSampleV1,
    SpendRecordV1,
    BudgetsPolicyV1,
]


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
    # a request waits at most 5 s for a connection, then gets 503 (the database is down)
    pool = AsyncConnectionPool(
        dsn,
        min_size=pool_min,
        max_size=pool_max,
        open=False,
        timeout=5.0,
        kwargs={"autocommit": True, "connect_timeout": 5},
    )
    host_retention_s = host_retention_days * 86400

    async def prune_forever() -> None:
        while True:
            with contextlib.suppress(psycopg.Error, asyncio.TimeoutError):
                async with pool.connection(timeout=10) as conn:
                    await conn.execute(
                        "DELETE FROM fleet.heartbeat_changes"
                        " WHERE ts < now() - make_interval(secs => %s)",
                        [retention_days * 86400],
                    )
                    for table in ("host_snapshots", "heartbeats"):  # silent hosts, agents
                        await conn.execute(
                            f"DELETE FROM fleet.{table}"  # table: a constant
                            " WHERE received_at < now() - make_interval(secs => %s)",
                            [host_retention_s],
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
    app.state.limiter = FailureLimiter(auth_failures, auth_window_s)
    docs = _DocCache()
    app.add_middleware(_BodyLimit, limit=max_body)

    generated_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document plus the record schemas of the bodies the routes read themselves
        (after judging the token, so FastAPI does not see them)."""
        if app.openapi_schema:
            return app.openapi_schema
        doc = generated_openapi()
        _, defs = models_json_schema(
            [(m, "validation") for m in _BODY_MODELS],
            ref_template="#/components/schemas/{model}",
        )
        doc.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        return doc

    app.openapi = openapi  # type: ignore[method-assign]

    # -- errors: always the envelope ------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, exc: ApiError) -> JSONResponse:
        extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        return _envelope(exc.status, exc.code, exc.message, exc.items, **extra, **exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        # only query parameters: bodies are read by the routes (after the token is judged)
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

    async def _publishable(request: Request, g: Grant, model: type[M]) -> list[M]:
        """The records of a publish body: scope first (before a byte is read), then the body,
        then the tenants and hosts the token may write."""
        g.require_scope("publish")
        body, text = await _read_json(request)
        records = _records(model, body, text)
        g.require("publish", {r.tenant_id for r in records})  # type: ignore[attr-defined]
        g.require_hosts({r.host for r in records})  # type: ignore[attr-defined]
        return records

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
        description="Hosts heard from within the host retention (7 days by default). Each "
        "host carries `received_at` (the gateway's clock when stored) and `age_s` (seconds "
        f"since, at this answer). Hosts past {ANSWER_CAP >> 20} MiB of documents are left out "
        "and named in `omitted_hosts` (only with the tenant caps raised or data older than "
        "them).",
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
                    "SELECT host, tenant_id, observed_at, received_at, xmin::text, ps_bytes,"
                    " greatest(0, extract(epoch FROM clock_timestamp() - received_at))::float8"
                    " FROM fleet.host_snapshots WHERE tenant_id = %s"
                    " AND received_at >= now() - make_interval(secs => %s) ORDER BY host",
                    [t, host_retention_s],
                )
            ).fetchall()
            kept: list[tuple[Any, ...]] = []
            omitted: list[str] = []
            size = 0
            for head in heads:
                size += int(head[5])
                if size > answer_cap:
                    omitted.append(head[0])
                    size -= int(head[5])
                else:
                    kept.append(head)
            heads = kept
            cached: dict[str, str] = {}
            stale: list[str] = []
            for h, _t, _o, _r, version, _b, _a in heads:
                doc = docs.get(t, h, version)
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
                    docs.put(t, host, version, text)
        parts = []
        for h, tid, obs, rec, _v, _b, age in heads:
            ps = fresh.get(h, cached.get(h))
            if ps is None:  # deleted between the two reads
                continue
            parts.append(
                f'{{"host":{json.dumps(h)},"tenant_id":{json.dumps(tid)},'
                f'"observed_at":"{_ts(obs)}","received_at":"{_ts(rec)}",'
                f'"age_s":{round(float(age), 3)},"ps":{ps}}}'
            )
        hosts = ",".join(parts)
        extra = f',"omitted_hosts":{json.dumps(omitted)}' if omitted else ""
        body = (
            f'{{"schema":"{SNAPSHOT_SCHEMA}","tenant_id":{json.dumps(t)},'
            f'"generated_at":"{_ts(datetime.now(UTC))}","hosts":[{hosts}]{extra}}}'
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
        "the stored one is accepted but not stored, unless the stored one was dated ahead of "
        "the gateway's clock when received (then the next one replaces it). Per tenant at "
        "most 64 hosts and 16 MiB of documents (413).",
        openapi_extra=_body_doc(_ref(PsDocumentV1)),
    )
    async def post_snapshot(request: Request, g: Auth) -> Accepted:
        g.require_scope("publish")
        body, text = await _read_json(request)
        if not isinstance(body, dict):
            raise ApiError(422, "validation_error", "body: expected a ps v1 object")
        doc = _record(PsDocumentV1, body, text)
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
        raw = _nul_free_json(text)
        size = len(raw.encode("utf-8"))
        async with as_tenant(tenant, superseded_soon=True) as conn:
            # one writer per tenant at a time: the caps below hold under concurrent hosts
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('fleet.host_snapshots'), hashtext(%s))",
                [tenant],
            )
            await conn.execute(
                "DELETE FROM fleet.host_snapshots WHERE tenant_id = %s"
                " AND received_at < now() - make_interval(secs => %s)",
                [tenant, host_retention_s],
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
            if not known and hosts >= max_hosts:
                raise ApiError(
                    413,
                    "cap_reached",
                    f"tenant {tenant!r} has {hosts} hosts, the cap of hosts per tenant "
                    f"({max_hosts}); a host silent for {host_retention_days:g} days is forgotten",
                )
            if int(total) - int(mine) + size > max_snapshot_bytes:
                raise ApiError(
                    413,
                    "cap_reached",
                    f"the snapshots of tenant {tenant!r} would take {int(total) - int(mine) + size}"
                    f" bytes, past the cap of {max_snapshot_bytes} bytes of snapshots per tenant",
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

    @app.post(
        f"{API}/heartbeats",
        responses=_ERRORS,
        response_model=Accepted,
        tags=["heartbeats"],
        summary="Publish heartbeat v1 records: one object, or a list (batch, at most 5000).",
        description="The register keeps the latest heartbeat per agent (an older one than "
        "stored is accepted, not stored, unless the stored one was dated ahead of the "
        "gateway's clock when received) and one history row per change of state. A batch "
        "with an invalid "
        "item is refused whole (422 `invalid_items`, naming each).",
        openapi_extra=_one_or_batch(HeartbeatV1),
    )
    async def post_heartbeats(request: Request, g: Auth) -> Accepted:
        records = await _publishable(request, g, HeartbeatV1)
        stored = 0
        for tenant, group in _group(records).items():
            async with as_tenant(tenant, superseded_soon=True) as conn:
                stored += await _store_heartbeats(
                    conn, tenant, group, max_rows=max_heartbeats, retention_s=host_retention_s
                )
        return Accepted(accepted=len(records), stored=stored)

    @app.post(
        f"{API}/usage",
        responses=_ERRORS,
        response_model=Accepted,
        tags=["budgets"],
        summary="Publish usage samples: a list (or one object). Resent samples are ignored.",
        description="A batch with an invalid item is refused whole (422 `invalid_items`, "
        "naming each by index); the publisher drops those and sends the rest again.",
        openapi_extra=_one_or_batch(UsageSampleV1),
    )
    async def post_usage(request: Request, g: Auth) -> Accepted:
        records = await _publishable(request, g, UsageSampleV1)
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
        description="A batch with an invalid item is refused whole (422 `invalid_items`, "
        "naming each by index); the publisher drops those and sends the rest again.",
        openapi_extra=_one_or_batch(SpendRecordV1),
    )
    async def post_spend(request: Request, g: Auth) -> Accepted:
        records = await _publishable(request, g, SpendRecordV1)
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
        description="Tenant-wide: a token bound to hosts may not write it (403).",
        openapi_extra=_body_doc(_ref(BudgetsPolicyV1)),
    )
    async def put_budgets(request: Request, g: Auth) -> Accepted:
        g.require_scope("publish")
        if g.hosts is not None:
            raise ApiError(
                403, "forbidden", "this token is bound to hosts; budgets are tenant-wide"
            )
        body, text = await _read_json(request)
        policy = _record(BudgetsPolicyV1, body, text)
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


def _group(records: list[Any]) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for r in records:
        groups.setdefault(r.tenant_id, []).append(r)
    return groups


async def _store_heartbeats(
    conn: psycopg.AsyncConnection[Any],
    tenant: str,
    group: list[HeartbeatV1],
    *,
    max_rows: int = MAX_HEARTBEATS,
    retention_s: float = HOST_RETENTION_DAYS * 86400,
) -> int:
    """Upsert the latest heartbeat per agent; record each change of state. Returns rows stored.

    A stored heartbeat dated ahead of its receipt (the host's clock ran fast) never holds back
    the ones received after it: those replace it, whatever their dates."""
    now = datetime.now(UTC)
    group = sorted(group, key=lambda r: r.ts)
    keys = sorted({(r.host, r.agent) for r in group})
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
    for r in group:
        key = (r.host, r.agent)
        state, ts, ahead = prev.get(key, (None, None, False))
        if ts is None or ahead or r.ts > ts:
            if r.state.value != state:
                changes.append(
                    (r.host, r.agent, r.ts, r.seq, r.state.value, state, _nul_free(r.detail))
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
            [_nul_free_json(r.model_dump_json()) for r in rows_now],
        ],
    )
    return cur.rowcount
