"""Migration 0005 (the search change log) on SQLite and PostgreSQL: it goes down and up again
on a store with listings, and a catalog started on the store afterwards searches it exactly
(its columns are loaded from the rows, and changes after the upgrade are logged)."""

from __future__ import annotations

import functools
import pytest
from catalog_helpers import who
from conftest import running_catalog
from sqlalchemy import inspect, text

from techbridge_catalog.main import MIGRATIONS_DIR
from techbridge_shared.db import Database
from techbridge_shared.migrations import migration_step

pytestmark = pytest.mark.timeout(180)

A = "/api/v1/catalog/achievements"
BUYER = who("org-migration-buyer", "enterprise")


_migrate = functools.partial(migration_step, MIGRATIONS_DIR)


async def test_0005_goes_down_and_up_with_listings_in_the_store(store_url, kafka_bootstrap, tmp_path):
    u = "org-migration-u"
    async with running_catalog(store_url, kafka_bootstrap, tmp_path / "one", facet_cache_s=0) as api:
        await api.register_org(name="甲大学", org_id=u)
        await api.published(u, trl=3)
    db = Database(store_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("0004", down=True))
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert "search_changes" not in tables and "search_horizon" not in tables
        async with db.engine.begin() as conn:  # a change while the log does not exist
            await conn.execute(text("UPDATE achievements SET trl = 4"))
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("head"))
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM search_changes"))).scalar_one() == 0
    finally:
        await db.engine.dispose()
    async with running_catalog(store_url, kafka_bootstrap, tmp_path / "two", facet_cache_s=0) as api:
        body = (await api.get(A, BUYER)).json()
        assert body["total"] == 1 and [(f["value"], f["count"]) for f in body["facets"]["trl"]] == [(4, 1)]
        await api.published(u, trl=6)
        body = (await api.get(A, BUYER)).json()
        assert body["total"] == 2 and {f["value"] for f in body["facets"]["trl"]} == {4, 6}
