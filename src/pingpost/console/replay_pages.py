"""What-if replays (docs/replay.md, docs/console.md): the list, a form to start one (date range,
offer, a proposed setup in YAML) and a replay's result, actual against proposed, with a chart per
day and a table per buyer. The form goes through the same replay service as the API."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Depends, Query, Request, Response

from pingpost import errors
from pingpost.console.sessions import ConsoleSession
from pingpost.console.web import ConsoleRoute, admin_session, checked_form, page
from pingpost.db import admin_repo
from pingpost.db.store import Tx
from pingpost.http import IdPath
from pingpost.replay.service import ReplayRequest
from pingpost.replay.table import FIGURES
from pingpost.services import services

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

MAX_SETUP_CHARS = 100_000


async def _offers(request: Request) -> list[str]:
    async def unit(tx: Tx) -> list[str]:
        return [str(r["id"]) for r in await admin_repo.page(tx, "offers", filters={}, cursor=None, limit=500)]

    return await services(request).store.read(unit)


@router.get("/replays")
async def replays(
    request: Request,
    session: ConsoleSession = Depends(admin_session),
    done: str | None = Query(None, max_length=200),
) -> Response:
    jobs = await services(request).replays.jobs(limit=50)
    return page(
        request, "replays.html", session, jobs=jobs, offers=await _offers(request), form={}, errors={}, done=done
    )


@router.post("/replays")
async def start_replay(request: Request, session: ConsoleSession = Depends(admin_session)) -> Response:
    form = await checked_form(request, session)
    values = {name: form.get(name) for name in ("from", "to", "offer", "setup")}
    problems: dict[str, str] = {}
    setup: Any = None
    if len(values["setup"]) > MAX_SETUP_CHARS:
        problems["setup"] = f"at most {MAX_SETUP_CHARS:,} characters"
    elif values["setup"]:
        try:
            setup = yaml.safe_load(values["setup"])
        except yaml.YAMLError:
            problems["setup"] = "not valid YAML"
    if not problems:
        try:
            replay = ReplayRequest.parse(values["from"], values["to"], values["offer"] or None, setup)
            started = await services(request).replays.start(replay)
        except errors.ValidationFailed as exc:
            for problem in exc.details.get("errors", []):
                problems[problem["field"].split(".")[0]] = f"{problem['field']}: {problem['message']}"
        else:
            return Response(status_code=303, headers={"Location": f"/console/replays/{started['id']}"})
    jobs = await services(request).replays.jobs(limit=50)
    return page(
        request,
        "replays.html",
        session,
        status=422,
        jobs=jobs,
        offers=await _offers(request),
        form=values,
        errors=problems,
        problem="The replay was not started: see the fields below.",
    )


@router.get("/replays/{ident}")
async def replay(request: Request, ident: str = IdPath, session: ConsoleSession = Depends(admin_session)) -> Response:
    job = await services(request).replays.job(ident)
    chart: dict[str, Any] = {}
    buyers: list[dict[str, Any]] = []
    if job["status"] == "done":
        days = sorted(set(job["days"]["actual"]) | set(job["days"]["proposed"]))
        empty = {"sales": 0, "revenue_cents": 0}
        chart = {
            "labels": [d[5:] for d in days],
            "actual_revenue": [job["days"]["actual"].get(d, empty)["revenue_cents"] / 100 for d in days],
            "proposed_revenue": [job["days"]["proposed"].get(d, empty)["revenue_cents"] / 100 for d in days],
            "actual_sales": [job["days"]["actual"].get(d, empty)["sales"] for d in days],
            "proposed_sales": [job["days"]["proposed"].get(d, empty)["sales"] for d in days],
        }
        none = {"wins": 0, "sales": 0, "revenue_cents": 0}
        for buyer in sorted(job["delta"]["by_buyer"]):
            buyers.append(
                {
                    "id": buyer,
                    "actual": job["actual"]["by_buyer"].get(buyer, none),
                    "proposed": job["proposed"]["by_buyer"].get(buyer, none),
                    "delta": job["delta"]["by_buyer"][buyer],
                }
            )
    days_rows = (
        [
            {"day": d, "actual": job["days"]["actual"].get(d), "proposed": job["days"]["proposed"].get(d)}
            for d in sorted(set(job["days"]["actual"]) | set(job["days"]["proposed"]))
        ]
        if job["status"] == "done"
        else []
    )
    return page(request, "replay.html", session, job=job, figures=FIGURES, chart=chart, buyers=buyers, days=days_rows)
