"""What a sale reversal may refund: the sale's `reversal` transaction, net of its approved returns."""

from __future__ import annotations

from typing import Any

from pingpost import errors
from pingpost.db import ledger_repo, returns_repo
from pingpost.db.store import Tx
from pingpost.domain.money import Entry, remainder_reversal_entries

REVERSIBLE = frozenset({"charged", "partially_returned"})


async def reversal_entries_for(tx: Tx, sale: Any) -> list[Entry]:
    """The entries reversing what is left of `sale` (read with its row locked): every account ends at
    zero for it, so a buyer is never refunded more than the price, whatever was returned before.

    Raises 409 `conflict` for a sale that is not charged or partially returned (pending, void,
    reversed, or fully returned: nothing is left), and while a return of it awaits a decision."""
    if sale["status"] not in REVERSIBLE:
        raise errors.Conflict(f"a {sale['status']} sale cannot be reversed", details={"status": sale["status"]})
    pending = await returns_repo.open_return_of(tx, sale["id"])
    if pending is not None and pending["status"] == "pending":
        raise errors.Conflict(
            "a return of this sale awaits a decision: approve or deny it first",
            details={"status": sale["status"], "return_id": pending["id"]},
        )
    return remainder_reversal_entries(
        await ledger_repo.sale_entries_of(tx, sale["id"]), await ledger_repo.entries_for_sale(tx, sale["id"], "return")
    )
