"""Catalog search on SQLite FTS5 (embedded) and PostgreSQL full text (production).

Both stores get the same pre-tokenised text (see domain/text.py) and the same filters, so
they return the same hits. Ordering contract, identical on both: `relevance` sorts by the
store's relevance score (FTS5 bm25, PostgreSQL ts_rank; titles weigh most, then keywords, then
abstracts) then newest listing then id; `recency` sorts by listing time then id. Facet counts
are disjunctive: each facet is counted with every filter except its own, so a client can offer
the other values of a facet it already filters on.

How a search is answered:
- from the in-memory search columns (`SearchColumns`, below) unless the search names a region
  prefix (which each store matches with its own LIKE) or they are switched off (`SNAPSHOT`):
  each process holds, per engine, the searched values of every achievement (status, kind,
  TRL, modes, owner, price, listing time, IPC codes; a few MB at 100,000) as numpy columns,
  loaded on the first search and, before every search, brought up to date in that search's
  read transaction from the search_changes log (migration 0005). The total, every facet and
  the order of the page (relevance: score, listing time, id; recency: listing time, id) are
  computed there; SQL is asked only for the text hits with their scores (FTS5 bm25 from the
  FTS5 table; ts_rank from the narrow achievement_search table of migration 0006, never from
  the wide achievement rows), the page's documents and the institutions' names. On SQLite the
  hits are matched without scores first (bm25 is most of a common word's cost): a search whose
  filters keep less than half of them scores only those, one by listing time none, and any
  other takes from SQLite only the best-scored hits its page can come from.
- otherwise by SQL alone, as follows.

Where the counts come from when SQL alone answers:
- a search without text, price or region conditions, over statuses everyone may see (or by a
  reviewer), reads them from the count tables the triggers of migration 0004 keep, whose size
  depends on the variety of the values, not on the number of listings: the kind, TRL, mode
  and status facets and the total from facet_cells (facet_owner_cells when filtering on
  institutions), the institution facet from facet_owner_cells, the IPC facet from
  facet_ipc_cells (each unless the search filters on IPC codes, resp. institutions);
- otherwise the kind, TRL, mode and status facets come from one grouped query over the hits
  (grouped by those four values, each group tested against each filter in `_tally`), and the
  IPC and institution facets from one grouped query each, cut to their top 20.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import chain, repeat

import numpy as np
from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    cast,
    column,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    table,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.model import MODE_BITS, PUBLIC_STATUSES, Status, bits_to_modes, modes_to_bits
from ..domain.search import SearchHit, SearchQuery, SearchResult, Viewer
from .tables import achievement_ipc, achievements, facet_cells, facet_ipc_cells, facet_owner_cells, organisations

A = achievements
FTS = table("achievement_fts", column("rowid"))
# PostgreSQL: each achievement's id and tsvector, kept by the triggers of migration 0006 (hits
# are matched and ranked there rather than on the wide achievement rows).
TEXT = table("achievement_search", column("id"), column("search_vector"))
FACET_LIMIT = 20
PUBLIC = sorted(s.value for s in PUBLIC_STATUSES)


def _fts_match(tokens) -> str:
    return " ".join('"' + t.replace('"', "") + '"' for t in tokens)


def _pg_tsquery(param: str, q: SearchQuery):
    """PostgreSQL: the search's words as a tsquery, bound as `param`."""
    return func.plainto_tsquery(literal_column("'simple'::regconfig"), bindparam(param, " ".join(q.text_tokens)))


def _pg_binary_array(data: bytes, kind: str) -> np.ndarray:
    """A one-dimensional PostgreSQL array without NULLs in its binary form (array_send) as a
    numpy array: a header (dimensions, flags, element type, then length and lower bound per
    dimension), then each element as its 4-byte length and its big-endian value."""
    if int.from_bytes(data[:4], "big") == 0:  # no dimensions: empty
        return np.zeros(0, kind)
    n = int.from_bytes(data[12:16], "big")
    size = np.dtype(kind).itemsize
    items = np.frombuffer(data, [("length", ">i4"), ("value", ">" + kind)], count=n, offset=20)
    if n and not np.all(items["length"] == size):
        raise ValueError("unexpected element in a binary array")
    return items["value"].astype(kind)


