"""The invariants of the money after the sale, checked after every step beside `invariants.py`
(docs/simulator.md): returns never refund a sale more than its price and each sale's status says
what was refunded (`tests/support/money.refund_invariants`), a payout reference pays once, and every
buyer's and partner's statement adds up: opening + lines = closing, closing = the ledger's sum, and
two adjacent periods meet."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pingpost import errors
from pingpost.db.store import Tx
from pingpost.domain.statements import DAY_MS, day_of
from pingpost.ledger.statements import StatementService
from tests.support.money import refund_invariants

if TYPE_CHECKING:
    from tests.sim.simulation import Simulation

# An instance's clock runs up to 4 s ahead of the true one, and some writes take their time from it.
AHEAD_MS = 10_000


async def check(sim: Simulation) -> None:
    try:
        await refund_invariants(sim.checker)
    except AssertionError as exc:
        sim.violation("sale_never_refunded_more_than_its_price", f"sale, status, refunded: {exc}")
    await _payouts_once(sim)
    await _statements(sim)


async def _payouts_once(sim: Simulation) -> None:
    async def unit(tx: Tx) -> list[tuple[str, int]]:
        rows = await tx.fetch(
            "SELECT reference, COUNT(*) AS n FROM ledger_transactions WHERE kind = 'payout' "
            "GROUP BY reference HAVING COUNT(*) > 1"
        )
        return [(str(r["reference"]), int(r["n"])) for r in rows]

    for reference, n in await sim.checker.read(unit):
        sim.violation("payouts_idempotent", f"payout reference {reference} made {n} transactions")


async def _statements(sim: Simulation) -> None:
    """Each buyer's and partner's statement from the run's first day to the day after now; one
    account a step (in turn) also split at a day that moves with the step (not the scheduler's random)."""
    first = sim.scenario.start_ms // DAY_MS - 1
    last = (sim.clock.now_ms() + AHEAD_MS) // DAY_MS
    accounts = [f"buyer:{b['id']}" for b in sim.scenario.buyers] + ["partner:pa", "partner:pb"]

    async def sums(tx: Tx) -> dict[str, int]:
        rows = await tx.fetch(
            "SELECT account, CAST(SUM(amount_cents) AS BIGINT) AS total FROM ledger_entries "
            "WHERE account LIKE 'buyer:%' OR account LIKE 'partner:%' GROUP BY account"
        )
        return {str(r["account"]): int(r["total"]) for r in rows}

    totals = await sim.checker.read(sums)
    service = StatementService(sim.checker)
    split_account = accounts[sim.step_no % len(accounts)]  # one account a step is also split in two
    split = first + sim.step_no % (last - first + 1)
    for account in accounts:
        try:
            whole = await service.statement(account, first=day_of(first), last=day_of(last))
            head = tail = None
            if account == split_account:
                head = await service.statement(account, first=day_of(first), last=day_of(split))
                if split < last:
                    tail = await service.statement(account, first=day_of(split + 1), last=day_of(last))
        except (errors.PingpostError, RuntimeError) as exc:
            sim.violation("statements_add_up", f"{account}: {type(exc).__name__} {exc}")
            continue
        for st in (whole, head, tail):
            if (
                st is not None
                and st.opening_balance_cents + sum(ln.amount_cents for ln in st.lines) != st.closing_balance_cents
            ):
                sim.violation("statements_add_up", f"{account} {st.period}: opening + lines != closing")
        if whole.opening_balance_cents != 0 or whole.closing_balance_cents != totals.get(account, 0):
            sim.violation(
                "statements_add_up",
                f"{account}: opening {whole.opening_balance_cents}, closing {whole.closing_balance_cents}, "
                f"ledger sum {totals.get(account, 0)}",
            )
        if head is not None and tail is not None and head.closing_balance_cents != tail.opening_balance_cents:
            sim.violation("statements_add_up", f"{account}: periods split at {day_of(split)} do not meet")
