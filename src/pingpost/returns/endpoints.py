"""Returns API (docs/protocol.md, Returns): buyers open returns of their own sales; operators open,
list and decide them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from pingpost import errors
from pingpost.auth import ApiKey, admin_key, buyer_key
from pingpost.http import IdPath, Page, query_time
from pingpost.returns.schemas import DecisionIn, ReturnIn
from pingpost.returns.service import Opener, ReturnService
from pingpost.services import services

# Keys are checked before the body is read (docs/security.md).
router = APIRouter(prefix="/v1/admin", tags=["returns"], route_class=admin_key.route)
buyer_router = APIRouter(prefix="/v1/buyer", tags=["buyer"], route_class=buyer_key.route)


def return_service(request: Request) -> ReturnService:
    service: ReturnService = services(request).returns
    return service


def _buyer_id(key: ApiKey) -> str:
    if key.buyer_id is None:  # a buyer key always names its buyer (admin validation)
        raise errors.Unauthorized("a valid buyer key is required")
    return key.buyer_id


Status = Query(None, max_length=16, description="pending, approved or denied")
From = Query(None, alias="from", max_length=40, description="opened at or after (RFC 3339)")
To = Query(None, max_length=40, description="opened before (RFC 3339)")


@router.post("/sales/{ident}/returns", status_code=201, summary="Open a return of a sale")
async def admin_open(body: ReturnIn, ident: str = IdPath,
                     svc: ReturnService = Depends(return_service)) -> dict[str, Any]:
    return await svc.open(ident, body, by=Opener(buyer_id=None))


class ReturnFilters(BaseModel):
    """The admin list's filters (query parameters)."""

    status: str | None = Field(None, max_length=16, description="pending, approved or denied")
    buyer: str | None = Field(None, max_length=64)
    partner: str | None = Field(None, max_length=64)
    contract: str | None = Field(None, max_length=64)
    sale: str | None = Field(None, max_length=64)
    from_: str | None = Field(None, alias="from", max_length=40, description="opened at or after (RFC 3339)")
    to: str | None = Field(None, max_length=40, description="opened before (RFC 3339)")


@router.get("/returns", summary="List returns, newest first")
async def admin_list(filters: Annotated[ReturnFilters, Query()], page: Page = Depends(),
                     svc: ReturnService = Depends(return_service)) -> dict[str, Any]:
    return await svc.list(filters={"status": filters.status, "buyer_id": filters.buyer, "partner_id": filters.partner,
                                   "contract_id": filters.contract, "sale_id": filters.sale},
                          start=query_time(filters.from_, "from"), end=query_time(filters.to, "to"),
                          cursor=page.cursor, limit=page.limit)


@router.get("/returns/{ident}", summary="One return")
async def admin_get(ident: str = IdPath, svc: ReturnService = Depends(return_service)) -> dict[str, Any]:
    return await svc.get(ident)


@router.post("/returns/{ident}/approve", summary="Approve a return: refund the buyer, claw back the partner")
async def approve(body: DecisionIn | None = None, ident: str = IdPath,
                  svc: ReturnService = Depends(return_service)) -> dict[str, Any]:
    return await svc.approve(ident, note=body.note if body else None)


@router.post("/returns/{ident}/deny", summary="Deny a return: nothing moves")
async def deny(body: DecisionIn | None = None, ident: str = IdPath,
               svc: ReturnService = Depends(return_service)) -> dict[str, Any]:
    return await svc.deny(ident, note=body.note if body else None)


@buyer_router.post("/sales/{ident}/returns", status_code=201, summary="Open a return of one of the buyer's sales")
async def buyer_open(body: ReturnIn, ident: str = IdPath, key: ApiKey = Depends(buyer_key),
                     svc: ReturnService = Depends(return_service)) -> dict[str, Any]:
    return await svc.open(ident, body, by=Opener(buyer_id=_buyer_id(key)))


@buyer_router.get("/returns", summary="The calling buyer's returns, newest first")
async def buyer_list(page: Page = Depends(), status: str | None = Status, from_: str | None = From,
                     to: str | None = To, key: ApiKey = Depends(buyer_key),
                     svc: ReturnService = Depends(return_service)) -> dict[str, Any]:
    return await svc.list(filters={"status": status, "buyer_id": _buyer_id(key)},
                          start=query_time(from_, "from"), end=query_time(to, "to"), cursor=page.cursor,
                          limit=page.limit, for_buyer=True)


@buyer_router.get("/returns/{ident}", summary="One of the calling buyer's returns")
async def buyer_get(ident: str = IdPath, key: ApiKey = Depends(buyer_key),
                    svc: ReturnService = Depends(return_service)) -> dict[str, Any]:
    return await svc.get(ident, buyer_id=_buyer_id(key))
