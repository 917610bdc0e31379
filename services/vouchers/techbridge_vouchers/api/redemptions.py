from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from techbridge_shared.identity import Identity, require_identity, require_roles
from techbridge_shared.money import Money
from techbridge_shared.pagination import Page, PageParams, page_params
from techbridge_shared.service import ServiceRuntime, runtime_of

from ..domain import model as m
from ..service_layer import redemptions as cases
from ..service_layer.common import Actor
from ..store.transact import read
from .common import (
    MONEY_ERRORS, PREFIX, READ_ERRORS, Schema, after_key, money_command, money_of, page_of,
    required_idempotency_key,
)

router = APIRouter(prefix=PREFIX + "/redemptions", tags=["redemptions"])


class RedemptionIn(Schema):
    voucher_id: str
    enterprise_org_id: str = Field(description="The enterprise the service is for; must hold the voucher")
    amount: Money = Field(description="Amount the voucher should cover")
    invoice_amount: Money = Field(description="Total of the service contract or invoice")
    invoice_ref: str = Field(min_length=1, max_length=200, description="Contract or invoice number")
    category: str = Field(min_length=1, max_length=100, description="Service category")
    transfer_id: str | None = Field(default=None, description="Linked transfer deal; its completion settles this")


class VoidIn(Schema):
    reason: str = Field(default="", max_length=2000)


class PayoutIn(Schema):
    reference: str = Field(min_length=1, max_length=200, description="Bank transfer or payment order reference")


class ClawbackIn(Schema):
    amount: Money
    reason: str = Field(min_length=1, max_length=2000)


class RedemptionOut(Schema):
    id: str
    programme_id: str
    voucher_id: str
    agency_org_id: str
    enterprise_org_id: str
    amount: Money
    invoice_amount: Money
    invoice_ref: str
    category: str
    transfer_id: str | None
    state: str = Field(description="reserved | settled | paid | voided")
    requested_by: str
    created_at: datetime
    settled_by: str | None
    settled_at: datetime | None
    voided_reason: str | None
    voided_at: datetime | None
    paid_at: datetime | None
    payout_ref: str | None
    payout_batch_id: str | None = Field(default=None, description="The payout batch that paid it, if any")
    clawed_back: Money


def present(r: m.Redemption) -> RedemptionOut:
    c = r.currency
    return RedemptionOut(
        id=r.id, programme_id=r.programme_id, voucher_id=r.voucher_id, agency_org_id=r.agency_org_id,
        enterprise_org_id=r.enterprise_org_id, amount=money_of(r.amount, c),
        invoice_amount=money_of(r.invoice_amount, c), invoice_ref=r.invoice_ref, category=r.category,
        transfer_id=r.transfer_id, state=r.state, requested_by=r.requested_by, created_at=r.created_at,
        settled_by=r.settled_by, settled_at=r.settled_at, voided_reason=r.voided_reason, voided_at=r.voided_at,
        paid_at=r.paid_at, payout_ref=r.payout_ref, payout_batch_id=r.payout_batch_id,
        clawed_back=money_of(r.clawed_back, c))


@router.post("", status_code=201, responses=MONEY_ERRORS,
             summary="An agency reserves part of an enterprise's voucher against an invoice")
async def reserve(request: Request, body: RedemptionIn, identity: Identity = Depends(require_roles("agency")),
                  key: str = Depends(required_idempotency_key),
                  runtime: ServiceRuntime = Depends(runtime_of)) -> RedemptionOut:
    if body.invoice_amount.currency != body.amount.currency:
        from ..domain.errors import invalid
        raise invalid("body.invoice_amount.currency", "the invoice and the amount are in one currency")
    req = m.RedemptionRequest(
        voucher_id=body.voucher_id, enterprise_org_id=body.enterprise_org_id, amount=body.amount.amount,
        currency=body.amount.currency, invoice_amount=body.invoice_amount.amount, invoice_ref=body.invoice_ref,
        category=body.category, transfer_id=body.transfer_id)
    return await money_command(request, runtime, identity, key, body,
                               lambda repo, uow, actor: cases.reserve(repo, uow, actor, req), present, status=201,
                               hot_path=True)


@router.get("", responses=READ_ERRORS, summary="Redemptions (agencies and enterprises see their own)")
async def list_redemptions(programme_id: str | None = None, voucher_id: str | None = None, state: str | None = None,
                           params: PageParams = Depends(page_params), identity: Identity = Depends(require_identity),
                           runtime: ServiceRuntime = Depends(runtime_of)) -> Page[RedemptionOut]:
    items = await read(runtime, lambda repo: cases.listing(
        repo, Actor.of(identity), programme_id=programme_id, voucher_id=voucher_id, state=state, limit=params.limit,
        after=after_key(params.cursor)))
    return page_of(items, params.limit, lambda r: r.created_at, present)


@router.get("/{redemption_id}", responses=READ_ERRORS, summary="One redemption")
async def get_redemption(redemption_id: str, identity: Identity = Depends(require_identity),
                         runtime: ServiceRuntime = Depends(runtime_of)) -> RedemptionOut:
    return present(await read(runtime, lambda repo: cases.get(repo, Actor.of(identity), redemption_id)))


@router.post("/{redemption_id}/settle", responses=MONEY_ERRORS,
             summary="Confirm delivery (the enterprise or a reviewer): the reserved amount becomes payable")
async def settle(request: Request, redemption_id: str, identity: Identity = Depends(require_identity),
                 key: str = Depends(required_idempotency_key),
                 runtime: ServiceRuntime = Depends(runtime_of)) -> RedemptionOut:
    return await money_command(request, runtime, identity, key, None,
                               lambda repo, uow, actor: cases.settle(repo, uow, actor, redemption_id), present,
                               hot_path=True)


@router.post("/{redemption_id}/void", responses=MONEY_ERRORS, summary="Release a reservation")
async def void(request: Request, redemption_id: str, body: VoidIn, identity: Identity = Depends(require_identity),
               key: str = Depends(required_idempotency_key),
               runtime: ServiceRuntime = Depends(runtime_of)) -> RedemptionOut:
    return await money_command(request, runtime, identity, key, body, lambda repo, uow, actor: cases.void(
        repo, uow, actor, redemption_id, body.reason), present, hot_path=True)


@router.post("/{redemption_id}/payout", responses=MONEY_ERRORS, summary="Record the payment to the agency")
async def payout(request: Request, redemption_id: str, body: PayoutIn,
                 identity: Identity = Depends(require_roles("government")),
                 key: str = Depends(required_idempotency_key),
                 runtime: ServiceRuntime = Depends(runtime_of)) -> RedemptionOut:
    return await money_command(request, runtime, identity, key, body, lambda repo, uow, actor: cases.pay(
        repo, uow, actor, redemption_id, body.reference), present, hot_path=True)


@router.post("/{redemption_id}/clawback", responses=MONEY_ERRORS,
             summary="Reverse (part of) a wrong settlement with a reversing entry")
async def clawback(request: Request, redemption_id: str, body: ClawbackIn,
                   identity: Identity = Depends(require_roles("government")),
                   key: str = Depends(required_idempotency_key),
                   runtime: ServiceRuntime = Depends(runtime_of)) -> RedemptionOut:
    return await money_command(request, runtime, identity, key, body, lambda repo, uow, actor: cases.claw_back(
        repo, uow, actor, redemption_id, body.amount.amount, body.amount.currency, body.reason), present)
