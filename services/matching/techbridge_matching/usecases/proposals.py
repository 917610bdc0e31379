"""Proposal use cases: submit, accept, reject, withdraw, and propose a deal from an accepted one.

Each loads the demand and the proposal, applies one rule from domain/proposals.py, saves with
an optimistic check on the state it read, and publishes the fact through the outbox. None of
them commits: the route commits together with the idempotency record.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from techbridge_shared.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from techbridge_shared.identity import Identity
from techbridge_shared.uow import UnitOfWork

from ..domain import proposals as rules
from ..domain.common import DeclineReason
from ..domain.demands import Demand
from ..domain.proposals import Proposal
from ..domain.transfers import Offer, Transfer
from ..events.published import proposal_event
from ..store import repository as repo
from . import transfers as transfer_usecases
from .demands import load_visible as load_demand


async def _facts(uow: UnitOfWork, p: Proposal) -> dict:
    rows = await repo.achievements_by_ids(uow.session, list(p.achievement_ids))
    titles = [(rows[a].title_zh or rows[a].title_en) if a in rows else "" for a in p.achievement_ids]
    owners = sorted({rows[a].owner_org_id for a in p.achievement_ids if a in rows})
    return {"achievement_titles": titles, "achievement_owner_org_ids": owners}


def _sees_all(identity: Identity, demand: Demand) -> bool:
    return identity.is_admin or identity.org == demand.owner_org_id


async def load_visible(uow: UnitOfWork, identity: Identity, demand_id: str, proposal_id: str, *,
                       for_update: bool = False) -> tuple[Demand, Proposal]:
    """The demand's owner sees every proposal on it, a proposer its own, and an organisation
    whose achievement a proposal names (an agency may put forward anyone's) that one; others: 404."""
    d = await load_demand(uow, identity, demand_id)
    p = await repo.get_proposal(uow.session, proposal_id, for_update=for_update)
    if p is None or p.demand_id != d.id or not await _may_see(uow, identity, d, p):
        raise NotFound(f"proposal {proposal_id} not found on demand {demand_id}")
    return d, p


async def _may_see(uow: UnitOfWork, identity: Identity, d: Demand, p: Proposal) -> bool:
    if _sees_all(identity, d) or identity.org == p.proposer_org_id:
        return True
    if not identity.org:
        return False
    rows = await repo.achievements_by_ids(uow.session, list(p.achievement_ids))
    return any(r.owner_org_id == identity.org for r in rows.values())


async def _save(uow: UnitOfWork, before: Proposal, after: Proposal) -> None:
    try:
        await repo.save_proposal(uow.session, before, after)
    except repo.StaleWrite:
        raise Conflict(f"proposal {after.id} changed meanwhile; read it again", code="concurrent_change") from None


async def submit(uow: UnitOfWork, identity: Identity, demand_id: str, achievement_ids: list[str], message: str,
                 now: datetime) -> Proposal:
    d = await load_demand(uow, identity, demand_id)
    if not identity.org:
        raise Forbidden("a proposal is made by an organisation; the caller has none")
    rows = await repo.achievements_by_ids(uow.session, achievement_ids)
    errors = [FieldError(field=f"body.achievement_ids.{i}", message="no published achievement with this id")
              for i, a in enumerate(achievement_ids) if a not in rows or rows[a].status != "published"]
    if errors:
        raise ValidationFailed("unknown achievements", errors=errors)
    # An institution answers with its own results; an agency (broker) may put forward anyone's.
    if "agency" not in identity.roles and not identity.is_admin:
        if any(rows[a].owner_org_id != identity.org for a in achievement_ids):
            raise Forbidden("an institution can only propose its own achievements")
    open_ones = [p for p in await repo.list_proposals(uow.session, d.id, identity.org) if p.status in rules.OPEN]
    p = rules.submit(proposal_id=str(uuid.uuid4()), demand=d, proposer_org_id=identity.org,
                     achievement_ids=tuple(achievement_ids), message=message, now=now, open_by_proposer=open_ones)
    await repo.add_proposal(uow.session, p)
    uow.publish(proposal_event(p, d, "submitted", await _facts(uow, p)))
    return p


async def list_for_demand(uow: UnitOfWork, identity: Identity, demand_id: str, status: str | None = None) -> list[Proposal]:
    d = await load_demand(uow, identity, demand_id)
    return await repo.list_proposals(uow.session, d.id, None if _sees_all(identity, d) else (identity.org or "-"), status)


async def list_mine(uow: UnitOfWork, identity: Identity, status: str | None = None) -> list[Proposal]:
    """Proposals my organisation made, on any demand."""
    return await repo.list_proposals(uow.session, None, identity.org or "-", status)


async def accept(uow: UnitOfWork, identity: Identity, demand_id: str, proposal_id: str, now: datetime) -> Proposal:
    d, before = await load_visible(uow, identity, demand_id, proposal_id, for_update=True)
    after = rules.accept(before, d, org=identity.org, by=identity.sub, is_admin=identity.is_admin, now=now)
    await _save(uow, before, after)
    uow.publish(proposal_event(after, d, "accepted", await _facts(uow, after)))
    return after


async def reject(uow: UnitOfWork, identity: Identity, demand_id: str, proposal_id: str, reason: DeclineReason,
                 note: str | None, now: datetime) -> Proposal:
    """Reject with a coded reason. Each proposed achievement not yet declined for this demand
    is declined with the same reason, so suggestions stop offering it and its reason ranks
    look-alikes, as if the owner had declined it from the match list."""
    d, before = await load_visible(uow, identity, demand_id, proposal_id, for_update=True)
    after = rules.reject(before, d, org=identity.org, by=identity.sub, is_admin=identity.is_admin, reason=reason,
                         note=note, now=now)
    await _save(uow, before, after)
    declined = {r.achievement_id for r in await repo.declines_for(uow.session, d.id)}
    known = await repo.achievements_by_ids(uow.session, list(after.achievement_ids))
    for a in after.achievement_ids:
        if a not in declined and a in known:
            await repo.add_decline(uow.session, dict(demand_id=d.id, achievement_id=a, reason=reason.value,
                                                     note=f"proposal {after.id} rejected" + (f": {note}" if note else ""),
                                                     declined_by=identity.sub, created_at=now))
    uow.publish(proposal_event(after, d, "rejected", await _facts(uow, after)))
    return after


async def withdraw(uow: UnitOfWork, identity: Identity, demand_id: str, proposal_id: str, now: datetime) -> Proposal:
    d, before = await load_visible(uow, identity, demand_id, proposal_id, for_update=True)
    after = rules.withdraw(before, org=identity.org, now=now)
    await _save(uow, before, after)
    uow.publish(proposal_event(after, d, "withdrawn", await _facts(uow, after)))
    return after


async def propose_deal(uow: UnitOfWork, identity: Identity, demand_id: str, proposal_id: str,
                       achievement_ids: list[str] | None, offer: Offer, now: datetime) -> tuple[Proposal, Transfer]:
    """An accepted proposal becomes a deal between the demand's owner (buyer) and the
    achievements' owner (seller), proposed by either of them with its first offer."""
    d, before = await load_visible(uow, identity, demand_id, proposal_id, for_update=True)
    rows = await repo.achievements_by_ids(uow.session, list(before.achievement_ids))
    owners = {a: r.owner_org_id for a, r in rows.items() if r.status == "published"}
    seller, buyer, ids = rules.deal_parties(before, d, org=identity.org, achievement_owners=owners,
                                            chosen=tuple(achievement_ids) if achievement_ids else None)
    t = await transfer_usecases.propose(uow, identity, seller_org_id=seller, buyer_org_id=buyer, achievement_ids=list(ids),
                                        demand_id=d.id, offer=offer, now=now, proposal_id=before.id)
    after = rules.into_deal(before, t.id)
    await _save(uow, before, after)
    return after, t
