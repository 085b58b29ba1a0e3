"""Statements and payouts (docs/console.md): an account's statement over a range of UTC days with
its CSV (operators: any buyer or partner; a buyer: its own), and a partner's page with what it is
owed and the payout form, through `StatementService` and `PayoutService`, the API's services."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from pingpost import errors
from pingpost.accounts.schemas import PayoutIn
from pingpost.console.buyer_pages import FormState
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
)
from pingpost.domain.statements import DAY_MS, Statement, as_csv, day_of
from pingpost.http import IdPath
from pingpost.ids import now_ms
from pingpost.services import services

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
PERIOD_FIELDS = {"from": "from", "to": "to", "account": "account"}


def Day(alias: str | None = None) -> Any:
    """A fresh query parameter each time: FastAPI keeps a parameter's alias on its object."""
    return Query(None, alias=alias, max_length=10)


def default_period(first: str | None, last: str | None) -> tuple[str, str]:
    """The range asked for; by default this UTC month up to today."""
    today = day_of(now_ms() // DAY_MS)
    return first or f"{today[:8]}01", last or today


async def _statement_page(
    request: Request, session: ConsoleSession, account: str, first: str | None, last: str | None, *, csv_url: str
) -> Response:
    first, last = default_period(first, last)
    params = {"account": account, "from": first, "to": last}
    try:
        found: Statement | None = (
            await services(request).statements.statement(account, first=first, last=last) if account else None
        )
    except errors.ValidationFailed as exc:
        return page(
            request,
            "statement.html",
            session,
            status=422,
            statement=None,
            params=params,
            csv_url=csv_url,
            problems=field_errors(exc, PERIOD_FIELDS),
        )
    return page(
        request,
        "statement.html",
        session,
        statement=None if found is None else found.as_json(),
        params=params,
        csv_url=csv_url,
        problems={},
    )


async def _csv(request: Request, account: str, first: str | None, last: str | None) -> Response:
    first, last = default_period(first, last)
    found = await services(request).statements.statement(account, first=first, last=last)
    name = f"statement-{account.replace(':', '-')}-{first}-{last}.csv"
    return Response(
        as_csv(found.lines),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/statements")
async def statement(
    request: Request,
    session: ConsoleSession = Depends(admin_session),
    account: str = Query("", max_length=80),
    first: str | None = Day("from"),
    last: str | None = Day("to"),
) -> Response:
    return await _statement_page(request, session, account, first, last, csv_url="/console/statements.csv")


@router.get("/statements.csv")
async def statement_csv(
    request: Request,
    session: ConsoleSession = Depends(admin_session),
    account: str = Query(..., max_length=80),
    first: str | None = Day("from"),
    last: str | None = Day("to"),
) -> Response:
    return await _csv(request, account, first, last)


@router.get("/buyer/statement")
async def buyer_statement(
    request: Request,
    session: ConsoleSession = Depends(buyer_session),
    first: str | None = Day("from"),
    last: str | None = Day("to"),
) -> Response:
    account = f"buyer:{session.buyer_id}"
    return await _statement_page(request, session, account, first, last, csv_url="/console/buyer/statement.csv")


@router.get("/buyer/statement.csv")
async def buyer_statement_csv(
    request: Request,
    session: ConsoleSession = Depends(buyer_session),
    first: str | None = Day("from"),
    last: str | None = Day("to"),
) -> Response:
    return await _csv(request, f"buyer:{session.buyer_id}", first, last)


# --- a partner: what it is owed, payouts ---------------------------------------------------------


async def _partner_page(
    request: Request, session: ConsoleSession, ident: str, form: FormState = FormState()
) -> Response:
    svc = services(request)
    partner = await svc.admin.get("partner", ident)
    ledger = await svc.ledger.account(f"partner:{ident}", limit=20, cursor=None)
    return page(
        request,
        "partner.html",
        session,
        status=form.status,
        partner=partner,
        ledger=ledger,
        problems=form.problems or {},
        entered=form.entered or {},
        done=form.done,
    )


@router.get("/partners/{ident}")
async def partner(
    request: Request,
    ident: str = IdPath,
    session: ConsoleSession = Depends(admin_session),
    done: str | None = Query(None, max_length=200),
) -> Response:
    return await _partner_page(request, session, ident, FormState(done=done))


@router.post("/partners/{ident}/payouts")
async def payout(request: Request, ident: str = IdPath, session: ConsoleSession = Depends(admin_session)) -> Response:
    """Pay the partner out of what it is owed; a repeated reference with the same amount pays once."""
    form = await checked_form(request, session)
    entered = {"amount": form.get("amount"), "reference": form.get("reference")}
    try:
        cents = parse_dollars(form.get("amount"), "amount")
        body = api_body(PayoutIn, {"amount_cents": cents, "reference": form.get("reference")})
        paid = await services(request).payouts.pay(ident, amount_cents=body.amount_cents, reference=body.reference)
    except (errors.ValidationFailed, errors.Unprocessable, errors.Conflict) as exc:
        problems = field_errors(exc, {"amount": "amount", "amount_cents": "amount", "reference": "reference"})
        if exc.code == "insufficient_balance":
            problems = {"amount": exc.message}
        elif isinstance(exc, errors.Conflict):
            problems = {"reference": exc.message}
        return await _partner_page(request, session, ident, FormState(exc.status, problems, entered))
    return back(f"/console/partners/{ident}", done=f"Paid {form.get('amount')} dollars ({paid['transaction_id']}).")
