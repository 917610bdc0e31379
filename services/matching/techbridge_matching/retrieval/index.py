"""Incremental in-memory indexes: BM25 over analysed terms and dense vectors (same slots).

Documents live in slots; replacing a document frees its old slot, so a new achievement
version is searchable as soon as it is added and a withdrawn one disappears at once. Scores
are computed with numpy over postings, so a query over 100,000 documents stays in the tens of
milliseconds.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np


class _Slots:
    def __init__(self):
        self.ids: list[str | None] = []
        self.slot_of: dict[str, int] = {}
        self.active = np.zeros(0, dtype=bool)

    def allocate(self, doc_id: str) -> int:
        slot = len(self.ids)
        self.ids.append(doc_id)
        self.slot_of[doc_id] = slot
        if slot >= len(self.active):
            grown = np.zeros(max(1024, 2 * len(self.active)), dtype=bool)
            grown[: len(self.active)] = self.active
            self.active = grown
        self.active[slot] = True
        return slot

    def free(self, doc_id: str) -> int | None:
        slot = self.slot_of.pop(doc_id, None)
        if slot is not None:
            self.active[slot] = False
            self.ids[slot] = None
        return slot

    def __len__(self) -> int:
        return len(self.slot_of)


class BM25Index:
    """Okapi BM25. k1/b defaults suit short technical abstracts (tuned on SciFact train)."""

    def __init__(self, k1: float = 0.9, b: float = 0.4):
        self.k1, self.b = k1, b
        self._slots = _Slots()
        self._postings: dict[str, tuple[list[int], list[int]]] = {}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._df: Counter[str] = Counter()
        self._lengths = np.zeros(0, dtype=np.float32)
        # Each document's distinct terms as sorted int32 ids: a few hundred bytes per document
        # instead of a dict of strings, so 100,000 achievements fit in well under a gigabyte.
        self._terms_of: dict[int, np.ndarray] = {}
        self._vocab: dict[str, int] = {}
        self._term_of_id: list[str] = []
        self._total_length = 0

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._slots.slot_of

    def add(self, doc_id: str, terms: list[str]) -> None:
        self.remove(doc_id)
        slot = self._slots.allocate(doc_id)
        counts = Counter(terms)
        ids = []
        for term in counts:
            tid = self._vocab.get(term)
            if tid is None:
                tid = self._vocab[term] = len(self._term_of_id)
                self._term_of_id.append(term)
            ids.append(tid)
        self._terms_of[slot] = np.array(sorted(ids), dtype=np.int32)
        if slot >= len(self._lengths):
            grown = np.zeros(max(1024, 2 * len(self._lengths)), dtype=np.float32)
            grown[: len(self._lengths)] = self._lengths
            self._lengths = grown
        self._lengths[slot] = len(terms)
        self._total_length += len(terms)
        for term, tf in counts.items():
            slots, tfs = self._postings.setdefault(term, ([], []))
            slots.append(slot)
            tfs.append(tf)
            self._df[term] += 1
            self._arrays.pop(term, None)

    def remove(self, doc_id: str) -> None:
        slot = self._slots.free(doc_id)
        if slot is None:
            return
        term_ids = self._terms_of.pop(slot)
        self._total_length -= int(self._lengths[slot])
        for term in (self._term_of_id[i] for i in term_ids):
            self._df[term] -= 1
            if self._df[term] <= 0:
                del self._df[term]
                self._postings.pop(term, None)
                self._arrays.pop(term, None)
        # Stale postings of the freed slot stay until the term changes; scores mask them out.

    def presence(self, terms, slots: np.ndarray) -> dict[str, np.ndarray]:
        """For each term, whether each of `slots` contains it.

        A posting lists slots in the order documents were added, and slots only grow, so it
        is sorted: a binary search per asked slot, whatever the population's size.
        """
        out: dict[str, np.ndarray] = {}
        for term in terms:
            posting = self._posting(term)
            if posting is None:
                continue
            listed = posting[0]
            pos = np.minimum(np.searchsorted(listed, slots), len(listed) - 1)
            out[term] = listed[pos] == slots
        return out

    def shared_terms(self, doc_id: str, terms) -> list[str]:
        """Those of `terms` that occur in the document."""
        slot = self._slots.slot_of.get(doc_id)
        if slot is None:
            return []
        ids = self._terms_of[slot]
        out = []
        for t in terms:
            tid = self._vocab.get(t)
            if tid is not None:
                pos = int(np.searchsorted(ids, tid))
                if pos < len(ids) and ids[pos] == tid:
                    out.append(t)
        return out

    def _posting(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        arr = self._arrays.get(term)
        if arr is None:
            raw = self._postings.get(term)
            if raw is None:
                return None
            arr = (np.asarray(raw[0], dtype=np.int64), np.asarray(raw[1], dtype=np.float32))
            self._arrays[term] = arr
        return arr

    def idf(self, term: str) -> float:
        n = len(self._slots)
        df = self._df.get(term, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 score of every slot (inactive slots score 0)."""
        size = len(self._slots.ids)
        scores = np.zeros(size, dtype=np.float32)
        n = len(self._slots)
        if n == 0:
            return scores
        avgdl = max(self._total_length / n, 1.0)
        lengths = self._lengths[:size]
        for term, qtf in Counter(query_terms).items():
            posting = self._posting(term)
            if posting is None:
                continue
            slots, tfs = posting
            norm = self.k1 * (1 - self.b + self.b * lengths[slots] / avgdl)
            scores[slots] += qtf * self.idf(term) * tfs * (self.k1 + 1) / (tfs + norm)
        scores[~self._slots.active[:size]] = 0.0
        return scores

    def top(self, query_terms: list[str], k: int) -> list[tuple[str, float]]:
        scores = self.scores(query_terms)
        return top_k(np.where(scores > 0, scores, -np.inf), k, self._slots.ids)

    def slot(self, doc_id: str) -> int | None:
        return self._slots.slot_of.get(doc_id)

    @property
    def active(self) -> np.ndarray:
        return self._slots.active[: len(self._slots.ids)]

    @property
    def ids(self) -> list[str | None]:
        return self._slots.ids


