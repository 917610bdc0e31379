"""The matching engine as the service runs it: in-memory hybrid indexes kept in step with the store.

Every replica holds its own indexes of published achievements and published demands. They
are loaded from the store on first use and then follow the `index_changes` log: before a
query the engine re-reads the documents changed since the last change it applied (and those
changed in the last few seconds, which covers transactions that committed out of sequence
order), so a catalog event applied by any replica is matchable at the next query.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from techbridge_shared.envelope import utcnow

from ..domain.demands import Demand
from ..domain.matching import AchievementFacts, Decline, FactsColumns, Hit, rank
from ..retrieval.embedder import DIMENSION, Embedder, from_bytes
from ..retrieval.engine import FusionParams, HybridIndex
from ..retrieval.text import analyse
from ..store import repository as repo
from .explain import explanation

RECENT_WINDOW = timedelta(seconds=10)
QUERY_CACHE = 512  # query texts whose vector and terms are kept (drafts, achievements asked about)
POOL = 100  # candidates re-ranked by soft constraints and feedback (at least 5 per result asked)


def achievement_text(row) -> str:
    parts = [row.title_en, row.title_zh, " ".join(row.keywords or []), " ".join(row.fields or []), row.abstract_en, row.abstract_zh]
    return "\n".join(p for p in parts if p)


def achievement_embedding_text(row) -> str:
    """MiniLM reads English; Chinese-only records are embedded as they are."""
    en = "\n".join(p for p in (row.title_en, " ".join(row.keywords or []), row.abstract_en) if p)
    return en or "\n".join(p for p in (row.title_zh, row.abstract_zh) if p)


def demand_text(row) -> str:
    return "\n".join(p for p in (row.title, row.problem, " ".join(row.keywords or [])) if p)


@dataclass
class DemandDoc:
    owner_org_id: str | None = None


class MatchingEngine:
    def __init__(self, embedder: Embedder | None, params: FusionParams | None = None):
        self.embedder = embedder
        self.model_id = embedder.model_id if embedder else "none"
        self.params = params or FusionParams()
        self.achievements = HybridIndex(DIMENSION, self.params)
        self.demands = HybridIndex(DIMENSION, self.params)
        self.facts: dict[str, AchievementFacts] = {}
        self.columns = FactsColumns()  # hard-constraint facts by achievement slot
        self._queries: OrderedDict[str, tuple[np.ndarray | None, list[str]]] = OrderedDict()
        self._seq = 0
        self._loaded = False
        self._lock = asyncio.Lock()

    # --- vectors ------------------------------------------------------------------------
    async def embed(self, text: str) -> np.ndarray | None:
        if self.embedder is None or not text.strip():
            return None
        return await asyncio.to_thread(self.embedder.embed_one, text)

    async def query_features(self, text: str, vector: np.ndarray | None = None) -> tuple[np.ndarray | None, list[str]]:
        """A query text's vector and analysed terms. A stored vector (a published demand's) is
        used as given; otherwise the text is embedded once and kept, with its terms, for the
        next QUERY_CACHE distinct texts (drafts asked about again, achievements' own texts)."""
        cached = self._queries.get(text)
        if cached is None:
            own = None if vector is not None else await self.embed(text)
            cached = (own, analyse(text))
            self._queries[text] = cached
            while len(self._queries) > QUERY_CACHE:
                self._queries.popitem(last=False)
        else:
            self._queries.move_to_end(text)
            if vector is None and cached[0] is None and self.embedder is not None:
                cached = self._queries[text] = (await self.embed(text), cached[1])
        return (vector if vector is not None else cached[0]), cached[1]

    # --- matching -----------------------------------------------------------------------
    def match_demand(self, d: Demand, vector: np.ndarray | None, terms: list[str], declines: list[Decline],
                     limit: int) -> list[tuple[Hit, AchievementFacts, dict]]:
        """Ranked achievements for a demand, each with its explanation.

        The whole population is scored once (BM25 postings, one matrix-vector product, IPC
        overlap, fusion); hard constraints and earlier declines are a mask over it, so the
        pool re-ranked by soft constraints and feedback holds only achievements that may be
        shown; evidence and explanations are built for the final `limit` only.
        """
        index = self.achievements
        q = index.query(d.query_text, vector, list(d.ipc_codes), terms=terms)
        if q.empty:
            return []
        eligible = self.columns.hard_pass(d, q.size)
        for dec in declines:
            slot = index.slot(dec.achievement_id)
            if slot is not None:
                eligible[slot] = False
        pool = q.top(max(POOL, limit * 5), eligible)
        hits = rank(d, [(c, self.facts[c.doc_id]) for c in pool if c.doc_id in self.facts], declines, limit)
        by_id = {c.doc_id: c for c in pool}
        chosen = q.explain([by_id[h.achievement_id] for h in hits])
        out = []
        for h, cand in zip(hits, chosen, strict=True):
            expl = explanation(cand, h.checks, adjustments=h.adjustments, query_text=d.query_text)
            h.relevance, h.lexical_rank, h.dense_rank = cand.relevance, cand.lexical_rank, cand.dense_rank
            h.matched_terms = expl["matched_terms"]  # the words as written, not their stems
            out.append((h, self.facts[h.achievement_id], expl))
        return out

    # --- keeping in step with the store -------------------------------------------------
    async def sync(self, session: AsyncSession) -> None:
        async with self._lock:
            if not self._loaded:
                last = await repo.last_change(session)
                for row in await repo.published_achievement_rows(session, None, self.model_id):
                    self._put_achievement(row)
                for row in await repo.published_demand_rows(session, None):
                    self._put_demand(row)
                self._seq, self._loaded = last, True
                return
            changes = await repo.changes_since(session, self._seq, utcnow() - RECENT_WINDOW)
            if not changes:
                return
            a_ids = sorted({c.doc_id for c in changes if c.population == "achievement"})
            d_ids = sorted({c.doc_id for c in changes if c.population == "demand"})
            if a_ids:
                rows = {r.achievement_id: r for r in await repo.published_achievement_rows(session, a_ids, self.model_id)}
                for i in a_ids:
                    self._put_achievement(rows.get(i), i)
            if d_ids:
                rows = {r.id: r for r in await repo.published_demand_rows(session, d_ids)}
                for i in d_ids:
                    self._put_demand(rows.get(i), i)
            self._seq = max(self._seq, max(c.seq for c in changes))

    def _put_achievement(self, row, doc_id: str | None = None) -> None:
        if row is None or row.status != "published":
            doc_id = doc_id or row.achievement_id
            self.achievements.remove(doc_id)
            self.facts.pop(doc_id, None)
            return
        vector = from_bytes(row.vector) if row.vector is not None else None
        self.put_achievement(row.achievement_id, achievement_text(row), vector, list(row.ipc_codes or []),
                             repo.facts_from_row(row))

    def put_achievement(self, doc_id: str, text: str, vector: np.ndarray | None, ipc: list[str], facts: AchievementFacts,
                        terms: list[str] | None = None) -> None:
        """Index one published achievement (replacing its earlier version)."""
        self.achievements.add(doc_id, text, vector, ipc, terms=terms)
        self.facts[doc_id] = facts
        self.columns.set(self.achievements.slot(doc_id), facts)

    def _put_demand(self, row, doc_id: str | None = None) -> None:
        if row is None or row.status != "published":
            self.demands.remove(doc_id or row.id)
            return
        vector = from_bytes(row.embedding) if row.embedding is not None else None
        self.demands.add(row.id, demand_text(row), vector, list(row.ipc_codes or []))

    def terms(self, text: str) -> list[str]:
        return analyse(text)
