"""The redemption hot path on PostgreSQL: reserve, settle, void and pay out in two round trips
(three after a conflict).

The same service-layer functions and domain rules run as on the general path; only the I/O
differs. A `HotRepository` answers the few reads those commands make with one statement each
(without locks a prepared query; under them a server-side function that locks and reads, see
migrations 0003 and 0005), keeps every write in memory, and writes them all with one call of
`vouchers_apply` (migration 0008), which moves the balances with the
same conditional updates (an overdraft refuses the whole write), compares-and-sets the chain heads
read and, for reads made without locks, the row versions read, and inserts the outbox rows and the
Idempotency-Key record in the same transaction.

Round trips per command, first without locks: the key's stored response or else the read (its
own implicit transaction); the write, sent with the writes of concurrent commands as one
transaction (`GroupCommit`, each command's write a subtransaction of its own). If what was read
changed before the write, the write fails having written nothing and the command runs again under
the locks: BEGIN + the Idempotency-Key's advisory lock; the key's stored response or else one
locked read; the write + COMMIT. Against 15–17 through the ORM session, whose per-statement
Python cost was what capped throughput (see the README's benchmark section).

It runs on its own asyncpg pools (no pre-ping, no reset query on release: a connection goes
back only outside a transaction). SQLite and every other command use `Repository`.
"""
from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import asyncpg
import orjson

from techbridge_shared.uow import outbox_row

from ..domain import model as m
from ..domain.errors import refused
from ..domain.ledger import AccountKind, JournalEntry, entry_hash, iso, voucher_account
from .repository import (
    CREDIT_SHARDED,
    PROGRAMME_CHAIN,
    ReservationContext,
    enrolment_from_row,
    programme_from_row,
    redemption_from_row,
    voucher_from_row,
)

OVERDRAFT_SQLSTATE = "VB001"

# The write document, the reads' results and the stored response travel as JSON; orjson encodes
# and decodes them several times faster than the standard library, a measurable part of the
# service's CPU per command.


def _response_body(body: Any) -> str:
    """The response body stored with the Idempotency-Key (JSON-ready: the endpoints present models
    dumped in JSON mode; anything else is written as its string, as the general path does)."""
    return orjson.dumps(body, default=str).decode()


#: Sub-balances drawn from per hot credit-only account when every existing one is held by
#: another transaction (the write takes a free one first): enough that concurrent settlements of
#: one agency rarely draw the same one (64 clients over 8 agencies: about 8 at once per agency).
CREDIT_SHARDS = 16

_TIMESTAMPS = {"issued_at", "expires_at", "remind_at", "reminded_at", "created_at", "settled_at", "voided_at",
               "paid_at", "applied_at", "updated_at", "applications_open_at", "applications_close_at", "closed_at",
               "as_of"}


def _row(d: dict[str, Any]) -> SimpleNamespace:
    """A row as row_to_json gave it, with its timestamps parsed (the row mappers read attributes)."""
    return SimpleNamespace(**{k: (datetime.fromisoformat(v) if k in _TIMESTAMPS and isinstance(v, str) else v)
                              for k, v in d.items()})


def _ts(t: datetime | None) -> str | None:
    return iso(t) if t is not None else None


def _redemption_values(r: m.Redemption) -> dict[str, Any]:
    return {"id": r.id, "programme_id": r.programme_id, "voucher_id": r.voucher_id, "agency_org_id": r.agency_org_id,
            "enterprise_org_id": r.enterprise_org_id, "amount": r.amount, "currency": r.currency,
            "invoice_amount": r.invoice_amount, "invoice_ref": r.invoice_ref, "category": r.category,
            "transfer_id": r.transfer_id, "state": str(r.state), "requested_by": r.requested_by,
            "created_at": _ts(r.created_at), "settled_by": r.settled_by, "settled_at": _ts(r.settled_at),
            "settle_entry_id": None, "voided_reason": r.voided_reason, "voided_at": _ts(r.voided_at),
            "paid_at": _ts(r.paid_at), "payout_ref": r.payout_ref, "clawed_back": r.clawed_back,
            "payout_batch_id": r.payout_batch_id}


