from __future__ import annotations

from techbridge_shared.uow import UnitOfWork

from ..domain import model as m
from ..domain.ledger import AccountKind, InsufficientBalance, programme_account, voucher_accounts
from ..events.published import ApplicationEvent, RuleResult, VoucherEvent, event
from ..store.repository import Repository
from .common import Actor, authorise, money, not_found, now, overdraft
from .programmes import get as get_programme


def _publish(uow: UnitOfWork, verb: str, a: m.Application, *, review: m.Review | None = None) -> None:
    uow.publish(event("application", verb, a.id, ApplicationEvent(
        application_id=a.id, programme_id=a.programme_id, enterprise_org_id=a.enterprise_org_id,
        amount=money(a.amount, a.currency), state=a.state,
        checks=[RuleResult(rule=c.rule, passed=c.passed, detail=c.detail) for c in a.checks],
        level=review.level if review else None, reviewer=review.reviewer if review else None,
        reason=review.reason if review else "", voucher_id=a.voucher_id, at=now())))


async def submit(repo: Repository, uow: UnitOfWork, actor: Actor, programme_id: str, amount: int, currency: str,
                 purpose: str) -> m.Application:
    org_id = actor.require_org()
    p = await get_programme(repo, programme_id)
    if currency != p.currency:
        from ..domain.errors import invalid
        raise invalid("body.face_value.currency", f"the programme counts in {p.currency}")
    t = now()
    a = m.submit_application(p, org_id, await repo.organisation(org_id), amount=amount, purpose=purpose,
                             issued_this_year=await repo.issued_this_year(p.id, org_id, t), now=t, actor=actor.sub)
    await repo.add_application(a)
    _publish(uow, "submitted", a)
    if a.state is m.ApplicationState.INELIGIBLE:
        _publish(uow, "rejected", a)
    return a


async def get(repo: Repository, actor: Actor, application_id: str, *, lock: bool = False) -> m.Application:
    a = await repo.application(application_id, lock=lock)
    if a is None or not (actor.is_official or actor.org == a.enterprise_org_id):
        raise not_found("application", application_id)
    return a


async def review(repo: Repository, uow: UnitOfWork, actor: Actor, application_id: str, *, approve: bool,
                 reason: str) -> tuple[m.Application, m.Voucher | None]:
    """A reviewer's decision; the final approval issues the voucher in the same transaction."""
    a = await get(repo, actor, application_id)
    # Issuance draws on the programme's budget and quota: serialise on the programme row.
    p = await get_programme(repo, a.programme_id, lock=True)
    a = await get(repo, actor, application_id, lock=True)
    authorise(actor, p, m.Governing.REVIEW, review_level=m.review_level(a))
    t = now()
    a = m.review_application(a, p, reviewer=actor.sub, approve=approve, reason=reason, now=t)
    last = a.reviews[-1]
    voucher = None
    if a.state is m.ApplicationState.APPROVED:
        unissued = await repo.balance(programme_account(p.id, AccountKind.UNISSUED))
        voucher, entry = m.issue_voucher(p, a, unissued=unissued, now=t, actor=actor.sub,
                                         issued_this_year=await repo.issued_this_year(p.id, a.enterprise_org_id, t))
        a.voucher_id = voucher.id
        await repo.add_voucher(voucher)
        await repo.open_accounts(voucher_accounts(p.id, voucher.id), p.currency)
        await repo.save_application(a)
        try:
            digest = await repo.post(entry)
        except InsufficientBalance as exc:
            raise overdraft(exc) from None
        _publish(uow, "approved", a, review=last)
        uow.publish(event("voucher", "issued", voucher.id, VoucherEvent(
            voucher_id=voucher.id, programme_id=p.id, enterprise_org_id=voucher.enterprise_org_id,
            face_value=money(voucher.face_value, voucher.currency), state=voucher.state,
            expires_at=voucher.expires_at, available=money(voucher.face_value, voucher.currency),
            amount=money(voucher.face_value, voucher.currency), application_id=a.id,
            entry_id=entry.id, entry_hash=digest, at=t)))
    else:
        await repo.save_application(a)
        _publish(uow, "rejected" if a.state is m.ApplicationState.REJECTED else "reviewed", a, review=last)
    return a, voucher


async def listing(repo: Repository, actor: Actor, *, programme_id: str | None, state: str | None, limit: int,
                  after) -> list[m.Application]:
    org = None if actor.is_official else actor.require_org()
    return await repo.list_applications(programme_id=programme_id, enterprise_org_id=org, state=state, limit=limit,
                                        after=after)
