from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from techbridge_shared.uow import UnitOfWork

from ..domain import model as m
from ..domain.ledger import AccountKind, JournalEntry, voucher_account
from ..events.published import VoucherEvent, event
from ..store.repository import Repository
from . import redemptions as redemption_cases
from .common import SYSTEM, Actor, authorise, money, not_found, now
from .programmes import get as get_programme


@dataclass(frozen=True)
class VoucherView:
    voucher: m.Voucher
    available: int
    reserved: int


async def _balances(repo: Repository, v: m.Voucher) -> tuple[int, int]:
    a = voucher_account(v.programme_id, v.id, AccountKind.AVAILABLE).id
    r = voucher_account(v.programme_id, v.id, AccountKind.RESERVED).id
    b = await repo.balances([a, r])
    return b[a], b[r]


async def view_of(repo: Repository, v: m.Voucher) -> VoucherView:
    return VoucherView(v, *await _balances(repo, v))


def publish(uow: UnitOfWork, verb: str, view: VoucherView, *, amount: int | None = None,
            entry: JournalEntry | None = None, digest: str | None = None, returned: bool | None = None,
            at: datetime | None = None) -> None:
    v = view.voucher
    uow.publish(event("voucher", verb, v.id, VoucherEvent(
        voucher_id=v.id, programme_id=v.programme_id, enterprise_org_id=v.enterprise_org_id,
        face_value=money(v.face_value, v.currency), state=v.state, expires_at=v.expires_at,
        available=money(view.available, v.currency), amount=money(amount, v.currency) if amount else None,
        returned_to_budget=returned, reason=v.note, application_id=v.application_id,
        entry_id=entry.id if entry else None, entry_hash=digest, at=at or now())))


async def get(repo: Repository, actor: Actor, voucher_id: str, *, lock: bool = False) -> m.Voucher:
    v = await repo.voucher(voucher_id, lock=lock)
    if v is None or not (actor.is_official or actor.org == v.enterprise_org_id):
        raise not_found("voucher", voucher_id)
    return v


async def governed(repo: Repository, actor: Actor, voucher_id: str) -> tuple[m.Voucher, m.Programme]:
    """The voucher, locked, and its programme, once the caller is known to govern it (403 if not)."""
    v = await get(repo, actor, voucher_id, lock=True)
    p = await get_programme(repo, v.programme_id)
    authorise(actor, p)
    return v, p


async def view(repo: Repository, actor: Actor, voucher_id: str) -> VoucherView:
    return await view_of(repo, await get(repo, actor, voucher_id))


async def freeze(repo: Repository, uow: UnitOfWork, actor: Actor, voucher_id: str, reason: str) -> VoucherView:
    v, _ = await governed(repo, actor, voucher_id)
    v = m.freeze(v, reason=reason)
    await repo.save_voucher(v)
    vv = await view_of(repo, v)
    publish(uow, "frozen", vv)
    return vv


async def unfreeze(repo: Repository, uow: UnitOfWork, actor: Actor, voucher_id: str) -> VoucherView:
    v, _ = await governed(repo, actor, voucher_id)
    v = m.unfreeze(v, now=now())
    await repo.save_voucher(v)
    vv = await view_of(repo, v)
    publish(uow, "unfrozen", vv)
    return vv


async def _end(repo: Repository, uow: UnitOfWork, actor: Actor, v: m.Voucher, *, revoke: bool, reason: str,
               at: datetime) -> VoucherView:
    """Release open reservations, then move the available value out (expiry or revocation)."""
    p = await get_programme(repo, v.programme_id)
    if v.state in (m.VoucherState.ACTIVE, m.VoucherState.FROZEN) and (revoke or v.is_past_validity(at)):
        for r in await repo.reserved_redemptions(voucher_id=v.id):
            await redemption_cases.void_locked(
                repo, uow, r, v, p, actor=actor,
                reason=f"voucher {'revoked' if revoke else 'expired'}" + (f": {reason}" if reason else ""))
    available, _ = await _balances(repo, v)
    v, entry = m.end_voucher(v, p, available=available, revoke=revoke, reason=reason, now=at, actor=actor.sub)
    await repo.save_voucher(v)
    digest = await repo.post(entry) if entry else None
    vv = await view_of(repo, v)
    returned = None if revoke else p.terms.unspent_policy is m.UnspentPolicy.RETURN_TO_BUDGET
    publish(uow, "revoked" if revoke else "expired", vv, amount=available, entry=entry, digest=digest,
            returned=returned, at=at)
    return vv


async def revoke(repo: Repository, uow: UnitOfWork, actor: Actor, voucher_id: str, reason: str) -> VoucherView:
    v, _ = await governed(repo, actor, voucher_id)
    return await _end(repo, uow, actor, v, revoke=True, reason=reason, at=now())


async def sweep_one(repo: Repository, uow: UnitOfWork, voucher_id: str, at: datetime) -> str | None:
    """Expire the voucher if past validity, or send its reminder if due; None if nothing was due."""
    v = await repo.voucher(voucher_id, lock=True)
    if v is None or v.state not in (m.VoucherState.ACTIVE, m.VoucherState.FROZEN):
        return None
    if v.is_past_validity(at):
        await _end(repo, uow, SYSTEM, v, revoke=False, reason="validity ended", at=at)
        return "expired"
    p = await get_programme(repo, v.programme_id)
    if m.needs_reminder(v, p, at):
        v.reminded_at = at
        await repo.save_voucher(v)
        publish(uow, "expiring", await view_of(repo, v), at=at)
        return "reminded"
    return None


async def due(repo: Repository, at: datetime, limit: int) -> list[str]:
    return await repo.vouchers_due(at, limit)


async def listing(repo: Repository, actor: Actor, *, programme_id: str | None, state: str | None, limit: int,
                  after) -> list[m.Voucher]:
    org = None if actor.is_official else actor.require_org()
    return await repo.list_vouchers(programme_id=programme_id, enterprise_org_id=org, state=state, limit=limit,
                                    after=after)
