"""Domain objects -> response schemas (and an offer body -> its domain object)."""

from __future__ import annotations

from techbridge_shared.money import Money

from ..domain.demands import Demand
from ..domain.proposals import Proposal
from ..domain.transfers import Offer, Royalty, Transfer
from .schemas import DemandOut, OfferIn, OfferOut, ProposalOut, TransferOut


def money(amount: int | None, currency: str) -> Money | None:
    return None if amount is None else Money(amount=amount, currency=currency)


def demand_out(d: Demand) -> DemandOut:
    return DemandOut(
        id=d.id, owner_org_id=d.owner_org_id, status=d.status.value, title=d.title, problem=d.problem,
        ipc_codes=list(d.ipc_codes), keywords=list(d.keywords), budget_min=money(d.budget.minimum, d.budget.currency),
        budget_max=money(d.budget.maximum, d.budget.currency), deadline=d.deadline,
        transfer_modes=[m.value for m in d.transfer_modes], min_trl=d.min_trl, region=d.region, created_at=d.created_at,
        published_at=d.published_at, closed_at=d.closed_at, close_reason=d.close_reason,
    )


def offer_out(o: Offer) -> OfferOut:
    royalty = None
    if o.royalty:
        royalty = {"rate_bp": o.royalty.rate_bp, "base": o.royalty.base,
                   "minimum_annual": money(o.royalty.minimum_annual, o.currency).model_dump() if o.royalty.minimum_annual is not None else None}
    return OfferOut(version=o.version, made_by_org_id=o.made_by_org_id, mode=o.mode.value, exclusive=o.exclusive,
                    territory=o.territory, term_months=o.term_months, price=money(o.price, o.currency), royalty=royalty,
                    pricing=o.pricing.value, milestones=list(o.milestones), note=o.note, created_at=o.created_at)


def transfer_out(t: Transfer) -> TransferOut:
    return TransferOut(
        id=t.id, status=t.status.value, seller_org_id=t.seller_org_id, buyer_org_id=t.buyer_org_id,
        achievement_ids=list(t.achievement_ids), demand_id=t.demand_id, proposal_id=t.proposal_id, proposed_by_org_id=t.proposed_by_org_id,
        current_offer=offer_out(t.current), offers=[offer_out(o) for o in t.offers],
        seller_signed_at=t.seller_signed_at, buyer_signed_at=t.buyer_signed_at, signed_at=t.signed_at,
        notice_starts_at=t.notice_starts_at, notice_ends_at=t.notice_ends_at, completed_at=t.completed_at,
        cancelled_at=t.cancelled_at, cancelled_reason=t.cancelled_reason, created_at=t.created_at,
    )


def proposal_out(p: Proposal) -> ProposalOut:
    return ProposalOut(
        id=p.id, demand_id=p.demand_id, proposer_org_id=p.proposer_org_id, achievement_ids=list(p.achievement_ids),
        message=p.message, status=p.status.value, created_at=p.created_at, decided_at=p.decided_at,
        reject_reason=p.reject_reason.value if p.reject_reason else None, reject_note=p.reject_note,
        withdrawn_at=p.withdrawn_at, transfer_id=p.transfer_id,
    )


def offer_from(body: OfferIn) -> Offer:
    """An offer as the domain takes it; version and author are set by the transition."""
    currency = body.price.currency if body.price else (body.royalty.minimum_annual.currency
                                                        if body.royalty and body.royalty.minimum_annual else "CNY")
    royalty = Royalty(body.royalty.rate_bp, body.royalty.base,
                      body.royalty.minimum_annual.amount if body.royalty.minimum_annual else None) if body.royalty else None
    return Offer(version=0, made_by_org_id="", mode=body.mode, exclusive=body.exclusive, territory=body.territory,
                 term_months=body.term_months, price=body.price.amount if body.price else None, currency=currency,
                 royalty=royalty, pricing=body.pricing, milestones=tuple(body.milestones), note=body.note)
