"""What the database's counter rows hold during a replay, in memory (docs/replay.md): each
contract's cap slots and spend per period, each buyer's funds, holds and spend per period, taken and
given back as `take_cap_slot`, `take_hold` and `give_back` take and give them. Pure: no clock, no
database."""

from __future__ import annotations

from pingpost.domain.auction import Funds
from pingpost.domain.eligibility import PeriodKeys, Usage, local_minute, spend_cap_reached
from pingpost.domain.model import Buyer, Contract, Snapshot
from pingpost.domain.outcomes import Outcome

Periods = tuple[dict[str, int], dict[str, int], dict[str, int]]  # day, week, month key -> amount


def _add(counters: dict[str, Periods], owner: str, keys: PeriodKeys, amount: int) -> Periods:
    """`amount` more in each of the periods `keys` of `owner`'s counters; answers them."""
    counts = counters.get(owner)
    if counts is None:
        counts = counters[owner] = ({}, {}, {})
    days, weeks, months = counts
    days[keys.day] = days.get(keys.day, 0) + amount
    weeks[keys.week] = weeks.get(keys.week, 0) + amount
    months[keys.month] = months.get(keys.month, 0) + amount
    return counts


def later(keys: PeriodKeys, stored: tuple[str, str, str]) -> PeriodKeys:
    """Each period the later of the decision's and a counter's (keys are ISO dates: they sort)."""
    if keys.day >= stored[0] and keys.week >= stored[1] and keys.month >= stored[2]:
        return keys
    return PeriodKeys(max(keys.day, stored[0]), max(keys.week, stored[1]), max(keys.month, stored[2]))


def spend_capped(snap: Snapshot) -> bool:
    return any(c.spend_capped for c in snap.contracts.values()) or any(b.spend_capped for b in snap.buyers.values())


