"""Builds the ASGI app: routers, error handlers, lifespan (store, secret key, config snapshot)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from pingpost import errors
from pingpost.accounts.endpoints import buyer_router as buyer_accounts_router
from pingpost.accounts.endpoints import router as accounts_router
from pingpost.admin.endpoints import router as admin_router
from pingpost.admin.pings import router as pings_router
from pingpost.admin.sales import buyer_router
from pingpost.admin.sales import router as sales_router
from pingpost.admin.service import AdminService
from pingpost.admin.suppression_endpoints import router as suppression_router
from pingpost.auction.endpoints import router as partner_router
from pingpost.auction.endpoints import serve_ping
from pingpost.auction.leases import LeaseBook
from pingpost.auction.rtb import AiohttpRtbBidder
from pingpost.auction.service import AuctionDefaults, AuctionService
from pingpost.auction.snapshot import SnapshotCache
from pingpost.bootstrap import check_fingerprint, ensure_admin_token, load_secret_key
from pingpost.config import Settings
from pingpost.console import mount as mount_console
from pingpost.db.store import Store, open_store
from pingpost.delivery.call_endpoints import router as calls_router
from pingpost.delivery.calls import CallService
from pingpost.delivery.direct import DirectPostService
from pingpost.delivery.endpoints import router as post_router
from pingpost.delivery.service import PostService
from pingpost.delivery.verification import Vendors, Verifier
from pingpost.events.conversions import ConversionService
from pingpost.events.endpoints import buyer_router as buyer_events_router
from pingpost.events.endpoints import router as events_router
from pingpost.events.sender import WebhookSender
from pingpost.events.service import EventsService
from pingpost.http import BodyLimit, ORJSONResponse, install_error_handlers, refusals
from pingpost.idempotency import Idempotency
from pingpost.ledger.payouts import PayoutService
from pingpost.ledger.service import LedgerService
from pingpost.ledger.statements import StatementService
from pingpost.logs import configure_logging
from pingpost.outbound.client import AiohttpBuyerClient, BuyerClient, VendorClient, WebhookClient
from pingpost.replay.endpoints import router as replays_router
from pingpost.replay.service import ReplayService
from pingpost.reports.counters import ReportCounters
from pingpost.returns.endpoints import buyer_router as buyer_returns_router
from pingpost.returns.endpoints import router as returns_router
from pingpost.returns.service import ReturnService
from pingpost.services import Services, services


class PingpostApp(FastAPI):
    """FastAPI, with `POST /v1/ping` answered straight from the ASGI entry point by `serve_ping`
    (see auction/endpoints.py: the route FastAPI documents is the one served, without the middleware
    stack and router, measured as most of a ping's framework cost; docs/performance.md).

    The fast path does itself what the middleware stack does for every other route (the body limit),
    and nothing more: adding any other middleware makes the application refuse to start, instead of
    silently skipping the busiest route."""

    FAST_PATH_COVERS: tuple[object, ...] = (BodyLimit,)

    def build_middleware_stack(self) -> ASGIApp:
        skipped = [m.cls for m in self.user_middleware if not any(m.cls is c for c in self.FAST_PATH_COVERS)]
        if skipped:
            names = ", ".join(getattr(cls, "__name__", str(cls)) for cls in skipped)
            raise RuntimeError(
                f"middleware {names} would not run on POST /v1/ping's fast path "
                "(auction/endpoints.py serve_ping): make the fast path do it too, then allow it here"
            )
        return super().build_middleware_stack()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/ping" and scope["method"] == "POST":
            scope["app"] = self
            await serve_ping(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _lease_book(store: Store, settings: Settings) -> LeaseBook | None:
    """This process's leases of cap slots and funds (docs/scale-out.md), started; None when off."""
    if not (settings.leases and settings.lease_ttl_ms > 0):
        return None
    book = LeaseBook(
        store,
        ttl_ms=settings.lease_ttl_ms,
        max_slots=settings.lease_max_slots,
        share=max(2, settings.lease_share),
        min_left=max(2, settings.lease_min_left),
    )
    book.start()
    return book


def create_app(
    settings: Settings | None = None, *, store: Store | None = None, client: BuyerClient | None = None
) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = store is None
        opened = store or await open_store(
            settings.database_url,
            pool_size=settings.db_pool_size,
            statement_cache_size=settings.db_statement_cache_size,
        )
        counters: ReportCounters | None = None
        outbound: BuyerClient | None = None
        sender: WebhookSender | None = None
        own_vendor_client: AiohttpBuyerClient | None = None
        leases: LeaseBook | None = None
        try:
            secret = load_secret_key(settings)
            await check_fingerprint(opened, secret)
            await ensure_admin_token(opened, settings)
            counters = ReportCounters(opened)
            counters.start()
            outbound = client or AiohttpBuyerClient()
            leases = _lease_book(opened, settings)
            # Verification vendors go through the same seam; a test double without vendor calls gets a
            # real client of its own for them (docs/verification.md).
            if not isinstance(outbound, VendorClient):
                own_vendor_client = AiohttpBuyerClient(max_connections=100)
            vendors = own_vendor_client or cast(VendorClient, outbound)
            posts = PostService(
                store=opened,
                secret=secret,
                client=outbound,
                grace_ms=settings.delivery_grace_ms,
                verifier=Verifier(client=vendors, vendors=Vendors.from_settings(settings)),
            )
            auction = AuctionService(
                store=opened,
                snapshots=SnapshotCache(opened),
                secret=secret,
                rtb=AiohttpRtbBidder(outbound),
                defaults=AuctionDefaults(
                    static_fallback=settings.static_fallback, rate_limit_per_s=settings.ping_rate_limit_per_s
                ),
                counters=counters,
                leases=leases,
            )
            if settings.webhook_sender and isinstance(outbound, WebhookClient):
                sender = WebhookSender(opened, outbound)
            app.state.services = Services(
                settings=settings,
                store=opened,
                secret=secret,
                admin=AdminService(opened),
                ledger=LedgerService(opened),
                counters=counters,
                client=outbound,
                posts=posts,
                auction=auction,
                direct_posts=DirectPostService(store=opened, auction=auction, posts=posts),
                calls=CallService(store=opened, posts=posts),
                idempotency=Idempotency(opened, lease_ms=settings.idempotency_lease_s * 1000),
                returns=ReturnService(opened),
                payouts=PayoutService(opened),
                statements=StatementService(opened),
                events=EventsService(opened),
                conversions=ConversionService(opened),
                sender=sender,
                replays=ReplayService(opened, static_fallback=settings.static_fallback),
            )
            await auction.snapshots.current()
            # Everything alive now lives for the whole process: keep it out of the collector's full
            # passes, which otherwise stalled the event loop for ~70 ms (seen as the RTB p99).
            gc.collect()
            gc.freeze()
            # A ping allocates a few hundred short-lived objects (rows, dicts, the waterfall): with the
            # default young-generation threshold (700) the collector ran every other ping. Measured:
            # +4 % peak pings/s; cyclic garbage waits a little longer, memory stays flat.
            gc.set_threshold(20_000, 20, 20)
            if sender is not None:
                sender.start()  # one per database is active: the others wait on its lease
            yield
        finally:
            if sender is not None:
                await sender.stop()
            if leases is not None:
                await leases.stop()  # give back what this process holds
            if counters is not None:
                await counters.stop()
            if client is None and outbound is not None:
                await outbound.close()
            if own_vendor_client is not None:
                await own_vendor_client.close()
            if own_store:
                await opened.close()

    app = PingpostApp(
        title="pingpost",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        description="Real-time lead and call exchange: ping, auction, post, ledger.",
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(partner_router)
    app.include_router(post_router)
    app.include_router(calls_router)
    app.include_router(admin_router)
    app.include_router(suppression_router)
    app.include_router(pings_router)
    app.include_router(sales_router)
    app.include_router(replays_router)
    app.include_router(buyer_router)
    mount_console(app)
    app.include_router(returns_router)
    app.include_router(buyer_returns_router)
    app.include_router(accounts_router)
    app.include_router(buyer_accounts_router)
    app.include_router(events_router)
    app.include_router(buyer_events_router)

    @app.get("/healthz", tags=["health"], summary="Process up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Database reachable",
        responses=refusals((503, "The database is unreachable (`not_ready`).")),
    )
    async def readyz(request: Request) -> dict[str, str]:
        try:
            await services(request).store.ping()
        except Exception:
            raise errors.PingpostError("database unreachable", code="not_ready", status=503) from None
        return {"status": "ready"}

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        from pingpost.metrics import render

        body, content_type = render()
        return Response(body, media_type=content_type)

    return app


def app_factory() -> Any:
    """Entry point for `uvicorn --factory` in worker processes."""
    return create_app()
