"""Partner payouts and account statements (docs/protocol.md, Money): operators pay partners and read
any account's statement; a buyer reads its own."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from pingpost import errors
from pingpost.accounts.schemas import PayoutIn
from pingpost.auth import ApiKey, admin_key, buyer_key
from pingpost.domain.statements import Statement, as_csv
from pingpost.http import IdPath, refusals
from pingpost.ledger.payouts import PayoutService
from pingpost.ledger.service import ACCOUNT
from pingpost.ledger.statements import StatementService
from pingpost.services import services

# Keys are checked before the body is read (docs/security.md).
router = APIRouter(
    prefix="/v1/admin", tags=["accounts"], route_class=admin_key.route, dependencies=admin_key.documented
)
buyer_router = APIRouter(
    prefix="/v1/buyer", tags=["buyer"], route_class=buyer_key.route, dependencies=buyer_key.documented
)

Format = Literal["json", "csv"]
# A UTC day, 1970-01-01 or later (docs/protocol.md, Money); `to` not before `from`, 366 days at most,
# which no schema of one parameter can state (the operations' descriptions say so).
DAY_PATTERN = r"^(19[7-9][0-9]|[2-9][0-9]{3})-[0-9]{2}-[0-9]{2}$"
_DAY = {"format": "date"}
FromDay = Query(
    ...,
    alias="from",
    max_length=10,
    pattern=DAY_PATTERN,
    json_schema_extra=_DAY,
    description="first UTC day, YYYY-MM-DD (included)",
)
ToDay = Query(
    ..., max_length=10, pattern=DAY_PATTERN, json_schema_extra=_DAY, description="last UTC day, YYYY-MM-DD (included)"
)
_PERIOD = (
    "`from` and `to` are whole UTC days, both included: `to` must not be before `from`, and a statement "
    "covers at most 366 days (422 `validation_error` naming `to`)."
)
# `format=csv` answers CSV (docs/protocol.md, Money); the JSON answer is the default.
_CSV: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The statement: JSON, or CSV with `format=csv`",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}
_STATEMENT_422 = (
    422,
    "A parameter fails its rules (`validation_error`): a malformed account or date, `to` before "
    "`from`, more than 366 days.",
)


def payout_service(request: Request) -> PayoutService:
    service: PayoutService = services(request).payouts
    return service


def statement_service(request: Request) -> StatementService:
    service: StatementService = services(request).statements
    return service


def _answer(statement: Statement, fmt: Format) -> Any:
    if fmt == "json":
        return statement.as_json()
    name = f"statement-{statement.account.replace(':', '-')}-{statement.period.first}-{statement.period.last}.csv"
    return Response(
        as_csv(statement.lines),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post(
    "/partners/{ident}/payouts",
    status_code=201,
    summary="Pay a partner out of what it is owed",
    description="Idempotent by `reference`: the same partner and amount answers the first payout.",
    responses=refusals(
        400,
        401,
        (404, "Unknown partner (`not_found`)."),
        (409, "The reference was used for another payout (`conflict`, `details.reference`)."),
        413,
        (
            422,
            "A field fails its rules (`validation_error`); the amount is more than "
            "the partner is owed (`insufficient_balance`, `details.owed_cents`).",
        ),
    ),
)
async def payout(body: PayoutIn, ident: str = IdPath, svc: PayoutService = Depends(payout_service)) -> dict[str, Any]:
    return await svc.pay(ident, amount_cents=body.amount_cents, reference=body.reference)


@router.get(
    "/statements",
    summary="An account's statement: opening, lines per day and kind, closing",
    description=_PERIOD,
    responses={**_CSV, **refusals(401, (404, "Unknown buyer or partner (`not_found`)."), _STATEMENT_422)},
)
async def statement(
    account: str = Query(
        ...,
        max_length=80,
        description="buyer:{id}, partner:{id}, house:revenue or house:cash",
        json_schema_extra={"pattern": ACCOUNT.pattern},
    ),
    from_: str = FromDay,
    to: str = ToDay,
    format: Format = Query("json"),
    svc: StatementService = Depends(statement_service),
) -> Any:
    return _answer(await svc.statement(account, first=from_, last=to), format)


@buyer_router.get(
    "/statement",
    summary="The calling buyer's statement",
    description=_PERIOD,
    responses={**_CSV, **refusals(401, _STATEMENT_422)},
)
async def buyer_statement(
    from_: str = FromDay,
    to: str = ToDay,
    format: Format = Query("json"),
    key: ApiKey = Depends(buyer_key),
    svc: StatementService = Depends(statement_service),
) -> Any:
    if key.buyer_id is None:  # a buyer key always names its buyer (admin validation)
        raise errors.Unauthorized("a valid buyer key is required")
    return _answer(await svc.statement(f"buyer:{key.buyer_id}", first=from_, last=to), format)
