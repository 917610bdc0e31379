"""Bulk import written in steps: each step's rows are written while the next step's are mapped.

With several steps every row must still be stored once, indexed with exactly the tokeniser's
tokens (SQLite FTS5 rows, PostgreSQL tsvector filled by the INSERT itself), given its history
entry and its event; a failure in any step must leave nothing stored; an import of one step's
rows or fewer is mapped before the transaction opens, as one step; and on PostgreSQL
everything after the first step is one step.
"""

from __future__ import annotations

import inspect
import json

import pytest
from catalog_helpers import achievement, read_events, who
from sqlalchemy import text

from techbridge_catalog.domain.rules import AchievementContent
from techbridge_catalog.service import imports
from techbridge_catalog.store.repository import search_fields

A = "/api/v1/catalog/achievements"
IMPORT = f"{A}/import"
NDJSON = {"content-type": "application/x-ndjson"}

SUBJECTS = [("钙钛矿太阳能电池", "Perovskite solar cell"), ("锂电池隔膜", "Lithium battery separator"),
            ("石墨烯导热膜", "Graphene thermal film"), ("固态电解质", "Solid electrolyte"),
            ("医学影像分割", "Medical image segmentation"), ("水稻抗病品种", "Disease-resistant rice"),
            ("氢燃料电池", "Hydrogen fuel cell"), ("柔性传感器", "Flexible sensor")]


def rows(n: int) -> list[dict]:
    out = []
    for i in range(n):
        zh, en = SUBJECTS[i % len(SUBJECTS)]
        out.append(achievement(title_zh=f"一种{zh}及其制备方法{i}", title_en=f"{en} number {i}",
                               abstract_zh=f"本发明公开了一种{zh}，适用于新能源领域。", keywords=[zh, en],
                               ipc_codes=["H01M 50/449", "C01B 32/184"][: 1 + i % 2]))
    return out


def jsonl(items) -> bytes:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in items).encode()


def fails_at_call(monkeypatch, owner, name: str, n: int) -> dict:
    """The n-th call of `owner.name` (a function or coroutine function) raises, as a store that
    went away would; the other calls go through. Returns the count of calls so far."""
    real = getattr(owner, name)
    calls = {"n": 0}

    def count() -> None:
        calls["n"] += 1
        if calls["n"] == n:
            raise RuntimeError("store unavailable")

    if inspect.iscoroutinefunction(real):
        async def wrapper(*args, **kw):
            count()
            return await real(*args, **kw)
    else:
        def wrapper(*args, **kw):
            count()
            return real(*args, **kw)
    monkeypatch.setattr(owner, name, wrapper)
    return calls


def history_fails_at_step(monkeypatch, step: int = 2) -> None:
    """The import's `step`-th write of history rows raises."""
    fails_at_call(monkeypatch, imports.History, "add_encoded", step)


async def stored_ids(api, org: str) -> set[str]:
    async with api.app.state.runtime.db.engine.connect() as conn:
        result = await conn.execute(text("SELECT id FROM achievements WHERE owner_org_id = :o"), {"o": org})
        return {r[0] for r in result}


async def index_mismatches(api, ids: list[str]) -> list[str]:
    """Ids whose stored search index differs from the tokens of their stored content."""
    engine = api.app.state.runtime.db.engine
    bad = []
    async with engine.connect() as conn:
        for aid in ids:
            content = (await conn.execute(text("SELECT content FROM achievements WHERE id = :i"), {"i": aid})).scalar_one()
            if isinstance(content, str):
                content = json.loads(content)
            t, k, ab = search_fields(AchievementContent.model_validate(content))
            if engine.dialect.name == "sqlite":
                got = (await conn.execute(text(
                    "SELECT f.title, f.keywords, f.abstract FROM achievement_fts f "
                    "JOIN achievements a ON a.fts_rowid = f.rowid WHERE a.id = :i"), {"i": aid})).one()
                same = tuple(got) == (t, k, ab)
            else:
                same = (await conn.execute(text(
                    "SELECT search_vector = setweight(to_tsvector('simple', :t), 'A') || "
                    "setweight(to_tsvector('simple', :k), 'B') || setweight(to_tsvector('simple', :ab), 'C') "
                    "FROM achievements WHERE id = :i"), {"i": aid, "t": t, "k": k, "ab": ab})).scalar_one()
            if not same:
                bad.append(aid)
    return bad


