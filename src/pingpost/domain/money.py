"""Money is integer cents. Payouts and ledger transactions are built here, nowhere else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import Any


def payout_cents(payout: dict[str, Any], price_cents: int) -> int:
    """The partner's payout for one sale at `price_cents` under one payout rule (its overrides are
    resolved by `payout_rule`): fixed; revshare, price x percent / 100; margin, price - amount (at least
    0); margin_percent, price x (100 - percent) / 100. Percentages round down to the cent."""
    kind = payout["type"]
    if kind == "fixed":
        return int(payout["amount_cents"])
    if kind == "revshare":
        return price_cents * _basis_points(payout["percent"]) // 10_000
    if kind == "margin":
        return max(price_cents - int(payout["amount_cents"]), 0)
    if kind == "margin_percent":
        return price_cents * (10_000 - _basis_points(payout["percent"])) // 10_000
    raise ValueError(f"unknown payout type: {kind}")


def payout_rule(payout: dict[str, Any], *, contract_id: str, buyer_id: str) -> dict[str, Any]:
    """The rule that pays for a bid of this contract: the first override naming the contract or its
    buyer, else the campaign's own rule (docs/protocol.md, Traffic controls)."""
    overrides = payout.get("overrides")
    if overrides:
        for override in overrides:
            if override.get("contract") == contract_id or (
                override.get("buyer") is not None and override.get("buyer") == buyer_id
            ):
                return dict(override["payout"])
    return payout


def bid_payout_cents(payout: dict[str, Any], price_cents: int, *, contract_id: str, buyer_id: str) -> int:
    """The partner's payout for a sale of this contract at `price_cents` (overrides applied)."""
    return payout_cents(payout_rule(payout, contract_id=contract_id, buyer_id=buyer_id), price_cents)


def percent_basis_points(percent: int | float | str) -> int:
    """A stored percent (at most two decimals) as whole basis points, rounded down: 12.5 -> 1250."""
    return _basis_points(percent)


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
    return balanced(
        [
            Entry(f"buyer:{buyer_id}", -price_cents),
            Entry(f"partner:{partner_id}", payout_cents),
            Entry("house:revenue", price_cents - payout_cents),
        ]
    )


def reversal_entries(sale: Sequence[Entry]) -> list[Entry]:
    return balanced([Entry(e.account, -e.amount_cents) for e in sale])


def clawback_cents(*, payout_cents: int, amount_cents: int, price_cents: int) -> int:
    """The partner's share of a return of `amount_cents` on a sale at `price_cents` that paid
    `payout_cents`: payout * amount // price, rounded down (integer arithmetic only)."""
    if not 0 < amount_cents <= price_cents:
        raise ValueError("a return is more than 0 and at most the sale's price")
    return payout_cents * amount_cents // price_cents


def return_entries(*, buyer_id: str, partner_id: str, amount_cents: int, clawback_cents: int) -> list[Entry]:
    """A return: +amount to the buyer, -clawback from the partner, the rest from `house:revenue`.

    Zero entries are left out (no clawback, or a house share of 0), so an account's statement counts
    only entries that move its money."""
    entries = [
        Entry(f"buyer:{buyer_id}", amount_cents),
        Entry(f"partner:{partner_id}", -clawback_cents),
        Entry("house:revenue", clawback_cents - amount_cents),
    ]
    return balanced([e for e in entries if e.amount_cents != 0])


def payout_entries(partner_id: str, amount_cents: int) -> list[Entry]:
    """A partner payout: -amount to the partner (what it is owed goes down), +amount to `house:cash`."""
    return balanced([Entry(f"partner:{partner_id}", -amount_cents), Entry("house:cash", amount_cents)])


def net_by_account(entries: Sequence[Entry]) -> dict[str, int]:
    """The sum per account of several transactions' entries (a sale and what followed it)."""
    net: dict[str, int] = {}
    for e in entries:
        net[e.account] = net.get(e.account, 0) + e.amount_cents
    return net


def remainder_reversal_entries(sale: Sequence[Entry], returned: Sequence[Entry]) -> list[Entry]:
    """The reversal of what is left of a sale after its returns: every account the sale and its
    returns touched ends at zero for this sale. Without returns it is the plain `reversal_entries`."""
    if not returned:
        return reversal_entries(sale)
    net = net_by_account([*sale, *returned])
    return balanced([Entry(account, -amount) for account, amount in net.items() if amount != 0])
