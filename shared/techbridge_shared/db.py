"""One async SQLAlchemy engine per service, on SQLite (embedded default) or PostgreSQL.

SQLite: WAL, a busy timeout, foreign keys, and `BEGIN IMMEDIATE` for every transaction, so a
read-modify-write cannot see a stale snapshot (pysqlite otherwise begins lazily).
PostgreSQL: asyncpg with a bounded pool and pre-ping.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from .settings import ConfigurationError, DatabaseSettings


def resolve_database_url(settings: DatabaseSettings, service: str) -> str:
    """The configured URL, or an SQLite file under the data dir (created if missing)."""
    if settings.database_url:
        try:
            url = make_url(settings.database_url)
        except Exception:
            raise ConfigurationError(
                f"invalid setting {service.upper()}_DATABASE_URL: not a database URL"
            ) from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ConfigurationError(
                f"invalid setting {service.upper()}_DATABASE_URL: "
                f"backend {url.get_backend_name()!r} is not supported (sqlite or postgresql)"
            )
        return settings.database_url
    data_dir = Path(getattr(settings, "data_dir", ".data"))
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{data_dir / (service + '.db')}"


def redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


class Database:
    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10):
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.is_sqlite:
            self.engine: AsyncEngine = create_async_engine(
                url, echo=echo, connect_args={"timeout": 30}
            )
            _sqlite_begin_immediate(self.engine)
        else:
            self.engine = create_async_engine(
                url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time and its busy handler waits by sleeping (1, 2, 5, 10,
        # ... ms), which under concurrent requests costs far more than the writes; units of
        # work in this process queue here instead.
        self._sqlite_writer = asyncio.Lock() if self.is_sqlite else None
        self._sqlite_writer_task: asyncio.Task | None = None

    @classmethod
    def from_settings(cls, settings: DatabaseSettings, service: str) -> Database:
        return cls(
            resolve_database_url(settings, service),
            echo=settings.database_echo,
            pool_size=settings.database_pool_size,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    async def acquire_writer(self) -> None:
        """Wait for this process's turn to write (SQLite only; a no-op on PostgreSQL)."""
        if self._sqlite_writer is None:
            return
        task = asyncio.current_task()
        if self._sqlite_writer_task is task:
            raise RuntimeError("a unit of work was opened inside another one in the same task")
        await self._sqlite_writer.acquire()
        self._sqlite_writer_task = task

    def release_writer(self) -> None:
        if self._sqlite_writer is not None and self._sqlite_writer.locked():
            self._sqlite_writer_task = None
            self._sqlite_writer.release()

    async def ping(self, timeout: float = 2.0) -> None:
        async def _ping():
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        await asyncio.wait_for(_ping(), timeout)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_begin_immediate(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Take transaction control away from pysqlite so BEGIN is ours (SQLAlchemy's recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


async def wait_for_database(db: Database, setting_name: str, timeout_s: float) -> None:
    """Retry briefly (a server may still be starting), then fail with one line."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await db.ping(timeout=max(1.0, min(5.0, timeout_s)))
            return
        except Exception as exc:  # driver errors differ per backend; all mean "unreachable"
            if asyncio.get_running_loop().time() >= deadline:
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
                reason = reason[0] if reason else type(exc).__name__
                raise ConfigurationError(
                    f"database at {setting_name}={redact(db.url)} is unreachable: {reason}"
                ) from None
            await asyncio.sleep(0.5)


