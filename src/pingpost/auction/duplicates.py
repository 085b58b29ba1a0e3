"""Duplicate pings (docs/protocol.md, Traffic controls): a ping equal to an earlier ping of the same
campaign within its `duplicate_ping_window_s` runs no auction and takes no reservation.

Equal means the same lead fields, channel, source and consumer hashes; the key is a keyed hash of
them (HMAC under the server's secret, as consumer hashes are), stored with the ping only when the
campaign has a window, so the lookup is one indexed read, and none when the window is 0."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from pingpost.auction.schemas import BidOut, PingOut
from pingpost.domain.model import Campaign
from pingpost.security import SecretKey
from pingpost.timefmt import rfc3339

DUPLICATE_PING = "duplicate_ping"


def duplicate_key(
    secret: SecretKey,
    campaign: Campaign,
    *,
    lead: dict[str, Any],
    channel: str,
    source: str | None,
    consumer: dict[str, str],
) -> str:
    """The keyed hash of what makes two pings of one campaign the same ping."""
    canonical = orjson.dumps(
        [campaign.id, lead, channel, source, sorted(consumer.items())], option=orjson.OPT_SORT_KEYS
    )
    return secret.keyed(hashlib.sha256(canonical).hexdigest())


def duplicate_answer(earlier: Any, *, now: int) -> PingOut:
    """The earlier ping's answer while its bids are live; else `no_bids` with reason `duplicate_ping`."""
    live = earlier["status"] == "bids" and earlier["post_state"] == "open" and earlier["expires_at"] > now
    if live:
        bids = [
            BidOut(
                bid_id=b["bid_id"],
                payout_cents=b["payout_cents"],
                sale_type=b["sale_type"],
                transfer=b.get("transfer") or None,
            )
            for b in orjson.loads(earlier["bids"])
            if b["role"] == "winner"
        ]
        return PingOut(
            ping_id=earlier["id"],
            status="bids",
            expires_at=rfc3339(earlier["expires_at"]) or "",
            post_url="/v1/post",
            bids=bids,
            duplicate_of=earlier["id"],
        )
    return PingOut(
        ping_id=earlier["id"],
        status="no_bids",
        expires_at=rfc3339(earlier["expires_at"]) or "",
        post_url="/v1/post",
        bids=[],
        duplicate_of=earlier["id"],
        reason=DUPLICATE_PING,
    )