# The reads without locks, one statement (one snapshot) each, sent as prepared statements: the
# Idempotency-Key's stored response if any ($key_scope, $key null when already looked up), and
# what the command decides on. The reads under locks are the functions of migrations 0003/0005.
_STORED = """(SELECT json_build_object('fingerprint', k.fingerprint, 'status', k.status, 'body', k.body)
                FROM idempotency_keys k WHERE k.scope = {scope} AND k.key = {key}) AS stored"""

_READ_FOR_RESERVATION = f"""
SELECT {_STORED.format(scope="$6", key="$7")},
       row_to_json(v) AS voucher, v.xmin::text AS version,
       (SELECT row_to_json(e) FROM enrolments e
         WHERE e.programme_id = v.programme_id AND e.agency_org_id = $2) AS enrolment,
       (SELECT a.balance FROM accounts a WHERE a.id = $5) AS available,
       (SELECT json_agg(json_build_object('amount', r.amount, 'clawed_back', r.clawed_back,
                                          'invoice_amount', r.invoice_amount))
          FROM redemptions r WHERE r.agency_org_id = $2 AND r.invoice_ref = $3 AND r.state <> 'voided') AS invoice,
       (SELECT row_to_json(t) FROM transfers t WHERE t.id = $4) AS transfer
FROM (SELECT) AS one LEFT JOIN vouchers v ON v.id = $1"""

_READ_REDEMPTION = f"""
SELECT {_STORED.format(scope="$2", key="$3")},
       row_to_json(v) AS voucher, v.xmin::text AS version,
       row_to_json(r) AS redemption, r.xmin::text AS redemption_version
FROM (SELECT) AS one LEFT JOIN (redemptions r JOIN vouchers v ON v.id = r.voucher_id) ON r.id = $1"""


class StoredResponse(Exception):
    """The Idempotency-Key already has a response (found by the command's first read)."""

    def __init__(self, stored: dict[str, Any]):
        super().__init__("stored response")
        self.stored = stored


