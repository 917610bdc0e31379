"""Organisations, achievements, IPC index, deal parties, valuations, history, full-text search.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_en", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("region", sa.String(100), nullable=False),
        sa.Column("credit_code", sa.String(18), nullable=False, unique=True),
        sa.Column("headcount", sa.Integer, nullable=True),
        sa.Column("revenue_amount", sa.BigInteger, nullable=True),
        sa.Column("revenue_currency", sa.String(3), nullable=True),
        sa.Column("registered_on", sa.Date, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "achievements",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner_org_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("ip_type", sa.String(30), nullable=False),
        sa.Column("trl", sa.Integer, nullable=False),
        sa.Column("modes_bits", sa.Integer, nullable=False),
        sa.Column("price_amount", sa.BigInteger, nullable=True),
        sa.Column("price_currency", sa.String(3), nullable=True),
        sa.Column("negotiable", sa.Boolean, nullable=False),
        sa.Column("region", sa.String(100), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("listed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("transferred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fts_rowid", sa.Integer, nullable=True),
    )
    op.create_index("ix_achievements_owner_org_id", "achievements", ["owner_org_id"])
    op.create_index("ix_achievements_status_listed", "achievements", ["status", "listed_at", "id"])
    op.create_index("ix_achievements_expires", "achievements", ["status", "expires_at"])
    op.create_table(
        "achievement_ipc",
        sa.Column("achievement_id", sa.String(64), primary_key=True),
        sa.Column("code_key", sa.String(40), primary_key=True),
        sa.Column("subclass", sa.String(4), nullable=False),
    )
    op.create_index("ix_achievement_ipc_key", "achievement_ipc", ["code_key"])
    op.create_table(
        "deal_parties",
        sa.Column("transfer_id", sa.String(64), primary_key=True),
        sa.Column("achievement_id", sa.String(64), primary_key=True),
        sa.Column("seller_org_id", sa.String(64), nullable=False),
        sa.Column("buyer_org_id", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(30), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_deal_parties_achievement", "deal_parties", ["achievement_id"])
    op.create_table(
        "valuations",
        sa.Column("achievement_id", sa.String(64), primary_key=True),
        sa.Column("requested_by_org_id", sa.String(64), primary_key=True),
        sa.Column("valuation_id", sa.String(64), nullable=False),
        sa.Column("low_amount", sa.BigInteger, nullable=False),
        sa.Column("mid_amount", sa.BigInteger, nullable=False),
        sa.Column("high_amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("methods", sa.JSON, nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "history",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("aggregate", sa.String(20), nullable=False),
        sa.Column("aggregate_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("actor_org", sa.String(64), nullable=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("changes", sa.JSON, nullable=False),
    )
    op.create_index("ix_history_aggregate", "history", ["aggregate", "aggregate_id", "seq"])

    # Full text. Both stores receive pre-tokenised text (jieba + Snowball in the service), so
    # neither needs a Chinese parser: FTS5's unicode61 and PostgreSQL's 'simple' configuration
    # only split on the spaces we put there.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE achievements ADD COLUMN search_vector tsvector")
        op.execute("CREATE INDEX ix_achievements_search ON achievements USING GIN (search_vector)")
    else:
        op.execute(
            "CREATE VIRTUAL TABLE achievement_fts USING fts5("
            "title, keywords, abstract, tokenize = 'unicode61 remove_diacritics 0')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_achievements_search")
    else:
        op.execute("DROP TABLE IF EXISTS achievement_fts")
    for t in ("history", "valuations", "deal_parties", "achievement_ipc", "achievements", "organisations"):
        op.drop_table(t)
