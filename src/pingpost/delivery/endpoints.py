"""Partner post and direct-post endpoints; the posting key is checked before the body is read
(docs/security.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from pingpost.auction.service import AuctionService
from pingpost.auth import POSTING_KEY, KeyCheck, bearer
from pingpost.db.store import Tx
from pingpost.delivery.direct import DirectPostService
from pingpost.delivery.schemas import DirectPostIn, PostIn, PostOut
from pingpost.delivery.service import PostService
from pingpost.domain.model import Campaign, Snapshot
from pingpost.http import RUNTIME_LEAD, refusals
from pingpost.idempotency import KEY_HEADER, REPLAYED, Claim, Idempotency, KeyRef, run_idempotent
from pingpost.services import services


async def _posting_key(request: Request) -> tuple[Snapshot, Campaign]:
    """The campaign of the posting key, on the current snapshot (401 unknown, 403 paused)."""
    auction: AuctionService = services(request).auction
    return await auction.authenticate(bearer(request))


posting_key = KeyCheck(_posting_key, **POSTING_KEY)
router = APIRouter(prefix="/v1", tags=["partner"], route_class=posting_key.route, dependencies=posting_key.documented)


@router.post(
    "/post",
    response_model=PostOut,
    summary="Post the full lead for a ping; delivered to the accepted winners only",
    description=f"{RUNTIME_LEAD} A post carries every required field, and every field the ping sent unchanged "
    "(docs/protocol.md, Partners).",
    openapi_extra=KEY_HEADER,
    responses={
        200: REPLAYED,
        **refusals(
            400,
            401,
            (403, "The campaign, its partner or its offer is paused; the ping is another campaign's (`forbidden`)."),
            (404, "Unknown ping (`not_found`)."),
            (409, "`already_posted`; `conflict` (a `no_bids` ping, `details.status`); `idempotency_in_flight`."),
            (410, "The ping expired (`ping_expired`)."),
            413,
            (
                422,
                "`validation_error`, `unknown_field`, `channel_mismatch` (a call ping), `lead_mismatch`, "
                "`consumer_mismatch`, `idempotency_key_reused`.",
            ),
        ),
    },
)
async def post(body: PostIn, request: Request, caller: tuple[Snapshot, Campaign] = Depends(posting_key)) -> Response:
    service: PostService = services(request).posts
    snap, campaign = caller

    async def run(_: KeyRef | None, claim: Claim | None) -> PostOut:
        return await service.post(snap=snap, campaign=campaign, body=body, resume=claim is not None and claim.took_over)

    return await run_idempotent(
        request, idem=services(request).idempotency, campaign_id=campaign.id, endpoint="post", body=body, run=run
    )


@router.post(
    "/direct-post",
    response_model=PostOut,
    summary="Post a full lead to a direct-post offer: the best eligible contract gets it",
    description=f"{RUNTIME_LEAD} A direct post carries every required field (docs/protocol.md, Partners).",
    openapi_extra=KEY_HEADER,
    responses={
        200: REPLAYED,
        **refusals(
            400,
            401,
            (403, "The campaign, its partner or its offer is paused (`forbidden`)."),
            (409, "A request with this Idempotency-Key is in flight (`idempotency_in_flight`)."),
            413,
            (
                422,
                "`validation_error`, `unknown_field`, `offer_mode_mismatch` (a ping-post offer), `channel_mismatch`, "
                "`idempotency_key_reused`.",
            ),
        ),
    },
)
async def direct_post(
    body: DirectPostIn, request: Request, caller: tuple[Snapshot, Campaign] = Depends(posting_key)
) -> Response:
    service: DirectPostService = services(request).direct_posts
    idem: Idempotency = services(request).idempotency
    snap, campaign = caller

    async def run(ref: KeyRef | None, claim: Claim | None) -> PostOut:
        if claim is not None and claim.took_over and claim.progress and claim.progress.get("ping_id"):
            return await service.posts.recorded_answer(str(claim.progress["ping_id"]))

        async def created(tx: Tx, ping_id: str) -> None:
            if ref is not None:
                await idem.record_progress(tx, ref, {"ping_id": ping_id})

        return await service.direct_post(snap=snap, campaign=campaign, body=body, on_ping_created=created)

    return await run_idempotent(request, idem=idem, campaign_id=campaign.id, endpoint="direct-post", body=body, run=run)