class Counters:
    """Cap slots, spend and funds. `spend_on`: spend is counted (some version of the configuration
    has a spend cap, so one added mid-range finds its period's spend counted, as the rows hold it)."""

    def __init__(self, funds: dict[str, Funds], *, spend_on: bool) -> None:
        self.funds = funds
        self.spend_on = spend_on
        self.used: dict[str, Periods] = {}  # contract -> slots per period
        self.spent: dict[str, Periods] = {}  # contract -> cents per period
        self.buyer_spent: dict[str, Periods] = {}  # buyer -> cents per period (its time zone)
        # What `contract_usage` would hold: each period's latest key and its count (docs/replay.md)
        self.usage: dict[str, Usage] = {}

    def funds_of(self, buyer_id: str) -> Funds:
        funds = self.funds.get(buyer_id)
        if funds is None:
            funds = self.funds[buyer_id] = Funds(0, 0, 0)
        return funds

    def spend_caps(self, snap: Snapshot) -> None:
        """Each buyer's spend caps on its funds, under this configuration."""
        for buyer in snap.buyers.values():
            self.funds_of(buyer.id).spend_caps = (
                buyer.spend_daily_cap,
                buyer.spend_weekly_cap,
                buyer.spend_monthly_cap,
            )

    def take(
        self, c: Contract, buyer: Buyer | None, price: int, at: int
    ) -> tuple[tuple[str, str] | None, PeriodKeys, PeriodKeys | None]:
        """`take_cap_slot` and `take_hold` at the decision's instant `at`: (the refusal or None, the
        contract's periods, the buyer's spend periods). Every reservation counts in its contract's
        periods, capped or not (a cap added later finds it counted), and in a counter's newer period
        when the counter is already there: a counter never moves back (a time zone moved west)."""
        keys = self.forward(c.id, local_minute(at, c.tz)[1])
        if c.capped and (used := self.used.get(c.id)) is not None:
            for cap, counts, key in (
                (c.daily_cap, used[0], keys.day),
                (c.weekly_cap, used[1], keys.week),
                (c.monthly_cap, used[2], keys.month),
            ):
                if cap is not None and counts.get(key, 0) >= cap:
                    return (Outcome.CAP_REACHED.value, "reserved_concurrently"), keys, None
        funds = self.funds_of(c.buyer_id)
        if funds.available_cents < price:
            return (Outcome.INSUFFICIENT_BALANCE.value, "reserved_concurrently"), keys, None
        buyer_keys = None
        if self.spend_on:
            failure = self.spend_failure(c, price, keys)
            if failure is not None:
                return failure, keys, None
            if buyer is not None:  # counted whether capped or not, as `buyer_funds` counts it
                buyer_keys = later(local_minute(at, buyer.tz)[1], funds.spend_keys)
                if buyer.spend_capped:
                    reached = spend_cap_reached(funds.spend_caps, funds.spend_keys, funds.spent, buyer_keys, price)
                    if reached is not None:
                        return (Outcome.CAP_REACHED.value, reached), keys, None
        self.count(c.id, keys, 1, price)
        self.buyer_spend(c.buyer_id, buyer_keys, price)
        funds.holds_cents += price
        return None, keys, buyer_keys

    def give_back(
        self, contract_id: str, buyer_id: str, keys: PeriodKeys | None, buyer_keys: PeriodKeys | None, price: int
    ) -> None:
        """A reservation released or lapsed: its slot, spend and hold."""
        self.count(contract_id, keys, -1, price)
        self.buyer_spend(buyer_id, buyer_keys, -price)
        self.funds_of(buyer_id).holds_cents -= price

    def forward(self, contract_id: str, keys: PeriodKeys) -> PeriodKeys:
        """The periods a slot counts in: the decision's, or the counter's where that is newer."""
        u = self.usage.get(contract_id)
        if u is None:
            return keys
        return later(keys, (u.day_key, u.week_key, u.month_key))

    def count(self, contract_id: str, keys: PeriodKeys | None, step: int, amount: int) -> None:
        """A slot (`step` 1) taken or given back (-1) in the periods `keys`, with its price against the
        contract's spend caps when spend is counted."""
        if keys is None:
            return
        days, weeks, months = _add(self.used, contract_id, keys, step)
        day, week, month = keys.day, keys.week, keys.month
        spent = _add(self.spent, contract_id, keys, step * amount) if self.spend_on else None
        # What `contract_usage` holds: each period's latest key and its count; a counter only moves
        # forward, so a slot of an older period given back leaves the current count alone.
        u = self.usage.get(contract_id)
        if u is not None and day < u.day_key and week < u.week_key and month < u.month_key:
            return
        if u is not None:
            day, week, month = max(day, u.day_key), max(week, u.week_key), max(month, u.month_key)
        usage = Usage(day, days.get(day, 0), week, weeks.get(week, 0), month, months.get(month, 0))
        if spent is not None:
            usage.day_spent, usage.week_spent, usage.month_spent = (
                spent[0].get(day, 0),
                spent[1].get(week, 0),
                spent[2].get(month, 0),
            )
        self.usage[contract_id] = usage

    def buyer_spend(self, buyer_id: str, keys: PeriodKeys | None, amount: int) -> None:
        """A price counted (or given back, negative) against the buyer's spend caps, in its periods;
        its funds show the latest periods' spend, as `buyer_funds` does."""
        if keys is None or not self.spend_on:
            return
        spent = _add(self.buyer_spent, buyer_id, keys, amount)
        funds = self.funds_of(buyer_id)
        latest = (
            max(keys.day, funds.spend_keys[0]),
            max(keys.week, funds.spend_keys[1]),
            max(keys.month, funds.spend_keys[2]),
        )
        funds.spend_keys = latest
        funds.spent = (spent[0].get(latest[0], 0), spent[1].get(latest[1], 0), spent[2].get(latest[2], 0))

    def spend_failure(self, c: Contract, price: int, keys: PeriodKeys | None) -> tuple[str, str] | None:
        """The contract's spend cap this price would pass, in its periods at the decision."""
        if not c.spend_capped or keys is None:
            return None
        spent = self.spent.get(c.id)
        totals = (
            (0, 0, 0)
            if spent is None
            else (spent[0].get(keys.day, 0), spent[1].get(keys.week, 0), spent[2].get(keys.month, 0))
        )
        reached = spend_cap_reached(
            (c.spend_daily_cap, c.spend_weekly_cap, c.spend_monthly_cap),
            (keys.day, keys.week, keys.month),
            totals,
            keys,
            price,
        )
        return None if reached is None else (Outcome.CAP_REACHED.value, reached)
