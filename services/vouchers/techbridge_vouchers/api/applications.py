from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from techbridge_shared.identity import Identity, require_identity, require_roles
from techbridge_shared.money import Money
from techbridge_shared.pagination import Page, PageParams, page_params
from techbridge_shared.service import ServiceRuntime, runtime_of

from ..domain import model as m
from ..service_layer import applications as cases
from ..service_layer.common import Actor
from ..store.transact import read
from .common import (
    MONEY_ERRORS, PREFIX, READ_ERRORS, Schema, after_key, command, money_command, money_of, page_of,
    required_idempotency_key,
)

router = APIRouter(prefix=PREFIX, tags=["applications"])


class ApplicationIn(Schema):
    face_value: Money = Field(description="One of the programme's face values")
    purpose: str = Field(default="", max_length=5000, description="What the enterprise will buy with it")


class ReviewIn(Schema):
    decision: Literal["approve", "reject"]
    reason: str = Field(default="", max_length=2000, description="Required when rejecting")


class RuleCheckOut(Schema):
    rule: str
    passed: bool
    detail: str


class ReviewOut(Schema):
    level: int
    reviewer: str
    decision: str
    reason: str
    at: datetime


class ApplicationOut(Schema):
    id: str
    programme_id: str
    enterprise_org_id: str
    face_value: Money
    purpose: str
    state: str = Field(description="submitted | partly_approved | approved | rejected | ineligible")
    eligible: bool = Field(description="Every eligibility rule passed")
    checks: list[RuleCheckOut] = Field(description="Each eligibility rule, passed or failed, with the reason")
    reviews: list[ReviewOut]
    voucher_id: str | None
    submitted_at: datetime
    decided_at: datetime | None


def present(a: m.Application | tuple) -> ApplicationOut:
    if isinstance(a, tuple):
        a = a[0]
    return ApplicationOut(
        id=a.id, programme_id=a.programme_id, enterprise_org_id=a.enterprise_org_id,
        face_value=money_of(a.amount, a.currency), purpose=a.purpose, state=a.state,
        eligible=all(c.passed for c in a.checks), checks=[RuleCheckOut(rule=c.rule, passed=c.passed, detail=c.detail)
                                                          for c in a.checks],
        reviews=[ReviewOut(level=r.level, reviewer=r.reviewer, decision=r.decision, reason=r.reason, at=r.at)
                 for r in a.reviews], voucher_id=a.voucher_id, submitted_at=a.submitted_at, decided_at=a.decided_at)


@router.post("/programmes/{programme_id}/applications", status_code=201, responses=MONEY_ERRORS,
             summary="An enterprise applies for a voucher; eligibility is checked at once")
async def submit(programme_id: str, body: ApplicationIn, identity: Identity = Depends(require_roles("enterprise")),
                 runtime: ServiceRuntime = Depends(runtime_of)) -> ApplicationOut:
    return await command(runtime, identity, lambda repo, uow, actor: cases.submit(
        repo, uow, actor, programme_id, body.face_value.amount, body.face_value.currency, body.purpose),
        present, status=201)


@router.get("/applications", responses=READ_ERRORS, summary="Applications (an enterprise sees its own)")
async def list_applications(programme_id: str | None = None, state: str | None = None,
                            params: PageParams = Depends(page_params), identity: Identity = Depends(require_identity),
                            runtime: ServiceRuntime = Depends(runtime_of)) -> Page[ApplicationOut]:
    items = await read(runtime, lambda repo: cases.listing(repo, Actor.of(identity), programme_id=programme_id,
                                                           state=state, limit=params.limit,
                                                           after=after_key(params.cursor)))
    return page_of(items, params.limit, lambda a: a.submitted_at, present)


@router.get("/applications/{application_id}", responses=READ_ERRORS, summary="One application")
async def get_application(application_id: str, identity: Identity = Depends(require_identity),
                          runtime: ServiceRuntime = Depends(runtime_of)) -> ApplicationOut:
    return present(await read(runtime, lambda repo: cases.get(repo, Actor.of(identity), application_id)))


@router.post("/applications/{application_id}/reviews", responses=MONEY_ERRORS,
             summary="Approve (the last level issues the voucher) or reject with a reason")
async def review(request: Request, application_id: str, body: ReviewIn,
                 identity: Identity = Depends(require_roles("government")),
                 key: str = Depends(required_idempotency_key),
                 runtime: ServiceRuntime = Depends(runtime_of)) -> ApplicationOut:
    return await money_command(request, runtime, identity, key, body, lambda repo, uow, actor: cases.review(
        repo, uow, actor, application_id, approve=body.decision == "approve", reason=body.reason), present)
