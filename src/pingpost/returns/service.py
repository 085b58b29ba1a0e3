"""Returns: a buyer disputes a sale within its contract's policy; an operator (or the policy's
auto-approve) decides; approval refunds the buyer in one zero-sum `return` transaction
(docs/protocol.md, Returns)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pingpost import actors, errors
from pingpost.db import admin_repo, audit_repo, console_repo, events_repo, post_repo, returns_repo, sales_repo
from pingpost.db.ledger_repo import record_transaction
from pingpost.db.store import Store, Tx
from pingpost.domain import returns as rules
from pingpost.domain.money import clawback_cents, return_entries
from pingpost.ids import new_id
from pingpost.reports.counters import utc_day
from pingpost.returns.schemas import ReturnIn
from pingpost.timefmt import rfc3339

STATUSES = ("pending", "approved", "denied")


def return_view(row: Any, *, for_buyer: bool = False) -> dict[str, Any]:
    """A return as the API shows it; a buyer does not see the partner's clawback."""
    view = {
        "id": row["id"],
        "sale_id": row["sale_id"],
        "buyer": row["buyer_id"],
        "partner": row["partner_id"],
        "contract": row["contract_id"],
        "offer": row["offer_id"],
        "status": row["status"],
        "reason": row["reason"],
        "note": row["note"],
        "amount_cents": int(row["amount_cents"]),
        "clawback_cents": None if row["clawback_cents"] is None else int(row["clawback_cents"]),
        "transaction_id": row["transaction_id"],
        "decision_note": row["decision_note"],
        "opened_by": row["opened_by"],
        "created_at": rfc3339(row["created_at"]),
        "decided_at": rfc3339(row["decided_at"]),
    }
    if for_buyer:
        del view["clawback_cents"]
    return view


def _event_data(row: Any, **extra: Any) -> dict[str, Any]:
    """Ids, amounts and codes only: never the buyer's note (free text may hold PII)."""
    return {
        "return_id": row["id"],
        "sale_id": row["sale_id"],
        "contract": row["contract_id"],
        "buyer": row["buyer_id"],
        "partner": row["partner_id"],
        "reason": row["reason"],
        "amount_cents": int(row["amount_cents"]),
        **extra,
    }


@dataclass(frozen=True)
class Opener:
    """Who opens a return: a buyer (its own sales only) or an operator (`buyer_id` None)."""

    buyer_id: str | None

    @property
    def kind(self) -> str:
        return "admin" if self.buyer_id is None else "buyer"


