"""Reading and writing catalog rows. The only module (with search.py) that speaks SQL."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Integer,
    String,
    Text,
    TypeDecorator,
    and_,
    bindparam,
    column,
    delete,
    event,
    func,
    insert,
    literal_column,
    or_,
    select,
    table,
    text,
    update,
)
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.achievement import Achievement
from ..domain.model import Status, modes_to_bits
from ..domain.rules import AchievementContent, ipc_key
from ..domain.text import index_text
from .checkpoint import Checkpointer
from .tables import achievement_ipc, achievements, deal_parties, history, organisations, valuations

log = logging.getLogger(__name__)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name


# --- organisations ---------------------------------------------------------------------------

def _org(row) -> dict:
    d = dict(row)
    d["created_at"], d["updated_at"] = _aware(d["created_at"]), _aware(d["updated_at"])
    return d


class Organisations:
    def __init__(self, session: AsyncSession):
        self.s = session

    async def get(self, org_id: str) -> dict | None:
        row = (await self.s.execute(select(organisations).where(organisations.c.id == org_id))).mappings().first()
        return _org(row) if row else None

    async def by_credit_code(self, code: str) -> dict | None:
        row = (await self.s.execute(
            select(organisations).where(organisations.c.credit_code == code))).mappings().first()
        return _org(row) if row else None

    async def add(self, values: dict) -> None:
        await self.s.execute(insert(organisations).values(**values))

    async def update(self, org_id: str, expected_version: int, values: dict) -> bool:
        result = await self.s.execute(
            update(organisations)
            .where(organisations.c.id == org_id, organisations.c.version == expected_version)
            .values(**values)
        )
        return result.rowcount == 1

    async def page(self, *, limit: int, after: tuple[str, str] | None, kind: str | None,
                   region: str | None, name: str | None) -> list[dict]:
        q = select(organisations)
        if kind:
            q = q.where(organisations.c.kind == kind)
        if region:
            q = q.where(organisations.c.region.like(region.replace("%", "") + "%"))
        if name:
            pattern = "%" + name.replace("%", "").lower() + "%"
            q = q.where(or_(func.lower(organisations.c.name).like(pattern),
                            func.lower(organisations.c.name_en).like(pattern)))
        if after:
            q = q.where(or_(organisations.c.name > after[0],
                            and_(organisations.c.name == after[0], organisations.c.id > after[1])))
        q = q.order_by(organisations.c.name, organisations.c.id).limit(limit + 1)
        return [_org(r) for r in (await self.s.execute(q)).mappings()]

    async def names(self, ids: Iterable[str]) -> dict[str, str]:
        ids = list(set(ids))
        if not ids:
            return {}
        rows = await self.s.execute(select(organisations.c.id, organisations.c.name).where(organisations.c.id.in_(ids)))
        return {r.id: r.name for r in rows}


# --- achievements ----------------------------------------------------------------------------

def _columns(a: Achievement, content_json: dict | None = None) -> dict[str, Any]:
    c = a.content
    return {
        "id": a.id,
        "owner_org_id": a.owner_org_id,
        "status": a.status.value,
        "version": a.version,
        "content": content_json if content_json is not None else c.model_dump(mode="json"),
        "ip_type": c.ip_type.value,
        "trl": c.trl,
        "modes_bits": modes_to_bits(c.transfer_modes),
        "price_amount": c.asking_price.amount if c.asking_price else None,
        "price_currency": c.asking_price.currency if c.asking_price else None,
        "negotiable": c.negotiable,
        "region": c.region,
        "status_reason": a.status_reason,
        "listed_at": a.listed_at,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "submitted_at": a.submitted_at,
        "published_at": a.published_at,
        "expires_at": a.expires_at,
        "transferred_at": a.transferred_at,
    }


def _from_row(row) -> Achievement:
    return Achievement(
        id=row["id"],
        owner_org_id=row["owner_org_id"],
        status=Status(row["status"]),
        version=row["version"],
        content=AchievementContent.model_validate(row["content"]),
        created_at=_aware(row["created_at"]),
        updated_at=_aware(row["updated_at"]),
        listed_at=_aware(row["listed_at"]),
        submitted_at=_aware(row["submitted_at"]),
        published_at=_aware(row["published_at"]),
        expires_at=_aware(row["expires_at"]),
        transferred_at=_aware(row["transferred_at"]),
        status_reason=row["status_reason"],
    )


def search_fields(c: AchievementContent) -> tuple[str, str, str]:
    """(title, keywords, abstract) as tokens; confidential details are never indexed."""
    title = index_text(c.title_zh, c.title_en)
    keywords = index_text(" ".join(c.keywords), " ".join(c.fields))
    abstract = index_text(c.abstract_zh, c.abstract_en)
    return title, keywords, abstract


@dataclass
class NewRow:
    """An achievement mapped to what the store writes for it: its row, its IPC index rows and
    its search text (title, keywords, abstract as tokens). Built without touching the store,
    so a bulk import can prepare thousands of rows before it opens a transaction."""

    columns: dict[str, Any]
    ipc: list[dict[str, str]]
    search: tuple[str, str, str]
    sqlite: tuple | None = None  # the row's parameters for SQLite (`sqlite_parameters`), fts_rowid last


def encode_json(value: Any) -> str:
    """JSON text for a JSON column, encoded by the caller (a bulk import does it in its worker
    thread, where the dicts also die young, instead of SQLAlchemy doing it in the event loop).
    UTF-8 rather than ASCII escapes (half the bytes for Chinese text): the content model refuses
    strings that are not valid Unicode (a lone surrogate), so every value is encodable.

    Encoded by orjson (compact, UTF-8 as is: the same text json.dumps gives with these options
    for the values stored here, which hold no floats), ~5 times less CPU than json.dumps on a
    listing and its history changes (~28 -> ~6 us per imported row); a value orjson refuses (an
    integer beyond 64 bits) is encoded by json as before."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class EncodedJSON(TypeDecorator):
    """A JSON column whose values arrive already encoded (`encode_json`): bound as they are,
    with the column's own type (PostgreSQL's json; text on SQLite). Reading is unchanged."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect):
        return None


def new_row(a: Achievement, content_json: dict | None = None) -> NewRow:
    """The row of a new achievement; its content is encoded here, as `Achievements.insert`
    binds it (EncodedJSON)."""
    columns = _columns(a, content_json)
    columns["content"] = encode_json(columns["content"])
    return NewRow(
        columns=columns,
        ipc=[{"achievement_id": a.id, "code_key": ipc_key(code), "subclass": code[:4]}
             for code in a.content.all_ipc_codes()],
        search=search_fields(a.content),
    )


CHUNK = 1000  # rows per statement in bulk writes (well under the drivers' parameter limits)


def _chunks(items: Sequence, n: int = CHUNK):
    for i in range(0, len(items), n):
        yield items[i: i + n]


def _achievement_columns():
    """The achievements table's columns, the content bound as encoded JSON (new_row encodes it)."""
    return [column(c.name, EncodedJSON() if c.name == "content" else c.type) for c in achievements.c]


