"""Partner payouts: money the house sends a partner, out of what the ledger says it is owed."""

from __future__ import annotations

from typing import Any

from pingpost import actors, errors
from pingpost.db import audit_repo, events_repo, ledger_repo
from pingpost.db.store import Store, Tx
from pingpost.domain.money import payout_entries
from pingpost.ledger.service import transaction_view


class PayoutService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def pay(self, partner_id: str, *, amount_cents: int, reference: str) -> dict[str, Any]:
        """Record a `payout` transaction (-amount to the partner, +amount to `house:cash`).

        Idempotent by `reference`: the same partner and amount answers the first payout; anything else
        under a used reference is 409 `conflict`. Raises 404 for an unknown partner and 422
        `insufficient_balance` above the partner's balance (what it is owed). The check and the
        insert are one transaction holding the partner's row (PostgreSQL; SQLite writers take turns),
        so concurrent payouts can never take the balance below zero."""
        actor = actors.current()

        async def unit(tx: Tx) -> dict[str, Any]:
            await ledger_repo.lock_reference(tx, "payout", reference)
            if not await ledger_repo.lock_partner(tx, partner_id):
                raise errors.NotFound("partner", partner_id)
            account = f"partner:{partner_id}"
            prior = await ledger_repo.transaction_by_reference(tx, "payout", reference)
            if prior is not None:
                view = await transaction_view(tx, prior)
                if {"account": account, "amount_cents": -amount_cents} not in view["entries"]:
                    raise errors.Conflict("reference already used for another payout", details={"reference": reference})
                return view
            owed = await ledger_repo.account_balance(tx, account)
            if amount_cents > owed:
                raise errors.Unprocessable(
                    "the payout is more than the partner is owed",
                    code="insufficient_balance",
                    details={"owed_cents": owed, "amount_cents": amount_cents},
                )
            now = await tx.now_ms()
            txn_id = await ledger_repo.record_transaction(
                tx, kind="payout", entries=payout_entries(partner_id, amount_cents), now=now, reference=reference
            )
            await events_repo.record_event(
                tx,
                "payout.created",
                {"transaction_id": txn_id, "partner": partner_id, "amount_cents": amount_cents, "reference": reference},
            )
            view = await transaction_view(tx, txn_id)
            await audit_repo.record_audit(
                tx,
                actor=actor.as_dict(),
                action="payout",
                object_type="partner",
                object_id=partner_id,
                before=None,
                after=view,
                now=now,
            )
            return view

        return await self.store.write(unit)
