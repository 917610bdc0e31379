"""The messaging tables every service has in its own store: the outbox and the inbox.

`add_messaging_tables(metadata)` puts them on a service's MetaData; each service's first
Alembic revision creates them with `create_messaging_tables()`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

# SQLite only auto-increments an INTEGER PRIMARY KEY (its rowid).
SeqType = BigInteger().with_variant(Integer(), "sqlite")


def add_messaging_tables(metadata: MetaData) -> tuple[Table, Table]:
    outbox = Table(
        "outbox",
        metadata,
        # seq orders publication; per aggregate it follows commit order because writers of
        # one aggregate serialise on the aggregate's own row before adding its events.
        Column("seq", SeqType, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("topic", String(249), nullable=False),
        Column("key", String(200), nullable=False),
        Column("type", String(200), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Index(
            "ix_outbox_unpublished",
            "seq",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
        Index("ix_outbox_published_at", "published_at"),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer_group", String(200), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("source", String(200), nullable=False),
        Column("type", String(200), nullable=False),
        Column("topic", String(249), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
    return outbox, inbox


def create_messaging_tables() -> None:
    """Alembic operations creating the outbox and inbox (call from a revision's upgrade)."""
    from alembic import op

    metadata = MetaData()
    outbox, inbox = add_messaging_tables(metadata)
    bind = op.get_bind()
    metadata.create_all(bind, tables=[outbox, inbox])


def drop_messaging_tables() -> None:
    from alembic import op

    op.drop_table("inbox")
    op.drop_table("outbox")
