"""`pingpost seed-data`: fill a database with made-up traffic so the console's pages can be measured
with real volume (docs/performance.md, Console). A small setup (one offer, three partners, six
buyers) is applied by id, then pings spread over the last `days` days, each with a six-contract
waterfall, and for the sold ones a delivery and a sale, written in batches, with the report counters
they would have bumped. Seeded sales have no ledger transactions; leads hold non-PII fields only."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import orjson

from pingpost.admin.apply import apply_setup
from pingpost.admin.service import AdminService
from pingpost.clock import ManualClock, use_clock
from pingpost.db import reports_repo, seed_repo
from pingpost.db.store import Store, Tx
from pingpost.ids import now_ms
from pingpost.ledger.service import LedgerService
from pingpost.reports.counters import counter_rows, utc_day

OFFER = "seed-leads"
PARTNERS = ("seed-acme", "seed-bolt", "seed-coral")
BUYERS = ("seed-alpha", "seed-bravo", "seed-charlie", "seed-delta", "seed-echo", "seed-foxtrot")
PRICES = (8500, 7200, 9100, 0, 0, 4500)  # what each buyer's contract pays (0: an RTB buyer that rarely bids)
STATES = ("FL", "TX", "AZ", "NC", "PA", "OH", "GA", "CA", "NY")
BATCH = 5000
DAY_MS = 86_400_000
TAG = "5eed00"  # the process part of seeded ids (ids.py): never one a running process draws


def setup_document() -> dict[str, Any]:
    return {
        "verticals": [
            {
                "id": "seed",
                "name": "Seeded Medicare",
                "fields": [
                    {"name": "state", "type": "state", "required": True},
                    {"name": "zip", "type": "zip", "required": True},
                    {"name": "age", "type": "integer", "required": True},
                    {"name": "first_name", "type": "string", "pii": True},
                    {"name": "phone", "type": "phone", "pii": True},
                ],
            }
        ],
        "offers": [{"id": OFFER, "name": "Seeded leads", "vertical": "seed"}],
        "partners": [{"id": p, "name": p.title()} for p in PARTNERS],
        "campaigns": [
            {
                "id": f"{p}-camp",
                "name": f"{p} campaign",
                "partner": p,
                "offer": OFFER,
                "payout": {"type": "revshare", "percent": 70},
            }
            for p in PARTNERS
        ],
        "buyers": [{"id": b, "name": b.title()} for b in BUYERS],
        "contracts": [
            {
                "id": f"{b}-k",
                "name": f"{b} contract",
                "buyer": b,
                "offer": OFFER,
                **(
                    {"price_cents": price}
                    if price
                    else {"rtb": {"url": f"http://127.0.0.1:9/bid/{b}", "timeout_ms": 500}}
                ),
                "caps": {"daily": 100_000},
                "status": "active",
            }
            for b, price in zip(BUYERS, PRICES, strict=True)
        ],
        "deposits": [{"buyer": b, "amount_cents": 10**10, "reference": f"seed-{b}"} for b in BUYERS],
    }


def _ping(rng: random.Random, at: int, serial: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One ping row and, when it sold, what its delivery and sale need."""
    partner = PARTNERS[serial % len(PARTNERS)]
    ping_id = f"png_{at:011x}{TAG}{serial & 0xFFFFFF:06x}"
    roll = rng.random()
    waterfall: list[dict[str, Any]] = []
    winner: dict[str, Any] | None = None
    if roll < 0.30:  # nobody wanted it
        for buyer in BUYERS:
            waterfall.append(
                {
                    "contract_id": f"{buyer}-k",
                    "buyer_id": buyer,
                    "outcome": rng.choice(("filter_mismatch", "no_bid", "cap_reached")),
                }
            )
        status, post_state, bids = "no_bids", "expired", []
    else:
        ranked = sorted(
            ((price + rng.randint(-500, 500), buyer) for buyer, price in zip(BUYERS, PRICES, strict=True) if price),
            reverse=True,
        )
        best, winner_buyer = ranked[0]
        bid_id = f"bid_{at:011x}{TAG}{serial & 0xFFFFFF:06x}"
        for buyer, price in zip(BUYERS, PRICES, strict=True):
            entry: dict[str, Any] = {"contract_id": f"{buyer}-k", "buyer_id": buyer}
            if buyer == winner_buyer:
                entry.update(outcome="won", bid_cents=best, source="fixed", bid_id=bid_id, sale_type="exclusive")
            elif price:
                entry.update(outcome="lost_to_higher_bid", bid_cents=price, source="fixed")
            else:
                entry.update(
                    outcome=rng.choice(("no_bid", "bid_timeout", "bid_error")), rtb_latency_ms=rng.randint(20, 500)
                )
            waterfall.append(entry)
        bids = [
            {
                "bid_id": bid_id,
                "contract_id": f"{winner_buyer}-k",
                "buyer_id": winner_buyer,
                "role": "winner",
                "price_cents": best,
                "payout_cents": best * 70 // 100,
                "sale_type": "exclusive",
            }
        ]
        if roll < 0.75:
            status, post_state = "sold", "posted"
            waterfall[BUYERS.index(winner_buyer)].update(
                post_outcome="post_accepted",
                post_latency_ms=80,
                sale_id=f"sal_{at + 300:011x}{TAG}{serial & 0xFFFFFF:06x}",
            )
            winner = {"bid": bid_id, "buyer": winner_buyer, "price": best, "partner": partner}
        else:
            status, post_state = "bids", "expired"
    # what the ping path keeps for a replay (docs/replay.md): the RTB buyers' answers
    rtb = {
        e["contract_id"]: [e["outcome"], None, None, e.get("rtb_latency_ms"), None, 0]
        for e in waterfall
        if e["outcome"] in ("no_bid", "bid_timeout", "bid_error") and not PRICES[BUYERS.index(e["buyer_id"])]
    }
    row = {
        "id": ping_id,
        "offer": OFFER,
        "campaign": f"{partner}-camp",
        "partner": partner,
        "status": status,
        "post_state": post_state,
        "received": at,
        "decided": at + rng.randint(2, 40),
        "expires": at + 120_000,
        "lead": orjson.dumps(
            {"state": rng.choice(STATES), "zip": f"{rng.randint(10000, 99999)}", "age": rng.randint(64, 90)}
        ).decode(),
        "bids": orjson.dumps(bids).decode(),
        "waterfall": orjson.dumps(waterfall).decode(),
        "replay": orjson.dumps({"rtb": rtb}).decode() if rtb else None,
    }
    return row, winner


