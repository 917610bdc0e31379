"""The valuation store: read models built from others' events, and the valuations themselves."""

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, MetaData, String, Table

from techbridge_shared.tables import add_messaging_tables

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)

# Read model of catalog achievements (techbridge.catalog.achievement.v1); `data` holds the
# fields this service reads, as the last published/updated event carried them.
achievements = Table(
    "achievements", metadata,
    Column("achievement_id", String(64), primary_key=True),
    Column("owner_org_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(32), nullable=False),
    Column("data", JSON, nullable=False),
    Column("updated_at", String(40), nullable=False),
)

# Read model of matching transfers (techbridge.matching.transfer.v1): buyers for access,
# completed deals for market comparables.
transfers = Table(
    "transfers", metadata,
    Column("transfer_id", String(64), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("seller_org_id", String(64), nullable=False),
    Column("buyer_org_id", String(64), nullable=False),
    Column("completed_at", String(40)),
    Column("data", JSON, nullable=False),
    Column("updated_at", String(40), nullable=False),
)

transfer_achievements = Table(
    "transfer_achievements", metadata,
    Column("transfer_id", String(64), primary_key=True),
    Column("achievement_id", String(64), primary_key=True),
    Index("ix_transfer_achievements_achievement", "achievement_id"),
)

# Search keys of a transfer for comparables: "ipc:H01M" (IPC subclass) and "field:<field>".
transfer_keys = Table(
    "transfer_keys", metadata,
    Column("transfer_id", String(64), primary_key=True),
    Column("key", String(200), primary_key=True),
    Index("ix_transfer_keys_key", "key"),
)

valuations = Table(
    "valuations", metadata,
    Column("valuation_id", String(36), primary_key=True),
    Column("achievement_id", String(64), nullable=False),
    Column("owner_org_id", String(64), nullable=False),
    Column("requested_by_org_id", String(64)),
    Column("requested_by_sub", String(200), nullable=False),
    Column("requester_role", String(32), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("low", BigInteger, nullable=False),
    Column("mid", BigInteger, nullable=False),
    Column("high", BigInteger, nullable=False),
    Column("methods", JSON, nullable=False),
    Column("table_version", String(32), nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("request", JSON, nullable=False),
    Column("subject_snapshot", JSON, nullable=False),
    Column("transfers_snapshot", JSON, nullable=False),
    Column("result", JSON, nullable=False),
    Index("ix_valuations_achievement", "achievement_id", "created_at"),
    Index("ix_valuations_created", "created_at", "valuation_id"),
)