_ACHIEVEMENTS = table("achievements", *_achievement_columns())

# --- SQLite: the rows of an import as the driver's parameters ---------------------------------
# SQLAlchemy turns each row's dict into the driver's parameters in the event loop (its compiled
# parameters, then every value's bind processor: a datetime becomes text): ~25-30 us per imported
# row in all, holding the GIL the mapping thread needs. For SQLite an import's rows are turned
# into tuples in the mapping thread instead (`sqlite_parameters`), with the very processors
# SQLAlchemy would apply (the rows' datetimes, one instant per import, formatted once), and
# written with the driver's executemany.
_SQLITE = sqlite_dialect()
_SQLITE_ACHIEVEMENT_COLUMNS = [c for c in achievements.c if c.name != "fts_rowid"]
_SQLITE_INSERT_ACHIEVEMENTS = (
    f"INSERT INTO achievements ({', '.join(c.name for c in _SQLITE_ACHIEVEMENT_COLUMNS)}, fts_rowid) "
    f"VALUES ({', '.join('?' * (len(_SQLITE_ACHIEVEMENT_COLUMNS) + 1))})")
_SQLITE_HISTORY_COLUMNS = [c for c in history.c if c.name != "seq"]
_SQLITE_INSERT_HISTORY = (f"INSERT INTO history ({', '.join(c.name for c in _SQLITE_HISTORY_COLUMNS)}) "
                          f"VALUES ({', '.join('?' * len(_SQLITE_HISTORY_COLUMNS))})")


