"""Buyer answers for tests, over the outbound seam's fake transport (`pingpost.outbound.fake`)."""

from __future__ import annotations

from pingpost.outbound.fake import FakeBuyerClient, Handler, answers

__all__ = ["FakeBuyerClient", "accepts", "bids"]


def bids(amount_cents: int) -> Handler:
    return answers(200, {"bid_cents": amount_cents})


def accepts() -> Handler:
    return answers(200, {"status": "accepted"})
