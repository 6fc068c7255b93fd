"""The gateway's errors: one envelope, `{"error": {"code", "message"}}` (and `items` for a batch's
`invalid_items`), for every answer that is not a success, whatever raised it.

`ApiError` is what the routes and their dependencies raise; `install_handlers` makes every other
failure (a query parameter FastAPI refuses, an unknown route, a value PostgreSQL cannot store, the
database down, a bug) the same envelope, never a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleet_tui.server.schemas import ErrorAnswer, InvalidItem

API = "/api/fleet/v1"
ERRORS: dict[int | str, dict[str, Any]] = {
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
"""The error answers of every API route, for the OpenAPI document."""
log = logging.getLogger("fleet_tui.server")


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


def envelope(
    status: int,
    code: str,
    message: str,
    items: list[InvalidItem] | None = None,
    **headers: str,
) -> JSONResponse:
    """The error answer `{"error": {"code", "message"[, "items"]}}` with `headers`."""
    error: dict[str, object] = {"code": code, "message": message}
    if items is not None:
        error["items"] = [i.model_dump() for i in items]
    return JSONResponse({"error": error}, status_code=status, headers=headers or None)


async def _api_error(_r: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    return envelope(exc.status, exc.code, exc.message, exc.items, **extra, **exc.headers)


async def _invalid(_r: Request, exc: Exception) -> JSONResponse:
    # only query parameters: bodies are read by the routes (after the token is judged)
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    parts = []
    for err in errors[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return envelope(422, "validation_error", "; ".join(parts) + more)


async def _http(_r: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "error"
    if exc.status_code == 404:
        message = "no such route"
    return envelope(exc.status_code, code, message)


async def _unstorable(_r: Request, exc: Exception) -> JSONResponse:
    # e.g. text holding NUL (\u0000), which PostgreSQL text and jsonb cannot store
    first = (str(exc).strip().splitlines() or ["invalid value"])[0][:200]
    return envelope(422, "validation_error", f"a value cannot be stored: {first}")


async def _db_down(_r: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", type(exc).__name__)
    return envelope(503, "unavailable", "the register's database is unavailable")


async def _internal(_r: Request, exc: Exception) -> JSONResponse:
    log.error("internal error: %s", type(exc).__name__)
    return envelope(500, "internal", "internal error")


def install_handlers(app: FastAPI) -> None:
    """Answer every failure of `app` in the envelope."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(psycopg.DataError, _unstorable)
    app.add_exception_handler(psycopg.OperationalError, _db_down)
    app.add_exception_handler(Exception, _internal)
