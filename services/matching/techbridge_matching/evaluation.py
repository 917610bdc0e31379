"""Evaluate the matching engine on BEIR-format files and write a TREC run.

    python -m techbridge_matching.evaluation --corpus corpus.jsonl --queries queries.jsonl \
        --run out.trec [--qrels qrels.tsv] [--mode hybrid|bm25|dense] [--cache vectors.npz]

Corpus documents stand for achievements (title + text), queries for demands (text). The
index, analysis, embedder and fusion are the service's own (`retrieval.engine.HybridIndex`),
so the figures describe what the service does. Writes `qid Q0 docid rank score tag`, top 100
per query; with --qrels it prints nDCG@10 and recall@100.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .retrieval.engine import FusionParams, HybridIndex
from .retrieval.text import analyse

MODES = ("hybrid", "bm25", "dense")


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if n == 0 and not parts[-1].strip().lstrip("-").isdigit():
                continue  # header
            qid, docid, score = parts[0], parts[1], int(parts[2])
            qrels.setdefault(qid, {})[docid] = score
    return qrels


def document_text(doc: dict) -> str:
    return f"{doc.get('title', '')}. {doc.get('text', '')}".strip(". ")


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum((2 ** relevant.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2 ** r - 1) / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int = 100) -> float:
    rel = {d for d, s in relevant.items() if s > 0}
    return len(rel & set(ranked[:k])) / len(rel) if rel else 0.0


def evaluate(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    qids = [q for q in qrels if q in run]
    if not qids:
        return {"ndcg@10": 0.0, "recall@100": 0.0, "queries": 0}
    return {
        "ndcg@10": round(sum(ndcg_at(run[q], qrels[q]) for q in qids) / len(qids), 4),
        "recall@100": round(sum(recall_at(run[q], qrels[q]) for q in qids) / len(qids), 4),
        "queries": len(qids),
    }


def corpus_vectors(corpus: list[dict], embed: Callable[[list[str]], np.ndarray], cache: Path | None) -> np.ndarray:
    """Embeddings of the corpus, reused from `cache` when it holds the same ids."""
    ids = [d["_id"] for d in corpus]
    if cache and cache.exists():
        stored = np.load(cache, allow_pickle=False)
        if list(stored["ids"]) == ids:
            return stored["vectors"]
    vectors = embed([document_text(d) for d in corpus])
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, ids=np.array(ids), vectors=vectors)
    return vectors


def run_queries(
    corpus: list[dict],
    queries: list[dict],
    *,
    mode: str = "hybrid",
    embed: Callable[[list[str]], np.ndarray] | None = None,
    params: FusionParams | None = None,
    cache: Path | None = None,
    top: int = 100,
) -> dict[str, list[tuple[str, float]]]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    params = params or FusionParams()
    if mode == "bm25":
        params = FusionParams(**{**params.__dict__, "dense_weight": 0.0})
    if mode == "dense":
        params = FusionParams(**{**params.__dict__, "lexical_weight": 0.0})
    need_vectors = mode != "bm25"
    if need_vectors and embed is None:
        raise ValueError("modes using dense vectors need an embedder")
    vectors = corpus_vectors(corpus, embed, cache) if need_vectors else None
    index = HybridIndex(dimension=vectors.shape[1] if vectors is not None else 384, params=params)
    for i, doc in enumerate(corpus):
        index.add(doc["_id"], document_text(doc), vectors[i] if vectors is not None else None)
    q_vectors = embed([q["text"] for q in queries]) if need_vectors else None
    run: dict[str, list[tuple[str, float]]] = {}
    for i, q in enumerate(queries):
        if mode == "dense":
            hits = index.dense_top(q_vectors[i], top)
            run[q["_id"]] = [(d, s) for d, s in hits]
            continue
        cands = index.search(q["text"], q_vectors[i] if q_vectors is not None else None, k=top, terms=analyse(q["text"]))
        run[q["_id"]] = [(c.doc_id, c.lexical if mode == "bm25" else c.score) for c in cands]
    return run


def write_trec(run: dict[str, list[tuple[str, float]]], path: str | Path, tag: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for qid, hits in run.items():
            for rank, (docid, score) in enumerate(hits, start=1):
                f.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m techbridge_matching.evaluation", description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--run", required=True, help="TREC run file to write")
    ap.add_argument("--qrels", help="BEIR qrels TSV: print nDCG@10 and recall@100")
    ap.add_argument("--mode", choices=MODES, default="hybrid")
    ap.add_argument("--cache", help="npz file to keep corpus embeddings between runs")
    ap.add_argument("--limit-queries", type=int, default=0)
    args = ap.parse_args(argv)

    corpus = read_jsonl(args.corpus)
    queries = read_jsonl(args.queries)
    if args.limit_queries:
        queries = queries[: args.limit_queries]
    embed = None
    if args.mode != "bm25":
        from .retrieval.embedder import Embedder

        embed = Embedder().embed
    started = time.perf_counter()
    run = run_queries(corpus, queries, mode=args.mode, embed=embed, cache=Path(args.cache) if args.cache else None)
    write_trec(run, args.run, tag=f"techbridge-{args.mode}")
    elapsed = time.perf_counter() - started
    print(f"{len(queries)} queries over {len(corpus)} documents ({args.mode}) in {elapsed:.1f}s -> {args.run}")
    if args.qrels:
        ranked = {q: [d for d, _ in hits] for q, hits in run.items()}
        print(json.dumps(evaluate(ranked, read_qrels(args.qrels))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
