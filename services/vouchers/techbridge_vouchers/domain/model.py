"""Where voucher decisions are made: programmes, eligibility, issuance, redemption, expiry.

Pure functions and dataclasses, no I/O. Each command checks the rules against the state it is
given and returns the new state plus the journal entry that moves the money; the store applies
the entry with conditional updates, so the database is the last guard against overspending.
A refusal raises a problem naming the reason and changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from .errors import Forbidden, invalid, refused
from .ledger import (
    AccountKind,
    EntryKind,
    JournalEntry,
    Posting,
    agency_account,
    programme_account,
    voucher_account,
)

BASIS_POINTS = 10_000


def new_id() -> str:
    return str(uuid.uuid4())


# --- programmes ----------------------------------------------------------------------------

class UnspentPolicy(StrEnum):
    RETURN_TO_BUDGET = "return_to_budget"
    LAPSE = "lapse"


class ProgrammeState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class EligibilityRules:
    org_kinds: tuple[str, ...] = ("enterprise",)
    max_headcount: int | None = None
    max_annual_revenue: int | None = None  # minor units, programme currency
    regions: tuple[str, ...] = ()  # "Shanghai" admits "Shanghai/Pudong"
    min_registration_age_days: int | None = None


@dataclass(frozen=True)
class ProgrammeTerms:
    name: str
    currency: str
    face_values: tuple[int, ...]
    max_share_bp: int  # largest share of an invoice a voucher may pay, basis points (5000 = 50 %)
    annual_quota: int  # face value one enterprise may receive per calendar year
    categories: tuple[str, ...]
    eligibility: EligibilityRules
    applications_open_at: datetime
    applications_close_at: datetime
    validity_days: int
    unspent_policy: UnspentPolicy
    reminder_days: int
    review_levels: int  # 1, or 2 (e.g. district then city)
    description: str = ""

    def validate(self) -> None:
        if not self.face_values or any(v <= 0 for v in self.face_values):
            raise invalid("body.face_values", "at least one positive face value")
        if not 0 < self.max_share_bp <= BASIS_POINTS:
            raise invalid("body.max_invoice_share_bp", "between 1 and 10000 basis points")
        if self.annual_quota < min(self.face_values):
            raise invalid("body.annual_quota", "smaller than the smallest face value: nobody could get a voucher")
        if not self.categories:
            raise invalid("body.categories", "at least one eligible service category")
        if self.applications_close_at <= self.applications_open_at:
            raise invalid("body.applications_close_at", "must be after applications_open_at")
        if self.validity_days <= 0:
            raise invalid("body.validity_days", "must be positive")
        if self.review_levels not in (1, 2):
            raise invalid("body.review_levels", "1 or 2")
        if self.reminder_days < 0 or self.reminder_days >= self.validity_days:
            raise invalid("body.reminder_days", "between 0 and validity_days - 1")


@dataclass
class Programme:
    id: str
    terms: ProgrammeTerms
    state: ProgrammeState
    created_by: str
    created_at: datetime
    closed_at: datetime | None = None
    #: The government organisation that opened the programme and governs it. None only for a
    #: programme opened before owners were recorded (migration 0004): any official governs it.
    owner_org_id: str | None = None
    #: Organisations that may make the first review of a two-level review (e.g. district offices).
    reviewer_org_ids: tuple[str, ...] = ()

    @property
    def currency(self) -> str:
        return self.terms.currency

    def accepts_applications(self, now: datetime) -> bool:
        t = self.terms
        return self.state is ProgrammeState.OPEN and t.applications_open_at <= now < t.applications_close_at

    def share_cap(self, invoice_amount: int) -> int:
        """The most a voucher may pay of this invoice (rounded down to the fen)."""
        return invoice_amount * self.terms.max_share_bp // BASIS_POINTS


def _entry(kind: EntryKind, *, chain: str, programme: Programme, postings, now: datetime, actor: str,
           entry_id: str | None = None, **refs) -> JournalEntry:
    return JournalEntry(
        id=entry_id or new_id(), kind=kind, chain_key=chain, programme_id=programme.id,
        currency=programme.currency, postings=tuple(postings), created_at=now, created_by=actor, **refs,
    )


def _move(source, target, amount: int) -> tuple[Posting, Posting]:
    return (Posting(source, -amount), Posting(target, amount))


def open_programme(programme_id: str, terms: ProgrammeTerms, budget: int, *, now: datetime, actor: str,
                   owner_org_id: str | None = None, reviewer_org_ids: tuple[str, ...] = ()
                   ) -> tuple[Programme, JournalEntry]:
    terms.validate()
    if budget <= 0:
        raise invalid("body.budget.amount", "a programme opens with a positive budget")
    reviewers = tuple(sorted(set(reviewer_org_ids) - {owner_org_id}))
    if reviewers and terms.review_levels < 2:
        raise invalid("body.reviewer_org_ids", "reviewer organisations make the first review of a two-level "
                      "review; this programme has review_levels 1 (its owner reviews)")
    if any(not r.strip() for r in reviewers):
        raise invalid("body.reviewer_org_ids", "organisation ids are not blank")
    p = Programme(programme_id, terms, ProgrammeState.OPEN, actor, now, owner_org_id=owner_org_id,
                  reviewer_org_ids=reviewers)
    entry = _entry(EntryKind.OPEN, chain=p.id, programme=p, now=now, actor=actor, postings=_move(
        programme_account(p.id, AccountKind.FUNDING), programme_account(p.id, AccountKind.UNISSUED), budget),
        memo="initial budget")
    return p, entry


# --- who governs a programme ---------------------------------------------------------------

class Governing(StrEnum):
    """What an official does to a programme or to something inside it."""

    MANAGE = "manage"  # top-up, close, agencies, vouchers, settlements, voids, payouts, claw-backs
    REVIEW = "review"  # a review step of an enterprise's application


def authorise_governing(programme: Programme, *, org: str | None, admin: bool, action: Governing,
                        review_level: int | None = None) -> None:
    """May an official acting for `org` do `action` on this programme? Raises Forbidden if not.

    - An admin may do everything.
    - The owner (the government organisation that opened it) may do everything.
    - A listed reviewer organisation may make the first review of a two-level review; the final
      review and every money or state decision stay with the owner.
    - A programme without a recorded owner (opened before owners were recorded) keeps the old
      rule: every official governs it.
    Called before any state-machine decision, so the refusal never depends on state."""
    if admin or programme.owner_org_id is None:
        return
    if org is not None and org == programme.owner_org_id:
        return
    if (action is Governing.REVIEW and review_level == 1 and programme.terms.review_levels >= 2
            and org is not None and org in programme.reviewer_org_ids):
        return
    who = f"organisation {org}" if org else "a caller acting for no organisation"
    if action is Governing.REVIEW and org is not None and org in programme.reviewer_org_ids:
        raise Forbidden(f"{who} makes only the first review in programme {programme.id}; any later review is "
                        f"made by its owner {programme.owner_org_id}", code="not_programme_reviewer")
    raise Forbidden(f"programme {programme.id} is governed by organisation {programme.owner_org_id}; "
                    f"{who} may read it but not {'review its applications' if action is Governing.REVIEW else 'change it'}",
                    code="not_programme_owner")


def review_level(app: Application) -> int | None:
    """The level the next review of the application would be (None once it is decided)."""
    if app.state is ApplicationState.SUBMITTED:
        return 1
    if app.state is ApplicationState.PARTLY_APPROVED:
        return 2
    return None


def top_up(programme: Programme, amount: int, *, now: datetime, actor: str, memo: str = "") -> JournalEntry:
    if programme.state is not ProgrammeState.OPEN:
        raise refused("programme_closed", f"programme {programme.id} is closed; a closed programme is not topped up")
    if amount <= 0:
        raise invalid("body.amount.amount", "a top-up is a positive amount")
    return _entry(EntryKind.TOP_UP, chain=programme.id, programme=programme, now=now, actor=actor, memo=memo,
                  postings=_move(programme_account(programme.id, AccountKind.FUNDING),
                                 programme_account(programme.id, AccountKind.UNISSUED), amount))


def close_programme(programme: Programme, *, now: datetime) -> Programme:
    if programme.state is ProgrammeState.CLOSED:
        raise refused("programme_closed", f"programme {programme.id} is already closed")
    return replace(programme, state=ProgrammeState.CLOSED, closed_at=now)


# --- organisations and eligibility ---------------------------------------------------------

@dataclass(frozen=True)
class Organisation:
    """Vouchers' own copy of what the catalog says about an organisation."""

    id: str
    name: str
    kind: str
    region: str
    headcount: int | None
    annual_revenue: int | None
    revenue_currency: str | None
    registered_on: date | None


