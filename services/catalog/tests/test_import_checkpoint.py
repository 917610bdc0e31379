"""SQLite imports commit without checkpointing the WAL; a background thread checkpoints it.

A checkpoint copies the WAL into the database file and fsyncs both; left to the committing
connection (SQLite's auto-checkpoint) every large import waited for it inside its request. The
import's connection gets its auto-checkpoint raised to a backstop for its transaction (back to
its own value in the pool, whether the import committed or failed) and, back in the pool, asks
the file's `Checkpointer` for a PASSIVE checkpoint. Should that thread fall behind, the backstop
makes the commit checkpoint itself, so the WAL stays bounded. Statement journals of the
catalog's writing connections are kept in memory (`temp_store = MEMORY`).

Whether frames were checkpointed is read from the WAL index (the `-shm` file): the number of
frames in the WAL (`mxFrame`) and how many of them are in the database file (`nBackfill`).
"""

from __future__ import annotations

import sqlite3
import struct
import threading
from pathlib import Path

import pytest
from catalog_helpers import who
from test_import_page_cache import _engine_on
from test_import_steps import IMPORT, NDJSON, history_fails_at_step, jsonl, rows, stored_ids

from techbridge_catalog.service import imports
from techbridge_catalog.store import checkpoint, repository
from techbridge_catalog.store.checkpoint import Checkpointer


def wal_frames(db: str) -> tuple[int, int]:
    """(frames in the WAL, frames of it already copied into the database file), from the WAL
    index: mxFrame at byte 16 of its header, nBackfill right after the header's two copies."""
    head = Path(db + "-shm").read_bytes()[:104]
    return struct.unpack_from("=I", head, 16)[0], struct.unpack_from("=I", head, 96)[0]


def _file(api) -> str:
    return api.app.state.runtime.db.engine.url.database


@pytest.fixture
def requests(monkeypatch) -> list[str]:
    """The files a background checkpoint was asked for (none is run: the test runs it)."""
    asked: list[str] = []
    monkeypatch.setattr(Checkpointer, "request", lambda self: asked.append(self.path))
    return asked


