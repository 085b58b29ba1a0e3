"""Call events (docs/protocol.md, Calls), authenticated with a call_platform API key, never a posting key."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request

from pingpost.auth import call_platform_key
from pingpost.delivery.call_schemas import Completed, CompletedOut, Connected, ConnectedOut, Failed, FailedOut
from pingpost.delivery.calls import CallService
from pingpost.domain.model import Snapshot
from pingpost.http import RUNTIME_LEAD, refusals
from pingpost.services import services

# The key is checked before the body is read (docs/security.md).
router = APIRouter(
    prefix="/v1/calls", tags=["calls"], route_class=call_platform_key.route, dependencies=call_platform_key.documented
)
PingPath = Path(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


async def _context(request: Request) -> tuple[CallService, Snapshot]:
    service: CallService = services(request).calls
    return service, await services(request).auction.snapshots.current()


_EVENT = (404, "Unknown ping or bid (`not_found`).")
_NOT_A_CALL = "`channel_mismatch` (a form ping)"
# Why no request shape guarantees an answer: the ids are those of a call the exchange is running.
_CALL_BID = (
    "`ping_id` and `bid_id` name a bid of a `call` or `callback` ping made at run time: a form ping's "
    "is 422 (`channel_mismatch`), an unknown one 404 (docs/protocol.md, Calls)."
)


@router.post(
    "/{ping_id}/connected",
    summary="The call connected: post the caller record to that buyer only",
    description=f"{RUNTIME_LEAD} The caller record is checked like a post's lead. {_CALL_BID}",
    responses=refusals(
        400,
        401,
        _EVENT,
        (409, "Not the active bid (`conflict`, `details.role`); `concurrency_cap_reached`; `event_conflict`."),
        (410, "The bid's reservation lapsed (`bid_expired`)."),
        413,
        (422, f"`validation_error`, `unknown_field`, {_NOT_A_CALL}, `lead_mismatch`, `consumer_mismatch`."),
    ),
)
async def connected(body: Connected, request: Request, ping_id: str = PingPath) -> ConnectedOut:
    service, snap = await _context(request)
    return await service.connected(snap=snap, ping_id=ping_id, body=body)


@router.post(
    "/{ping_id}/failed",
    summary="The transfer failed: release the bid and get the next standby",
    description=_CALL_BID,
    responses=refusals(
        400,
        401,
        _EVENT,
        (409, "Not the active bid (`conflict`, `details.role`); `event_conflict`."),
        (410, "The bid's reservation lapsed (`bid_expired`)."),
        413,
        (422, f"`validation_error`, {_NOT_A_CALL}."),
    ),
)
async def failed(body: Failed, request: Request, ping_id: str = PingPath) -> FailedOut:
    service, snap = await _context(request)
    return await service.failed(snap=snap, ping_id=ping_id, body=body)


@router.post(
    "/{ping_id}/completed",
    summary="The call ended: bill it or void it by its duration",
    description=_CALL_BID,
    responses=refusals(
        400,
        401,
        _EVENT,
        (409, "Not a connected bid (`conflict`, `details.role`); `event_conflict`."),
        413,
        (422, f"`validation_error`, {_NOT_A_CALL}."),
    ),
)
async def completed(body: Completed, request: Request, ping_id: str = PingPath) -> CompletedOut:
    service, snap = await _context(request)
    return await service.completed(snap=snap, ping_id=ping_id, body=body)
