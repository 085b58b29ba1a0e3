"""Partner ping endpoint (SPEC 5.1).

The route FastAPI documents (OpenAPI, /docs) is served by `serve_ping`, which the application
calls straight from its ASGI entry point (`app.PingpostApp`), ahead of the middleware stack and the
router, and which validates the same `PingIn` model with pydantic's compiled JSON parser. It keeps
what that stack gives every other route: the body limit (413), the error shape, and a 500 without
details for anything unexpected. FastAPI's request machinery and the middleware stack cost more
CPU than the rest of a ping's framework work together, and the ping is the hot path
(docs/performance.md).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from pingpost import errors
from pingpost.auction.schemas import PingIn, PingOut
from pingpost.auction.service import AuctionService
from pingpost.auth import bearer
from pingpost.db.store import Tx
from pingpost.delivery.idempotency import Claim, Idempotency, KeyRef, run_idempotent
from pingpost.http import error_response, read_body, unexpected_error_response, validation_error

router = APIRouter(prefix="/v1", tags=["partner"])


@router.post("/ping", response_model=PingOut,
             summary="Ping with anonymous lead data; answers the winning bids as payouts")
async def ping(body: PingIn, request: Request) -> Response:
    """Pings beyond the process's in-flight limit are refused at once (503) instead of queueing."""
    state = request.app.state
    if state.in_flight_pings >= state.settings.max_in_flight_pings:
        raise errors.Overloaded("too many pings in flight; retry shortly", headers={"Retry-After": "1"})
    state.in_flight_pings += 1
    try:
        return await _ping(body, request)
    finally:
        state.in_flight_pings -= 1


async def _ping(body: PingIn, request: Request) -> Response:
    auction: AuctionService = request.app.state.auction
    idem: Idempotency = request.app.state.idempotency
    snap, campaign = await auction.authenticate(bearer(request), cached=True)

    async def run(ref: KeyRef | None, _: Claim | None) -> PingOut:
        async def finalize(tx: Tx, answer: PingOut) -> None:
            if ref is not None:
                await idem.record_answer(tx, ref, 200, answer.model_dump_json().encode())

        return await auction.ping(snap=snap, campaign=campaign, body=body, finalize=finalize)

    return await run_idempotent(request, idem=idem, campaign_id=campaign.id, endpoint="ping", body=body, run=run,
                                answer_in_unit=True)


async def serve_ping(scope: Scope, receive: Receive, send: Send) -> None:
    """POST /v1/ping as a bare ASGI call; `scope["app"]` is the application."""
    request = Request(scope, receive)
    try:
        raw = await read_body(scope, receive, request.app.state.settings.max_body_bytes)
        try:
            body = PingIn.model_validate_json(raw)
        except ValidationError as exc:
            raise validation_error(exc.errors(include_input=False)) from None
        response = await ping(body, request)
    except errors.PingpostError as exc:
        response = error_response(exc)
    except Exception as exc:
        response = unexpected_error_response(exc)
    await response(scope, receive, send)
