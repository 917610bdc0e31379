"""SQLite imports bind their rows' parameters themselves: the stored values must be exactly those
SQLAlchemy's statements store.

An import's rows are turned into the driver's parameters in the mapping thread, with the bind
processors SQLAlchemy would apply, and written with the driver's executemany (store/repository.py,
`sqlite_parameters`). Here one achievement is written both ways, and its history both ways, and
every stored column is compared as SQLite holds it (value and storage class).
"""

from __future__ import annotations

from datetime import UTC, datetime

from catalog_helpers import achievement
from sqlalchemy import insert, text
from test_import_page_cache import _engine_on

from techbridge_catalog.domain.achievement import Achievement
from techbridge_catalog.domain.model import Status
from techbridge_catalog.domain.rules import AchievementContent
from techbridge_catalog.store import repository
from techbridge_catalog.store.repository import Achievements, History, encode_json, new_row, sqlite_parameters

AT = datetime(2026, 11, 27, 1, 2, 3, 456789, tzinfo=UTC)


def _achievement(aid: str, org: str) -> Achievement:
    content = AchievementContent.model_validate(achievement(
        title_zh="一种锂电池隔膜", asking_price={"amount": 123_400, "currency": "CNY"}, negotiable=True,
        ipc_codes=["H01M 50/449", "C01B 32/184"]))
    return Achievement(id=aid, owner_org_id=org, status=Status.submitted, version=1, content=content,
                       created_at=AT, updated_at=AT, listed_at=AT, submitted_at=AT)


async def _stored(conn, table: str, key: str, value: str, skip: set[str]) -> dict:
    names = [r[1] for r in (await conn.exec_driver_sql(f"PRAGMA table_info({table})")).all() if r[1] not in skip]
    cols = ", ".join(f"{n}, typeof({n})" for n in names)
    row = (await conn.execute(text(f"SELECT {cols} FROM {table} WHERE {key} = :v"), {"v": value})).one()
    return {n: (row[2 * i], row[2 * i + 1]) for i, n in enumerate(names)}


async def test_imported_rows_are_stored_as_sqlalchemy_stores_them(api):
    _engine_on(api, "sqlite")
    org = (await api.register_org())["organisation_id"]
    by_sqlalchemy, by_driver = new_row(_achievement("a-sqlalchemy", org)), new_row(_achievement("a-driver", org))
    sqlite_parameters([by_driver])
    assert by_sqlalchemy.sqlite is None and by_driver.sqlite is not None
    change = encode_json([{"field": "title_zh", "old": None, "new": "一种锂电池隔膜"}])
    entry = {"aggregate": "achievement", "at": AT, "actor": "user-1", "actor_org": org, "action": "import",
             "from_status": None, "to_status": "submitted", "reason": None, "changes": change}
    async with api.app.state.runtime.unit_of_work() as uow:
        await Achievements(uow.session).insert([by_sqlalchemy])  # (rows without parameters: SQLAlchemy's way)
        await Achievements(uow.session).insert([by_driver])
        await uow.session.execute(insert(repository._HISTORY_ENCODED), [{**entry, "aggregate_id": "a-sqlalchemy"}])
        await History(uow.session).add_encoded([{**entry, "aggregate_id": "a-driver"}])
        await uow.commit()
    async with api.app.state.runtime.db.engine.connect() as conn:
        one = await _stored(conn, "achievements", "id", "a-sqlalchemy", {"id", "fts_rowid"})
        other = await _stored(conn, "achievements", "id", "a-driver", {"id", "fts_rowid"})
        assert one == other
        assert one["listed_at"] == ("2026-11-27 01:02:03.456789", "text") and one["negotiable"] == (1, "integer")
        assert (await _stored(conn, "history", "aggregate_id", "a-sqlalchemy", {"seq", "aggregate_id"})
                == await _stored(conn, "history", "aggregate_id", "a-driver", {"seq", "aggregate_id"}))
        ipc = "SELECT code_key, subclass FROM achievement_ipc WHERE achievement_id = :i ORDER BY code_key"
        assert ((await conn.execute(text(ipc), {"i": "a-sqlalchemy"})).all()
                == (await conn.execute(text(ipc), {"i": "a-driver"})).all() != [])
        fts = ("SELECT title, keywords, abstract FROM achievement_fts WHERE rowid = "
               "(SELECT fts_rowid FROM achievements WHERE id = :i)")
        assert (await conn.execute(text(fts), {"i": "a-sqlalchemy"})).one() == \
            (await conn.execute(text(fts), {"i": "a-driver"})).one()
