"""Matching's own tables. JSON columns hold small lists (codes, modes); money is integer minor units."""

from sqlalchemy import (
    JSON, BigInteger, Boolean, Column, Date, DateTime, Float, Integer, LargeBinary, MetaData, String, Table,
    Text,
)

from techbridge_shared.idempotency import add_idempotency_table
from techbridge_shared.tables import SeqType, add_messaging_tables

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)
idempotency_keys = add_idempotency_table(metadata)

demands = Table(
    "demands", metadata,
    Column("id", String(36), primary_key=True),
    Column("owner_org_id", String(64), nullable=False, index=True),
    Column("title", String(300), nullable=False),
    Column("problem", Text, nullable=False),
    Column("ipc_codes", JSON, nullable=False),
    Column("keywords", JSON, nullable=False),
    Column("budget_min", BigInteger, nullable=True),
    Column("budget_max", BigInteger, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("deadline", Date, nullable=True),
    Column("transfer_modes", JSON, nullable=False),
    Column("min_trl", Integer, nullable=True),
    Column("region", String(120), nullable=True),
    Column("status", String(20), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("close_reason", String(500), nullable=True),
    Column("embedding", LargeBinary, nullable=True),
)

proposals = Table(
    "proposals", metadata,
    Column("id", String(36), primary_key=True),
    Column("demand_id", String(36), nullable=False, index=True),
    Column("proposer_org_id", String(64), nullable=False, index=True),
    Column("achievement_ids", JSON, nullable=False),
    Column("message", Text, nullable=False),
    Column("status", String(20), nullable=False),  # submitted | accepted | rejected | withdrawn | in_deal
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decided_by", String(64), nullable=True),
    Column("reject_reason", String(30), nullable=True),
    Column("reject_note", String(1000), nullable=True),
    Column("withdrawn_at", DateTime(timezone=True), nullable=True),
    Column("transfer_id", String(36), nullable=True),
)

# Read model of published achievements, built only from catalog events.
achievements = Table(
    "achievements", metadata,
    Column("achievement_id", String(36), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("owner_org_id", String(64), nullable=False, index=True),
    Column("status", String(20), nullable=False),  # published | withdrawn | expired | transferred
    Column("title_zh", String(500), nullable=False),
    Column("title_en", String(500), nullable=False),
    Column("abstract_zh", Text, nullable=False),
    Column("abstract_en", Text, nullable=False),
    Column("keywords", JSON, nullable=False),
    Column("fields", JSON, nullable=False),
    Column("ipc_codes", JSON, nullable=False),
    Column("ip_type", String(40), nullable=True),
    Column("trl", Integer, nullable=True),
    Column("transfer_modes", JSON, nullable=False),
    Column("asking_price", BigInteger, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("negotiable", Boolean, nullable=False),
    Column("region", String(120), nullable=True),
    Column("ip_records", JSON, nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_event_time", DateTime(timezone=True), nullable=False),
)

# One vector per achievement version and model: computed once, never per query.
achievement_embeddings = Table(
    "achievement_embeddings", metadata,
    Column("achievement_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("model_id", String(64), primary_key=True),
    Column("vector", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Every change to a searchable population, so each replica's in-memory index catches up.
index_changes = Table(
    "index_changes", metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("population", String(20), nullable=False),  # achievement | demand
    Column("doc_id", String(36), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False, index=True),
)

declines = Table(
    "declines", metadata,
    Column("demand_id", String(36), primary_key=True),
    Column("achievement_id", String(36), primary_key=True),
    Column("reason", String(30), nullable=False),
    Column("note", String(1000), nullable=True),
    Column("declined_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

match_notifications = Table(
    "match_notifications", metadata,
    Column("demand_id", String(36), primary_key=True),
    Column("achievement_id", String(36), primary_key=True),
    Column("achievement_version", Integer, nullable=False),
    Column("relevance", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

transfers = Table(
    "transfers", metadata,
    Column("id", String(36), primary_key=True),
    Column("seller_org_id", String(64), nullable=False, index=True),
    Column("buyer_org_id", String(64), nullable=False, index=True),
    Column("achievement_ids", JSON, nullable=False),
    Column("demand_id", String(36), nullable=True),
    Column("proposal_id", String(36), nullable=True),
    Column("proposed_by_org_id", String(64), nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("seller_signed_at", DateTime(timezone=True), nullable=True),
    Column("buyer_signed_at", DateTime(timezone=True), nullable=True),
    Column("signed_at", DateTime(timezone=True), nullable=True),
    Column("notice_starts_at", DateTime(timezone=True), nullable=True),
    Column("notice_ends_at", DateTime(timezone=True), nullable=True),
    Column("completed_at", DateTime(timezone=True), nullable=True, index=True),
    Column("cancelled_at", DateTime(timezone=True), nullable=True),
    Column("cancelled_reason", String(1000), nullable=True),
    Column("cancelled_by_org_id", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("row_version", Integer, nullable=False),
)

transfer_offers = Table(
    "transfer_offers", metadata,
    Column("transfer_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("made_by_org_id", String(64), nullable=False),
    Column("mode", String(30), nullable=False),
    Column("exclusive", Boolean, nullable=False),
    Column("territory", String(200), nullable=False),
    Column("term_months", Integer, nullable=True),
    Column("price", BigInteger, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("royalty_rate_bp", Integer, nullable=True),
    Column("royalty_base", String(200), nullable=True),
    Column("royalty_minimum_annual", BigInteger, nullable=True),
    Column("pricing", String(30), nullable=False),
    Column("milestones", JSON, nullable=False),
    Column("note", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

MATCHING_TABLES = [  # created by migrations/versions/0002
    "demands", "proposals", "achievements", "achievement_embeddings", "index_changes", "declines",
    "match_notifications", "transfers", "transfer_offers",
]
