"""The double-entry ledger: every movement one zero-sum transaction; balances derive from entries."""

from __future__ import annotations

import re
from typing import Any

from pingpost import actors, errors
from pingpost.db import admin_repo, audit_repo, events_repo, ledger_repo
from pingpost.db.store import Store, Tx
from pingpost.domain.money import deposit_entries
from pingpost.ids import now_ms
from pingpost.timefmt import rfc3339

ACCOUNT = re.compile(r"^(buyer|partner):[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$|^house:(revenue|cash)$")


async def transaction_view(tx: Tx, txn_id: str) -> dict[str, Any]:
    found = await ledger_repo.transaction(tx, txn_id)
    if found is None:
        raise errors.NotFound("transaction", txn_id)
    txn, rows = found
    return {
        "transaction_id": txn["id"],
        "kind": txn["kind"],
        "reference": txn["reference"],
        "sale_id": txn["sale_id"],
        "created_at": rfc3339(txn["created_at"]),
        "entries": [{"account": r["account"], "amount_cents": int(r["amount_cents"])} for r in rows],
    }


class LedgerService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def deposit(self, buyer_id: str, amount_cents: int, reference: str | None) -> dict[str, Any]:
        """Credit a buyer's prepaid balance; a repeated `reference` answers the first deposit."""
        actor = actors.current()

        async def unit(tx: Tx) -> dict[str, Any]:
            if not await admin_repo.exists(tx, "buyers", buyer_id):
                raise errors.NotFound("buyer", buyer_id)
            if reference is not None:
                prior = await ledger_repo.deposit_by_reference(tx, reference)
                if prior is not None:
                    view = await transaction_view(tx, prior)
                    if {"account": f"buyer:{buyer_id}", "amount_cents": amount_cents} not in view["entries"]:
                        raise errors.Conflict(
                            "reference already used for another deposit", details={"reference": reference}
                        )
                    return view
            now = now_ms()
            txn_id = await ledger_repo.record_transaction(
                tx, kind="deposit", entries=deposit_entries(buyer_id, amount_cents), now=now, reference=reference
            )
            await events_repo.record_event(
                tx,
                "deposit.created",
                {"transaction_id": txn_id, "buyer": buyer_id, "amount_cents": amount_cents, "reference": reference},
            )
            view = await transaction_view(tx, txn_id)
            await audit_repo.record_audit(
                tx,
                actor=actor.as_dict(),
                action="deposit",
                object_type="buyer",
                object_id=buyer_id,
                before=None,
                after=view,
                now=now,
            )
            return view

        return await self.store.write(unit)

    async def account(self, account: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
        if not ACCOUNT.match(account):
            raise errors.ValidationFailed.one(
                "account", "must be buyer:{id}, partner:{id}, house:revenue or house:cash"
            )

        async def unit(tx: Tx) -> dict[str, Any]:
            balance = await ledger_repo.account_balance(tx, account)
            rows = await ledger_repo.account_entries(tx, account, cursor=cursor, limit=limit + 1)
            items = [
                {
                    "transaction_id": r["transaction_id"],
                    "kind": r["kind"],
                    "amount_cents": int(r["amount_cents"]),
                    "sale_id": r["sale_id"],
                    "created_at": rfc3339(r["created_at"]),
                }
                for r in rows[:limit]
            ]
            next_cursor = rows[limit - 1]["id"] if len(rows) > limit else None
            return {"account": account, "balance_cents": int(balance), "items": items, "next_cursor": next_cursor}

        return await self.store.read(unit)
