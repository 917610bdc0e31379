"""Who governs a programme: the government organisation that opened it (`owner_org_id`) and the
organisations that make the first review of a two-level review (`reviewer_org_ids`).

Existing programmes get NULL for both: their owner was never recorded, and guessing it from
`created_by` (a person, not an organisation) would be wrong. For them the former rule stays —
every official governs them — until an operator sets the owner by hand, e.g.
`UPDATE programmes SET owner_org_id = 'gov-pudong' WHERE id = '…'` (see the README).

Revision ID: 0004
Revises: 0003
"""
from alembic import op
from sqlalchemy import JSON, Column, String

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: a plain ADD COLUMN on both PostgreSQL and SQLite, no table rewrite.
    op.add_column("programmes", Column("owner_org_id", String(64), nullable=True))
    op.add_column("programmes", Column("reviewer_org_ids", JSON, nullable=True))
    op.create_index("ix_programmes_owner", "programmes", ["owner_org_id"])


def downgrade() -> None:
    op.drop_index("ix_programmes_owner", "programmes")
    with op.batch_alter_table("programmes") as batch:
        batch.drop_column("reviewer_org_ids")
        batch.drop_column("owner_org_id")
