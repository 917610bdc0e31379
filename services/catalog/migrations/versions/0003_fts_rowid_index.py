"""Index achievements.fts_rowid, so full-text hits (SQLite FTS5 rowids) find their rows directly.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_achievements_fts_rowid", "achievements", ["fts_rowid"])


def downgrade() -> None:
    op.drop_index("ix_achievements_fts_rowid", table_name="achievements")
