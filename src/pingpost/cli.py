"""The `pingpost` command: serve, db upgrade, apply, demo, sandbox-buyers, report, statement, purge, bench, replay."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console

from pingpost import bootstrap
from pingpost.config import Settings

app = typer.Typer(help="pingpost: a real-time lead and call exchange.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.")
app.add_typer(db_app, name="db")
console = Console()


def _settings(database: str | None) -> Settings:
    settings = Settings()
    if database:
        settings.database_url = database
    return settings


def announce_token(token: str | None) -> None:
    if token:
        # Printed once to the console, never to the structured log (docs/security.md).
        console.print(f"[bold]Admin token (shown once, store it now):[/bold] {token}")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    database: str = typer.Option(None, help="database URL (default PINGPOST_DATABASE_URL)"),
) -> None:
    """Run the service: migrations first (once, here), then uvicorn workers."""
    import uvicorn

    from pingpost.bootstrap import StartupError

    settings = _settings(database)
    try:
        announce_token(bootstrap.prepare_database(settings))
    except StartupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    os.environ["PINGPOST_DATABASE_URL"] = settings.database_url
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pingpost-metrics-")
    uvicorn.run(
        "pingpost.app:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


@db_app.command("upgrade")
def db_upgrade(database: str = typer.Option(None, help="database URL")) -> None:
    """Apply every pending migration."""
    from pingpost.db.migrate import migrate

    settings = _settings(database)
    migrate(settings.database_url)
    console.print("database is at the latest migration")


@app.command()
def apply(file: Path, database: str = typer.Option(None, help="database URL")) -> None:
    """Upsert a declarative setup (YAML) by id, with the admin API's validation."""
    from pingpost import errors
    from pingpost.admin.apply import apply_file

    settings = _settings(database)
    announce_token(bootstrap.prepare_database(settings))
    try:
        document = yaml.safe_load(file.read_text())
        result = asyncio.run(apply_file(settings, document))
    except yaml.YAMLError as exc:
        console.print(f"[red]not valid YAML: {exc}[/red]")
        raise typer.Exit(2) from None
    except errors.PingpostError as exc:
        console.print(f"[red]{exc.code}: {exc.message} {exc.details}[/red]")
        raise typer.Exit(2) from None
    console.print(
        f"created {len(result.created)}, updated {len(result.updated)}, "
        f"unchanged {len(result.unchanged)}, deposits {len(result.deposits)}"
    )
    for label, secret in result.secrets.items():
        console.print(f"  {label}: key (shown once) {secret}")


@app.command()
def demo(
    port: int = 8000, sandbox_port: int = 8700, count: int = typer.Option(25, help="how many pings to send")
) -> None:
    """The exchange end to end: sandbox buyers, a server on SQLite, a stream of pings and posts."""
    from pingpost.demo import run_demo

    run_demo(port=port, sandbox_port=sandbox_port, count=count)


@app.command("sandbox-buyers")
def sandbox_buyers(host: str = "127.0.0.1", port: int = 8700) -> None:
    """Local buyer endpoints (accept, reject, slow, hang, error, garbage; fixed, random, no-bid bids) and
    TrustedForm-like, Jornaya-like and validator endpoints for verification at post."""
    from aiohttp import web

    from pingpost.sandbox.app import sandbox_app

    console.print(
        f"sandbox buyers on http://{host}:{port} (deliver: /deliver/{{buyer}}/accept, "
        f"bid: /bid/{{buyer}}/fixed?cents=9100, trustedform: /trustedform/{{cert_id}}, "
        f"jornaya: /jornaya/Authenticate, validator: /validate/{{behaviour}})"
    )
    web.run_app(sandbox_app(), host=host, port=port, print=None, access_log=None, shutdown_timeout=1)


