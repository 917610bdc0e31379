"""Transfer deals, public notices and registration exports: /api/v1/matching/transfers/..."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from techbridge_shared.errors import Conflict, FieldError, ValidationFailed, problem_responses
from techbridge_shared.identity import Identity, require_identity, require_roles
from techbridge_shared.idempotency import idempotency_key
from techbridge_shared.pagination import Page, PageParams, encode_cursor, page_params
from techbridge_shared.service import ServiceRuntime, runtime_of

from ..domain.transfers import TransferStatus
from ..usecases import transfers as uc
from .convert import money, offer_from, transfer_out
from .deps import idempotent_write, notice_days_of, now_of
from .registration import registration_pdf, registration_record
from .schemas import CancelIn, CounterOfferIn, NoticeOut, SignIn, TransferIn, TransferOut

router = APIRouter(prefix="/api/v1/matching", tags=["transfers"])
PARTY = require_roles("institution", "enterprise", "agency")
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)


def _json(t) -> dict:
    return transfer_out(t).model_dump(mode="json")


@router.post("/transfers", status_code=201, response_model=TransferOut, responses=WRITE_ERRORS)
async def propose_transfer(body: TransferIn, request: Request, identity: Identity = Depends(PARTY),
                           key: str | None = Depends(idempotency_key), runtime: ServiceRuntime = Depends(runtime_of),
                           now: datetime = Depends(now_of)):
    """Propose a deal (the caller is the seller or the buyer) with its first offer."""
    async def action(uow):
        return _json(await uc.propose(uow, identity, seller_org_id=body.seller_org_id, buyer_org_id=body.buyer_org_id,
                                      achievement_ids=body.achievement_ids, demand_id=body.demand_id,
                                      offer=offer_from(body.offer), now=now))
    return await idempotent_write(request, runtime, identity, key, body.model_dump(mode="json"), action, 201)


@router.get("/transfers", response_model=Page[TransferOut], responses=problem_responses(401, 422))
async def list_transfers(identity: Identity = Depends(require_identity), runtime: ServiceRuntime = Depends(runtime_of),
                         page: PageParams = Depends(page_params),
                         status: TransferStatus | None = Query(None)) -> Page[TransferOut]:
    """My organisation's deals (all deals for admin and government), newest first."""
    party = None if identity.has_any(*uc.READ_ALL_ROLES) else (identity.org or "-")
    async with runtime.unit_of_work() as uow:
        rows = await uc.repo.list_transfers(uow.session, party=party, status=status.value if status else None,
                                            limit=page.limit, after=page.cursor)
    items = rows[: page.limit]
    cursor = encode_cursor({"t": items[-1].created_at.isoformat(), "id": items[-1].id}) if len(rows) > page.limit else None
    return Page[TransferOut](items=[transfer_out(t) for t in items], next_cursor=cursor)


@router.get("/transfers/{transfer_id}", response_model=TransferOut, responses=problem_responses(401, 404))
async def get_transfer(transfer_id: str, identity: Identity = Depends(require_identity),
                       runtime: ServiceRuntime = Depends(runtime_of)) -> TransferOut:
    async with runtime.unit_of_work() as uow:
        t, _ = await uc.load_visible(uow, identity, transfer_id)
    return transfer_out(t)


@router.post("/transfers/{transfer_id}/offers", status_code=201, response_model=TransferOut, responses=WRITE_ERRORS)
async def counter_offer(transfer_id: str, body: CounterOfferIn, request: Request, identity: Identity = Depends(PARTY),
                        key: str | None = Depends(idempotency_key), runtime: ServiceRuntime = Depends(runtime_of),
                        now: datetime = Depends(now_of)):
    """Make a new offer (either party); earlier offers stay unchanged, signatures are reset."""
    async def action(uow):
        return _json(await uc.make_offer(uow, identity, transfer_id, offer_from(body.offer), body.based_on_version, now))
    return await idempotent_write(request, runtime, identity, key, body.model_dump(mode="json"), action, 201)


@router.post("/transfers/{transfer_id}/sign", response_model=TransferOut, responses=WRITE_ERRORS)
async def sign_transfer(transfer_id: str, body: SignIn, request: Request, identity: Identity = Depends(PARTY),
                        key: str | None = Depends(idempotency_key), runtime: ServiceRuntime = Depends(runtime_of),
                        now: datetime = Depends(now_of), notice_days: int = Depends(notice_days_of)):
    """Sign the current offer; when both parties have, the deal is signed (and noticed, if privately priced)."""
    async def action(uow):
        return _json(await uc.sign(uow, identity, transfer_id, body.offer_version, now, notice_days))
    return await idempotent_write(request, runtime, identity, key, body.model_dump(mode="json"), action, 200)


@router.post("/transfers/{transfer_id}/complete", response_model=TransferOut, responses=WRITE_ERRORS)
async def complete_transfer(transfer_id: str, request: Request, identity: Identity = Depends(require_roles("institution", "enterprise", "agency")),
                            key: str | None = Depends(idempotency_key), runtime: ServiceRuntime = Depends(runtime_of),
                            now: datetime = Depends(now_of)):
    """Complete a signed deal (after its public notice has run)."""
    async def action(uow):
        return _json(await uc.complete(uow, identity, transfer_id, now))
    return await idempotent_write(request, runtime, identity, key, {}, action, 200)


