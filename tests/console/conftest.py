"""The console's app: the real ASGI app on both stores, buyers answering through the outbound
seam's fake transport, and one httpx client per browser-like session (cookies kept apart)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import httpx
import pytest

from pingpost.app import create_app
from pingpost.config import Settings
from pingpost.db.store import Store
from tests.conftest import Api
from tests.support.buyers import FakeBuyerClient, accepts, bids
from tests.support.console import BID_URL, DELIVER_ALPHA, DELIVER_BRAVO

Clients = Callable[[], httpx.AsyncClient]


@pytest.fixture
def fake_buyers() -> FakeBuyerClient:
    return FakeBuyerClient({BID_URL: bids(6000), DELIVER_ALPHA: accepts(), DELIVER_BRAVO: accepts()})


@pytest.fixture
async def console_app(
    settings: Settings, store: Store, fake_buyers: FakeBuyerClient
) -> AsyncIterator[tuple[Api, Clients]]:
    """(the admin API client, a factory of fresh console clients without any key)."""
    app = create_app(settings, store=store, client=fake_buyers)
    async with app.router.lifespan_context(app), AsyncExitStack() as stack:
        transport = httpx.ASGITransport(app=app)

        def client() -> httpx.AsyncClient:
            made = httpx.AsyncClient(transport=transport, base_url="http://test")
            stack.push_async_callback(made.aclose)
            return made

        yield Api(client()), client
