"""Partner ping endpoint (SPEC 5.1)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from pingpost.auction.schemas import PingIn, PingOut
from pingpost.auction.service import AuctionService
from pingpost.auth import bearer

router = APIRouter(prefix="/v1", tags=["partner"])


@router.post("/ping", summary="Ping with anonymous lead data; answers the winning bids as payouts")
async def ping(body: PingIn, request: Request) -> PingOut:
    auction: AuctionService = request.app.state.auction
    snap, campaign = await auction.authenticate(bearer(request))
    return await auction.ping(snap=snap, campaign=campaign, body=body)
