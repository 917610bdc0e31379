"""Demands, proposals, the achievement read model and its embeddings, index change log,
declines, saved-match notifications, transfer deals with versioned offers, idempotency keys.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

from techbridge_shared.idempotency import create_idempotency_table

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = [
    "demands", "proposals", "achievements", "achievement_embeddings", "index_changes", "declines",
    "match_notifications", "transfers", "transfer_offers",
]


def upgrade() -> None:
    op.create_table('demands',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('owner_org_id', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('problem', sa.Text(), nullable=False),
    sa.Column('ipc_codes', sa.JSON(), nullable=False),
    sa.Column('keywords', sa.JSON(), nullable=False),
    sa.Column('budget_min', sa.BigInteger(), nullable=True),
    sa.Column('budget_max', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('deadline', sa.Date(), nullable=True),
    sa.Column('transfer_modes', sa.JSON(), nullable=False),
    sa.Column('min_trl', sa.Integer(), nullable=True),
    sa.Column('region', sa.String(length=120), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('close_reason', sa.String(length=500), nullable=True),
    sa.Column('embedding', sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('proposals',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('demand_id', sa.String(length=36), nullable=False),
    sa.Column('proposer_org_id', sa.String(length=64), nullable=False),
    sa.Column('achievement_ids', sa.JSON(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('achievements',
    sa.Column('achievement_id', sa.String(length=36), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('owner_org_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('title_zh', sa.String(length=500), nullable=False),
    sa.Column('title_en', sa.String(length=500), nullable=False),
    sa.Column('abstract_zh', sa.Text(), nullable=False),
    sa.Column('abstract_en', sa.Text(), nullable=False),
    sa.Column('keywords', sa.JSON(), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('ipc_codes', sa.JSON(), nullable=False),
    sa.Column('ip_type', sa.String(length=40), nullable=True),
    sa.Column('trl', sa.Integer(), nullable=True),
    sa.Column('transfer_modes', sa.JSON(), nullable=False),
    sa.Column('asking_price', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('negotiable', sa.Boolean(), nullable=False),
    sa.Column('region', sa.String(length=120), nullable=True),
    sa.Column('ip_records', sa.JSON(), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_event_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('achievement_id')
    )
    op.create_table('achievement_embeddings',
    sa.Column('achievement_id', sa.String(length=36), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('achievement_id', 'version', 'model_id')
    )
    op.create_table('index_changes',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('population', sa.String(length=20), nullable=False),
    sa.Column('doc_id', sa.String(length=36), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_table('declines',
    sa.Column('demand_id', sa.String(length=36), nullable=False),
    sa.Column('achievement_id', sa.String(length=36), nullable=False),
    sa.Column('reason', sa.String(length=30), nullable=False),
    sa.Column('note', sa.String(length=1000), nullable=True),
    sa.Column('declined_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('demand_id', 'achievement_id')
    )
    op.create_table('match_notifications',
    sa.Column('demand_id', sa.String(length=36), nullable=False),
    sa.Column('achievement_id', sa.String(length=36), nullable=False),
    sa.Column('achievement_version', sa.Integer(), nullable=False),
    sa.Column('relevance', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('demand_id', 'achievement_id')
    )
    op.create_table('transfers',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('seller_org_id', sa.String(length=64), nullable=False),
    sa.Column('buyer_org_id', sa.String(length=64), nullable=False),
    sa.Column('achievement_ids', sa.JSON(), nullable=False),
    sa.Column('demand_id', sa.String(length=36), nullable=True),
    sa.Column('proposed_by_org_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('seller_signed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('buyer_signed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('notice_starts_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('notice_ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_reason', sa.String(length=1000), nullable=True),
    sa.Column('cancelled_by_org_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('row_version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('transfer_offers',
    sa.Column('transfer_id', sa.String(length=36), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('made_by_org_id', sa.String(length=64), nullable=False),
    sa.Column('mode', sa.String(length=30), nullable=False),
    sa.Column('exclusive', sa.Boolean(), nullable=False),
    sa.Column('territory', sa.String(length=200), nullable=False),
    sa.Column('term_months', sa.Integer(), nullable=True),
    sa.Column('price', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('royalty_rate_bp', sa.Integer(), nullable=True),
    sa.Column('royalty_base', sa.String(length=200), nullable=True),
    sa.Column('royalty_minimum_annual', sa.BigInteger(), nullable=True),
    sa.Column('pricing', sa.String(length=30), nullable=False),
    sa.Column('milestones', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('transfer_id', 'version')
    )
    op.create_index(op.f('ix_demands_status'), 'demands', ['status'], unique=False)
    op.create_index(op.f('ix_demands_owner_org_id'), 'demands', ['owner_org_id'], unique=False)
    op.create_index(op.f('ix_proposals_demand_id'), 'proposals', ['demand_id'], unique=False)
    op.create_index(op.f('ix_proposals_proposer_org_id'), 'proposals', ['proposer_org_id'], unique=False)
    op.create_index(op.f('ix_achievements_owner_org_id'), 'achievements', ['owner_org_id'], unique=False)
    op.create_index(op.f('ix_index_changes_changed_at'), 'index_changes', ['changed_at'], unique=False)
    op.create_index(op.f('ix_transfers_status'), 'transfers', ['status'], unique=False)
    op.create_index(op.f('ix_transfers_seller_org_id'), 'transfers', ['seller_org_id'], unique=False)
    op.create_index(op.f('ix_transfers_completed_at'), 'transfers', ['completed_at'], unique=False)
    op.create_index(op.f('ix_transfers_buyer_org_id'), 'transfers', ['buyer_org_id'], unique=False)
    create_idempotency_table()


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    for name in reversed(TABLES):
        op.drop_table(name)
