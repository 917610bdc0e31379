"""Proposals are decided: accepted, rejected with a coded reason, withdrawn, or turned into a
deal; a deal remembers the proposal it came from.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PROPOSAL_COLUMNS = [
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("decided_by", sa.String(length=64), nullable=True),
    sa.Column("reject_reason", sa.String(length=30), nullable=True),
    sa.Column("reject_note", sa.String(length=1000), nullable=True),
    sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("transfer_id", sa.String(length=36), nullable=True),
]


def upgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        for column in PROPOSAL_COLUMNS:
            batch.add_column(column)
    with op.batch_alter_table("transfers") as batch:
        batch.add_column(sa.Column("proposal_id", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("proposal_id")
    with op.batch_alter_table("proposals") as batch:
        for column in reversed(PROPOSAL_COLUMNS):
            batch.drop_column(column.name)
