"""The events the catalog publishes: topics, types and frozen data models (the contract)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from techbridge_shared.envelope import topic_name
from techbridge_shared.money import Money

SERVICE = "catalog"
ORGANISATION_TOPIC = topic_name(SERVICE, "organisation")
ACHIEVEMENT_TOPIC = topic_name(SERVICE, "achievement")
PUBLISHES = (ORGANISATION_TOPIC, ACHIEVEMENT_TOPIC)


class _Fact(BaseModel):
    model_config = ConfigDict(frozen=True)


class OrganisationData(_Fact):
    organisation_id: str
    name: str
    name_en: str
    kind: str
    region: str
    credit_code: str
    headcount: int | None
    annual_revenue: Money | None
    registered_on: date | None


class IpRecordData(_Fact):
    number: str
    kind: str
    filing_date: date | None
    grant_date: date | None
    legal_status: str
    expiry_date: date | None


class AchievementListed(_Fact):
    """Data of achievement.published.v1 and achievement.updated.v1: the public listing only."""

    achievement_id: str
    version: int
    owner_org_id: str
    title_zh: str
    title_en: str
    abstract_zh: str
    abstract_en: str
    keywords: list[str]
    fields: list[str]
    ipc_codes: list[str]
    ip_type: str
    trl: int
    transfer_modes: list[str]
    asking_price: Money | None
    negotiable: bool
    region: str
    ip_records: list[IpRecordData]
    published_at: datetime
    status: str = Field(description="published or under_negotiation")
    expires_at: datetime | None = None


class AchievementFact(_Fact):
    """Data of the workflow facts: submitted, returned, rejected, withdrawn, expired, transferred."""

    achievement_id: str
    owner_org_id: str
    version: int
    status: str
    reason: str | None = None
    transfer_id: str | None = None
    buyer_org_id: str | None = None