async def test_import_in_several_steps_stores_every_row_with_its_index_history_and_event(api, kafka_bootstrap,
                                                                                       monkeypatch):
    monkeypatch.setattr(imports, "PIPELINE_ROWS", 3)
    monkeypatch.setattr(imports, "POSTGRES_STEP_ROWS", 3)
    mapped: list[int] = []
    real_map = imports.map_rows
    monkeypatch.setattr(imports, "map_rows", lambda items, *more: mapped.append(len(items)) or real_map(items, *more))
    org = (await api.register_org())["organisation_id"]
    owner = who(org, "institution")
    r = await api.post(IMPORT, owner, content=jsonl(rows(8)), params={"submit": "true"}, headers=NDJSON)
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["total"], report["imported"], report["rejected"]) == (8, 8, 0)
    assert mapped == [3, 3, 2]  # three steps, each row mapped once
    ids = [row["achievement_id"] for row in report["rows"]]
    assert [row["row"] for row in report["rows"]] == list(range(1, 9))
    assert await stored_ids(api, org) == set(ids)
    assert await index_mismatches(api, ids) == []
    for i, aid in enumerate(ids):
        a = (await api.get(f"{A}/{aid}", owner)).json()
        assert a["title_en"] == f"{SUBJECTS[i % len(SUBJECTS)][1]} number {i}" and a["status"] == "submitted"
        history = (await api.get(f"{A}/{aid}/history", owner)).json()["items"]
        assert [h["action"] for h in history] == ["import"]
        assert {c["field"] for c in history[0]["changes"]} >= {"title_zh", "trl", "confidential_details"}
    events = await read_events(kafka_bootstrap, "techbridge.catalog.achievement.v1", set(ids), want=8)
    assert sorted(e["subject"] for e in events) == sorted(ids)
    # the owner finds them by words of every step (segmented Chinese and stemmed English)
    found = await api.get(A, owner, params={"q": "氢燃料电池", "status": "submitted", "limit": 100})
    assert {i["achievement_id"] for i in found.json()["items"]} == {ids[6]}
    found = await api.get(A, owner, params={"q": "sensors", "status": "submitted", "limit": 100})
    assert {i["achievement_id"] for i in found.json()["items"]} == {ids[7]}


@pytest.mark.parametrize("failing", ["map_rows", "insert"])
async def test_a_failure_in_a_later_step_leaves_nothing_stored(api, monkeypatch, failing):
    monkeypatch.setattr(imports, "PIPELINE_ROWS", 2)
    monkeypatch.setattr(imports, "POSTGRES_STEP_ROWS", 2)
    owner = imports if failing == "map_rows" else imports.Achievements
    calls = fails_at_call(monkeypatch, owner, failing, 3)
    org = (await api.register_org())["organisation_id"]
    with pytest.raises(RuntimeError, match="store unavailable"):
        await api.post(IMPORT, who(org, "institution"), content=jsonl(rows(7)), params={"submit": "true"},
                       headers=NDJSON)
    assert calls["n"] == 3  # two steps were written (or mapped) before the failure
    assert await stored_ids(api, org) == set()
    async with api.app.state.runtime.db.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM history WHERE action = 'import' AND actor_org = :o"),
                                   {"o": org})).scalar_one() == 0
        assert (await conn.execute(text("SELECT count(*) FROM outbox WHERE type LIKE '%submitted%'"))).scalar_one() == 0
    # and the same rows import afterwards
    monkeypatch.undo()
    r = await api.post(IMPORT, who(org, "institution"), content=jsonl(rows(7)), headers=NDJSON)
    assert r.status_code == 200 and r.json()["imported"] == 7


async def test_an_import_of_one_step_is_mapped_before_the_transaction(api, monkeypatch):
    """The stepping does not apply to small imports: one mapping, done with the validation."""
    mapped: list[int] = []
    real_map = imports.map_rows
    monkeypatch.setattr(imports, "map_rows", lambda items, *more: mapped.append(len(items)) or real_map(items, *more))
    org = (await api.register_org())["organisation_id"]
    prepared = await imports.prepare({"id": org, "region": "Shanghai"}, imports.parse_jsonl(jsonl(rows(5)).decode()),
                                     best_effort=False, submit=False)
    assert mapped == [5] and prepared.first is not None and len(prepared.first.rows) == 5
    r = await api.post(IMPORT, who(org, "institution"), content=jsonl(rows(5)), headers=NDJSON)
    assert r.status_code == 200 and r.json()["imported"] == 5
    assert mapped == [5, 5]
    assert await index_mismatches(api, [row["achievement_id"] for row in r.json()["rows"]]) == []