class HotRepository:
    """The subset of `Repository` the redemption commands use, on one asyncpg connection. With
    `lock` (inside a transaction) reads lock and read in one call; without, they only read and
    keep the row versions for the write to check. Writes wait for `flush`.

    With an Idempotency-Key (`scope`, `key`), the first read also looks the key up (with `lock`,
    after the key's advisory lock), and raises `StoredResponse` instead of reading anything else
    if it is there."""

    def __init__(self, conn: asyncpg.Connection, idempotency: tuple[str, str] | None = None, *,
                 lock: bool = True, writes: GroupCommit | None = None):
        self.c = conn
        self._writes = writes  # where the write without the lock goes (None: on `conn` itself)
        self.dialect = "postgresql"
        self._lock = lock
        self._idempotency = idempotency
        self._versions: dict[str, str] = {}  # voucher id -> row version read (without the lock)
        self._redemption_versions: dict[str, str] = {}
        self.looked_up = idempotency is None  # whether the key's stored response was looked for
        self._heads: dict[str, str] = {}  # chain key -> current head (advanced by post)
        self._locked_heads: dict[str, str] = {}  # chain key -> head read under the lock
        self._new: list[dict[str, Any]] = []
        self._changed: dict[str, dict[str, Any]] = {}
        self._journal: list[dict[str, Any]] = []
        self._postings: list[dict[str, Any]] = []
        self._legs: dict[str, list] = {}  # account id -> [delta, may_go_negative, credit-sharded kind]

    def _hold(self, v: m.Voucher, head: str, version: str) -> None:
        self._heads.setdefault(v.id, head)
        self._locked_heads.setdefault(v.id, head)
        if not self._lock:
            self._versions.setdefault(v.id, version)

    # --- reads
    async def programme(self, programme_id: str, *, lock: bool = False) -> m.Programme | None:
        if lock:
            raise RuntimeError("the hot path does not lock programmes")
        d = await self.c.fetchval("SELECT row_to_json(p) FROM programmes p WHERE p.id = $1", programme_id)
        return programme_from_row(_row(d)) if d else None

    async def reservation_context(self, *, voucher_id: str, agency_org_id: str, invoice_ref: str,
                                  transfer_id: str | None) -> ReservationContext | None:
        available_account = voucher_account("", voucher_id, AccountKind.AVAILABLE).id
        if self._lock:
            d = await self.c.fetchval("SELECT vouchers_reservation_context($1, $2, $3, $4, $5, $6, $7, true)",
                                      voucher_id, agency_org_id, invoice_ref, transfer_id, available_account,
                                      *self._key())
        else:
            d = await self.c.fetchrow(_READ_FOR_RESERVATION, voucher_id, agency_org_id, invoice_ref, transfer_id,
                                      available_account, *self._key())
        self._replay_if_stored(d)
        if d is None or d["voucher"] is None:
            return None
        vrow = d["voucher"]
        v = voucher_from_row(_row(vrow))
        self._hold(v, vrow["head_hash"], d["version"])
        inv = d["invoice"] or []
        t = d["transfer"]
        return ReservationContext(
            voucher=v, enrolment=enrolment_from_row(_row(d["enrolment"])) if d["enrolment"] else None,
            available=int(d["available"] or 0), invoice_covered=sum(x["amount"] - x["clawed_back"] for x in inv),
            invoice_amounts={x["invoice_amount"] for x in inv},
            transfer=(t["status"], t["buyer_org_id"]) if t else None)

    async def lock_redemption(self, redemption_id: str) -> tuple[m.Redemption, m.Voucher] | None:
        if self._lock:
            d = await self.c.fetchval("SELECT vouchers_lock_redemption($1, $2, $3, true)", redemption_id,
                                      *self._key())
        else:
            d = await self.c.fetchrow(_READ_REDEMPTION, redemption_id, *self._key())
        self._replay_if_stored(d)
        if d is None or d["redemption"] is None:
            return None
        v = voucher_from_row(_row(d["voucher"]))
        self._hold(v, d["voucher"]["head_hash"], d["version"])
        if not self._lock:
            self._redemption_versions.setdefault(redemption_id, d["redemption_version"])
        return redemption_from_row(_row(d["redemption"])), v

    def _key(self) -> tuple[str | None, str | None]:
        if self.looked_up:
            return None, None
        self.looked_up = True
        return self._idempotency

    @staticmethod
    def _replay_if_stored(d) -> None:
        if d is not None and (stored := d.get("stored")) is not None:
            raise StoredResponse(stored)

    async def stored_response(self) -> dict[str, Any] | None:
        """Look the key up now (when the command made no read that did)."""
        scope, key = self._key()
        if key is None:
            return None
        return await self.c.fetchval("SELECT vouchers_stored_response($1, $2)", scope, key)

    # --- writes, kept until flush
    async def add_redemption(self, r: m.Redemption) -> None:
        self._new.append(_redemption_values(r))

    async def save_redemption(self, r: m.Redemption, *, settle_entry_id: str | None = None) -> None:
        values = _redemption_values(r)
        values["settle_entry_id"] = settle_entry_id
        pending = next((x for x in self._new if x["id"] == r.id), None)
        if pending is not None:  # created in this transaction: write it as it ends up
            values["settle_entry_id"] = settle_entry_id or pending["settle_entry_id"]
            pending.update(values)
            return
        before = self._changed.get(r.id)
        if before is not None:
            values["settle_entry_id"] = settle_entry_id or before["settle_entry_id"]
        self._changed[r.id] = values

    async def post(self, entry: JournalEntry) -> str:
        if entry.kind in PROGRAMME_CHAIN or entry.chain_key not in self._heads:
            raise RuntimeError(f"the hot path posts only to voucher chains it holds locked, not {entry.chain_key}")
        prev = self._heads[entry.chain_key]
        digest = entry_hash(entry, prev)
        self._journal.append({
            "id": entry.id, "kind": str(entry.kind), "chain_key": entry.chain_key, "programme_id": entry.programme_id,
            "voucher_id": entry.voucher_id, "redemption_id": entry.redemption_id, "reverses": entry.reverses,
            "currency": entry.currency, "memo": entry.memo, "created_at": iso(entry.created_at),
            "created_by": entry.created_by, "prev_hash": prev, "hash": digest})
        for p in entry.postings:
            self._postings.append({"entry_id": entry.id, "account_id": p.account.id, "amount": p.amount,
                                   "currency": entry.currency})
            leg = self._legs.setdefault(p.account.id, [0, p.account.may_go_negative, p.account.kind in CREDIT_SHARDED])
            leg[0] += p.amount
        self._heads[entry.chain_key] = digest
        return digest

    async def flush(self, events: list, idempotency: dict[str, Any] | None, *, commit: bool = False) -> None:
        """Write everything this unit of work decided, in one call (and commit with it, in the
        same round trip, if asked). An overdraft refuses it all."""
        moved = {k: h for k, h in self._heads.items() if h != self._locked_heads[k]}
        doc = {
            # In id order: each voucher's row version read without the lock (null under it) and
            # chain head read must still be the row's, else 40001; its new head (null if none).
            "vouchers": [{"id": k, "version": self._versions.get(k),
                          "prev": self._locked_heads[k] if k in moved else None, "head": moved.get(k)}
                         for k in sorted(self._versions.keys() | moved.keys())],
            "redemption_versions": self._redemption_versions,
            "new_redemptions": self._new, "redemptions": list(self._changed.values()), "journal": self._journal,
            "postings": self._postings,
            # Net movement per account, in id order; legs that cancel out within the unit of work
            # (a reservation settled at once) leave the account untouched.
            # A credit to a hot credit-only account goes to one of its sub-balances that no
            # other transaction holds, else to the one drawn here; money leaving one first
            # folds them into its row.
            "legs": [{"id": a, "delta": d, "may_go_negative": neg,
                      "shard": random.randrange(CREDIT_SHARDS) if sharded and d > 0 else None,
                      "fold": sharded and d < 0}
                     for a, (d, neg, sharded) in sorted(self._legs.items()) if d],
            "outbox": [{**row, "created_at": iso(row["created_at"])} for row in map(outbox_row, events)],
            "idempotency": idempotency,
        }
        try:
            if not self._lock and self._writes is not None:
                # Read without a transaction: the write goes with concurrent commands' writes,
                # each in its own subtransaction of one transaction (nothing written if it fails).
                await self._writes.write(doc)
            elif not self._lock:
                # The write is one statement, its own transaction. A prepared statement: the
                # server parses and plans it once per connection.
                await self.c.execute("SELECT vouchers_apply($1::jsonb)", doc)
            elif commit and _QUOTE not in (text := orjson.dumps(doc).decode()):
                # Simple-query protocol: the write and the COMMIT in one round trip; after an
                # error the COMMIT is not run and the caller rolls back.
                await self.c.execute(f"SELECT vouchers_apply({_QUOTE}{text}{_QUOTE}::jsonb); COMMIT")
            else:
                await self.c.execute("SELECT vouchers_apply($1::jsonb)", doc)
                if commit:
                    await self.c.execute("COMMIT")
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) == OVERDRAFT_SQLSTATE and self._lock:
                # The database's guard: the domain decided on balances read under the lock, so
                # this means a rule upstream was wrong; refuse, nothing is written.
                raise refused("insufficient_balance", f"the ledger refused the movement: {exc}") from None
            # Without the lock an overdraft refusal means the balance moved after the read, like
            # a changed row version: the caller runs the command again under the lock.
            raise


