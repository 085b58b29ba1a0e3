"""Buyers (balance, holds, deposit, pause/resume) and contracts (every field, today's figures, caps
used per period, pause/resume, the edit form of price, caps and schedule), through the admin and
ledger services: the API's validation, its errors shown by field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from pingpost import errors
from pingpost.admin import money
from pingpost.console import figures
from pingpost.console.overview_pages import every
from pingpost.console.sessions import ConsoleSession
from pingpost.console.web import (
    ConsoleRoute,
    admin_session,
    back,
    checked_form,
    field_errors,
    page,
    parse_count,
    parse_dollars,
)
from pingpost.http import IdPath
from pingpost.ids import now_ms
from pingpost.services import services

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def Message() -> Any:
    """A fresh query parameter each time: FastAPI keeps a parameter's alias on its object."""
    return Query(None, max_length=200)


@router.get("/buyers")
async def buyers(
    request: Request, session: ConsoleSession = Depends(admin_session), cursor: str | None = Query(None, max_length=64)
) -> Response:
    result = await services(request).admin.list("buyer", limit=50, cursor=cursor, filters={})
    return page(request, "buyers.html", session, buyers=result["items"], next_cursor=result["next_cursor"])


async def _buyer_page(
    request: Request,
    session: ConsoleSession,
    ident: str,
    *,
    status: int = 200,
    problems: dict[str, str] | None = None,
    done: str | None = None,
) -> Response:
    svc = services(request)
    buyer = await svc.admin.get("buyer", ident)
    contracts = await every(svc.admin, "contract", {"buyer": ident})
    usage = await figures.usage_of(svc.store, [c["id"] for c in contracts])
    now = now_ms()
    rows = [{"contract": c, "caps": figures.caps_used(c, usage.get(c["id"]), now=now)} for c in contracts]
    recent = await money.page_sales(svc.store, filters={"buyer_id": ident}, limit=10)
    ledger = await svc.ledger.account(f"buyer:{ident}", limit=10, cursor=None)
    return page(
        request,
        "buyer.html",
        session,
        status=status,
        buyer=buyer,
        contracts=rows,
        sales=recent["items"],
        ledger=ledger["items"],
        problems=problems or {},
        done=done,
    )


@router.get("/buyers/{ident}")
async def buyer(
    request: Request,
    ident: str = IdPath,
    session: ConsoleSession = Depends(admin_session),
    done: str | None = Message(),
) -> Response:
    return await _buyer_page(request, session, ident, done=done)


@router.post("/buyers/{ident}/deposit")
async def deposit(request: Request, ident: str = IdPath, session: ConsoleSession = Depends(admin_session)) -> Response:
    form = await checked_form(request, session)
    try:
        cents = parse_dollars(form.get("amount"), "amount")
        assert cents is not None
        if cents <= 0:
            raise errors.ValidationFailed.one("amount", "must be more than zero")
        await services(request).ledger.deposit(ident, cents, form.get("reference") or None)
    except (errors.ValidationFailed, errors.Conflict) as exc:
        return await _buyer_page(
            request,
            session,
            ident,
            status=exc.status,
            problems=field_errors(exc, {"amount": "amount", "amount_cents": "amount", "reference": "reference"}),
        )
    return back(f"/console/buyers/{ident}", done=f"Deposited {form.get('amount')} dollars.")


async def _set_status(request: Request, session: ConsoleSession, kind: str, ident: str) -> str:
    form = await checked_form(request, session)
    status = form.get("status")
    if status not in ("active", "paused"):
        raise errors.ValidationFailed.one("status", "active or paused")
    await services(request).admin.patch(kind, ident, {"status": status})
    return "Resumed." if status == "active" else "Paused."


@router.post("/buyers/{ident}/status")
async def buyer_status(
    request: Request, ident: str = IdPath, session: ConsoleSession = Depends(admin_session)
) -> Response:
    done = await _set_status(request, session, "buyer", ident)
    return back(f"/console/buyers/{ident}", done=done)


# --- contracts -----------------------------------------------------------------------------------


@router.get("/contracts")
async def contracts(
    request: Request, session: ConsoleSession = Depends(admin_session), cursor: str | None = Query(None, max_length=64)
) -> Response:
    svc = services(request)
    result = await svc.admin.list("contract", limit=50, cursor=cursor, filters={})
    usage = await figures.usage_of(svc.store, [c["id"] for c in result["items"]])
    now = now_ms()
    rows = [{"contract": c, "caps": figures.caps_used(c, usage.get(c["id"]), now=now)} for c in result["items"]]
    return page(request, "contracts.html", session, contracts=rows, next_cursor=result["next_cursor"])


def schedule_text(schedule: dict[str, Any] | None) -> str:
    """A schedule as the edit form's lines: `mon,tue,wed 09:00-17:00`."""
    if not schedule:
        return ""
    return "\n".join(f"{','.join(w['days'])} {w['start']}-{w['end']}" for w in schedule["windows"])


