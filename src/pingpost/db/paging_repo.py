"""The paged lists of time-ordered rows the list endpoints share: newest first after a cursor (an
id), column equalities from a fixed list, an optional [start, end) on `created_at`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pingpost.db.store import Tx


@dataclass(frozen=True)
class Listing:
    """A table listed newest first, and the columns its lists may filter on."""

    table: str  # a name from the calling repository, never from a request
    filters: frozenset[str]


async def newest_first(
    tx: Tx,
    listing: Listing,
    *,
    filters: Mapping[str, Any],
    during: tuple[int | None, int | None],
    cursor: str | None,
    limit: int,
) -> list[Any]:
    """Rows newest first after `cursor`, `created_at` in [start, end) of `during` (None: open); a
    filter column the listing does not allow is a ValueError (a defect, not a request's fault)."""
    table, (start, end) = listing.table, during
    where = ["(CAST(:cursor AS TEXT) IS NULL OR id < :cursor)"]
    params: dict[str, Any] = {"cursor": cursor, "lim": limit}
    for column, value in filters.items():
        if column not in listing.filters:
            raise ValueError(f"not a {table} filter: {column}")
        where.append(f"{column} = :{column}")
        params[column] = value
    if start is not None:
        where.append("created_at >= :start")
        params["start"] = start
    if end is not None:
        where.append("created_at < :end")
        params["end"] = end
    return list(
        await tx.fetch(f"SELECT * FROM {table} WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT :lim", params)
    )
