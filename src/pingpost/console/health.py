"""RTB buyers' health from the waterfalls of the newest pings (every process's, since the ping rows
are shared): per contract that asks a buyer, how often it was asked, bid, timed out or failed, its
p50 and p99 latency, and its last error (docs/console.md)."""

from __future__ import annotations

from typing import Any

import orjson

from pingpost.db import console_repo
from pingpost.db.store import Store
from pingpost.domain.outcomes import Outcome
from pingpost.timefmt import rfc3339

SAMPLE = 500  # newest pings read per view
FAILURES = {
    Outcome.BID_TIMEOUT.value: "timeouts",
    Outcome.BID_ERROR.value: "errors",
    Outcome.BID_INVALID.value: "invalid",
}
# outcomes that say the buyer answered; a won or lost entry from the buyer's bid has source "rtb"
ANSWERED = {Outcome.NO_BID.value, Outcome.BELOW_MIN_BID.value}


def _quantile(sorted_ms: list[int], q: float) -> int | None:
    if not sorted_ms:
        return None
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


async def rtb_health(store: Store, rtb_contracts: dict[str, str]) -> dict[str, Any]:
    """`rtb_contracts`: contract id -> buyer id of every contract with an `rtb` block."""
    rows = await store.read(lambda tx: console_repo.recent_waterfalls(tx, limit=SAMPLE))
    stats: dict[str, dict[str, Any]] = {
        cid: {
            "contract_id": cid,
            "buyer_id": buyer,
            "asked": 0,
            "bids": 0,
            "no_bids": 0,
            "timeouts": 0,
            "errors": 0,
            "invalid": 0,
            "latencies": [],
            "last_error": None,
            "last_error_at": None,
        }
        for cid, buyer in rtb_contracts.items()
    }
    for row in rows:  # newest first: the first failure seen is the last error
        for entry in orjson.loads(row["waterfall"]):
            s = stats.get(entry["contract_id"])
            if s is None:
                continue
            outcome = entry["outcome"]
            failure = FAILURES.get(outcome)
            if failure is None and outcome not in ANSWERED and entry.get("source") != "rtb":
                continue  # not asked: an eligibility check failed first, or a static price was used
            s["asked"] += 1
            if entry.get("rtb_latency_ms") is not None:
                s["latencies"].append(int(entry["rtb_latency_ms"]))
            if failure is not None:
                s[failure] += 1
                if s["last_error"] is None:
                    s["last_error"] = f"{outcome}: {entry.get('detail') or ''}".rstrip(": ")
                    s["last_error_at"] = rfc3339(int(row["received_at"]))
            elif outcome == Outcome.NO_BID.value:
                s["no_bids"] += 1
            else:
                s["bids"] += 1
    out = []
    for s in stats.values():
        latencies = sorted(s.pop("latencies"))
        s["bid_rate"] = s["bids"] / s["asked"] if s["asked"] else None
        s["p50_ms"], s["p99_ms"] = _quantile(latencies, 0.5), _quantile(latencies, 0.99)
        out.append(s)
    return {"sample": len(rows), "contracts": out}
