"""`pingpost seed-data` fills a database the console and the replay are measured on
(docs/performance.md): it runs to the end and writes what it says."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from pingpost.cli import app


def test_seed_data_writes_pings_sales_and_counters(tmp_path: Path) -> None:
    path = tmp_path / "seed.db"
    result = CliRunner().invoke(app, ["seed-data", "--pings", "1200", "--days", "2", "--database", f"sqlite:///{path}"])
    assert result.exit_code == 0, result.output
    with sqlite3.connect(path) as conn:
        pings = conn.execute("SELECT COUNT(*) FROM pings").fetchone()[0]
        sales = conn.execute("SELECT COUNT(*) FROM sales").fetchone()[0]
        counted, dups = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(duplicate_pings), -1) FROM report_counters"
        ).fetchone()
    assert pings == 1200
    assert 0 < sales <= 1200 * 3
    assert f"seeded 1,200 pings and {sales:,} sales" in " ".join(result.output.split())
    assert counted > 0 and dups == 0
