"""The comparison a replay answers, as Rich tables for `pingpost replay` (docs/replay.md)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

FIGURES = ("pings", "sold", "sales", "revenue_cents", "payout_cents", "margin_cents", "fill_rate")


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def _cell(name: str, value: Any, *, signed: bool = False) -> str:
    if name.endswith("_cents"):
        text = _money(int(value))
        return f"+{text}" if signed and int(value) > 0 else text
    if isinstance(value, int):
        return f"{value:+,}" if signed else f"{value:,}"
    return f"+{value}" if signed and not str(value).startswith("-") and str(value).strip("0.") else str(value)


def comparison(result: dict[str, Any], title: str) -> Table:
    """Actual, proposed and delta, figure by figure (money in dollars and cents)."""
    table = Table(title=title)
    for column in ("figure", "actual", "proposed", "delta"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for name in FIGURES:
        table.add_row(
            name.replace("_cents", ""),
            _cell(name, result["actual"][name]),
            _cell(name, result["proposed"][name]),
            _cell(name, result["delta"][name], signed=True),
        )
    return table


def by_buyer(result: dict[str, Any]) -> Table:
    """Per buyer: wins, sales and revenue, each as actual → proposed, and the revenue's change."""
    table = Table(title="by buyer (actual → proposed)")
    for column in ("buyer", "wins", "sales", "revenue", "Δ revenue"):
        table.add_column(column, justify="left" if column == "buyer" else "right")
    actual, proposed, delta = (result[k]["by_buyer"] for k in ("actual", "proposed", "delta"))
    empty = {"wins": 0, "sales": 0, "revenue_cents": 0}
    for buyer in sorted(delta):
        a, p = actual.get(buyer, empty), proposed.get(buyer, empty)
        table.add_row(
            buyer,
            f"{a['wins']:,} → {p['wins']:,}",
            f"{a['sales']:,} → {p['sales']:,}",
            f"{_money(a['revenue_cents'])} → {_money(p['revenue_cents'])}",
            _cell("revenue_cents", delta[buyer]["revenue_cents"], signed=True),
        )
    return table
