"""Account statements: an opening balance, one line per UTC day and ledger kind, a closing balance,
every figure read from the ledger entries themselves (docs/protocol.md, Money)."""

from __future__ import annotations

from pingpost import errors
from pingpost.db import admin_repo, ledger_repo
from pingpost.db.store import Store, Tx
from pingpost.domain import statements as st
from pingpost.ledger.service import ACCOUNT

_OWNERS = {"buyer": "buyers", "partner": "partners"}


class StatementService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def statement(self, account: str, *, first: str, last: str) -> st.Statement:
        """The statement of `account` from `first` to `last` (YYYY-MM-DD, UTC days, both included).

        Raises 422 `validation_error` for a malformed account or period, 404 for an unknown buyer or
        partner. The opening and closing balances are each summed from the ledger and must agree with
        opening + lines, on one read snapshot."""
        if not ACCOUNT.match(account):
            raise errors.ValidationFailed.one(
                "account", "must be buyer:{id}, partner:{id}, house:revenue or house:cash"
            )
        try:
            period = st.period(first, last)
        except st.InvalidPeriod as exc:
            raise errors.ValidationFailed.one(exc.field, exc.message) from None
        holder, _, ident = account.partition(":")

        async def unit(tx: Tx) -> st.Statement:
            if holder in _OWNERS and not await admin_repo.exists(tx, _OWNERS[holder], ident):
                raise errors.NotFound(holder, ident)
            opening = await ledger_repo.balance_before(tx, account, period.start_ms)
            rows = await ledger_repo.lines_by_day_and_kind(tx, account, start_ms=period.start_ms, end_ms=period.end_ms)
            statement = st.fold(
                account=account,
                period=period,
                opening_balance_cents=opening,
                lines=[st.Line(st.day_of(int(r["day"])), r["kind"], int(r["n"]), int(r["amount"])) for r in rows],
            )
            closing = await ledger_repo.balance_before(tx, account, period.end_ms)
            if closing != statement.closing_balance_cents:  # one snapshot: only a defect gets here
                raise RuntimeError("statement lines do not add up to the ledger's closing balance")
            return statement

        return await self.store.read(unit)
