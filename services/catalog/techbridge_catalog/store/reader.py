"""Read-only sessions for queries (search, reading an achievement, histories, listings).

A unit of work on SQLite begins with BEGIN IMMEDIATE (it takes the database's write lock) and
queues on the process's writer lock, which is right for read-modify-write but makes every
search wait behind an import and block every writer while it counts facets. Queries need
neither: in WAL mode a deferred transaction reads one consistent snapshot while writers go on.
On SQLite the reader therefore has its own engine on the same file (deferred BEGIN,
`query_only`, so it can never write); on PostgreSQL it shares the service's engine and pool
(the writer lock is not used there), and its transactions are read-only.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from techbridge_shared.db import Database


class Reader:
    def __init__(self, db: Database):
        self._own = db.is_sqlite
        if db.is_sqlite:
            self.engine: AsyncEngine = create_async_engine(db.url, connect_args={"timeout": 30})
            _sqlite_deferred_read_only(self.engine)
        else:
            self.engine = db.engine.execution_options(postgresql_readonly=True)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One snapshot for every statement in the block; nothing is ever committed."""
        async with self._sessions() as session:
            await session.begin()
            try:
                yield session
            finally:
                await session.rollback()

    async def dispose(self) -> None:
        if self._own:
            await self.engine.dispose()


def _sqlite_deferred_read_only(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # BEGIN is ours, as in the service's engine
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN DEFERRED")
