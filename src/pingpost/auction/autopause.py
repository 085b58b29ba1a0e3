"""Auto-pause (docs/protocol.md, Traffic controls): a contract with `auto_pause.max_consecutive_failures`
is paused after that many consecutive RTB failures (`bid_timeout`, `bid_error`, `bid_invalid`) or
delivery failures (`post_timeout`, `post_error`), with `paused_reason` and the event
`contract.auto_paused` written in the same transaction. A buyer that answers (a bid, a no-bid, an
accepted or rejected delivery) ends the run. Only transitions write: a failure, or the first success
after failures; a healthy contract costs nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from pingpost.db import admin_repo, events_repo, traffic_repo
from pingpost.db.store import Tx
from pingpost.domain.auction import RTB_FAILURES, Line
from pingpost.domain.model import Buyer, Contract
from pingpost.domain.outcomes import PostOutcome

DELIVERY_FAILURES = frozenset({PostOutcome.POST_TIMEOUT.value, PostOutcome.POST_ERROR.value})


@dataclass(frozen=True, slots=True)
class Health:
    """One contract's result that changes its run of failures: `failure` is the failing outcome code,
    None for a success after failures."""

    contract: Contract
    failure: str | None


def rtb_results(lines: Sequence[Line], failing: dict[str, int]) -> list[Health]:
    """The RTB results of one auction that move a run: failures, and answers after failures."""
    out: list[Health] = []
    for line in lines:
        c, bid = line.contract, line.bid
        if c.max_consecutive_failures is None or not c.rtb or bid is None or bid.source != "rtb":
            continue
        if bid.outcome in RTB_FAILURES:
            out.append(Health(c, bid.outcome.value if bid.outcome else None))
        elif failing.get(c.id):
            out.append(Health(c, None))
    return out


async def record(tx: Tx, results: Sequence[Health]) -> None:
    """Count the failures, reset the runs that ended, pause the contracts that reached their limit."""
    for result in results:
        c = result.contract
        if result.failure is None:
            await traffic_repo.reset_failures(tx, c.id)
            continue
        count = await traffic_repo.add_failure(tx, c.id)
        if c.max_consecutive_failures is not None and count >= c.max_consecutive_failures:
            await pause(tx, c, count=count, last=result.failure)


async def record_delivery(tx: Tx, contract: Contract, outcome: str) -> None:
    """A delivery's result (in the transaction that records it)."""
    if contract.max_consecutive_failures is None:
        return
    await record(tx, [Health(contract, outcome if outcome in DELIVERY_FAILURES else None)])


async def pause(tx: Tx, contract: Contract, *, count: int, last: str) -> None:
    now = await tx.now_ms()
    if not await traffic_repo.pause_active_contract(tx, contract.id, now):
        return  # paused already: one pause, one event
    reason = f"auto_pause: {count} consecutive failures (last {last})"
    body = await admin_repo.body(tx, "contracts", contract.id) or {}
    body.update(status="paused", paused_reason=reason)
    await admin_repo.update(tx, "contracts", contract.id, {"body": orjson.dumps(body).decode(), "updated_at": now})
    await admin_repo.bump_config(tx)
    await events_repo.record_event(
        tx,
        "contract.auto_paused",
        {
            "contract_id": contract.id,
            "buyer_id": contract.buyer_id,
            "consecutive_failures": count,
            "last_outcome": last,
            "reason": reason,
        },
    )


async def check_low_balance(tx: Tx, buyers: Sequence[Buyer]) -> None:
    """After holds were taken: each buyer whose available funds just fell under its `low_balance_cents`
    gets one `buyer.low_balance` event (and is paused with `pause_on_low_balance`)."""
    for buyer in buyers:
        available = await traffic_repo.low_balance_crossed(tx, buyer.id)
        if available is None:
            continue
        paused = buyer.pause_on_low_balance and await traffic_repo.pause_active_buyer(tx, buyer.id, await tx.now_ms())
        if paused:
            body = await admin_repo.body(tx, "buyers", buyer.id) or {}
            body.update(status="paused", paused_reason="low_balance")
            await admin_repo.update(tx, "buyers", buyer.id, {"body": orjson.dumps(body).decode()})
            await admin_repo.bump_config(tx)
        await events_repo.record_event(
            tx,
            "buyer.low_balance",
            {
                "buyer_id": buyer.id,
                "available_cents": available,
                "low_balance_cents": buyer.low_balance_cents,
                "paused": bool(paused),
            },
        )
