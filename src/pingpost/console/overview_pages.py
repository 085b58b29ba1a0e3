"""The overview (today, 7 days, charts, RTB buyers' health) and the reports with their CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from pingpost import errors
from pingpost.admin.service import AdminService
from pingpost.console import figures, health
from pingpost.console.sessions import ConsoleSession
from pingpost.console.web import ConsoleRoute, admin_session, page, query_day
from pingpost.ids import now_ms
from pingpost.reports.summary import GROUPS, summary
from pingpost.services import services

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


async def every(
    admin: AdminService, kind: str, filters: dict[str, str] | None = None, most: int = 2000
) -> list[dict[str, Any]]:
    """Every `kind` (configuration lists are short), page by page, at most `most`."""
    items: list[dict[str, Any]] = []
    cursor = None
    while len(items) < most:
        result = await admin.list(kind, limit=500, cursor=cursor, filters=filters or {})
        items += result["items"]
        cursor = result["next_cursor"]
        if cursor is None:
            break
    return items


@router.get("")
async def overview(request: Request, session: ConsoleSession = Depends(admin_session)) -> Response:
    svc = services(request)
    await svc.counters.flush()  # this process's last second of pings, bids and wins
    data = await figures.overview(svc.store, now=now_ms())
    rtb = {c["id"]: c["buyer"] for c in await every(svc.admin, "contract") if c.get("rtb")}
    buyers_health = await health.rtb_health(svc.store, rtb)
    charts = {
        "hours": {
            "labels": [h["hour"] for h in data["hours"]],
            "pings": [h["pings"] for h in data["hours"]],
            "sales": [h["sales"] for h in data["hours"]],
            "revenue": [h["revenue_cents"] / 100 for h in data["hours"]],
        },
        "days": {
            "labels": [d["day"] for d in data["days"]],
            "pings": [d["pings"] for d in data["days"]],
            "sales": [d["sales"] for d in data["days"]],
            "revenue": [d["revenue_cents"] / 100 for d in data["days"]],
        },
    }
    return page(request, "overview.html", session, data=data, health=buyers_health, charts=charts)


def _range(from_: str | None, to: str | None) -> tuple[int, int]:
    now = now_ms()
    start = query_day(from_, "from")
    end = query_day(to, "to")
    start = start if start is not None else now - now % figures.DAY_MS
    end = (end + figures.DAY_MS) if end is not None else start + figures.DAY_MS  # `to` is inclusive
    if end <= start:
        raise errors.ValidationFailed.one("to", "must not be before from")
    return start, end


COLUMNS = [
    "pings",
    "bids",
    "wins",
    "posts",
    "sales",
    "reversed",
    "revenue_cents",
    "payout_cents",
    "margin_cents",
    "post_accept_rate",
]


@router.get("/reports")
async def reports(
    request: Request,
    session: ConsoleSession = Depends(admin_session),
    group_by: str = Query("offer", max_length=16),
    from_: str | None = Query(None, alias="from", max_length=40),
    to: str | None = Query(None, max_length=40),
) -> Response:
    svc = services(request)
    start, end = _range(from_, to)
    await svc.counters.flush()
    rows = await summary(svc.store, group_by=group_by, start_ms=start, end_ms=end)
    return page(
        request,
        "reports.html",
        session,
        rows=rows,
        group_by=group_by,
        groups=list(GROUPS),
        columns=COLUMNS,
        params={"group_by": group_by, "from": from_ or "", "to": to or ""},
        start=start,
        end=end - figures.DAY_MS,
    )


@router.get("/reports.csv")
async def reports_csv(
    request: Request,
    session: ConsoleSession = Depends(admin_session),
    group_by: str = Query("offer", max_length=16),
    from_: str | None = Query(None, alias="from", max_length=40),
    to: str | None = Query(None, max_length=40),
) -> Response:
    svc = services(request)
    start, end = _range(from_, to)
    await svc.counters.flush()
    rows = await summary(svc.store, group_by=group_by, start_ms=start, end_ms=end)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([group_by, *COLUMNS])
    for row in rows:
        writer.writerow([row[group_by], *("" if row[c] is None else row[c] for c in COLUMNS)])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="pingpost-{group_by}.csv"'},
    )