#: Dollar quotes around the write's JSON document (a document containing them is sent as a parameter).
_QUOTE = "$vouchers_doc$"


class HotUnitOfWork:
    """What the service layer uses of a unit of work: `publish`. Events become outbox rows in
    the same write as the effect."""

    def __init__(self) -> None:
        self.events: list = []

    def publish(self, event) -> None:
        self.events.append(event)


# --- group commit ----------------------------------------------------------------------------

#: Writes in one batch at most. Each is a subtransaction; a backend keeps up to 64 of them in
#: shared memory, beyond which every other session's snapshots get slower.
BATCH_MAX = 32
#: Batches in flight at once (each on a connection of its own).
WRITERS = 2


class GroupCommit:
    """The writes of commands that read without locks, committed together: each command's
    document goes to `vouchers_apply_batch` (migration 0009) with the documents of the commands
    that came while earlier batches were being written, and is applied there in a subtransaction
    of its own. A document that fails (a row it read changed, an overdraft, its key answered
    meanwhile) writes nothing and fails only its own command, with the error `vouchers_apply`
    raised; the others commit at once. At low load a write leaves at once, alone; under load a
    commit, a round trip and a statement serve up to BATCH_MAX commands, and at most WRITERS
    backends write at a time instead of one per command."""

    def __init__(self, pool: asyncpg.Pool, *, writers: int = WRITERS, batch_max: int = BATCH_MAX):
        self._pool = pool  # the writers' own connections
        self._writers_max = writers
        self._batch_max = batch_max
        self._waiting: list[tuple[dict[str, Any], asyncio.Future]] = []
        self._writers: set[asyncio.Task] = set()
        self.batches = 0  # batches written and documents in them: how much was grouped
        self.documents = 0

    async def write(self, doc: dict[str, Any]) -> None:
        """Apply `doc` and commit it; raises what `vouchers_apply` raised for it."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((doc, done))
        if len(self._writers) < self._writers_max:
            task = asyncio.create_task(self._write_waiting())
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        await done

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:self._batch_max], self._waiting[self._batch_max:]
            # Every batch locks its vouchers in id order, so concurrent batches wait for each
            # other at worst and never deadlock (the server would take a second to notice).
            batch.sort(key=_first_voucher)
            try:
                async with self._pool.acquire() as conn:
                    outcomes = await conn.fetchval("SELECT vouchers_apply_batch($1::jsonb)", [d for d, _ in batch])
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"vouchers_apply_batch answered {len(outcomes)} of {len(batch)} documents")
            except Exception as exc:  # the batch as a whole (the connection, the server): each command sees it
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            except BaseException:  # cancelled: the loop is closing, nothing more gets written
                for _, done in batch + self._waiting:
                    done.cancel()
                self._waiting = []
                raise
            self.batches += 1
            self.documents += len(batch)
            for (_, done), outcome in zip(batch, outcomes):
                if done.done():
                    continue
                if outcome is None:
                    done.set_result(None)
                else:
                    done.set_exception(_postgres_error(outcome))

    async def close(self) -> None:
        await asyncio.gather(*self._writers, return_exceptions=True)
        await self._pool.close()


def _first_voucher(waiting: tuple[dict[str, Any], asyncio.Future]) -> str:
    vouchers = waiting[0]["vouchers"]  # in id order
    return vouchers[0]["id"] if vouchers else ""


def _postgres_error(outcome: dict[str, Any]) -> asyncpg.PostgresError:
    """The error a document raised in its subtransaction, as the asyncpg exception the same
    error raises when the document is written alone (the callers decide on its class, SQLSTATE
    and constraint)."""
    cls = type(asyncpg.PostgresError).get_message_class_for_sqlstate(outcome["sqlstate"])
    exc = cls(outcome["message"])
    exc.sqlstate = outcome["sqlstate"]
    exc.detail = outcome.get("detail")
    exc.constraint_name = outcome.get("constraint_name")
    return exc


# --- the pool ------------------------------------------------------------------------------

@dataclass(frozen=True)
class HotPath:
    """One database's hot path in one event loop: the commands' connections and the group commit."""

    pool: asyncpg.Pool
    writes: GroupCommit


_pools: dict[int, tuple[Any, asyncio.AbstractEventLoop, HotPath]] = {}
_pool_guard: dict[int, asyncio.Lock] = {}


async def _init(conn: asyncpg.Connection) -> None:
    # Binary wire format: JSON's is its UTF-8 text; JSONB's is a version byte (1), then the text.
    await conn.set_type_codec("json", encoder=orjson.dumps, decoder=orjson.loads, schema="pg_catalog",
                              format="binary")
    await conn.set_type_codec("jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog",
                              format="binary")


def _jsonb_encode(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value)


def _jsonb_decode(data: bytes) -> Any:
    if data[:1] != b"\x01":
        raise ValueError(f"unknown jsonb wire format version {data[:1]!r}")
    return orjson.loads(memoryview(data)[1:])


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Connections come back after COMMIT or ROLLBACK (asyncpg rolls back an open transaction
    itself); nothing else in a session is changed, so skip the reset query."""


