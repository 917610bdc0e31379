"""Probe tables.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

from techbridge_shared.tables import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables()
    op.create_table("notes", sa.Column("id", sa.String(36), primary_key=True), sa.Column("text", sa.String(500)))
    op.create_table("tally", sa.Column("id", sa.Integer, primary_key=True), sa.Column("count", sa.Integer, nullable=False))
    op.create_table(
        "applied",
        sa.Column("n", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("note_id", sa.String(36), nullable=False),
        sa.Column("sent_at", sa.String(40), nullable=False),
        sa.Column("applied_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    for t in ("applied", "tally", "notes", "outbox", "inbox"):
        op.drop_table(t)
