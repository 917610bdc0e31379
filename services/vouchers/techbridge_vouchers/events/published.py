"""What vouchers tells the world: one topic per aggregate, key = aggregate id, CloudEvents.

Every event that moves money names the journal entry (`entry_id`) and carries its hash
(`entry_hash`), so a government subscriber can audit every fen from the events alone and
holds anchors for the ledger's hash chains outside this service's database.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from techbridge_shared.envelope import CloudEvent, new_event, topic_name
from techbridge_shared.money import Money

SERVICE = "vouchers"

PROGRAMME_TOPIC = topic_name(SERVICE, "programme")
AGENCY_TOPIC = topic_name(SERVICE, "agency")
APPLICATION_TOPIC = topic_name(SERVICE, "application")
VOUCHER_TOPIC = topic_name(SERVICE, "voucher")
REDEMPTION_TOPIC = topic_name(SERVICE, "redemption")
PAYOUT_BATCH_TOPIC = topic_name(SERVICE, "payout-batch")
TOPICS = (PROGRAMME_TOPIC, AGENCY_TOPIC, APPLICATION_TOPIC, VOUCHER_TOPIC, REDEMPTION_TOPIC, PAYOUT_BATCH_TOPIC)


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)


class LedgerRef(_Event):
    entry_id: str | None = Field(default=None, description="Journal entry that moved the money, if any")
    entry_hash: str | None = Field(default=None, description="SHA-256 of that entry in its hash chain")


class ProgrammeEvent(LedgerRef):
    """opened | topped-up | closed"""

    programme_id: str
    name: str
    amount: Money | None = Field(default=None, description="Budget at opening, or the top-up")
    budget: Money = Field(description="Total budget after this event")
    unissued: Money = Field(description="Budget not yet issued, after this event")
    owner_org_id: str | None = Field(default=None, description="The government organisation that governs the "
                                     "programme (None: opened before owners were recorded; every official governs it)")
    reviewer_org_ids: list[str] = Field(default=[], description="Organisations that make the first review of a "
                                        "two-level review")
    at: datetime


class AgencyEvent(_Event):
    """applied | approved | rejected | suspended | removed"""

    programme_id: str
    agency_org_id: str
    categories: list[str]
    state: str
    reason: str = ""
    at: datetime


class RuleResult(_Event):
    rule: str
    passed: bool
    detail: str


class ApplicationEvent(_Event):
    """submitted | reviewed (first of two levels) | approved | rejected"""

    application_id: str
    programme_id: str
    enterprise_org_id: str
    amount: Money
    state: str
    checks: list[RuleResult]
    level: int | None = None
    reviewer: str | None = None
    reason: str = ""
    voucher_id: str | None = None
    at: datetime


class VoucherEvent(LedgerRef):
    """issued | expiring | expired | frozen | unfrozen | revoked"""

    voucher_id: str
    programme_id: str
    enterprise_org_id: str
    face_value: Money
    state: str
    expires_at: datetime
    available: Money | None = Field(default=None, description="Available value at the time of the event")
    amount: Money | None = Field(default=None, description="Value moved by this event (issued, lapsed, withdrawn)")
    returned_to_budget: bool | None = None
    reason: str = ""
    application_id: str | None = None
    at: datetime


class RedemptionEvent(LedgerRef):
    """reserved | settled | voided | paid | clawed-back"""

    redemption_id: str
    voucher_id: str
    programme_id: str
    agency_org_id: str
    enterprise_org_id: str
    amount: Money = Field(description="Amount covered by the voucher")
    invoice_amount: Money
    invoice_ref: str
    category: str
    transfer_id: str | None = None
    state: str
    settled_by: str | None = None
    reason: str = ""
    payout_ref: str | None = None
    clawed_back: Money | None = Field(default=None, description="For clawed-back: the amount reversed now")
    clawed_back_total: Money | None = None
    payout_batch_id: str | None = Field(default=None, description="For paid: the payout batch that paid it, if any")
    at: datetime


class PayoutTotalData(_Event):
    programme_id: str
    amount: Money
    count: int


class PayoutItem(_Event):
    redemption_id: str
    voucher_id: str
    programme_id: str
    amount: Money = Field(description="Paid by this batch (settled minus any claw-back before payment)")
    entry_id: str | None = Field(description="The payout journal entry (none when nothing was left to pay)")
    entry_hash: str | None


class PayoutBatchEvent(_Event):
    """paid: one payment order covering an agency's settled redemptions; the sum of `items` per
    programme is `totals`, and each item names its journal entry, so an auditor reconciles the
    batch with the agency's statement and bank record."""

    batch_id: str
    agency_org_id: str
    reference: str
    programme_id: str | None = Field(default=None, description="The programme filter asked for, if any")
    settled_before: datetime | None = Field(default=None, description="The settlement-time filter, if any")
    count: int
    totals: list[PayoutTotalData]
    items: list[PayoutItem]
    created_by: str
    at: datetime


def event(aggregate: str, verb: str, subject: str, data: _Event) -> CloudEvent:
    return new_event(service=SERVICE, aggregate=aggregate, verb=verb, subject=subject, data=data)