def _sqlite_processors(columns) -> list:
    """SQLAlchemy's bind processor of each column on SQLite (None: bound as it is); the JSON
    columns are bound as the encoded text they arrive as."""
    return [None if isinstance(c.type, JSON) else c.type.dialect_impl(_SQLITE).bind_processor(_SQLITE)
            for c in columns]


_ACHIEVEMENT_PROCESSORS = _sqlite_processors(_SQLITE_ACHIEVEMENT_COLUMNS)
_HISTORY_PROCESSORS = _sqlite_processors(_SQLITE_HISTORY_COLUMNS)


def _sqlite_tuples(dicts: Iterable[dict], columns, processors) -> list[tuple]:
    names = [c.name for c in columns]
    memo: dict[Any, Any] = {}  # (a processor, a value) -> bound value: an import's rows share instants

    def bound(proc, value):
        if proc is None or value is None:
            return value
        key = (proc, value)
        out = memo.get(key)
        if out is None:
            out = memo[key] = proc(value)
        return out

    pairs = list(zip(names, processors, strict=True))
    return [tuple(bound(proc, d.get(name)) for name, proc in pairs) for d in dicts]


def sqlite_parameters(rows: Sequence[NewRow]) -> None:
    """Give each new row its SQLite parameters (the achievements table's columns in order, the
    FTS5 rowid appended when it is allocated). Pure CPU, for the mapping thread."""
    for row, params in zip(rows, _sqlite_tuples((r.columns for r in rows), _SQLITE_ACHIEVEMENT_COLUMNS,
                                                  _ACHIEVEMENT_PROCESSORS), strict=True):
        row.sqlite = params

# --- PostgreSQL: one INSERT per table and step, its rows as arrays ------------------------------
# asyncpg runs an executemany as one execution of the statement per row, so every statement
# trigger (the facet counts, the search change log, the narrow search table) fired once per row
# with a transition table of one row, each with its own executor start. The rows are sent as
# one array per column instead and unnested by a single INSERT ... SELECT: each trigger runs
# once per step over all its rows, and the driver encodes a few arrays, not a Bind per row.

def _pg_array_type(t) -> str:
    if isinstance(t, JSON):
        return "text[]"  # encoded JSON text, cast to json per element
    if isinstance(t, Boolean):
        return "boolean[]"
    if isinstance(t, BigInteger):
        return "bigint[]"
    if isinstance(t, Integer):
        return "integer[]"
    if isinstance(t, DateTime):
        return "timestamptz[]"
    if isinstance(t, String | Text):
        return "text[]"
    raise TypeError(f"no array type for {t!r}")


