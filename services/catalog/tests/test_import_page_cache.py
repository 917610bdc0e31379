"""SQLite imports write with a wide page cache, and their connection gets its own size back.

A bulk import inserts into a dozen b-trees keyed by random ids; with SQLite's default 2 MiB
cache a transaction of a few thousand rows spills dirty pages to the WAL and reads evicted
ones back. The import's connection is given `IMPORT_PAGE_CACHE_KIB` for its transaction, and
the former size again when it returns to the pool, whether the import committed or failed, so
no other unit of work keeps a cache that size. PostgreSQL's buffers are the server's: nothing
is changed there.
"""

from __future__ import annotations

import pytest
from catalog_helpers import who
from sqlalchemy import event
from test_import_steps import IMPORT, NDJSON, history_fails_at_step, jsonl, rows, stored_ids

from techbridge_catalog.service import imports
from techbridge_catalog.store import repository
from techbridge_catalog.store.repository import IMPORT_PAGE_CACHE_KIB


async def _driver_cache_size(driver) -> int:
    async with driver.execute("PRAGMA cache_size") as cursor:
        return (await cursor.fetchone())[0]


def _watch_inserts(monkeypatch) -> list[tuple]:
    """(cache size, the driver connection) as each step's insert saw them."""
    seen: list[tuple] = []
    real_insert = imports.Achievements.insert

    async def insert(self, new_rows):
        conn = await self.s.connection()
        raw = await conn.get_raw_connection()
        size = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one() if self.s.bind.dialect.name == "sqlite" \
            else None
        seen.append((size, raw.driver_connection))
        await real_insert(self, new_rows)

    monkeypatch.setattr(imports.Achievements, "insert", insert)
    return seen


def _engine_on(api, dialect: str):
    """The catalog's engine, if its store is `dialect` (the page cache is SQLite's, per
    connection; on PostgreSQL imports must leave connections alone); else the test is skipped."""
    engine = api.app.state.runtime.db.engine
    if engine.dialect.name != dialect:
        pytest.skip(f"{dialect} only")
    return engine


async def test_an_sqlite_import_writes_with_a_wide_cache_and_gives_it_back(api, monkeypatch):
    engine = _engine_on(api, "sqlite")
    monkeypatch.setattr(imports, "PIPELINE_ROWS", 2)
    seen = _watch_inserts(monkeypatch)
    org = (await api.register_org())["organisation_id"]
    async with engine.connect() as conn:
        default = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one()
    assert -default < IMPORT_PAGE_CACHE_KIB
    r = await api.post(IMPORT, who(org, "institution"), content=jsonl(rows(5)), params={"submit": "true"},
                       headers=NDJSON)
    assert r.status_code == 200 and r.json()["imported"] == 5
    assert [size for size, _ in seen] == [-IMPORT_PAGE_CACHE_KIB] * 3  # every step
    driver = seen[0][1]
    assert all(d is driver for _, d in seen)
    assert await _driver_cache_size(driver) == default  # back in the pool with its own size
    # the next unit of work on any pooled connection starts from the default too
    r = await api.post(IMPORT, who(org, "institution"), content=jsonl(rows(1)), headers=NDJSON)
    assert r.status_code == 200
    assert seen[-1][0] == -IMPORT_PAGE_CACHE_KIB and await _driver_cache_size(seen[-1][1]) == default


async def test_a_failed_sqlite_import_gives_the_cache_back_too(api, monkeypatch):
    engine = _engine_on(api, "sqlite")
    monkeypatch.setattr(imports, "PIPELINE_ROWS", 2)
    seen = _watch_inserts(monkeypatch)
    org = (await api.register_org())["organisation_id"]
    history_fails_at_step(monkeypatch)
    async with engine.connect() as conn:
        default = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one()
    with pytest.raises(RuntimeError, match="store unavailable"):
        await api.post(IMPORT, who(org, "institution"), content=jsonl(rows(5)), headers=NDJSON)
    assert [size for size, _ in seen] == [-IMPORT_PAGE_CACHE_KIB] * 2
    assert await _driver_cache_size(seen[0][1]) == default
    assert await stored_ids(api, org) == set()


def test_a_connection_that_cannot_be_reset_is_discarded():
    """Should the reset fail, the connection must not go on serving with the wide cache."""
    class Record:
        def __init__(self, info):
            self.info = info
            self.invalidated = False

        def invalidate(self):
            self.invalidated = True

    class Broken:
        def cursor(self):
            raise RuntimeError("closed")

    widened = Record({repository._CACHE_KEY: -2000})
    repository._restore_import_connection(Broken(), widened)
    assert widened.invalidated and repository._CACHE_KEY not in widened.info
    untouched = Record({})  # a connection no import widened is not reset (nor discarded)
    repository._restore_import_connection(Broken(), untouched)
    assert not untouched.invalidated


async def test_postgresql_imports_leave_the_connection_alone(api, monkeypatch):
    engine = _engine_on(api, "postgresql")
    org = (await api.register_org())["organisation_id"]
    r = await api.post(IMPORT, who(org, "institution"), content=jsonl(rows(3)), headers=NDJSON)
    assert r.status_code == 200 and r.json()["imported"] == 3
    assert not event.contains(engine.sync_engine.pool, "checkin", repository._restore_import_connection)
