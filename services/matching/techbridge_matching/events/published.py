"""Events matching publishes (frozen pydantic models = the published schema)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from techbridge_shared.envelope import CloudEvent, new_event, topic_name
from techbridge_shared.money import Money

from ..domain.demands import Demand
from ..domain.proposals import Proposal
from ..domain.transfers import Transfer

SERVICE = "matching"
DEMAND_TOPIC = topic_name(SERVICE, "demand")
TRANSFER_TOPIC = topic_name(SERVICE, "transfer")
MATCH_TOPIC = topic_name(SERVICE, "match")
TOPICS = (DEMAND_TOPIC, TRANSFER_TOPIC, MATCH_TOPIC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class DemandData(_Frozen):
    demand_id: str
    owner_org_id: str
    title: str
    problem: str
    ipc_codes: list[str]
    budget_min: Money | None
    budget_max: Money | None
    deadline: date | None
    transfer_modes: list[str]
    min_trl: int | None
    region: str | None
    status: str
    reason: str | None = None


class ProposalData(_Frozen):
    """A proposal answering a demand; published on the demand's topic, keyed by the demand."""

    proposal_id: str
    demand_id: str
    demand_owner_org_id: str
    demand_title: str
    proposer_org_id: str
    achievement_ids: list[str]
    achievement_titles: list[str]
    achievement_owner_org_ids: list[str]
    message: str
    status: str
    reject_reason: str | None
    reject_note: str | None
    decided_at: datetime | None
    withdrawn_at: datetime | None


class TransferData(_Frozen):
    transfer_id: str
    achievement_ids: list[str]
    achievement_titles: list[str]
    seller_org_id: str
    buyer_org_id: str
    demand_id: str | None
    proposal_id: str | None = None
    mode: str
    exclusive: bool
    territory: str
    term_months: int | None
    price: Money | None
    royalty_rate_bp: int | None
    royalty_base: str | None
    royalty_minimum_annual: Money | None
    pricing: str
    offer_version: int
    offer_made_by_org_id: str
    ipc_codes: list[str]
    fields: list[str]
    trl: int | None
    status: str
    signed_at: datetime | None
    notice_starts_at: datetime | None
    notice_ends_at: datetime | None
    completed_at: datetime | None
    cancelled_reason: str | None


class MatchFoundData(_Frozen):
    demand_id: str
    demand_owner_org_id: str
    achievement_id: str
    achievement_version: int
    score: float
    explanation: dict


def _money(amount: int | None, currency: str) -> Money | None:
    return None if amount is None else Money(amount=amount, currency=currency)


def demand_event(demand: Demand, verb: str) -> CloudEvent:
    b = demand.budget
    data = DemandData(
        demand_id=demand.id, owner_org_id=demand.owner_org_id, title=demand.title, problem=demand.problem,
        ipc_codes=list(demand.ipc_codes), budget_min=_money(b.minimum, b.currency), budget_max=_money(b.maximum, b.currency),
        deadline=demand.deadline, transfer_modes=[m.value for m in demand.transfer_modes], min_trl=demand.min_trl,
        region=demand.region, status=demand.status.value, reason=demand.close_reason,
    )
    return new_event(service=SERVICE, aggregate="demand", verb=verb, subject=demand.id, data=data)


def proposal_event(p: Proposal, demand: Demand, verb: str, facts: dict) -> CloudEvent:
    """`verb`: submitted | accepted | rejected | withdrawn -> `techbridge.matching.demand.proposal-<verb>.v1`.

    Proposals live inside their demand (as offers live inside a deal), so their events share
    the demand's topic and key and keep their order relative to the demand's own events.
    `facts`: achievement_titles and achievement_owner_org_ids from the read model.
    """
    data = ProposalData(
        proposal_id=p.id, demand_id=demand.id, demand_owner_org_id=demand.owner_org_id, demand_title=demand.title,
        proposer_org_id=p.proposer_org_id, achievement_ids=list(p.achievement_ids),
        achievement_titles=facts.get("achievement_titles", []), achievement_owner_org_ids=facts.get("achievement_owner_org_ids", []),
        message=p.message, status=p.status.value, reject_reason=p.reject_reason.value if p.reject_reason else None,
        reject_note=p.reject_note, decided_at=p.decided_at, withdrawn_at=p.withdrawn_at,
    )
    return new_event(service=SERVICE, aggregate="demand", verb=f"proposal-{verb}", subject=demand.id, data=data)


def transfer_event(t: Transfer, verb: str, facts: dict) -> CloudEvent:
    """`facts`: achievement_titles, ipc_codes, fields, trl gathered from the read model."""
    o = t.current
    data = TransferData(
        transfer_id=t.id, achievement_ids=list(t.achievement_ids), achievement_titles=facts.get("achievement_titles", []),
        seller_org_id=t.seller_org_id, buyer_org_id=t.buyer_org_id, demand_id=t.demand_id, proposal_id=t.proposal_id,
        mode=o.mode.value, exclusive=o.exclusive, territory=o.territory, term_months=o.term_months,
        price=_money(o.price, o.currency),
        royalty_rate_bp=o.royalty.rate_bp if o.royalty else None,
        royalty_base=o.royalty.base if o.royalty else None,
        royalty_minimum_annual=_money(o.royalty.minimum_annual, o.currency) if o.royalty else None,
        pricing=o.pricing.value, offer_version=o.version, offer_made_by_org_id=o.made_by_org_id,
        ipc_codes=facts.get("ipc_codes", []), fields=facts.get("fields", []), trl=facts.get("trl"),
        status=t.status.value, signed_at=t.signed_at, notice_starts_at=t.notice_starts_at,
        notice_ends_at=t.notice_ends_at, completed_at=t.completed_at, cancelled_reason=t.cancelled_reason,
    )
    return new_event(service=SERVICE, aggregate="transfer", verb=verb, subject=t.id, data=data)


def match_found_event(data: MatchFoundData) -> CloudEvent:
    return new_event(service=SERVICE, aggregate="match", verb="found", subject=data.demand_id, data=data)
