"""A BuyerClient fake: answers by URL from handlers the test sets, and records every request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from pingpost.delivery.buyer_client import HttpResult

# A handler answers (status, json body), or a whole HttpResult (a timeout, a body that is not JSON).
Handler = Callable[[dict[str, Any] | None], Awaitable[tuple[int, Any] | HttpResult]]


@dataclass
class FakeBuyerClient:
    """`handlers[url]` answers (status, json body) or an HttpResult; `seen` keeps (url, body) of every request."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    seen: list[tuple[str, Any]] = field(default_factory=list)

    async def post(self, url: str, *, auth: dict[str, Any] | None, json_body: Any = None,
                   form_body: dict[str, str] | None = None, timeout_ms: int) -> HttpResult:
        self.seen.append((url, json_body if json_body is not None else form_body))
        handler = self.handlers.get(url)
        if handler is None:
            return HttpResult(status=None, body=b"", latency_ms=0, error="connection_error")
        answer = await handler(json_body)
        if isinstance(answer, HttpResult):
            return answer
        status, body = answer
        return HttpResult(status=status, body=orjson.dumps(body), latency_ms=1)

    async def close(self) -> None:
        return None


def bids(amount_cents: int) -> Handler:
    async def answer(_: dict[str, Any] | None) -> tuple[int, Any]:
        return 200, {"bid": True, "bid_cents": amount_cents}

    return answer


def accepts() -> Handler:
    async def answer(_: dict[str, Any] | None) -> tuple[int, Any]:
        return 200, {"status": "accepted"}

    return answer
