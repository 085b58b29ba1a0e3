"""How large a lease of a shared counter one process takes (docs/scale-out.md). Pure: no I/O, no clock.

A lease moves `k` cap slots (and `k` times the price in funds) from the shared counter rows to one
process at once, so the next `k - 1` winners of that contract in that process touch no shared row.
Large leases save round trips on the hot rows; small ones strand less: what a process holds unused
when its lease ends at a period's end is under-fill, and while it holds them no other process can
use them. So the size follows the rate and shrinks with what is left:
- about a lease lifetime of this process's recent wins of the contract, at most `max_slots`;
- at most a quarter of the slots left in the tightest capped period, and of the buyer's available
  funds counted in prices: the leases of any number of processes together never take more than
  what is left, each later one a quarter of a smaller rest, and the last few slots (fewer than 8)
  are never leased (taken one at a time, as without leases);
- 1 (no lease: take exactly what this ping needs) when that comes to less than 2.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_LEFT_TO_LEASE = 8  # below this many slots (or prices of funds) left, take one at a time


@dataclass(frozen=True, slots=True)
class LeaseSize:
    slots: int
    cents: int


def lease_size(  # noqa: PLR0913 - every input of the rule, by keyword
    *,
    wins_per_s: float,
    ttl_ms: int,
    max_slots: int,
    slots_left: int | None,
    funds_left_cents: int,
    price_cents: int,
    share: int = 4,
    min_left: int = MIN_LEFT_TO_LEASE,
) -> LeaseSize:
    """The slots and cents to take for one winner at `price_cents` (1 slot and the price: no lease).

    `slots_left`: what is left of the tightest capped period now (None: the contract has no cap);
    `funds_left_cents`: the buyer's available funds now. `share` and `min_left` are the quarter and the
    8 above (settings `lease_share`, `lease_min_left`; the simulator leases smaller caps with 2 and 2)."""
    k = min(max_slots, int(wins_per_s * ttl_ms / 1000))
    if slots_left is not None:
        k = min(k, slots_left // share if slots_left >= min_left else 1)
    if price_cents > 0:
        prices_left = funds_left_cents // price_cents
        k = min(k, prices_left // share if prices_left >= min_left else 1)
    if k < 2:
        return LeaseSize(1, price_cents)
    return LeaseSize(k, k * price_cents)


def slots_left(caps: tuple[int | None, ...], used: tuple[int, ...]) -> int | None:
    """What is left of the tightest cap (`caps` and `used` per period, used already 0 for a new period)."""
    left = [cap - u for cap, u in zip(caps, used, strict=True) if cap is not None]
    return max(0, min(left)) if left else None
