"""The invariants, checked after every step as SQL over the tables plus what the fake buyers received
(docs/simulator.md). Lapsed reservations are reclaimed lazily, so "live" means: held or posting and
not expired at the one true clock's now."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from pingpost.db.store import Tx
from tests.sim import money_checks, webhook_actions

if TYPE_CHECKING:
    from tests.sim.simulation import Simulation

DAY_MS = 86_400_000
LIVE = ("held", "posting")
COUNTED = ("held", "posting", "sold")
KINDS = (("daily", "day_key", "day_used"), ("weekly", "week_key", "week_used"), ("monthly", "month_key", "month_used"))
# Clock skew between hosts and delivery time blur when exactly a sale happened.
DEDUP_SLACK_MS = 30_000


@dataclass
class Tables:
    reservations: list[dict[str, Any]]
    usage: list[dict[str, Any]]
    funds: list[dict[str, Any]]
    buyer_ledger: dict[str, int]
    unbalanced: list[tuple[str, int]]
    pings: dict[str, dict[str, Any]]
    sales: list[dict[str, Any]]
    dedup: list[dict[str, Any]]
    claimed: dict[str, int]  # bid id -> when its delivery was claimed (a post's T1, a direct attempt, connected)
    text: str  # every stored text column where PII must never appear
    leases: list[dict[str, Any]]  # active process leases and what their reservations used (docs/scale-out.md)


async def load(tx: Tx) -> Tables:
    def rows(result: list[Any]) -> list[dict[str, Any]]:
        return [dict(r) for r in result]

    reservations = rows(
        await tx.fetch(
            "SELECT bid_id, ping_id, contract_id, buyer_id, amount_cents, day_key, week_key, month_key, live_call, "
            "state, expires_at, buyer_day_key FROM reservations"
        )
    )
    usage = rows(await tx.fetch("SELECT * FROM contract_usage"))
    funds = rows(await tx.fetch("SELECT * FROM buyer_funds"))
    ledger = {
        r["account"]: int(r["total"])
        for r in await tx.fetch(
            "SELECT account, CAST(SUM(amount_cents) AS BIGINT) AS total FROM ledger_entries "
            "WHERE account LIKE 'buyer:%' GROUP BY account"
        )
    }
    unbalanced = [
        (r["id"], int(r["total"] or 0))
        for r in await tx.fetch(
            "SELECT t.id, CAST(SUM(e.amount_cents) AS BIGINT) AS total FROM ledger_transactions t "
            "LEFT JOIN ledger_entries e ON e.transaction_id = t.id GROUP BY t.id "
            "HAVING COUNT(e.id) < 2 OR SUM(e.amount_cents) <> 0"
        )
    ]
    pings = {
        r["id"]: dict(r)
        for r in await tx.fetch(
            "SELECT id, mode, channel, status, test, received_at, lead, consumer, bids, waterfall FROM pings"
        )
    }
    sales = rows(
        await tx.fetch("SELECT id, ping_id, bid_id, buyer_id, contract_id, status, created_at, channel FROM sales")
    )
    claimed = {r["bid_id"]: int(r["created_at"]) for r in await tx.fetch("SELECT bid_id, created_at FROM deliveries")}
    dedup = rows(await tx.fetch("SELECT buyer_id, hash_hmac, sale_id, sold_at FROM dedup_records"))
    texts = [str(r[c] or "") for r in pings.values() for c in ("lead", "consumer", "bids", "waterfall")]
    for sql in (
        "SELECT detail AS t FROM ping_events",
        "SELECT detail AS t FROM deliveries",
        "SELECT buyer_lead_id AS t FROM deliveries",
        "SELECT answer AS t FROM call_events",
        "SELECT body AS t FROM idempotency_keys",
    ):
        texts += [str(r["t"] or "") for r in await tx.fetch(sql)]
    leases = rows(
        await tx.fetch(
            "SELECT l.id, l.contract_id, l.buyer_id, l.day_key, l.week_key, l.month_key, l.slots, l.cents, "
            "(SELECT COUNT(*) FROM reservations r WHERE r.lease_id = l.id) AS used_slots, "
            "(SELECT COALESCE(SUM(r.amount_cents), 0) FROM reservations r WHERE r.lease_id = l.id) AS used_cents "
            "FROM leases l WHERE l.state = 'active'"
        )
    )
    return Tables(
        reservations, usage, funds, ledger, unbalanced, pings, sales, dedup, claimed, "\n".join(texts), leases
    )


def leased(t: Tables) -> tuple[Counter[tuple[str, str, str]], Counter[str]]:
    """What active leases hold unused: slots per (contract, period kind, key), cents per buyer. The
    shared counters count them as used until the lease ends (docs/scale-out.md)."""
    slots: Counter[tuple[str, str, str]] = Counter()
    cents: Counter[str] = Counter()
    for lease in t.leases:
        unused = int(lease["slots"]) - int(lease["used_slots"])
        if unused < 0 or int(lease["cents"]) < int(lease["used_cents"]):
            raise AssertionError(f"lease {lease['id']} drawn beyond what it holds: {lease}")
        for kind, key, _ in KINDS:
            slots[(lease["contract_id"], kind, lease[key])] += unused
        cents[lease["buyer_id"]] += int(lease["cents"]) - int(lease["used_cents"])
    return slots, cents


def live_counts(
    reservations: list[dict[str, Any]], now: int, contract: str | None = None
) -> Counter[tuple[str, str, str]]:
    """Slots taken per (contract, period kind, period key): sold, or live at `now`."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for r in reservations:
        if contract is not None and r["contract_id"] != contract:
            continue
        if r["state"] == "sold" or (r["state"] in LIVE and int(r["expires_at"]) > now):
            for kind, key, _ in KINDS:
                counts[(r["contract_id"], kind, r[key])] += 1
    return counts


