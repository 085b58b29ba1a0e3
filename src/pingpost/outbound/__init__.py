"""Every outbound HTTP call (buyers' bids and deliveries, later webhooks and verifiers) goes through
one seam: `BuyerClient`, an aiohttp implementation sharing one session, and a fake transport for
tests (`outbound.fake`), as httpx's MockTransport (docs/architecture.md)."""

from pingpost.outbound.client import AiohttpBuyerClient, BuyerClient, HttpResult, VendorClient, auth_headers

__all__ = ["AiohttpBuyerClient", "BuyerClient", "HttpResult", "VendorClient", "auth_headers"]