def _prefix_range(prefix: str):
    """code_key starts with prefix, as a range both stores answer from the index."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(achievement_ipc.c.code_key >= prefix, achievement_ipc.c.code_key < upper)


@lru_cache(maxsize=128)
def _modes(bits: int) -> tuple[str, ...]:
    return tuple(bits_to_modes(bits))


def _ranked(counts: dict) -> list[dict]:
    return [{"value": v, "count": n} for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n > 0]


class Search:
    def __init__(self, session: AsyncSession):
        self.s = session
        self.pg = session.bind.dialect.name == "postgresql"
        self._tally_memo: tuple | None = None
        self._facets_now: tuple | None = None  # (facets, top institutions) from the columns
        self._facets_for: SearchQuery | None = None

    # --- clauses ------------------------------------------------------------------------------
    def _text_clause(self, q: SearchQuery):
        if not q.text_tokens:
            return None
        if self.pg:
            return A.c.id.in_(select(TEXT.c.id).where(TEXT.c.search_vector.op("@@")(_pg_tsquery("tsq", q))))
        sub = select(FTS.c.rowid).where(text("achievement_fts MATCH :fts").bindparams(fts=_fts_match(q.text_tokens)))
        return A.c.fts_rowid.in_(sub)

    def _visibility(self, q: SearchQuery, viewer: Viewer, *, without: str | None):
        # Only needed when a non-public state is asked for (or, for the status facet, when its
        # own filter is dropped); a plain condition lets the planner use indexes.
        only_public = bool(q.statuses) and without != "status" and set(q.statuses) <= PUBLIC_STATUSES
        if viewer.reviewer or only_public:
            return None
        public = A.c.status.in_(PUBLIC)
        return or_(public, A.c.owner_org_id == viewer.org) if viewer.org else public

    def _where(self, q: SearchQuery, viewer: Viewer, *, without: str | None = None, with_text: bool = True,
               cells: bool = True) -> list:
        """Conditions of the search; `without` drops one facet's own filter, `cells=False` drops
        the filters on the four values facet_cells holds (status, kind, TRL, mode)."""
        w = []
        if cells and q.statuses and without != "status":
            w.append(A.c.status.in_([s.value for s in q.statuses]))
        vis = self._visibility(q, viewer, without=without if cells else "status")
        if vis is not None:
            w.append(vis)
        if q.ipc_prefixes and without != "ipc_class":
            w.append(A.c.id.in_(select(achievement_ipc.c.achievement_id).where(
                or_(*[_prefix_range(p) for p in q.ipc_prefixes]))))
        if cells and without != "trl":
            if q.trl_min is not None:
                w.append(A.c.trl >= q.trl_min)
            if q.trl_max is not None:
                w.append(A.c.trl <= q.trl_max)
        if cells and q.ip_types and without != "ip_type":
            w.append(A.c.ip_type.in_([t.value for t in q.ip_types]))
        if cells and q.transfer_modes and without != "transfer_mode":
            w.append(A.c.modes_bits.op("&")(modes_to_bits(q.transfer_modes)) != 0)
        if q.owner_org_ids and without != "institution":
            w.append(A.c.owner_org_id.in_(list(q.owner_org_ids)))
        if q.price_min is not None or q.price_max is not None:
            w.append(A.c.price_currency == q.currency)
            if q.price_min is not None:
                w.append(A.c.price_amount >= q.price_min)
            if q.price_max is not None:
                w.append(A.c.price_amount <= q.price_max)
        if q.region:
            w.append(A.c.region.like(q.region.replace("%", "") + "%"))
        match = self._text_clause(q) if with_text else None
        if match is not None:
            w.append(match)
        return w

    # --- which counts the count tables can answer ----------------------------------------------
    @staticmethod
    def _counted(q: SearchQuery, viewer: Viewer) -> bool:
        """No condition the count tables do not hold, and no visibility that depends on the caller
        (other than the caller's own unlisted achievements in the status facet, added apart)."""
        statuses_ok = viewer.reviewer or (bool(q.statuses) and set(q.statuses) <= PUBLIC_STATUSES)
        return (statuses_ok and not q.text_tokens and q.price_min is None and q.price_max is None
                and not q.region)

    def _cells_counted(self, q: SearchQuery, viewer: Viewer) -> bool:
        """Whether facet_cells (or the owner or IPC count table) answers the total and the kind,
        TRL, mode and status facets: an IPC filter only when it is one whole subclass, which
        facet_ipc_cells counts exactly (an achievement once per subclass)."""
        if not self._counted(q, viewer):
            return False
        return not q.ipc_prefixes or (_one_subclass(q) is not None and not q.owner_org_ids)

    def _count_statuses(self, q: SearchQuery, viewer: Viewer) -> list[str] | None:
        return [s.value for s in q.statuses] if q.statuses else (None if viewer.reviewer else PUBLIC)

    def _count_where(self, t, q: SearchQuery, viewer: Viewer) -> list:
        """The search's filters on (status, kind, TRL, modes), and on institutions where the
        table holds them, as conditions on a count table."""
        w = [t.c.n > 0, *self._cell_conditions(t, q, viewer, without=None)]
        if q.owner_org_ids and t is facet_owner_cells:
            w.append(t.c.owner_org_id.in_(list(q.owner_org_ids)))
        return w

    # --- query ----------------------------------------------------------------------------------
    async def _columns(self, q: SearchQuery) -> SearchColumns | None:
        """The in-memory columns, up to date with this session's view of the store; None when
        the search is answered by SQL alone (switched off, or a region prefix, which each
        store matches with its own LIKE)."""
        if not SNAPSHOT or q.region:
            return None
        engine = self.s.bind.sync_engine
        cols = _COLUMNS.get(engine)
        if cols is None:
            cols = _COLUMNS[engine] = SearchColumns(self.pg)
        if not await cols.current(self.s):
            async with cols.lock():
                await cols.refresh(self.s)
        return cols

    async def _pg_text_hits(self, q: SearchQuery, cols: SearchColumns) -> tuple[np.ndarray, np.ndarray]:
        """PostgreSQL: every text hit as (row in the columns, relevance score), from the narrow
        text table alone."""
        # Two arrays in one row, in PostgreSQL's binary array form (array_send), which numpy
        # reads as they come: no result row, and no Python int or float, per hit. The query is
        # built once, in FROM: written into ts_rank's arguments, a prepared statement's generic
        # plan parsed it again for every hit (~40 % of the statement's CPU).
        def hits(key: str, send: str = "array_send"):
            return text(
                f"SELECT {send}(coalesce(array_agg(k), '{{}}')), {send}(coalesce(array_agg(r), '{{}}')) "
                f"FROM (SELECT {key} AS k, ts_rank(search_vector, q) AS r "
                "FROM plainto_tsquery('simple'::regconfig, :tsq) AS q, achievement_search "
                "WHERE search_vector @@ q) hits")

        tsq = {"tsq": " ".join(q.text_tokens)}
        keys, ranks = (await self.s.execute(hits(_KEY[True]), tsq)).one()
        at = cols.rows_of_keys(_pg_binary_array(keys, "i8"))
        scores = _pg_binary_array(ranks, "f4").astype(np.float64)  # ts_rank is a real
        if at is None:  # two ids share a hash: ask for the ids themselves
            ids, ranks = (await self.s.execute(hits("id", send=""), tsq)).one()
            at = cols.rows_of(ids)
            scores = np.asarray(ranks, np.float64)
        known = at >= 0  # a row committed after the columns were brought up to date is left out
        return at[known], scores[known]

    # --- SQLite: hits first, then bm25 for as few of them as the page needs ---------------------
    # bm25 costs FTS5 ~1 us per hit (the match alone a twentieth of that), and handing every
    # scored hit to Python costs a third as much again. So the hits are matched without scores
    # (for the total and the facets); when the filters keep few of them only those are scored,
    # otherwise SQLite scores them all but hands over only the best, as many as the page needs.

    async def _fts(self, sql: str, params: tuple) -> list[tuple]:
        """Rows of an FTS5 query straight from the driver (no result row object each)."""
        conn = await self.s.connection()
        raw = (await conn.get_raw_connection()).driver_connection
        async with raw.execute(sql, params) as cursor:
            return await cursor.fetchall()

    async def _fts_scores(self, q: SearchQuery, only: np.ndarray | None = None,
                          best: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(FTS rowid, score) of every hit, of the hits among the FTS rowids `only`, or of the
        `best` best-scored hits (best first; which of a tie makes the cut is SQLite's choice):
        the same scores any way (bm25's statistics are the whole table's). The unary plus keeps
        FTS5 from taking the rowid list as a lookup, which would run the match once per rowid."""
        sql = ("SELECT rowid, -bm25(achievement_fts, 10.0, 4.0, 1.0) AS score FROM achievement_fts "
               "WHERE achievement_fts MATCH ?")
        params: tuple = (_fts_match(q.text_tokens),)
        if only is not None:
            sql += " AND +rowid IN (SELECT value FROM json_each(?))"
            params += ("[" + ",".join(map(str, only.tolist())) + "]",)
        if best is not None:
            sql += " ORDER BY score DESC LIMIT ?"
            params += (best,)
        rows = await self._fts(sql, params)
        # Thousands of pairs become one array without a Python object each.
        pairs = np.fromiter(chain.from_iterable(rows), np.float64, count=2 * len(rows)).reshape(-1, 2)
        return pairs[:, 0].astype(np.int64), pairs[:, 1]

    async def _fts_best(self, q: SearchQuery, cols: SearchColumns, sel: _Selection,
                        need: int) -> tuple[np.ndarray, np.ndarray]:
        """(FTS rowid, score) of enough of the best-scored hits that the first `need` hits the
        selection keeps (in relevance order) are among them; of every hit when that would take
        a good part of them.

        The k-th best score may be shared by hits SQLite left out, so only the hits scoring
        above it are known to be all there is above it: once `need` kept hits score above it,
        the page (by score, then listing time and id) comes from them alone. Otherwise k grows.
        (When the selection keeps fewer than `need`, the last page, each kept hit is needed.)"""
        kept = sel.full(sel.mask)
        n = len(sel.hits)
        # At the share of hits the selection keeps, k should hold `need` of them; and a margin.
        k = int(need * n / max(sel.total, 1) * BEST_MARGIN) + BEST_EXTRA
        while sel.total >= need and k < BEST_SHARE * n:
            rowids, found = await self._fts_scores(q, best=k)
            if len(rowids) < k:  # fewer hits than asked for: every one is here
                cols.text_ranking["best"] += 1
                return rowids, found
            at = cols.rows_of_fts(rowids[found > found[-1]])
            if np.count_nonzero(kept[at[at >= 0]]) >= need:
                cols.text_ranking["best"] += 1
                return rowids, found
            k *= BEST_GROWTH
        cols.text_ranking["all"] += 1
        return await self._fts_scores(q)

    async def _fts_hits(self, q: SearchQuery, cols: SearchColumns) -> np.ndarray:
        """The rows of every hit, without scores: one string of rowids from SQLite."""
        (joined,), = await self._fts(
            "SELECT coalesce(group_concat(rowid), '') FROM achievement_fts WHERE achievement_fts MATCH ?",
            (_fts_match(q.text_tokens),))
        rowids = np.fromstring(joined, dtype=np.int64, sep=",") if joined else np.zeros(0, np.int64)
        at = cols.rows_of_fts(rowids)
        return at[at >= 0]

    async def _sqlite_text(self, q: SearchQuery, viewer: Viewer, cols: SearchColumns):
        """SQLite's text hits, the selection over them and their scores (None when not needed);
        a hit left unscored scores -inf, below any the page can come from."""
        hits = await self._fts_hits(q, cols)
        sel = cols.select(q, viewer, hits)
        if q.sort != "relevance":  # a page by listing time needs no score
            cols.text_ranking["none"] += 1
            return hits, sel, None
        keep = sel.total
        if not keep:  # no hit, or none the filters keep: nothing to score
            cols.text_ranking["none"] += 1
            rowids, found = np.zeros(0, np.int64), np.zeros(0)
        elif keep < RANK_SUBSET_SHARE * len(hits):
            cols.text_ranking["filtered"] += 1
            rowids, found = await self._fts_scores(q, only=cols.rows["fts"][hits[sel.mask]])
        else:
            rowids, found = await self._fts_best(q, cols, sel, _offset(q) + q.limit + 1)
        # Scores by row, then in the order of the hits.
        by_row = np.full(cols.rows.n, -np.inf)
        at = cols.rows_of_fts(rowids)
        by_row[at[at >= 0]] = found[at >= 0]
        return hits, sel, by_row[hits]

    async def run(self, q: SearchQuery, viewer: Viewer) -> SearchResult:
        cols = await self._columns(q)
        if cols is None:
            return await self._run_sql(q, viewer)
        hits = scores = None
        if q.text_tokens and not self.pg:
            hits, sel, scores = await self._sqlite_text(q, viewer, cols)
        else:
            if q.text_tokens:
                hits, scores = await self._pg_text_hits(q, cols)
            sel = cols.select(q, viewer, hits)
        if q.sort == "relevance" and q.text_tokens:
            offset = _offset(q)
            page = sel.page(scores, offset, q.limit + 1)
            more = len(page) > q.limit
            rows = [{"id": aid, "score": score} for aid, score in page[: q.limit]]
            next_cursor = {"s": "relevance", "o": offset + len(rows)} if more else None
        else:
            after = None
            if q.cursor:
                after = (_micros(datetime.fromisoformat(q.cursor["l"])), q.cursor["i"])
            page = sel.newest(after, q.limit + 1)
            more = len(page) > q.limit
            rows = [{"id": aid, "score": None} for aid in page[: q.limit]]
            next_cursor = {"s": "recency", "i": rows[-1]["id"]} if more else None
            if next_cursor:
                listed = int(cols.rows["listed"][cols.where[next_cursor["i"]]])
        # Everything the columns answer is taken now, before the next await: another search may
        # bring them up to date (or load them anew) meanwhile.
        self._facets_now = sel.facets() if q.facets else None
        self._facets_for = q
        hits = await self._documents(rows)
        if next_cursor and next_cursor["s"] == "recency":
            # The cursor carries the listing time as the store gives it, as the SQL way does.
            last = hits[-1].row["listed_at"] if hits and hits[-1].achievement_id == next_cursor["i"] else None
            if last is None:  # (left out above: this session's snapshot is older than the columns)
                last = _EPOCH + timedelta(microseconds=listed)
                last = last if self.pg else last.replace(tzinfo=None)
            next_cursor = {"s": "recency", "l": _iso(last), "i": next_cursor["i"]}
        return SearchResult(hits=hits, next_cursor=next_cursor, total=sel.total)

    async def _documents(self, rows) -> list[SearchHit]:
        docs = {}
        if rows:
            fetched = await self.s.execute(
                select(A.c.id, A.c.owner_org_id, A.c.status, A.c.version, A.c.content, A.c.listed_at,
                       A.c.published_at, A.c.expires_at).where(A.c.id.in_([r["id"] for r in rows]))
            )
            docs = {d["id"]: dict(d) for d in fetched.mappings()}
        # (A hit the columns knew of but this session's older snapshot does not is left out.)
        return [SearchHit(r["id"], float(r["score"]) if r["score"] is not None else None, docs[r["id"]])
                for r in rows if r["id"] in docs]

    async def _run_sql(self, q: SearchQuery, viewer: Viewer) -> SearchResult:
        where = self._where(q, viewer)
        # Rank on narrow rows (id, listed_at, score); fetch the page's documents afterwards, so
        # sorting thousands of hits never drags their JSON content along.
        cols = [A.c.id, A.c.listed_at]
        relevance = q.sort == "relevance" and bool(q.text_tokens)
        total = None
        if relevance:
            offset = _offset(q)
            # The total comes with the ranking (which visits every hit anyway): one text match.
            counted = func.count().over().label("total")
            # The text match drives and ranks on the narrow text table, then each hit finds its
            # achievement (SQLite: through ix_achievements_fts_rowid).
            if self.pg:
                # ts_rank (higher is better) from achievement_search (migration 0006), the query
                # built once in FROM (see _pg_text_hits).
                built = _pg_tsquery("tsq2", q).alias("q")
                hits = (select(TEXT.c.id.label("r"), func.ts_rank(TEXT.c.search_vector, built.column).label("score"))
                        .select_from(built.join(TEXT, TEXT.c.search_vector.op("@@")(built.column)))
                        .subquery("hits"))
                on = A.c.id == hits.c.r
            else:
                # bm25 must be computed in the query that matches (lower is better).
                hits = (
                    select(FTS.c.rowid.label("r"), literal_column("-bm25(achievement_fts, 10.0, 4.0, 1.0)").label("score"))
                    .where(text("achievement_fts MATCH :fts2").bindparams(fts2=_fts_match(q.text_tokens)))
                    .subquery("hits")
                )
                on = A.c.fts_rowid == hits.c.r
            stmt = (
                select(*cols, hits.c.score.label("score"), counted)
                .select_from(hits.join(A, on))
                .where(*self._where(q, viewer, with_text=False))
            )
            stmt = stmt.order_by(literal_column("score").desc(), A.c.listed_at.desc(), A.c.id.desc())
            stmt = stmt.limit(q.limit + 1).offset(offset)
            rows = (await self.s.execute(stmt)).mappings().all()
            if rows:
                total = rows[0]["total"]
            more = len(rows) > q.limit
            rows = rows[: q.limit]
            next_cursor = {"s": "relevance", "o": offset + len(rows)} if more else None
        else:
            rows = (await self.s.execute(self._recent(q, viewer))).mappings().all()
            more = len(rows) > q.limit
            rows = rows[: q.limit]
            last = rows[-1] if rows else None
            next_cursor = (
                {"s": "recency", "l": _iso(last["listed_at"]), "i": last["id"]} if more and last else None
            )
        if total is None:
            total = await self._total(q, viewer, where)
        return SearchResult(hits=await self._documents(rows), next_cursor=next_cursor, total=total)

    def _recent(self, q: SearchQuery, viewer: Viewer):
        """The page newest first. With several statuses, one index-ordered branch per status
        (each stops after a page) merged: `status IN (a, b)` cannot be read from the
        (status, listed_at, id) index in listing order, and both stores would otherwise sort
        every visible listing to find the newest twenty."""
        def branch(query: SearchQuery):
            stmt = select(A.c.id, A.c.listed_at, literal_column("NULL").label("score")).where(*self._where(query, viewer))
            if q.cursor:
                at = datetime.fromisoformat(q.cursor["l"])
                stmt = stmt.where(or_(A.c.listed_at < at, and_(A.c.listed_at == at, A.c.id < q.cursor["i"])))
            return stmt.order_by(A.c.listed_at.desc(), A.c.id.desc()).limit(q.limit + 1)

        if len(q.statuses) < 2 or q.text_tokens:
            return branch(q)
        parts = [branch(replace(q, statuses=(s,))).subquery() for s in q.statuses]
        merged = union_all(*[select(p.c.id, p.c.listed_at, p.c.score) for p in parts]).subquery("recent")
        return (select(merged.c.id, merged.c.listed_at, merged.c.score)
                .order_by(merged.c.listed_at.desc(), merged.c.id.desc()).limit(q.limit + 1))

    async def _total(self, q: SearchQuery, viewer: Viewer, where: list) -> int:
        if self._cells_counted(q, viewer):
            if q.facets:  # counted with the facets, in the same statement
                return (await self._counted_tally(q, viewer))[0]
            t, base = self._counts_table(q)
            where = base + self._cell_conditions(t, q, viewer, without=None)
            return int((await self.s.execute(select(func.coalesce(func.sum(t.c.n), 0)).where(*where))).scalar_one())
        return (await self.s.execute(select(func.count()).select_from(A).where(*where))).scalar_one()

    # --- facets ---------------------------------------------------------------------------------
    async def facets(self, q: SearchQuery, viewer: Viewer) -> dict[str, list[dict]]:
        if self._facets_now is not None and self._facets_for == q:
            out, owners = self._facets_now
            return {**out, "institution": await self._labelled(owners)}
        counted = self._counted(q, viewer)
        # Kind, TRL, mode and status: one set of (status, kind, TRL, modes) groups, from the
        # count tables or from one grouped query over the hits without those four filters.
        if self._cells_counted(q, viewer):
            out = dict((await self._counted_tally(q, viewer))[1])
        else:
            cols = (A.c.status, A.c.ip_type, A.c.trl, A.c.modes_bits)
            rows = await self.s.execute(
                select(*cols, func.count()).where(*self._where(q, viewer, cells=False)).group_by(*cols))
            out = self._tally(q, [((s, t, trl, bits), n) for s, t, trl, bits, n in rows])[1]
        out["ipc_class"] = await self._ipc_facet(q, viewer, counted)
        out["institution"] = await self._institution_facet(q, viewer, counted)
        return out

    def _tally(self, q: SearchQuery, cells: list) -> tuple[int, dict[str, list[dict]]]:
        """Total and disjunctive counts from (status, kind, TRL, modes) groups: a group that meets
        every filter counts in every facet; one that misses exactly one filter counts only in
        that filter's facet (each facet is counted without its own filter)."""
        st = {s.value for s in q.statuses} if q.statuses else None
        kinds = {t.value for t in q.ip_types} if q.ip_types else None
        lo, hi = q.trl_min, q.trl_max
        want = modes_to_bits(q.transfer_modes) if q.transfer_modes else 0
        total = 0
        by_status: dict = {}
        by_kind: dict = {}
        by_trl: dict = {}
        by_bits: dict = {}
        for (status, ip_type, trl, bits), n in cells:
            miss_s = st is not None and status not in st
            miss_t = (lo is not None and trl < lo) or (hi is not None and trl > hi)
            miss_k = kinds is not None and ip_type not in kinds
            miss_m = want != 0 and not bits & want
            misses = miss_s + miss_t + miss_k + miss_m
            if misses > 1:
                continue
            if not miss_t and not miss_k and not miss_m:
                by_status[status] = by_status.get(status, 0) + n
            if misses == 0:
                total += n
            if not miss_s and not miss_k and not miss_m:
                by_trl[trl] = by_trl.get(trl, 0) + n
            if not miss_s and not miss_t and not miss_m:
                by_kind[ip_type] = by_kind.get(ip_type, 0) + n
            if not miss_s and not miss_t and not miss_k:
                by_bits[bits] = by_bits.get(bits, 0) + n
        by_mode: dict = {}
        for bits, n in by_bits.items():
            for m in _modes(bits):
                by_mode[m] = by_mode.get(m, 0) + n
        return total, {"ip_type": _ranked(by_kind), "trl": _ranked(by_trl), "transfer_mode": _ranked(by_mode),
                       "status": _ranked(by_status)}

    def _counts_table(self, q: SearchQuery):
        """The count table answering a search's kind/TRL/mode/status counts, and its own conditions."""
        if q.ipc_prefixes:
            return facet_ipc_cells, [facet_ipc_cells.c.n > 0, facet_ipc_cells.c.subclass == _one_subclass(q)]
        if q.owner_org_ids:
            t = facet_owner_cells
            return t, [t.c.n > 0, t.c.owner_org_id.in_(list(q.owner_org_ids))]
        return facet_cells, [facet_cells.c.n > 0]

    def _cell_conditions(self, t, q: SearchQuery, viewer: Viewer, *, without: str | None) -> list:
        """The filters on (status, kind, TRL, modes) as conditions on a count table, leaving out
        facet `without`'s own (the status facet then counts every status the caller may see)."""
        w = []
        statuses = (None if viewer.reviewer else PUBLIC) if without == "status" else self._count_statuses(q, viewer)
        if statuses is not None:
            w.append(t.c.status.in_(statuses))
        if without != "trl" and q.trl_min is not None:
            w.append(t.c.trl >= q.trl_min)
        if without != "trl" and q.trl_max is not None:
            w.append(t.c.trl <= q.trl_max)
        if without != "ip_type" and q.ip_types:
            w.append(t.c.ip_type.in_([x.value for x in q.ip_types]))
        if without != "transfer_mode" and q.transfer_modes:
            w.append(t.c.modes_bits.op("&")(modes_to_bits(q.transfer_modes)) != 0)
        return w

    async def _counted_tally(self, q: SearchQuery, viewer: Viewer) -> tuple[int, dict[str, list[dict]]]:
        """Total and the kind, TRL, mode and status facets from a count table, summed in one
        statement (five small grouped sums) rather than read group by group into Python."""
        if self._tally_memo is not None:
            return self._tally_memo
        t, base = self._counts_table(q)
        no_text, no_int = cast(null(), String), cast(null(), Integer)

        def part(name: str, s_col, i_col, without: str | None):
            stmt = select(literal(name).label("f"), s_col.label("s"), i_col.label("i"), func.sum(t.c.n).label("n"))
            stmt = stmt.where(*base, *self._cell_conditions(t, q, viewer, without=without))
            groups = [c for c in (s_col, i_col) if c is not no_text and c is not no_int]
            return stmt.group_by(*groups) if groups else stmt

        stmt = union_all(
            part("total", no_text, no_int, None),
            part("ip_type", t.c.ip_type, no_int, "ip_type"),
            part("trl", no_text, t.c.trl, "trl"),
            part("transfer_mode", no_text, t.c.modes_bits, "transfer_mode"),
            part("status", t.c.status, no_int, "status"),
        )
        total = 0
        by: dict[str, dict] = {"ip_type": {}, "trl": {}, "transfer_mode": {}, "status": {}}
        for f, sv, iv, n in await self.s.execute(stmt):
            n = int(n or 0)
            if f == "total":
                total = n
            elif f == "transfer_mode":
                for m in _modes(iv):
                    by[f][m] = by[f].get(m, 0) + n
            else:
                by[f][sv if iv is None else iv] = n
        if not viewer.reviewer and viewer.org and (not q.owner_org_ids or viewer.org in q.owner_org_ids):
            # The status facet also shows the caller's own unlisted achievements (drafts, ...).
            rows = await self.s.execute(
                select(A.c.status, func.count())
                .where(A.c.owner_org_id == viewer.org, A.c.status.not_in(PUBLIC), *self._where(q, viewer, without="status"))
                .group_by(A.c.status))
            for status, n in rows:
                by["status"][status] = by["status"].get(status, 0) + n
        self._tally_memo = total, {f: _ranked(c) for f, c in by.items()}
        return self._tally_memo

    async def _ipc_facet(self, q: SearchQuery, viewer: Viewer, counted: bool) -> list[dict]:
        # IPC subclasses (an achievement with several codes in one subclass counts once).
        if counted and not q.owner_org_ids:
            c = facet_ipc_cells
            n = func.sum(c.c.n).label("n")
            stmt = (select(c.c.subclass, n).where(*self._count_where(c, q, viewer)).group_by(c.c.subclass)
                    .order_by(literal_column("n").desc(), c.c.subclass).limit(FACET_LIMIT))
        else:
            # The hits as a set of ids (read from the narrow indexes), then their IPC rows: no
            # lookup of a wide achievement row per code.
            i = achievement_ipc
            n = func.count(func.distinct(i.c.achievement_id)).label("n")
            hits = select(A.c.id).where(*self._where(q, viewer, without="ipc_class"))
            stmt = (select(i.c.subclass, n).where(i.c.achievement_id.in_(hits)).group_by(i.c.subclass)
                    .order_by(literal_column("n").desc(), i.c.subclass).limit(FACET_LIMIT))
        return [{"value": v, "count": int(k)} for v, k in await self.s.execute(stmt)]

    async def _institution_facet(self, q: SearchQuery, viewer: Viewer, counted: bool) -> list[dict]:
        if counted and not q.ipc_prefixes:
            c = facet_owner_cells
            n = func.sum(c.c.n).label("n")
            # Counted without the institution filter (this facet's own).
            where = self._count_where(c, _without_owners(q), viewer)
            stmt = (select(c.c.owner_org_id, n).where(*where).group_by(c.c.owner_org_id)
                    .order_by(literal_column("n").desc(), c.c.owner_org_id).limit(FACET_LIMIT))
        else:
            # Grouped on an expression, so SQLite reads the narrow facet index (which holds the
            # owner) instead of walking the owner index and every wide row it points to.
            n = func.count().label("n")
            owner = A.c.owner_org_id.op("||")(literal_column("''")).label("owner")
            stmt = (select(owner, n).where(*self._where(q, viewer, without="institution"))
                    .group_by(owner).order_by(literal_column("n").desc(), owner).limit(FACET_LIMIT))
        return await self._labelled([(v, int(k)) for v, k in await self.s.execute(stmt)])

    async def _labelled(self, top: list[tuple[str, int]]) -> list[dict]:
        names = {}
        if top:
            rows = await self.s.execute(select(organisations.c.id, organisations.c.name)
                                        .where(organisations.c.id.in_([v for v, _ in top])))
            names = dict(rows.all())
        return [{"value": v, "label": names.get(v), "count": k} for v, k in top]


def _offset(q: SearchQuery) -> int:
    """How many hits earlier relevance pages showed (relevance cursors carry the offset)."""
    return int((q.cursor or {}).get("o", 0))


def _one_subclass(q: SearchQuery) -> str | None:
    """The IPC filter's subclass when it is exactly one whole subclass such as H01M."""
    return q.ipc_prefixes[0] if len(q.ipc_prefixes) == 1 and len(q.ipc_prefixes[0]) == 4 else None


def _without_owners(q: SearchQuery) -> SearchQuery:
    return replace(q, owner_org_ids=())


def _iso(value: datetime) -> str:
    return value.isoformat()


# --- in-memory search columns ----------------------------------------------------------------------

SNAPSHOT = True  # False: every search is answered by SQL alone (the tests compare both ways)
RELOAD_SHARE = 0.2  # more changed achievements than this share of all: load everything again
# SQLite: when the filters keep less than this share of the text hits, only those are scored
# (measured at 100,000 listings: scoring a fifth or two fifths of a common word's hits through
# a rowid list cost 10-50 % less than scoring them all; seven tenths cost about the same).
RANK_SUBSET_SHARE = 0.5
# SQLite, otherwise: the best hits are asked for, as many as should hold the page at the share
# of hits the filters keep, times BEST_MARGIN plus BEST_EXTRA; BEST_GROWTH times as many when
# too few were; every hit once that reaches BEST_SHARE of them (measured at 100,000 listings,
# 16,000 hits: 21 best cost 70 % of scoring all, 1,000 best 80 %, 4,000 best as much).
BEST_MARGIN, BEST_EXTRA, BEST_GROWTH, BEST_SHARE = 2, 200, 4, 0.2
_CHUNK = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ROW_SQL = ("SELECT id, status, ip_type, trl, modes_bits, owner_org_id, price_currency, price_amount, listed_at, "
            "{key} FROM achievements")
# The last column: SQLite's FTS rowid; on PostgreSQL a 64-bit hash of the id, which text hits
# come back as (an array of integers costs far less to send and look up than one of ids).
_KEY = {False: "fts_rowid", True: "hashtextextended(id, 0)"}
_IPC_SQL = "SELECT achievement_id, code_key, subclass FROM achievement_ipc"
_COLUMNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def _raw_rows(s: AsyncSession, sql: str) -> list[tuple]:
    """All rows of a query without parameters, straight from the driver (no result row
    objects: a full load reads some 270,000 rows at 100,000 achievements)."""
    conn = await s.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    if s.bind.dialect.name == "postgresql":
        return [tuple(r) for r in await raw.fetch(sql)]
    async with raw.execute(sql) as cursor:
        return await cursor.fetchall()


def _micros_all(values) -> np.ndarray:
    """Listing times as microseconds since 1970 (UTC), as the store gives them: ISO text
    on SQLite (parsed at once), datetimes on PostgreSQL."""
    if values and all(isinstance(v, str) for v in values):
        try:
            return np.asarray(values, "datetime64[us]").astype(np.int64)
        except ValueError:
            pass
    return np.asarray([_micros(v) for v in values], np.int64)


def _micros(value) -> int:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1)


class _Vocab:
    """Values <-> small integer codes (codes are never reused)."""

    def __init__(self, values=()):
        self.values: list = []
        self.codes: dict = {}
        for v in values:
            self.code(v)

    def code(self, value) -> int:
        c = self.codes.get(value)
        if c is None:
            c = self.codes[value] = len(self.values)
            self.values.append(value)
        return c

    def code_all(self, values: list) -> list[int]:
        codes = self.codes
        for v in set(values).difference(codes):
            self.code(v)
        return [codes[v] for v in values]

    def codes_of(self, values) -> list[int]:
        return [self.codes[v] for v in values if v in self.codes]


class _Grow:
    """Parallel numpy columns that grow by doubling."""

    def __init__(self, **dtypes):
        self.n = 0
        self.cols = {k: np.zeros(1024, d) for k, d in dtypes.items()}

    def reserve(self, extra: int) -> None:
        cap = len(next(iter(self.cols.values())))
        if self.n + extra <= cap:
            return
        cap = max(cap * 2, self.n + extra)
        for k, a in self.cols.items():
            b = np.zeros(cap, a.dtype)
            b[: self.n] = a[: self.n]
            self.cols[k] = b

    def __getitem__(self, k: str) -> np.ndarray:
        return self.cols[k][: self.n]


class SearchColumns:
    """What searches filter, count and rank on, for every achievement, as numpy columns.

    Kept per process (per engine), loaded on the first search and brought up to date before
    each search from the search_changes log (migration 0005) in that search's own read
    transaction: a search never answers from before a change committed by any process."""

    def __init__(self, pg: bool):
        self.pg = pg
        self.horizon: int | None = None  # SQLite: next change seq; PostgreSQL: snapshot xmin
        self.loads = 0      # full loads so far (tests look at them)
        self.applied = 0    # achievements re-read from the change log so far
        # SQLite text searches so far by what was scored: all hits, the best, the filtered ones, none.
        self.text_ranking: Counter[str] = Counter()
        self._done: set[int] = set()  # PostgreSQL: transactions at or above the horizon already applied
        self._loop = None
        self._lock: asyncio.Lock | None = None
        self._clear()

    def _clear(self) -> None:
        self.rows = _Grow(status=np.int16, kind=np.int16, trl=np.int16, bits=np.int32, owner=np.int32,
                          cur=np.int16, price=np.int64, listed=np.int64, fts=np.int64)
        self.ids: list[str] = []
        self.where: dict[str, int] = {}
        self.fts_idx = np.full(1024, -1, np.int64)  # SQLite FTS rowid -> row
        # (row, IPC code) pairs for filters, (row, subclass) pairs (distinct) for the facet
        self.codes = _Grow(row=np.int32, code=np.int32, alive=np.bool_)
        self.subs = _Grow(row=np.int32, sub=np.int32, alive=np.bool_)
        self.status_v = _Vocab(s.value for s in Status)
        self.kind_v, self.owner_v, self.cur_v = _Vocab(), _Vocab(), _Vocab()
        self.code_v, self.sub_v = _Vocab(), _Vocab()
        self.code_sub = np.zeros(0, np.int32)  # IPC code -> subclass code
        self._prefix_memo: dict[tuple, np.ndarray] = {}
        self._by_id: tuple | None = None
        self._by_key: tuple | None = None

    def _ids_sorted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids sorted, their rows, each row's place in id order), rebuilt when ids were added."""
        if self._by_id is not None and self._by_id[0] == len(self.ids):
            return self._by_id[1:]
        if self._by_id is not None and len(self.ids) - self._by_id[0] <= 1000:
            # A few new achievements: merged into the sorted ids (a full sort of 100,000 id
            # strings costs ~35 ms, this a few).
            known, ordered, order, _ = self._by_id
            new = np.asarray(self.ids[known:])
            new_rows = np.arange(known, len(self.ids))
            by = np.argsort(new, kind="stable")
            new, new_rows = new[by], new_rows[by]
            ordered = ordered.astype(np.result_type(ordered, new))
            at = np.searchsorted(ordered, new)
            ordered, order = np.insert(ordered, at, new), np.insert(order, at, new_rows)
        else:
            ids = np.asarray(self.ids) if self.ids else np.zeros(0, "U1")
            order = np.argsort(ids, kind="stable")
            ordered = ids[order]
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        self._by_id = (len(self.ids), ordered, order, rank)
        return self._by_id[1:]

    def id_rank(self) -> np.ndarray:
        return self._ids_sorted()[2]

    def rank_of(self, achievement_id: str) -> float:
        """Where an id falls in id order (between two ranks when it is not a known id)."""
        ids, _, _ = self._ids_sorted()
        at = int(np.searchsorted(ids, achievement_id))
        return at if at < len(ids) and ids[at] == achievement_id else at - 0.5

    def rows_of_keys(self, keys: np.ndarray) -> np.ndarray | None:
        """PostgreSQL: the rows of these id hashes (-1 for unknown ones); None when two ids
        share a hash (then hits must come back as ids)."""
        if self._by_key is None:
            live = self.rows["fts"]
            order = np.argsort(live, kind="stable")
            ordered = live[order]
            unique = len(ordered) < 2 or bool(np.all(ordered[1:] != ordered[:-1]))
            self._by_key = (ordered, order, unique)
        ordered, order, unique = self._by_key
        if not unique:
            return None
        if not len(ordered) or not len(keys):
            return np.full(len(keys), -1, np.int64)
        at = np.minimum(np.searchsorted(ordered, keys), len(ordered) - 1)
        return np.where(ordered[at] == keys, order[at], -1)

    def rows_of_fts(self, rowids: np.ndarray) -> np.ndarray:
        """SQLite: the rows of these FTS rowids (-1 for rowids the columns do not hold)."""
        at = np.full(len(rowids), -1, np.int64)
        inside = rowids < len(self.fts_idx)
        at[inside] = self.fts_idx[rowids[inside]]
        return at

    def rows_of(self, achievement_ids: list[str]) -> np.ndarray:
        """The rows of these ids, -1 for ids the columns do not hold (dict lookups driven from
        C: a sorted search over the id strings costs more than hashing them)."""
        return np.fromiter(map(self.where.get, achievement_ids, repeat(-1)), np.int64, count=len(achievement_ids))

    def lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._lock = loop, asyncio.Lock()
        return self._lock

    # --- keeping up with the store -------------------------------------------------------------
    async def current(self, s: AsyncSession) -> bool:
        """Whether nothing this session can see changed since the columns' horizon: then they
        answer for it as they are (they may be newer, never older). One indexed look, no lock."""
        h = self.horizon
        if h is None:
            return False
        if self.pg:
            new, params = "xid >= :h AND xid <> ALL(CAST(:done AS bigint[]))", {"h": h, "done": sorted(self._done)}
        else:
            new, params = "seq >= :h", {"h": h}
        pruned, changed = (await s.execute(text(
            "SELECT (SELECT pruned_upto FROM search_horizon WHERE id = 1), "
            f"EXISTS (SELECT 1 FROM search_changes WHERE {new})"), params)).one()
        return not changed and pruned < h

    async def refresh(self, s: AsyncSession) -> None:
        new_xids: list[int] = []
        if self.pg:
            # Transactions at or above the horizon whose changes were applied already (seen
            # committed) are not read again: a transaction's changes become visible together.
            # Without this, one transaction left open anywhere in the cluster would make every
            # search re-read (or reload) whatever was changed since it began.
            since = "xid >= {h} AND xid <> ALL(CAST(:done AS bigint[]))"
            if self.horizon is None:  # what is committed above the new horizon is in the load
                since, ids = "xid >= x.h", "NULL"
            else:
                since = since.format(h=":h")
                ids = f"ARRAY(SELECT DISTINCT achievement_id FROM search_changes WHERE {since})"
            row = (await s.execute(text(
                "SELECT x.h, (SELECT pruned_upto FROM search_horizon WHERE id = 1), "
                f"{ids}, ARRAY(SELECT DISTINCT xid FROM search_changes WHERE {since}) "
                "FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS h) x"),
                {"h": self.horizon or 0, "done": sorted(self._done)})).one()
            horizon, pruned, changed, new_xids = row
        else:
            top, pruned = (await s.execute(text(
                "SELECT (SELECT max(seq) FROM search_changes), (SELECT pruned_upto FROM search_horizon WHERE id = 1)"
            ))).one()
            horizon = (top or 0) + 1
            changed = None
            if self.horizon is not None and horizon > self.horizon:
                changed = list((await s.execute(text(
                    "SELECT DISTINCT achievement_id FROM search_changes WHERE seq >= :h"), {"h": self.horizon})).scalars())
        if self.horizon is None or pruned >= self.horizon or (
                changed is not None and len(changed) > max(_CHUNK, RELOAD_SHARE * len(self.ids))):
            await self._load(s)
        elif changed:
            await self._apply(s, changed)
        self._done = {x for x in self._done.union(new_xids) if x >= horizon}
        self.horizon = horizon

    async def _load(self, s: AsyncSession) -> None:
        rows = await _raw_rows(s, _ROW_SQL.format(key=_KEY[self.pg]))
        ipc = await _raw_rows(s, _IPC_SQL)
        self._clear()
        self._upsert(rows)
        self._add_codes(ipc)
        self.loads += 1

    async def _apply(self, s: AsyncSession, changed: list[str]) -> None:
        rows, ipc = [], []
        for i in range(0, len(changed), _CHUNK):
            part = changed[i: i + _CHUNK]
            rows += (await s.execute(text(_ROW_SQL.format(key=_KEY[self.pg]) + " WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)), {"ids": part})).all()
            ipc += (await s.execute(text(f"{_IPC_SQL} WHERE achievement_id IN :ids").bindparams(
                bindparam("ids", expanding=True)), {"ids": part})).all()
        known = [self.where[i] for i in changed if i in self.where]
        if known:  # their IPC pairs are replaced by the ones read now
            gone = np.isin(self.codes["row"], known)
            self.codes["alive"][gone] = False
            self.subs["alive"][np.isin(self.subs["row"], known)] = False
        present = {r[0] for r in rows}
        for i in changed:
            if i not in present and i in self.where:  # deleted
                self.rows["status"][self.where[i]] = -1
        self._upsert(rows)
        self._add_codes(ipc)
        self.applied += len(changed)
        if self.codes.n > 2 * max(1, int(self.codes["alive"].sum())) + 1024:
            self._compact()

    def _upsert(self, rows) -> None:
        if not rows:
            return
        r = self.rows
        r.reserve(len(rows))
        if not self.ids:  # a full load
            self.ids = [row[0] for row in rows]
            self.where = dict(zip(self.ids, range(len(self.ids)), strict=True))
            at = np.arange(len(self.ids), dtype=np.int64)
        else:
            at = []
            for row in rows:
                idx = self.where.get(row[0])
                if idx is None:
                    idx = self.where[row[0]] = len(self.ids)
                    self.ids.append(row[0])
                at.append(idx)
            at = np.asarray(at, np.int64)
        r.n = len(self.ids)
        _, status, kind, trl, bits, owner, cur, price, listed, fts = zip(*rows, strict=True)
        r.cols["status"][at] = self.status_v.code_all(status)
        r.cols["kind"][at] = self.kind_v.code_all(kind)
        r.cols["trl"][at] = trl
        r.cols["bits"][at] = bits
        r.cols["owner"][at] = self.owner_v.code_all(owner)
        # A listing without an amount is outside every price range, as in SQL.
        cur = [c if p is not None else None for c, p in zip(cur, price, strict=True)]
        for c in set(cur).difference(self.cur_v.codes, {None}):
            self.cur_v.code(c)
        r.cols["cur"][at] = [-1 if c is None else self.cur_v.codes[c] for c in cur]
        r.cols["price"][at] = [p or 0 for p in price]
        r.cols["listed"][at] = _micros_all(listed)
        if self.pg:
            r.cols["fts"][at] = fts
            self._by_key = None
        else:
            old = r.cols["fts"][at]
            ok = (old > 0) & (old < len(self.fts_idx))
            o, a = old[ok], at[ok]
            self.fts_idx[o[self.fts_idx[o] == a]] = -1  # a row's former FTS rowid no longer leads to it
            new = np.asarray([f or 0 for f in fts], np.int64)
            r.cols["fts"][at] = new
            top = int(new.max())
            if top >= len(self.fts_idx):
                grown = np.full(max(top + 1, 2 * len(self.fts_idx)), -1, np.int64)
                grown[: len(self.fts_idx)] = self.fts_idx
                self.fts_idx = grown
            has = new > 0
            self.fts_idx[new[has]] = at[has]

    def _add_codes(self, ipc) -> None:
        if not ipc:
            return
        where, cv = self.where, self.code_v
        aids, keys, subclasses = zip(*ipc, strict=True)
        rows = np.asarray([where.get(a, -1) for a in aids], np.int64)
        codes = np.asarray(cv.code_all(keys), np.int64)
        subs = np.asarray(self.sub_v.code_all(subclasses), np.int64)
        known = rows >= 0
        rows, codes, subs = rows[known], codes[known], subs[known]
        # (row, subclass) once each: an achievement counts once per subclass.
        pairs = np.unique(rows * (len(self.sub_v.values) + 1) + subs)
        sub_rows, sub_codes = pairs // (len(self.sub_v.values) + 1), pairs % (len(self.sub_v.values) + 1)
        if len(cv.values) > len(self.code_sub):
            grown = np.zeros(len(cv.values), np.int32)
            grown[: len(self.code_sub)] = self.code_sub
            self.code_sub = grown
            self._prefix_memo.clear()
        self.code_sub[codes] = subs
        for grow, a, b, names in ((self.codes, rows, codes, ("row", "code")), (self.subs, sub_rows, sub_codes, ("row", "sub"))):
            grow.reserve(len(a))
            grow.cols[names[0]][grow.n: grow.n + len(a)] = a
            grow.cols[names[1]][grow.n: grow.n + len(a)] = b
            grow.cols["alive"][grow.n: grow.n + len(a)] = True
            grow.n += len(a)

    def _compact(self) -> None:
        for grow in (self.codes, self.subs):
            keep = grow["alive"].copy()
            for k in list(grow.cols):
                grow.cols[k] = grow[k][keep].copy()
            grow.n = int(keep.sum())
            grow.reserve(0)

    # --- answering -----------------------------------------------------------------------------
    def rows_with_codes(self, prefixes: tuple[str, ...]) -> np.ndarray:
        """Rows with at least one IPC code starting with one of the prefixes (full length)."""
        key = prefixes
        codes_ok = self._prefix_memo.get(key)
        if codes_ok is None:
            codes_ok = np.fromiter((any(v.startswith(p) for p in prefixes) for v in self.code_v.values), np.bool_,
                                   count=len(self.code_v.values))
            self._prefix_memo[key] = codes_ok
        c = self.codes
        sel = c["alive"] & codes_ok[c["code"]] if len(codes_ok) else np.zeros(c.n, np.bool_)
        out = np.zeros(self.rows.n, np.bool_)
        out[c["row"][sel]] = True
        return out

    def select(self, q: SearchQuery, viewer: Viewer, hits: np.ndarray | None) -> _Selection:
        return _Selection(self, q, viewer, hits)


class _Selection:
    """One search's conditions as masks over the columns (over the text hits when there is
    text): each facet is counted with every condition except its own, as in `Search._where`."""

    def __init__(self, cols: SearchColumns, q: SearchQuery, viewer: Viewer, hits: np.ndarray | None):
        self.c, self.q, self.viewer, self.hits = cols, q, viewer, hits
        r = cols.rows

        def g(name):
            a = r[name]
            return a if hits is None else a[hits]

        self.g = g
        status = g("status")
        sv = cols.status_v
        base = status >= 0
        if q.price_min is not None or q.price_max is not None:
            cur = cols.cur_v.codes.get(q.currency, -2)
            price = g("price")
            base &= g("cur") == cur
            if q.price_min is not None:
                base &= price >= q.price_min
            if q.price_max is not None:
                base &= price <= q.price_max
        self.base = base
        parts: dict[str, np.ndarray] = {}
        if q.statuses:
            parts["status"] = np.isin(status, sv.codes_of(s.value for s in q.statuses))
        if q.trl_min is not None or q.trl_max is not None:
            trl = g("trl")
            parts["trl"] = (trl >= (q.trl_min or 0)) & (trl <= (q.trl_max or 99))
        if q.ip_types:
            parts["ip_type"] = np.isin(g("kind"), cols.kind_v.codes_of(t.value for t in q.ip_types))
        if q.transfer_modes:
            parts["transfer_mode"] = (g("bits") & modes_to_bits(q.transfer_modes)) != 0
        if q.ipc_prefixes:
            full = cols.rows_with_codes(q.ipc_prefixes)
            parts["ipc_class"] = full if hits is None else full[hits]
        if q.owner_org_ids:
            parts["institution"] = np.isin(g("owner"), cols.owner_v.codes_of(q.owner_org_ids))
        self.parts = parts
        public = np.isin(status, sv.codes_of(PUBLIC))
        own = cols.owner_v.codes.get(viewer.org, -2) if viewer.org else None
        self._public, self._own = public, own
        self.mask = self.without(None)
        self.total = int(np.count_nonzero(self.mask))

    def _visibility(self, without: str | None) -> np.ndarray | None:
        q = self.q
        only_public = bool(q.statuses) and without != "status" and set(q.statuses) <= PUBLIC_STATUSES
        if self.viewer.reviewer or only_public:
            return None
        if self._own is None:
            return self._public
        return self._public | (self.g("owner") == self._own)

    def without(self, facet: str | None) -> np.ndarray:
        m = self.base.copy()
        for name, part in self.parts.items():
            if name != facet:
                m &= part
        vis = self._visibility(facet)
        if vis is not None:
            m &= vis
        return m

    def full(self, m: np.ndarray) -> np.ndarray:
        """A mask over the hits as a mask over all rows."""
        if self.hits is None:
            return m
        out = np.zeros(self.c.rows.n, np.bool_)
        out[self.hits[m]] = True
        return out

    def facets(self) -> tuple[dict[str, list[dict]], list[tuple[str, int]]]:
        """The facets, the institution one as its top (owner id, count) pairs (names come apart)."""
        c, out = self.c, {}
        for facet, col, vocab in (("ip_type", "kind", c.kind_v), ("trl", "trl", None), ("status", "status", c.status_v)):
            counts = np.bincount(self.g(col)[self.without(facet)])
            nz = np.nonzero(counts)[0]
            out[facet] = _ranked({(vocab.values[v] if vocab else int(v)): int(counts[v]) for v in nz})
        bits = self.g("bits")[self.without("transfer_mode")]
        out["transfer_mode"] = _ranked({m.value: int(np.count_nonzero(bits & b)) for m, b in MODE_BITS.items()})
        sel = self.full(self.without("ipc_class"))
        s = c.subs
        counts = np.bincount(s["sub"][s["alive"] & sel[s["row"]]], minlength=len(c.sub_v.values))
        out["ipc_class"] = _top(c.sub_v.values, counts)
        counts = np.bincount(self.g("owner")[self.without("institution")], minlength=len(c.owner_v.values))
        owners = [(v["value"], v["count"]) for v in _top(c.owner_v.values, counts)]
        return out, owners

    def newest(self, after: tuple[int, str] | None, n: int) -> list[str]:
        """Ids of the first n hits newest first (listing time, then id, descending), after the
        cursor's (listing time, id) when there is one: the SQL keyset order."""
        m = self.mask
        rows = np.nonzero(m)[0] if self.hits is None else self.hits[m]
        listed = self.c.rows["listed"][rows]
        rank = self.c.id_rank()
        if after is not None:
            at, last = after
            before = (listed < at) | ((listed == at) & (rank[rows] < self.c.rank_of(last)))
            rows, listed = rows[before], listed[before]
        return self._first(rows, listed, None, 0, n)

    def page(self, scores: np.ndarray, offset: int, n: int) -> list[tuple[str, float]]:
        """(id, score) of hits offset .. offset + n in relevance order: score, then newest
        listing, then id, all descending (the SQL order). Hits left unscored (-inf) are never
        on it, and are dropped first: thousands of equal keys make a partial sort slow."""
        m = self.mask & (scores > -np.inf)
        rows, sc = self.hits[m], scores[m]
        return self._first(rows, sc, self.c.rows["listed"][rows], offset, n)

    def _first(self, rows, key, then, offset: int, n: int) -> list:
        """Rows offset .. offset + n by (key, then, id) descending: a partial sort keeps the
        rows at or above the k-th key (ties included), and only those are sorted fully."""
        k = offset + n
        if len(rows) > 4 * k:
            threshold = np.partition(key, len(key) - k)[len(key) - k]
            keep = key >= threshold
            rows, key = rows[keep], key[keep]
            then = then[keep] if then is not None else None
        rank = self.c.id_rank()[rows]
        order = np.lexsort((rank, key) if then is None else (rank, then, key))[::-1][offset: offset + n]
        ids = self.c.ids
        if then is None:
            return [ids[rows[i]] for i in order]
        return [(ids[rows[i]], float(key[i])) for i in order]


def _top(values: list, counts: np.ndarray) -> list[dict]:
    nz = np.nonzero(counts)[0]
    ranked = sorted(((-int(counts[v]), values[v]) for v in nz))[:FACET_LIMIT]
    return [{"value": v, "count": -n} for n, v in ranked]
