"""HTTP plumbing shared by every router: the error shape (and its OpenAPI description), body limits,
pagination, shared query parameters."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pingpost import errors
from pingpost.timefmt import parse_rfc3339

log = structlog.get_logger("pingpost.http")


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: errors.PingpostError) -> Response:
    return ORJSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)


def validation_error(errs: Sequence[Any]) -> errors.PingpostError:
    """One PingpostError for pydantic/FastAPI validation errors: 400 for a body that is not a JSON
    object, else 422 naming each field (never echoing the value)."""
    problems = []
    for e in errs:
        where = tuple(e.get("loc", ()))
        if e.get("type") in ("json_invalid", "json_type") or (
            e.get("type") in ("model_attributes_type", "model_type") and where in (("body",), ())
        ):
            return errors.MalformedJson("the request body is not a JSON object")
        loc = [str(p) for p in where]
        if loc and loc[0] in ("body", "query", "path"):
            loc = loc[1:] or loc
        # Never echo pydantic's `input`: it may hold PII.
        problems.append({"field": ".".join(loc) or "body", "message": str(e.get("msg", "invalid"))})
    return errors.ValidationFailed(problems)


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    message: str
    details: dict[str, Any]


class ErrorOut(BaseModel):
    """Every refusal: a stable `code`, a message, and `details` (an object, never a submitted value);
    docs/protocol.md, Errors."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


# What each status means on any route; an operation adds its own cases (`refusals`).
_REFUSALS = {
    400: "The body is not a JSON object (`malformed_json`).",
    401: "Missing, unknown, revoked or wrong-kind key (`unauthorized`); checked before the body is read.",
    403: "Forbidden (`forbidden`).",
    404: "Not found (`not_found`; `details.resource`, `details.id`).",
    409: "Conflict with the current state.",
    410: "Gone.",
    413: "The body is over the size limit (`payload_too_large`).",
    422: "A field fails its rules (`validation_error`, `details.errors: [{field, message}]`).",
    429: "Rate limited (`rate_limited`, `details.limit_per_s`).",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}


# Partner endpoints and call events: the lead's fields are the vertical's, configured at run time.
RUNTIME_LEAD = (
    "`lead` holds the fields of the offer's vertical, which operators configure at run time "
    "(`/v1/admin/verticals`), so this document cannot list them: a lead that does not fit the "
    "vertical is refused with 422."
)


def refusals(*statuses: int | tuple[int, str], retry_after: tuple[int, ...] = ()) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of an operation's refusals, each with the one error shape: a status alone
    takes the general description, `(status, text)` says what it means on this operation; the statuses
    in `retry_after` carry that header."""
    out: dict[int | str, dict[str, Any]] = {}
    for item in statuses:
        status, text = item if isinstance(item, tuple) else (item, _REFUSALS[item])
        out[status] = {"model": ErrorOut, "description": text}
        if status in retry_after:
            out[status]["headers"] = _RETRY_AFTER
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.PingpostError)
    async def _pingpost(_: Request, exc: errors.PingpostError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        return error_response(validation_error(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request, headers.get("Allow"))
        return error_response(errors.PingpostError(str(exc.detail), code=code, status=exc.status_code, headers=headers))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        return unexpected_error_response(exc)


def allowed_methods(request: Request, first: str | None) -> str:
    """The `Allow` header of a 405 (RFC 9110): every method of the path. The router's own header (`first`)
    names only the first route it tried, and each method is its own route here; the OpenAPI document
    names them all (the ping fast path's route included)."""
    methods = {method.strip() for method in (first or "").split(",") if method.strip()}
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = "".join(
            "[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}/]+\})", template)
        )
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in operations}
    return ", ".join(sorted(methods))


def unexpected_error_response(exc: Exception) -> Response:
    """A 500 that says nothing about the failure (it may involve lead data); the log names its type."""
    log.error("unhandled_error", error_type=type(exc).__name__)
    return error_response(errors.PingpostError("internal error", code="internal_error", status=500))


async def read_body(scope: Scope, receive: Receive, max_bytes: int) -> bytes:
    """The whole request body, refused with 413 once it is over `max_bytes` (declared or streamed)."""
    if declared_too_large(scope, max_bytes):
        raise errors.PayloadTooLarge(f"request body over {max_bytes} bytes")
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise errors.PingpostError("client disconnected", code="client_disconnected", status=400)
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > max_bytes:
            raise errors.PayloadTooLarge(f"request body over {max_bytes} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413 (also chunked bodies) when the app reads them.

    The refusal waits for the first read so that each route checks its key first (an unknown key is
    401 whatever the body; docs/security.md); a declared length over the limit is refused then,
    before a byte of the body is read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.max_bytes
        declared_over = declared_too_large(scope, max_bytes)
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            if declared_over:
                raise errors.PayloadTooLarge(f"request body over {max_bytes} bytes")
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise errors.PayloadTooLarge(f"request body over {max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


def declared_too_large(scope: Scope, max_bytes: int) -> bool:
    """Whether the request's Content-Length says its body is over `max_bytes`."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return value.isdigit() and int(value) > max_bytes
    return False


class Page:
    """?limit= (1-500, default 50) and ?cursor= for every list."""

    def __init__(self, limit: int = Query(50, ge=1, le=500), cursor: str | None = Query(None, max_length=200)) -> None:
        self.limit = limit
        self.cursor = cursor


# A readable or generated resource id in a path (the admin and buyer APIs).
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
IdPath = Path(max_length=64, pattern=ID_PATTERN)


def time_query(name: str, description: str) -> Any:
    """An RFC 3339 time query parameter (`from`, `to`), read by `query_time`."""
    return Query(
        None,
        alias=name,
        max_length=40,
        description=f"{description} (RFC 3339)",
        json_schema_extra={"format": "date-time"},
    )


def query_time(value: str | None, name: str) -> int | None:
    """An RFC 3339 `from`/`to` query parameter in epoch milliseconds; 422 naming it when malformed."""
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise errors.ValidationFailed.one(name, "must be an RFC 3339 time") from None