def _pg_unnest_insert(name: str, columns, extra: dict[str, str] | None = None) -> tuple[Any, list[str]]:
    """`INSERT INTO name (...) SELECT ... FROM unnest(one array per column)` and its parameter
    names (one list each). `extra` adds target columns computed in SQL: column -> (expression
    over v.<input>, the text inputs it reads)."""
    names = [c.name for c in columns]
    params = list(names)
    exprs = [f"v.{c.name}::json" if isinstance(c.type, JSON) else f"v.{c.name}" for c in columns]
    types = [_pg_array_type(c.type) for c in columns]
    for target, (expression, inputs) in (extra or {}).items():
        names.append(target)
        exprs.append(expression)
        params += inputs
        types += ["text[]"] * len(inputs)
    arrays = ", ".join(f"CAST(:{p} AS {t})" for p, t in zip(params, types, strict=True))
    sql = (f"INSERT INTO {name} ({', '.join(names)}) SELECT {', '.join(exprs)} "
           f"FROM unnest({arrays}) AS v({', '.join(params)})")
    return text(sql), params


# The tsvector is computed in the INSERT itself (a later UPDATE would write every new row and
# its index entries a second time), with the same expression as an edit (`_pg_vectors`): title
# weighs A, keywords and fields B, abstract C.
_PG_VECTOR = ("setweight(to_tsvector('simple', v.sv_t), 'A') || setweight(to_tsvector('simple', v.sv_k), 'B') "
              "|| setweight(to_tsvector('simple', v.sv_a), 'C')")
_PG_INSERT_ACHIEVEMENTS, _PG_ACHIEVEMENT_PARAMS = _pg_unnest_insert(
    "achievements", [c for c in achievements.c if c.name != "fts_rowid"],  # (SQLite's FTS5 rowid)
    {"search_vector": (_PG_VECTOR, ["sv_t", "sv_k", "sv_a"])})
_PG_INSERT_IPC, _ = _pg_unnest_insert("achievement_ipc", list(achievement_ipc.c))
_PG_INSERT_HISTORY, _PG_HISTORY_PARAMS = _pg_unnest_insert("history", [c for c in history.c if c.name != "seq"])


def _arrays(params: list[str], rows: Sequence[dict]) -> dict[str, list]:
    return {p: [r[p] for r in rows] for p in params}


# SQLite: how a connection writing a bulk import is set up for its transaction, and given back.
#
# The page cache (KiB; the default is 2 MiB). A transaction of a few thousand rows inserts into a
# dozen b-trees keyed by random ids (the achievement, IPC and outbox keys, the facet and FTS
# indexes), so at 100,000 listings it touches tens of MB of index pages; with the default cache
# SQLite spills dirty pages to the WAL and reads evicted ones back, again and again (at 90,000 ->
# 100,000 rows 675 -> 502-525 us of CPU per row with 64-256 MiB; 32 MiB did not help). Pages are
# allocated only as they are touched, so a small import costs no more memory.
IMPORT_PAGE_CACHE_KIB = 128 * 1024
# The WAL auto-checkpoint. The import's commit does not checkpoint (the WAL is copied into the
# database file by a background thread once the connection is back in the pool, see
# store/checkpoint.py), unless the WAL has grown past this much: then the commit checkpoints
# itself as every commit did before, so the WAL stays bounded should that thread fall behind.
# (A 2,000-row import at 100,000 listings writes ~21 MiB of WAL, the largest one of 10,000 rows
# ~100 MiB.)
IMPORT_WAL_BACKSTOP_KIB = 128 * 1024
# Both come back to their former values when the connection returns to the pool
# (`_restore_import_connection`), after a commit or a failure alike.
_CACHE_KEY = "catalog_page_cache_kib"  # in the pooled connection's info: the cache size to restore
_WAL_KEY = "catalog_wal_autocheckpoint"  # ... the auto-checkpoint to restore
_TEMP_KEY = "catalog_temp_store"  # ... set once the connection keeps statement journals in memory


