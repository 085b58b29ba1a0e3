"""`pingpost demo`: a server on a fresh SQLite file with the example Medicare setup applied."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml
from rich.console import Console

from pingpost.config import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "medicare.yaml"


def run_demo(*, port: int) -> None:
    import asyncio

    import uvicorn

    from pingpost.cli import _apply, prepare_database

    console = Console()
    workdir = Path(tempfile.mkdtemp(prefix="pingpost-demo-"))
    settings = Settings(database_url=f"sqlite:///{workdir / 'pingpost.db'}")
    token = prepare_database(settings)
    asyncio.run(_apply(settings, yaml.safe_load(EXAMPLE.read_text())))
    base = f"http://127.0.0.1:{port}"
    console.rule("pingpost demo")
    console.print(f"database: {workdir / 'pingpost.db'}")
    console.print(f"admin token (shown once): [bold]{token}[/bold]")
    console.print("Try, in another terminal:")
    console.print(f"  export TOKEN={token}")
    for cmd in (
        f"curl -s {base}/v1/admin/offers -H \"Authorization: Bearer $TOKEN\"",
        f"curl -s {base}/v1/admin/buyers/buyer-a -H \"Authorization: Bearer $TOKEN\"",
        f"curl -s '{base}/v1/admin/ledger?account=buyer:buyer-a' -H \"Authorization: Bearer $TOKEN\"",
        f"curl -s -X POST {base}/v1/admin/buyers/buyer-a/deposits -H \"Authorization: Bearer $TOKEN\" "
        "-H 'content-type: application/json' -d '{\"amount_cents\": 25000, \"reference\": \"wire-42\"}'",
        f"curl -s -X PATCH {base}/v1/admin/contracts/bravo-national -H \"Authorization: Bearer $TOKEN\" "
        "-H 'content-type: application/json' -d '{\"status\": \"paused\"}'",
    ):
        console.print(f"  {cmd}", soft_wrap=True)
    console.print("Ctrl-C stops the server.")
    os.environ["PINGPOST_DATABASE_URL"] = settings.database_url
    uvicorn.run("pingpost.app:app_factory", factory=True, host="127.0.0.1", port=port, log_level="warning")
