"""Partner ping endpoint (docs/protocol.md, Partners).

The route FastAPI documents (OpenAPI, /docs) is served by `serve_ping`, which the application
calls straight from its ASGI entry point (`app.PingpostApp`), ahead of the middleware stack and the
router, and which validates the same `PingIn` model with pydantic's compiled JSON parser. It keeps
what that stack gives every other route: the key checked before the body is read, the body limit
(413), the error shape, and a 500 without details for anything unexpected. FastAPI's request
machinery and the middleware stack cost more CPU than the rest of a ping's framework work together,
and the ping is the hot path (docs/performance.md).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from pingpost import errors
from pingpost.auction.schemas import PingIn, PingOut
from pingpost.auction.service import AuctionService
from pingpost.auth import POSTING_KEY, KeyCheck, bearer
from pingpost.db.store import Tx
from pingpost.domain.model import Campaign, Snapshot
from pingpost.http import RUNTIME_LEAD, error_response, read_body, refusals, unexpected_error_response, validation_error
from pingpost.idempotency import KEY_HEADER, REPLAYED, Claim, Idempotency, KeyRef, run_idempotent
from pingpost.services import services


async def _posting_key(request: Request) -> tuple[Snapshot, Campaign]:
    """The campaign of the posting key, from this process's snapshot (401 unknown, 403 paused)."""
    auction: AuctionService = services(request).auction
    return await auction.authenticate(bearer(request), cached=True)


posting_key = KeyCheck(_posting_key, **POSTING_KEY)
router = APIRouter(prefix="/v1", tags=["partner"], route_class=posting_key.route, dependencies=posting_key.documented)


@router.post(
    "/ping",
    response_model=PingOut,
    summary="Ping with anonymous lead data; answers the winning bids as payouts",
    description=f"{RUNTIME_LEAD} A ping carries only the vertical's non-PII fields (a PII field is 422 "
    "`pii_in_ping`). Pings beyond the process's in-flight limit are refused at once (503) instead "
    "of queueing (docs/protocol.md, Partners).",
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
                "`validation_error`, `offer_mode_mismatch` (a direct-post offer), `channel_mismatch`, "
                "`unknown_field`, `pii_in_ping`, `idempotency_key_reused`.",
            ),
            (429, "Over the campaign's pings per second (`rate_limited`, `details.limit_per_s`)."),
            (503, "Too many pings in flight in this process (`overloaded`)."),
            retry_after=(429, 503),
        ),
    },
)
async def ping(body: PingIn, request: Request, caller: tuple[Snapshot, Campaign] = Depends(posting_key)) -> Response:
    """Pings beyond the process's in-flight limit are refused at once (503) instead of queueing."""
    svc = services(request)
    if svc.in_flight_pings >= svc.settings.max_in_flight_pings:
        raise errors.Overloaded("too many pings in flight; retry shortly", headers={"Retry-After": "1"})
    svc.in_flight_pings += 1
    try:
        return await _ping(body, request, caller)
    finally:
        svc.in_flight_pings -= 1


async def _ping(body: PingIn, request: Request, caller: tuple[Snapshot, Campaign]) -> Response:
    auction: AuctionService = services(request).auction
    idem: Idempotency = services(request).idempotency
    snap, campaign = caller

    async def run(ref: KeyRef | None, _: Claim | None) -> PingOut:
        if ref is None:  # nothing to store: the decision may end with its last write (docs/performance.md)
            return await auction.ping(snap=snap, campaign=campaign, body=body)

        async def finalize(tx: Tx, answer: PingOut) -> None:
            await idem.record_answer(tx, ref, 200, answer.model_dump_json().encode())

        return await auction.ping(snap=snap, campaign=campaign, body=body, finalize=finalize)

    return await run_idempotent(
        request, idem=idem, campaign_id=campaign.id, endpoint="ping", body=body, run=run, answer_in_unit=True
    )


async def serve_ping(scope: Scope, receive: Receive, send: Send) -> None:
    """POST /v1/ping as a bare ASGI call; `scope["app"]` is the application.

    The posting key is checked before the body is read, as on every route (docs/security.md)."""
    request = Request(scope, receive)
    try:
        caller = await _posting_key(request)
        raw = await read_body(scope, receive, services(request).settings.max_body_bytes)
        try:
            body = PingIn.model_validate_json(raw)
        except ValidationError as exc:
            raise validation_error(exc.errors(include_input=False)) from None
        response = await ping(body, request, caller)
    except errors.PingpostError as exc:
        response = error_response(exc)
    except Exception as exc:
        response = unexpected_error_response(exc)
    await response(scope, receive, send)
