"""Admin API (docs/protocol.md, Operators): CRUD for every resource, deposits and the ledger."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, create_model

from pingpost.admin import schemas as s
from pingpost.admin.service import RESOURCES, AdminService
from pingpost.auth import admin_key
from pingpost.fields import Slug, Strict
from pingpost.http import IdPath, Page, refusals
from pingpost.ledger.service import ACCOUNT, LedgerService
from pingpost.services import services

# The admin token is checked before the body is read (docs/security.md).
router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=admin_key.route, dependencies=admin_key.documented)

PATHS = {
    "vertical": "verticals",
    "offer": "offers",
    "partner": "partners",
    "campaign": "campaigns",
    "buyer": "buyers",
    "contract": "contracts",
    "api_key": "api-keys",
}


def _patch_model(model: type[BaseModel], fixed: tuple[str, ...]) -> type[BaseModel]:
    """A resource's PATCH body: each field of its create body, optional, with the same rules (the
    merged object is validated again as a whole). `id` and the fields fixed at creation are readOnly:
    they are accepted only with their current value (else 422)."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation: Any = Slug if name == "id" else info.annotation
        if info.metadata:
            annotation = Annotated[(annotation, *info.metadata)]
        extra = dict(info.json_schema_extra) if isinstance(info.json_schema_extra, dict) else {}
        if name == "id" or name in fixed:
            extra["readOnly"] = True
        fields[name] = (
            annotation,
            Field(
                default=None,
                discriminator=info.discriminator,
                description=info.description,
                json_schema_extra=_schema_without_default(extra),
            ),
        )
    return create_model(f"{model.__name__[:-2]}Patch", __base__=Strict, __doc__=_patch_model.__doc__, **fields)


def _schema_without_default(extra: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """An absent PATCH field is left unchanged: its schema has no `default` (null is no value of most)."""

    def update(schema: dict[str, Any]) -> None:
        schema.pop("default", None)
        schema.update(extra)

    return update


def admin_service(request: Request) -> AdminService:
    service: AdminService = services(request).admin
    return service


def _register(kind: str) -> None:
    resource = RESOURCES[kind]
    path = PATHS[kind]
    create_body = resource.model
    patch_body = _patch_model(resource.model, resource.immutable)
    filters = tuple(resource.list_filters)
    refs = ", ".join(f"`{name}`" for name in resource.refs)
    must_exist = f" {refs} must name an existing {' / '.join(k for _, k in resource.refs.values())}." if refs else ""
    fixed = ", ".join(f"`{name}`" for name in ("id", *resource.immutable))

    @router.post(
        f"/{path}",
        status_code=201,
        name=f"create_{kind}",
        summary=f"Create a {kind}",
        description=f"An `id` may be given (a slug), else one is generated.{must_exist}",
        responses=refusals(
            400,
            401,
            (409, "The id is taken (`conflict`)."),
            413,
            (422, f"A field fails its rules (`validation_error`).{must_exist}"),
        ),
    )
    async def create(body: create_body, svc: AdminService = Depends(admin_service)) -> dict[str, Any]:  # type: ignore[valid-type]
        return await svc.create(kind, body)

    @router.get(
        f"/{path}",
        name=f"list_{kind}s",
        summary=f"List {kind}s",
        responses=refusals(401, 422),
        openapi_extra={
            "parameters": [
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": f"Only the {kind}s with this `{name}`",
                }
                for name in filters
            ]
        },
    )
    async def list_(
        request: Request, page: Page = Depends(), svc: AdminService = Depends(admin_service)
    ) -> dict[str, Any]:
        chosen = {k: v for k, v in request.query_params.items() if k in filters}
        return await svc.list(kind, limit=page.limit, cursor=page.cursor, filters=chosen)

    @router.get(
        f"/{path}/{{ident}}",
        name=f"get_{kind}",
        summary=f"Get one {kind}",
        responses=refusals(401, (404, f"Unknown {kind} (`not_found`)."), 422),
    )
    async def get(ident: str = IdPath, svc: AdminService = Depends(admin_service)) -> dict[str, Any]:
        return await svc.get(kind, ident)

    @router.patch(
        f"/{path}/{{ident}}",
        name=f"patch_{kind}",
        summary=f"Update (or pause) a {kind}",
        description=f"Merges the given top-level fields into the {kind} and validates the whole again. "
        f"{fixed} cannot be changed (readOnly): sent with another value, 422.",
        responses=refusals(
            400,
            401,
            (404, f"Unknown {kind} (`not_found`)."),
            413,
            (422, f"A field fails its rules, or the merged {kind} does (`validation_error`); {fixed} changed."),
        ),
    )
    async def patch(
        body: patch_body,  # type: ignore[valid-type]
        ident: str = IdPath,
        svc: AdminService = Depends(admin_service),
    ) -> dict[str, Any]:
        return await svc.patch(kind, ident, body.model_dump(mode="json", exclude_unset=True))  # type: ignore[attr-defined]


for _kind in PATHS:
    _register(_kind)


def ledger_service(request: Request) -> LedgerService:
    service: LedgerService = services(request).ledger
    return service


@router.post(
    "/buyers/{ident}/deposits",
    status_code=201,
    summary="Deposit into a buyer's prepaid balance",
    description="A repeated `reference` with the same buyer and amount answers the first deposit.",
    responses=refusals(
        400,
        401,
        (404, "Unknown buyer (`not_found`)."),
        (409, "The `reference` was used for another deposit (`conflict`)."),
        413,
        422,
    ),
)
async def deposit(
    body: s.DepositIn, ident: str = IdPath, ledger: LedgerService = Depends(ledger_service)
) -> dict[str, Any]:
    return await ledger.deposit(ident, body.amount_cents, body.reference)


@router.get("/ledger", summary="An account's ledger entries and balance", responses=refusals(401, 422))
async def ledger(
    account: str = Query(
        ...,
        max_length=80,
        description="buyer:{id}, partner:{id}, house:revenue or house:cash",
        json_schema_extra={"pattern": ACCOUNT.pattern},
    ),
    page: Page = Depends(),
    ledger: LedgerService = Depends(ledger_service),
) -> dict[str, Any]:
    return await ledger.account(account, limit=page.limit, cursor=page.cursor)
