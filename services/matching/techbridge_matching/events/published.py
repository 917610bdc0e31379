"""Events matching publishes (frozen pydantic models = the published schema)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from techbridge_shared.envelope import CloudEvent, new_event, topic_name
from techbridge_shared.money import Money

from ..domain.demands import Demand
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


class TransferData(_Frozen):
    transfer_id: str
    achievement_ids: list[str]
    achievement_titles: list[str]
    seller_org_id: str
    buyer_org_id: str
    demand_id: str | None
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


def transfer_event(t: Transfer, verb: str, facts: dict) -> CloudEvent:
    """`facts`: achievement_titles, ipc_codes, fields, trl gathered from the read model."""
    o = t.current
    data = TransferData(
        transfer_id=t.id, achievement_ids=list(t.achievement_ids), achievement_titles=facts.get("achievement_titles", []),
        seller_org_id=t.seller_org_id, buyer_org_id=t.buyer_org_id, demand_id=t.demand_id,
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
