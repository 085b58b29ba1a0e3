"""Sandbox buyers: local delivery and bid endpoints with every behaviour a real buyer has.

`pingpost sandbox-buyers` serves it; tests start it in-process. Every request is recorded (path,
headers, body) and readable at `GET /_received/{buyer}`, so tests can assert exactly what each
buyer saw.
"""

from __future__ import annotations

import asyncio
import random
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
    entry = {"path": request.path, "query": dict(request.query),
             "headers": {str(k): v for k, v in request.headers.items()}, "body": body,
             "raw": raw.decode("utf-8", errors="replace")}
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
    behaviour = request.match_info["behaviour"]
    q = request.query
    if behaviour == "accept":
        return _json({"status": "accepted", "buyer_lead_id": f"bl-{random.randrange(10**9)}"})
    if behaviour == "reject":
        return _json({"status": "rejected", "reason": q.get("reason", "not interested")})
    if behaviour == "slow":
        await asyncio.sleep(int(q.get("ms", "200")) / 1000)
        return _json({"status": "accepted"})
    if behaviour == "hang":
        await asyncio.sleep(3600)
    if behaviour == "error":
        return _json({"error": "boom"}, status=int(q.get("status", "500")))
    if behaviour == "garbage":
        return web.Response(text="<html>oops", content_type="text/html")
    if behaviour == "custom":  # a JSON path rule: result.code == "OK"
        return _json({"result": {"code": q.get("code", "OK"), "message": q.get("message", "thanks"),
                                 "id": "cust-1"}})
    if behaviour == "text":  # a regex rule against the whole body
        return web.Response(text=q.get("text", "Lead matched"), content_type="text/plain")
    if behaviour == "redirect":
        raise web.HTTPFound("/deliver/other/accept")
    if behaviour == "huge":  # streamed, so a 50 MB answer costs the sandbox no memory
        total = int(q.get("bytes", str(2 * 1024 * 1024)))
        stream = web.StreamResponse(headers={"Content-Type": "application/json"})
        await stream.prepare(request)
        chunk = b"x" * 65536
        try:
            for _ in range(total // len(chunk)):
                await stream.write(chunk)
        except (ConnectionError, RuntimeError):
            return stream
        return stream
    if behaviour == "drip":  # a valid answer, one byte at a time, slowly
        stream = web.StreamResponse(headers={"Content-Type": "application/json"})
        await stream.prepare(request)
        try:
            for byte in b'{"status": "accepted"}':
                await stream.write(bytes([byte]))
                await asyncio.sleep(int(q.get("ms", "100")) / 1000)
        except (ConnectionError, RuntimeError):
            return stream
        return stream
    if behaviour == "badutf8":
        return web.Response(body=b'\xff\xfe{"status": "acc\xe9pted"}', content_type="application/json")
    if behaviour == "reset":  # drop the connection without an answer
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)
    raise web.HTTPNotFound()


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
        return _json({"response": {"decision": "BUY", "price": q.get("dollars", "85.00"), "ref": "F-1",
                                   "dest": {"phone": q.get("phone", "+13055550199")}}})
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