def _watch_connection(monkeypatch) -> list[tuple[int, int]]:
    """(wal_autocheckpoint, temp_store) of the import's connection as each step's insert saw them."""
    seen: list[tuple[int, int]] = []
    real_insert = imports.Achievements.insert

    async def insert(self, new_rows):
        conn = await self.s.connection()
        seen.append(((await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one(),
                     (await conn.exec_driver_sql("PRAGMA temp_store")).scalar_one()))
        await real_insert(self, new_rows)

    monkeypatch.setattr(imports.Achievements, "insert", insert)
    return seen


async def _checkpoint_every_commit(engine) -> None:
    """Every pooled connection checkpoints at each commit (SQLite's auto-checkpoint at 1 page)."""
    conns = [await engine.connect() for _ in range(max(1, engine.sync_engine.pool.checkedin()))]
    for conn in conns:
        await conn.exec_driver_sql("PRAGMA wal_autocheckpoint = 1")
        await conn.close()


async def test_an_sqlite_import_leaves_its_wal_to_the_background_checkpoint(api, monkeypatch, requests):
    engine = _engine_on(api, "sqlite")
    monkeypatch.setattr(imports, "PIPELINE_ROWS", 2)
    seen = _watch_connection(monkeypatch)
    org = (await api.register_org())["organisation_id"]
    db = _file(api)
    await _checkpoint_every_commit(engine)  # so that without the import's own setting it would
    # Drafts: no events, so the outbox relay writes nothing after the import.
    r = await api.post(IMPORT, who(org, "institution"), content=jsonl(rows(5)), headers=NDJSON)
    assert r.status_code == 200 and r.json()["imported"] == 5
    page = sqlite3.connect(db).execute("PRAGMA page_size").fetchone()[0]
    assert [ac for ac, _ in seen] == [repository.IMPORT_WAL_BACKSTOP_KIB * 1024 // page] * 3  # every step
    assert requests == [db]  # asked for once, when the connection went back to the pool
    frames, copied = wal_frames(db)
    assert frames > 0 and copied < frames  # the commit left its frames in the WAL
    busy, logged, done = checkpoint.checkpoint(db)
    assert (busy, logged, done) == (0, frames, frames)
    assert wal_frames(db) == (frames, frames)


async def test_past_the_backstop_the_import_checkpoints_its_own_commit(api, monkeypatch, requests):
    """The control of the test above, and the bound on the WAL should the thread fall behind:
    with a backstop below what the import writes, its commit copies every frame itself."""
    _engine_on(api, "sqlite")
    monkeypatch.setattr(repository, "IMPORT_WAL_BACKSTOP_KIB", 4)
    org = (await api.register_org())["organisation_id"]
    r = await api.post(IMPORT, who(org, "institution"), content=jsonl(rows(5)), headers=NDJSON)
    assert r.status_code == 200 and r.json()["imported"] == 5
    frames, copied = wal_frames(_file(api))
    assert frames > 0 and copied == frames


async def test_the_import_connection_gets_its_own_auto_checkpoint_back(api, monkeypatch, requests):
    engine = _engine_on(api, "sqlite")
    monkeypatch.setattr(imports, "PIPELINE_ROWS", 2)
    seen = _watch_connection(monkeypatch)
    org = (await api.register_org())["organisation_id"]
    history_fails_at_step(monkeypatch)
    with pytest.raises(RuntimeError, match="store unavailable"):
        await api.post(IMPORT, who(org, "institution"), content=jsonl(rows(5)), headers=NDJSON)
    assert len(seen) == 2 and seen[0][0] != 1000
    assert await stored_ids(api, org) == set()
    pool = engine.sync_engine.pool
    # every pooled connection, the failed import's included, is back at SQLite's default
    conns = [await engine.connect() for _ in range(pool.checkedin())]
    try:
        for conn in conns:
            assert (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one() == 1000
    finally:
        for conn in conns:
            await conn.close()


async def test_statement_journals_of_writing_connections_stay_in_memory(api, monkeypatch, requests):
    """temp_store takes effect at a connection's next BEGIN: from the first import on, every
    connection gets it when it goes back to the pool (so a second import writes with it), and
    connections opened from then on have it from the start."""
    engine = _engine_on(api, "sqlite")
    seen = _watch_connection(monkeypatch)
    org = (await api.register_org())["organisation_id"]
    for n in (1, 2):
        r = await api.post(IMPORT, who(org, "institution"), content=jsonl(rows(n)), headers=NDJSON)
        assert r.status_code == 200
    assert seen[0][1] == 0 and seen[1][1] == 2  # (0: the build's default, 2: MEMORY)
    async with engine.connect() as conn:  # (a pooled one) ...
        assert (await conn.exec_driver_sql("PRAGMA temp_store")).scalar_one() == 2
    await engine.dispose()  # ... and one opened afresh
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA temp_store")).scalar_one() == 2


def test_the_checkpointer_folds_requests_and_copies_the_whole_wal(tmp_path, monkeypatch):
    db = str(tmp_path / "c.db")
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (x TEXT)")
    writer.executemany("INSERT INTO t VALUES (?)", [("x" * 500,) for _ in range(2000)])
    frames, copied = wal_frames(db)
    assert frames > 100 and copied == 0
    ckpt = Checkpointer(db)
    gate = threading.Event()
    real = checkpoint.checkpoint
    ran: list[str] = []

    entered = threading.Event()

    def slow(path):
        entered.set()
        gate.wait(10)
        ran.append(path)
        return real(path)

    monkeypatch.setattr(checkpoint, "checkpoint", slow)
    ckpt.request()
    assert entered.wait(10)
    for _ in range(4):  # while the first runs, four more requests fold into one more run
        ckpt.request()
    gate.set()
    assert ckpt.wait_idle(10)
    assert ran == [db, db] and ckpt.runs == 2
    assert wal_frames(db) == (frames, frames) and ckpt.last == (0, frames, frames)
    assert Checkpointer.of(db) is Checkpointer.of(db)
    writer.close()


def test_a_checkpoint_of_a_store_that_is_gone_creates_nothing(tmp_path, caplog):
    db = str(tmp_path / "gone.db")
    ckpt = Checkpointer(db)
    ckpt.request()
    assert ckpt.wait_idle(10)
    assert ckpt.runs == 0 and not Path(db).exists()
    assert "background WAL checkpoint" in caplog.text


async def test_an_import_begins_its_transaction_after_a_running_checkpoint(tmp_path, monkeypatch):
    """SQLite starts the WAL from its beginning again only at a write transaction that began
    once every frame was checkpointed; an import whose transaction began while the previous
    import's checkpoint ran appends to the WAL instead (it grew to 170-215 MiB over ten
    imports, up to the backstop). So an import waits, after validating its rows and before its
    transaction, for a checkpoint still running (at most SETTLE_S)."""
    db = str(tmp_path / "c.db")
    sqlite3.connect(db).execute("PRAGMA journal_mode=WAL").fetchall()
    ckpt = Checkpointer.of(db)
    gate, entered, order = threading.Event(), threading.Event(), []

    def slow(path):
        entered.set()
        gate.wait(10)
        order.append("checkpointed")
        return (0, 0, 0)

    monkeypatch.setattr(checkpoint, "checkpoint", slow)
    lines = imports.parse_jsonl(jsonl(rows(3)).decode())
    org = {"id": "org-1", "region": ""}
    ckpt.request()
    assert entered.wait(10)
    threading.Timer(0.3, gate.set).start()
    await imports.prepare(org, lines, best_effort=False, submit=False)
    order.append("prepared")
    assert order == ["checkpointed", "prepared"]
    # bounded: a checkpoint that takes longer does not hold the import back beyond SETTLE_S
    gate.clear()
    monkeypatch.setattr(imports, "SETTLE_S", 0.05)
    ckpt.request()
    await imports.prepare(org, lines, best_effort=False, submit=False)
    order.append("prepared")
    gate.set()
    assert ckpt.wait_idle(10)
    assert order == ["checkpointed", "prepared", "prepared", "checkpointed"]