async def check(sim: Simulation) -> None:
    now = sim.clock.now_ms()
    t = await sim.checker.read(load)
    _caps(sim, t, now)
    _spend(sim, t, now)
    _counters(sim, t)
    _funds_and_ledger(sim, t)
    _dedup(sim, t)
    _waterfalls(sim, t)
    _live_calls(sim, t, now)
    _privacy(sim, t)
    await money_checks.check(sim)
    await webhook_actions.check(sim)


def _caps(sim: Simulation, t: Tables, now: int) -> None:
    counts = live_counts(t.reservations, now)
    counts.update(leased(t)[0])  # slots out in leases count: no process may use more than the cap
    for (contract, kind, key), taken in counts.items():
        cap = sim.model.caps[contract].get(kind)
        if cap is None:
            continue
        allowed = max(cap, sim.model.allowance.get((contract, kind, key), 0))
        if taken > allowed:
            sim.violation(
                "caps_never_exceeded",
                f"{contract} {kind} period {key}: {taken} slots sold or live, cap {cap} (allowed {allowed})",
            )


def _spend_counted(sim: Simulation, buyer_caps: dict[str, Any], who: str, ident: str) -> bool:
    """With process leases (docs/scale-out.md) the spend counters count only what a spend cap binds:
    its winners never lease; the other winners take their slots through the leases' statements."""
    if not sim.opts.leases:
        return True
    if who == "buyer":
        return buyer_caps.get(ident) is not None
    owner = next((c.buyer for c in sim.scenario.contracts if c.id == ident), None)
    capped_buyer = owner is not None and buyer_caps.get(owner) is not None
    return capped_buyer or sim.model.caps.get(ident, {}).get("spend_daily_cents") is not None


def _spend(sim: Simulation, t: Tables, now: int) -> None:
    """Never over a spend cap: the prices of the reservations sold or live in a day (contract's or
    buyer's) fit its daily spend cap (a sale the operator recorded without a check is allowed), and
    the spend counters equal the prices of the reservations they count."""
    sold_or_live: Counter[tuple[str, str, str]] = Counter()
    counted: Counter[tuple[str, str, str]] = Counter()
    for r in t.reservations:
        amount = int(r["amount_cents"])
        for who, key in (
            ("contract", (r["contract_id"], r["day_key"])),
            ("buyer", (r["buyer_id"], r["buyer_day_key"])),
        ):
            if r["state"] in COUNTED:
                counted[(who, *key)] += amount
            if r["state"] == "sold" or (r["state"] in LIVE and int(r["expires_at"]) > now):
                sold_or_live[(who, *key)] += amount
    buyer_caps = {b["id"]: (b.get("caps") or {}).get("spend_daily_cents") for b in sim.scenario.buyers}
    for (who, ident, day), spent in sold_or_live.items():
        cap = sim.model.caps.get(ident, {}).get("spend_daily_cents") if who == "contract" else buyer_caps.get(ident)
        if cap is not None and spent > cap and (who, ident, day) not in sim.model.spend_exempt:
            sim.violation(
                "spend_caps_never_exceeded", f"{who} {ident} day {day}: {spent} cents sold or held, cap {cap}"
            )

    for u in t.usage:
        if not _spend_counted(sim, buyer_caps, "contract", u["contract_id"]):
            continue
        if u["day_key"] and int(u["day_spent_cents"]) != counted[("contract", u["contract_id"], u["day_key"])]:
            sim.violation(
                "spend_counters_match_reservations",
                f"{u['contract_id']} day_spent_cents {u['day_spent_cents']} for {u['day_key']}, reservations "
                f"{counted[('contract', u['contract_id'], u['day_key'])]}",
            )
    for f in t.funds:
        if not _spend_counted(sim, buyer_caps, "buyer", f["buyer_id"]):
            continue
        if f["spend_day_key"] and int(f["day_spent_cents"]) != counted[("buyer", f["buyer_id"], f["spend_day_key"])]:
            sim.violation(
                "spend_counters_match_reservations",
                f"{f['buyer_id']} day_spent_cents {f['day_spent_cents']} for {f['spend_day_key']}, reservations "
                f"{counted[('buyer', f['buyer_id'], f['spend_day_key'])]}",
            )


