"""Vouchers: programmes, organisations read model, agencies, applications, vouchers, redemptions,
transfers read model, the ledger (accounts, journal, postings) and idempotency keys.

The journal and its postings are append-only: triggers refuse UPDATE and DELETE on both
backends, so a correction can only be a new, reversing entry.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from techbridge_shared.idempotency import create_idempotency_table
from techbridge_shared.tables import SeqType
from techbridge_vouchers.store.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Money = BigInteger

APPEND_ONLY = ("journal", "postings")


def define(md: MetaData) -> dict[str, Table]:
    """Frozen copy of the table definitions as of this revision."""
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
        Column("agency_org_id", String(64), nullable=False, index=True),
        Column("enterprise_org_id", String(64), nullable=False, index=True),
        Column("amount", Money, nullable=False),
        Column("currency", String(3), nullable=False),
        Column("invoice_amount", Money, nullable=False),
        Column("invoice_ref", String(200), nullable=False),
        Column("category", String(100), nullable=False),
        Column("transfer_id", String(64), index=True),
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
        CheckConstraint("amount > 0 AND clawed_back >= 0 AND clawed_back <= amount", name="ck_redemption_amounts"),
        Index("ix_redemptions_invoice", "agency_org_id", "invoice_ref"),
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
    t["journal"] = Table(
        "journal", md,
        Column("seq", SeqType, primary_key=True, autoincrement=True),
        Column("id", String(36), nullable=False, unique=True),
        Column("kind", String(16), nullable=False),
        Column("chain_key", String(36), nullable=False, index=True),
        Column("programme_id", String(36), nullable=False, index=True),
        Column("voucher_id", String(36), index=True),
        Column("redemption_id", String(36), index=True),
        Column("reverses", String(36)),
        Column("currency", String(3), nullable=False),
        Column("memo", Text, nullable=False, default=""),
        Column("created_at", UTCDateTime, nullable=False),
        Column("created_by", String(200), nullable=False),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
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


def upgrade() -> None:
    md = MetaData()
    define(md)
    bind = op.get_bind()
    md.create_all(bind)
    create_idempotency_table()
    for table in APPEND_ONLY:
        if bind.dialect.name == "postgresql":
            op.execute(
                f"""CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION '{table} is append-only: write a reversing entry instead'; END $$"""
            )
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
            )
        else:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} BEGIN "
                    f"SELECT RAISE(ABORT, '{table} is append-only: write a reversing entry instead'); END"
                )


def downgrade() -> None:
    bind = op.get_bind()
    for table in APPEND_ONLY:
        if bind.dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
    op.drop_table("idempotency_keys")
    for name in ("postings", "journal", "accounts", "transfers", "redemptions", "vouchers", "applications",
                 "enrolments", "organisations", "programmes"):
        op.drop_table(name)
