"""Catalog search on SQLite FTS5 (embedded) and PostgreSQL full text (production).

Both stores get the same pre-tokenised text (see domain/text.py) and the same filters, so
they return the same hits. Ordering contract, identical on both: `relevance` sorts by the
store's relevance score (FTS5 bm25, PostgreSQL ts_rank; titles weigh most, then keywords, then
abstracts) then newest listing then id; `recency` sorts by listing time then id. Facet counts
are disjunctive: each facet is counted with every filter except its own, so a client can offer
the other values of a facet it already filters on.

Where the counts come from:
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

from dataclasses import replace
from datetime import datetime
from functools import lru_cache

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

from ..domain.model import PUBLIC_STATUSES, bits_to_modes, modes_to_bits
from ..domain.search import SearchHit, SearchQuery, SearchResult, Viewer
from .tables import achievement_ipc, achievements, facet_cells, facet_ipc_cells, facet_owner_cells, organisations

A = achievements
FTS = table("achievement_fts", column("rowid"))
FACET_LIMIT = 20
PUBLIC = sorted(s.value for s in PUBLIC_STATUSES)


def _fts_match(tokens) -> str:
    return " ".join('"' + t.replace('"', "") + '"' for t in tokens)


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

    # --- clauses ------------------------------------------------------------------------------
    def _text_clause(self, q: SearchQuery):
        if not q.text_tokens:
            return None
        if self.pg:
            tsq = func.plainto_tsquery(literal_column("'simple'::regconfig"), bindparam("tsq", " ".join(q.text_tokens)))
            return literal_column("achievements.search_vector").op("@@")(tsq)
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
    async def run(self, q: SearchQuery, viewer: Viewer) -> SearchResult:
        where = self._where(q, viewer)
        # Rank on narrow rows (id, listed_at, score); fetch the page's documents afterwards, so
        # sorting thousands of hits never drags their JSON content along.
        cols = [A.c.id, A.c.listed_at]
        relevance = q.sort == "relevance" and bool(q.text_tokens)
        total = None
        if relevance:
            offset = int((q.cursor or {}).get("o", 0))
            # The total comes with the ranking (which visits every hit anyway): one text match.
            counted = func.count().over().label("total")
            if self.pg:
                tsq = func.plainto_tsquery(literal_column("'simple'::regconfig"), bindparam("tsq2", " ".join(q.text_tokens)))
                score = func.ts_rank(literal_column("achievements.search_vector"), tsq)
                stmt = select(*cols, score.label("score"), counted).where(*where)
            else:
                # The FTS5 match drives (bm25 must be computed in the query that matches; lower
                # is better), then each hit finds its achievement through ix_achievements_fts_rowid.
                hits = (
                    select(FTS.c.rowid.label("r"), literal_column("-bm25(achievement_fts, 10.0, 4.0, 1.0)").label("score"))
                    .where(text("achievement_fts MATCH :fts2").bindparams(fts2=_fts_match(q.text_tokens)))
                    .subquery("hits")
                )
                stmt = (
                    select(*cols, hits.c.score.label("score"), counted)
                    .select_from(hits.join(A, A.c.fts_rowid == hits.c.r))
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
        docs = {}
        if rows:
            fetched = await self.s.execute(
                select(A.c.id, A.c.owner_org_id, A.c.status, A.c.version, A.c.content, A.c.listed_at,
                       A.c.published_at, A.c.expires_at).where(A.c.id.in_([r["id"] for r in rows]))
            )
            docs = {d["id"]: dict(d) for d in fetched.mappings()}
        hits = [SearchHit(r["id"], float(r["score"]) if r["score"] is not None else None, docs[r["id"]]) for r in rows]
        return SearchResult(hits=hits, next_cursor=next_cursor, total=total)

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
        top = [(v, int(k)) for v, k in await self.s.execute(stmt)]
        names = {}
        if top:
            rows = await self.s.execute(select(organisations.c.id, organisations.c.name)
                                        .where(organisations.c.id.in_([v for v, _ in top])))
            names = dict(rows.all())
        return [{"value": v, "label": names.get(v), "count": k} for v, k in top]


def _one_subclass(q: SearchQuery) -> str | None:
    """The IPC filter's subclass when it is exactly one whole subclass such as H01M."""
    return q.ipc_prefixes[0] if len(q.ipc_prefixes) == 1 and len(q.ipc_prefixes[0]) == 4 else None


def _without_owners(q: SearchQuery) -> SearchQuery:
    return replace(q, owner_org_ids=())


def _iso(value: datetime) -> str:
    return value.isoformat()