class DenseIndex:
    """Unit vectors in a growing matrix addressed by the slots of a companion BM25Index, so
    lexical and dense scores of one document sit at the same position; a query is one
    matrix-vector product."""

    def __init__(self, dimension: int):
        self.dimension = dimension
        self._matrix = np.zeros((0, dimension), dtype=np.float32)
        self._has = np.zeros(0, dtype=bool)
        self.count = 0

    def set(self, slot: int, vector: np.ndarray) -> None:
        if slot >= len(self._matrix):
            size = max(1024, 2 * len(self._matrix), slot + 1)
            grown = np.zeros((size, self.dimension), dtype=np.float32)
            grown[: len(self._matrix)] = self._matrix
            has = np.zeros(size, dtype=bool)
            has[: len(self._has)] = self._has
            self._matrix, self._has = grown, has
        if not self._has[slot]:
            self.count += 1
        self._matrix[slot] = vector
        self._has[slot] = True

    def clear(self, slot: int) -> None:
        if slot < len(self._has) and self._has[slot]:
            self._has[slot] = False
            self._matrix[slot] = 0.0
            self.count -= 1

    def at(self, slot: int) -> np.ndarray | None:
        return self._matrix[slot] if slot < len(self._has) and self._has[slot] else None

    def has(self, size: int) -> np.ndarray:
        out = np.zeros(size, dtype=bool)
        n = min(size, len(self._has))
        out[:n] = self._has[:n]
        return out

    def similarities(self, query: np.ndarray, size: int) -> np.ndarray:
        """Cosine of every slot with `query`: one float32 matrix-vector product."""
        n = min(size, len(self._matrix))
        sims = self._matrix[:n] @ np.asarray(query, dtype=np.float32)
        if n == size:
            return sims
        out = np.zeros(size, dtype=np.float32)
        out[:n] = sims
        return out


def set_blas_threads(n: int) -> None:
    """Threads numpy's BLAS may use for the matrix-vector product (process-wide).

    The product over 100,000 x 384 floats is bound by memory bandwidth, so a second thread
    gains little even on an idle machine; under load (several requests, other processes) its
    threads wait for each other and burn CPU the other requests need. One is the default."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")


def top_k(scores: np.ndarray, k: int, ids: list[str | None]) -> list[tuple[str, float]]:
    """Best k (id, score) by score; -inf marks what may not be returned."""
    if len(scores) == 0 or k <= 0:
        return []
    k = min(k, len(scores))
    part = np.argpartition(-scores, k - 1)[:k]
    order = part[np.argsort(-scores[part], kind="stable")]
    out = []
    for slot in order:
        s = float(scores[slot])
        if ids[slot] is None or s == -np.inf:
            continue
        out.append((ids[slot], s))
    return out


def rrf(rankings: list[tuple[list[str], float]], k: int = 60) -> dict[str, float]:
    """Weighted reciprocal rank fusion: sum of weight / (k + rank) over the ranked lists."""
    fused: dict[str, float] = {}
    for ranked, weight in rankings:
        for rank, doc_id in enumerate(ranked, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + weight / (k + rank)
    return fused
