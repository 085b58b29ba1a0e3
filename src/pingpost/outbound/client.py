"""The one seam for calls to buyers: a total deadline, no redirects, a capped response body."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import aiohttp
import orjson

MAX_RESPONSE_BYTES = 256 * 1024


@dataclass(frozen=True)
class HttpResult:
    """What came back: a status and body, or `error` (timeout, connection_error, too_large)."""

    status: int | None
    body: bytes
    latency_ms: int
    error: str | None = None


def auth_headers(auth: dict[str, Any] | None) -> dict[str, str]:
    if not auth or auth["type"] == "none":
        return {}
    if auth["type"] == "bearer":
        return {"Authorization": f"Bearer {auth['token']}"}
    if auth["type"] == "header":
        return {auth["name"]: auth["value"]}
    if auth["type"] == "basic":
        raw = f"{auth['username']}:{auth['password']}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    return {}


class BuyerClient(Protocol):
    async def post(
        self,
        url: str,
        *,
        auth: dict[str, Any] | None,
        json_body: Any = None,
        form_body: dict[str, str] | None = None,
        timeout_ms: int,
    ) -> HttpResult:
        """POST to a buyer under a total deadline of `timeout_ms`; never raises for buyer faults."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class WebhookClient(Protocol):
    async def request(
        self, method: str, url: str, *, headers: dict[str, str], body: bytes | None, timeout_ms: int
    ) -> HttpResult:
        """One webhook POST or postback GET under the same rules as buyers' calls (a total deadline, no
        redirects followed); the answer's body is read up to a small bound and otherwise ignored."""
        ...


WEBHOOK_BODY_BYTES = 4096


@runtime_checkable
class VendorClient(Protocol):
    """Calls to verification vendors (docs/verification.md): a method, headers of the caller's making
    (a vendor's auth and API version), the same total deadline, capped body and no redirects."""

    async def vendor_request(
        self,
        method: Literal["GET", "POST"],
        url: str,
        *,
        headers: Mapping[str, str],
        json_body: Any = None,
        timeout_ms: int,
    ) -> HttpResult:
        """Never raises for the vendor's faults: they come back as `HttpResult.error`."""
        ...


class AiohttpBuyerClient:
    """One shared aiohttp session sized for the auction's fan-out (docs/security.md)."""

    def __init__(self, *, max_connections: int = 1000, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._max_connections = max_connections
        self.max_response_bytes = max_response_bytes

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, ttl_dns_cache=300, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=True,
            )
        return self._session

    async def post(
        self,
        url: str,
        *,
        auth: dict[str, Any] | None,
        json_body: Any = None,
        form_body: dict[str, str] | None = None,
        timeout_ms: int,
    ) -> HttpResult:
        headers = {"User-Agent": "pingpost/0.1", **auth_headers(auth)}
        data: Any
        if form_body is not None:
            data = aiohttp.FormData(form_body)
        else:
            data = orjson.dumps(json_body)
            headers["Content-Type"] = "application/json"
        return await self._send("POST", url, headers=headers, data=data, timeout_ms=timeout_ms)

    async def vendor_request(
        self,
        method: Literal["GET", "POST"],
        url: str,
        *,
        headers: Mapping[str, str],
        json_body: Any = None,
        timeout_ms: int,
    ) -> HttpResult:
        sent = {"User-Agent": "pingpost/0.1", **headers}
        data: Any = None
        if method == "POST":
            data = orjson.dumps(json_body)
            sent["Content-Type"] = "application/json"
        return await self._send(method, url, headers=sent, data=data, timeout_ms=timeout_ms)

    async def _send(self, method: str, url: str, *, headers: dict[str, str], data: Any, timeout_ms: int) -> HttpResult:
        started = time.perf_counter()

        def elapsed() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            async with asyncio.timeout(timeout_ms / 1000):
                async with self._client().request(
                    method, url, data=data, headers=headers, allow_redirects=False
                ) as resp:
                    body = bytearray()
                    async for chunk in resp.content.iter_chunked(16384):
                        body += chunk
                        if len(body) > self.max_response_bytes:
                            return HttpResult(resp.status, b"", elapsed(), "too_large")
                    return HttpResult(resp.status, bytes(body), elapsed())
        except TimeoutError:
            return HttpResult(None, b"", elapsed(), "timeout")
        except (aiohttp.ClientError, OSError, ValueError):
            return HttpResult(None, b"", elapsed(), "connection_error")

    async def request(
        self, method: str, url: str, *, headers: dict[str, str], body: bytes | None, timeout_ms: int
    ) -> HttpResult:
        started = time.perf_counter()

        def elapsed() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            async with asyncio.timeout(timeout_ms / 1000):
                async with self._client().request(
                    method, url, data=body, headers={"User-Agent": "pingpost/0.1", **headers}, allow_redirects=False
                ) as resp:
                    kept = bytearray()
                    async for chunk in resp.content.iter_chunked(4096):
                        kept += chunk[: WEBHOOK_BODY_BYTES - len(kept)]
                        if len(kept) >= WEBHOOK_BODY_BYTES:
                            break  # the status decides; the rest of an answer is never read
                    return HttpResult(resp.status, bytes(kept), elapsed())
        except TimeoutError:
            return HttpResult(None, b"", elapsed(), "timeout")
        except (aiohttp.ClientError, OSError, ValueError):
            return HttpResult(None, b"", elapsed(), "connection_error")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
