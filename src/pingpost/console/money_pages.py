"""Sales ("Reverse" with a reason) and the reconciliation of unknown deliveries (record the sale
or void it), through the same money service as the API (admin/money.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from pingpost import errors
from pingpost.admin import money
from pingpost.console.sessions import ConsoleSession
from pingpost.console.web import ConsoleRoute, admin_session, back, checked_form, page
from pingpost.http import IdPath
from pingpost.services import services

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


def Short() -> Any:
    """A fresh query parameter each time: FastAPI keeps a parameter's alias on its object."""
    return Query(None, max_length=64)


class Notice:
    """A page's confirmation or problem after a form posted back to it (query parameters)."""

    def __init__(
        self, done: str | None = Query(None, max_length=200), problem: str | None = Query(None, max_length=300)
    ) -> None:
        self.done, self.problem = done, problem


@router.get("/sales")
async def sales(
    request: Request,
    session: ConsoleSession = Depends(admin_session),
    buyer: str | None = Short(),
    status: str | None = Short(),
    cursor: str | None = Short(),
    notice: Notice = Depends(),
) -> Response:
    result = await money.page_sales(
        services(request).store, filters={"buyer_id": buyer or None, "status": status or None}, cursor=cursor, limit=50
    )
    return page(
        request,
        "sales.html",
        session,
        sales=result["items"],
        next_cursor=result["next_cursor"],
        params={"buyer": buyer or "", "status": status or ""},
        done=notice.done,
        problem=notice.problem,
    )


@router.post("/sales/{ident}/reverse")
async def reverse(request: Request, ident: str = IdPath, session: ConsoleSession = Depends(admin_session)) -> Response:
    form = await checked_form(request, session)
    reason = form.get("reason")
    if not reason:
        return back("/console/sales", problem=f"{ident}: a reversal needs a reason")
    try:
        await money.reverse_sale(services(request).store, ident, reason=reason[:200])
    except errors.Conflict as exc:
        return back("/console/sales", problem=f"{ident}: {exc.message}")
    return back("/console/sales", done=f"Sale {ident} reversed: the buyer is refunded, the payout clawed back.")


@router.get("/reconciliation")
async def reconciliation(
    request: Request,
    session: ConsoleSession = Depends(admin_session),
    cursor: str | None = Short(),
    done: str | None = Query(None, max_length=200),
    problem: str | None = Query(None, max_length=300),
) -> Response:
    result = await money.page_unknown_deliveries(services(request).store, cursor=cursor, limit=50)
    return page(
        request,
        "reconciliation.html",
        session,
        deliveries=result["items"],
        next_cursor=result["next_cursor"],
        done=done,
        problem=problem,
    )


@router.post("/reconciliation/{ident}/{action}")
async def settle(
    request: Request,
    ident: str = IdPath,
    action: str = Path(pattern="^(record-sale|void)$"),
    session: ConsoleSession = Depends(admin_session),
) -> Response:
    await checked_form(request, session)
    try:
        result = await money.settle_delivery(services(request).store, ident, action)
    except errors.Conflict as exc:
        return back("/console/reconciliation", problem=f"{ident}: {exc.message}")
    return back("/console/reconciliation", done=f"Delivery {ident}: {result['state']}.")
