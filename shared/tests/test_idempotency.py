"""Idempotency-Key semantics on a real SQLite file and a real PostgreSQL database."""

import asyncio

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from techbridge_shared.db import Database
from techbridge_shared.errors import Conflict, ValidationFailed
from techbridge_shared.idempotency import IdempotencyStore, add_idempotency_table, fingerprint

metadata = MetaData()
keys = add_idempotency_table(metadata)
payments = Table("payments", metadata, Column("n", Integer, primary_key=True), Column("ref", String(50)))


@pytest.fixture
async def db(store_url):
    database = Database(store_url)
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield database
    await database.dispose()


async def pay(db: Database, store: IdempotencyStore, key: str, body: dict):
    """A money-moving write: one payment row, remembered under the key in the same transaction."""
    fp = fingerprint(body)
    async with db.sessionmaker() as session, session.begin():
        if stored := await store.lookup(session, scope="client-1", key=key, fingerprint=fp):
            return stored.status, stored.body
        await session.execute(insert(payments).values(ref=body["ref"]))
        await asyncio.sleep(0.05)  # widen the window in which a concurrent twin can arrive
        response = {"paid": body["ref"]}
        await store.remember(session, scope="client-1", key=key, fingerprint=fp, status=201, body=response)
        return 201, response


async def count(db):
    async with db.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(payments))).scalar()


async def test_same_key_same_body_replays_without_a_second_effect(db):
    store = IdempotencyStore(keys)
    first = await pay(db, store, "k1", {"ref": "inv-1"})
    again = await pay(db, store, "k1", {"ref": "inv-1"})
    assert first == again == (201, {"paid": "inv-1"})
    assert await count(db) == 1


async def test_same_key_other_body_is_refused(db):
    store = IdempotencyStore(keys)
    await pay(db, store, "k2", {"ref": "inv-2"})
    with pytest.raises(ValidationFailed, match="different request body"):
        await pay(db, store, "k2", {"ref": "inv-3"})
    assert await count(db) == 1


async def test_concurrent_twins_apply_once(db):
    store = IdempotencyStore(keys)
    results = await asyncio.gather(*(pay(db, store, "k3", {"ref": "inv-4"}) for _ in range(5)), return_exceptions=True)
    assert await count(db) == 1
    ok = [r for r in results if not isinstance(r, BaseException)]
    assert ok and all(r == (201, {"paid": "inv-4"}) for r in ok)
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
