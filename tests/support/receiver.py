"""A real webhook receiver for tests (docs/events.md): an aiohttp server on 127.0.0.1 that checks
every signature as a subscriber would (written here from the documented scheme, not with pingpost's
own signing code), fails the first `fail_first` requests with 500, and dedups by event id."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Receiver:
    secret: str = ""
    now_s: Callable[[], int] = lambda: 0
    fail_first: int = 0
    base: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)  # every request, in order
    processed: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id -> event, once each
    duplicates: int = 0
    bad_signatures: int = 0

    @property
    def url(self) -> str:
        return f"{self.base}/hook"

    def signature_ok(self, raw: bytes, header: str) -> bool:
        parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
        if "t" not in parts or "v1" not in parts or abs(self.now_s() - int(parts["t"])) > 300:
            return False
        expected = hmac.new(self.secret.encode(), parts["t"].encode() + b"." + raw, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, parts["v1"])

    async def hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        header = request.headers.get("Pingpost-Signature", "")
        event_id = request.headers.get("Pingpost-Event-Id", "")
        self.requests.append({"event_id": event_id, "raw": raw, "signature": header})
        if not self.signature_ok(raw, header):
            self.bad_signatures += 1
            return web.Response(status=400)
        if len(self.requests) <= self.fail_first:
            return web.Response(status=500)
        event = orjson.loads(raw)
        assert event["id"] == event_id
        if event_id in self.processed:
            self.duplicates += 1
        else:
            self.processed[event_id] = event
        return web.Response(status=200, text="ok")

    async def postback(self, request: web.Request) -> web.Response:
        self.requests.append({"path": request.path, "query": dict(request.query), "raw_query": request.query_string})
        return web.Response(status=200, text="ok")


@asynccontextmanager
async def running_receiver(**options: Any) -> AsyncIterator[Receiver]:
    receiver = Receiver(**options)
    app = web.Application()
    app.router.add_post("/hook", receiver.hook)
    app.router.add_get("/postback", receiver.postback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, shutdown_timeout=0.5)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    receiver.base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    try:
        yield receiver
    finally:
        await runner.cleanup()