def parse_schedule(text: str) -> dict[str, Any] | None:
    """The edit form's schedule lines; empty means always open. 422 naming `schedule`."""
    windows = []
    for n, line in enumerate(ln.strip() for ln in text.splitlines()):
        if not line:
            continue
        days_part, _, hours = line.rpartition(" ")
        start, _, end = hours.partition("-")
        days = [d.strip().lower() for d in days_part.replace(" ", ",").split(",") if d.strip()]
        if not days or not start or not end or any(d not in DAYS for d in days):
            raise errors.ValidationFailed.one(f"schedule.windows.{n}", "write a window as `mon,tue 09:00-17:00`")
        windows.append({"days": days, "start": start, "end": end})
    return {"windows": windows} if windows else None


@dataclass(frozen=True)
class FormState:
    """What the contract page shows beside the contract: the answer's status, errors by field, the
    values as entered (after a refused edit) and a confirmation."""

    status: int = 200
    problems: dict[str, str] | None = None
    entered: dict[str, str] | None = None
    done: str | None = None


async def _contract_page(
    request: Request, session: ConsoleSession, ident: str, form: FormState = FormState()
) -> Response:
    status, problems, entered, done = form.status, form.problems, form.entered, form.done
    svc = services(request)
    contract = await svc.admin.get("contract", ident)
    now = now_ms()
    usage = await figures.usage_of(svc.store, [ident])
    today = await figures.contract_today(svc.store, ident, now=now)
    caps = contract.get("caps") or {}

    def dollars(cents: int | None) -> str:
        return "" if cents is None else f"{cents // 100}.{cents % 100:02d}"

    values = entered or {
        "price": dollars(contract.get("price_cents")),
        "exclusive_price": dollars(contract.get("exclusive_price_cents")),
        "caps_daily": str(caps.get("daily") or ""),
        "caps_weekly": str(caps.get("weekly") or ""),
        "caps_monthly": str(caps.get("monthly") or ""),
        "caps_max_concurrent_calls": str(caps.get("max_concurrent_calls") or ""),
        "schedule": schedule_text(contract.get("schedule")),
    }
    return page(
        request,
        "contract.html",
        session,
        status=status,
        contract=contract,
        today=today,
        caps=figures.caps_used(contract, usage.get(ident), now=now),
        values=values,
        problems=problems or {},
        done=done,
    )


@router.get("/contracts/{ident}")
async def contract(
    request: Request,
    ident: str = IdPath,
    session: ConsoleSession = Depends(admin_session),
    done: str | None = Message(),
) -> Response:
    return await _contract_page(request, session, ident, FormState(done=done))


FIELDS = {
    "price_cents": "price",
    "exclusive_price_cents": "exclusive_price",
    "caps.daily": "caps_daily",
    "caps.weekly": "caps_weekly",
    "caps.monthly": "caps_monthly",
    "caps.max_concurrent_calls": "caps_max_concurrent_calls",
    "caps": "caps_daily",
    "schedule": "schedule",
    "price": "price",
    "exclusive_price": "exclusive_price",
    "body": "price",
}


@router.post("/contracts/{ident}")
async def edit_contract(
    request: Request, ident: str = IdPath, session: ConsoleSession = Depends(admin_session)
) -> Response:
    """Price, caps and schedule through AdminService.patch: the API's validation, errors by field."""
    form = await checked_form(request, session)
    entered = {
        name: form.get(name)
        for name in (
            "price",
            "exclusive_price",
            "caps_daily",
            "caps_weekly",
            "caps_monthly",
            "caps_max_concurrent_calls",
            "schedule",
        )
    }
    try:
        caps = {
            name: parse_count(form.get(f"caps_{name}"), f"caps.{name}")
            for name in ("daily", "weekly", "monthly", "max_concurrent_calls")
        }
        # the form edits count caps; the contract's spend caps (not on the form) are kept
        current = (await services(request).admin.get("contract", ident)).get("caps") or {}
        caps |= {k: v for k, v in current.items() if k.startswith("spend_") and v is not None}
        changes = {
            "price_cents": parse_dollars(form.get("price"), "price", required=False),
            "exclusive_price_cents": parse_dollars(form.get("exclusive_price"), "exclusive_price", required=False),
            "caps": {k: v for k, v in caps.items() if v is not None} or None,
            "schedule": parse_schedule(form.get("schedule")),
        }
        await services(request).admin.patch("contract", ident, changes)
    except errors.ValidationFailed as exc:
        return await _contract_page(
            request, session, ident, FormState(status=422, problems=field_errors(exc, FIELDS), entered=entered)
        )
    return back(f"/console/contracts/{ident}", done="Saved.")


@router.post("/contracts/{ident}/status")
async def contract_status(
    request: Request, ident: str = IdPath, session: ConsoleSession = Depends(admin_session)
) -> Response:
    done = await _set_status(request, session, "contract", ident)
    return back(f"/console/contracts/{ident}", done=done)
