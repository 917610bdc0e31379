from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import Field

from techbridge_shared.identity import Identity, require_identity, require_roles
from techbridge_shared.pagination import PageParams, page_params
from techbridge_shared.service import ServiceRuntime, runtime_of

from ..domain import model as m
from ..service_layer import agencies as cases
from ..service_layer import ledger as ledger_cases
from ..store.transact import read
from .common import MONEY_ERRORS, PREFIX, READ_ERRORS, Schema, command
from .programmes import StatementOut, statement_page

router = APIRouter(prefix=PREFIX, tags=["agencies"])


class EnrolmentIn(Schema):
    categories: list[str] = Field(min_length=1, description="Service categories the agency offers here")


class DecisionIn(Schema):
    reason: str = Field(default="", max_length=2000)


class EnrolmentOut(Schema):
    programme_id: str
    agency_org_id: str
    categories: list[str]
    state: str
    reason: str
    applied_at: datetime
    updated_at: datetime


def present(e: m.Enrolment) -> EnrolmentOut:
    return EnrolmentOut(programme_id=e.programme_id, agency_org_id=e.agency_org_id, categories=list(e.categories),
                        state=e.state, reason=e.reason, applied_at=e.applied_at, updated_at=e.updated_at)


@router.post("/programmes/{programme_id}/agencies", status_code=201, responses=MONEY_ERRORS,
             summary="An agency applies to serve a programme in given categories")
async def apply(programme_id: str, body: EnrolmentIn, identity: Identity = Depends(require_roles("agency")),
                runtime: ServiceRuntime = Depends(runtime_of)) -> EnrolmentOut:
    return await command(runtime, identity, lambda repo, uow, actor: cases.apply(
        repo, uow, actor, programme_id, body.categories), present, status=201)


@router.get("/programmes/{programme_id}/agencies", responses=READ_ERRORS, summary="Agencies of a programme")
async def list_agencies(programme_id: str, identity: Identity = Depends(require_identity),
                        runtime: ServiceRuntime = Depends(runtime_of)) -> dict[str, list[EnrolmentOut]]:
    from ..service_layer.common import Actor
    items = await read(runtime, lambda repo: cases.listing(repo, Actor.of(identity), programme_id))
    return {"items": [present(e) for e in items]}


@router.get("/programmes/{programme_id}/agencies/{agency_org_id}", responses=READ_ERRORS, summary="One agency")
async def get_agency(programme_id: str, agency_org_id: str, identity: Identity = Depends(require_identity),
                     runtime: ServiceRuntime = Depends(runtime_of)) -> EnrolmentOut:
    from ..service_layer.common import Actor
    return present(await read(runtime, lambda repo: cases.one(repo, Actor.of(identity), programme_id, agency_org_id)))


@router.post("/programmes/{programme_id}/agencies/{agency_org_id}/{action}", responses=MONEY_ERRORS,
             summary="Approve, reject, suspend or remove an agency")
async def decide(programme_id: str, agency_org_id: str, action: Literal["approve", "reject", "suspend", "remove"],
                 body: DecisionIn | None = None, identity: Identity = Depends(require_roles("government")),
                 runtime: ServiceRuntime = Depends(runtime_of)) -> EnrolmentOut:
    reason = body.reason if body else ""
    return await command(runtime, identity, lambda repo, uow, actor: cases.decide(
        repo, uow, actor, programme_id, agency_org_id, action, reason), present)


@router.get("/agencies/{agency_org_id}/statement", responses=READ_ERRORS,
            summary="An agency's payable and paid balances and their history, across programmes")
async def agency_statement(agency_org_id: str, params: PageParams = Depends(page_params),
                           identity: Identity = Depends(require_identity),
                           runtime: ServiceRuntime = Depends(runtime_of)) -> StatementOut:
    from ..service_layer.common import Actor

    async def work(repo):
        ids = await ledger_cases.agency_accounts(repo, Actor.of(identity), agency_org_id)
        if not ids:
            return {}, []
        return await ledger_cases.statement(repo, account_ids=ids, limit=params.limit,
                                            after_seq=(params.cursor or {}).get("seq"))
    balances, lines = await read(runtime, work)
    return statement_page(balances, lines, params.limit)
