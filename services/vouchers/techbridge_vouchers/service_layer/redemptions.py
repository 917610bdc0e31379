"""Two-phase redemption: reserve (hold part of a voucher for an agency's invoice), then settle on
confirmed delivery, or void to release; then pay out; claw back wrong settlements.

Every change to a redemption happens while its voucher's row is locked, so two requests about
one voucher never interleave; the conditional balance update in the store refuses overdrafts
even if they did."""

from __future__ import annotations

import logging

from techbridge_shared.uow import UnitOfWork

from ..domain import model as m
from ..domain.errors import Forbidden, refused
from ..domain.ledger import InsufficientBalance, JournalEntry
from ..events.published import RedemptionEvent, event
from ..store.repository import Repository
from .common import SYSTEM, Actor, authorise, money, not_found, now, overdraft
from .programmes import get_for_redemption as get_programme

log = logging.getLogger(__name__)

VERBS = {m.RedemptionState.RESERVED: "reserved", m.RedemptionState.SETTLED: "settled",
         m.RedemptionState.VOIDED: "voided", m.RedemptionState.PAID: "paid"}


def publish(uow: UnitOfWork, verb: str, r: m.Redemption, entry: JournalEntry | None, digest: str | None, *,
            reason: str = "", clawed: int | None = None) -> None:
    uow.publish(event("redemption", verb, r.id, RedemptionEvent(
        redemption_id=r.id, voucher_id=r.voucher_id, programme_id=r.programme_id, agency_org_id=r.agency_org_id,
        enterprise_org_id=r.enterprise_org_id, amount=money(r.amount, r.currency),
        invoice_amount=money(r.invoice_amount, r.currency), invoice_ref=r.invoice_ref, category=r.category,
        transfer_id=r.transfer_id, state=r.state, settled_by=r.settled_by, reason=reason or (r.voided_reason or ""),
        payout_ref=r.payout_ref, clawed_back=money(clawed, r.currency) if clawed is not None else None,
        clawed_back_total=money(r.clawed_back, r.currency) if r.clawed_back else None,
        payout_batch_id=r.payout_batch_id, entry_id=entry.id if entry else None, entry_hash=digest, at=now())))


async def _post(repo: Repository, entry: JournalEntry | None) -> str | None:
    if entry is None:
        return None
    try:
        return await repo.post(entry)
    except InsufficientBalance as exc:
        raise overdraft(exc) from None


async def _locked(repo: Repository, redemption_id: str) -> tuple[m.Redemption, m.Voucher, m.Programme]:
    found = await repo.lock_redemption(redemption_id)  # the voucher locked, the redemption read under it
    if found is None:
        raise not_found("redemption", redemption_id)
    r, v = found
    return r, v, await get_programme(repo, r.programme_id)


def _visible(actor: Actor, r: m.Redemption) -> bool:
    return actor.is_official or actor.org in (r.agency_org_id, r.enterprise_org_id)


async def get(repo: Repository, actor: Actor, redemption_id: str) -> m.Redemption:
    r = await repo.redemption(redemption_id)
    if r is None or not _visible(actor, r):
        raise not_found("redemption", redemption_id)
    return r


async def reserve(repo: Repository, uow: UnitOfWork, actor: Actor, req: m.RedemptionRequest) -> m.Redemption:
    agency = actor.require_org()
    ctx = await repo.reservation_context(voucher_id=req.voucher_id, agency_org_id=agency,
                                         invoice_ref=req.invoice_ref, transfer_id=req.transfer_id)
    if ctx is None:
        raise not_found("voucher", req.voucher_id)
    v = ctx.voucher
    p = await get_programme(repo, v.programme_id)
    transfer = ctx.transfer
    if transfer is not None:
        status, buyer = transfer
        if status == "cancelled":
            raise refused("transfer_cancelled", f"transfer {req.transfer_id} was cancelled")
        if buyer and buyer != v.enterprise_org_id:
            raise refused("transfer_of_another_buyer", f"transfer {req.transfer_id} has another buyer than the "
                          "voucher's holder")
    enrolment, available, covered, amounts = ctx.enrolment, ctx.available, ctx.invoice_covered, ctx.invoice_amounts
    if amounts and req.invoice_amount not in amounts:
        raise refused("invoice_amount_mismatch", f"invoice {req.invoice_ref} was redeemed before with amount "
                      f"{sorted(amounts)[0]}, not {req.invoice_amount}")
    r, entry = m.reserve(v, p, enrolment, req, available=available,
                         invoice_already_covered=covered, now=now(), actor=actor.sub, agency_org_id=agency)
    await repo.add_redemption(r)
    digest = await _post(repo, entry)
    publish(uow, "reserved", r, entry, digest)
    if transfer is not None and transfer[0] == "completed":
        # The linked deal is already done: delivery is confirmed by it.
        r = await _settle_locked(repo, uow, r, v, p, by=f"transfer:{req.transfer_id}", actor=SYSTEM)
    return r