def _dsn(url: str) -> str:
    from sqlalchemy.engine import make_url
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


async def hot_path_for(db, size: int) -> HotPath:
    """The hot path of `db` in the running loop, made on first use: `size` connections for the
    commands and WRITERS for the group commit."""
    loop = asyncio.get_running_loop()
    held = _pools.get(id(db))
    if held is not None and held[0] is db and held[1] is loop:
        return held[2]
    guard = _pool_guard.setdefault(id(db), asyncio.Lock())
    async with guard:
        held = _pools.get(id(db))
        if held is not None and held[0] is db and held[1] is loop:
            return held[2]
        pools = [await asyncpg.create_pool(_dsn(db.url), min_size=0, max_size=n, init=_init, reset=_no_reset,
                                           max_inactive_connection_lifetime=60) for n in (max(2, size), WRITERS)]
        path = HotPath(pools[0], GroupCommit(pools[1]))
        _pools[id(db)] = (db, loop, path)
        return path


async def pool_for(db, size: int) -> asyncpg.Pool:
    return (await hot_path_for(db, size)).pool


async def close_pool(db) -> None:
    held = _pools.pop(id(db), None)
    _pool_guard.pop(id(db), None)
    if held is not None and held[0] is db:
        await held[2].writes.close()
        await held[2].pool.close()


