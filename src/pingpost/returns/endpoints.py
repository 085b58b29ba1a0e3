"""Returns API (docs/protocol.md, Returns): buyers open returns of their own sales; operators open,
list and decide them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from pydantic.config import JsonDict

from pingpost import errors
from pingpost.auth import ApiKey, admin_key, buyer_key
from pingpost.http import ID_PATTERN, IdPath, Page, query_time, refusals, time_query
from pingpost.returns.schemas import DecisionIn, ReturnIn
from pingpost.returns.service import STATUSES, Opener, ReturnService
from pingpost.services import services

# Keys are checked before the body is read (docs/security.md).
router = APIRouter(prefix="/v1/admin", tags=["returns"], route_class=admin_key.route, dependencies=admin_key.documented)
buyer_router = APIRouter(
    prefix="/v1/buyer", tags=["buyer"], route_class=buyer_key.route, dependencies=buyer_key.documented
)


def return_service(request: Request) -> ReturnService:
    service: ReturnService = services(request).returns
    return service


def _buyer_id(key: ApiKey) -> str:
    if key.buyer_id is None:  # a buyer key always names its buyer (admin validation)
        raise errors.Unauthorized("a valid buyer key is required")
    return key.buyer_id


_STATUS: JsonDict = {"enum": list(STATUSES)}  # checked by ReturnService.list
Status = Query(None, max_length=16, description="pending, approved or denied", json_schema_extra=_STATUS)
_TIME: JsonDict = {"format": "date-time"}  # read by query_time, as time_query states it

# The refusals of each operation (docs/protocol.md, Returns).
_OPEN = refusals(
    400,
    401,
    (404, "Unknown sale, or another buyer's (`not_found`)."),
    (
        409,
        "The sale already has a pending or approved return (`already_returned`, `details.return_id`); "
        "the sale is not `charged` (`conflict`, `details.status`).",
    ),
    413,
    (
        422,
        "A field fails its rules (`validation_error`; `amount_cents` over the sale's price); the "
        "return window is closed (`return_window_closed`); the contract does not take the reason "
        "(`invalid_reason`, `details.reasons`); the contract's monthly return limit is reached "
        "(`return_limit_reached`).",
    ),
)
_DECIDE = refusals(
    400,
    401,
    (404, "Unknown return (`not_found`)."),
    (
        409,
        "The return is already decided the other way, or its sale is no longer `charged` "
        "(`conflict`, `details.status`).",
    ),
    413,
    422,
)
_ONE = refusals(401, (404, "Unknown return (`not_found`)."), 422)


@router.post("/sales/{ident}/returns", status_code=201, summary="Open a return of a sale", responses=_OPEN)
async def admin_open(
    body: ReturnIn, ident: str = IdPath, svc: ReturnService = Depends(return_service)
) -> dict[str, Any]:
    return await svc.open(ident, body, by=Opener(buyer_id=None))


class ReturnFilters(BaseModel):
    """The admin list's filters (query parameters)."""

    status: str | None = Field(
        None, max_length=16, description="pending, approved or denied", json_schema_extra=_STATUS
    )
    buyer: str | None = Field(None, max_length=64, pattern=ID_PATTERN)
    partner: str | None = Field(None, max_length=64, pattern=ID_PATTERN)
    contract: str | None = Field(None, max_length=64, pattern=ID_PATTERN)
    sale: str | None = Field(None, max_length=64, pattern=ID_PATTERN)
    from_: str | None = Field(
        None, alias="from", max_length=40, description="opened at or after (RFC 3339)", json_schema_extra=_TIME
    )
    to: str | None = Field(None, max_length=40, description="opened before (RFC 3339)", json_schema_extra=_TIME)


@router.get("/returns", summary="List returns, newest first", responses=refusals(401, 422))
async def admin_list(
    filters: Annotated[ReturnFilters, Query()], page: Page = Depends(), svc: ReturnService = Depends(return_service)
) -> dict[str, Any]:
    return await svc.list(
        filters={
            "status": filters.status,
            "buyer_id": filters.buyer,
            "partner_id": filters.partner,
            "contract_id": filters.contract,
            "sale_id": filters.sale,
        },
        start=query_time(filters.from_, "from"),
        end=query_time(filters.to, "to"),
        cursor=page.cursor,
        limit=page.limit,
    )


@router.get("/returns/{ident}", summary="One return", responses=_ONE)
async def admin_get(ident: str = IdPath, svc: ReturnService = Depends(return_service)) -> dict[str, Any]:
    return await svc.get(ident)


@router.post(
    "/returns/{ident}/approve", summary="Approve a return: refund the buyer, claw back the partner", responses=_DECIDE
)
async def approve(
    body: DecisionIn | None = None, ident: str = IdPath, svc: ReturnService = Depends(return_service)
) -> dict[str, Any]:
    return await svc.approve(ident, note=body.note if body else None)


@router.post("/returns/{ident}/deny", summary="Deny a return: nothing moves", responses=_DECIDE)
async def deny(
    body: DecisionIn | None = None, ident: str = IdPath, svc: ReturnService = Depends(return_service)
) -> dict[str, Any]:
    return await svc.deny(ident, note=body.note if body else None)


@buyer_router.post(
    "/sales/{ident}/returns", status_code=201, summary="Open a return of one of the buyer's sales", responses=_OPEN
)
async def buyer_open(
    body: ReturnIn, ident: str = IdPath, key: ApiKey = Depends(buyer_key), svc: ReturnService = Depends(return_service)
) -> dict[str, Any]:
    return await svc.open(ident, body, by=Opener(buyer_id=_buyer_id(key)))


@buyer_router.get("/returns", summary="The calling buyer's returns, newest first", responses=refusals(401, 422))
async def buyer_list(
    page: Page = Depends(),
    status: str | None = Status,
    from_: str | None = time_query("from", "Opened at or after"),
    to: str | None = time_query("to", "Opened before"),
    key: ApiKey = Depends(buyer_key),
    svc: ReturnService = Depends(return_service),
) -> dict[str, Any]:
    return await svc.list(
        filters={"status": status, "buyer_id": _buyer_id(key)},
        start=query_time(from_, "from"),
        end=query_time(to, "to"),
        cursor=page.cursor,
        limit=page.limit,
        for_buyer=True,
    )


@buyer_router.get("/returns/{ident}", summary="One of the calling buyer's returns", responses=_ONE)
async def buyer_get(
    ident: str = IdPath, key: ApiKey = Depends(buyer_key), svc: ReturnService = Depends(return_service)
) -> dict[str, Any]:
    return await svc.get(ident, buyer_id=_buyer_id(key))