@dataclass(frozen=True)
class RuleCheck:
    rule: str
    passed: bool
    detail: str


def _in_region(region: str, allowed: tuple[str, ...]) -> bool:
    parts = [p for p in region.split("/") if p]
    for a in allowed:
        want = [p for p in a.split("/") if p]
        if want and parts[: len(want)] == want:
            return True
    return False


def evaluate_eligibility(programme: Programme, org: Organisation | None, *, amount: int,
                         issued_this_year: int, now: datetime) -> list[RuleCheck]:
    """Every rule of the programme, each passed or failed with the reason, in a fixed order."""
    rules = programme.terms.eligibility
    checks: list[RuleCheck] = []
    if org is None:
        checks.append(RuleCheck("organisation_registered", False,
                                "the organisation is not in the registry yet; register it in the catalog first"))
    else:
        checks.append(RuleCheck("organisation_registered", True, f"{org.name} is registered"))
        if rules.org_kinds:
            ok = org.kind in rules.org_kinds
            checks.append(RuleCheck("organisation_kind", ok,
                                    f"kind {org.kind} {'is' if ok else 'is not'} one of {', '.join(rules.org_kinds)}"))
        if rules.max_headcount is not None:
            if org.headcount is None:
                checks.append(RuleCheck("headcount", False, "headcount is not on record"))
            else:
                ok = org.headcount <= rules.max_headcount
                checks.append(RuleCheck("headcount", ok, f"headcount {org.headcount} "
                                        f"{'<=' if ok else '>'} {rules.max_headcount}"))
        if rules.max_annual_revenue is not None:
            if org.annual_revenue is None:
                checks.append(RuleCheck("annual_revenue", False, "annual revenue is not on record"))
            elif org.revenue_currency != programme.currency:
                checks.append(RuleCheck("annual_revenue", False,
                                        f"revenue is recorded in {org.revenue_currency}, the programme counts in "
                                        f"{programme.currency}"))
            else:
                ok = org.annual_revenue <= rules.max_annual_revenue
                checks.append(RuleCheck("annual_revenue", ok, f"annual revenue {org.annual_revenue} "
                                        f"{'<=' if ok else '>'} {rules.max_annual_revenue}"))
        if rules.regions:
            ok = _in_region(org.region or "", rules.regions)
            checks.append(RuleCheck("region", ok, f"region {org.region or '(none)'} "
                                    f"{'is' if ok else 'is not'} within {', '.join(rules.regions)}"))
        if rules.min_registration_age_days is not None:
            if org.registered_on is None:
                checks.append(RuleCheck("registration_age", False, "registration date is not on record"))
            else:
                age = (now.date() - org.registered_on).days
                ok = age >= rules.min_registration_age_days
                checks.append(RuleCheck("registration_age", ok, f"registered {age} days ago, "
                                        f"{'at least' if ok else 'fewer than'} {rules.min_registration_age_days}"))
    quota = programme.terms.annual_quota
    ok = issued_this_year + amount <= quota
    checks.append(RuleCheck("annual_quota", ok, f"{issued_this_year} already issued this year + {amount} requested "
                            f"{'<=' if ok else '>'} quota {quota}"))
    return checks