async def _settle_locked(repo: Repository, uow: UnitOfWork, r: m.Redemption, v: m.Voucher, p: m.Programme, *,
                         by: str, actor: Actor) -> m.Redemption:
    r, entry = m.settle(r, v, p, by=by, now=now(), actor=actor.sub)
    await repo.save_redemption(r, settle_entry_id=entry.id)
    digest = await _post(repo, entry)
    publish(uow, "settled", r, entry, digest)
    return r


async def settle(repo: Repository, uow: UnitOfWork, actor: Actor, redemption_id: str) -> m.Redemption:
    r, v, p = await _locked(repo, redemption_id)
    if actor.is_official:
        authorise(actor, p)
        by = f"reviewer:{actor.sub}"
    elif "enterprise" in actor.roles and actor.org == r.enterprise_org_id:
        by = f"enterprise:{actor.org}"
    elif not _visible(actor, r):
        raise not_found("redemption", redemption_id)
    else:
        raise Forbidden("delivery is confirmed by the enterprise that holds the voucher or by a reviewer",
                        code="not_the_confirming_party")
    return await _settle_locked(repo, uow, r, v, p, by=by, actor=actor)


async def void(repo: Repository, uow: UnitOfWork, actor: Actor, redemption_id: str, reason: str) -> m.Redemption:
    r, v, p = await _locked(repo, redemption_id)
    if not _visible(actor, r):
        raise not_found("redemption", redemption_id)
    if actor.org not in (r.agency_org_id, r.enterprise_org_id):  # an official, not a party to it
        authorise(actor, p)
    return await void_locked(repo, uow, r, v, p, reason=reason or "voided", actor=actor)


async def void_locked(repo: Repository, uow: UnitOfWork, r: m.Redemption, v: m.Voucher, p: m.Programme, *,
                      reason: str, actor: Actor) -> m.Redemption:
    r, entry = m.void(r, v, p, reason=reason, now=now(), actor=actor.sub)
    await repo.save_redemption(r)
    digest = await _post(repo, entry)
    publish(uow, "voided", r, entry, digest)
    return r


async def pay(repo: Repository, uow: UnitOfWork, actor: Actor, redemption_id: str, reference: str) -> m.Redemption:
    r, v, p = await _locked(repo, redemption_id)
    authorise(actor, p)
    r, entry = m.payout(r, p, reference=reference, now=now(), actor=actor.sub)
    await repo.save_redemption(r)
    digest = await _post(repo, entry)
    publish(uow, "paid", r, entry, digest)
    return r


async def claw_back(repo: Repository, uow: UnitOfWork, actor: Actor, redemption_id: str, amount: int, currency: str,
                    reason: str) -> m.Redemption:
    r, v, p = await _locked(repo, redemption_id)
    authorise(actor, p)
    if currency != r.currency:
        from ..domain.errors import invalid
        raise invalid("body.amount.currency", f"the redemption is in {r.currency}")
    r, entry = m.clawback(r, p, amount=amount, reason=reason, settle_entry_id=await repo.settle_entry_id(r.id),
                          now=now(), actor=actor.sub)
    await repo.save_redemption(r)
    digest = await _post(repo, entry)
    publish(uow, "clawed-back", r, entry, digest, reason=reason, clawed=amount)
    return r


async def on_transfer_finished(repo: Repository, uow: UnitOfWork, transfer_id: str, completed: bool,
                               reason: str = "") -> int:
    """Settle (completed) or release (cancelled) every reservation linked to the transfer.
    Idempotent: a second delivery finds nothing reserved any more."""
    done = 0
    pending = await repo.reserved_redemptions(transfer_id=transfer_id)
    for voucher_id in sorted({x.voucher_id for x in pending}):
        v = await repo.voucher(voucher_id, lock=True)
        p = await get_programme(repo, v.programme_id)
        for r in await repo.reserved_redemptions(voucher_id=voucher_id):
            if r.transfer_id != transfer_id:
                continue
            try:
                if completed:
                    await _settle_locked(repo, uow, r, v, p, by=f"transfer:{transfer_id}", actor=SYSTEM)
                else:
                    await void_locked(repo, uow, r, v, p, reason=f"transfer {transfer_id} cancelled: {reason}",
                                      actor=SYSTEM)
                done += 1
            except Exception as exc:  # e.g. a frozen voucher: left reserved for a reviewer to decide
                from techbridge_shared.errors import Problem
                if not isinstance(exc, Problem):
                    raise
                log.warning("redemption %s not %s after transfer %s: %s", r.id,
                            "settled" if completed else "voided", transfer_id, exc.detail)
    return done


async def listing(repo: Repository, actor: Actor, *, programme_id=None, voucher_id=None, state=None, limit: int,
                  after) -> list[m.Redemption]:
    kw = dict(programme_id=programme_id, voucher_id=voucher_id, state=state, limit=limit, after=after)
    if actor.is_official:
        return await repo.list_redemptions(**kw)
    org = actor.require_org()
    if "agency" in actor.roles:
        return await repo.list_redemptions(agency_org_id=org, **kw)
    return await repo.list_redemptions(enterprise_org_id=org, **kw)
