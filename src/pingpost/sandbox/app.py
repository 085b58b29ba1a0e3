"""Sandbox buyers: local delivery and bid endpoints with every behaviour a real buyer has.

`pingpost sandbox-buyers` serves it; tests start it in-process. Every request is recorded (path,
headers, body) and readable at `GET /_received/{buyer}`, so tests can assert exactly what each
buyer saw.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from aiohttp import web

MAX_KEPT = 200
RECEIVED: web.AppKey[dict[str, list[dict[str, Any]]]] = web.AppKey("received", dict)


async def _record(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    body: Any
    if request.content_type == "application/x-www-form-urlencoded":
        body = dict((await request.post()).items())
    else:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", errors="replace")
    entry = {
        "path": request.path,
        "query": dict(request.query),
        "headers": {str(k): v for k, v in request.headers.items()},
        "body": body,
        "raw": raw.decode("utf-8", errors="replace"),
    }
    # Only the latest requests per buyer are kept: a long benchmark must not grow the sandbox's heap
    # (its garbage-collection pauses would show up as buyer latency).
    kept = request.app[RECEIVED].setdefault(request.match_info.get("buyer", "_"), [])
    kept.append(entry)
    if len(kept) > MAX_KEPT:
        del kept[: len(kept) - MAX_KEPT]
    return entry


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def deliver(request: web.Request) -> web.StreamResponse:
    await _record(request)
    behaviour = _DELIVER_BEHAVIOURS.get(request.match_info["behaviour"])
    if behaviour is None:
        raise web.HTTPNotFound()
    return await behaviour(request)


async def _accept(request: web.Request) -> web.StreamResponse:
    return _json({"status": "accepted", "buyer_lead_id": f"bl-{random.randrange(10**9)}"})


async def _reject(request: web.Request) -> web.StreamResponse:
    return _json({"status": "rejected", "reason": request.query.get("reason", "not interested")})


async def _slow_accept(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(int(request.query.get("ms", "200")) / 1000)
    return _json({"status": "accepted"})


async def _hang(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(3600)
    raise web.HTTPNotFound()


async def _error(request: web.Request) -> web.StreamResponse:
    return _json({"error": "boom"}, status=int(request.query.get("status", "500")))


async def _garbage(request: web.Request) -> web.StreamResponse:
    return web.Response(text="<html>oops", content_type="text/html")


async def _custom(request: web.Request) -> web.StreamResponse:
    """For a JSON path rule: result.code == "OK"."""
    q = request.query
    return _json({"result": {"code": q.get("code", "OK"), "message": q.get("message", "thanks"), "id": "cust-1"}})


async def _text(request: web.Request) -> web.StreamResponse:
    """For a regex rule against the whole body."""
    return web.Response(text=request.query.get("text", "Lead matched"), content_type="text/plain")


async def _redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/deliver/other/accept")


async def _stream(request: web.Request, chunks: Iterable[bytes], pause_s: float | None = None) -> web.StreamResponse:
    """A JSON answer written chunk by chunk (`pause_s` after each); a client that hangs up ends it."""
    stream = web.StreamResponse(headers={"Content-Type": "application/json"})
    await stream.prepare(request)
    try:
        for chunk in chunks:
            await stream.write(chunk)
            if pause_s is not None:
                await asyncio.sleep(pause_s)
    except (ConnectionError, RuntimeError):
        return stream
    return stream


async def _huge(request: web.Request) -> web.StreamResponse:
    """Streamed, so a 50 MB answer costs the sandbox no memory."""
    total = int(request.query.get("bytes", str(2 * 1024 * 1024)))
    chunk = b"x" * 65536
    return await _stream(request, (chunk for _ in range(total // len(chunk))))


async def _drip(request: web.Request) -> web.StreamResponse:
    """A valid answer, one byte at a time, slowly."""
    pause_s = int(request.query.get("ms", "100")) / 1000
    return await _stream(request, (bytes([byte]) for byte in b'{"status": "accepted"}'), pause_s)


async def _bad_utf8(request: web.Request) -> web.StreamResponse:
    return web.Response(body=b'\xff\xfe{"status": "acc\xe9pted"}', content_type="application/json")


async def _reset(request: web.Request) -> web.StreamResponse:
    """Drop the connection without an answer."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


_DELIVER_BEHAVIOURS: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
    "accept": _accept,
    "reject": _reject,
    "slow": _slow_accept,
    "hang": _hang,
    "error": _error,
    "garbage": _garbage,
    "custom": _custom,
    "text": _text,
    "redirect": _redirect,
    "huge": _huge,
    "drip": _drip,
    "badutf8": _bad_utf8,
    "reset": _reset,
}


async def bid(request: web.Request) -> web.StreamResponse:
    entry = await _record(request)
    behaviour = request.match_info["behaviour"]
    q = request.query
    if behaviour == "fixed":
        answer: dict[str, Any] = {"bid_cents": int(q.get("cents", "5000"))}
        if "exclusive" in q:
            answer["exclusive_bid_cents"] = int(q["exclusive"])
        if "ref" in q:
            answer["bid_ref"] = q["ref"]
        if "phone" in q:
            answer["transfer"] = {"phone": q["phone"]}
        return _json(answer)
    if behaviour == "call":  # a call buyer: a bid with the number to transfer the caller to
        return _json({"bid_cents": int(q.get("cents", "4000")), "transfer": {"phone": q.get("phone", "+18005550100")}})
    if behaviour == "random":
        return _json({"bid_cents": random.randint(int(q.get("min", "1000")), int(q.get("max", "9000")))})
    if behaviour == "nobid":
        return _json({"no_bid": True, "reason": "not buying"})
    if behaviour == "empty":
        return web.Response(status=204)
    if behaviour == "slow":
        await asyncio.sleep(int(q.get("ms", "50")) / 1000)
        return _json({"bid_cents": int(q.get("cents", "5000"))})
    if behaviour == "hang":
        await asyncio.sleep(3600)
    if behaviour == "error":
        return _json({"error": "boom"}, status=500)
    if behaviour == "garbage":
        return web.Response(text="not json", content_type="text/plain")
    if behaviour == "foreign":  # a buyer with its own format, needs rtb.response mapping
        lead = entry["body"].get("lead", {}) if isinstance(entry["body"], dict) else {}
        if lead.get("state") == q.get("skip_state", "--"):
            return _json({"response": {"decision": "PASS"}})
        return _json(
            {
                "response": {
                    "decision": "BUY",
                    "price": q.get("dollars", "85.00"),
                    "ref": "F-1",
                    "dest": {"phone": q.get("phone", "+13055550199")},
                }
            }
        )
    raise web.HTTPNotFound()


async def received(request: web.Request) -> web.Response:
    return _json(request.app[RECEIVED].get(request.match_info["buyer"], []))


async def clear(request: web.Request) -> web.Response:
    request.app[RECEIVED].clear()
    return _json({"cleared": True})


def sandbox_app() -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[RECEIVED] = {}
    app.router.add_post("/deliver/{buyer}/{behaviour}", deliver)
    app.router.add_post("/bid/{buyer}/{behaviour}", bid)
    app.router.add_get("/_received/{buyer}", received)
    app.router.add_delete("/_received", clear)
    return app


async def start_sandbox(host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Start the sandbox in the running loop; answer the runner and its base URL."""
    runner = web.AppRunner(sandbox_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, shutdown_timeout=0.5)  # hanging handlers must not hold up shutdown
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, f"http://{host}:{bound}"
