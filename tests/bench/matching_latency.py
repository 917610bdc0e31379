"""Matching latency and memory with 100,000 achievements in the read model.

    .venv/bin/python tests/bench/matching_latency.py [--docs 100000] [--queries 200] [--publishes 30]

How the figures are obtained: embedding 100,000 abstracts with MiniLM on 2 cores would take
about 100 minutes, so the 100k documents are SciFact abstracts (5,183, cycled, each copy with
its own id, a random TRL/price/mode/region and 1-2 IPC codes) whose vectors are the real MiniLM
vectors of the abstract plus small noise (from the cache matching_scifact.py writes; random unit
vectors if it is absent). Each distinct abstract is analysed (tokenised, stemmed) once and its
terms reused for its copies; the analysis time per document is printed apart. Queries are
SciFact claims embedded with the real model (embedding reported apart), each asked as a demand
with a TRL floor, wanted modes, a budget and a region.

Measured per query, wall time and CPU time of the process (all threads), on the path
`GET /demands/{id}/matches` runs after loading the demand and its declines
(`MatchingEngine.match_demand`): query analysis, BM25 over the postings, cosine as one
matrix-vector product over the float32 matrix, IPC overlap, z-score fusion, hard constraints
as a mask, the pool of 100 re-ranked by soft constraints, explanations for the final 20. Then
the time from applying one catalog publish to a live app on SQLite (store + MiniLM embedding +
saved matching + index sync) until its matches list it, and the resident memory the index adds.
Prints one JSON line per measurement and writes them to results/matching_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from techbridge_matching import evaluation
from techbridge_matching.domain.common import TransferMode
from techbridge_matching.domain.demands import Budget, Demand, DemandStatus
from techbridge_matching.domain.matching import AchievementFacts
from techbridge_matching.retrieval.embedder import Embedder
from techbridge_matching.retrieval.engine import HybridIndex
from techbridge_matching.retrieval.index import set_blas_threads
from techbridge_matching.retrieval.text import analyse
from techbridge_matching.usecases.engine import MatchingEngine

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results" / "matching_latency.json"
IPC = ["H01M 10/052", "H01M 50/449", "G06T 7/73", "B25J 9/16", "A61K 31/00", "C12N 15/11", "G16H 50/20", "C02F 3/30"]
MODES = [m.value for m in TransferMode]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def build(n: int, data: Path, cache: Path) -> tuple[MatchingEngine, dict]:
    corpus = evaluation.read_jsonl(data / "corpus.jsonl")
    base = np.load(cache)["vectors"] if cache.exists() else None
    t0 = time.perf_counter()
    terms = [analyse(evaluation.document_text(doc)) for doc in corpus[: min(n, len(corpus))]]
    analysis_s = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    rnd = random.Random(1)
    before = rss_mb()
    t1 = time.perf_counter()
    engine = MatchingEngine(None)
    engine.achievements = HybridIndex(dimension=384, params=engine.params)
    for i in range(n):
        j = i % len(corpus)
        doc = corpus[j]
        vec = base[j] + rng.normal(0, 0.02, 384).astype(np.float32) if base is not None else rng.normal(size=384).astype(np.float32)
        vec /= np.linalg.norm(vec)
        codes = rnd.sample(IPC, rnd.randint(1, 2))
        doc_id = f"{doc['_id']}-{i}"
        facts = AchievementFacts(
            achievement_id=doc_id, version=1, owner_org_id="u", title=doc["title"], trl=rnd.randint(1, 9),
            transfer_modes=tuple(rnd.sample(MODES, 2)), asking_price=rnd.randint(1, 100) * 1_000_000, currency="CNY",
            negotiable=rnd.random() < 0.5, region=rnd.choice(["Shanghai/Pudong", "Beijing", "Jiangsu/Suzhou"]),
            ipc_codes=tuple(codes), legal_statuses=("granted",))
        engine.put_achievement(doc_id, "", vec, codes, facts, terms=terms[j])
    return engine, {
        "measure": "index_build", "docs": n, "seconds": round(time.perf_counter() - t1, 1),
        "rss_growth_mb": round(rss_mb() - before, 1), "real_vectors": base is not None,
        "analysis_ms_per_doc": round(1000 * analysis_s / len(terms), 2),
        "note": "seconds = indexing only; analysis of each distinct abstract done once (analysis_ms_per_doc apart)",
    }


def demand_for(text: str) -> Demand:
    return Demand(id="d", owner_org_id="sme", title=text[:80], problem=text, ipc_codes=("H01M 10/052",), keywords=(),
                  budget=Budget(None, 60_000_000), deadline=date(2099, 1, 1),
                  transfer_modes=(TransferMode.assignment, TransferMode.exclusive_licence), min_trl=4, region="Shanghai",
                  status=DemandStatus.published)


async def publish_to_matchable(samples: int, big: MatchingEngine | None) -> list[float]:
    """Apply catalog publishes to a live app (SQLite) and time until its matches list them.

    With `big`, the app's engine takes over that in-memory index after its first load, so each
    publish joins (and each matches query runs over) the whole benchmark population."""
    import tempfile

    import httpx

    sys.path.insert(0, str(ROOT / "services" / "matching" / "tests"))
    from matching_helpers import Api, achievement_data, catalog_event, who

    from techbridge_matching.config import Settings
    from techbridge_matching.main import create_app

    tmp = Path(tempfile.mkdtemp())
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp / 'm.db'}", kafka_bootstrap_servers="127.0.0.1:1",
                        data_dir=str(tmp), outbox_relay_enabled=False, expiry_sweep_interval_s=0,
                        log_level="ERROR")
    app = create_app(settings)
    out = []
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as client:
            api = Api(client, settings.internal_auth_secret, app)
            sme = who("org-sme", "enterprise")
            demand = await api.published_demand(sme)
            await api.apply(catalog_event("published", achievement_data()))  # warm-up: jieba, first load
            await api.get(f"/demands/{demand['id']}/matches", sme)
            if big is not None:
                engine = app.state.engine
                engine.achievements, engine.facts, engine.columns = big.achievements, big.facts, big.columns
            for i in range(samples):
                data = achievement_data(title_en=f"Ceramic separator variant {i}")
                started = time.perf_counter()
                await api.apply(catalog_event("published", data))
                r = await api.get(f"/demands/{demand['id']}/matches", sme, params={"limit": 100})
                assert data["achievement_id"] in [x["achievement_id"] for x in r.json()["items"]]
                out.append(time.perf_counter() - started)
    return out


def parts(engine: MatchingEngine, queries: list[str], vectors: list[np.ndarray]) -> dict:
    """CPU milliseconds (median) of each step `match_demand` takes, timed apart."""
    from techbridge_matching.domain.matching import rank
    from techbridge_matching.usecases.explain import explanation

    index = engine.achievements
    times: dict[str, list[float]] = {}

    def timed(name, f):
        c0 = time.process_time()
        out = f()
        times.setdefault(name, []).append((time.process_time() - c0) * 1000)
        return out

    for text, vec in zip(queries, vectors, strict=True):
        d = demand_for(text)
        terms = timed("analysis", lambda: analyse(d.query_text))
        timed("bm25", lambda: index.lexical.scores(terms))
        timed("cosine_product", lambda: index.dense.similarities(vec, index.slot_count()))
        timed("ipc", lambda: index._ipc_scores(list(d.ipc_codes), index.slot_count()))
        q = timed("query_scores_all", lambda: index.query(d.query_text, vec, list(d.ipc_codes), terms=terms))
        eligible = timed("hard_mask", lambda: engine.columns.hard_pass(d, q.size))
        pool = timed("top_100", lambda: q.top(100, eligible))
        hits = timed("rerank", lambda: rank(d, [(c, engine.facts[c.doc_id]) for c in pool], [], 20))
        by_id = {c.doc_id: c for c in pool}
        chosen = timed("evidence_20", lambda: q.explain([by_id[h.achievement_id] for h in hits]))
        timed("explanations_20", lambda: [explanation(c, h.checks, adjustments=h.adjustments, query_text=d.query_text)
                                          for h, c in zip(hits, chosen, strict=True)])
        timed("match_demand", lambda: engine.match_demand(d, vec, terms, [], 20))
    return {"measure": "parts_cpu_ms_p50", "docs": len(index), "queries": len(queries),
            **{k: round(statistics.median(v), 2) for k, v in times.items()}, "load_average": load()}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--publishes", type=int, default=30)
    ap.add_argument("--blas-threads", type=int, default=1, help="as MATCHING_BLAS_THREADS (service default 1)")
    ap.add_argument("--parts", action="store_true", help="also time each step of a query apart (CPU)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    ap.add_argument("--cache", default=str(ROOT / ".cache" / "matching" / "scifact-corpus.npz"))
    args = ap.parse_args()
    data = Path(args.data)
    lines: list[dict] = []

    def emit(obj: dict) -> None:
        lines.append(obj)
        print(json.dumps(obj), flush=True)

    set_blas_threads(args.blas_threads)
    load_before = load()
    engine, built = build(args.docs, data, Path(args.cache))
    emit(built)

    embedder = Embedder()
    queries = [q["text"] for q in evaluation.read_jsonl(data / "queries.train.jsonl")[: args.queries]]
    vectors = []
    embed_ms = []
    for text in queries:
        t0 = time.perf_counter()
        vectors.append(embedder.embed_one(text))
        embed_ms.append((time.perf_counter() - t0) * 1000)
    for text, vec in list(zip(queries, vectors))[:10]:  # warm-up: caches, page faults
        engine.match_demand(demand_for(text), vec, analyse(text), [], 20)
    wall_ms, cpu_ms, shown = [], [], []
    for text, vec in zip(queries, vectors):
        d = demand_for(text)
        w0, c0 = time.perf_counter(), time.process_time()
        hits = engine.match_demand(d, vec, analyse(d.query_text), [], 20)
        wall_ms.append((time.perf_counter() - w0) * 1000)
        cpu_ms.append((time.process_time() - c0) * 1000)
        shown.append(len(hits))
    emit({"measure": "top20_match_ms", "docs": args.docs, "queries": len(queries),
          "p50": round(pct(wall_ms, 50), 1), "p95": round(pct(wall_ms, 95), 1), "max": round(max(wall_ms), 1),
          "cpu_p50": round(pct(cpu_ms, 50), 1), "cpu_p95": round(pct(cpu_ms, 95), 1),
          "hits_per_query_min": min(shown), "blas_threads": args.blas_threads,
          "query_embedding_p50": round(pct(embed_ms, 50), 1), "query_embedding_p95": round(pct(embed_ms, 95), 1),
          "load_average_before": load_before, "load_average_after": load()})

    if args.parts:
        emit(parts(engine, queries[:60], vectors[:60]))

    import logging

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("techbridge_shared").setLevel(logging.CRITICAL)
    lat = asyncio.run(publish_to_matchable(args.publishes, engine))
    emit({"measure": "publish_to_matchable_s", "samples": len(lat), "p50": round(statistics.median(lat), 3),
          "p99": round(pct(lat, 99), 3), "load_average_after": load(),
          "docs": args.docs,
          "note": "handler (store + MiniLM embedding + saved matching) + index sync + top-100 query over the whole "
                  "index; add the consumer's poll (<=0.2 s)"})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(lines, indent=2) + "\n")


if __name__ == "__main__":
    main()