def _memory_statement_journals(dbapi_connection, record) -> None:
    """SQLite copies every page a statement changes into a statement journal first (an insert
    into a table with triggers, unique keys and foreign keys can fail half-way and is undone
    alone); past 64 KiB the journal is a temporary file. An imported row's executions touch
    ~25 pages, so each row wrote ~50 times into temporary files (66 write calls per row in all,
    ~150 us of system CPU per row at 90,000 -> 100,000 listings). With `temp_store = MEMORY`
    the journals stay in memory: 15 write calls and ~90 us of system CPU per row. The setting
    takes effect at the connection's next BEGIN, so it is made when a connection is opened or
    returns to the pool, from the first import of the process on; temporary tables and sorts of
    the catalog's writes are small."""
    if record.info.get(_TEMP_KEY):
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA temp_store = MEMORY")
    finally:
        cursor.close()
    record.info[_TEMP_KEY] = True


def _restore_import_connection(dbapi_connection, record) -> None:
    """A connection back in the pool: its own page cache and auto-checkpoint again, and the
    WAL its import wrote checkpointed in the background."""
    former_cache = record.info.pop(_CACHE_KEY, None)
    former_wal = record.info.pop(_WAL_KEY, None)
    if dbapi_connection is None:
        return
    if former_cache is None and former_wal is None:  # another unit of work's connection
        with contextlib.suppress(Exception):  # (tried again at its next return)
            _memory_statement_journals(dbapi_connection, record)
        return
    try:
        cursor = dbapi_connection.cursor()
        if former_cache is not None:
            cursor.execute(f"PRAGMA cache_size = {int(former_cache)}")
        if former_wal is not None:
            cursor.execute(f"PRAGMA wal_autocheckpoint = {int(former_wal)}")
        cursor.close()
        _memory_statement_journals(dbapi_connection, record)
    except Exception:  # noqa: BLE001 - a connection that cannot be reset is not reused
        log.warning("could not reset an SQLite connection after an import; discarding it", exc_info=True)
        record.invalidate()
    if former_wal is not None:
        path = record.info.get(_PATH_KEY)
        if path:
            Checkpointer.of(path).request()


_PATH_KEY = "catalog_database_file"


def _sqlite_file(engine) -> str | None:
    database = engine.url.database
    return None if not database or database == ":memory:" or database.startswith("file:") else database


