"""Every query the vouchers service makes, on one session (one unit of work).

Read-modify-write paths lock the aggregate row first (`SELECT ... FOR UPDATE` on PostgreSQL;
SQLite serialises writers with BEGIN IMMEDIATE), and money leaves an account only through a
conditional UPDATE that refuses to take it below zero, so even a wrong decision upstream cannot
overspend: the database is the last guard.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, case, func, insert, literal, literal_column, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain import model as m
from ..domain.ledger import (
    GENESIS,
    Account,
    AccountKind,
    EntryKind,
    InsufficientBalance,
    JournalEntry,
    voucher_account,
    StoredAccount,
    StoredEntry,
    entry_hash,
    hash_fields,
    iso,
)
from .tables import (
    account_credits,
    accounts,
    applications,
    enrolments,
    journal,
    organisations,
    payout_batches,
    postings,
    programmes,
    redemptions,
    transfers,
    vouchers,
)

#: Account kinds whose credits on the PostgreSQL hot path go to sub-balances (`account_credits`):
#: an agency's payable account, which every settlement of the agency credits.
CREDIT_SHARDED = frozenset({AccountKind.PAYABLE})

#: What an account's sub-balances add to its row's balance (0 where it has none).
_CREDITS = func.coalesce(
    select(func.sum(account_credits.c.amount)).where(account_credits.c.account_id == accounts.c.id)
    .correlate(accounts).scalar_subquery(), 0)

PROGRAMME_CHAIN = frozenset({EntryKind.OPEN, EntryKind.TOP_UP, EntryKind.ISSUE})


@dataclass(frozen=True)
class ReservationContext:
    """What a reservation decides on, read while its voucher is locked."""

    voucher: m.Voucher
    enrolment: m.Enrolment | None
    available: int
    invoice_covered: int  # what the agency's live redemptions of the invoice already cover
    invoice_amounts: set[int]  # the invoice totals those redemptions gave
    transfer: tuple[str, str | None] | None  # (status, buyer) of the linked transfer, if known


def _year_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = now.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, start.replace(year=start.year + 1)


# --- row mapping --------------------------------------------------------------------------

def programme_from_row(r) -> m.Programme:
    e = r.eligibility or {}
    terms = m.ProgrammeTerms(
        name=r.name, description=r.description, currency=r.currency, face_values=tuple(r.face_values),
        max_share_bp=r.max_share_bp, annual_quota=r.annual_quota, categories=tuple(r.categories),
        eligibility=m.EligibilityRules(
            org_kinds=tuple(e.get("org_kinds", ("enterprise",))), max_headcount=e.get("max_headcount"),
            max_annual_revenue=e.get("max_annual_revenue"), regions=tuple(e.get("regions", ())),
            min_registration_age_days=e.get("min_registration_age_days"),
        ),
        applications_open_at=r.applications_open_at, applications_close_at=r.applications_close_at,
        validity_days=r.validity_days, unspent_policy=m.UnspentPolicy(r.unspent_policy),
        reminder_days=r.reminder_days, review_levels=r.review_levels,
    )
    return m.Programme(r.id, terms, m.ProgrammeState(r.state), r.created_by, r.created_at, r.closed_at,
                       owner_org_id=getattr(r, "owner_org_id", None),
                       reviewer_org_ids=tuple(getattr(r, "reviewer_org_ids", None) or ()))


def voucher_from_row(r) -> m.Voucher:
    return m.Voucher(r.id, r.programme_id, r.application_id, r.enterprise_org_id, r.face_value, r.currency,
                     m.VoucherState(r.state), r.issued_at, r.expires_at, r.reminded_at, r.note, r.remind_at)


def redemption_from_row(r) -> m.Redemption:
    return m.Redemption(
        id=r.id, programme_id=r.programme_id, voucher_id=r.voucher_id, agency_org_id=r.agency_org_id,
        enterprise_org_id=r.enterprise_org_id, amount=r.amount, currency=r.currency, invoice_amount=r.invoice_amount,
        invoice_ref=r.invoice_ref, category=r.category, transfer_id=r.transfer_id,
        state=m.RedemptionState(r.state), requested_by=r.requested_by, created_at=r.created_at,
        settled_by=r.settled_by, settled_at=r.settled_at, voided_reason=r.voided_reason, voided_at=r.voided_at,
        paid_at=r.paid_at, payout_ref=r.payout_ref, clawed_back=r.clawed_back,
        payout_batch_id=getattr(r, "payout_batch_id", None),
    )


def payout_batch_from_row(r) -> m.PayoutBatch:
    return m.PayoutBatch(
        id=r.id, agency_org_id=r.agency_org_id, reference=r.reference, programme_id=r.programme_id,
        settled_before=r.settled_before,
        totals=tuple(m.PayoutTotal(t["programme_id"], t["currency"], t["amount"], t["count"]) for t in r.totals),
        count=r.count, created_by=r.created_by, created_at=r.created_at, note=r.note or "")


def application_from_row(r) -> m.Application:
    return m.Application(
        id=r.id, programme_id=r.programme_id, enterprise_org_id=r.enterprise_org_id, amount=r.amount,
        currency=r.currency, purpose=r.purpose, state=m.ApplicationState(r.state),
        checks=[m.RuleCheck(**c) for c in r.checks],
        submitted_by=r.submitted_by, submitted_at=r.submitted_at,
        reviews=[m.Review(x["level"], x["reviewer"], x["decision"], x["reason"], datetime.fromisoformat(x["at"]))
                 for x in r.reviews],
        voucher_id=r.voucher_id, decided_at=r.decided_at,
    )


def enrolment_from_row(r) -> m.Enrolment:
    return m.Enrolment(r.programme_id, r.agency_org_id, tuple(r.categories), m.EnrolmentState(r.state),
                       r.applied_at, r.updated_at, r.reason)


def organisation_from_row(r) -> m.Organisation:
    return m.Organisation(r.id, r.name, r.kind, r.region or "", r.headcount, r.annual_revenue, r.revenue_currency,
                          r.registered_on)


class Repository:
    def __init__(self, session: AsyncSession):
        self.s = session
        self.dialect = session.bind.dialect.name
        # Chain heads of rows this transaction holds locked (read with the lock, advanced by post()).
        self._heads: dict[str, str] = {}

    def _insert(self, table):
        return (pg_insert if self.dialect == "postgresql" else sqlite_insert)(table)

    async def _one(self, stmt, lock: bool):
        if lock:
            stmt = stmt.with_for_update()
        return (await self.s.execute(stmt)).first()

    # --- programmes
    async def add_programme(self, p: m.Programme) -> None:
        t = p.terms
        await self.s.execute(insert(programmes).values(
            id=p.id, name=t.name, description=t.description, currency=t.currency, state=p.state,
            face_values=list(t.face_values), max_share_bp=t.max_share_bp, annual_quota=t.annual_quota,
            categories=list(t.categories), eligibility={**asdict(t.eligibility),
                                                        "org_kinds": list(t.eligibility.org_kinds),
                                                        "regions": list(t.eligibility.regions)},
            applications_open_at=t.applications_open_at, applications_close_at=t.applications_close_at,
            validity_days=t.validity_days, unspent_policy=t.unspent_policy, reminder_days=t.reminder_days,
            review_levels=t.review_levels, created_by=p.created_by, created_at=p.created_at,
            closed_at=p.closed_at, head_hash=GENESIS, owner_org_id=p.owner_org_id,
            reviewer_org_ids=list(p.reviewer_org_ids),
        ))

    async def programme(self, programme_id: str, *, lock: bool = False) -> m.Programme | None:
        row = await self._one(select(programmes).where(programmes.c.id == programme_id), lock)
        if row and lock:
            self._heads[row.id] = row.head_hash
        return programme_from_row(row) if row else None

    async def save_programme_state(self, p: m.Programme) -> None:
        await self.s.execute(update(programmes).where(programmes.c.id == p.id)
                             .values(state=p.state, closed_at=p.closed_at))

    async def list_programmes(self, *, limit: int, after: tuple[str, str] | None) -> list[m.Programme]:
        q = select(programmes).order_by(programmes.c.created_at.desc(), programmes.c.id.desc())
        if after:
            q = q.where(tuple_(programmes.c.created_at, programmes.c.id) < (datetime.fromisoformat(after[0]), after[1]))
        return [programme_from_row(r) for r in (await self.s.execute(q.limit(limit + 1))).all()]

    # --- organisations read model
    async def organisation(self, org_id: str) -> m.Organisation | None:
        row = await self._one(select(organisations).where(organisations.c.id == org_id), False)
        return organisation_from_row(row) if row else None

    async def upsert_organisation(self, values: dict[str, Any], as_of: datetime) -> bool:
        """Apply a catalog fact unless a newer one was applied already; True if applied."""
        current = (await self.s.execute(select(organisations.c.as_of).where(organisations.c.id == values["id"])
                                        .with_for_update())).scalar()
        if current is None:
            await self.s.execute(insert(organisations).values(**values, as_of=as_of))
            return True
        if current > as_of:
            return False
        await self.s.execute(update(organisations).where(organisations.c.id == values["id"])
                             .values(**values, as_of=as_of))
        return True

    # --- transfers read model
    async def transfer_status(self, transfer_id: str) -> tuple[str, str | None] | None:
        row = (await self.s.execute(select(transfers.c.status, transfers.c.buyer_org_id)
                                    .where(transfers.c.id == transfer_id))).first()
        return (row.status, row.buyer_org_id) if row else None

    async def record_transfer(self, transfer_id: str, status: str, buyer: str | None, seller: str | None,
                              as_of: datetime) -> None:
        stmt = self._insert(transfers).values(id=transfer_id, status=status, buyer_org_id=buyer, seller_org_id=seller,
                                              as_of=as_of)
        # A completed or cancelled transfer stays so; otherwise the newest fact wins.
        await self.s.execute(stmt.on_conflict_do_update(
            index_elements=[transfers.c.id],
            set_={"status": status, "buyer_org_id": buyer, "seller_org_id": seller, "as_of": as_of},
            where=transfers.c.status.notin_(("completed", "cancelled")),
        ))

    # --- enrolments
    async def enrolment(self, programme_id: str, agency_org_id: str, *, lock: bool = False) -> m.Enrolment | None:
        row = await self._one(select(enrolments).where(and_(enrolments.c.programme_id == programme_id,
                                                            enrolments.c.agency_org_id == agency_org_id)), lock)
        return enrolment_from_row(row) if row else None

    async def save_enrolment(self, e: m.Enrolment, *, new: bool) -> None:
        values = dict(categories=list(e.categories), state=e.state, reason=e.reason, applied_at=e.applied_at,
                      updated_at=e.updated_at)
        if new:
            await self.s.execute(insert(enrolments).values(programme_id=e.programme_id,
                                                           agency_org_id=e.agency_org_id, **values))
        else:
            await self.s.execute(update(enrolments).where(and_(
                enrolments.c.programme_id == e.programme_id, enrolments.c.agency_org_id == e.agency_org_id))
                .values(**values))

    async def list_enrolments(self, programme_id: str, *, agency_org_id: str | None = None) -> list[m.Enrolment]:
        q = select(enrolments).where(enrolments.c.programme_id == programme_id)
        if agency_org_id:
            q = q.where(enrolments.c.agency_org_id == agency_org_id)
        return [enrolment_from_row(r) for r in (await self.s.execute(q.order_by(enrolments.c.applied_at))).all()]

    # --- applications
    def _application_values(self, a: m.Application) -> dict[str, Any]:
        return dict(
            state=a.state, checks=[asdict(c) for c in a.checks],
            reviews=[{**asdict(r), "at": r.at.isoformat()} for r in a.reviews],
            voucher_id=a.voucher_id, decided_at=a.decided_at,
        )

    async def add_application(self, a: m.Application) -> None:
        await self.s.execute(insert(applications).values(
            id=a.id, programme_id=a.programme_id, enterprise_org_id=a.enterprise_org_id, amount=a.amount,
            currency=a.currency, purpose=a.purpose, submitted_by=a.submitted_by, submitted_at=a.submitted_at,
            **self._application_values(a)))

    async def save_application(self, a: m.Application) -> None:
        await self.s.execute(update(applications).where(applications.c.id == a.id)
                             .values(**self._application_values(a)))

    async def application(self, application_id: str, *, lock: bool = False) -> m.Application | None:
        row = await self._one(select(applications).where(applications.c.id == application_id), lock)
        return application_from_row(row) if row else None

    async def list_applications(self, *, programme_id: str | None, enterprise_org_id: str | None, state: str | None,
                                limit: int, after: tuple[str, str] | None) -> list[m.Application]:
        q = select(applications).order_by(applications.c.submitted_at.desc(), applications.c.id.desc())
        if programme_id:
            q = q.where(applications.c.programme_id == programme_id)
        if enterprise_org_id:
            q = q.where(applications.c.enterprise_org_id == enterprise_org_id)
        if state:
            q = q.where(applications.c.state == state)
        if after:
            q = q.where(tuple_(applications.c.submitted_at, applications.c.id)
                        < (datetime.fromisoformat(after[0]), after[1]))
        return [application_from_row(r) for r in (await self.s.execute(q.limit(limit + 1))).all()]

    async def issued_this_year(self, programme_id: str, enterprise_org_id: str, now: datetime) -> int:
        start, end = _year_bounds(now)
        q = select(func.coalesce(func.sum(vouchers.c.face_value), 0)).where(and_(
            vouchers.c.programme_id == programme_id, vouchers.c.enterprise_org_id == enterprise_org_id,
            vouchers.c.issued_at >= start, vouchers.c.issued_at < end))
        return int((await self.s.execute(q)).scalar() or 0)

    # --- vouchers
    async def add_voucher(self, v: m.Voucher) -> None:
        await self.s.execute(insert(vouchers).values(
            id=v.id, programme_id=v.programme_id, application_id=v.application_id,
            enterprise_org_id=v.enterprise_org_id, face_value=v.face_value, currency=v.currency, state=v.state,
            issued_at=v.issued_at, expires_at=v.expires_at, reminded_at=v.reminded_at, note=v.note, remind_at=v.remind_at,
            head_hash=GENESIS))

    async def voucher(self, voucher_id: str, *, lock: bool = False) -> m.Voucher | None:
        row = await self._one(select(vouchers).where(vouchers.c.id == voucher_id), lock)
        if row and lock:
            self._heads[row.id] = row.head_hash
        return voucher_from_row(row) if row else None

    async def save_voucher(self, v: m.Voucher) -> None:
        await self.s.execute(update(vouchers).where(vouchers.c.id == v.id)
                             .values(state=v.state, note=v.note, reminded_at=v.reminded_at))

    async def list_vouchers(self, *, programme_id: str | None, enterprise_org_id: str | None, state: str | None,
                            limit: int, after: tuple[str, str] | None) -> list[m.Voucher]:
        q = select(vouchers).order_by(vouchers.c.issued_at.desc(), vouchers.c.id.desc())
        if programme_id:
            q = q.where(vouchers.c.programme_id == programme_id)
        if enterprise_org_id:
            q = q.where(vouchers.c.enterprise_org_id == enterprise_org_id)
        if state:
            q = q.where(vouchers.c.state == state)
        if after:
            q = q.where(tuple_(vouchers.c.issued_at, vouchers.c.id) < (datetime.fromisoformat(after[0]), after[1]))
        return [voucher_from_row(r) for r in (await self.s.execute(q.limit(limit + 1))).all()]

    async def vouchers_due(self, now: datetime, limit: int) -> list[str]:
        """Ids of live vouchers past validity, or whose expiring-soon reminder is due."""
        q = (select(vouchers.c.id).where(and_(vouchers.c.state.in_((m.VoucherState.ACTIVE, m.VoucherState.FROZEN)),
                                              or_(vouchers.c.expires_at <= now,
                                                  and_(vouchers.c.reminded_at.is_(None),
                                                       vouchers.c.remind_at <= now))))
             .order_by(vouchers.c.expires_at, vouchers.c.id).limit(limit))
        return list((await self.s.execute(q)).scalars())

    # --- redemptions
    async def add_redemption(self, r: m.Redemption) -> None:
        await self.s.execute(insert(redemptions).values(
            id=r.id, programme_id=r.programme_id, voucher_id=r.voucher_id, agency_org_id=r.agency_org_id,
            enterprise_org_id=r.enterprise_org_id, amount=r.amount, currency=r.currency,
            invoice_amount=r.invoice_amount, invoice_ref=r.invoice_ref, category=r.category,
            transfer_id=r.transfer_id, state=r.state, requested_by=r.requested_by, created_at=r.created_at,
            clawed_back=0, payout_batch_id=r.payout_batch_id))

    async def save_redemption(self, r: m.Redemption, *, settle_entry_id: str | None = None) -> None:
        values = dict(state=r.state, settled_by=r.settled_by, settled_at=r.settled_at, voided_reason=r.voided_reason,
                      voided_at=r.voided_at, paid_at=r.paid_at, payout_ref=r.payout_ref, clawed_back=r.clawed_back,
                      payout_batch_id=r.payout_batch_id)
        if settle_entry_id:
            values["settle_entry_id"] = settle_entry_id
        await self.s.execute(update(redemptions).where(redemptions.c.id == r.id).values(**values))

    async def redemption(self, redemption_id: str) -> m.Redemption | None:
        row = await self._one(select(redemptions).where(redemptions.c.id == redemption_id), False)
        return redemption_from_row(row) if row else None

    async def settle_entry_id(self, redemption_id: str) -> str | None:
        return (await self.s.execute(select(redemptions.c.settle_entry_id)
                                     .where(redemptions.c.id == redemption_id))).scalar()

    async def reserved_redemptions(self, *, voucher_id: str | None = None, transfer_id: str | None = None
                                   ) -> list[m.Redemption]:
        q = select(redemptions).where(redemptions.c.state == m.RedemptionState.RESERVED)
        if voucher_id:
            q = q.where(redemptions.c.voucher_id == voucher_id)
        if transfer_id:
            q = q.where(redemptions.c.transfer_id == transfer_id)
        return [redemption_from_row(r) for r in (await self.s.execute(q.order_by(redemptions.c.id))).all()]

    async def redemption_context(self, *, programme_id: str, agency_org_id: str, available_account: str,
                                 invoice_ref: str) -> tuple[m.Enrolment | None, int, tuple[int, set[int]]]:
        """What a reservation decides on, in one round trip: the agency's enrolment, the voucher's
        available balance, and what live redemptions already cover of the invoice."""
        enrol = select(enrolments).where(and_(enrolments.c.programme_id == programme_id,
                                              enrolments.c.agency_org_id == agency_org_id)).subquery()
        bal = select(accounts.c.balance).where(accounts.c.id == available_account).scalar_subquery()
        inv = select(redemptions.c.amount, redemptions.c.clawed_back, redemptions.c.invoice_amount).where(and_(
            redemptions.c.agency_org_id == agency_org_id, redemptions.c.invoice_ref == invoice_ref,
            redemptions.c.state != m.RedemptionState.VOIDED)).subquery()
        q = (select(enrol, bal.label("available"), inv.c.amount.label("inv_amount"), inv.c.clawed_back.label("inv_cb"),
                    inv.c.invoice_amount.label("inv_total"))
             .select_from(select(literal(1).label("one")).subquery().outerjoin(enrol, literal(True))
                          .outerjoin(inv, literal(True))))
        rows = (await self.s.execute(q)).all()
        first = rows[0]
        enrolment = enrolment_from_row(first) if first.programme_id is not None else None
        covered = sum(r.inv_amount - r.inv_cb for r in rows if r.inv_amount is not None)
        totals = {r.inv_total for r in rows if r.inv_total is not None}
        return enrolment, int(first.available or 0), (covered, totals)

    async def reservation_context(self, *, voucher_id: str, agency_org_id: str, invoice_ref: str,
                                  transfer_id: str | None) -> ReservationContext | None:
        """Lock the voucher, then read what a reservation decides on (None: no such voucher)."""
        v = await self.voucher(voucher_id, lock=True)
        if v is None:
            return None
        transfer = await self.transfer_status(transfer_id) if transfer_id else None
        enrolment, available, (covered, amounts) = await self.redemption_context(
            programme_id=v.programme_id, agency_org_id=agency_org_id, invoice_ref=invoice_ref,
            available_account=voucher_account(v.programme_id, v.id, AccountKind.AVAILABLE).id)
        return ReservationContext(v, enrolment, available, covered, amounts, transfer)

    async def lock_redemption(self, redemption_id: str) -> tuple[m.Redemption, m.Voucher] | None:
        """Lock the redemption's voucher, then read the redemption again under that lock."""
        r = await self.redemption(redemption_id)
        if r is None:
            return None
        v = await self.voucher(r.voucher_id, lock=True)
        return await self.redemption(redemption_id), v

    async def payable_redemptions(self, agency_org_id: str, *, programme_id: str | None = None,
                                  settled_before: datetime | None = None, ids: Sequence[str] | None = None
                                  ) -> list[m.Redemption]:
        """The agency's settled, unpaid redemptions (optionally of one programme, settled before a
        time, or among given ids), oldest settlement first."""
        # The state as a literal: ix_redemptions_settled is partial on it (0007).
        q = select(redemptions).where(and_(redemptions.c.agency_org_id == agency_org_id,
                                           redemptions.c.state == literal_column(f"'{m.RedemptionState.SETTLED.value}'")))
        if programme_id:
            q = q.where(redemptions.c.programme_id == programme_id)
        if settled_before is not None:
            q = q.where(redemptions.c.settled_at < settled_before)
        if ids is not None:
            q = q.where(redemptions.c.id.in_(list(ids)))
        rows = (await self.s.execute(q.order_by(redemptions.c.settled_at, redemptions.c.id))).all()
        return [redemption_from_row(r) for r in rows]

    async def lock_vouchers(self, voucher_ids: Iterable[str]) -> dict[str, m.Voucher]:
        """Lock several vouchers in id order (so two such transactions cannot deadlock)."""
        ids = sorted(set(voucher_ids))
        if not ids:
            return {}
        q = select(vouchers).where(vouchers.c.id.in_(ids)).order_by(vouchers.c.id)
        if self.dialect == "postgresql":
            q = q.with_for_update()
        rows = (await self.s.execute(q)).all()
        for row in rows:
            self._heads[row.id] = row.head_hash
        return {row.id: voucher_from_row(row) for row in rows}

    # --- payout batches
    async def add_payout_batch(self, b: m.PayoutBatch) -> None:
        await self.s.execute(insert(payout_batches).values(
            id=b.id, agency_org_id=b.agency_org_id, programme_id=b.programme_id, settled_before=b.settled_before,
            reference=b.reference, count=b.count, totals=[asdict(t) for t in b.totals], created_by=b.created_by,
            created_at=b.created_at, note=b.note))

    async def payout_batch(self, batch_id: str) -> m.PayoutBatch | None:
        row = (await self.s.execute(select(payout_batches).where(payout_batches.c.id == batch_id))).first()
        return payout_batch_from_row(row) if row else None

    async def list_payout_batches(self, agency_org_id: str, *, limit: int, after: tuple[str, str] | None
                                  ) -> list[m.PayoutBatch]:
        q = (select(payout_batches).where(payout_batches.c.agency_org_id == agency_org_id)
             .order_by(payout_batches.c.created_at.desc(), payout_batches.c.id.desc()))
        if after:
            q = q.where(tuple_(payout_batches.c.created_at, payout_batches.c.id)
                        < (datetime.fromisoformat(after[0]), after[1]))
        return [payout_batch_from_row(r) for r in (await self.s.execute(q.limit(limit + 1))).all()]

    async def batch_redemptions(self, batch_id: str) -> list[m.Redemption]:
        q = select(redemptions).where(redemptions.c.payout_batch_id == batch_id).order_by(redemptions.c.settled_at,
                                                                                        redemptions.c.id)
        return [redemption_from_row(r) for r in (await self.s.execute(q)).all()]

    async def payout_entries(self, redemption_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Redemption id -> (entry id, entry hash) of its payout entry."""
        if not redemption_ids:
            return {}
        # The kind as a literal: the index is partial on it (kind = 'payout'), which a bound
        # parameter would not let the planner prove.
        q = select(journal.c.redemption_id, journal.c.id, journal.c.hash).where(and_(
            journal.c.kind == literal_column(f"'{EntryKind.PAYOUT.value}'"),
            journal.c.redemption_id.in_(list(redemption_ids))))
        return {r.redemption_id: (r.id, r.hash) for r in (await self.s.execute(q)).all()}

    async def invoice_covered(self, agency_org_id: str, invoice_ref: str) -> tuple[int, set[int]]:
        """What live redemptions already cover of one agency invoice, and the invoice amounts they gave."""
        rows = (await self.s.execute(select(redemptions.c.amount, redemptions.c.clawed_back,
                                            redemptions.c.invoice_amount).where(and_(
            redemptions.c.agency_org_id == agency_org_id, redemptions.c.invoice_ref == invoice_ref,
            redemptions.c.state != m.RedemptionState.VOIDED)))).all()
        return sum(r.amount - r.clawed_back for r in rows), {r.invoice_amount for r in rows}

    async def list_redemptions(self, *, programme_id: str | None = None, voucher_id: str | None = None,
                               agency_org_id: str | None = None, enterprise_org_id: str | None = None,
                               state: str | None = None, limit: int,
                               after: tuple[str, str] | None) -> list[m.Redemption]:
        q = select(redemptions).order_by(redemptions.c.created_at.desc(), redemptions.c.id.desc())
        for col, val in ((redemptions.c.programme_id, programme_id), (redemptions.c.voucher_id, voucher_id),
                         (redemptions.c.agency_org_id, agency_org_id),
                         (redemptions.c.enterprise_org_id, enterprise_org_id), (redemptions.c.state, state)):
            if val:
                q = q.where(col == val)
        if after:
            q = q.where(tuple_(redemptions.c.created_at, redemptions.c.id) < (datetime.fromisoformat(after[0]), after[1]))
        return [redemption_from_row(r) for r in (await self.s.execute(q.limit(limit + 1))).all()]

    # --- ledger
    async def open_accounts(self, accounts_: Iterable[Account], currency: str) -> None:
        rows = [dict(id=a.id, kind=a.kind, programme_id=a.programme_id, owner_id=a.owner_id, currency=currency,
                     balance=0) for a in accounts_]
        if rows:
            await self.s.execute(self._insert(accounts).on_conflict_do_nothing(index_elements=[accounts.c.id]), rows)

    async def balances(self, account_ids: Sequence[str]) -> dict[str, int]:
        """Each account's balance: its row's plus its sub-balances (see `account_credits`)."""
        rows = (await self.s.execute(select(accounts.c.id, accounts.c.balance + _CREDITS)
                                     .where(accounts.c.id.in_(list(account_ids))))).all()
        found = {r[0]: int(r[1]) for r in rows}
        return {a: found.get(a, 0) for a in account_ids}

    async def fold_credits(self, account_id: str) -> int:
        """Move an account's sub-balances into its row (before money leaves it, so the row's
        conditional update guards the overdraft). Locks them in shard order and zeroes exactly
        the rows locked; a sub-balance created meanwhile stays and still counts."""
        rows = (await self.s.execute(
            select(account_credits.c.shard, account_credits.c.amount)
            .where(and_(account_credits.c.account_id == account_id, account_credits.c.amount > 0))
            .order_by(account_credits.c.shard).with_for_update())).all()
        if not rows:
            return 0
        moved = sum(r.amount for r in rows)
        await self.s.execute(update(account_credits).where(and_(
            account_credits.c.account_id == account_id,
            account_credits.c.shard.in_([r.shard for r in rows]))).values(amount=0))
        await self.s.execute(update(accounts).where(accounts.c.id == account_id)
                             .values(balance=accounts.c.balance + moved))
        return moved

    async def balance(self, account: Account) -> int:
        return (await self.balances([account.id]))[account.id]

    async def post(self, entry: JournalEntry) -> str:
        """Append one balanced entry: write the journal row and its postings, advance the chain
        head, and move the cached balances (refusing any overdraft). Returns the entry's hash.

        The caller holds the lock on the chain owner (the programme or voucher row). Balances are
        moved last, and callers post as the last change of their unit of work, because shared
        accounts (an agency's payable, a programme's unissued budget) stay locked from this
        update until the commit."""
        owner = programmes if entry.kind in PROGRAMME_CHAIN else vouchers
        prev = self._heads.get(entry.chain_key)
        if prev is None:
            prev = (await self.s.execute(select(owner.c.head_hash).where(owner.c.id == entry.chain_key)
                                         .with_for_update())).scalar()
        if prev is None:
            raise RuntimeError(f"chain owner {entry.chain_key} of entry {entry.id} does not exist")
        digest = entry_hash(entry, prev)
        await self.s.execute(insert(journal).values(
            id=entry.id, kind=entry.kind, chain_key=entry.chain_key, programme_id=entry.programme_id,
            voucher_id=entry.voucher_id, redemption_id=entry.redemption_id, reverses=entry.reverses,
            currency=entry.currency, memo=entry.memo, created_at=entry.created_at, created_by=entry.created_by,
            prev_hash=prev, hash=digest))
        await self.s.execute(insert(postings), [dict(entry_id=entry.id, account_id=p.account.id, amount=p.amount,
                                                     currency=entry.currency) for p in entry.postings])
        await self.s.execute(update(owner).where(owner.c.id == entry.chain_key).values(head_hash=digest))
        self._heads[entry.chain_key] = digest
        for p in entry.postings:
            if p.amount < 0 and p.account.kind in CREDIT_SHARDED:
                await self.fold_credits(p.account.id)
        # One statement moves every leg; a leg that would overdraw its account matches no row.
        delta = case({p.account.id: p.amount for p in entry.postings}, value=accounts.c.id)
        legs = []
        for p in entry.postings:
            leg = accounts.c.id == p.account.id
            if p.amount < 0 and not p.account.may_go_negative:
                leg = and_(leg, accounts.c.balance >= -p.amount)
            legs.append(leg)
        result = await self.s.execute(update(accounts).where(or_(*legs)).values(balance=accounts.c.balance + delta))
        if result.rowcount != len(entry.postings):
            held = await self.balances([p.account.id for p in entry.postings])
            for p in entry.postings:
                if held[p.account.id] + p.amount < 0 and not p.account.may_go_negative:
                    raise InsufficientBalance(p.account, held[p.account.id], -p.amount)
            raise RuntimeError(f"entry {entry.id} posts to an account that does not exist")
        return digest

    async def account_ids_of(self, owner_id: str, kinds: Sequence[str]) -> list[str]:
        q = select(accounts.c.id).where(and_(accounts.c.owner_id == owner_id, accounts.c.kind.in_(list(kinds))))
        return list((await self.s.execute(q.order_by(accounts.c.id))).scalars())

    # --- reading the ledger
    async def stored_entries(self, *, programme_id: str | None = None) -> list[StoredEntry]:
        q = select(journal).order_by(journal.c.seq)
        pq = select(postings.c.entry_id, postings.c.account_id, postings.c.amount)
        if programme_id:
            q = q.where(journal.c.programme_id == programme_id)
            pq = pq.join(journal, journal.c.id == postings.c.entry_id).where(journal.c.programme_id == programme_id)
        by_entry: dict[str, list[tuple[str, int]]] = {}
        for p in (await self.s.execute(pq)).all():
            by_entry.setdefault(p.entry_id, []).append((p.account_id, p.amount))
        out = []
        for r in (await self.s.execute(q)).all():
            fields = {
                "id": r.id, "kind": r.kind, "chain_key": r.chain_key, "programme_id": r.programme_id,
                "currency": r.currency, "created_at": iso(r.created_at), "created_by": r.created_by,
                "voucher_id": r.voucher_id, "redemption_id": r.redemption_id, "reverses": r.reverses, "memo": r.memo,
            }
            out.append(StoredEntry(r.seq, fields, tuple(by_entry.get(r.id, ())), r.prev_hash, r.hash))
        return out

    async def stored_accounts(self, *, programme_id: str | None = None) -> list[StoredAccount]:
        q = select(accounts, (accounts.c.balance + _CREDITS).label("total"))
        if programme_id:
            q = q.where(accounts.c.programme_id == programme_id)
        return [StoredAccount(r.id, r.kind, r.programme_id, r.owner_id, r.currency, int(r.total))
                for r in (await self.s.execute(q)).all()]

    async def chain_heads(self, *, programme_id: str | None = None) -> dict[str, str]:
        pq = select(programmes.c.id, programmes.c.head_hash)
        vq = select(vouchers.c.id, vouchers.c.head_hash)
        if programme_id:
            pq = pq.where(programmes.c.id == programme_id)
            vq = vq.where(vouchers.c.programme_id == programme_id)
        heads = {r.id: r.head_hash for r in (await self.s.execute(pq)).all()}
        heads.update({r.id: r.head_hash for r in (await self.s.execute(vq)).all()})
        return heads

    async def entries_for(self, *, account_prefix: str | None = None, voucher_id: str | None = None,
                          programme_id: str | None = None, account_ids: Sequence[str] | None = None,
                          limit: int, after_seq: int | None) -> list[dict[str, Any]]:
        """Statement lines: entries touching the given accounts, with the postings on those accounts."""
        q = (select(journal.c.seq, journal.c.id, journal.c.kind, journal.c.created_at, journal.c.created_by,
                    journal.c.memo, journal.c.voucher_id, journal.c.redemption_id, journal.c.reverses,
                    journal.c.hash, journal.c.currency, postings.c.account_id, postings.c.amount)
             .join(postings, postings.c.entry_id == journal.c.id).order_by(journal.c.seq, postings.c.id))
        if account_ids is not None:
            q = q.where(postings.c.account_id.in_(list(account_ids)))
        if account_prefix:
            q = q.where(postings.c.account_id.like(account_prefix + "%"))
        if voucher_id:
            q = q.where(journal.c.voucher_id == voucher_id)
        if programme_id:
            q = q.where(journal.c.programme_id == programme_id)
        if after_seq is not None:
            q = q.where(journal.c.seq > after_seq)
        rows = (await self.s.execute(q.limit(limit * 8 + 8))).all()
        lines: list[dict[str, Any]] = []
        for r in rows:
            if not lines or lines[-1]["seq"] != r.seq:
                if len(lines) == limit + 1:
                    break
                lines.append({"seq": r.seq, "entry_id": r.id, "kind": r.kind, "created_at": r.created_at,
                              "created_by": r.created_by, "memo": r.memo, "voucher_id": r.voucher_id,
                              "redemption_id": r.redemption_id, "reverses": r.reverses, "hash": r.hash,
                              "currency": r.currency, "postings": []})
            lines[-1]["postings"].append({"account_id": r.account_id, "amount": r.amount})
        return lines


def as_date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


__all__ = ["Repository", "as_date", "AccountKind"]
