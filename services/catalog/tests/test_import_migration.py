"""Migration 0007 (cheaper imports on PostgreSQL) goes down and up again on a store with
listings, on both stores: on PostgreSQL the index on SQLite's FTS rowid goes (and comes back on
the way down) and the IPC count trigger is replaced (the former one restored on the way down);
SQLite keeps its FTS rowid index, which its searches use. Imports before and after keep every
count cell exact."""

from __future__ import annotations

import functools
import json

import pytest
from catalog_helpers import achievement, who
from conftest import running_catalog
from sqlalchemy import inspect, text
from test_facet_counts import cells_exact

from techbridge_catalog.main import MIGRATIONS_DIR
from techbridge_shared.db import Database
from techbridge_shared.migrations import migration_step

pytestmark = pytest.mark.timeout(180)

A = "/api/v1/catalog/achievements"
U = "org-import-migration"
_migrate = functools.partial(migration_step, MIGRATIONS_DIR)


async def _import(api, n: int, trl: int) -> list[str]:
    rows = [achievement(trl=trl, ipc_codes=["H01M 10/052", "H01M 50/449", "G06N 3/08"][: 1 + i % 3]) for i in range(n)]
    r = await api.post(f"{A}/import", who(U, "institution"), params={"submit": "true"},
                       content="\n".join(json.dumps(x, ensure_ascii=False) for x in rows).encode(),
                       headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200 and r.json()["imported"] == n, r.text
    return [row["achievement_id"] for row in r.json()["rows"]]


async def _structures(db: Database) -> tuple[bool, str | None]:
    """(is there an index on achievements.fts_rowid, the IPC count trigger's body on PostgreSQL)."""
    async with db.engine.connect() as conn:
        indexes = await conn.run_sync(lambda c: {i["name"] for i in inspect(c).get_indexes("achievements")})
        body = None
        if db.engine.dialect.name == "postgresql":
            body = (await conn.execute(text(
                "SELECT prosrc FROM pg_proc WHERE proname = 'catalog_facets_ipc_inserted'"))).scalar_one()
    return "ix_achievements_fts_rowid" in indexes, body


async def test_0007_goes_down_and_up_with_listings_in_the_store(store_url, kafka_bootstrap, tmp_path):
    pg = store_url.startswith("postgresql")
    async with running_catalog(store_url, kafka_bootstrap, tmp_path / "one", facet_cache_s=0) as api:
        await api.register_org(name="甲大学", org_id=U)
        await _import(api, 4, trl=3)
        await cells_exact(api)
    db = Database(store_url)
    try:
        indexed, body = await _structures(db)
        assert indexed is not pg  # gone on PostgreSQL only
        assert pg is (body is not None and "HAVING count(*)" in body)
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("0006", down=True))
        indexed, body = await _structures(db)
        assert indexed
        assert pg is (body is not None and "NOT EXISTS (SELECT 1 FROM new_rows m" in body)
        async with db.engine.begin() as conn:  # the former trigger counts an import statement too
            await conn.execute(text(
                "INSERT INTO achievement_ipc (achievement_id, code_key, subclass) "
                "SELECT id, 'C01B32/184', 'C01B' FROM achievements"))
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("head"))
        indexed, body = await _structures(db)
        assert indexed is not pg and pg is (body is not None and "HAVING count(*)" in body)
    finally:
        await db.engine.dispose()
    async with running_catalog(store_url, kafka_bootstrap, tmp_path / "two", facet_cache_s=0) as api:
        await cells_exact(api)
        ids = await _import(api, 5, trl=6)
        await cells_exact(api)
        reviewer = who(None, "government")
        body = (await api.get(A, reviewer, params={"status": "submitted", "trl_min": 6, "limit": 100})).json()
        assert {i["achievement_id"] for i in body["items"]} == set(ids)
        counts = {f["value"]: f["count"] for f in
                  (await api.get(A, reviewer, params={"status": "submitted"})).json()["facets"]["ipc_class"]}
        assert counts == {"H01M": 9, "G06N": 2, "C01B": 4}
