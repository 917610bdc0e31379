"""Queries and row mapping; the only module (with tables.py) that speaks SQLAlchemy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.common import DeclineReason, TransferMode
from ..domain.demands import Budget, Demand, DemandStatus
from ..domain.matching import AchievementFacts, Decline
from ..domain.proposals import Proposal, ProposalStatus
from ..domain.transfers import Offer, Pricing, Royalty, Transfer, TransferStatus
from . import tables as t


class StaleWrite(Exception):
    """An optimistic update found the row changed since it was read."""


def _utc(v: datetime | None) -> datetime | None:
    if v is None:
        return None
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


# --- demands ---------------------------------------------------------------------------

def demand_from_row(r) -> Demand:
    return Demand(
        id=r.id, owner_org_id=r.owner_org_id, title=r.title, problem=r.problem,
        ipc_codes=tuple(r.ipc_codes), keywords=tuple(r.keywords),
        budget=Budget(r.budget_min, r.budget_max, r.currency), deadline=r.deadline,
        transfer_modes=tuple(TransferMode(m) for m in r.transfer_modes), min_trl=r.min_trl, region=r.region,
        status=DemandStatus(r.status), created_at=_utc(r.created_at), published_at=_utc(r.published_at),
        closed_at=_utc(r.closed_at), close_reason=r.close_reason,
    )


def _demand_values(d: Demand) -> dict[str, Any]:
    return dict(
        id=d.id, owner_org_id=d.owner_org_id, title=d.title, problem=d.problem, ipc_codes=list(d.ipc_codes),
        keywords=list(d.keywords), budget_min=d.budget.minimum, budget_max=d.budget.maximum, currency=d.budget.currency,
        deadline=d.deadline, transfer_modes=[m.value for m in d.transfer_modes], min_trl=d.min_trl, region=d.region,
        status=d.status.value, created_at=d.created_at, published_at=d.published_at, closed_at=d.closed_at,
        close_reason=d.close_reason,
    )


async def add_demand(s: AsyncSession, d: Demand) -> None:
    await s.execute(insert(t.demands).values(**_demand_values(d)))


async def save_demand(s: AsyncSession, d: Demand, embedding: bytes | None = None) -> None:
    values = _demand_values(d)
    if embedding is not None:
        values["embedding"] = embedding
    await s.execute(update(t.demands).where(t.demands.c.id == d.id).values(**values))


async def get_demand(s: AsyncSession, demand_id: str, *, for_update: bool = False) -> Demand | None:
    q = select(t.demands).where(t.demands.c.id == demand_id)
    if for_update:
        q = q.with_for_update()
    r = (await s.execute(q)).first()
    return demand_from_row(r) if r else None


async def list_demands(s: AsyncSession, *, owner: str | None, status: str | None, visible_to: str | None,
                       limit: int, after: dict | None) -> list[Demand]:
    c = t.demands.c
    q = select(t.demands)
    if owner:
        q = q.where(c.owner_org_id == owner)
    if status:
        q = q.where(c.status == status)
    if visible_to is not None:  # others' drafts are private
        q = q.where(or_(c.status != DemandStatus.draft.value, c.owner_org_id == visible_to))
    if after:
        q = q.where(or_(c.created_at < after["t"], and_(c.created_at == after["t"], c.id < after["id"])))
    q = q.order_by(c.created_at.desc(), c.id.desc()).limit(limit + 1)
    return [demand_from_row(r) for r in (await s.execute(q)).all()]


async def due_demands(s: AsyncSession, today) -> list[Demand]:
    c = t.demands.c
    q = select(t.demands).where(c.status == DemandStatus.published.value, c.deadline < today).limit(500)
    return [demand_from_row(r) for r in (await s.execute(q)).all()]


async def published_demand_rows(s: AsyncSession, ids: list[str] | None = None):
    c = t.demands.c
    q = select(c.id, c.title, c.problem, c.keywords, c.ipc_codes, c.status, c.embedding)
    if ids is not None:
        q = q.where(c.id.in_(ids))
    else:
        q = q.where(c.status == DemandStatus.published.value)
    return (await s.execute(q)).all()


async def demands_by_ids(s: AsyncSession, ids: list[str]) -> dict[str, Demand]:
    if not ids:
        return {}
    rows = (await s.execute(select(t.demands).where(t.demands.c.id.in_(ids)))).all()
    return {r.id: demand_from_row(r) for r in rows}


# --- proposals -------------------------------------------------------------------------

def proposal_from_row(r) -> Proposal:
    return Proposal(
        id=r.id, demand_id=r.demand_id, proposer_org_id=r.proposer_org_id, achievement_ids=tuple(r.achievement_ids),
        message=r.message, status=ProposalStatus(r.status), created_at=_utc(r.created_at), decided_at=_utc(r.decided_at),
        decided_by=r.decided_by, reject_reason=DeclineReason(r.reject_reason) if r.reject_reason else None,
        reject_note=r.reject_note, withdrawn_at=_utc(r.withdrawn_at), transfer_id=r.transfer_id,
    )


def _proposal_values(p: Proposal) -> dict[str, Any]:
    return dict(
        id=p.id, demand_id=p.demand_id, proposer_org_id=p.proposer_org_id, achievement_ids=list(p.achievement_ids),
        message=p.message, status=p.status.value, created_at=p.created_at, decided_at=p.decided_at,
        decided_by=p.decided_by, reject_reason=p.reject_reason.value if p.reject_reason else None,
        reject_note=p.reject_note, withdrawn_at=p.withdrawn_at, transfer_id=p.transfer_id,
    )


async def add_proposal(s: AsyncSession, p: Proposal) -> None:
    await s.execute(insert(t.proposals).values(**_proposal_values(p)))


async def get_proposal(s: AsyncSession, proposal_id: str, *, for_update: bool = False) -> Proposal | None:
    q = select(t.proposals).where(t.proposals.c.id == proposal_id)
    if for_update:
        q = q.with_for_update()
    r = (await s.execute(q)).first()
    return proposal_from_row(r) if r else None


async def save_proposal(s: AsyncSession, before: Proposal, after: Proposal) -> None:
    """Optimistic: the row must still be in `before`'s state (two decisions cannot both win)."""
    r = await s.execute(update(t.proposals).where(t.proposals.c.id == after.id, t.proposals.c.status == before.status.value)
                        .values(**_proposal_values(after)))
    if r.rowcount != 1:
        raise StaleWrite(after.id)


