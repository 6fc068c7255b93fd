"""Request bodies of the gateway: bounded, strict JSON in valid Unicode, then records.

The routes read their bodies themselves, after the token and the scope are judged (FastAPI would
read them first). In order: the size (`BodyLimit`, 4 MiB by default: 413), strict JSON in valid
Unicode (invalid UTF-8, a lone surrogate escape, NaN or Infinity: 422, never 500), then its
records (422 naming the field; a batch names every invalid item and stores none of it), then
the tenants and hosts the token may write (403). Also: how those bodies are described in the
OpenAPI document, and the text PostgreSQL cannot hold (NUL) made storable.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet_tui.server.deps import Grant
from fleet_tui.server.errors import ApiError, envelope
from fleet_tui.server.schemas import (
    BudgetsPolicyV1,
    HeartbeatV1,
    InvalidItem,
    PsDocumentV1,
    SpendRecordV1,
    UsageSampleV1,
)

MAX_BODY = 4 * 1024 * 1024
MAX_BATCH = 5000

M = TypeVar("M", bound=BaseModel)
P = TypeVar("P", HeartbeatV1, UsageSampleV1, SpendRecordV1)
"""A record a batch route publishes: it names its tenant and host."""


class BodyLimit:
    """Pure ASGI middleware: 413 for a body over the limit (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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

        async def limited() -> Message:
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

        async def guarded(message: Message) -> None:
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

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = envelope(413, "payload_too_large", f"the body is larger than {self.limit} bytes")
        await answer(scope, receive, send)


_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def nul_free_json(text: str) -> str:
    """JSON text with every NUL escape (`\\u0000`) made U+FFFD: PostgreSQL's json, jsonb and
    text cannot hold NUL, and untrusted agent text may carry one. An escaped backslash followed
    by `u0000` is left alone."""
    return _NUL_ESCAPE.sub(r"\1\\ufffd", text) if "u0000" in text else text


def nul_free(text: str | None) -> str | None:
    return text.replace("\x00", "\ufffd") if text else text


def digest(record: dict[str, object]) -> bytes:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).digest()


_SURROGATE_HINT = re.compile(r"\\u[dD][89a-fA-F]")


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


async def read_json(request: Request) -> tuple[object, str]:
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
        data: object = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(
            422, "validation_error", f"body: not JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    except ValueError as exc:  # NaN/Infinity, an integer of more than 4300 digits
        raise ApiError(422, "validation_error", f"body: {str(exc)[:120]}") from None
    except RecursionError:
        raise ApiError(422, "validation_error", "body: nested too deeply") from None
    return data, text


def _bad_text(value: object, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
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


def _unicode_error(value: object, text: str) -> str | None:
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


def record(model: type[M], value: object, text: str) -> M:
    """One record of a body, or 422 naming the field."""
    bad = _unicode_error(value, text)
    if bad is not None:
        raise ApiError(422, "validation_error", bad)
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ApiError(422, "validation_error", _why(exc)) from None


def records(model: type[M], body: object, text: str) -> list[M]:
    """The records of a batch body (a list, or one object).

    One object: 422 `validation_error` naming the field. A list: every item is judged; if any
    is invalid, 422 `invalid_items` naming each one by index, and nothing is stored."""
    if isinstance(body, dict):
        return [record(model, body, text)]
    if not isinstance(body, list):
        raise ApiError(422, "validation_error", "body: expected an object or a list of objects")
    if not body:
        raise ApiError(422, "validation_error", "body: an empty list")
    if len(body) > MAX_BATCH:
        raise ApiError(422, "validation_error", f"body: more than {MAX_BATCH} records")
    check_unicode = _SURROGATE_HINT.search(text) is not None
    valid: list[M] = []
    invalid: list[InvalidItem] = []
    for i, item in enumerate(body):
        found = _bad_text(item) if check_unicode else None
        if found is not None:
            why = f"{_where(found)}: not valid Unicode (a lone surrogate)"
            invalid.append(InvalidItem(index=i, message=why))
            continue
        try:
            valid.append(model.model_validate(item))
        except ValidationError as exc:
            invalid.append(InvalidItem(index=i, message=_why(exc, most=1)))
    if invalid:
        raise ApiError(
            422,
            "invalid_items",
            f"{len(invalid)} of {len(body)} items invalid",
            items=invalid,
        )
    return valid


async def publishable(request: Request, g: Grant, model: type[P]) -> list[P]:
    """The records of a publish body: scope first (before a byte is read), then the body,
    then the tenants and hosts the token may write."""
    g.require_scope("publish")
    body, text = await read_json(request)
    found = records(model, body, text)
    g.require("publish", {r.tenant_id for r in found})
    g.require_hosts({r.host for r in found})
    return found


def group(found: list[P]) -> dict[str, list[P]]:
    """Records by tenant, in order."""
    groups: dict[str, list[P]] = {}
    for r in found:
        groups.setdefault(r.tenant_id, []).append(r)
    return groups


# -- the bodies in the OpenAPI document -----------------------------------------------------------


def ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` describing a JSON body the route reads itself (after auth)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def one_or_batch(model: type[BaseModel]) -> dict[str, Any]:
    return body_doc(
        {
            "anyOf": [
                ref(model),
                {"type": "array", "items": ref(model), "minItems": 1, "maxItems": MAX_BATCH},
            ]
        }
    )


BODY_MODELS: list[type[BaseModel]] = [
    PsDocumentV1,
    HeartbeatV1,
    UsageSampleV1,
    SpendRecordV1,
    BudgetsPolicyV1,
]
"""The records of the bodies the routes read themselves, added to the OpenAPI document."""
