"""SQL of the configuration snapshot: every vertical, offer, partner, buyer, campaign and contract the
ping path reads, and the version that says when to read them again (`auction/snapshot.py`)."""

from __future__ import annotations

import orjson

from pingpost.db.store import Tx
from pingpost.domain.model import Buyer, Campaign, Contract, Offer, Snapshot, Vertical
from pingpost.domain.verification import checks_from_body


async def config_version(tx: Tx) -> int:
    return int(await tx.fetchval("SELECT version FROM config_version WHERE id = 1"))


async def load_snapshot(tx: Tx) -> Snapshot:
    snap = Snapshot(version=await config_version(tx))
    for row in await tx.fetch("SELECT id, body FROM verticals"):
        snap.verticals[row["id"]] = Vertical.from_body(row["id"], orjson.loads(row["body"]))
    for row in await tx.fetch("SELECT id, body FROM offers"):
        snap.offers[row["id"]] = Offer.from_body(row["id"], orjson.loads(row["body"]))
    for row in await tx.fetch("SELECT id, status FROM partners"):
        snap.partner_status[row["id"]] = row["status"]
    for row in await tx.fetch("SELECT id, status FROM buyers"):
        snap.buyers[row["id"]] = Buyer(row["id"], row["status"])
    for row in await tx.fetch("SELECT id, posting_key_sha256, body FROM campaigns"):
        body = orjson.loads(row["body"])
        campaign = Campaign(
            row["id"],
            body["partner"],
            body["offer"],
            body["status"],
            body["payout"],
            body.get("rate_limit_per_s"),
            checks_from_body(body.get("verification")),
            body.get("verification_timeout_ms"),
        )
        snap.campaigns[row["id"]] = campaign
        snap.campaigns_by_key[row["posting_key_sha256"]] = campaign
    for row in await tx.fetch("SELECT id, body FROM contracts"):
        contract = Contract.from_body(row["id"], orjson.loads(row["body"]))
        snap.contracts[contract.id] = contract
        snap.contracts_by_offer.setdefault(contract.offer_id, []).append(contract)
    for contracts in snap.contracts_by_offer.values():
        contracts.sort(key=lambda c: c.rank_key)
    return snap