async def list_proposals(s: AsyncSession, demand_id: str | None, proposer: str | None, status: str | None = None) -> list[Proposal]:
    c = t.proposals.c
    q = select(t.proposals)
    if demand_id is not None:
        q = q.where(c.demand_id == demand_id)
    if proposer is not None:
        q = q.where(c.proposer_org_id == proposer)
    if status is not None:
        q = q.where(c.status == status)
    return [proposal_from_row(r) for r in (await s.execute(q.order_by(c.created_at, c.id))).all()]


# --- achievements read model -----------------------------------------------------------

def facts_from_row(r) -> AchievementFacts:
    return AchievementFacts(
        achievement_id=r.achievement_id, version=r.version, owner_org_id=r.owner_org_id,
        title=r.title_en or r.title_zh, trl=r.trl, transfer_modes=tuple(r.transfer_modes),
        asking_price=r.asking_price, currency=r.currency, negotiable=bool(r.negotiable), region=r.region,
        ipc_codes=tuple(r.ipc_codes), ip_type=r.ip_type,
        legal_statuses=tuple(str(x.get("legal_status")) for x in (r.ip_records or []) if x.get("legal_status")),
    )


async def get_achievement(s: AsyncSession, achievement_id: str):
    return (await s.execute(select(t.achievements).where(t.achievements.c.achievement_id == achievement_id))).first()


async def achievements_by_ids(s: AsyncSession, ids: list[str]) -> dict[str, Any]:
    if not ids:
        return {}
    rows = (await s.execute(select(t.achievements).where(t.achievements.c.achievement_id.in_(ids)))).all()
    return {r.achievement_id: r for r in rows}


async def upsert_achievement(s: AsyncSession, values: dict) -> None:
    existing = await get_achievement(s, values["achievement_id"])
    if existing is None:
        await s.execute(insert(t.achievements).values(**values))
    else:
        await s.execute(update(t.achievements).where(t.achievements.c.achievement_id == values["achievement_id"]).values(**values))


async def set_achievement_status(s: AsyncSession, achievement_id: str, status: str, at: datetime) -> bool:
    r = await s.execute(update(t.achievements).where(t.achievements.c.achievement_id == achievement_id)
                        .values(status=status, updated_at=at, last_event_time=at))
    return r.rowcount > 0


async def get_embedding(s: AsyncSession, achievement_id: str, version: int, model_id: str) -> bytes | None:
    c = t.achievement_embeddings.c
    return (await s.execute(select(c.vector).where(c.achievement_id == achievement_id, c.version == version,
                                                   c.model_id == model_id))).scalar()


async def add_embedding(s: AsyncSession, achievement_id: str, version: int, model_id: str, vector: bytes, at: datetime) -> None:
    await s.execute(insert(t.achievement_embeddings).values(achievement_id=achievement_id, version=version,
                                                            model_id=model_id, vector=vector, created_at=at))


