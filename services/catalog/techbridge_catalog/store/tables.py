"""The catalog's tables. Search structures that SQLAlchemy cannot describe portably (the FTS5
virtual table on SQLite; on PostgreSQL the tsvector column, the narrow `achievement_search`
table with its GIN index and the triggers that copy vectors into it; the triggers that keep the
facet counts and the search change log) are created by migrations 0002 and 0004-0007 and read
only in `store/search.py`."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from techbridge_shared.tables import SeqType, add_messaging_tables

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)

organisations = Table(
    "organisations", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("name_en", String(300), nullable=False, default=""),
    Column("kind", String(20), nullable=False),
    Column("region", String(100), nullable=False, default=""),
    Column("credit_code", String(18), nullable=False, unique=True),
    Column("headcount", Integer, nullable=True),
    Column("revenue_amount", BigInteger, nullable=True),
    Column("revenue_currency", String(3), nullable=True),
    Column("registered_on", Date, nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

achievements = Table(
    "achievements", metadata,
    Column("id", String(64), primary_key=True),
    Column("owner_org_id", String(64), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content", JSON, nullable=False),
    # Denormalised from content for filters, sorting and facets.
    Column("ip_type", String(30), nullable=False),
    Column("trl", Integer, nullable=False),
    Column("modes_bits", Integer, nullable=False),
    Column("price_amount", BigInteger, nullable=True),
    Column("price_currency", String(3), nullable=True),
    Column("negotiable", Boolean, nullable=False),
    Column("region", String(100), nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("listed_at", DateTime(timezone=True), nullable=False),  # recency sort: published or created
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=True),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("transferred_at", DateTime(timezone=True), nullable=True),
    Column("fts_rowid", Integer, nullable=True),  # SQLite: rowid of the FTS5 row
    Index("ix_achievements_status_listed", "status", "listed_at", "id"),
    Index("ix_achievements_expires", "status", "expires_at"),
    Index("ix_achievements_facets", "status", "ip_type", "trl", "modes_bits", "owner_org_id", "price_currency",
          "price_amount", "id"),
    # SQLite only (migration 0004): full-text hits find what filters and ties need without the row.
    Index("ix_achievements_fts_rowid", "fts_rowid", "status", "ip_type", "trl", "modes_bits", "owner_org_id",
          "listed_at", "id"),
)

achievement_ipc = Table(
    "achievement_ipc", metadata,
    Column("achievement_id", String(64), primary_key=True),
    Column("code_key", String(40), primary_key=True),  # 'H01M10/052': prefix-matchable
    Column("subclass", String(4), nullable=False),      # 'H01M': the facet
    Index("ix_achievement_ipc_key", "code_key"),
    Index("ix_achievement_ipc_subclass", "subclass", "achievement_id"),
)

# Facet counts per combination of values, kept by triggers (migration 0004) in the same
# transaction as every change of an achievement or its IPC codes; read by store/search.py.
facet_cells = Table(
    "facet_cells", metadata,
    Column("status", String(20), primary_key=True),
    Column("ip_type", String(30), primary_key=True),
    Column("trl", Integer, primary_key=True),
    Column("modes_bits", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
)

facet_owner_cells = Table(
    "facet_owner_cells", metadata,
    Column("status", String(20), primary_key=True),
    Column("owner_org_id", String(64), primary_key=True),
    Column("ip_type", String(30), primary_key=True),
    Column("trl", Integer, primary_key=True),
    Column("modes_bits", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
)

facet_ipc_cells = Table(
    "facet_ipc_cells", metadata,
    Column("status", String(20), primary_key=True),
    Column("subclass", String(4), primary_key=True),
    Column("ip_type", String(30), primary_key=True),
    Column("trl", Integer, primary_key=True),
    Column("modes_bits", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
)

deal_parties = Table(
    "deal_parties", metadata,
    Column("transfer_id", String(64), primary_key=True),
    Column("achievement_id", String(64), primary_key=True),
    Column("seller_org_id", String(64), nullable=False),
    Column("buyer_org_id", String(64), nullable=False),
    Column("mode", String(30), nullable=True),
    Column("state", String(20), nullable=False),  # signed | completed | cancelled
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_deal_parties_achievement", "achievement_id"),
)

valuations = Table(
    "valuations", metadata,
    Column("achievement_id", String(64), primary_key=True),
    Column("requested_by_org_id", String(64), primary_key=True),
    Column("valuation_id", String(64), nullable=False),
    Column("low_amount", BigInteger, nullable=False),
    Column("mid_amount", BigInteger, nullable=False),
    Column("high_amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("methods", JSON, nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=False),
)

history = Table(
    "history", metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("aggregate", String(20), nullable=False),
    Column("aggregate_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("actor_org", String(64), nullable=True),
    Column("action", String(40), nullable=False),
    Column("from_status", String(20), nullable=True),
    Column("to_status", String(20), nullable=True),
    Column("reason", Text, nullable=True),
    Column("changes", JSON, nullable=False),
    Index("ix_history_aggregate", "aggregate", "aggregate_id", "seq"),
)
