"""SciFact retrieval quality of the matching engine: nDCG@10 and recall@100, BM25 / dense / hybrid.

    .venv/bin/python tests/bench/matching_scifact.py [--data ../shared/data/scifact] [--split train]

Runs the service's own engine (techbridge_matching.evaluation) over the BEIR files. Embedding
the 5,183 abstracts takes about 5 minutes on 2 cores; the vectors are kept in
.cache/matching/scifact-corpus.npz so later runs take seconds. Prints one JSON line per mode.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from techbridge_matching import evaluation
from techbridge_matching.retrieval.embedder import Embedder

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--cache", default=str(ROOT / ".cache" / "matching" / "scifact-corpus.npz"))
    args = ap.parse_args()
    data = Path(args.data)
    corpus = evaluation.read_jsonl(data / "corpus.jsonl")
    queries = evaluation.read_jsonl(data / f"queries.{args.split}.jsonl")
    qrels = evaluation.read_qrels(data / "qrels" / f"{args.split}.tsv")
    embedder = Embedder()
    for mode in ("bm25", "dense", "hybrid"):
        started = time.perf_counter()
        run = evaluation.run_queries(corpus, queries, mode=mode, embed=embedder.embed if mode != "bm25" else None,
                                     cache=Path(args.cache))
        metrics = evaluation.evaluate({q: [d for d, _ in hits] for q, hits in run.items()}, qrels)
        print(json.dumps({"mode": mode, "split": args.split, **metrics, "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