@app.command()
def report(
    group_by: str = typer.Option("offer", help="offer, campaign, partner, buyer, contract or day"),
    from_: str = typer.Option(None, "--from", help="RFC 3339 start (inclusive)"),
    to: str = typer.Option(None, help="RFC 3339 end (exclusive)"),
    database: str = typer.Option(None, help="database URL"),
    json_out: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """The summary report (pings, bids, wins, posts, sales, revenue, payout, margin) as a table."""
    import orjson
    from rich.table import Table

    from pingpost import errors
    from pingpost.db.store import open_store
    from pingpost.reports.summary import summary
    from pingpost.timefmt import parse_rfc3339

    settings = _settings(database)

    async def run() -> list[dict[str, Any]]:
        store = await open_store(settings.database_url)
        try:
            return await summary(
                store,
                group_by=group_by,
                start_ms=parse_rfc3339(from_) if from_ else None,
                end_ms=parse_rfc3339(to) if to else None,
            )
        finally:
            await store.close()

    try:
        rows = asyncio.run(run())
    except (errors.PingpostError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if json_out:
        console.print_json(orjson.dumps(rows).decode())
        return
    table = Table(title=f"pingpost summary by {group_by}")
    columns = [
        group_by,
        "pings",
        "bids",
        "wins",
        "posts",
        "sales",
        "reversed",
        "returned_cents",
        "revenue_cents",
        "payout_cents",
        "margin_cents",
        "post_accept_rate",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column == group_by else "right")
    for row in rows:
        table.add_row(
            *["-" if row[c] is None else (f"{row[c]:.1%}" if c == "post_accept_rate" else str(row[c])) for c in columns]
        )
    console.print(table)


@app.command()
def statement(
    account: str = typer.Argument(..., help="partner:{id}, buyer:{id}, house:revenue or house:cash"),
    from_: str = typer.Option(..., "--from", help="first UTC day, YYYY-MM-DD (included)"),
    to: str = typer.Option(..., "--to", help="last UTC day, YYYY-MM-DD (included)"),
    csv_out: bool = typer.Option(False, "--csv", help="print the lines as CSV"),
    database: str = typer.Option(None, help="database URL"),
) -> None:
    """An account's statement: opening balance, one line per day and ledger kind, closing balance."""
    from rich.table import Table

    from pingpost import errors
    from pingpost.db.store import open_store
    from pingpost.domain.statements import Statement, as_csv
    from pingpost.ledger.statements import StatementService

    settings = _settings(database)

    async def run() -> Statement:
        store = await open_store(settings.database_url)
        try:
            return await StatementService(store).statement(account, first=from_, last=to)
        finally:
            await store.close()

    try:
        found = asyncio.run(run())
    except errors.PingpostError as exc:
        typer.echo(f"pingpost statement: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(2) from None
    if csv_out:
        typer.echo(as_csv(found.lines), nl=False)
        return
    table = Table(title=f"statement of {found.account}, {found.period.first} to {found.period.last} (UTC days)")
    for column in ("date", "kind", "count", "amount_cents"):
        table.add_column(column, justify="left" if column in ("date", "kind") else "right")
    table.add_row("", "opening balance", "", str(found.opening_balance_cents))
    for line in found.lines:
        table.add_row(line.date, line.kind, str(line.count), str(line.amount_cents))
    table.add_row("", "closing balance", "", str(found.closing_balance_cents))
    console.print(table)
    for kind, cents in found.totals.items():
        console.print(f"total {kind}: {cents}")


@app.command()
def bench(  # noqa: PLR0913 - Typer: one parameter per option
    database: str = typer.Option(
        None,
        help="an empty database's URL, SQLite or PostgreSQL (default: a fresh SQLite per scenario)",
    ),
    reset: bool = typer.Option(
        False,
        "--reset",
        help="let the bench drop pingpost's tables and data in --database (refused otherwise if it holds any table)",
    ),
    workers: int = 1,
    duration: float = typer.Option(5.0, help="seconds per measured phase"),
    rate: float = typer.Option(300.0, help="open-loop pings per second of the first scenario"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON document"),
    scenario: list[str] = typer.Option(
        ["fixed", "rtb", "hang"], help="fixed, rtb, hang; fixed_hashes and fixed_controls (traffic controls' cost)"
    ),
    compare_sqlite: bool = typer.Option(
        False, "--compare-sqlite", help="with a PostgreSQL --database: also run `fixed` on SQLite, 1 worker, first"
    ),
    leases: bool = typer.Option(True, help="PostgreSQL: serve with process leases (docs/scale-out.md)"),
) -> None:
    """The benchmark of docs/performance.md: fixed-price, RTB and hanging-buyer scenarios."""
    import orjson
    from rich.table import Table

    from pingpost.bench.run import DatabaseInUse, run_bench

    try:
        results = run_bench(
            database=database,
            workers=workers,
            duration=duration,
            rate=rate,
            scenarios=tuple(scenario),
            reset=reset,
            compare_sqlite=compare_sqlite,
            leases=leases,
        )
    except DatabaseInUse as exc:
        typer.echo(f"pingpost bench: {exc}", err=True)
        raise typer.Exit(2) from None
    if json_out:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
        return
    leased = ", leases" if results.get("leases") else ""
    table = Table(title=f"pingpost bench ({results['database']}{leased}, {workers} worker(s), {duration:g} s a phase)")
    table.add_column("scenario")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name in ("fixed", "fixed_hashes", "fixed_controls", "rtb", "hang"):
        for figure, value in (results.get(name) or {}).items():
            table.add_row(name, figure, f"{value:.2f}" if isinstance(value, float) else str(value))
    for figure, value in (results.get("sqlite_1_worker") or {}).items():
        table.add_row("sqlite_1_worker", figure, f"{value:.2f}" if isinstance(value, float) else str(value))
    for figure, value in (results.get("no_oversell") or {}).items():
        table.add_row("no_oversell", figure, str(value))
    if "pg_peak_over_sqlite_1_worker" in results:
        print(f"PostgreSQL peak / SQLite 1-worker peak: {results['pg_peak_over_sqlite_1_worker']:.2f}")
    console.print(table)
    fixed = results.get("fixed")
    if fixed:
        print(f"ratio ping/healthz: {fixed['ratio_ping_healthz']:.2f}")
        print(f"p99 at {fixed['rate']:g} pings/s: {fixed['p99_ms']:.1f} ms")


@app.command("seed-data")
def seed_data(
    pings: int = typer.Option(100_000, help="how many pings to write"),
    days: int = typer.Option(30, help="spread over this many days, ending now"),
    database: str = typer.Option(None, help="database URL"),
) -> None:
    """Fill a database with made-up traffic (pings, waterfalls, deliveries, sales, counters) to measure
    the console with real volume (docs/performance.md)."""
    from rich.progress import Progress

    from pingpost.bench.seed import seed
    from pingpost.db.store import open_store

    settings = _settings(database)
    announce_token(bootstrap.prepare_database(settings))

    async def run() -> dict[str, int]:
        from pingpost.clock import CONTEXT

        # the store follows the seed's clock on PostgreSQL too (the setup is dated before the pings)
        store = await open_store(settings.database_url, shared_clock=CONTEXT)
        try:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("seeding", total=pings)
                return await seed(store, pings=pings, days=days, progress=lambda n: progress.advance(task, n))
        finally:
            await store.close()

    result = asyncio.run(run())
    console.print(f"seeded {result['pings']:,} pings and {result['sales']:,} sales over {days} days")


@app.command()
def purge(
    days: int = typer.Option(None, help="retention in days (default PINGPOST_POST_RETENTION_DAYS, 90)"),
    database: str = typer.Option(None, help="database URL"),
) -> None:
    """Delete stored post PII (lead and consent) older than the retention setting."""
    from pingpost.db.store import open_store
    from pingpost.delivery.retention import purge_post_pii

    settings = _settings(database)
    keep = settings.post_retention_days if days is None else days
    if keep < 0:
        console.print("[red]--days must be 0 or more[/red]")
        raise typer.Exit(2)

    async def run() -> int:
        store = await open_store(settings.database_url)
        try:
            return await purge_post_pii(store, older_than_days=keep)
        finally:
            await store.close()

    console.print(f"purged the PII of {asyncio.run(run())} post(s) older than {keep} day(s)")


@app.command()
def replay(
    from_: str = typer.Option(..., "--from", help="first UTC day, YYYY-MM-DD"),
    to: str = typer.Option(..., help="last UTC day, YYYY-MM-DD (included)"),
    offer: str = typer.Option(None, help="only this offer's pings"),
    setup: Path = typer.Option(None, help="a proposed setup (YAML, the shape of `pingpost apply`)"),
    json_out: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    database: str = typer.Option(None, help="database URL"),
) -> None:
    """What-if replay: the range's pings under the configuration as it stands (with `--setup` over
    it), actual against proposed. Reads only; nothing live changes (docs/replay.md)."""
    import orjson
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from pingpost import errors
    from pingpost.db.store import open_store
    from pingpost.replay.service import ReplayRequest, ReplayService
    from pingpost.replay.table import by_buyer, comparison

    settings = _settings(database)
    try:
        document = yaml.safe_load(setup.read_text()) if setup is not None else None
        request = ReplayRequest.parse(from_, to, offer, document)
    except (errors.PingpostError, OSError, yaml.YAMLError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None

    async def run() -> dict[str, Any]:
        store = await open_store(settings.database_url)
        try:
            service = ReplayService(store, static_fallback=settings.static_fallback)
            prepared = await service.prepare(request)
            columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, console=console, transient=True, disable=json_out) as progress:
                task = progress.add_task("replay", total=prepared.total)
                return await service.execute(prepared, lambda done, total: progress.update(task, completed=done))
        finally:
            await store.close()

    try:
        result = asyncio.run(run())
    except errors.PingpostError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if json_out:
        console.print_json(orjson.dumps(result).decode())
        return
    scope = f"{request.from_day} to {request.to_day}" + (f", offer {offer}" if offer else "")
    console.print(comparison(result, f"replay of {result['done']:,} pings, {scope} (UTC days)"))
    console.print(by_buyer(result))
    changes = result["configuration_changes"]
    if changes:
        console.print(f"the configuration as it stood: {len(changes)} change(s) in the range, first {changes[0]}")


def main() -> None:
    app()
