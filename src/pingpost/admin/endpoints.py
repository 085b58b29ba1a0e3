"""Admin API (docs/protocol.md, Operators): CRUD for every resource, deposits and the ledger."""

from typing import Any, Optional

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, create_model

from pingpost.admin import schemas as s
from pingpost.admin.service import RESOURCES, AdminService
from pingpost.auth import admin_key
from pingpost.http import IdPath, Page
from pingpost.ledger.service import LedgerService
from pingpost.services import services

# The admin token is checked before the body is read (docs/security.md).
router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=admin_key.route)

PATHS = {"vertical": "verticals", "offer": "offers", "partner": "partners", "campaign": "campaigns",
         "buyer": "buyers", "contract": "contracts", "api_key": "api-keys"}
def _patch_model(model: type[BaseModel]) -> type[BaseModel]:
    fields: dict[str, Any] = {
        name: (Optional[info.annotation], None)  # noqa: UP045 - a runtime type for create_model
        for name, info in model.model_fields.items()
    }
    return create_model(f"{model.__name__[:-2]}Patch", __config__=ConfigDict(extra="forbid", strict=True), **fields)


def admin_service(request: Request) -> AdminService:
    service: AdminService = services(request).admin
    return service


def _register(kind: str) -> None:
    resource = RESOURCES[kind]
    path = PATHS[kind]
    create_body = resource.model
    patch_body = _patch_model(resource.model)
    filters = tuple(resource.list_filters)

    @router.post(f"/{path}", status_code=201, name=f"create_{kind}", summary=f"Create a {kind}")
    async def create(body: create_body, svc: AdminService = Depends(admin_service)) -> dict[str, Any]:  # type: ignore[valid-type]
        return await svc.create(kind, body)

    @router.get(f"/{path}", name=f"list_{kind}s", summary=f"List {kind}s")
    async def list_(request: Request, page: Page = Depends(),
                    svc: AdminService = Depends(admin_service)) -> dict[str, Any]:
        chosen = {k: v for k, v in request.query_params.items() if k in filters}
        return await svc.list(kind, limit=page.limit, cursor=page.cursor, filters=chosen)

    @router.get(f"/{path}/{{ident}}", name=f"get_{kind}", summary=f"Get one {kind}")
    async def get(ident: str = IdPath, svc: AdminService = Depends(admin_service)) -> dict[str, Any]:
        return await svc.get(kind, ident)

    @router.patch(f"/{path}/{{ident}}", name=f"patch_{kind}", summary=f"Update (or pause) a {kind}")
    async def patch(body: patch_body, ident: str = IdPath,  # type: ignore[valid-type]
                    svc: AdminService = Depends(admin_service)) -> dict[str, Any]:
        return await svc.patch(kind, ident, body.model_dump(mode="json", exclude_unset=True))  # type: ignore[attr-defined]


for _kind in PATHS:
    _register(_kind)


def ledger_service(request: Request) -> LedgerService:
    service: LedgerService = services(request).ledger
    return service


@router.post("/buyers/{ident}/deposits", status_code=201, summary="Deposit into a buyer's prepaid balance")
async def deposit(body: s.DepositIn, ident: str = IdPath,
                  ledger: LedgerService = Depends(ledger_service)) -> dict[str, Any]:
    return await ledger.deposit(ident, body.amount_cents, body.reference)


@router.get("/ledger", summary="An account's ledger entries and balance")
async def ledger(account: str = Query(..., max_length=80), page: Page = Depends(),
                 ledger: LedgerService = Depends(ledger_service)) -> dict[str, Any]:
    return await ledger.account(account, limit=page.limit, cursor=page.cursor)
