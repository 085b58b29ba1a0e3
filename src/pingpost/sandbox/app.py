"""Sandbox buyers: local delivery and bid endpoints with every behaviour a real buyer has, and
TrustedForm-like, Jornaya-like and validator endpoints for verification at post.

`pingpost sandbox-buyers` serves it; tests start it in-process. Every request is recorded (path,
headers, body) and readable at `GET /_received/{buyer}`, so tests can assert exactly what each
buyer saw.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from aiohttp import web

MAX_KEPT = 200
RECEIVED: web.AppKey[dict[str, list[dict[str, Any]]]] = web.AppKey("received", dict)


async def _record(request: web.Request, kept_as: str | None = None) -> dict[str, Any]:
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
    kept = request.app[RECEIVED].setdefault(kept_as or request.match_info.get("buyer", "_"), [])
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


# --- verification vendors (docs/verification.md): TrustedForm-like, Jornaya-like, a validator ----------
# Each decides by the request: a certificate id, LeadiD token or validator path starting with `hang`
# never answers, `error` answers 500, `fail` (and `nomatch`, `expired` for TrustedForm) fails, anything
# else passes. Requests are kept under `trustedform`, `jornaya` and `validator` (`GET /_received/...`).


def _basic_user(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        return base64.b64decode(header[6:]).decode().split(":", 1)[0]
    except (ValueError, UnicodeDecodeError):
        return None


async def trustedform(request: web.Request) -> web.StreamResponse:
    """A TrustedForm v4 certificate URL: POST with `api-version: 4.0`, Basic auth user `API`."""
    entry = await _record(request, "trustedform")
    cert = request.match_info["cert_id"]
    if request.headers.get("api-version") != "4.0" or _basic_user(request) != "API":
        return _json({"outcome": "error", "reason": "authentication failed"}, status=401)
    if cert.startswith("hang"):
        await asyncio.sleep(3600)
    if cert.startswith("error"):
        return _json({"outcome": "error", "reason": "internal error"}, status=500)
    if cert.startswith("expired"):
        return _json({"outcome": "failure", "reason": "certificate not found"}, status=404)
    body = entry["body"] if isinstance(entry["body"], dict) else {}
    lead = body.get("match_lead") or {}
    matched = not cert.startswith(("fail", "nomatch"))
    return _json(
        {
            "outcome": "success" if matched else "failure",
            "reason": None if matched else "the lead does not match the certificate",
            "match_lead": {
                "email": lead.get("email"),
                "phone": lead.get("phone"),
                "result": {
                    "success": matched,
                    "email_match": matched if lead.get("email") else None,
                    "phone_match": matched if lead.get("phone") else None,
                },
            },
            "retain": {"result": {"previously_retained": False, "expires_at": "2031-12-02T00:00:00Z"}},
        }
    )


async def jornaya(request: web.Request) -> web.StreamResponse:
    """Jornaya's `GET /Authenticate?lac={account code}&id={LeadiD token}`."""
    await _record(request, "jornaya")
    token = request.query.get("id", "")
    if not request.query.get("lac"):
        return _json({"error": "missing account code"}, status=400)
    if token.startswith("hang"):
        await asyncio.sleep(3600)
    if token.startswith("error"):
        return _json({"error": "internal"}, status=500)
    return _json({"authenticate": {"authentic": 0 if token.startswith("fail") else 1, "token": token}})


async def validator(request: web.Request) -> web.StreamResponse:
    """An operator's own `http` validator: `{"valid": true}` unless the path says otherwise."""
    await _record(request, "validator")
    behaviour = request.match_info["behaviour"]
    if behaviour.startswith("hang"):
        await asyncio.sleep(3600)
    if behaviour.startswith("error"):
        return _json({"error": "internal"}, status=500)
    if behaviour.startswith("fail"):
        return _json({"valid": False, "reason": "rejected by the validator"})
    return _json({"valid": True})


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
    app.router.add_post("/trustedform/{cert_id}", trustedform)
    app.router.add_get("/jornaya/Authenticate", jornaya)
    app.router.add_post("/validate/{behaviour}", validator)
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
