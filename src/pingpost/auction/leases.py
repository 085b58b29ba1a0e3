"""One process's leases of shared counters (docs/scale-out.md): cap slots of a contract and funds of
its buyer, taken from the shared rows by a winning ping's own transaction (`db/leases_repo.take`) and
then drawn from in memory by this process's next winners of that contract, which touch no shared row.

Exactness never rests on this book: the shared rows counted every leased slot and cent first, a ping
that drew from a lease checks it in its own transaction (`leases_repo.hold`: active, unexpired,
share-locked until commit), and ending a lease counts what its committed reservations used. The book
only keeps this process from drawing more than a lease holds (one event loop: draws cannot race).

The counters are generic: a lease holds `slots` (count caps: one a reservation) and `cents` (the
buyer's funds: the price a reservation). A counter measured in cents of price (the spend caps of
docs/scale-out.md) leases like `cents`: one more amount on the lease, taken and given back by the same
statements.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace

import structlog

from pingpost.db import leases_repo
from pingpost.db.store import Store, Tx
from pingpost.domain.auction import AuctionState
from pingpost.domain.eligibility import PeriodKeys, PeriodKeysByContract, Usage
from pingpost.domain.leases import LeaseSize, lease_size, slots_left
from pingpost.domain.model import Contract
from pingpost.ids import new_id, process_tag

log = structlog.get_logger("pingpost.leases")


@dataclass(slots=True, eq=False)
class Lease:
    id: str
    contract_id: str
    buyer_id: str
    keys: PeriodKeys
    slots_left: int
    cents_left: int
    expires_at: int  # the store's clock for shared decisions
    slots: int = 0  # what it held when taken
    usable: bool = True


@dataclass(slots=True)
class _Rate:
    second: int = 0
    count: int = 0
    per_s: float = 0.0


@dataclass
class LeaseBook:
    """`ttl_ms`: a lease's lifetime; it stops being drawn from `margin_ms` before (then ended early,
    giving back what is unused), so pings never race its expiry by the clock alone."""

    store: Store
    ttl_ms: int = 5000
    max_slots: int = 500
    share: int = 4  # a lease takes at most 1/share of what is left (domain/leases.py)
    min_left: int = 8  # with fewer slots or prices left, one at a time
    holder: str = field(default_factory=process_tag)
    leases: dict[str, list[Lease]] = field(default_factory=dict)  # by contract id, oldest first
    _ending: dict[str, int] = field(default_factory=dict)  # retired, not yet ended: id -> expires_at
    _rates: dict[str, _Rate] = field(default_factory=dict)
    _taking: dict[str, int] = field(default_factory=dict)  # contract id -> when a ping began taking a lease
    _task: asyncio.Task[None] | None = None

    @property
    def margin_ms(self) -> int:
        return self.ttl_ms // 4

    # --- a ping's transaction ---------------------------------------------------------------------

    def adjust(self, state: AuctionState, keys: PeriodKeysByContract, now: int) -> None:
        """What this process holds unused in leases is its own to use: the decision sees it as free
        (the shared rows count it as used)."""
        for lease in self.held():
            if not self._drawable(lease, keys[lease.contract_id], now):
                continue
            u = state.usage.get(lease.contract_id)
            if u is not None:
                n = lease.slots_left
                state.usage[lease.contract_id] = Usage(
                    u.day_key,
                    u.day_used - (n if u.day_key == lease.keys.day else 0),
                    u.week_key,
                    u.week_used - (n if u.week_key == lease.keys.week else 0),
                    u.month_key,
                    u.month_used - (n if u.month_key == lease.keys.month else 0),
                    u.live_calls,
                )
            f = state.funds.get(lease.buyer_id)
            if f is not None:  # a new Funds: a read may be shared by several pings (db/auction_repo.SharedRead)
                state.funds[lease.buyer_id] = replace(f, holds_cents=f.holds_cents - lease.cents_left)

    def held(self) -> list[Lease]:
        return [lease for leases in self.leases.values() for lease in leases]

    def _drawable(self, lease: Lease, keys: PeriodKeys, now: int) -> bool:
        return lease.usable and lease.keys == keys and lease.expires_at - self.margin_ms > now

    def draw(self, contract_id: str, keys: PeriodKeys, price_cents: int, now: int) -> Lease | None:
        """One slot and the price from this process's oldest lease of the contract that has them."""
        self._note_win(contract_id, now)
        for lease in self.leases.get(contract_id, ()):
            if self._drawable(lease, keys, now) and lease.slots_left >= 1 and lease.cents_left >= price_cents:
                lease.slots_left -= 1
                lease.cents_left -= price_cents
                return lease
        return None

    def needs_refill(self, contract_id: str, keys: PeriodKeys, now: int) -> bool:
        """A winner that drew from a lease takes the next one when what is left runs low (under half of
        the newest lease) or old (under half a lifetime), so the contract's next winners never wait
        without a lease (and none is being taken already)."""
        if now - self._taking.get(contract_id, -(10**15)) < self.margin_ms:
            return False
        drawable = [lease for lease in self.leases.get(contract_id, ()) if self._drawable(lease, keys, now)]
        if not drawable:
            return False
        newest = drawable[-1]
        return 2 * sum(lease.slots_left for lease in drawable) < newest.slots or (
            newest.expires_at - now < self.ttl_ms // 2
        )

    def undraw(self, lease: Lease, price_cents: int) -> None:
        """A ping that drew from the lease did not commit (its transaction was undone)."""
        lease.slots_left += 1
        lease.cents_left += price_cents

    def _note_win(self, contract_id: str, now: int) -> None:
        rate = self._rates.get(contract_id)
        if rate is None:
            rate = self._rates[contract_id] = _Rate()
        second = now // 1000
        if second != rate.second:
            rate.per_s = rate.count if second == rate.second + 1 else 0.0
            rate.second, rate.count = second, 0
        rate.count += 1

    def size(self, contract: Contract, state: AuctionState, keys: PeriodKeys, price_cents: int, now: int) -> LeaseSize:
        """What this winner takes. While another ping of this process is taking a lease of the contract
        (a burst arrives before the first lease commits), the others take one slot each rather than
        a lease each."""
        if now - self._taking.get(contract.id, -(10**15)) < self.margin_ms:
            return LeaseSize(1, price_cents)
        rate = self._rates.get(contract.id)
        u = state.usage.get(contract.id, Usage())
        used = (
            u.day_used if u.day_key == keys.day else 0,
            u.week_used if u.week_key == keys.week else 0,
            u.month_used if u.month_key == keys.month else 0,
        )
        funds = state.funds.get(contract.buyer_id)
        return lease_size(
            wins_per_s=max(rate.per_s, rate.count) if rate else 0.0,
            ttl_ms=self.ttl_ms,
            max_slots=self.max_slots,
            slots_left=slots_left((contract.daily_cap, contract.weekly_cap, contract.monthly_cap), used),
            funds_left_cents=funds.available_cents if funds else 0,
            price_cents=price_cents,
            share=self.share,
            min_left=self.min_left,
        )

    def new_lease(
        self, contract: Contract, keys: PeriodKeys, size: LeaseSize, price_cents: int, now: int, *, drawn: bool = True
    ) -> Lease:
        """A lease taken by this ping's transaction, the ping's own slot and price already drawn from it
        unless `drawn` is False (a refill); add it to the book once that transaction committed."""
        self._taking[contract.id] = now
        return Lease(
            id=new_id("lse"),
            contract_id=contract.id,
            buyer_id=contract.buyer_id,
            keys=keys,
            slots_left=size.slots - (1 if drawn else 0),
            cents_left=size.cents - (price_cents if drawn else 0),
            expires_at=now + self.ttl_ms,
            slots=size.slots,
        )

    def row(self, lease: Lease, size: LeaseSize, now: int) -> dict[str, object]:
        return {
            "id": lease.id,
            "holder": self.holder,
            "contract_id": lease.contract_id,
            "buyer_id": lease.buyer_id,
            "day_key": lease.keys.day,
            "week_key": lease.keys.week,
            "month_key": lease.keys.month,
            "slots": size.slots,
            "cents": size.cents,
            "expires_at": lease.expires_at,
            "created_at": now,
        }

    def add(self, lease: Lease) -> None:
        self._taking.pop(lease.contract_id, None)
        self.leases.setdefault(lease.contract_id, []).append(lease)

    def retire(self, lease: Lease) -> None:
        """Draw from it no more; the next sweep ends it and gives back what it did not use."""
        lease.usable = False
        held = self.leases.get(lease.contract_id, [])
        if lease in held:
            held.remove(lease)
            if not held:
                del self.leases[lease.contract_id]
        self._ending[lease.id] = lease.expires_at

    # --- upkeep -------------------------------------------------------------------------------------

    async def sweep(self) -> int:
        """End this process's leases that are used up, retired or near expiry, and every lease of any
        process past its expiry (a process that died strands nothing longer); answers how many ended."""

        async def unit(tx: Tx) -> tuple[int, list[str]]:
            now = await tx.now_ms()
            for lease in self.held():
                if lease.slots_left < 1 or lease.cents_left <= 0 or lease.expires_at - self.margin_ms <= now:
                    self.retire(lease)
            ended = await leases_repo.end(tx, now=now, ids=sorted(self._ending))
            # Past its expiry a lease is ended by whichever process sweeps first: forget it here.
            return len(ended), [e["id"] for e in ended] + [i for i, at in self._ending.items() if at <= now]

        n, done = await self.store.write(unit)
        for lease_id in done:
            self._ending.pop(lease_id, None)
        return n

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        interval = max(0.05, self.ttl_ms / 8000)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:  # the next sweep tries again; leases expire whatever happens
                log.exception("lease_sweep_failed")

    def stop_upkeep(self) -> None:
        """No timer: whoever drives this book calls `sweep` (the simulator, docs/simulator.md)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self) -> None:
        """Give back every lease this process holds (a clean stop strands nothing)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for lease in self.held():
            self.retire(lease)
        with contextlib.suppress(Exception):
            await self.sweep()
