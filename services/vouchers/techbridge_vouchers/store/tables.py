"""The vouchers store. Money lives in `accounts` (cached balances, guarded by a CHECK) and in the
append-only `journal` + `postings` (the truth the balances are recomputed from). Database
triggers refuse UPDATE and DELETE on the journal and postings (see migration 0002)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator

from techbridge_shared.idempotency import add_idempotency_table
from techbridge_shared.tables import SeqType, add_messaging_tables


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in and out on both backends (SQLite would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Money = BigInteger  # integer minor units

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)
idempotency_keys = add_idempotency_table(metadata)


def define(md: MetaData) -> dict[str, Table]:
    """Table definitions as of the newest migration (0002 keeps its own frozen copy; 0003 adds
    payout batches and `redemptions.payout_batch_id`; 0004 the programme's owner and reviewer
    organisations)."""
    t: dict[str, Table] = {}
    t["programmes"] = Table(
        "programmes", md,
        Column("id", String(36), primary_key=True),
        Column("name", String(300), nullable=False),
        Column("description", Text, nullable=False, default=""),
        Column("currency", String(3), nullable=False),
        Column("state", String(16), nullable=False),
        Column("face_values", JSON, nullable=False),
        Column("max_share_bp", Integer, nullable=False),
        Column("annual_quota", Money, nullable=False),
        Column("categories", JSON, nullable=False),
        Column("eligibility", JSON, nullable=False),
        Column("applications_open_at", UTCDateTime, nullable=False),
        Column("applications_close_at", UTCDateTime, nullable=False),
        Column("validity_days", Integer, nullable=False),
        Column("unspent_policy", String(24), nullable=False),
        Column("reminder_days", Integer, nullable=False),
        Column("review_levels", Integer, nullable=False),
        Column("created_by", String(200), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("closed_at", UTCDateTime),
        Column("head_hash", String(64), nullable=False),
        # 0004: who governs the programme (NULL: opened before owners were recorded).
        Column("owner_org_id", String(64)),
        Column("reviewer_org_ids", JSON),
        Index("ix_programmes_owner", "owner_org_id"),
    )
    t["organisations"] = Table(
        "organisations", md,
        Column("id", String(64), primary_key=True),
        Column("name", String(500), nullable=False),
        Column("kind", String(32), nullable=False),
        Column("region", String(200), nullable=False, default=""),
        Column("credit_code", String(64)),
        Column("headcount", Integer),
        Column("annual_revenue", Money),
        Column("revenue_currency", String(3)),
        Column("registered_on", Date),
        Column("as_of", UTCDateTime, nullable=False),  # time of the catalog event applied last
    )
    t["enrolments"] = Table(
        "enrolments", md,
        Column("programme_id", String(36), ForeignKey("programmes.id"), primary_key=True),
        Column("agency_org_id", String(64), primary_key=True),
        Column("categories", JSON, nullable=False),
        Column("state", String(16), nullable=False),
        Column("reason", Text, nullable=False, default=""),
        Column("applied_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    )
    t["applications"] = Table(
        "applications", md,
        Column("id", String(36), primary_key=True),
        Column("programme_id", String(36), ForeignKey("programmes.id"), nullable=False, index=True),
        Column("enterprise_org_id", String(64), nullable=False, index=True),
        Column("amount", Money, nullable=False),
        Column("currency", String(3), nullable=False),
        Column("purpose", Text, nullable=False, default=""),
        Column("state", String(20), nullable=False),
        Column("checks", JSON, nullable=False),
        Column("reviews", JSON, nullable=False),
        Column("submitted_by", String(200), nullable=False),
        Column("submitted_at", UTCDateTime, nullable=False),
        Column("voucher_id", String(36)),
        Column("decided_at", UTCDateTime),
    )
    t["vouchers"] = Table(
        "vouchers", md,
        Column("id", String(36), primary_key=True),
        Column("programme_id", String(36), ForeignKey("programmes.id"), nullable=False, index=True),
        Column("application_id", String(36), unique=True),
        Column("enterprise_org_id", String(64), nullable=False, index=True),
        Column("face_value", Money, nullable=False),
        Column("currency", String(3), nullable=False),
        Column("state", String(16), nullable=False),
        Column("issued_at", UTCDateTime, nullable=False),
        Column("expires_at", UTCDateTime, nullable=False, index=True),
        Column("remind_at", UTCDateTime, index=True),  # when the expiring-soon reminder is due
        Column("reminded_at", UTCDateTime),
        Column("note", Text, nullable=False, default=""),
        Column("head_hash", String(64), nullable=False),
    )
    t["redemptions"] = Table(
        "redemptions", md,
        Column("id", String(36), primary_key=True),
        Column("programme_id", String(36), nullable=False, index=True),
        Column("voucher_id", String(36), ForeignKey("vouchers.id"), nullable=False, index=True),
        Column("agency_org_id", String(64), nullable=False),  # a prefix of ix_redemptions_invoice (0005)
        Column("enterprise_org_id", String(64), nullable=False, index=True),
        Column("amount", Money, nullable=False),
        Column("currency", String(3), nullable=False),
        Column("invoice_amount", Money, nullable=False),
        Column("invoice_ref", String(200), nullable=False),
        Column("category", String(100), nullable=False),
        Column("transfer_id", String(64)),
        Column("state", String(16), nullable=False),
        Column("requested_by", String(200), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("settled_by", String(200)),
        Column("settled_at", UTCDateTime),
        Column("settle_entry_id", String(36)),
        Column("voided_reason", Text),
        Column("voided_at", UTCDateTime),
        Column("paid_at", UTCDateTime),
        Column("payout_ref", String(200)),
        Column("clawed_back", Money, nullable=False, default=0),
        Column("payout_batch_id", String(36)),  # the payout batch that paid it, if paid in one (0003)
        CheckConstraint("amount > 0 AND clawed_back >= 0 AND clawed_back <= amount", name="ck_redemption_amounts"),
        Index("ix_redemptions_invoice", "agency_org_id", "invoice_ref"),
        # Partial (0005): only rows that have a transfer / a batch are looked up by them.
        Index("ix_redemptions_transfer_id", "transfer_id", postgresql_where=text("transfer_id IS NOT NULL"),
              sqlite_where=text("transfer_id IS NOT NULL")),
        Index("ix_redemptions_payout_batch", "payout_batch_id", postgresql_where=text("payout_batch_id IS NOT NULL"),
              sqlite_where=text("payout_batch_id IS NOT NULL")),
        # Settled, unpaid redemptions of an agency, for bulk payouts (partial, 0007).
        Index("ix_redemptions_settled", "agency_org_id", "settled_at", postgresql_where=text("state = 'settled'"),
              sqlite_where=text("state = 'settled'")),
    )
    t["payout_batches"] = Table(
        "payout_batches", md,
        Column("id", String(36), primary_key=True),
        Column("agency_org_id", String(64), nullable=False, index=True),
        Column("programme_id", String(36)),  # the filter asked for, if any
        Column("settled_before", UTCDateTime),  # the filter asked for, if any
        Column("reference", String(200), nullable=False),
        Column("count", Integer, nullable=False),
        Column("totals", JSON, nullable=False),  # [{programme_id, currency, amount, count}]
        Column("created_by", String(200), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("note", Text, nullable=False, default=""),
    )
    t["transfers"] = Table(
        "transfers", md,
        Column("id", String(64), primary_key=True),
        Column("status", String(20), nullable=False),
        Column("buyer_org_id", String(64)),
        Column("seller_org_id", String(64)),
        Column("as_of", UTCDateTime, nullable=False),
    )
    t["accounts"] = Table(
        "accounts", md,
        Column("id", String(200), primary_key=True),
        Column("kind", String(16), nullable=False),
        Column("programme_id", String(36), nullable=False, index=True),
        Column("owner_id", String(64), nullable=False),
        Column("currency", String(3), nullable=False),
        Column("balance", Money, nullable=False, default=0),
        CheckConstraint("balance >= 0 OR kind = 'funding'", name="ck_accounts_not_overdrawn"),
    )
    # Sub-balances of hot credit-only accounts (an agency's payable), written by settlements on
    # the PostgreSQL hot path; an account's balance is its row's plus these (0006).
    t["account_credits"] = Table(
        "account_credits", md,
        Column("account_id", String(200), ForeignKey("accounts.id"), primary_key=True),
        Column("shard", Integer, primary_key=True, autoincrement=False),
        Column("amount", Money, nullable=False),
        CheckConstraint("amount >= 0", name="ck_account_credits_not_negative"),
    )
    t["journal"] = Table(
        "journal", md,
        Column("seq", SeqType, primary_key=True, autoincrement=True),
        Column("id", String(36), nullable=False, unique=True),
        Column("kind", String(16), nullable=False),
        Column("chain_key", String(36), nullable=False),
        Column("programme_id", String(36), nullable=False, index=True),
        Column("voucher_id", String(36), index=True),
        Column("redemption_id", String(36)),
        Column("reverses", String(36)),
        Column("currency", String(3), nullable=False),
        Column("memo", Text, nullable=False, default=""),
        Column("created_at", UTCDateTime, nullable=False),
        Column("created_by", String(200), nullable=False),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
        # Only payout entries are looked up by redemption (0005).
        Index("ix_journal_payout_redemption", "redemption_id", postgresql_where=text("kind = 'payout'"),
              sqlite_where=text("kind = 'payout'")),
    )
    t["postings"] = Table(
        "postings", md,
        Column("id", SeqType, primary_key=True, autoincrement=True),
        Column("entry_id", String(36), ForeignKey("journal.id"), nullable=False, index=True),
        Column("account_id", String(200), ForeignKey("accounts.id"), nullable=False, index=True),
        Column("amount", Money, nullable=False),
        Column("currency", String(3), nullable=False),
        CheckConstraint("amount <> 0", name="ck_postings_nonzero"),
    )
    return t


_t = define(metadata)
programmes = _t["programmes"]
organisations = _t["organisations"]
enrolments = _t["enrolments"]
applications = _t["applications"]
vouchers = _t["vouchers"]
redemptions = _t["redemptions"]
transfers = _t["transfers"]
accounts = _t["accounts"]
account_credits = _t["account_credits"]
journal = _t["journal"]
postings = _t["postings"]
payout_batches = _t["payout_batches"]