async def test_postgresql_writes_everything_after_the_first_step_in_one_step(api, monkeypatch):
    """Smaller steps cost PostgreSQL more (statement triggers, parameter encoding) than their
    overlap gains: there the steps apply only to SQLite."""
    monkeypatch.setattr(imports, "PIPELINE_ROWS", 3)
    mapped: list[int] = []
    real_map = imports.map_rows
    monkeypatch.setattr(imports, "map_rows", lambda items, *more: mapped.append(len(items)) or real_map(items, *more))
    org = (await api.register_org())["organisation_id"]
    r = await api.post(IMPORT, who(org, "institution"), content=jsonl(rows(8)), headers=NDJSON)
    assert r.status_code == 200 and r.json()["imported"] == 8
    sqlite = api.app.state.runtime.db.engine.dialect.name == "sqlite"
    assert mapped == ([3, 3, 2] if sqlite else [3, 5])
    ids = [row["achievement_id"] for row in r.json()["rows"]]
    assert await stored_ids(api, org) == set(ids)
    assert await index_mismatches(api, ids) == []


async def test_best_effort_steps_skip_rejected_rows(api, monkeypatch):
    monkeypatch.setattr(imports, "PIPELINE_ROWS", 2)
    monkeypatch.setattr(imports, "POSTGRES_STEP_ROWS", 2)
    org = (await api.register_org())["organisation_id"]
    items = rows(6)
    items[1]["trl"] = 12
    items[4]["transfer_modes"] = []
    r = await api.post(IMPORT, who(org, "institution"), content=jsonl(items), params={"mode": "best_effort"},
                       headers=NDJSON)
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["imported"], report["rejected"]) == (4, 2)
    ids = [row["achievement_id"] for row in report["rows"] if row["achievement_id"]]
    assert [row["row"] for row in report["rows"] if row["errors"]] == [2, 5]
    assert await stored_ids(api, org) == set(ids)
    assert await index_mismatches(api, ids) == []


async def test_each_step_writes_each_table_with_one_statement_on_postgresql(api, monkeypatch):
    """asyncpg executes an executemany once per row, so every statement trigger would fire per
    row: on PostgreSQL a step's rows go as arrays into one INSERT per table. SQLite keeps its
    executemany (one prepared statement in C, no statement triggers), its steps of PIPELINE_ROWS."""
    from sqlalchemy import event

    monkeypatch.setattr(imports, "PIPELINE_ROWS", 3)
    engine = api.app.state.runtime.db.engine
    seen: list[tuple[str, bool, int]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        for t in ("achievements", "achievement_ipc", "history"):
            if statement.startswith(f"INSERT INTO {t} "):
                seen.append((t, executemany, len(parameters) if executemany else 1))

    org = (await api.register_org())["organisation_id"]
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        r = await api.post(IMPORT, who(org, "institution"), content=jsonl(rows(8)), headers=NDJSON)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert r.status_code == 200 and r.json()["imported"] == 8
    if engine.dialect.name == "postgresql":
        # two steps (3, then 5 rows), each table once per step, no executemany
        assert seen == [("achievements", False, 1), ("achievement_ipc", False, 1), ("history", False, 1)] * 2
    else:  # three steps of 3, 3 and 2 rows, each table an executemany of the step's rows
        for table in ("achievements", "history"):
            assert [x for x in seen if x[0] == table] == [(table, True, n) for n in (3, 3, 2)]
    ids = [row["achievement_id"] for row in r.json()["rows"]]
    assert await stored_ids(api, org) == set(ids)
    assert await index_mismatches(api, ids) == []


async def test_an_imported_achievement_reads_back_as_one_created_through_the_api(api):
    """The import encodes content and history changes as JSON itself: they read back exactly
    as those of an achievement created one at a time (SQLAlchemy's own encoding)."""
    org = (await api.register_org())["organisation_id"]
    owner = who(org, "institution")
    body = rows(1)[0] | {"keywords": ["固态电池", "solid-state \"quoted\" \\ path"], "co_owners": [],
                         "asking_price": {"amount": 1234500, "currency": "CNY"}, "negotiable": False}
    created = await api.post(A, owner, json=body)
    assert created.status_code == 201, created.text
    r = await api.post(IMPORT, owner, content=jsonl([body]), headers=NDJSON)
    assert r.status_code == 200 and r.json()["imported"] == 1
    imported_id = r.json()["rows"][0]["achievement_id"]
    one, other = (await api.get(f"{A}/{created.json()['achievement_id']}", owner)).json(), \
        (await api.get(f"{A}/{imported_id}", owner)).json()
    volatile = {"achievement_id", "created_at", "updated_at", "listed_at", "version"}
    assert {k: v for k, v in one.items() if k not in volatile} == {k: v for k, v in other.items() if k not in volatile}
    h_one = (await api.get(f"{A}/{created.json()['achievement_id']}/history", owner)).json()["items"][0]["changes"]
    h_other = (await api.get(f"{A}/{imported_id}/history", owner)).json()["items"][0]["changes"]
    assert h_one == h_other and any(c["field"] == "keywords" for c in h_other)