async def seed(
    store: Store, *, pings: int, days: int = 30, seed_value: int = 7, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Apply the setup as it would have been, a minute before the first ping (its audit entries and
    deposits then: a replay finds the configuration and the funds as they stood, docs/replay.md), then
    write `pings` pings spread over the last `days` days (UTC), ending now."""
    end = now_ms() - 1000
    start = end - days * DAY_MS
    with use_clock(ManualClock(start - 60_000)):
        await apply_setup(setup_document(), AdminService(store), LedgerService(store))
    rng = random.Random(seed_value)
    step = max(1, (end - start) // max(pings, 1))
    counters: dict[tuple[str, str, str, str, str, str], list[int]] = {}  # key -> pings, bids, wins

    def count(key: tuple[str, str, str, str, str, str], bid: bool, won: bool) -> None:
        figures = counters.setdefault(key, [0, 0, 0])
        figures[0] += 1
        figures[1] += int(bid)
        figures[2] += int(won)

    written = sales = 0
    while written < pings:
        size = min(BATCH, pings - written)
        ping_rows, delivery_rows, sale_rows = [], [], []
        for i in range(written, written + size):
            at = start + i * step
            row, winner = _ping(rng, at, i)
            ping_rows.append(row)
            day = utc_day(at)
            count((day, OFFER, row["campaign"], row["partner"], "", ""), False, False)
            for entry in orjson.loads(row["waterfall"]):
                count(
                    (day, OFFER, row["campaign"], row["partner"], entry["contract_id"], entry["buyer_id"]),
                    "bid_cents" in entry,
                    entry["outcome"] == "won",
                )
            if winner is not None:
                suffix = f"{TAG}{i & 0xFFFFFF:06x}"
                delivery_rows.append(
                    {
                        "id": f"dlv_{at + 200:011x}{suffix}",
                        "ping": row["id"],
                        "bid": winner["bid"],
                        "contract": f"{winner['buyer']}-k",
                        "buyer": winner["buyer"],
                        "latency": 80,
                        "at": at + 200,
                    }
                )
                sale_rows.append(
                    {
                        "id": f"sal_{at + 300:011x}{suffix}",
                        "ping": row["id"],
                        "bid": winner["bid"],
                        "offer": OFFER,
                        "campaign": row["campaign"],
                        "partner": winner["partner"],
                        "contract": f"{winner['buyer']}-k",
                        "buyer": winner["buyer"],
                        "price": winner["price"],
                        "payout": winner["price"] * 70 // 100,
                        "status": "reversed" if rng.random() < 0.02 else "charged",
                        "at": at + 300,
                    }
                )

        async def unit(
            tx: Tx,
            pr: list[dict[str, Any]] = ping_rows,
            dr: list[dict[str, Any]] = delivery_rows,
            sr: list[dict[str, Any]] = sale_rows,
        ) -> None:
            await seed_repo.insert_pings(tx, pr)
            await seed_repo.insert_deliveries(tx, dr)
            await seed_repo.insert_sales(tx, sr)

        await store.write(unit, durable=False)
        written += size
        sales += len(sale_rows)
        if progress is not None:
            progress(size)
    rows = counter_rows({k: (*v, 0) for k, v in counters.items()})

    async def counted(tx: Tx) -> None:
        await reports_repo.add_counters(tx, rows)

    await store.write(counted)
    return {"pings": written, "sales": sales}
