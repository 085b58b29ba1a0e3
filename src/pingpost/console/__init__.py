"""The operator console (docs/console.md): server-rendered pages under /console for operators
(an admin key or the admin token) and buyers (a buyer key), over the same services as the API."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from pingpost.console import (
    account_pages,
    buyer_pages,
    event_pages,
    lease_pages,
    money_pages,
    overview_pages,
    partner_pages,
    ping_pages,
    replay_pages,
    return_pages,
    statement_pages,
    traffic_pages,
)
from pingpost.console.web import HERE


def mount(app: FastAPI) -> None:
    """Add the console's routes and its static files (htmx, uPlot, the stylesheet) to `app`."""
    modules = (
        account_pages,
        overview_pages,
        ping_pages,
        buyer_pages,
        partner_pages,
        money_pages,
        return_pages,
        statement_pages,
        traffic_pages,
        event_pages,
        replay_pages,
        lease_pages,
    )
    for module in modules:
        app.include_router(module.router)
    app.mount("/console/static", StaticFiles(directory=str(HERE / "static")), name="console-static")