async def published_achievement_rows(s: AsyncSession, ids: list[str] | None, model_id: str):
    a, e = t.achievements, t.achievement_embeddings
    q = select(a, e.c.vector).select_from(
        a.outerjoin(e, and_(e.c.achievement_id == a.c.achievement_id, e.c.version == a.c.version, e.c.model_id == model_id)))
    if ids is not None:
        q = q.where(a.c.achievement_id.in_(ids))
    else:
        q = q.where(a.c.status == "published")
    return (await s.execute(q)).all()


# --- index change log ------------------------------------------------------------------

async def record_change(s: AsyncSession, population: str, doc_id: str, at: datetime) -> None:
    await s.execute(insert(t.index_changes).values(population=population, doc_id=doc_id, changed_at=at))


async def changes_since(s: AsyncSession, seq: int, recent: datetime) -> list:
    c = t.index_changes.c
    q = select(c.seq, c.population, c.doc_id).where(or_(c.seq > seq, c.changed_at >= recent)).order_by(c.seq)
    return (await s.execute(q)).all()


async def last_change(s: AsyncSession) -> int:
    return (await s.execute(select(func.max(t.index_changes.c.seq)))).scalar() or 0


# --- declines and notifications --------------------------------------------------------

async def add_decline(s: AsyncSession, values: dict) -> bool:
    c = t.declines.c
    exists = (await s.execute(select(c.reason).where(c.demand_id == values["demand_id"],
                                                     c.achievement_id == values["achievement_id"]))).first()
    if exists:
        await s.execute(update(t.declines).where(c.demand_id == values["demand_id"], c.achievement_id == values["achievement_id"])
                        .values(**values))
        return False
    await s.execute(insert(t.declines).values(**values))
    return True


async def declines_for(s: AsyncSession, demand_id: str) -> list:
    return (await s.execute(select(t.declines).where(t.declines.c.demand_id == demand_id)
                            .order_by(t.declines.c.created_at))).all()


async def decline_objects(s: AsyncSession, demand_id: str) -> list[Decline]:
    rows = await declines_for(s, demand_id)
    facts = await achievements_by_ids(s, [r.achievement_id for r in rows])
    return [Decline(r.achievement_id, DeclineReason(r.reason), facts_from_row(facts[r.achievement_id]) if r.achievement_id in facts else None)
            for r in rows]


async def decline_report(s: AsyncSession, owner: str | None) -> list:
    d = t.declines
    q = select(d.c.reason, func.count().label("n")).group_by(d.c.reason)
    if owner is not None:
        q = q.select_from(d.join(t.demands, t.demands.c.id == d.c.demand_id)).where(t.demands.c.owner_org_id == owner)
    return (await s.execute(q)).all()


async def notified(s: AsyncSession, demand_id: str, achievement_id: str) -> bool:
    c = t.match_notifications.c
    return (await s.execute(select(c.demand_id).where(c.demand_id == demand_id, c.achievement_id == achievement_id))).first() is not None


async def add_notification(s: AsyncSession, values: dict) -> None:
    await s.execute(insert(t.match_notifications).values(**values))


# --- transfers -------------------------------------------------------------------------

def _offer_from_row(r) -> Offer:
    royalty = Royalty(r.royalty_rate_bp, r.royalty_base or "", r.royalty_minimum_annual) if r.royalty_rate_bp is not None else None
    return Offer(version=r.version, made_by_org_id=r.made_by_org_id, mode=TransferMode(r.mode), exclusive=bool(r.exclusive),
                 territory=r.territory, term_months=r.term_months, price=r.price, currency=r.currency, royalty=royalty,
                 pricing=Pricing(r.pricing), milestones=tuple(r.milestones or ()), note=r.note, created_at=_utc(r.created_at))


async def get_transfer(s: AsyncSession, transfer_id: str, *, for_update: bool = False) -> tuple[Transfer, int] | None:
    q = select(t.transfers).where(t.transfers.c.id == transfer_id)
    if for_update:
        q = q.with_for_update()
    r = (await s.execute(q)).first()
    if r is None:
        return None
    offers = (await s.execute(select(t.transfer_offers).where(t.transfer_offers.c.transfer_id == transfer_id)
                              .order_by(t.transfer_offers.c.version))).all()
    return _transfer_from_row(r, [_offer_from_row(o) for o in offers]), r.row_version


