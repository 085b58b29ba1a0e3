"""Partner post endpoint (SPEC 5.1)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from pingpost.auction.service import AuctionService
from pingpost.auth import bearer
from pingpost.delivery.schemas import PostIn, PostOut
from pingpost.delivery.service import PostService

router = APIRouter(prefix="/v1", tags=["partner"])


@router.post("/post", summary="Post the full lead for a ping; delivered to the accepted winners only")
async def post(body: PostIn, request: Request) -> PostOut:
    auction: AuctionService = request.app.state.auction
    service: PostService = request.app.state.posts
    snap, campaign = await auction.authenticate(bearer(request))
    return await service.post(snap=snap, campaign=campaign, body=body)
