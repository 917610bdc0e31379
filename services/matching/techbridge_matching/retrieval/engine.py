"""Hybrid retrieval: BM25 and MiniLM rankings fused by reciprocal rank fusion, plus IPC overlap.

`HybridIndex` holds one population of documents (published achievements, or published
demands) and answers "which documents fit this text, vector and IPC set best", returning for
each hit the evidence a person can check: matched terms, cosine similarity, shared IPC classes.
Business constraints (TRL, modes, budget, region, declines) are the domain's job, applied to
these candidates afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import ipc as ipc_codes
from .index import BM25Index, DenseIndex, rrf
from .text import analyse


@dataclass(frozen=True)
class FusionParams:
    """Tuned on the SciFact train split only (see the service README)."""

    rrf_k: int = 60
    lexical_weight: float = 1.0
    dense_weight: float = 1.0
    ipc_weight: float = 0.5
    depth: int = 200  # how many hits each retriever contributes to the fusion
    k1: float = 0.9
    b: float = 0.4


@dataclass
class Candidate:
    doc_id: str
    score: float  # fused ranking score
    lexical: float = 0.0
    lexical_rank: int | None = None
    dense: float = 0.0
    dense_rank: int | None = None
    ipc: ipc_codes.IpcOverlap = field(default_factory=lambda: ipc_codes.IpcOverlap(0.0, ()))
    matched_terms: list[str] = field(default_factory=list)
    term_coverage: float = 0.0  # idf-weighted share of the query's terms found in the document

    @property
    def relevance(self) -> float:
        """An absolute 0..1 fit (not rank-based), used for thresholds such as saved matching."""
        dense = max(0.0, min(1.0, self.dense))
        if self.ipc.score > 0:
            return round(0.55 * dense + 0.25 * self.term_coverage + 0.20 * self.ipc.score, 4)
        return round(0.65 * dense + 0.35 * self.term_coverage, 4)


@dataclass
class _Doc:
    ipc: list[str]


class HybridIndex:
    def __init__(self, dimension: int, params: FusionParams | None = None):
        self.params = params or FusionParams()
        self.lexical = BM25Index(k1=self.params.k1, b=self.params.b)
        self.dense = DenseIndex(dimension)
        self._docs: dict[str, _Doc] = {}
        self._by_ipc_prefix: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._docs

    def ids(self) -> list[str]:
        return list(self._docs)

    def add(self, doc_id: str, text: str, vector: np.ndarray | None, ipc: list[str] = (), terms: list[str] | None = None) -> None:
        self.remove(doc_id)
        self.lexical.add(doc_id, terms if terms is not None else analyse(text))
        if vector is not None:
            self.dense.add(doc_id, vector)
        codes = [c for c in ipc if ipc_codes.try_parse(c)]
        self._docs[doc_id] = _Doc(ipc=codes)
        for prefix in self._prefixes(codes):
            self._by_ipc_prefix.setdefault(prefix, set()).add(doc_id)

    def remove(self, doc_id: str) -> None:
        doc = self._docs.pop(doc_id, None)
        if doc is None:
            return
        self.lexical.remove(doc_id)
        self.dense.remove(doc_id)
        for prefix in self._prefixes(doc.ipc):
            members = self._by_ipc_prefix.get(prefix)
            if members:
                members.discard(doc_id)

    @staticmethod
    def _prefixes(codes: list[str]) -> set[str]:
        out: set[str] = set()
        for c in codes:
            parsed = ipc_codes.try_parse(c)
            if parsed:
                out.update(parsed.path[1:3])  # class and subclass
        return out

    def _ipc_neighbours(self, codes: list[str]) -> set[str]:
        found: set[str] = set()
        for prefix in self._prefixes(codes):
            found |= self._by_ipc_prefix.get(prefix, set())
        return found

    def search(
        self,
        text: str,
        vector: np.ndarray | None,
        ipc: list[str] = (),
        k: int = 20,
        *,
        allowed: set[str] | None = None,
        terms: list[str] | None = None,
    ) -> list[Candidate]:
        """Top-k candidates by fused score; `allowed` limits the population (hard filters)."""
        p = self.params
        q_terms = terms if terms is not None else analyse(text)
        depth = max(p.depth, k)
        fetch = depth if allowed is None else depth * 4

        lexical_hits = [(d, s) for d, s in self.lexical.top(q_terms, fetch) if allowed is None or d in allowed][:depth]
        dense_hits: list[tuple[str, float]] = []
        if vector is not None and len(self.dense):
            dense_hits = [(d, s) for d, s in self.dense.top(vector, fetch) if allowed is None or d in allowed][:depth]

        overlaps: dict[str, ipc_codes.IpcOverlap] = {}
        ipc_ranked: list[str] = []
        if ipc:
            for doc_id in self._ipc_neighbours(list(ipc)):
                if allowed is not None and doc_id not in allowed:
                    continue
                ov = ipc_codes.overlap(list(ipc), self._docs[doc_id].ipc)
                if ov.score > 0:
                    overlaps[doc_id] = ov
            ipc_ranked = sorted(overlaps, key=lambda d: -overlaps[d].score)[:depth]

        rankings = [([d for d, _ in lexical_hits], p.lexical_weight), ([d for d, _ in dense_hits], p.dense_weight)]
        if ipc_ranked:
            rankings.append((ipc_ranked, p.ipc_weight))
        fused = rrf(rankings, k=p.rrf_k)
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

        lex = {d: (s, r) for r, (d, s) in enumerate(lexical_hits, start=1)}
        den = {d: (s, r) for r, (d, s) in enumerate(dense_hits, start=1)}
        q_set = set(q_terms)
        q_weight = sum(self.lexical.idf(t) for t in q_set) or 1.0
        out = []
        for doc_id, score in best:
            cand = Candidate(doc_id=doc_id, score=round(score, 6))
            if doc_id in lex:
                cand.lexical, cand.lexical_rank = round(lex[doc_id][0], 4), lex[doc_id][1]
            if doc_id in den:
                cand.dense, cand.dense_rank = round(den[doc_id][0], 4), den[doc_id][1]
            elif vector is not None:
                cand.dense = round(self.dense.similarity(doc_id, vector), 4)
            cand.ipc = overlaps.get(doc_id) or (
                ipc_codes.overlap(list(ipc), self._docs[doc_id].ipc) if ipc else ipc_codes.IpcOverlap(0.0, ())
            )
            doc_terms = self.lexical.terms(doc_id)
            matched = [t for t in q_set if t in doc_terms]
            matched.sort(key=lambda t: (-self.lexical.idf(t), t))
            cand.matched_terms = matched
            cand.term_coverage = round(sum(self.lexical.idf(t) for t in matched) / q_weight, 4)
            out.append(cand)
        return out

    def evidence(self, text: str, vector: np.ndarray | None, ipc: list[str], doc_terms, doc_vector: np.ndarray | None,
                 doc_ipc: list[str], doc_id: str = "") -> Candidate:
        """Evidence for one document (indexed or not yet) against a query, with this index's idf."""
        q_set = set(analyse(text))
        matched = sorted((t for t in q_set if t in doc_terms), key=lambda t: (-self.lexical.idf(t), t))
        q_weight = sum(self.lexical.idf(t) for t in q_set) or 1.0
        cand = Candidate(doc_id=doc_id, score=0.0, matched_terms=matched)
        cand.term_coverage = round(sum(self.lexical.idf(t) for t in matched) / q_weight, 4)
        if vector is not None and doc_vector is not None:
            cand.dense = round(float(np.dot(vector, doc_vector)), 4)
        cand.ipc = ipc_codes.overlap(list(ipc), list(doc_ipc)) if ipc else ipc_codes.IpcOverlap(0.0, ())
        return cand