@router.post("/transfers/{transfer_id}/cancel", response_model=TransferOut, responses=WRITE_ERRORS)
async def cancel_transfer(transfer_id: str, body: CancelIn, request: Request, identity: Identity = Depends(require_identity),
                          key: str | None = Depends(idempotency_key), runtime: ServiceRuntime = Depends(runtime_of),
                          now: datetime = Depends(now_of)):
    """Cancel a deal that is not yet completed (either party, or admin)."""
    async def action(uow):
        return _json(await uc.cancel(uow, identity, transfer_id, body.reason, now))
    return await idempotent_write(request, runtime, identity, key, body.model_dump(mode="json"), action, 200)


@router.get("/notices", response_model=list[NoticeOut], tags=["notices"], responses=problem_responses(401))
async def public_notices(identity: Identity = Depends(require_identity), runtime: ServiceRuntime = Depends(runtime_of)) -> list[NoticeOut]:
    """Deals in their public notice period: achievement names and agreed price, for anyone to see."""
    async with runtime.unit_of_work() as uow:
        found = await uc.notices(uow)
    return [NoticeOut(transfer_id=t.id, achievement_ids=list(t.achievement_ids), achievement_titles=f["achievement_titles"],
                      seller_org_id=t.seller_org_id, buyer_org_id=t.buyer_org_id, mode=t.current.mode.value,
                      price=money(t.current.price, t.current.currency), notice_starts_at=t.notice_starts_at,
                      notice_ends_at=t.notice_ends_at) for t, f in found]


async def _completed(runtime, identity, transfer_id):
    async with runtime.unit_of_work() as uow:
        t, _ = await uc.load_visible(uow, identity, transfer_id)
        if t.status != TransferStatus.completed:
            raise Conflict(f"transfer {t.id} is {t.status.value}; only completed deals are registered", code="not_completed")
        return t, await uc.deal_facts(uow, t)


@router.get("/transfers/{transfer_id}/registration", tags=["exports"], responses=problem_responses(401, 404, 409))
async def registration_json(transfer_id: str, identity: Identity = Depends(require_identity),
                            runtime: ServiceRuntime = Depends(runtime_of)) -> dict:
    """Technology-contract registration record of a completed deal (JSON)."""
    t, facts = await _completed(runtime, identity, transfer_id)
    return registration_record(t, facts)


@router.get("/transfers/{transfer_id}/registration.pdf", tags=["exports"], response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}, **problem_responses(401, 404, 409)})
async def registration_printable(transfer_id: str, identity: Identity = Depends(require_identity),
                                 runtime: ServiceRuntime = Depends(runtime_of)) -> Response:
    """The same record as a printable PDF."""
    t, facts = await _completed(runtime, identity, transfer_id)
    return Response(registration_pdf(registration_record(t, facts)), media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="transfer-{t.id}.pdf"'})


@router.get("/exports/transfers.csv", tags=["exports"], response_class=Response,
            responses={200: {"content": {"text/csv": {}}}, **problem_responses(401, 403, 422)})
async def export_completed(start: date = Query(..., alias="from", description="First day (UTC), inclusive"),
                           end: date = Query(..., alias="to", description="Last day (UTC), inclusive"),
                           identity: Identity = Depends(require_roles("government")),
                           runtime: ServiceRuntime = Depends(runtime_of)) -> Response:
    """All deals completed in a period, one row each, for annual statistics."""
    if end < start or (end - start).days > 3660:
        raise ValidationFailed("the period is not valid", errors=[FieldError(field="query.to", message="must be on or after 'from', within 10 years")])
    lo = datetime.combine(start, time.min, UTC)
    hi = datetime.combine(end, time.min, UTC) + timedelta(days=1)
    async with runtime.unit_of_work() as uow:
        deals = [(t, await uc.deal_facts(uow, t)) for t in await uc.repo.completed_between(uow.session, lo, hi)]
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["transfer_id", "completed_at", "signed_at", "seller_org_id", "buyer_org_id", "achievement_ids",
                "achievement_titles", "mode", "exclusive", "territory", "term_months", "price_minor_units", "currency",
                "royalty_rate_bp", "royalty_base", "ipc_codes", "fields", "trl"])
    for t, f in deals:
        o = t.current
        w.writerow([t.id, t.completed_at.isoformat(), t.signed_at.isoformat() if t.signed_at else "", t.seller_org_id,
                    t.buyer_org_id, ";".join(t.achievement_ids), ";".join(f["achievement_titles"]), o.mode.value,
                    str(o.exclusive).lower(), o.territory, o.term_months or "", o.price if o.price is not None else "",
                    o.currency, o.royalty.rate_bp if o.royalty else "", o.royalty.base if o.royalty else "",
                    ";".join(f["ipc_codes"]), ";".join(f["fields"]), f["trl"] or ""])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="transfers-{start}-{end}.csv"'})