# --- applications ---------------------------------------------------------------------------

class ApplicationState(StrEnum):
    SUBMITTED = "submitted"          # waiting for the first review
    PARTLY_APPROVED = "partly_approved"  # first level approved, second level pending
    APPROVED = "approved"            # voucher issued
    REJECTED = "rejected"
    INELIGIBLE = "ineligible"        # refused automatically: a rule failed


@dataclass(frozen=True)
class Review:
    level: int
    reviewer: str
    decision: str  # approve | reject
    reason: str
    at: datetime


@dataclass
class Application:
    id: str
    programme_id: str
    enterprise_org_id: str
    amount: int
    currency: str
    purpose: str
    state: ApplicationState
    checks: list[RuleCheck]
    submitted_by: str
    submitted_at: datetime
    reviews: list[Review] = field(default_factory=list)
    voucher_id: str | None = None
    decided_at: datetime | None = None


def submit_application(programme: Programme, org_id: str, org: Organisation | None, *, amount: int,
                       purpose: str, issued_this_year: int, now: datetime, actor: str,
                       application_id: str | None = None) -> Application:
    if not programme.accepts_applications(now):
        raise refused("applications_closed", f"programme {programme.id} does not accept applications now "
                      f"(state {programme.state}, window {programme.terms.applications_open_at.isoformat()} to "
                      f"{programme.terms.applications_close_at.isoformat()})")
    if amount not in programme.terms.face_values:
        raise invalid("body.face_value.amount", f"one of the programme's face values {list(programme.terms.face_values)}")
    checks = evaluate_eligibility(programme, org, amount=amount, issued_this_year=issued_this_year, now=now)
    state = ApplicationState.SUBMITTED if all(c.passed for c in checks) else ApplicationState.INELIGIBLE
    return Application(
        id=application_id or new_id(), programme_id=programme.id, enterprise_org_id=org_id, amount=amount,
        currency=programme.currency, purpose=purpose, state=state, checks=checks, submitted_by=actor,
        submitted_at=now, decided_at=now if state is ApplicationState.INELIGIBLE else None,
    )