def _counters(sim: Simulation, t: Tables) -> None:
    counted: Counter[tuple[str, str, str]] = leased(t)[0]
    calls: Counter[str] = Counter()
    for r in t.reservations:
        if r["state"] in COUNTED:
            for kind, key, _ in KINDS:
                counted[(r["contract_id"], kind, r[key])] += 1
            if r["live_call"]:
                calls[r["contract_id"]] += 1
    for u in t.usage:
        contract = u["contract_id"]
        for kind, key, used in KINDS:
            if u[key] and u[used] != counted[(contract, kind, u[key])]:
                sim.violation(
                    "counters_match_reservations",
                    f"{contract} {kind} counter {u[used]} for {u[key]}, but "
                    f"{counted[(contract, kind, u[key])]} reservations held, posting or sold there",
                )
        if u["live_calls"] != calls[contract]:
            sim.violation(
                "counters_match_reservations",
                f"{contract} live_calls {u['live_calls']}, but {calls[contract]} live-call reservations",
            )
        keys = (u["day_key"], u["week_key"], u["month_key"])
        newest = sim.model.newest_keys.get(contract)
        if newest is not None:
            for name, was, now_key in zip(("day", "week", "month"), newest, keys, strict=True):
                if was and now_key < was:
                    sim.violation(
                        "counters_never_move_back",
                        f"{contract} {name} counter moved back from period {was} to {now_key}",
                    )
            keys = (max(newest[0], keys[0]), max(newest[1], keys[1]), max(newest[2], keys[2]))
        sim.model.newest_keys[contract] = keys


def _funds_and_ledger(sim: Simulation, t: Tables) -> None:
    holds: Counter[str] = leased(t)[1]
    for r in t.reservations:
        if r["state"] in LIVE:
            holds[r["buyer_id"]] += int(r["amount_cents"])
    for f in t.funds:
        buyer = f["buyer_id"]
        balance, credit, held = int(f["balance_cents"]), int(f["credit_limit_cents"]), int(f["holds_cents"])
        if held != holds[buyer]:
            sim.violation("holds_match_reservations", f"{buyer} holds_cents {held}, live reservations {holds[buyer]}")
        if balance != t.buyer_ledger.get(f"buyer:{buyer}", 0):
            sim.violation(
                "balance_is_ledger_sum",
                f"{buyer} balance_cents {balance}, ledger {t.buyer_ledger.get(f'buyer:{buyer}', 0)}",
            )
        overdraft = sim.model.overdraft.get(buyer, 0)  # sales the operator recorded without a hold
        if balance + credit - held < -overdraft:
            sim.violation(
                "funds_never_below_credit_limit",
                f"{buyer} balance {balance} + credit {credit} - holds {held} = {balance + credit - held}"
                + (f" (the operator recorded {overdraft} without holds)" if overdraft else ""),
            )
    for txn, total in t.unbalanced:
        sim.violation("ledger_transactions_sum_to_zero", f"{txn} sums to {total}")


