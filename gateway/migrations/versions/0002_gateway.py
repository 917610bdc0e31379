"""Clients, API keys, users, subscriptions, event log, deliveries and the OpenAPI cache.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_clients",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=True),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("previous_secret_hash", sa.String(255), nullable=True),
        sa.Column("previous_valid_until", TS, nullable=True),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("client_id", sa.String(64), sa.ForeignKey("api_clients.client_id"), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_index("ix_api_keys_client_id", "api_keys", ["client_id"])
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=True),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "subscriptions",
        sa.Column("subscription_id", sa.String(64), primary_key=True),
        sa.Column("owner_sub", sa.String(64), nullable=False),
        sa.Column("owner_kind", sa.String(16), nullable=False),
        sa.Column("owner_org", sa.String(64), nullable=True),
        sa.Column("owner_roles", sa.JSON, nullable=False),
        sa.Column("callback_url", sa.String(2048), nullable=False),
        sa.Column("types", sa.JSON, nullable=False),
        sa.Column("secret", sa.String(255), nullable=False),
        sa.Column("description", sa.String(500), nullable=False, server_default=""),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_subscriptions_owner_sub", "subscriptions", ["owner_sub"])
    op.create_index("ix_subscriptions_owner_org", "subscriptions", ["owner_org"])
    op.create_table(
        "event_log",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("time", TS, nullable=False),
        sa.Column("orgs", sa.JSON, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.UniqueConstraint("source", "event_id", name="uq_event_log_source_id"),
    )
    op.create_index("ix_event_log_type", "event_log", ["type"])
    op.create_index("ix_event_log_time", "event_log", ["time"])
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", sa.String(64), primary_key=True),
        sa.Column("subscription_id", sa.String(64), sa.ForeignKey("subscriptions.subscription_id"), nullable=False),
        sa.Column("event_seq", SEQ, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_deliveries_order", "deliveries", ["subscription_id", "subject", "event_seq"])
    op.create_table(
        "delivery_attempts",
        sa.Column("attempt_id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(64), sa.ForeignKey("deliveries.delivery_id"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=False),
    )
    op.create_index("ix_delivery_attempts_delivery_id", "delivery_attempts", ["delivery_id"])
    op.create_table(
        "openapi_cache",
        sa.Column("service", sa.String(32), primary_key=True),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("fetched_at", TS, nullable=False),
    )


def downgrade() -> None:
    for name in ("openapi_cache", "delivery_attempts", "deliveries", "event_log", "subscriptions", "users",
                 "api_keys", "api_clients"):
        op.drop_table(name)