class ReturnService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def open(self, sale_id: str, body: ReturnIn, *, by: Opener) -> dict[str, Any]:
        """Open a return of a sale under its contract's policy; approved at once with `auto_approve`.

        Refusals, in order: 404 (no such sale, or another buyer's); 409 `already_returned` (a pending
        or approved return exists); 409 `conflict` (the sale is not `charged`: pending, void,
        reversed); 422 `return_window_closed`, `invalid_reason`, `validation_error` (amount over the
        price), `return_limit_reached`."""
        actor = actors.current()

        async def unit(tx: Tx) -> dict[str, Any]:
            found = await sales_repo.sale(tx, sale_id)
            if found is None or (by.buyer_id is not None and found["buyer_id"] != by.buyer_id):
                raise errors.NotFound("sale", sale_id)
            # Lock order: the contract (its month's count), then the sale (docs/crash-safety.md).
            contract = await returns_repo.lock_contract(tx, found["contract_id"]) or {}
            sale = await sales_repo.sale(tx, sale_id, lock=True)
            policy = rules.ReturnPolicy.from_body(contract)
            existing = await returns_repo.open_return_of(tx, sale_id)
            if existing is not None:
                raise errors.Conflict(
                    "this sale already has a return",
                    code="already_returned",
                    details={"return_id": existing["id"], "status": existing["status"]},
                )
            if sale["status"] not in rules.RETURNABLE:
                raise errors.Conflict(f"a {sale['status']} sale cannot be returned", details={"status": sale["status"]})
            now = await tx.now_ms()
            if not rules.window_open(sold_at_ms=int(sale["created_at"]), now_ms=now, window_days=policy.window_days):
                raise errors.Unprocessable(
                    "the return window of this sale is closed",
                    code="return_window_closed",
                    details={"window_days": policy.window_days, "sold_at": rfc3339(sale["created_at"])},
                )
            if body.reason not in policy.reasons:
                raise errors.Unprocessable(
                    "the contract does not take this reason",
                    code="invalid_reason",
                    details={"reasons": list(policy.reasons)},
                )
            price = int(sale["price_cents"])
            amount = price if body.amount_cents is None else body.amount_cents
            if not 0 < amount <= price:
                raise errors.ValidationFailed.one(
                    "amount_cents", f"must be more than 0 and at most the sale's price ({price})"
                )
            month = rules.month_of(int(sale["created_at"]), contract.get("timezone") or "UTC")
            await self._check_limit(tx, sale=sale, policy=policy, month=month)
            row = {
                "id": new_id("ret"),
                "sale_id": sale_id,
                "offer_id": sale["offer_id"],
                "campaign_id": sale["campaign_id"],
                "partner_id": sale["partner_id"],
                "contract_id": sale["contract_id"],
                "buyer_id": sale["buyer_id"],
                "status": "pending",
                "reason": body.reason,
                "note": body.note,
                "amount_cents": amount,
                "sale_month": month.key,
                "opened_by": by.kind,
                "created_at": now,
            }
            await returns_repo.insert_return(tx, row)
            await events_repo.record_event(
                tx,
                "return.opened",
                _event_data({**row, "clawback_cents": None, "transaction_id": None}, opened_by=by.kind),
            )
            if policy.auto_approve:
                await self._approve(tx, return_id=row["id"], sale=sale, policy=policy, note=None, now=now)
            view = return_view(await returns_repo.get(tx, row["id"]), for_buyer=by.buyer_id is not None)
            if by.buyer_id is None:  # an operator's write (docs/events.md, audit log)
                await audit_repo.record_audit(
                    tx,
                    actor=actor.as_dict(),
                    action="create",
                    object_type="return",
                    object_id=row["id"],
                    before=None,
                    after=view,
                    now=now,
                )
            return view

        return await self.store.write(unit)

    @staticmethod
    async def _check_limit(tx: Tx, *, sale: Any, policy: rules.ReturnPolicy, month: rules.Month) -> None:
        if policy.max_return_rate_bp is None:
            return
        returns = await returns_repo.count_month_returns(tx, contract_id=sale["contract_id"], month=month.key)
        sales = await returns_repo.count_month_sales(
            tx, contract_id=sale["contract_id"], start_ms=month.start_ms, end_ms=month.end_ms, statuses=rules.BILLED
        )
        if rules.limit_reached(returns=returns, sales=sales, max_return_rate_bp=policy.max_return_rate_bp):
            raise errors.Unprocessable(
                "the contract's monthly return limit is reached",
                code="return_limit_reached",
                details={
                    "month": month.key,
                    "returns": returns,
                    "sales": sales,
                    "limit": rules.return_limit(sales=sales, max_return_rate_bp=policy.max_return_rate_bp),
                },
            )

    async def approve(self, return_id: str, *, note: str | None) -> dict[str, Any]:
        """Approve a pending return: one `return` ledger transaction and the sale's new status.
        Approving an approved return answers it again; an approved or denied one is 409 `conflict`
        for the other decision."""
        return await self._decide(return_id, "approved", note)

    async def deny(self, return_id: str, *, note: str | None) -> dict[str, Any]:
        """Deny a pending return (nothing moves); denying a denied return answers it again."""
        return await self._decide(return_id, "denied", note)

    async def _decide(self, return_id: str, decision: str, note: str | None) -> dict[str, Any]:
        actor = actors.current()

        async def unit(tx: Tx) -> dict[str, Any]:
            found = await returns_repo.get(tx, return_id)
            if found is None:
                raise errors.NotFound("return", return_id)
            sale = await sales_repo.sale(tx, found["sale_id"], lock=True)
            current = await returns_repo.get(tx, return_id)  # as it is now that the sale is ours
            if current["status"] == decision:
                return return_view(current)
            if current["status"] != "pending":
                raise errors.Conflict(
                    f"this return is already {current['status']}", details={"status": current["status"]}
                )
            now = await tx.now_ms()
            if decision == "approved":
                policy = rules.ReturnPolicy.from_body(await admin_repo.body(tx, "contracts", sale["contract_id"]) or {})
                await self._approve(tx, return_id=return_id, sale=sale, policy=policy, note=note, now=now)
            else:
                await returns_repo.deny(tx, return_id, note=note, now=now)
                await events_repo.record_event(tx, "return.denied", _event_data(current))
            view = return_view(await returns_repo.get(tx, return_id))
            await audit_repo.record_audit(
                tx,
                actor=actor.as_dict(),
                action="approve" if decision == "approved" else "deny",
                object_type="return",
                object_id=return_id,
                before=return_view(current),
                after=view,
                now=now,
            )
            return view

        return await self.store.write(unit)

    @staticmethod
    async def _approve(
        tx: Tx, *, return_id: str, sale: Any, policy: rules.ReturnPolicy, note: str | None, now: int
    ) -> None:
        """The money of an approval, in the caller's transaction holding the sale's lock."""
        row = await returns_repo.get(tx, return_id)
        if sale["status"] not in rules.RETURNABLE:  # a pending return keeps its sale charged (ledger/reversals.py)
            raise errors.Conflict(f"a {sale['status']} sale cannot be returned", details={"status": sale["status"]})
        amount, price = int(row["amount_cents"]), int(sale["price_cents"])
        clawback = (
            clawback_cents(payout_cents=int(sale["payout_cents"]), amount_cents=amount, price_cents=price)
            if policy.partner_clawback
            else 0
        )
        txn_id = await record_transaction(
            tx,
            kind="return",
            now=now,
            reference=return_id,
            sale_id=sale["id"],
            entries=return_entries(
                buyer_id=sale["buyer_id"], partner_id=sale["partner_id"], amount_cents=amount, clawback_cents=clawback
            ),
        )
        await returns_repo.approve(tx, return_id, clawback_cents=clawback, transaction_id=txn_id, note=note, now=now)
        # the console's stored totals of the sale's day count revenue net of returns (docs/console.md)
        await console_repo.forget_day_totals(tx, utc_day(int(sale["created_at"])))
        status = rules.status_after_return(amount_cents=amount, price_cents=price)
        await post_repo.set_sale_status(tx, sale["id"], status)
        await post_repo.update_waterfall(
            tx,
            sale["ping_id"],
            {
                sale["contract_id"]: {
                    "return": {
                        "id": return_id,
                        "at": rfc3339(now),
                        "reason": row["reason"],
                        "amount_cents": amount,
                        "transaction_id": txn_id,
                    }
                }
            },
        )
        await post_repo.add_event(
            tx,
            ping_id=sale["ping_id"],
            at=now,
            type_="return",
            bid_id=sale["bid_id"],
            detail=f"{row['reason']}: {amount}",
        )
        await events_repo.record_event(
            tx, "return.approved", _event_data(row, clawback_cents=clawback, transaction_id=txn_id, sale_status=status)
        )

    async def get(self, return_id: str, *, buyer_id: str | None = None) -> dict[str, Any]:
        row = await self.store.read(lambda tx: returns_repo.get(tx, return_id))
        if row is None or (buyer_id is not None and row["buyer_id"] != buyer_id):
            raise errors.NotFound("return", return_id)
        return return_view(row, for_buyer=buyer_id is not None)

    async def list(
        self,
        *,
        filters: dict[str, str | None],
        start: int | None,
        end: int | None,
        cursor: str | None,
        limit: int,
        for_buyer: bool = False,
    ) -> dict[str, Any]:
        """Returns newest first; `filters` maps columns (status, buyer_id, partner_id, contract_id,
        sale_id) to values, None for no filter. A status other than pending/approved/denied is 422."""
        status = filters.get("status")
        if status is not None and status not in STATUSES:
            raise errors.ValidationFailed.one("status", f"one of {', '.join(STATUSES)}")
        present = {column: value for column, value in filters.items() if value is not None}

        async def unit(tx: Tx) -> dict[str, Any]:
            rows = await returns_repo.page(tx, filters=present, start=start, end=end, cursor=cursor, limit=limit + 1)
            return {
                "items": [return_view(r, for_buyer=for_buyer) for r in rows[:limit]],
                "next_cursor": rows[limit - 1]["id"] if len(rows) > limit else None,
            }

        return await self.store.read(unit)
