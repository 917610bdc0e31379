"""/api/v1/catalog/organisations: the registry of who is who."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from techbridge_shared.errors import Forbidden, problem_responses
from techbridge_shared.identity import Identity, require_identity
from techbridge_shared.money import Money
from techbridge_shared.pagination import Page, PageParams, encode_cursor, page_params
from techbridge_shared.service import ServiceRuntime, runtime_of

from ..domain.model import OrgKind
from ..domain.rules import OrganisationContent
from ..service import organisations as service
from ..service.common import Actor
from ..store.repository import History, Organisations
from ..store.reader import Reader
from .common import etag, if_match, reader_of

router = APIRouter(prefix="/api/v1/catalog/organisations", tags=["organisations"])


class OrganisationIn(OrganisationContent):
    organisation_id: str | None = Field(
        default=None, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Id to register under (admins seeding the registry); default: a new UUID, "
        "or the caller's own organisation id when registering oneself",
    )


class OrganisationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    name_en: str | None = Field(default=None, max_length=300)
    kind: OrgKind | None = None
    region: str | None = Field(default=None, max_length=100)
    credit_code: str | None = Field(default=None, max_length=18)
    headcount: int | None = Field(default=None, ge=0, le=10_000_000)
    annual_revenue: Money | None = None
    registered_on: date | None = None


class OrganisationOut(BaseModel):
    organisation_id: str
    name: str
    name_en: str
    kind: str
    region: str
    credit_code: str
    headcount: int | None
    annual_revenue: Money | None
    registered_on: date | None
    version: int = Field(description="Also the ETag; send it as If-Match when changing")
    created_at: datetime
    updated_at: datetime


class HistoryEntry(BaseModel):
    at: datetime
    actor: str = Field(description="Who made the change (user or client id, or system:<service>)")
    actor_org: str | None
    action: str
    from_status: str | None = None
    to_status: str | None = None
    reason: str | None = None
    changes: list[dict] = Field(description="[{field, old, new}] for each changed field")


def out(row: dict) -> OrganisationOut:
    revenue = Money(amount=row["revenue_amount"], currency=row["revenue_currency"]) if row["revenue_amount"] is not None else None
    return OrganisationOut(
        organisation_id=row["id"], name=row["name"], name_en=row["name_en"], kind=row["kind"], region=row["region"],
        credit_code=row["credit_code"], headcount=row["headcount"], annual_revenue=revenue,
        registered_on=row["registered_on"], version=row["version"], created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


@router.post("", status_code=201, summary="Register an organisation", responses=problem_responses(403, 409, 422))
async def register(body: OrganisationIn, response: Response, identity: Identity = Depends(require_identity),
                   runtime: ServiceRuntime = Depends(runtime_of)) -> OrganisationOut:
    async with runtime.unit_of_work() as uow:
        row = await service.register(uow, Actor.of(identity), OrganisationContent.model_validate(
            body.model_dump(exclude={"organisation_id"})), body.organisation_id)
        await uow.commit()
    response.headers["ETag"] = etag(row["version"])
    response.headers["Location"] = f"{router.prefix}/{row['id']}"
    return out(row)


@router.get("", summary="List registered organisations", responses=problem_responses(422))
async def list_organisations(
    params: PageParams = Depends(page_params),
    kind: Annotated[OrgKind | None, Query(description="Only this kind")] = None,
    region: Annotated[str | None, Query(max_length=100, description="Region prefix, e.g. Shanghai")] = None,
    name: Annotated[str | None, Query(max_length=100, description="Part of the Chinese or English name")] = None,
    identity: Identity = Depends(require_identity),
    reader: Reader = Depends(reader_of),
) -> Page[OrganisationOut]:
    after = (params.cursor["n"], params.cursor["i"]) if params.cursor else None
    async with reader.session() as session:
        rows = await Organisations(session).page(limit=params.limit, after=after, kind=kind, region=region, name=name)
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    cursor = encode_cursor({"n": rows[-1]["name"], "i": rows[-1]["id"]}) if more and rows else None
    return Page[OrganisationOut](items=[out(r) for r in rows], next_cursor=cursor)


@router.get("/{organisation_id}", summary="Read an organisation", responses=problem_responses(404))
async def get_organisation(organisation_id: str, response: Response, identity: Identity = Depends(require_identity),
                           reader: Reader = Depends(reader_of)) -> OrganisationOut:
    async with reader.session() as session:
        row = await service.get(session, organisation_id)
    response.headers["ETag"] = etag(row["version"])
    return out(row)


@router.patch("/{organisation_id}", summary="Change an organisation (If-Match required)",
              responses=problem_responses(403, 404, 409, 412, 422, 428))
async def update_organisation(organisation_id: str, body: OrganisationPatch, response: Response,
                              expected: int | None = Depends(if_match),
                              identity: Identity = Depends(require_identity),
                              runtime: ServiceRuntime = Depends(runtime_of)) -> OrganisationOut:
    async with runtime.unit_of_work() as uow:
        row = await service.update(uow, Actor.of(identity), organisation_id,
                                   body.model_dump(mode="json", exclude_unset=True), expected)
        await uow.commit()
    response.headers["ETag"] = etag(row["version"])
    return out(row)


@router.get("/{organisation_id}/history", summary="Who changed the organisation, when, and what",
            responses=problem_responses(403, 404, 422))
async def organisation_history(organisation_id: str, params: PageParams = Depends(page_params),
                               identity: Identity = Depends(require_identity),
                               reader: Reader = Depends(reader_of)) -> Page[HistoryEntry]:
    if identity.org != organisation_id and not identity.has_any("admin", "government"):
        raise Forbidden("only members of the organisation, admins and government may read its history")
    async with reader.session() as session:
        await service.get(session, organisation_id)
        rows = await History(session).page("organisation", organisation_id, limit=params.limit,
                                               after_seq=(params.cursor or {}).get("s"))
    return history_page(rows, params.limit)


def history_page(rows: list[dict], limit: int) -> Page[HistoryEntry]:
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor({"s": rows[-1]["seq"]}) if more and rows else None
    return Page[HistoryEntry](items=[HistoryEntry.model_validate(r) for r in rows], next_cursor=cursor)
