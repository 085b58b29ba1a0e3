"""A fake transport for the outbound seam: answers by URL from handlers, records every request,
and keeps the real client's total deadline (a handler slower than `timeout_ms` is a timeout)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from pingpost.outbound.client import HttpResult


@dataclass(frozen=True)
class Sent:
    """One request as the buyer received it."""

    url: str
    body: Any  # the JSON document, or the form fields
    auth: dict[str, Any] | None
    timeout_ms: int
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)  # a vendor call's own headers


Handler = Callable[[Sent], Awaitable[HttpResult | tuple[int, Any]]]


@dataclass
class FakeBuyerClient:
    """`handlers[url]` answers a request: an `HttpResult`, or (status, JSON body). A URL without a
    handler is a connection error. `sent` keeps every request in order."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)

    async def post(
        self,
        url: str,
        *,
        auth: dict[str, Any] | None,
        json_body: Any = None,
        form_body: dict[str, str] | None = None,
        timeout_ms: int,
    ) -> HttpResult:
        request = Sent(url, json_body if json_body is not None else form_body, auth, timeout_ms)
        return await self._answer(request)

    async def request(
        self, method: str, url: str, *, headers: dict[str, str], body: bytes | None, timeout_ms: int
    ) -> HttpResult:
        """A webhook POST or postback GET: `Sent.body` holds the raw bytes (None for a GET)."""
        return await self._answer(Sent(url, body, None, timeout_ms, method, dict(headers)))

    async def vendor_request(
        self,
        method: Literal["GET", "POST"],
        url: str,
        *,
        headers: Mapping[str, str],
        json_body: Any = None,
        timeout_ms: int,
    ) -> HttpResult:
        """A verification vendor's call (`VendorClient`), answered by the handler of its URL as given
        (query string included)."""
        return await self._answer(Sent(url, json_body, None, timeout_ms, method, dict(headers)))

    async def _answer(self, request: Sent) -> HttpResult:
        url, timeout_ms = request.url, request.timeout_ms
        self.sent.append(request)
        handler = self.handlers.get(url)
        started = time.perf_counter()
        if handler is None:
            return HttpResult(None, b"", 0, "connection_error")
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                answer = await handler(request)
        except TimeoutError:
            return HttpResult(None, b"", int((time.perf_counter() - started) * 1000), "timeout")
        if isinstance(answer, HttpResult):
            return answer
        status, body = answer
        return HttpResult(status, orjson.dumps(body), int((time.perf_counter() - started) * 1000))

    def to(self, url: str) -> list[Sent]:
        """The requests sent to `url`."""
        return [s for s in self.sent if s.url == url]

    async def close(self) -> None:
        return None


def answers(status: int, body: Any) -> Handler:
    """A handler that always answers (status, body)."""

    async def handler(_: Sent) -> tuple[int, Any]:
        return status, body

    return handler


def hangs() -> Handler:
    """A handler that never answers (the caller's deadline ends it)."""

    async def handler(_: Sent) -> tuple[int, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return handler
