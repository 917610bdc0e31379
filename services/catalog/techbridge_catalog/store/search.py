"""Catalog search on SQLite FTS5 (embedded) and PostgreSQL full text (production).

Both stores get the same pre-tokenised text (see domain/text.py) and the same filters, so
they return the same hits. Ordering contract, identical on both: `relevance` sorts by the
store's relevance score (FTS5 bm25, PostgreSQL ts_rank; titles weigh most, then keywords, then
abstracts) then newest listing then id; `recency` sorts by listing time then id. Facet counts
are disjunctive: each facet is counted with every filter except its own, so a client can offer
the other values of a facet it already filters on.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    and_,
    bindparam,
    column,
    exists,
    func,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.model import PUBLIC_STATUSES, bits_to_modes, modes_to_bits
from ..domain.search import SearchHit, SearchQuery, SearchResult, Viewer
from .tables import achievement_ipc, achievements, organisations

A = achievements
FTS = table("achievement_fts", column("rowid"))
FACET_LIMIT = 20


def _fts_match(tokens) -> str:
    return " ".join('"' + t.replace('"', "") + '"' for t in tokens)


class Search:
    def __init__(self, session: AsyncSession):
        self.s = session
        self.pg = session.bind.dialect.name == "postgresql"

    # --- clauses ------------------------------------------------------------------------------
    def _text_clause(self, q: SearchQuery):
        if not q.text_tokens:
            return None
        if self.pg:
            tsq = func.plainto_tsquery(literal_column("'simple'::regconfig"), bindparam("tsq", " ".join(q.text_tokens)))
            return literal_column("achievements.search_vector").op("@@")(tsq)
        sub = select(FTS.c.rowid).where(text("achievement_fts MATCH :fts").bindparams(fts=_fts_match(q.text_tokens)))
        return A.c.fts_rowid.in_(sub)

    def _where(self, q: SearchQuery, viewer: Viewer, *, without: str | None = None, with_text: bool = True) -> list:
        w = []
        if q.statuses and without != "status":
            w.append(A.c.status.in_([s.value for s in q.statuses]))
        # Visibility: only needed when a non-public state is asked for (or, for the status
        # facet, when its own filter is dropped); a plain condition lets the planner use indexes.
        only_public = bool(q.statuses) and without != "status" and set(q.statuses) <= PUBLIC_STATUSES
        if not viewer.reviewer and not only_public:
            public = A.c.status.in_([s.value for s in PUBLIC_STATUSES])
            w.append(or_(public, A.c.owner_org_id == viewer.org) if viewer.org else public)
        if q.ipc_prefixes and without != "ipc_class":
            w.append(exists().where(
                achievement_ipc.c.achievement_id == A.c.id,
                or_(*[achievement_ipc.c.code_key.like(p + "%") for p in q.ipc_prefixes]),
            ))
        if without != "trl":
            if q.trl_min is not None:
                w.append(A.c.trl >= q.trl_min)
            if q.trl_max is not None:
                w.append(A.c.trl <= q.trl_max)
        if q.ip_types and without != "ip_type":
            w.append(A.c.ip_type.in_([t.value for t in q.ip_types]))
        if q.transfer_modes and without != "transfer_mode":
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

    # --- query ----------------------------------------------------------------------------------
    async def run(self, q: SearchQuery, viewer: Viewer) -> SearchResult:
        where = self._where(q, viewer)
        # Rank on narrow rows (id, listed_at, score); fetch the page's documents afterwards, so
        # sorting thousands of hits never drags their JSON content along.
        cols = [A.c.id, A.c.listed_at]
        relevance = q.sort == "relevance" and bool(q.text_tokens)
        if relevance:
            offset = int((q.cursor or {}).get("o", 0))
            if self.pg:
                tsq = func.plainto_tsquery(literal_column("'simple'::regconfig"), bindparam("tsq2", " ".join(q.text_tokens)))
                score = func.ts_rank(literal_column("achievements.search_vector"), tsq)
                stmt = select(*cols, score.label("score")).where(*where)
            else:
                # The FTS5 match drives (bm25 must be computed in the query that matches; lower
                # is better), then each hit finds its achievement through ix_achievements_fts_rowid.
                hits = (
                    select(FTS.c.rowid.label("r"), literal_column("-bm25(achievement_fts, 10.0, 4.0, 1.0)").label("score"))
                    .where(text("achievement_fts MATCH :fts2").bindparams(fts2=_fts_match(q.text_tokens)))
                    .subquery("hits")
                )
                stmt = (
                    select(*cols, hits.c.score.label("score"))
                    .select_from(hits.join(A, A.c.fts_rowid == hits.c.r))
                    .where(*self._where(q, viewer, with_text=False))
                )
            stmt = stmt.order_by(literal_column("score").desc(), A.c.listed_at.desc(), A.c.id.desc())
            stmt = stmt.limit(q.limit + 1).offset(offset)
            rows = (await self.s.execute(stmt)).mappings().all()
            more = len(rows) > q.limit
            rows = rows[: q.limit]
            next_cursor = {"s": "relevance", "o": offset + len(rows)} if more else None
        else:
            stmt = select(*cols, literal_column("NULL").label("score")).where(*where)
            if q.cursor:
                at = datetime.fromisoformat(q.cursor["l"])
                stmt = stmt.where(or_(A.c.listed_at < at, and_(A.c.listed_at == at, A.c.id < q.cursor["i"])))
            stmt = stmt.order_by(A.c.listed_at.desc(), A.c.id.desc()).limit(q.limit + 1)
            rows = (await self.s.execute(stmt)).mappings().all()
            more = len(rows) > q.limit
            rows = rows[: q.limit]
            last = rows[-1] if rows else None
            next_cursor = (
                {"s": "recency", "l": _iso(last["listed_at"]), "i": last["id"]} if more and last else None
            )
        total = (await self.s.execute(select(func.count()).select_from(A).where(*where))).scalar_one()
        docs = {}
        if rows:
            fetched = await self.s.execute(
                select(A.c.id, A.c.owner_org_id, A.c.status, A.c.version, A.c.content, A.c.listed_at,
                       A.c.published_at, A.c.expires_at).where(A.c.id.in_([r["id"] for r in rows]))
            )
            docs = {d["id"]: dict(d) for d in fetched.mappings()}
        hits = [SearchHit(r["id"], float(r["score"]) if r["score"] is not None else None, docs[r["id"]]) for r in rows]
        return SearchResult(hits=hits, next_cursor=next_cursor, total=total)

    def _filtered(self, q: SearchQuery, facet: str) -> bool:
        return {
            "ip_type": bool(q.ip_types), "trl": q.trl_min is not None or q.trl_max is not None,
            "transfer_mode": bool(q.transfer_modes), "status": bool(q.statuses),
        }[facet]

    async def facets(self, q: SearchQuery, viewer: Viewer) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        columns = {"ip_type": A.c.ip_type, "trl": A.c.trl, "status": A.c.status, "transfer_mode": A.c.modes_bits}
        # Facets whose own filter is not in use share one grouped scan; the others (counted
        # without their own filter) get one each.
        shared = [f for f in columns if not self._filtered(q, f)]
        groups = [shared] if shared else []
        groups += [[f] for f in columns if f not in shared]
        for group in groups:
            without = group[0] if len(group) == 1 and self._filtered(q, group[0]) else None
            cols = [columns[f] for f in group]
            rows = (await self.s.execute(
                select(*cols, func.count()).where(*self._where(q, viewer, without=without)).group_by(*cols)
            )).all()
            for i, f in enumerate(group):
                counts: dict = {}
                for row in rows:
                    if f == "transfer_mode":
                        for m in bits_to_modes(row[i]):
                            counts[m] = counts.get(m, 0) + row[-1]
                    else:
                        counts[row[i]] = counts.get(row[i], 0) + row[-1]
                out[f] = [{"value": v, "count": n} for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        # IPC subclasses (an achievement with several codes in one subclass counts once).
        where = self._where(q, viewer, without="ipc_class")
        rows = await self.s.execute(
            select(achievement_ipc.c.subclass, func.count(func.distinct(achievement_ipc.c.achievement_id)).label("n"))
            .select_from(achievement_ipc.join(A, A.c.id == achievement_ipc.c.achievement_id))
            .where(*where).group_by(achievement_ipc.c.subclass)
            .order_by(literal_column("n").desc(), achievement_ipc.c.subclass).limit(FACET_LIMIT)
        )
        out["ipc_class"] = [{"value": v, "count": n} for v, n in rows]
        where = self._where(q, viewer, without="institution")
        rows = await self.s.execute(
            select(A.c.owner_org_id, organisations.c.name, func.count().label("n"))
            .select_from(A.outerjoin(organisations, organisations.c.id == A.c.owner_org_id))
            .where(*where).group_by(A.c.owner_org_id, organisations.c.name)
            .order_by(literal_column("n").desc(), A.c.owner_org_id).limit(FACET_LIMIT)
        )
        out["institution"] = [{"value": v, "label": label, "count": n} for v, label, n in rows]
        return out


def _iso(value: datetime) -> str:
    return value.isoformat()
