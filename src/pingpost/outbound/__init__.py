from pingpost.outbound.client import (
    AiohttpBuyerClient,
    BuyerClient,
    HttpResult,
    VendorClient,
    WebhookClient,
    auth_headers,
)

__all__ = ["AiohttpBuyerClient", "BuyerClient", "HttpResult", "VendorClient", "WebhookClient", "auth_headers"]
