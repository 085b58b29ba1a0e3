"""The typed container of one process's services, built by the app's lifespan (`app.py`), read by
endpoints through `services(request)` instead of untyped `app.state` attributes.

The field types are imported for type checking only: this module sits below every API package in
the package graph (docs/architecture.md), so any of them may depend on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    from pingpost.admin.service import AdminService
    from pingpost.auction.service import AuctionService
    from pingpost.config import Settings
    from pingpost.db.store import Store
    from pingpost.delivery.calls import CallService
    from pingpost.delivery.direct import DirectPostService
    from pingpost.delivery.service import PostService
    from pingpost.events.conversions import ConversionService
    from pingpost.events.sender import WebhookSender
    from pingpost.events.service import EventsService
    from pingpost.idempotency import Idempotency
    from pingpost.ledger.payouts import PayoutService
    from pingpost.ledger.service import LedgerService
    from pingpost.ledger.statements import StatementService
    from pingpost.outbound.client import BuyerClient
    from pingpost.replay.service import ReplayService
    from pingpost.reports.counters import ReportCounters
    from pingpost.returns.service import ReturnService
    from pingpost.security import SecretKey


@dataclass
class Services:
    settings: Settings
    store: Store
    secret: SecretKey
    admin: AdminService
    ledger: LedgerService
    counters: ReportCounters
    client: BuyerClient
    posts: PostService
    auction: AuctionService
    direct_posts: DirectPostService
    calls: CallService
    idempotency: Idempotency
    returns: ReturnService
    payouts: PayoutService
    statements: StatementService
    events: EventsService
    conversions: ConversionService
    sender: WebhookSender | None
    replays: ReplayService
    in_flight_pings: int = 0  # this process's pings between arrival and answer (the 503 guard)


def services(connection: HTTPConnection) -> Services:
    """The process's services (a FastAPI dependency, and a plain call from ASGI code)."""
    found: Services = connection.app.state.services
    return found
