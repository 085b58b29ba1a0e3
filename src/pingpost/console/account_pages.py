"""Sign-in, sign-out, the buyer's own home and sales, and the pages still to come (docs/console.md)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse

from pingpost.admin import money
from pingpost.console import figures, sessions
from pingpost.console.sessions import ConsoleSession
from pingpost.console.web import (
    ConsoleRoute,
    Refused,
    any_session,
    buyer_session,
    checked_form,
    client_address,
    page,
    read_form,
    throttle,
)
from pingpost.ids import now_ms
from pingpost.services import services

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


def home(session: ConsoleSession) -> str:
    return "/console" if session.is_admin else "/console/buyer"


@router.get("/login")
async def login_form(request: Request) -> Response:
    found = await sessions.current(services(request).store, request.cookies.get(sessions.COOKIE, ""))
    if found is not None:
        return RedirectResponse(home(found), status_code=303)
    return page(request, "login.html", None)


@router.post("/login")
async def login(request: Request) -> Response:
    address = client_address(request)
    limiter = throttle(request)
    delay = limiter.delay_s(address)
    if delay:
        await asyncio.sleep(delay)
    form = await read_form(request)
    opened = await sessions.sign_in(services(request).store, form.get("key"))
    if opened is None:
        limiter.failed(address)
        return page(request, "login.html", None, status=401, error="That key does not open the console.")
    limiter.succeeded(address)
    session_id, session = opened
    response = RedirectResponse(home(session), status_code=303)
    response.set_cookie(
        sessions.COOKIE,
        session_id,
        httponly=True,
        samesite="strict",
        path="/console",
        secure=services(request).settings.cookie_secure,
    )
    return response


@router.post("/logout")
async def logout(request: Request, session: ConsoleSession = Depends(any_session)) -> Response:
    await checked_form(request, session)
    await sessions.sign_out(services(request).store, session)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(
        sessions.COOKIE,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=services(request).settings.cookie_secure,
    )
    return response


# --- the buyer's own pages -----------------------------------------------------------------------


@router.get("/buyer")
async def buyer_home(request: Request, session: ConsoleSession = Depends(buyer_session)) -> Response:
    svc = services(request)
    assert session.buyer_id is not None
    buyer = await svc.admin.get("buyer", session.buyer_id)
    contracts = (await svc.admin.list("contract", limit=200, cursor=None, filters={"buyer": session.buyer_id}))["items"]
    usage = await figures.usage_of(svc.store, [c["id"] for c in contracts])
    now = now_ms()
    rows = [{"contract": c, "caps": figures.caps_used(c, usage.get(c["id"]), now=now)} for c in contracts]
    recent = await money.page_sales(svc.store, filters={"buyer_id": session.buyer_id}, limit=10)
    return page(request, "buyer_home.html", session, buyer=buyer, contracts=rows, sales=recent["items"])


@router.get("/buyer/sales")
async def buyer_sales(
    request: Request, session: ConsoleSession = Depends(buyer_session), cursor: str | None = Query(None, max_length=64)
) -> Response:
    result = await money.page_sales(
        services(request).store, filters={"buyer_id": session.buyer_id}, cursor=cursor, limit=50
    )
    return page(request, "buyer_sales.html", session, sales=result["items"], next_cursor=result["next_cursor"])


COMING: dict[str, tuple[str, str, bool]] = {
    # path: (title, what brings it, admin page?)
}


def _coming(path: str) -> Any:
    title, issue, admin_only = COMING[path]

    async def coming(request: Request, session: ConsoleSession = Depends(any_session)) -> Response:
        if admin_only != session.is_admin:
            raise Refused("this page is for " + ("operators" if admin_only else "buyers"))
        return page(request, "coming.html", session, title=title, issue=issue)

    return coming


for _path in COMING:
    router.add_api_route(f"/{_path}", _coming(_path), methods=["GET"])
