"""Leases: what the processes hold of the shared cap and funds counters, and what leases left
unfilled at a period's end (docs/scale-out.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from pingpost.console.sessions import ConsoleSession
from pingpost.console.web import ConsoleRoute, admin_session, page
from pingpost.db import leases_repo
from pingpost.ids import now_ms
from pingpost.services import services

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
DAY_MS = 86_400_000


@router.get("/leases")
async def leases(request: Request, session: ConsoleSession = Depends(admin_session)) -> Response:
    svc = services(request)
    since = now_ms() - DAY_MS
    rows = await svc.store.read(lambda tx: leases_repo.summary(tx, since=since))
    return page(
        request,
        "leases.html",
        session,
        rows=rows,
        enabled=svc.auction.leases is not None,
        ttl_ms=svc.settings.lease_ttl_ms,
    )