def _dedup(sim: Simulation, t: Tables) -> None:
    """At most one sale per buyer and consumer within the dedup window of the contract that decided
    later, a lead counting as bought when its delivery was claimed (a sale the operator records later
    was bought then). A post or direct post decides in its claiming write, which sees every sale recorded before
    it (and the claims serialise per buyer, so of two such sales the later must have seen the other);
    a call is decided at its ping, which sees only the hashes it carried and sales recorded before it.
    Times written by different hosts compare only beyond their skew (DEDUP_SLACK_MS)."""
    sales = {s["id"]: s for s in t.sales if s["status"] in ("charged", "pending", "reversed")}
    bought: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for d in t.dedup:
        sale = sales.get(d["sale_id"])
        if sale is not None:
            bought[(d["buyer_id"], d["hash_hmac"])].append(sale)

    def window(sale: dict[str, Any]) -> int:
        return sim.scenario.contract(sale["contract_id"]).dedup_days * DAY_MS - DEDUP_SLACK_MS

    def recorded(sale: dict[str, Any]) -> int:  # when its claim wrote the dedup rows
        return t.claimed.get(sale["bid_id"], int(sale["created_at"]))

    def saw(later: dict[str, Any], earlier: dict[str, Any], digest: str) -> bool:
        """`later`'s own check must have found `earlier`."""
        if abs(recorded(later) - recorded(earlier)) >= window(later):
            return False
        if later["channel"] != "form":
            ping = t.pings[later["ping_id"]]
            return (
                digest in orjson.loads(ping["consumer"]).values()
                and int(ping["received_at"]) > recorded(earlier) + DEDUP_SLACK_MS
            )
        return recorded(later) > recorded(earlier) + DEDUP_SLACK_MS

    for (buyer, digest), group in bought.items():
        group.sort(key=lambda s: (int(s["created_at"]), s["id"]))
        for i, b in enumerate(group):
            for a in group[:i]:
                both_posts = a["channel"] == b["channel"] == "form"
                close = abs(recorded(a) - recorded(b)) <= DEDUP_SLACK_MS
                # Two posts' claims serialise: whichever came second saw the first, even when their
                # hosts' clocks cannot tell which (then both windows must cover the gap).
                unordered = both_posts and close and min(window(a), window(b)) > abs(recorded(a) - recorded(b))
                if unordered or saw(b, a, digest) or saw(a, b, digest):
                    sim.violation(
                        "one_sale_per_buyer_and_consumer",
                        f"{buyer} bought one consumer twice ({a['id']} via {a['contract_id']} "
                        f"{a['channel']}, {b['id']} via {b['contract_id']} {b['channel']}, claimed "
                        f"{(recorded(b) - recorded(a)) // 1000}s apart)",
                    )


def _waterfalls(sim: Simulation, t: Tables) -> None:
    reserved = {r["bid_id"] for r in t.reservations}
    for ping in t.pings.values():
        waterfall = orjson.loads(ping["waterfall"])
        won = [w for w in waterfall if w["outcome"] == "won"]
        if ping["status"] == "no_bids" and won:
            sim.violation(
                "retries_decide_afresh",
                f"{ping['id']} answered no_bids, its waterfall says won for {[w['contract_id'] for w in won]}",
            )
        if ping["test"]:
            continue
        for w in waterfall:
            if w["outcome"] in ("won", "standby") and w.get("bid_id") not in reserved:
                sim.violation(
                    "won_has_reservation",
                    f"{ping['id']} waterfall {w['outcome']} for {w['contract_id']} (bid {w.get('bid_id')}) "
                    "has no reservation",
                )


def _live_calls(sim: Simulation, t: Tables, now: int) -> None:
    live: Counter[str] = Counter()
    for r in t.reservations:
        if r["live_call"] and r["state"] in COUNTED and int(r["expires_at"]) > now:
            live[r["contract_id"]] += 1
    for u in t.usage:
        limit = u["max_live_calls"]
        if limit is not None and live[u["contract_id"]] > limit:
            sim.violation(
                "live_calls_within_max_concurrent_calls",
                f"{u['contract_id']}: {live[u['contract_id']]} live calls, max_concurrent_calls {limit}",
            )


def _privacy(sim: Simulation, t: Tables) -> None:
    for problem in sim.buyers.problems:
        sim.violation("no_pii_in_bid_requests", problem)
    sim.buyers.problems.clear()
    deliveries = [r for r in sim.buyers.received if r.kind == "deliver"]
    for d in deliveries[sim.model.checked_deliveries :]:
        ping_id = str(d.body.get("ping_id"))
        ping = t.pings.get(ping_id)
        if ping is None:
            sim.violation("pii_only_to_accepted_winners", f"delivery to {d.contract} for unknown ping {ping_id}")
            continue
        bid = next((b for b in orjson.loads(ping["bids"]) if b["contract_id"] == d.contract), None)
        rec = sim.model.pings.get(ping_id)
        allowed = ("connected", "completed") if ping["channel"] != "form" else ("winner",)
        if (
            bid is None
            or bid["role"] not in allowed
            or (rec is not None and rec.chosen is not None and bid["bid_id"] not in rec.chosen)
        ):
            sim.violation(
                "pii_only_to_accepted_winners",
                f"{d.contract} received the lead of {ping_id}: bid {bid and bid['bid_id']} role "
                f"{bid and bid['role']}, partner accepted {rec and rec.chosen}",
            )
    sim.model.checked_deliveries = len(deliveries)
    posted: Counter[tuple[str, str]] = Counter(
        (str(d.body.get("ping_id")), d.contract)
        for d in deliveries
        if (p := t.pings.get(str(d.body.get("ping_id")))) is not None and p["channel"] == "form"
    )
    for (ping_id, contract), times in posted.items():
        if times > 1:
            sim.violation("never_redelivered", f"{contract} received the lead of {ping_id} {times} times")
    for value in sim.pii_values:
        if value in t.text:
            sim.violation("pii_only_in_posts", f"a PII value of a consumer ({value[:3]}...) is stored outside posts")
