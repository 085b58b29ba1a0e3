"""The console's HTTP plumbing: templates, the route class that turns a missing session into a 303
and errors into pages, the session and CSRF checks, urlencoded forms, money and time formatting."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode
from weakref import WeakKeyDictionary

import pydantic
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from pingpost import actors, errors
from pingpost.console.sessions import COOKIE, ConsoleSession, LoginThrottle, csrf_ok, current
from pingpost.fields import MAX_CENTS
from pingpost.services import services
from pingpost.timefmt import parse_rfc3339

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
_SESSION = "pingpost.console_session"
M = TypeVar("M", bound=pydantic.BaseModel)


class LoginRequired(Exception):
    """No live session: the route answers 303 to the sign-in page."""


class Refused(Exception):
    """A page this session may not see (403), or a state-changing request without a valid CSRF token."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConsoleRoute(APIRoute):
    """Console routes answer HTML: 303 to /console/login without a session, an error page otherwise."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def html_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                if request.headers.get("hx-request"):  # a live part's poll: the whole page goes to sign-in
                    return Response(status_code=200, headers={"HX-Redirect": "/console/login"})
                return RedirectResponse("/console/login", status_code=303)
            except Refused as exc:
                return error_page(request, 403, exc.message)
            except errors.PingpostError as exc:
                return error_page(request, exc.status, exc.message)
            except RequestValidationError as exc:  # a malformed query or path value
                fields = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors())
                return error_page(request, 422, f"not a valid value: {fields or 'the request'}")

        return html_errors


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    session: ConsoleSession | None = request.scope.get(_SESSION)
    return templates.TemplateResponse(
        request, "error.html", {"session": session, "status": status, "message": message}, status_code=status
    )


async def any_session(request: Request) -> ConsoleSession:
    """The request's live session (a dependency), or LoginRequired."""
    found = request.scope.get(_SESSION)
    if found is None:
        found = await current(services(request).store, request.cookies.get(COOKIE, ""))
        if found is None:
            raise LoginRequired
        request.scope[_SESSION] = found
    session: ConsoleSession = found
    # Every write a console page makes is audited with `via: console` (docs/events.md).
    actors.set_actor(actors.Actor(key_id=session.key_id, kind=session.kind, via="console"))
    return session


async def admin_session(request: Request) -> ConsoleSession:
    session = await any_session(request)
    if not session.is_admin:
        raise Refused("this page is for operators; a buyer key sees its own pages only")
    return session


async def buyer_session(request: Request) -> ConsoleSession:
    session = await any_session(request)
    if session.kind != "buyer" or session.buyer_id is None:
        raise Refused("this page is for buyers: sign in with a buyer key")
    return session


@dataclass
class Form:
    """An urlencoded form body (the console's forms upload no files)."""

    pairs: list[tuple[str, str]]

    def get(self, name: str, default: str = "") -> str:
        for key, value in reversed(self.pairs):
            if key == name:
                return value.strip()
        return default

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]


async def read_form(request: Request) -> Form:
    body = await request.body()
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise errors.PingpostError("the form is not UTF-8", code="malformed_form", status=400) from None
    return Form(parse_qsl(text, keep_blank_values=True, max_num_fields=200))


async def checked_form(request: Request, session: ConsoleSession) -> Form:
    """The form of a state-changing request, after its CSRF token: 403 and nothing done without it."""
    form = await read_form(request)
    if not csrf_ok(session, form.get("csrf") or request.headers.get("x-csrf-token")):
        raise Refused("this form has no valid CSRF token: reload the page and try again")
    return form


def page(
    request: Request, template: str, session: ConsoleSession | None, status: int = 200, **context: Any
) -> HTMLResponse:
    return templates.TemplateResponse(request, template, {"session": session, **context}, status_code=status)


def back(url: str, **flash: str) -> RedirectResponse:
    """303 to `url` (post/redirect/get), with a message shown there."""
    query = urlencode({k: v for k, v in flash.items() if v})
    return RedirectResponse(url + (("&" if "?" in url else "?") + query if query else ""), status_code=303)


# --- parsing form values -------------------------------------------------------------------------


def parse_dollars(text: str, field: str, *, required: bool = True) -> int | None:
    """'45', '45.5' or '1,045.50' dollars as int cents (never through a float); 422 naming `field`."""
    cleaned = text.replace(",", "").replace("$", "").strip()
    if not cleaned:
        if required:
            raise errors.ValidationFailed.one(field, "required")
        return None
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise errors.ValidationFailed.one(field, "must be an amount in dollars, like 45.00") from None
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        raise errors.ValidationFailed.one(field, "at most two decimals")
    cents = int(amount * 100)
    if cents < 0 or cents > MAX_CENTS:
        raise errors.ValidationFailed.one(field, "out of range")
    return cents


def parse_count(text: str, field: str) -> int | None:
    """An optional non-negative whole number; empty means none."""
    if not text.strip():
        return None
    if not text.strip().isdigit() or len(text.strip()) > 12:
        raise errors.ValidationFailed.one(field, "must be a whole number")
    return int(text.strip())


def query_day(value: str | None, name: str) -> int | None:
    """A YYYY-MM-DD (or RFC 3339) query value as epoch ms, UTC; 422 naming it."""
    if not value:
        return None
    try:
        return parse_rfc3339(value if "T" in value else f"{value}T00:00:00Z")
    except ValueError:
        raise errors.ValidationFailed.one(name, "must be a date, YYYY-MM-DD") from None


def field_errors(exc: errors.PingpostError, names: Mapping[str, str]) -> dict[str, str]:
    """The API's validation errors by form field: `names` maps an error path's prefix to a field."""
    found: dict[str, str] = {}
    problems = (exc.details or {}).get("errors") or [{"field": "form", "message": exc.message}]
    for problem in problems:
        path = str(problem.get("field", "form"))
        field = next((f for prefix, f in names.items() if path == prefix or path.startswith(prefix + ".")), "form")
        text = str(problem.get("message", "invalid"))
        found[field] = f"{found[field]}; {text}" if field in found else text
    return found


def api_body(model: type[M], fields: Mapping[str, Any]) -> M:
    """The API's body built from a form's values: its schema's first error as a 422 naming the field."""
    try:
        return model.model_validate(dict(fields))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "form"
        raise errors.ValidationFailed.one(field, str(first.get("msg", "invalid"))) from None


# --- formatting ----------------------------------------------------------------------------------


def usd(cents: Any) -> str:
    if cents is None:
        return ""
    value = int(cents)
    sign = "-" if value < 0 else ""
    value = abs(value)
    return f"{sign}${value // 100:,}.{value % 100:02d}"


def when(value: Any) -> str:
    """An RFC 3339 string or epoch ms as 'YYYY-MM-DD HH:MM:SS' UTC."""
    if value is None or value == "":
        return ""
    if isinstance(value, int):
        moment = datetime.fromtimestamp(value / 1000, UTC)
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def pct(value: Any) -> str:
    return "" if value is None else f"{float(value) * 100:.1f} %"


def query(base: Mapping[str, Any], **changes: Any) -> str:
    merged = {**{k: v for k, v in base.items() if v}, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


templates.env.filters.update(usd=usd, when=when, pct=pct)
templates.env.globals.update(query=query)

_throttles: WeakKeyDictionary[Any, LoginThrottle] = WeakKeyDictionary()


def throttle(request: Request) -> LoginThrottle:
    """The sign-in throttle of this app (one per process)."""
    found = _throttles.get(request.app)
    if found is None:
        found = _throttles[request.app] = LoginThrottle()
    return found


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
