"""Money is integer cents. Payouts and ledger transactions are built here, nowhere else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import Any


def payout_cents(payout: dict[str, Any], price_cents: int) -> int:
    """The partner's payout for one sale at `price_cents`: fixed, or revshare rounded down to the cent."""
    if payout["type"] == "fixed":
        return int(payout["amount_cents"])
    return price_cents * _basis_points(payout["percent"]) // 10_000


@lru_cache(maxsize=1024)
def _basis_points(percent: int | float | str) -> int:
    """A revshare percent as whole basis points, rounded down (exact decimal arithmetic, cached).

    `percent` is the stored JSON value, validated to at most two decimals; a JSON number may arrive as
    a float, whose shortest repr (`str`) is that two-decimal value exactly, so no float arithmetic
    touches money: the payout is integer cents times integer basis points."""
    return int((Decimal(str(percent)) * 100).to_integral_value(ROUND_FLOOR))


@dataclass(frozen=True)
class Entry:
    account: str
    amount_cents: int


class UnbalancedTransaction(ValueError):
    pass


def balanced(entries: Sequence[Entry]) -> list[Entry]:
    """Answer the entries of one ledger transaction; raise unless they sum to exactly zero."""
    if any(not isinstance(e.amount_cents, int) or isinstance(e.amount_cents, bool) for e in entries):
        raise UnbalancedTransaction("ledger amounts must be integer cents")
    if sum(e.amount_cents for e in entries) != 0:
        raise UnbalancedTransaction("ledger transaction does not sum to zero")
    return list(entries)


def deposit_entries(buyer_id: str, amount_cents: int) -> list[Entry]:
    return balanced([Entry(f"buyer:{buyer_id}", amount_cents), Entry("house:cash", -amount_cents)])


def sale_entries(*, buyer_id: str, partner_id: str, price_cents: int, payout_cents: int) -> list[Entry]:
    return balanced([
        Entry(f"buyer:{buyer_id}", -price_cents),
        Entry(f"partner:{partner_id}", payout_cents),
        Entry("house:revenue", price_cents - payout_cents),
    ])


def reversal_entries(sale: Sequence[Entry]) -> list[Entry]:
    return balanced([Entry(e.account, -e.amount_cents) for e in sale])
