from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from techbridge_shared.identity import Identity, require_identity, require_roles
from techbridge_shared.money import Money
from techbridge_shared.pagination import Page, PageParams, page_params
from techbridge_shared.service import ServiceRuntime, runtime_of

from ..domain.ledger import AccountKind, voucher_account
from ..service_layer import ledger as ledger_cases
from ..service_layer import vouchers as cases
from ..service_layer.common import Actor
from ..store.transact import read
from .common import (
    MONEY_ERRORS, PREFIX, READ_ERRORS, Schema, after_key, command, money_command, money_of, page_of,
    required_idempotency_key,
)
from .programmes import StatementOut, statement_page

router = APIRouter(prefix=PREFIX, tags=["vouchers"])
officials = require_roles("government")


class VoucherOut(Schema):
    id: str
    programme_id: str
    application_id: str | None
    enterprise_org_id: str
    face_value: Money
    available: Money = Field(description="What can still be reserved")
    reserved: Money = Field(description="Held by pending redemptions")
    state: str = Field(description="active | frozen | expired | revoked")
    issued_at: datetime
    expires_at: datetime
    remind_at: datetime | None
    note: str = Field(description="Reason of the last freeze, revocation or expiry")


class ReasonIn(Schema):
    reason: str = Field(min_length=1, max_length=2000)


def present(v: cases.VoucherView) -> VoucherOut:
    x = v.voucher
    return VoucherOut(id=x.id, programme_id=x.programme_id, application_id=x.application_id,
                      enterprise_org_id=x.enterprise_org_id, face_value=money_of(x.face_value, x.currency),
                      available=money_of(v.available, x.currency), reserved=money_of(v.reserved, x.currency),
                      state=x.state, issued_at=x.issued_at, expires_at=x.expires_at, remind_at=x.remind_at,
                      note=x.note)


@router.get("/vouchers", responses=READ_ERRORS, summary="Vouchers (an enterprise sees its own)")
async def list_vouchers(programme_id: str | None = None, state: str | None = None,
                        params: PageParams = Depends(page_params), identity: Identity = Depends(require_identity),
                        runtime: ServiceRuntime = Depends(runtime_of)) -> Page[VoucherOut]:
    async def work(repo):
        vs = await cases.listing(repo, Actor.of(identity), programme_id=programme_id, state=state,
                                 limit=params.limit, after=after_key(params.cursor))
        return [await cases.view_of(repo, v) for v in vs]
    views = await read(runtime, work)
    page = page_of([v.voucher for v in views], params.limit, lambda v: v.issued_at, lambda v: v)
    by_id = {v.voucher.id: v for v in views}
    return {"items": [present(by_id[v.id]) for v in page["items"]], "next_cursor": page["next_cursor"]}


@router.get("/vouchers/{voucher_id}", responses=READ_ERRORS, summary="One voucher with its balances")
async def get_voucher(voucher_id: str, identity: Identity = Depends(require_identity),
                      runtime: ServiceRuntime = Depends(runtime_of)) -> VoucherOut:
    return present(await read(runtime, lambda repo: cases.view(repo, Actor.of(identity), voucher_id)))


@router.get("/vouchers/{voucher_id}/statement", responses=READ_ERRORS,
            summary="The voucher's balances and every entry that moved its value")
async def voucher_statement(voucher_id: str, params: PageParams = Depends(page_params),
                            identity: Identity = Depends(require_identity),
                            runtime: ServiceRuntime = Depends(runtime_of)) -> StatementOut:
    async def work(repo):
        v = await cases.get(repo, Actor.of(identity), voucher_id)
        ids = [voucher_account(v.programme_id, v.id, k).id for k in (AccountKind.AVAILABLE, AccountKind.RESERVED)]
        return await ledger_cases.statement(repo, account_ids=ids, limit=params.limit,
                                            after_seq=(params.cursor or {}).get("seq"))
    balances, lines = await read(runtime, work)
    return statement_page(balances, lines, params.limit)


@router.get("/enterprises/{org_id}/vouchers", responses=READ_ERRORS,
            summary="An enterprise's statement: its vouchers and their balances")
async def enterprise_statement(org_id: str, params: PageParams = Depends(page_params),
                               identity: Identity = Depends(require_identity),
                               runtime: ServiceRuntime = Depends(runtime_of)) -> Page[VoucherOut]:
    actor = Actor.of(identity)
    if not actor.is_official and actor.org != org_id:
        from ..service_layer.common import not_found
        raise not_found("enterprise", org_id)

    async def work(repo):
        vs = await repo.list_vouchers(programme_id=None, enterprise_org_id=org_id, state=None, limit=params.limit,
                                      after=after_key(params.cursor))
        return [await cases.view_of(repo, v) for v in vs]
    views = await read(runtime, work)
    page = page_of([v.voucher for v in views], params.limit, lambda v: v.issued_at, lambda v: v)
    by_id = {v.voucher.id: v for v in views}
    return {"items": [present(by_id[v.id]) for v in page["items"]], "next_cursor": page["next_cursor"]}


@router.post("/vouchers/{voucher_id}/freeze", responses=MONEY_ERRORS, summary="Freeze: no reservation or settlement")
async def freeze(voucher_id: str, body: ReasonIn, identity: Identity = Depends(officials),
                 runtime: ServiceRuntime = Depends(runtime_of)) -> VoucherOut:
    return await command(runtime, identity, lambda repo, uow, actor: cases.freeze(repo, uow, actor, voucher_id,
                                                                                  body.reason), present)


@router.post("/vouchers/{voucher_id}/unfreeze", responses=MONEY_ERRORS, summary="Unfreeze a frozen voucher")
async def unfreeze(voucher_id: str, identity: Identity = Depends(officials),
                   runtime: ServiceRuntime = Depends(runtime_of)) -> VoucherOut:
    return await command(runtime, identity, lambda repo, uow, actor: cases.unfreeze(repo, uow, actor, voucher_id),
                         present)


@router.post("/vouchers/{voucher_id}/revoke", responses=MONEY_ERRORS,
             summary="Revoke: release open reservations and withdraw the available value")
async def revoke(request: Request, voucher_id: str, body: ReasonIn, identity: Identity = Depends(officials),
                 key: str = Depends(required_idempotency_key),
                 runtime: ServiceRuntime = Depends(runtime_of)) -> VoucherOut:
    return await money_command(request, runtime, identity, key, body, lambda repo, uow, actor: cases.revoke(
        repo, uow, actor, voucher_id, body.reason), present)
