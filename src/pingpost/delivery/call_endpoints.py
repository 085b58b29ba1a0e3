"""Call events (docs/protocol.md, Calls), authenticated with a call_platform API key, never a posting key."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request

from pingpost.auth import call_platform_key
from pingpost.delivery.call_schemas import Completed, CompletedOut, Connected, ConnectedOut, Failed, FailedOut
from pingpost.delivery.calls import CallService
from pingpost.domain.model import Snapshot
from pingpost.services import services

# The key is checked before the body is read (docs/security.md).
router = APIRouter(prefix="/v1/calls", tags=["calls"], route_class=call_platform_key.route)
PingPath = Path(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


async def _context(request: Request) -> tuple[CallService, Snapshot]:
    service: CallService = services(request).calls
    return service, await services(request).auction.snapshots.current()


@router.post("/{ping_id}/connected", summary="The call connected: post the caller record to that buyer only")
async def connected(body: Connected, request: Request, ping_id: str = PingPath) -> ConnectedOut:
    service, snap = await _context(request)
    return await service.connected(snap=snap, ping_id=ping_id, body=body)


@router.post("/{ping_id}/failed", summary="The transfer failed: release the bid and get the next standby")
async def failed(body: Failed, request: Request, ping_id: str = PingPath) -> FailedOut:
    service, snap = await _context(request)
    return await service.failed(snap=snap, ping_id=ping_id, body=body)


@router.post("/{ping_id}/completed", summary="The call ended: bill it or void it by its duration")
async def completed(body: Completed, request: Request, ping_id: str = PingPath) -> CompletedOut:
    service, snap = await _context(request)
    return await service.completed(snap=snap, ping_id=ping_id, body=body)
