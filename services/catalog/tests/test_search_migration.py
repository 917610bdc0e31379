"""Migrations 0005 (the search change log) and 0006 (PostgreSQL's narrow text table) on SQLite
and PostgreSQL: each goes down and up again on a store with listings, and a catalog started on
the store afterwards searches it exactly (its columns are loaded from the rows, changes after
the upgrade are logged, text written while the narrow table did not exist is found)."""

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


async def test_0006_goes_down_and_up_with_listings_in_the_store(store_url, kafka_bootstrap, tmp_path):
    """PostgreSQL ranks text on achievement_search from 0006 on: going down puts the GIN index
    back on the achievement rows, going up copies every vector, also one written meanwhile."""
    u = "org-migration-t"
    async with running_catalog(store_url, kafka_bootstrap, tmp_path / "one", facet_cache_s=0) as api:
        await api.register_org(name="甲大学", org_id=u)
        first = (await api.published(u, title_en="Quantum dot display film"))["achievement_id"]
        second = (await api.published(u, title_en="Quantum sensing magnetometer"))["achievement_id"]
    pg = store_url.startswith("postgresql")
    db = Database(store_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("0005", down=True))
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            indexes = await conn.run_sync(lambda c: {i["name"] for i in inspect(c).get_indexes("achievements")})
        assert "achievement_search" not in tables
        if pg:
            assert "ix_achievements_search" in indexes
            async with db.engine.begin() as conn:  # a vector written while the narrow table does not exist
                await conn.execute(text("UPDATE achievements SET search_vector = search_vector || "
                                        "to_tsvector('simple', 'quartz') WHERE id = :i"), {"i": second})
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("head"))
        if pg:
            async with db.engine.connect() as conn:
                same_vectors = (await conn.execute(text(
                    "SELECT count(*) FROM achievements a JOIN achievement_search s ON s.id = a.id "
                    "WHERE s.search_vector = a.search_vector"))).scalar_one()
            assert same_vectors == 2
    finally:
        await db.engine.dispose()
    async with running_catalog(store_url, kafka_bootstrap, tmp_path / "two", facet_cache_s=0) as api:
        body = (await api.get(A, BUYER, params={"q": "quantum"})).json()
        assert sorted(i["achievement_id"] for i in body["items"]) == sorted([first, second])
        if pg:
            body = (await api.get(A, BUYER, params={"q": "quartz"})).json()
            assert [i["achievement_id"] for i in body["items"]] == [second]
        third = (await api.published(u, title_en="Quantum cascade laser"))["achievement_id"]
        body = (await api.get(A, BUYER, params={"q": "quantum laser"})).json()
        assert [i["achievement_id"] for i in body["items"]] == [third]