def advisory_lock_id(scope: str, key: str) -> int:
    digest = hashlib.sha256(f"{scope}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def run(conn: asyncpg.Connection, work: Callable, *, idempotency, present, status: int, lock: bool = True,
              writes: GroupCommit | None = None) -> tuple[int, Any, bool, list]:
    """One command on the hot path on `conn`. Returns (status, body, replayed, events published).

    `lock`: in one transaction, holding the Idempotency-Key's advisory lock and the voucher's row
    lock from the read to the write (three round trips). Without: the reads take no lock and no
    transaction stays open while the domain decides; the write, one statement, first checks that
    the voucher and redemption rows are the versions read and that the key has no response yet,
    else it fails (40001, or 23505 on the key, or VB001 for a balance that moved) having written
    nothing, and the caller runs the command again with `lock`. Two round trips without, three
    with."""
    from techbridge_shared.errors import Problem
    from techbridge_shared.idempotency import FieldError, ValidationFailed

    if lock and idempotency is not None:
        await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({advisory_lock_id(idempotency.scope, idempotency.key)})")
    elif lock:
        await conn.execute("BEGIN")
    repo = HotRepository(conn, (idempotency.scope, idempotency.key) if idempotency is not None else None, lock=lock,
                         writes=writes)

    async def replay(stored: dict[str, Any]) -> tuple[int, Any, bool, list]:
        if stored["fingerprint"] != idempotency.fingerprint:
            raise ValidationFailed(
                "this Idempotency-Key was already used with a different request body",
                code="idempotency_key_reused",
                errors=[FieldError(field="header.Idempotency-Key", message="reused with a different body")])
        if conn.is_in_transaction():
            await conn.execute("ROLLBACK")
        return stored["status"], orjson.loads(stored["body"]), True, []

    try:
        uow = HotUnitOfWork()
        try:
            result = await work(repo, uow)
        except StoredResponse as found:
            return await replay(found.stored)
        except Problem:
            # Refused before any read looked the key up: a stored response still comes first.
            if not repo.looked_up and (stored := await repo.stored_response()) is not None:
                return await replay(stored)
            raise
        if not repo.looked_up and (stored := await repo.stored_response()) is not None:
            return await replay(stored)
        body = present(result)
        record = None
        if idempotency is not None:
            record = {"scope": idempotency.scope, "key": idempotency.key, "fingerprint": idempotency.fingerprint,
                      "status": status, "body": _response_body(body)}
        await repo.flush(uow.events, record, commit=True)
        return status, body, False, uow.events
    except BaseException:
        if not conn.is_closed() and conn.is_in_transaction():
            try:
                await conn.execute("ROLLBACK")
            except Exception:
                conn.terminate()
        raise


__all__ = ["GroupCommit", "HotPath", "HotRepository", "HotUnitOfWork", "hot_path_for", "pool_for", "close_pool", "run",
           "OVERDRAFT_SQLSTATE"]
