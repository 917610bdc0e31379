"""Running one command as one unit of work: retries on serialisation failures and deadlocks,
and Idempotency-Key replay, so a money-moving request has exactly one effect.

Concurrent requests carrying the same key serialise on a transaction-scoped advisory lock
(PostgreSQL; SQLite serialises all writers anyway): the second waits for the first to commit,
then finds its stored response and replays it, so all of them receive the same answer.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import json

import asyncpg
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError

from techbridge_shared.envelope import utcnow
from techbridge_shared.errors import Conflict, Problem, is_concurrent_conflict
from techbridge_shared.idempotency import IdempotencyStore, StoredResponse
from techbridge_shared.service import ServiceRuntime
from techbridge_shared.uow import UnitOfWork

from . import hot
from .repository import Repository
from .tables import idempotency_keys

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12

#: Retries taken, by reason (observability and the benchmark).
retries: dict[str, int] = {}

T = TypeVar("T")

idempotency_store = IdempotencyStore(idempotency_keys)


@dataclass(frozen=True)
class IdempotencyRequest:
    scope: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Outcome:
    status: int
    body: Any
    replayed: bool = False


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None), getattr(orig, "__context__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if code:
            return code
    return None


def is_retryable(exc: BaseException) -> bool:
    """PostgreSQL chose this transaction as the loser of a conflict (the hot path's asyncpg
    errors included), or SQLite stayed locked past the busy timeout."""
    if is_concurrent_conflict(exc):
        return True
    return isinstance(exc, DBAPIError) and "database is locked" in str(exc)


async def _lock_key(uow: UnitOfWork, idem: IdempotencyRequest) -> None:
    if uow.session.bind.dialect.name == "postgresql":
        # The same lock id as the hot path's, so one key serialises across both paths.
        await uow.session.execute(text("SELECT pg_advisory_xact_lock(:id)"),
                                  {"id": hot.advisory_lock_id(idem.scope, idem.key)})


async def _remember(uow: UnitOfWork, idem: IdempotencyRequest, status: int, body: Any) -> None:
    if uow.session.bind.dialect.name == "postgresql":
        # Every request with this key holds the advisory lock taken above until it commits, so
        # no concurrent insert of the key can exist: insert without the store's savepoint
        # (two round trips fewer on the hottest path). Same row, same table as the store's.
        await uow.session.execute(insert(idempotency_keys).values(
            scope=idem.scope, key=idem.key, fingerprint=idem.fingerprint, status=status,
            body=json.dumps(body, default=str, ensure_ascii=False), created_at=utcnow()))
        return
    await idempotency_store.remember(uow.session, scope=idem.scope, key=idem.key, fingerprint=idem.fingerprint,
                                     status=status, body=body)


async def transact(
    runtime: ServiceRuntime,
    work: Callable[[Repository, UnitOfWork], Awaitable[T]],
    *,
    present: Callable[[T], Any] = lambda x: x,
    status: int = 200,
    idempotency: IdempotencyRequest | None = None,
    hot_path: bool = False,
) -> Outcome:
    """Run `work` in a unit of work and commit; `present` turns its result into the response body
    (stored with the idempotency key in the same transaction).

    `hot_path`: the work uses only what `store.hot.HotRepository` offers (reserve, settle, void,
    pay out); on PostgreSQL it then runs there: first without locks in two round trips, again under
    the locks in three if what it read changed before its write. Elsewhere it is ignored."""
    if hot_path and not runtime.db.is_sqlite:
        return await _transact_hot(runtime, work, present=present, status=status, idempotency=idempotency)
    attempt = 0
    while True:
        attempt += 1
        try:
            async with runtime.unit_of_work() as uow:
                if idempotency is not None:
                    await _lock_key(uow, idempotency)
                    stored = await idempotency_store.lookup(
                        uow.session, scope=idempotency.scope, key=idempotency.key,
                        fingerprint=idempotency.fingerprint)
                    if stored is not None:
                        return Outcome(stored.status, stored.body, replayed=True)
                result = await work(Repository(uow.session), uow)
                body = present(result)
                if idempotency is not None:
                    await _remember(uow, idempotency, status, body)
                await uow.commit()
                return Outcome(status, body)
        except Conflict as exc:
            if exc.code == "idempotency_key_in_progress" and attempt < MAX_ATTEMPTS:
                retries["idempotency"] = retries.get("idempotency", 0) + 1
                await asyncio.sleep(0.01 * attempt)
                continue
            raise
        except Problem:
            raise
        except DBAPIError as exc:
            if is_retryable(exc) and attempt < MAX_ATTEMPTS:
                reason = _sqlstate(exc) or "locked"
                retries[reason] = retries.get(reason, 0) + 1
                await asyncio.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))
                continue
            raise


async def _transact_hot(runtime: ServiceRuntime, work, *, present, status: int,
                        idempotency: IdempotencyRequest | None) -> Outcome:
    path = await hot.hot_path_for(runtime.db, 2 * runtime.settings.database_pool_size)
    attempt = 0
    lock = False  # first without locks; again under them if what was read changed before the write
    while True:
        attempt += 1
        try:
            async with path.pool.acquire() as conn:
                code, body, replayed, events = await hot.run(conn, work, idempotency=idempotency, present=present,
                                                             status=status, lock=lock, writes=path.writes)
            if events and runtime.relay is not None:
                runtime.relay.notify()
            return Outcome(code, body, replayed=replayed)
        except Problem:
            raise
        except (asyncpg.PostgresError, DBAPIError) as exc:
            if not lock and _unlocked_write_lost(exc):
                retries["unlocked_read_changed"] = retries.get("unlocked_read_changed", 0) + 1
                lock = True
                continue
            if is_retryable(exc) and attempt < MAX_ATTEMPTS:
                reason = getattr(exc, "sqlstate", None) or _sqlstate(exc) or "locked"
                retries[reason] = retries.get(reason, 0) + 1
                await asyncio.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))
                continue
            raise


def _unlocked_write_lost(exc: BaseException) -> bool:
    """The write of a command that read without locks found something changed since its read: a
    row version (40001), the Idempotency-Key answered meanwhile (23505 on its key), a balance
    (the overdraft guard), or it lost a deadlock (40P01). Nothing was written."""
    code = getattr(exc, "sqlstate", None)
    if code in ("40001", "40P01", hot.OVERDRAFT_SQLSTATE):
        return True
    return code == "23505" and getattr(exc, "constraint_name", None) == "idempotency_keys_pkey"


async def read(runtime: ServiceRuntime, work: Callable[[Repository], Awaitable[T]]) -> T:
    """A read-only unit of work (rolled back at the end)."""
    async with runtime.unit_of_work() as uow:
        return await work(Repository(uow.session))


__all__ = ["IdempotencyRequest", "Outcome", "StoredResponse", "read", "transact", "is_retryable"]
