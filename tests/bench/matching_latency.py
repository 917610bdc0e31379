"""Matching latency and memory with 100,000 achievements in the read model.

    .venv/bin/python tests/bench/matching_latency.py [--docs 100000] [--queries 200]

How the figures are obtained: embedding 100,000 abstracts with MiniLM on 2 cores would take
about 100 minutes, so the 100k documents are SciFact abstracts (5,183, cycled, each copy with
its own id, a random TRL/price/mode/region and 1-2 IPC codes) whose vectors are the real MiniLM
vectors of the abstract plus small noise (from the cache matching_scifact.py writes; random unit
vectors if it is absent). Queries are SciFact claims embedded with the real model. Measured:
top-20 matching for a demand as the service runs it (hybrid retrieval over the whole index, hard
filters, soft penalties, explanations), query embedding reported apart; the time to apply one
catalog publish to a live app on SQLite (store + embedding + index change) and see it in the
matches; and resident memory of the index. Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from techbridge_matching.domain.matching import AchievementFacts, rank
from techbridge_matching.retrieval.embedder import Embedder
from techbridge_matching.retrieval.engine import HybridIndex

ROOT = Path(__file__).resolve().parents[2]
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


def build(n: int, data: Path, cache: Path) -> tuple[HybridIndex, dict[str, AchievementFacts], float]:
    corpus = evaluation.read_jsonl(data / "corpus.jsonl")
    base = None
    if cache.exists():
        stored = np.load(cache)
        base = stored["vectors"]
    rng = np.random.default_rng(1)
    rnd = random.Random(1)
    before = rss_mb()
    index = HybridIndex(dimension=384)
    facts: dict[str, AchievementFacts] = {}
    for i in range(n):
        doc = corpus[i % len(corpus)]
        vec = base[i % len(corpus)] + rng.normal(0, 0.02, 384).astype(np.float32) if base is not None else rng.normal(size=384).astype(np.float32)
        vec /= np.linalg.norm(vec)
        codes = rnd.sample(IPC, rnd.randint(1, 2))
        doc_id = f"{doc['_id']}-{i}"
        index.add(doc_id, evaluation.document_text(doc), vec, codes)
        facts[doc_id] = AchievementFacts(
            achievement_id=doc_id, version=1, owner_org_id="u", title=doc["title"], trl=rnd.randint(1, 9),
            transfer_modes=tuple(rnd.sample(MODES, 2)), asking_price=rnd.randint(1, 100) * 1_000_000, currency="CNY",
            negotiable=rnd.random() < 0.5, region=rnd.choice(["Shanghai/Pudong", "Beijing", "Jiangsu/Suzhou"]),
            ipc_codes=tuple(codes), legal_statuses=("granted",))
    return index, facts, rss_mb() - before


def demand_for(text: str) -> Demand:
    return Demand(id="d", owner_org_id="sme", title=text[:80], problem=text, ipc_codes=("H01M 10/052",), keywords=(),
                  budget=Budget(None, 60_000_000), deadline=date(2099, 1, 1),
                  transfer_modes=(TransferMode.assignment, TransferMode.exclusive_licence), min_trl=4, region="Shanghai",
                  status=DemandStatus.published)


async def publish_to_matchable(samples: int) -> list[float]:
    """Apply catalog publishes to a live app (SQLite) and time until its matches list them."""
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
            for i in range(samples):
                data = achievement_data(title_en=f"Ceramic separator variant {i}")
                started = time.perf_counter()
                await api.apply(catalog_event("published", data))
                r = await api.get(f"/demands/{demand['id']}/matches", sme, params={"limit": 100})
                assert data["achievement_id"] in [x["achievement_id"] for x in r.json()["items"]]
                out.append(time.perf_counter() - started)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    ap.add_argument("--cache", default=str(ROOT / ".cache" / "matching" / "scifact-corpus.npz"))
    args = ap.parse_args()
    data = Path(args.data)

    started = time.perf_counter()
    index, facts, mem = build(args.docs, data, Path(args.cache))
    print(json.dumps({"measure": "index_build", "docs": args.docs, "seconds": round(time.perf_counter() - started, 1),
                      "rss_growth_mb": round(mem, 1), "real_vectors": Path(args.cache).exists()}))

    embedder = Embedder()
    queries = [q["text"] for q in evaluation.read_jsonl(data / "queries.train.jsonl")[: args.queries]]
    embed_ms, match_ms = [], []
    for text in queries:
        t0 = time.perf_counter()
        vec = embedder.embed_one(text)
        t1 = time.perf_counter()
        d = demand_for(text)
        cands = index.search(d.query_text, vec, list(d.ipc_codes), k=100)
        rank(d, [(c, facts[c.doc_id]) for c in cands], [], 20)
        t2 = time.perf_counter()
        embed_ms.append((t1 - t0) * 1000)
        match_ms.append((t2 - t1) * 1000)
    print(json.dumps({"measure": "top20_match_ms", "docs": args.docs, "queries": len(queries),
                      "p50": round(pct(match_ms, 50), 1), "p95": round(pct(match_ms, 95), 1), "max": round(max(match_ms), 1),
                      "query_embedding_p50": round(pct(embed_ms, 50), 1), "query_embedding_p95": round(pct(embed_ms, 95), 1)}))

    import logging

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("techbridge_shared").setLevel(logging.CRITICAL)
    lat = asyncio.run(publish_to_matchable(30))
    print(json.dumps({"measure": "publish_to_matchable_s", "samples": len(lat), "p50": round(statistics.median(lat), 3),
                      "p99": round(pct(lat, 99), 3),
                      "note": "handler (store + MiniLM embedding + saved matching) + index sync + query; add the consumer's poll (<=0.2 s)"}))


if __name__ == "__main__":
    main()