def review_application(app: Application, programme: Programme, *, reviewer: str, approve: bool, reason: str,
                       now: datetime) -> Application:
    """One review step. Returns the application; state APPROVED means: issue the voucher now."""
    if app.state not in (ApplicationState.SUBMITTED, ApplicationState.PARTLY_APPROVED):
        raise refused("application_decided", f"application {app.id} is {app.state}; only a submitted application "
                      "is reviewed")
    level = 1 if app.state is ApplicationState.SUBMITTED else 2
    if level == 2 and any(r.reviewer == reviewer for r in app.reviews):
        raise Forbidden("the second review must be made by another reviewer than the first", code="same_reviewer")
    if not approve and not reason.strip():
        raise invalid("body.reason", "a rejection states its reason")
    reviews = [*app.reviews, Review(level, reviewer, "approve" if approve else "reject", reason, now)]
    if not approve:
        return replace(app, state=ApplicationState.REJECTED, reviews=reviews, decided_at=now)
    if level < programme.terms.review_levels:
        return replace(app, state=ApplicationState.PARTLY_APPROVED, reviews=reviews)
    return replace(app, state=ApplicationState.APPROVED, reviews=reviews, decided_at=now)


# --- vouchers ------------------------------------------------------------------------------

class VoucherState(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass
class Voucher:
    id: str
    programme_id: str
    application_id: str | None
    enterprise_org_id: str
    face_value: int
    currency: str
    state: VoucherState
    issued_at: datetime
    expires_at: datetime
    reminded_at: datetime | None = None
    note: str = ""
    remind_at: datetime | None = None

    def is_past_validity(self, now: datetime) -> bool:
        return now >= self.expires_at


def issue_voucher(programme: Programme, app: Application, *, unissued: int, issued_this_year: int,
                  now: datetime, actor: str, voucher_id: str | None = None) -> tuple[Voucher, JournalEntry]:
    """Issue the approved application's voucher from the unissued budget (chained on the programme,
    so the programme's own chain lists every voucher it ever issued)."""
    if app.state is not ApplicationState.APPROVED:
        raise refused("application_not_approved", f"application {app.id} is {app.state}")
    if programme.state is not ProgrammeState.OPEN:
        raise refused("programme_closed", f"programme {programme.id} is closed; no more vouchers are issued")
    if issued_this_year + app.amount > programme.terms.annual_quota:
        raise refused("annual_quota_exceeded", f"enterprise {app.enterprise_org_id} already received "
                      f"{issued_this_year} this year; {app.amount} more exceeds the quota {programme.terms.annual_quota}")
    if unissued < app.amount:
        raise refused("budget_exhausted", f"programme {programme.id} has {unissued} left, the voucher needs {app.amount}")
    v = Voucher(
        id=voucher_id or new_id(), programme_id=programme.id, application_id=app.id,
        enterprise_org_id=app.enterprise_org_id, face_value=app.amount, currency=programme.currency,
        state=VoucherState.ACTIVE, issued_at=now, expires_at=now + timedelta(days=programme.terms.validity_days),
    )
    if programme.terms.reminder_days > 0:
        v.remind_at = v.expires_at - timedelta(days=programme.terms.reminder_days)
    entry = _entry(EntryKind.ISSUE, chain=programme.id, programme=programme, now=now, actor=actor, voucher_id=v.id,
                   postings=_move(programme_account(programme.id, AccountKind.UNISSUED),
                                  voucher_account(programme.id, v.id, AccountKind.AVAILABLE), app.amount))
    return v, entry


def freeze(v: Voucher, *, reason: str) -> Voucher:
    if v.state is not VoucherState.ACTIVE:
        raise refused("voucher_not_active", f"voucher {v.id} is {v.state}; only an active voucher is frozen")
    return replace(v, state=VoucherState.FROZEN, note=reason)


def unfreeze(v: Voucher, *, now: datetime) -> Voucher:
    if v.state is not VoucherState.FROZEN:
        raise refused("voucher_not_frozen", f"voucher {v.id} is {v.state}; only a frozen voucher is unfrozen")
    if v.is_past_validity(now):
        raise refused("voucher_expired", f"voucher {v.id} is past its validity; it expires instead")
    return replace(v, state=VoucherState.ACTIVE, note="")


def needs_reminder(v: Voucher, programme: Programme, now: datetime) -> bool:
    return (v.state in (VoucherState.ACTIVE, VoucherState.FROZEN) and v.reminded_at is None
            and v.remind_at is not None and v.remind_at <= now < v.expires_at)


def end_voucher(v: Voucher, programme: Programme, *, available: int, revoke: bool, reason: str, now: datetime,
                actor: str) -> tuple[Voucher, JournalEntry | None]:
    """Expire or revoke: the voucher's available value leaves it (open reservations must have been
    released first). Expiry follows the programme's unspent policy; revocation always goes to the
    programme's revoked account, where an auditor sees it."""
    if revoke:
        if v.state not in (VoucherState.ACTIVE, VoucherState.FROZEN):
            raise refused("voucher_ended", f"voucher {v.id} is {v.state}; it cannot be revoked")
        new_state, kind = VoucherState.REVOKED, EntryKind.REVOKE
        target = programme_account(programme.id, AccountKind.REVOKED)
    else:
        if v.state not in (VoucherState.ACTIVE, VoucherState.FROZEN):
            raise refused("voucher_ended", f"voucher {v.id} is {v.state}; it cannot expire")
        if not v.is_past_validity(now):
            raise refused("voucher_still_valid", f"voucher {v.id} is valid until {v.expires_at.isoformat()}")
        new_state, kind = VoucherState.EXPIRED, EntryKind.EXPIRE
        target = programme_account(programme.id, AccountKind.EXPIRED
                                   if programme.terms.unspent_policy is UnspentPolicy.LAPSE else AccountKind.UNISSUED)
    entry = None
    if available > 0:
        entry = _entry(kind, chain=v.id, programme=programme, now=now, actor=actor, voucher_id=v.id, memo=reason,
                       postings=_move(voucher_account(programme.id, v.id, AccountKind.AVAILABLE), target, available))
    return replace(v, state=new_state, note=reason), entry


# --- agencies ------------------------------------------------------------------------------

class EnrolmentState(StrEnum):
    APPLIED = "applied"
    APPROVED = "approved"
    SUSPENDED = "suspended"
    REMOVED = "removed"
    REJECTED = "rejected"


@dataclass
class Enrolment:
    programme_id: str
    agency_org_id: str
    categories: tuple[str, ...]
    state: EnrolmentState
    applied_at: datetime
    updated_at: datetime
    reason: str = ""


AGENCY_TRANSITIONS: dict[str, tuple[set[EnrolmentState], EnrolmentState]] = {
    "approve": ({EnrolmentState.APPLIED, EnrolmentState.SUSPENDED}, EnrolmentState.APPROVED),
    "reject": ({EnrolmentState.APPLIED}, EnrolmentState.REJECTED),
    "suspend": ({EnrolmentState.APPROVED}, EnrolmentState.SUSPENDED),
    "remove": ({EnrolmentState.APPLIED, EnrolmentState.APPROVED, EnrolmentState.SUSPENDED}, EnrolmentState.REMOVED),
}


def apply_as_agency(programme: Programme, agency_org_id: str, categories: tuple[str, ...], existing: Enrolment | None,
                    *, now: datetime) -> Enrolment:
    if programme.state is not ProgrammeState.OPEN:
        raise refused("programme_closed", f"programme {programme.id} is closed")
    unknown = sorted(set(categories) - set(programme.terms.categories))
    if not categories or unknown:
        raise invalid("body.categories", f"categories must be among the programme's {list(programme.terms.categories)}"
                      + (f"; unknown: {unknown}" if unknown else ""))
    if existing is not None and existing.state in (EnrolmentState.APPROVED, EnrolmentState.SUSPENDED,
                                                   EnrolmentState.REMOVED):
        raise refused("agency_already_enrolled", f"agency {agency_org_id} is {existing.state} in this programme")
    return Enrolment(programme.id, agency_org_id, tuple(sorted(set(categories))), EnrolmentState.APPLIED,
                     existing.applied_at if existing else now, now)


def decide_enrolment(e: Enrolment, action: str, *, reason: str, now: datetime) -> Enrolment:
    allowed, target = AGENCY_TRANSITIONS[action]
    if e.state not in allowed:
        raise refused("agency_transition_refused", f"agency {e.agency_org_id} is {e.state}; cannot {action}")
    return replace(e, state=target, reason=reason, updated_at=now)


# --- redemptions ---------------------------------------------------------------------------

class RedemptionState(StrEnum):
    RESERVED = "reserved"
    SETTLED = "settled"
    PAID = "paid"
    VOIDED = "voided"


@dataclass
class Redemption:
    id: str
    programme_id: str
    voucher_id: str
    agency_org_id: str
    enterprise_org_id: str
    amount: int
    currency: str
    invoice_amount: int
    invoice_ref: str
    category: str
    transfer_id: str | None
    state: RedemptionState
    requested_by: str
    created_at: datetime
    settled_by: str | None = None
    settled_at: datetime | None = None
    voided_reason: str | None = None
    voided_at: datetime | None = None
    paid_at: datetime | None = None
    payout_ref: str | None = None
    clawed_back: int = 0
    payout_batch_id: str | None = None  # set when paid out as part of a payout batch

    @property
    def net_settled(self) -> int:
        return self.amount - self.clawed_back if self.state in (RedemptionState.SETTLED, RedemptionState.PAID) else 0


@dataclass(frozen=True)
class RedemptionRequest:
    voucher_id: str
    enterprise_org_id: str
    amount: int
    currency: str
    invoice_amount: int
    invoice_ref: str
    category: str
    transfer_id: str | None = None


def check_voucher_spendable(v: Voucher, now: datetime) -> None:
    if v.state is VoucherState.FROZEN:
        raise refused("voucher_frozen", f"voucher {v.id} is frozen")
    if v.state is VoucherState.REVOKED:
        raise refused("voucher_revoked", f"voucher {v.id} was revoked")
    if v.state is VoucherState.EXPIRED or v.is_past_validity(now):
        raise refused("voucher_expired", f"voucher {v.id} expired at {v.expires_at.isoformat()}")


def reserve(v: Voucher, programme: Programme, enrolment: Enrolment | None, req: RedemptionRequest, *,
            available: int, invoice_already_covered: int, now: datetime, actor: str, agency_org_id: str,
            redemption_id: str | None = None) -> tuple[Redemption, JournalEntry]:
    """Phase one: hold `amount` of the voucher for an agency's invoice."""
    if req.enterprise_org_id != v.enterprise_org_id:
        raise refused("voucher_of_another_enterprise",
                      f"voucher {v.id} belongs to another enterprise than {req.enterprise_org_id}")
    if enrolment is None or enrolment.state is not EnrolmentState.APPROVED:
        state = enrolment.state if enrolment else "not registered"
        raise refused("agency_not_approved", f"agency {agency_org_id} is {state} in programme {programme.id}")
    if req.category not in programme.terms.categories:
        raise refused("category_not_eligible", f"category {req.category} is not eligible in programme {programme.id}")
    if req.category not in enrolment.categories:
        raise refused("agency_not_approved_for_category",
                      f"agency {agency_org_id} is not approved for category {req.category}")
    if req.currency != programme.currency:
        raise invalid("body.amount.currency", f"the programme pays in {programme.currency}")
    if req.amount <= 0:
        raise invalid("body.amount.amount", "a redemption covers a positive amount")
    if req.invoice_amount <= 0:
        raise invalid("body.invoice_amount.amount", "the invoice amount is positive")
    check_voucher_spendable(v, now)
    cap = programme.share_cap(req.invoice_amount)
    if invoice_already_covered + req.amount > cap:
        raise refused("invoice_share_exceeded",
                      f"a voucher may pay at most {programme.terms.max_share_bp / 100:g}% of invoice "
                      f"{req.invoice_ref} ({cap}); {invoice_already_covered} is already covered, {req.amount} asked")
    if req.amount > available:
        raise refused("insufficient_balance", f"voucher {v.id} has {available} available, {req.amount} asked")
    r = Redemption(
        id=redemption_id or new_id(), programme_id=programme.id, voucher_id=v.id, agency_org_id=agency_org_id,
        enterprise_org_id=v.enterprise_org_id, amount=req.amount, currency=req.currency,
        invoice_amount=req.invoice_amount, invoice_ref=req.invoice_ref, category=req.category,
        transfer_id=req.transfer_id, state=RedemptionState.RESERVED, requested_by=actor, created_at=now,
    )
    entry = _entry(EntryKind.RESERVE, chain=v.id, programme=programme, now=now, actor=actor, voucher_id=v.id,
                   redemption_id=r.id, postings=_move(voucher_account(programme.id, v.id, AccountKind.AVAILABLE),
                                                      voucher_account(programme.id, v.id, AccountKind.RESERVED),
                                                      r.amount))
    return r, entry


def _require_reserved(r: Redemption, action: str) -> None:
    if r.state is RedemptionState.VOIDED:
        raise refused("redemption_voided", f"redemption {r.id} was voided; it cannot be {action}")
    if r.state in (RedemptionState.SETTLED, RedemptionState.PAID):
        raise refused("redemption_settled", f"redemption {r.id} is already {r.state}; it cannot be {action}"
                      + ("; correct it with a claw-back" if action == "voided" else ""))


def settle(r: Redemption, v: Voucher, programme: Programme, *, by: str, now: datetime, actor: str
           ) -> tuple[Redemption, JournalEntry]:
    """Phase two: delivery confirmed; the reserved amount becomes payable to the agency."""
    _require_reserved(r, "settled")
    if v.state is VoucherState.FROZEN:
        raise refused("voucher_frozen", f"voucher {v.id} is frozen; settlement waits until it is unfrozen")
    entry = _entry(EntryKind.SETTLE, chain=v.id, programme=programme, now=now, actor=actor, voucher_id=v.id,
                   redemption_id=r.id, memo=f"confirmed by {by}",
                   postings=_move(voucher_account(programme.id, v.id, AccountKind.RESERVED),
                                  agency_account(programme.id, r.agency_org_id, AccountKind.PAYABLE), r.amount))
    return replace(r, state=RedemptionState.SETTLED, settled_by=by, settled_at=now), entry


def void(r: Redemption, v: Voucher, programme: Programme, *, reason: str, now: datetime, actor: str
         ) -> tuple[Redemption, JournalEntry]:
    """Release a reservation back to the voucher's available value."""
    _require_reserved(r, "voided")
    entry = _entry(EntryKind.VOID, chain=v.id, programme=programme, now=now, actor=actor, voucher_id=v.id,
                   redemption_id=r.id, memo=reason,
                   postings=_move(voucher_account(programme.id, v.id, AccountKind.RESERVED),
                                  voucher_account(programme.id, v.id, AccountKind.AVAILABLE), r.amount))
    return replace(r, state=RedemptionState.VOIDED, voided_reason=reason, voided_at=now), entry


def payout(r: Redemption, programme: Programme, *, reference: str, now: datetime, actor: str
           ) -> tuple[Redemption, JournalEntry | None]:
    if r.state is not RedemptionState.SETTLED:
        raise refused("redemption_not_settled" if r.state is not RedemptionState.PAID else "redemption_paid",
                      f"redemption {r.id} is {r.state}; only a settled redemption is paid out")
    due = r.amount - r.clawed_back
    entry = None
    if due > 0:
        entry = _entry(EntryKind.PAYOUT, chain=r.voucher_id, programme=programme, now=now, actor=actor,
                       voucher_id=r.voucher_id, redemption_id=r.id, memo=reference,
                       postings=_move(agency_account(programme.id, r.agency_org_id, AccountKind.PAYABLE),
                                      agency_account(programme.id, r.agency_org_id, AccountKind.PAID), due))
    return replace(r, state=RedemptionState.PAID, paid_at=now, payout_ref=reference), entry


def clawback(r: Redemption, programme: Programme, *, amount: int, reason: str, settle_entry_id: str | None,
             now: datetime, actor: str) -> tuple[Redemption, JournalEntry]:
    """Reverse (part of) a wrong settlement: the agency's payable (or, once paid, the recovered
    payment) goes back to the programme's unissued budget. A new entry; nothing is edited."""
    if r.state not in (RedemptionState.SETTLED, RedemptionState.PAID):
        raise refused("redemption_not_settled", f"redemption {r.id} is {r.state}; only settled amounts are clawed back")
    if not reason.strip():
        raise invalid("body.reason", "a claw-back states its reason")
    if amount <= 0:
        raise invalid("body.amount.amount", "a claw-back is a positive amount")
    left = r.amount - r.clawed_back
    if amount > left:
        raise refused("clawback_exceeds_settled", f"redemption {r.id} has {left} settled left; {amount} asked")
    source = AccountKind.PAYABLE if r.state is RedemptionState.SETTLED else AccountKind.PAID
    entry = _entry(EntryKind.CLAWBACK, chain=r.voucher_id, programme=programme, now=now, actor=actor,
                   voucher_id=r.voucher_id, redemption_id=r.id, reverses=settle_entry_id, memo=reason,
                   postings=_move(agency_account(programme.id, r.agency_org_id, source),
                                  programme_account(programme.id, AccountKind.UNISSUED), amount))
    return replace(r, clawed_back=r.clawed_back + amount), entry


# --- payout batches ------------------------------------------------------------------------

@dataclass(frozen=True)
class PayoutTotal:
    programme_id: str
    currency: str
    amount: int  # what this batch paid, net of claw-backs before payment
    count: int


@dataclass(frozen=True)
class PayoutBatch:
    """One payment order to an agency covering all its settled, unpaid redemptions that match
    the filters. Each redemption is paid by its own journal entry (payable -> paid, on its
    voucher's chain), so the voucher and agency statements show every fen; the batch lists them
    and their totals for reconciliation with the agency's bank statement."""

    id: str
    agency_org_id: str
    reference: str
    programme_id: str | None  # filter: only this programme
    settled_before: datetime | None  # filter: only redemptions settled before this time
    totals: tuple[PayoutTotal, ...]
    count: int
    created_by: str
    created_at: datetime
    note: str = ""


def payout_batch(agency_org_id: str, settled: list[Redemption], programmes: dict[str, Programme], *,
                 reference: str, programme_id: str | None, settled_before: datetime | None, note: str,
                 now: datetime, actor: str, batch_id: str | None = None
                 ) -> tuple[PayoutBatch, list[tuple[Redemption, JournalEntry | None]]]:
    """Pay out every given redemption (each must be the agency's and settled). A redemption
    clawed back in full is marked paid without moving money, as a single payout would."""
    if not reference.strip():
        raise invalid("body.reference", "the payment order reference is required")
    if settled_before is not None and settled_before > now:
        raise invalid("body.settled_before", "cannot be in the future")
    if not settled:
        raise refused("nothing_to_pay", f"agency {agency_org_id} has no settled, unpaid redemption "
                      "matching the request")
    bid = batch_id or new_id()
    paid: list[tuple[Redemption, JournalEntry | None]] = []
    sums: dict[str, list[int]] = {}
    for r in sorted(settled, key=lambda x: (x.settled_at or x.created_at, x.id)):
        if r.agency_org_id != agency_org_id:
            raise ValueError(f"redemption {r.id} belongs to another agency")
        done, entry = payout(r, programmes[r.programme_id], reference=reference, now=now, actor=actor)
        paid.append((replace(done, payout_batch_id=bid), entry))
        s = sums.setdefault(r.programme_id, [0, 0])
        s[0] += entry.amount if entry is not None else 0
        s[1] += 1
    totals = tuple(PayoutTotal(pid, programmes[pid].currency, a, n) for pid, (a, n) in sorted(sums.items()))
    batch = PayoutBatch(bid, agency_org_id, reference, programme_id, settled_before, totals, len(paid), actor, now,
                        note)
    return batch, paid
