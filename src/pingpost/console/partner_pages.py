"""Partners with their campaigns, and a campaign's page (payout, rate limit, sources), with
"Pause"/"Resume" through the admin service."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response

from pingpost.console.buyer_pages import _set_status
from pingpost.console.overview_pages import every
from pingpost.console.sessions import ConsoleSession
from pingpost.console.web import ConsoleRoute, admin_session, back, page
from pingpost.http import IdPath
from pingpost.services import services

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


@router.get("/partners")
async def partners(
    request: Request, session: ConsoleSession = Depends(admin_session), done: str | None = Query(None, max_length=200)
) -> Response:
    admin = services(request).admin
    campaigns = await every(admin, "campaign")
    rows = [
        {"partner": p, "campaigns": [c for c in campaigns if c["partner"] == p["id"]]}
        for p in await every(admin, "partner")
    ]
    return page(request, "partners.html", session, partners=rows, done=done)


@router.post("/partners/{ident}/status")
async def partner_status(
    request: Request, ident: str = IdPath, session: ConsoleSession = Depends(admin_session)
) -> Response:
    done = await _set_status(request, session, "partner", ident)
    return back("/console/partners", done=f"{ident}: {done}")


@router.get("/campaigns/{ident}")
async def campaign(
    request: Request,
    ident: str = IdPath,
    session: ConsoleSession = Depends(admin_session),
    done: str | None = Query(None, max_length=200),
) -> Response:
    found = await services(request).admin.get("campaign", ident)
    return page(
        request,
        "campaign.html",
        session,
        campaign=found,
        done=done,
        default_rate_limit=services(request).settings.ping_rate_limit_per_s,
    )


@router.post("/campaigns/{ident}/status")
async def campaign_status(
    request: Request, ident: str = IdPath, session: ConsoleSession = Depends(admin_session)
) -> Response:
    done = await _set_status(request, session, "campaign", ident)
    return back(f"/console/campaigns/{ident}", done=done)