def _transfer_from_row(r, offers: list[Offer]) -> Transfer:
    return Transfer(
        id=r.id, seller_org_id=r.seller_org_id, buyer_org_id=r.buyer_org_id, achievement_ids=tuple(r.achievement_ids),
        proposed_by_org_id=r.proposed_by_org_id, status=TransferStatus(r.status), offers=tuple(offers),
        demand_id=r.demand_id, proposal_id=r.proposal_id, seller_signed_at=_utc(r.seller_signed_at), buyer_signed_at=_utc(r.buyer_signed_at),
        signed_at=_utc(r.signed_at), notice_starts_at=_utc(r.notice_starts_at), notice_ends_at=_utc(r.notice_ends_at),
        completed_at=_utc(r.completed_at), cancelled_at=_utc(r.cancelled_at), cancelled_reason=r.cancelled_reason,
        cancelled_by_org_id=r.cancelled_by_org_id, created_at=_utc(r.created_at),
    )


def _transfer_values(x: Transfer) -> dict:
    return dict(
        id=x.id, seller_org_id=x.seller_org_id, buyer_org_id=x.buyer_org_id, achievement_ids=list(x.achievement_ids),
        demand_id=x.demand_id, proposal_id=x.proposal_id, proposed_by_org_id=x.proposed_by_org_id, status=x.status.value,
        seller_signed_at=x.seller_signed_at, buyer_signed_at=x.buyer_signed_at, signed_at=x.signed_at,
        notice_starts_at=x.notice_starts_at, notice_ends_at=x.notice_ends_at, completed_at=x.completed_at,
        cancelled_at=x.cancelled_at, cancelled_reason=x.cancelled_reason, cancelled_by_org_id=x.cancelled_by_org_id,
        created_at=x.created_at,
    )


def _offer_values(transfer_id: str, o: Offer) -> dict:
    return dict(
        transfer_id=transfer_id, version=o.version, made_by_org_id=o.made_by_org_id, mode=o.mode.value,
        exclusive=o.exclusive, territory=o.territory, term_months=o.term_months, price=o.price, currency=o.currency,
        royalty_rate_bp=o.royalty.rate_bp if o.royalty else None, royalty_base=o.royalty.base if o.royalty else None,
        royalty_minimum_annual=o.royalty.minimum_annual if o.royalty else None, pricing=o.pricing.value,
        milestones=list(o.milestones), note=o.note, created_at=o.created_at,
    )


async def add_transfer(s: AsyncSession, x: Transfer) -> None:
    await s.execute(insert(t.transfers).values(**_transfer_values(x), row_version=1))
    for o in x.offers:
        await s.execute(insert(t.transfer_offers).values(**_offer_values(x.id, o)))


async def save_transfer(s: AsyncSession, before: Transfer, after: Transfer, row_version: int) -> None:
    """Optimistic: the row must still be at `row_version`; new offers are appended, never changed."""
    r = await s.execute(update(t.transfers).where(t.transfers.c.id == after.id, t.transfers.c.row_version == row_version)
                        .values(**_transfer_values(after), row_version=row_version + 1))
    if r.rowcount != 1:
        raise StaleWrite(after.id)
    for o in after.offers[len(before.offers):]:
        await s.execute(insert(t.transfer_offers).values(**_offer_values(after.id, o)))


async def list_transfers(s: AsyncSession, *, party: str | None, status: str | None, limit: int, after: dict | None) -> list[Transfer]:
    c = t.transfers.c
    q = select(t.transfers)
    if party is not None:
        q = q.where(or_(c.seller_org_id == party, c.buyer_org_id == party))
    if status:
        q = q.where(c.status == status)
    if after:
        q = q.where(or_(c.created_at < after["t"], and_(c.created_at == after["t"], c.id < after["id"])))
    rows = (await s.execute(q.order_by(c.created_at.desc(), c.id.desc()).limit(limit + 1))).all()
    return await _with_offers(s, rows)


async def _with_offers(s: AsyncSession, rows) -> list[Transfer]:
    ids = [r.id for r in rows]
    offers: dict[str, list[Offer]] = {i: [] for i in ids}
    if ids:
        for o in (await s.execute(select(t.transfer_offers).where(t.transfer_offers.c.transfer_id.in_(ids))
                                  .order_by(t.transfer_offers.c.version))).all():
            offers[o.transfer_id].append(_offer_from_row(o))
    return [_transfer_from_row(r, offers[r.id]) for r in rows]


async def transfers_in_notice(s: AsyncSession) -> list[Transfer]:
    rows = (await s.execute(select(t.transfers).where(t.transfers.c.status == TransferStatus.in_notice.value)
                            .order_by(t.transfers.c.notice_ends_at))).all()
    return await _with_offers(s, rows)


async def completed_between(s: AsyncSession, start: datetime, end: datetime) -> list[Transfer]:
    c = t.transfers.c
    rows = (await s.execute(select(t.transfers).where(c.status == TransferStatus.completed.value, c.completed_at >= start,
                                                      c.completed_at < end).order_by(c.completed_at))).all()
    return await _with_offers(s, rows)


