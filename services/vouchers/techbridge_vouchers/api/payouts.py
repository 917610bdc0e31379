"""Bulk payout per agency, and the payout batches an auditor reconciles with the statements."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from techbridge_shared.identity import Identity, require_identity, require_roles
from techbridge_shared.money import Money
from techbridge_shared.pagination import Page, PageParams, page_params
from techbridge_shared.service import ServiceRuntime, runtime_of

from ..domain import model as m
from ..service_layer import payouts as cases
from ..service_layer.common import Actor
from ..store.transact import read
from .common import MONEY_ERRORS, PREFIX, READ_ERRORS, Schema, after_key, money_command, money_of, page_of, \
    required_idempotency_key

router = APIRouter(prefix=PREFIX, tags=["payouts"])


class PayoutBatchIn(Schema):
    reference: str = Field(min_length=1, max_length=200, description="Bank transfer or payment order reference")
    programme_id: str | None = Field(default=None, description="Only redemptions of this programme")
    settled_before: datetime | None = Field(default=None, description="Only redemptions settled before this time "
                                            "(e.g. the end of the statement period)")
    note: str = Field(default="", max_length=2000)


class PayoutTotalOut(Schema):
    programme_id: str
    amount: Money
    count: int


class PayoutItemOut(Schema):
    redemption_id: str
    voucher_id: str
    programme_id: str
    amount: Money = Field(description="Paid: settled minus any claw-back before payment")
    entry_id: str | None = Field(description="The payout journal entry (none when nothing was left to pay)")
    entry_hash: str | None


class PayoutBatchOut(Schema):
    id: str
    agency_org_id: str
    reference: str
    programme_id: str | None
    settled_before: datetime | None
    count: int
    totals: list[PayoutTotalOut] = Field(description="Per programme (one currency each)")
    created_by: str
    created_at: datetime
    note: str
    items: list[PayoutItemOut] | None = Field(default=None, description="Every redemption paid (omitted in lists)")


def present(b: m.PayoutBatch, items=None) -> PayoutBatchOut:
    return PayoutBatchOut(
        id=b.id, agency_org_id=b.agency_org_id, reference=b.reference, programme_id=b.programme_id,
        settled_before=b.settled_before, count=b.count,
        totals=[PayoutTotalOut(programme_id=t.programme_id, amount=money_of(t.amount, t.currency), count=t.count)
                for t in b.totals],
        created_by=b.created_by, created_at=b.created_at, note=b.note,
        items=None if items is None else [
            PayoutItemOut(redemption_id=r.id, voucher_id=r.voucher_id, programme_id=r.programme_id,
                          amount=money_of(r.amount - r.clawed_back, r.currency), entry_id=eid, entry_hash=h)
            for r, eid, h in items])


@router.post("/agencies/{agency_org_id}/payouts", status_code=201, responses=MONEY_ERRORS,
             summary="Pay an agency all its settled, unpaid redemptions (optionally of one programme / settled "
                     "before a time) in one batch")
async def pay_agency(request: Request, agency_org_id: str, body: PayoutBatchIn,
                     identity: Identity = Depends(require_roles("government")),
                     key: str = Depends(required_idempotency_key),
                     runtime: ServiceRuntime = Depends(runtime_of)) -> PayoutBatchOut:
    return await money_command(
        request, runtime, identity, key, body,
        lambda repo, uow, actor: cases.pay_agency(repo, uow, actor, agency_org_id, reference=body.reference,
                                                  programme_id=body.programme_id, settled_before=body.settled_before,
                                                  note=body.note),
        lambda result: present(*result), status=201)


@router.get("/agencies/{agency_org_id}/payouts", responses=READ_ERRORS,
            summary="An agency's payout batches, newest first (that agency and officials)")
async def list_payouts(agency_org_id: str, params: PageParams = Depends(page_params),
                       identity: Identity = Depends(require_identity),
                       runtime: ServiceRuntime = Depends(runtime_of)) -> Page[PayoutBatchOut]:
    items = await read(runtime, lambda repo: cases.listing(repo, Actor.of(identity), agency_org_id,
                                                           limit=params.limit, after=after_key(params.cursor)))
    return page_of(items, params.limit, lambda b: b.created_at, present)


@router.get("/payouts/{batch_id}", responses=READ_ERRORS, summary="One payout batch with every redemption it paid")
async def get_payout(batch_id: str, identity: Identity = Depends(require_identity),
                     runtime: ServiceRuntime = Depends(runtime_of)) -> PayoutBatchOut:
    return present(*await read(runtime, lambda repo: cases.get(repo, Actor.of(identity), batch_id)))
