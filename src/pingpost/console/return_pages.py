"""Returns (docs/console.md): the operators' queue with "Approve" and "Deny" (with a reason), the
buyer's own returns and its "open a return" form on a sale, all through `ReturnService`, the service
of the returns API: its rules, its errors shown by field."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request, Response

from pingpost import errors
from pingpost.admin import money
from pingpost.console.money_pages import Notice, Short
from pingpost.console.sessions import ConsoleSession
from pingpost.console.web import (
    ConsoleRoute,
    admin_session,
    api_body,
    back,
    buyer_session,
    checked_form,
    field_errors,
    page,
    parse_dollars,
    query,
)
from pingpost.domain.returns import RETURNABLE, ReturnPolicy
from pingpost.http import IdPath
from pingpost.returns.schemas import ReturnIn
from pingpost.returns.service import STATUSES, Opener
from pingpost.services import services

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
PAGE = 50


@router.get("/returns")
async def queue(
    request: Request,
    session: ConsoleSession = Depends(admin_session),
    status: str | None = Short(),
    buyer: str | None = Short(),
    cursor: str | None = Short(),
    notice: Notice = Depends(),
) -> Response:
    """Every return, newest first, by status (pending: the queue) and buyer."""
    params = {"status": status or "", "buyer": buyer or ""}
    result = await services(request).returns.list(
        filters={"status": status or None, "buyer_id": buyer or None}, start=None, end=None, cursor=cursor, limit=PAGE
    )
    return page(
        request,
        "returns.html",
        session,
        returns=result["items"],
        next_cursor=result["next_cursor"],
        params=params,
        statuses=STATUSES,
        done=notice.done,
        problem=notice.problem,
    )


@router.post("/returns/{ident}/{decision}")
async def decide(
    request: Request,
    ident: str = IdPath,
    decision: str = Path(pattern="^(approve|deny)$"),
    session: ConsoleSession = Depends(admin_session),
) -> Response:
    """Approve (a note is optional) or deny (a reason is required); a repeated decision answers the
    same, the other decision on a decided return is shown as a problem (409 in the API)."""
    form = await checked_form(request, session)
    url = "/console/returns?" + query({"status": form.get("status"), "buyer": form.get("buyer")})
    note = form.get("note")[:2000] or None
    if decision == "deny" and note is None:
        return back(url, problem=f"{ident}: a denial needs a reason")
    returns = services(request).returns
    try:
        if decision == "approve":
            done = await returns.approve(ident, note=note)
        else:
            done = await returns.deny(ident, note=note)
    except (errors.Conflict, errors.NotFound) as exc:
        return back(url, problem=f"{ident}: {exc.message}")
    if done["status"] == "approved":
        return back(url, done=f"Return {ident} approved: the buyer is refunded {_dollars(done['amount_cents'])}.")
    return back(url, done=f"Return {ident} denied.")


def _dollars(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


# --- the buyer's returns -------------------------------------------------------------------------


@router.get("/buyer/returns")
async def buyer_returns(
    request: Request,
    session: ConsoleSession = Depends(buyer_session),
    cursor: str | None = Short(),
    notice: Notice = Depends(),
) -> Response:
    result = await services(request).returns.list(
        filters={"buyer_id": session.buyer_id}, start=None, end=None, cursor=cursor, limit=PAGE, for_buyer=True
    )
    return page(
        request,
        "buyer_returns.html",
        session,
        returns=result["items"],
        next_cursor=result["next_cursor"],
        done=notice.done,
        problem=notice.problem,
    )


async def _return_form(
    request: Request,
    session: ConsoleSession,
    sale_id: str,
    *,
    status: int = 200,
    problems: dict[str, str] | None = None,
    entered: dict[str, str] | None = None,
) -> Response:
    svc = services(request)
    sale = await money.get_sale(svc.store, sale_id)
    if sale["buyer"] != session.buyer_id:  # another buyer's sale does not exist for this one
        raise errors.NotFound("sale", sale_id)
    contract = await svc.admin.get("contract", sale["contract"])
    policy = ReturnPolicy.from_body(contract)
    return page(
        request,
        "buyer_return.html",
        session,
        status=status,
        sale=sale,
        policy=policy,
        returnable=sale["status"] in RETURNABLE and policy.window_days > 0,
        problems=problems or {},
        entered=entered or {},
    )


@router.get("/buyer/sales/{ident}/return")
async def return_form(
    request: Request, ident: str = IdPath, session: ConsoleSession = Depends(buyer_session)
) -> Response:
    return await _return_form(request, session, ident)


FIELDS = {"amount_cents": "amount", "amount": "amount", "reason": "reason", "note": "note"}


@router.post("/buyer/sales/{ident}/return")
async def open_return(
    request: Request, ident: str = IdPath, session: ConsoleSession = Depends(buyer_session)
) -> Response:
    """Open a return of the buyer's own sale: the full price when the amount is left empty."""
    form = await checked_form(request, session)
    entered = {name: form.get(name) for name in ("amount", "reason", "note")}
    try:
        amount = parse_dollars(form.get("amount"), "amount", required=False)
        body = api_body(
            ReturnIn, {"reason": form.get("reason"), "note": form.get("note") or None, "amount_cents": amount}
        )
        opened = await services(request).returns.open(ident, body, by=Opener(buyer_id=session.buyer_id))
    except (errors.ValidationFailed, errors.Unprocessable, errors.Conflict) as exc:
        return await _return_form(
            request, session, ident, status=exc.status, problems=field_errors(exc, FIELDS), entered=entered
        )
    return back(
        "/console/buyer/returns",
        done=f"Return {opened['id']} of sale {ident} opened for {_dollars(opened['amount_cents'])}: "
        f"{opened['status']}.",
    )
