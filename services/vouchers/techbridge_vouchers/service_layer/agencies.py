from __future__ import annotations

from techbridge_shared.uow import UnitOfWork

from ..domain import model as m
from ..domain.errors import Forbidden
from ..domain.ledger import agency_accounts
from ..events.published import AgencyEvent, event
from ..store.repository import Repository
from .common import Actor, authorise, not_found, now
from .programmes import get as get_programme

VERBS = {"approve": "approved", "reject": "rejected", "suspend": "suspended", "remove": "removed"}


def _publish(uow: UnitOfWork, verb: str, e: m.Enrolment) -> None:
    uow.publish(event("agency", verb, e.agency_org_id, AgencyEvent(
        programme_id=e.programme_id, agency_org_id=e.agency_org_id, categories=list(e.categories),
        state=e.state, reason=e.reason, at=e.updated_at)))


async def apply(repo: Repository, uow: UnitOfWork, actor: Actor, programme_id: str, categories: list[str]
                ) -> m.Enrolment:
    org = actor.require_org()
    p = await get_programme(repo, programme_id)
    existing = await repo.enrolment(programme_id, org, lock=True)
    e = m.apply_as_agency(p, org, tuple(categories), existing, now=now())
    await repo.save_enrolment(e, new=existing is None)
    _publish(uow, "applied", e)
    return e


async def decide(repo: Repository, uow: UnitOfWork, actor: Actor, programme_id: str, agency_org_id: str,
                 action: str, reason: str) -> m.Enrolment:
    p = await get_programme(repo, programme_id)
    authorise(actor, p)
    e = await repo.enrolment(programme_id, agency_org_id, lock=True)
    if e is None:
        raise not_found("agency", agency_org_id)
    e = m.decide_enrolment(e, action, reason=reason, now=now())
    await repo.save_enrolment(e, new=False)
    if action == "approve":
        await repo.open_accounts(agency_accounts(programme_id, agency_org_id), p.currency)
    _publish(uow, VERBS[action], e)
    return e


async def listing(repo: Repository, actor: Actor, programme_id: str) -> list[m.Enrolment]:
    await get_programme(repo, programme_id)
    if actor.is_official:
        return await repo.list_enrolments(programme_id)
    # Everyone may see which agencies are approved; an agency also sees its own enrolment.
    return [e for e in await repo.list_enrolments(programme_id)
            if e.state is m.EnrolmentState.APPROVED or e.agency_org_id == actor.org]


async def one(repo: Repository, actor: Actor, programme_id: str, agency_org_id: str) -> m.Enrolment:
    e = await repo.enrolment(programme_id, agency_org_id)
    if e is None or not (actor.is_official or actor.org == agency_org_id or e.state is m.EnrolmentState.APPROVED):
        raise not_found("agency", agency_org_id)
    return e


__all__ = ["apply", "decide", "listing", "one", "Forbidden"]
