"""Read models of achievements and transfers, and valuations.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "achievements",
        sa.Column("achievement_id", sa.String(64), primary_key=True),
        sa.Column("owner_org_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "transfers",
        sa.Column("transfer_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("seller_org_id", sa.String(64), nullable=False),
        sa.Column("buyer_org_id", sa.String(64), nullable=False),
        sa.Column("completed_at", sa.String(40)),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "transfer_achievements",
        sa.Column("transfer_id", sa.String(64), primary_key=True),
        sa.Column("achievement_id", sa.String(64), primary_key=True),
    )
    op.create_index("ix_transfer_achievements_achievement", "transfer_achievements", ["achievement_id"])
    op.create_table(
        "transfer_keys",
        sa.Column("transfer_id", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
    )
    op.create_index("ix_transfer_keys_key", "transfer_keys", ["key"])
    op.create_table(
        "valuations",
        sa.Column("valuation_id", sa.String(36), primary_key=True),
        sa.Column("achievement_id", sa.String(64), nullable=False),
        sa.Column("owner_org_id", sa.String(64), nullable=False),
        sa.Column("requested_by_org_id", sa.String(64)),
        sa.Column("requested_by_sub", sa.String(200), nullable=False),
        sa.Column("requester_role", sa.String(32), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("low", sa.BigInteger, nullable=False),
        sa.Column("mid", sa.BigInteger, nullable=False),
        sa.Column("high", sa.BigInteger, nullable=False),
        sa.Column("methods", sa.JSON, nullable=False),
        sa.Column("table_version", sa.String(32), nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("subject_snapshot", sa.JSON, nullable=False),
        sa.Column("transfers_snapshot", sa.JSON, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
    )
    op.create_index("ix_valuations_achievement", "valuations", ["achievement_id", "created_at"])
    op.create_index("ix_valuations_created", "valuations", ["created_at", "valuation_id"])


def downgrade() -> None:
    op.drop_table("valuations")
    op.drop_table("transfer_keys")
    op.drop_table("transfer_achievements")
    op.drop_table("transfers")
    op.drop_table("achievements")