class Achievements:
    def __init__(self, session: AsyncSession):
        self.s = session

    async def tune_for_import(self) -> None:
        """SQLite: for this transaction, give its connection IMPORT_PAGE_CACHE_KIB of page cache
        and no auto-checkpoint below IMPORT_WAL_BACKSTOP_KIB, until it returns to the pool, where
        it gets its own settings back and a background checkpoint is asked for (a no-op on
        PostgreSQL, whose buffers and checkpoints are the server's)."""
        if _dialect(self.s) != "sqlite":
            return
        conn = await self.s.connection()
        info = (await conn.get_raw_connection()).info  # kept with the pooled connection
        if _CACHE_KEY in info or _WAL_KEY in info:
            return
        pool = conn.engine.sync_engine.pool
        if not event.contains(pool, "checkin", _restore_import_connection):
            event.listen(pool, "checkin", _restore_import_connection)
            event.listen(pool, "connect", _memory_statement_journals)
        path = _sqlite_file(conn.engine.sync_engine)
        if path:  # (an in-memory store has no WAL)
            page = (await conn.exec_driver_sql("PRAGMA page_size")).scalar_one()
            former = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one()
            backstop = max(1, IMPORT_WAL_BACKSTOP_KIB * 1024 // page)
            if former > 0:  # (an auto-checkpoint someone switched off stays off)
                info[_PATH_KEY] = path
                info[_WAL_KEY] = former
                await conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {backstop}")
        former = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one()
        if former >= 0 or -former >= IMPORT_PAGE_CACHE_KIB:  # set in pages, or already as large
            return
        info[_CACHE_KEY] = former
        await conn.exec_driver_sql(f"PRAGMA cache_size = -{IMPORT_PAGE_CACHE_KIB}")

    async def get(self, achievement_id: str, *, for_update: bool = False) -> Achievement | None:
        q = select(achievements).where(achievements.c.id == achievement_id)
        if for_update and _dialect(self.s) == "postgresql":
            q = q.with_for_update()
        row = (await self.s.execute(q)).mappings().first()
        return _from_row(row) if row else None

    async def get_many(self, ids: Sequence[str]) -> dict[str, Achievement]:
        if not ids:
            return {}
        rows = (await self.s.execute(select(achievements).where(achievements.c.id.in_(list(ids))))).mappings()
        return {r["id"]: _from_row(r) for r in rows}

    async def add_many(self, items: Sequence[Achievement]) -> None:
        await self.insert([new_row(a) for a in items])

    async def insert(self, rows: Sequence[NewRow]) -> None:
        """Store new achievements in the caller's transaction: on PostgreSQL one statement per
        table for all the rows, on SQLite a few per thousand rows (its executemany runs in C with
        one prepared statement, and it has no statement triggers)."""
        if not rows:
            return
        sqlite = _dialect(self.s) == "sqlite"
        if sqlite:
            # The FTS5 rowids are allocated up front so the achievement rows carry them; every
            # SQLite transaction here holds the write lock (BEGIN IMMEDIATE), so max+n is safe.
            top = (await self.s.execute(text("SELECT coalesce(max(rowid), 0) FROM achievement_fts"))).scalar_one()
            for n, row in enumerate(rows, start=1):
                row.columns["fts_rowid"] = top + n
        if not sqlite:
            await self.s.execute(_PG_INSERT_ACHIEVEMENTS, _arrays(_PG_ACHIEVEMENT_PARAMS, [
                {**r.columns, "sv_t": r.search[0], "sv_k": r.search[1], "sv_a": r.search[2]} for r in rows]))
            ipc_rows = [i for r in rows for i in r.ipc]
            if ipc_rows:
                await self.s.execute(_PG_INSERT_IPC, _arrays(["achievement_id", "code_key", "subclass"], ipc_rows))
            return
        if all(r.sqlite is not None for r in rows):  # an import's rows: straight to the driver
            conn = await self.s.connection()
            for chunk in _chunks(rows):
                await conn.exec_driver_sql(_SQLITE_INSERT_ACHIEVEMENTS,
                                           [r.sqlite + (r.columns["fts_rowid"],) for r in chunk])
                ipc_rows = [(i["achievement_id"], i["code_key"], i["subclass"]) for r in chunk for i in r.ipc]
                if ipc_rows:
                    await conn.exec_driver_sql(
                        "INSERT INTO achievement_ipc (achievement_id, code_key, subclass) VALUES (?, ?, ?)", ipc_rows)
                await conn.exec_driver_sql(
                    "INSERT INTO achievement_fts (rowid, title, keywords, abstract) VALUES (?, ?, ?, ?)",
                    [(r.columns["fts_rowid"], *r.search) for r in chunk])
            return
        for chunk in _chunks(rows):
            await self.s.execute(insert(_ACHIEVEMENTS), [r.columns for r in chunk])
            ipc_rows = [i for r in chunk for i in r.ipc]
            if ipc_rows:
                await self.s.execute(insert(achievement_ipc), ipc_rows)
            await self.s.execute(
                text("INSERT INTO achievement_fts (rowid, title, keywords, abstract) VALUES (:r, :t, :k, :a)"),
                [{"r": r.columns["fts_rowid"], "t": r.search[0], "k": r.search[1], "a": r.search[2]} for r in chunk],
            )

    async def _pg_vectors(self, docs: list[tuple[str, str, str, str]]) -> None:
        """One UPDATE for many rows (a statement per row costs a round trip each)."""
        ids, titles, keywords, abstracts = (list(x) for x in zip(*docs, strict=True))
        await self.s.execute(
            text(
                "UPDATE achievements AS a SET search_vector = "
                "setweight(to_tsvector('simple', v.t), 'A') || "
                "setweight(to_tsvector('simple', v.k), 'B') || "
                "setweight(to_tsvector('simple', v.ab), 'C') "
                "FROM unnest(CAST(:ids AS text[]), CAST(:ts AS text[]), CAST(:ks AS text[]), CAST(:abs AS text[])) "
                "AS v(id, t, k, ab) WHERE a.id = v.id"
            ),
            {"ids": ids, "ts": titles, "ks": keywords, "abs": abstracts},
        )

    async def add(self, a: Achievement) -> None:
        await self.add_many([a])

    async def save(self, a: Achievement, expected_version: int, *, content_changed: bool) -> bool:
        """Write `a` if the stored version is still `expected_version` (optimistic lock)."""
        values = _columns(a)
        values.pop("id")
        result = await self.s.execute(
            update(achievements)
            .where(achievements.c.id == a.id, achievements.c.version == expected_version)
            .values(**values)
        )
        if result.rowcount != 1:
            return False
        if content_changed:
            await self._index([(a, None)], new=False)
        return True

    async def _index(self, items: list[tuple[Achievement, None]], *, new: bool) -> None:
        """Re-index edited achievements: their IPC rows and their search text."""
        ipc_rows = []
        ids = [a.id for a, _ in items]
        await self.s.execute(delete(achievement_ipc).where(achievement_ipc.c.achievement_id.in_(ids)))
        for a, _ in items:
            for code in a.content.all_ipc_codes():
                ipc_rows.append({"achievement_id": a.id, "code_key": ipc_key(code), "subclass": code[:4]})
        if ipc_rows:
            await self.s.execute(insert(achievement_ipc), ipc_rows)
        docs = [(a.id, *search_fields(a.content)) for a, _ in items]
        if _dialect(self.s) == "postgresql":
            await self._pg_vectors(docs)
            return
        # SQLite: one FTS5 row per achievement, its rowid kept on the achievement.
        rows = await self.s.execute(
            select(achievements.c.id, achievements.c.fts_rowid).where(achievements.c.id.in_(ids)))
        existing: dict[str, int] = {i: r for i, r in rows if r is not None}
        updates = [{"r": existing[i], "t": t, "k": k, "a": ab} for i, t, k, ab in docs if i in existing]
        fresh = [d for d in docs if d[0] not in existing]
        if updates:
            await self.s.execute(
                text("UPDATE achievement_fts SET title = :t, keywords = :k, abstract = :a WHERE rowid = :r"), updates)
        if fresh:
            top = (await self.s.execute(text("SELECT coalesce(max(rowid), 0) FROM achievement_fts"))).scalar_one()
            rows = [{"r": top + n, "t": t, "k": k, "a": ab, "id": i} for n, (i, t, k, ab) in enumerate(fresh, start=1)]
            await self.s.execute(
                text("INSERT INTO achievement_fts (rowid, title, keywords, abstract) VALUES (:r, :t, :k, :a)"), rows)
            await self.s.execute(
                update(achievements).where(achievements.c.id == bindparam("aid")).values(fts_rowid=bindparam("r")),
                [{"aid": r["id"], "r": r["r"]} for r in rows],
            )

    async def due_for_expiry(self, now: datetime, limit: int) -> list[str]:
        rows = await self.s.execute(
            select(achievements.c.id)
            .where(achievements.c.status == Status.published.value, achievements.c.expires_at <= now)
            .order_by(achievements.c.expires_at).limit(limit)
        )
        return list(rows.scalars())

    # --- deals and valuations ----------------------------------------------------------------
    async def deal_party_orgs(self, achievement_id: str) -> set[str]:
        """Organisations in a signed or completed (not cancelled) deal over the achievement."""
        rows = await self.s.execute(
            select(deal_parties.c.seller_org_id, deal_parties.c.buyer_org_id).where(
                deal_parties.c.achievement_id == achievement_id,
                deal_parties.c.state.in_(("signed", "completed")),
            )
        )
        orgs: set[str] = set()
        for seller, buyer in rows:
            orgs.update((seller, buyer))
        return orgs

    async def record_deal(self, *, transfer_id: str, achievement_id: str, seller: str, buyer: str,
                          mode: str | None, state: str, now: datetime) -> None:
        values = {"seller_org_id": seller, "buyer_org_id": buyer, "mode": mode, "state": state, "updated_at": now}
        result = await self.s.execute(
            update(deal_parties).where(deal_parties.c.transfer_id == transfer_id,
                                       deal_parties.c.achievement_id == achievement_id).values(**values)
        )
        if result.rowcount == 0:
            await self.s.execute(insert(deal_parties).values(
                transfer_id=transfer_id, achievement_id=achievement_id, **values))

    async def active_deals(self, achievement_id: str) -> int:
        return (await self.s.execute(
            select(func.count()).select_from(deal_parties).where(
                deal_parties.c.achievement_id == achievement_id, deal_parties.c.state == "signed")
        )).scalar_one()

    async def record_valuation(self, values: dict) -> bool:
        """Keep the newest valuation per (achievement, requesting organisation)."""
        current = (await self.s.execute(
            select(valuations.c.completed_at).where(
                valuations.c.achievement_id == values["achievement_id"],
                valuations.c.requested_by_org_id == values["requested_by_org_id"],
            )
        )).scalar()
        if current is None:
            await self.s.execute(insert(valuations).values(**values))
            return True
        if _aware(current) >= values["completed_at"]:
            return False
        await self.s.execute(
            update(valuations).where(
                valuations.c.achievement_id == values["achievement_id"],
                valuations.c.requested_by_org_id == values["requested_by_org_id"],
            ).values(**values)
        )
        return True

    async def valuations_of(self, achievement_id: str, org_ids: Iterable[str]) -> dict[str, dict]:
        rows = (await self.s.execute(
            select(valuations).where(valuations.c.achievement_id == achievement_id,
                                     valuations.c.requested_by_org_id.in_(list(org_ids)))
        )).mappings()
        return {r["requested_by_org_id"]: {**r, "completed_at": _aware(r["completed_at"])} for r in rows}


# --- history ---------------------------------------------------------------------------------

# History rows whose changes arrive encoded (`encode_json`), as a bulk import writes them.
_HISTORY_ENCODED = table("history", *(column(c.name, EncodedJSON() if c.name == "changes" else c.type)
                                      for c in history.c if c.name != "seq"))


class History:
    def __init__(self, session: AsyncSession):
        self.s = session

    async def add_many(self, rows: list[dict]) -> None:
        if rows:
            await self.s.execute(insert(history), rows)

    async def add_encoded(self, rows: list[dict]) -> None:
        """Like add_many, with each row's `changes` already JSON text (`encode_json`)."""
        if not rows:
            return
        if _dialect(self.s) == "postgresql":
            await self.s.execute(_PG_INSERT_HISTORY, _arrays(_PG_HISTORY_PARAMS, rows))
            return
        conn = await self.s.connection()  # SQLite: the driver's parameters, as for the achievements
        for chunk in _chunks(_sqlite_tuples(rows, _SQLITE_HISTORY_COLUMNS, _HISTORY_PROCESSORS)):
            await conn.exec_driver_sql(_SQLITE_INSERT_HISTORY, chunk)

    async def add(self, **row) -> None:
        await self.add_many([row])

    async def page(self, aggregate: str, aggregate_id: str, *, limit: int, after_seq: int | None) -> list[dict]:
        q = select(history).where(history.c.aggregate == aggregate, history.c.aggregate_id == aggregate_id)
        if after_seq is not None:
            q = q.where(history.c.seq > after_seq)
        q = q.order_by(history.c.seq).limit(limit + 1)
        return [{**r, "at": _aware(r["at"])} for r in (await self.s.execute(q)).mappings()]
