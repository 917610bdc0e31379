"""The gateway's own store: who may call (clients, keys, users), who listens (subscriptions),
what was heard (event log) and what was sent (deliveries and their attempts)."""

import sqlalchemy as sa
from sqlalchemy import MetaData

from techbridge_shared.tables import add_messaging_tables

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)

TS = sa.DateTime(timezone=True)
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

api_clients = sa.Table(
    "api_clients", metadata,
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
    # Raised by disable and secret rotation: access tokens of an earlier generation are refused.
    sa.Column("token_generation", sa.Integer, nullable=False, server_default="0"),
)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("client_id", sa.String(64), sa.ForeignKey("api_clients.client_id"), nullable=False, index=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("revoked_at", TS, nullable=True),
)

users = sa.Table(
    "users", metadata,
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
    # Raised by disable: access tokens of an earlier generation are refused.
    sa.Column("token_generation", sa.Integer, nullable=False, server_default="0"),
)

subscriptions = sa.Table(
    "subscriptions", metadata,
    sa.Column("subscription_id", sa.String(64), primary_key=True),
    sa.Column("owner_sub", sa.String(64), nullable=False, index=True),
    sa.Column("owner_kind", sa.String(16), nullable=False),
    sa.Column("owner_org", sa.String(64), nullable=True, index=True),
    sa.Column("owner_roles", sa.JSON, nullable=False),
    sa.Column("callback_url", sa.String(2048), nullable=False),
    sa.Column("types", sa.JSON, nullable=False),
    sa.Column("secret", sa.String(255), nullable=False),
    sa.Column("description", sa.String(500), nullable=False, server_default=""),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", TS, nullable=False),
)

event_log = sa.Table(
    "event_log", metadata,
    sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("type", sa.String(200), nullable=False, index=True),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("time", TS, nullable=False, index=True),
    sa.Column("orgs", sa.JSON, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("received_at", TS, nullable=False),
    sa.UniqueConstraint("source", "event_id", name="uq_event_log_source_id"),
)

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("delivery_id", sa.String(64), primary_key=True),
    sa.Column("subscription_id", sa.String(64), sa.ForeignKey("subscriptions.subscription_id"), nullable=False),
    sa.Column("event_seq", SEQ, nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(200), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    # pending -> delivered | parked (after too many failures); parked -> pending on redelivery
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", TS, nullable=False),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("delivered_at", TS, nullable=True),
    sa.Index("ix_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_deliveries_order", "subscription_id", "subject", "event_seq"),
)

delivery_attempts = sa.Table(
    "delivery_attempts", metadata,
    sa.Column("attempt_id", SEQ, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(64), sa.ForeignKey("deliveries.delivery_id"), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", TS, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.String(500), nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False),
)

openapi_cache = sa.Table(
    "openapi_cache", metadata,
    sa.Column("service", sa.String(32), primary_key=True),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("fetched_at", TS, nullable=False),
)
