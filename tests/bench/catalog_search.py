"""Benchmark: catalog bulk import rate and search latency, 10k -> 100k achievements.

Generates realistic achievements (Chinese and English titles, abstracts and keywords; IPC
codes drawn with the section weights of Chinese patent grants; TRL, IP types, transfer modes
and prices with skewed distributions), imports them through the real HTTP import endpoint in
batches of 5,000 rows, publishes them (status flip in SQL: the review workflow is not what is
measured), then times searches through the real search endpoint (facets included, as a client
gets them by default): text only, text + filters, filters only, recency listing.

    TECHBRIDGE_TEST_PG_URL=postgresql+asyncpg://... .venv/bin/python tests/bench/catalog_search.py
    .venv/bin/python tests/bench/catalog_search.py --stores sqlite --sizes 10000,100000 --queries 100

Prints figures; asserts nothing about time (goals: search p95 <= 50 ms, import >= 2,000 rows/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from techbridge_catalog.config import Settings
from techbridge_catalog.main import create_app
from techbridge_shared.identity import Identity, identity_headers

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "services" / "catalog" / "tests"))
from catalog_helpers import credit_code  # noqa: E402

A = "/api/v1/catalog/achievements"

MATERIALS = [("锂电池", "lithium battery"), ("固态电解质", "solid electrolyte"), ("石墨烯", "graphene"),
             ("碳纤维", "carbon fibre"), ("钙钛矿", "perovskite"), ("氢燃料电池", "hydrogen fuel cell"),
             ("光刻胶", "photoresist"), ("生物降解塑料", "biodegradable plastic"), ("纳米涂层", "nano coating"),
             ("高温合金", "superalloy"), ("半导体激光器", "semiconductor laser"), ("水凝胶", "hydrogel")]
OBJECTS = [("隔膜", "separator"), ("传感器", "sensor"), ("正极材料", "cathode material"), ("芯片", "chip"),
           ("控制系统", "control system"), ("检测方法", "detection method"), ("制备工艺", "preparation process"),
           ("算法", "algorithm"), ("装置", "device"), ("膜", "membrane"), ("疫苗", "vaccine"), ("机器人", "robot")]
ADJ = [("高安全性", "high-safety"), ("低成本", "low-cost"), ("高效", "efficient"), ("柔性", "flexible"),
       ("智能", "intelligent"), ("耐高温", "heat-resistant"), ("可回收", "recyclable"), ("便携式", "portable")]
FIELDS = ["新能源", "新材料", "生物医药", "集成电路", "人工智能", "高端装备", "节能环保", "现代农业"]
# IPC sections weighted roughly like Chinese invention grants (H and G lead).
IPC = [("H01M 10/052", 8), ("H01M 50/449", 5), ("H01L 21/02", 6), ("H01L 31/18", 4), ("H02J 7/00", 4),
       ("G06N 3/08", 8), ("G06T 7/11", 5), ("G01N 33/50", 6), ("G05B 19/418", 3), ("A61K 39/00", 5),
       ("A61B 5/00", 4), ("A01H 6/46", 2), ("C01B 32/184", 5), ("C08L 67/04", 4), ("C22C 19/05", 3),
       ("B25J 9/16", 5), ("B82Y 30/00", 2), ("F24S 10/00", 2), ("E04B 1/00", 1), ("D01F 9/12", 1)]
IP_TYPES = [("invention_patent", 60), ("utility_model", 15), ("software_copyright", 12), ("know_how", 6),
            ("ic_layout", 3), ("plant_variety", 2), ("prototype", 2)]
MODES = ["assignment", "exclusive_licence", "non_exclusive_licence", "equity", "co_development", "technical_service"]

QUERIES = ["锂电池", "传感器", "石墨烯 涂层", "battery", "machine learning", "detection method", "柔性 芯片",
           "hydrogen fuel cell", "疫苗", "robot", "固态电解质", "low-cost membrane"]
FILTERS = [{"ipc": "H01M"}, {"trl_min": 5}, {"transfer_mode": "exclusive_licence"},
           {"price_max": 5_000_000}, {"ip_type": "invention_patent", "trl_min": 4, "trl_max": 7}]


def weighted(rnd, pairs):
    return rnd.choices([p for p, _ in pairs], weights=[w for _, w in pairs])[0]


def generate(rnd: random.Random) -> dict:
    m, o, a = rnd.choice(MATERIALS), rnd.choice(OBJECTS), rnd.choice(ADJ)
    ip_type = weighted(rnd, IP_TYPES)
    codes = list({weighted(rnd, IPC) for _ in range(rnd.choice((1, 1, 2, 3)))})
    price = None if rnd.random() < 0.3 else int(rnd.lognormvariate(15.5, 1.2)) // 100 * 100
    return {
        "title_zh": f"一种{a[0]}{m[0]}{o[0]}及其制备方法",
        "title_en": f"{a[1].capitalize()} {m[1]} {o[1]} and its preparation",
        "abstract_zh": f"本发明公开了一种{a[0]}的{m[0]}{o[0]}，适用于{rnd.choice(FIELDS)}领域，"
                       f"具有{rnd.choice(ADJ)[0]}和{rnd.choice(ADJ)[0]}的特点。",
        "abstract_en": f"The invention discloses a {a[1]} {m[1]} {o[1]} for {rnd.choice(OBJECTS)[1]} applications, "
                       f"being {rnd.choice(ADJ)[1]} and {rnd.choice(ADJ)[1]}.",
        "confidential_details": "process window and supplier list",
        "keywords": [m[0], o[0], m[1]],
        "fields": [rnd.choice(FIELDS)],
        "ipc_codes": codes,
        "ip_type": ip_type,
        "trl": min(9, max(1, int(rnd.gauss(5, 1.8)))),
        "transfer_modes": rnd.sample(MODES, rnd.choice((1, 1, 2, 3))),
        "asking_price": {"amount": price, "currency": "CNY"} if price else None,
        "negotiable": price is None or rnd.random() < 0.4,
        "ip_records": [] if ip_type in ("know_how", "prototype") else [
            {"number": f"CN{rnd.randint(2015, 2025)}{rnd.randint(10**7, 10**8 - 1)}.{rnd.randint(0, 9)}",
             "kind": ip_type, "legal_status": "granted"}],
    }


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def new_pg_database(server: str) -> str:
    name = f"tb_bench_catalog_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://") + "/postgres")
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return name


async def drop_pg_database(server: str, name: str) -> None:
    conn = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://") + "/postgres")
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def bench_store(kind: str, url: str, sizes: list[int], queries: int, tmp: Path, facet_cache_s: float) -> list[dict]:
    settings = Settings(database_url=url, kafka_bootstrap_servers="127.0.0.1:1", data_dir=str(tmp),
                        environment="test", outbox_relay_enabled=False, expiry_sweep_interval_s=3600,
                        facet_cache_s=facet_cache_s)
    app = create_app(settings)
    secret = settings.internal_auth_secret
    org = "org-bench"
    owner = Identity(sub="bench", org=org, roles=frozenset({"institution"}))
    admin = Identity(sub="admin", roles=frozenset({"admin"}))
    buyer = Identity(sub="buyer", org="org-buyer", roles=frozenset({"enterprise"}))
    rnd = random.Random(7)
    results = []

    def h(identity, method, path):
        return identity_headers(identity, secret, method, path)

    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c", timeout=600) as c:
            r = await c.post("/api/v1/catalog/organisations", headers=h(admin, "POST", "/api/v1/catalog/organisations"),
                             json={"organisation_id": org, "name": "基准大学", "kind": "university",
                                   "region": "Shanghai/Xuhui", "credit_code": credit_code(1)})
            assert r.status_code == 201, r.text
            loaded = 0
            for size in sizes:
                rows, seconds = 0, 0.0
                while loaded < size:
                    n = min(5000, size - loaded)
                    body = "\n".join(json.dumps(generate(rnd), ensure_ascii=False) for _ in range(n)).encode()
                    t0 = time.perf_counter()
                    r = await c.post(f"{A}/import", headers={**h(owner, "POST", f"{A}/import"),
                                                             "content-type": "application/x-ndjson"},
                                     params={"submit": "true"}, content=body)
                    seconds += time.perf_counter() - t0
                    assert r.status_code == 200 and r.json()["imported"] == n, r.text[:500]
                    rows += n
                    loaded += n
                # Publish what was imported (not measured).
                runtime = app.state.runtime
                from sqlalchemy import text
                async with runtime.db.engine.begin() as conn:
                    await conn.execute(text(
                        "UPDATE achievements SET status = 'published', published_at = created_at, "
                        "expires_at = NULL WHERE status = 'submitted'"))
                    if kind == "postgresql":
                        await conn.execute(text("ANALYZE"))
                    else:
                        await conn.execute(text("ANALYZE"))

                async def timed(params):
                    times = []
                    for _ in range(queries):
                        p = params() if callable(params) else params
                        t0 = time.perf_counter()
                        r = await c.get(A, headers=h(buyer, "GET", A), params=p)
                        times.append((time.perf_counter() - t0) * 1000)
                        assert r.status_code == 200, r.text[:300]
                    return times

                cases = {
                    "text": lambda: {"q": rnd.choice(QUERIES)},
                    "text+filters": lambda: {"q": rnd.choice(QUERIES), **rnd.choice(FILTERS)},
                    "filters only": lambda: rnd.choice(FILTERS),
                    "recency list": lambda: {},
                    "text, no facets": lambda: {"q": rnd.choice(QUERIES), "facets": "false"},
                }
                for name, params in cases.items():
                    await timed(params)  # warm up caches once
                    times = await timed(params)
                    results.append({"store": kind, "size": size, "case": name, "p50_ms": round(pct(times, 50), 1),
                                    "p95_ms": round(pct(times, 95), 1)})
                    print(json.dumps(results[-1]), flush=True)
                results.append({"store": kind, "size": size, "case": "import",
                                "rows_per_s": round(rows / seconds) if seconds else None, "rows": rows})
                print(json.dumps(results[-1]), flush=True)
    return results


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--facet-cache-s", type=float, default=0.0,
                    help="facet count reuse (the service default is 5 s; 0 measures every count)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    sizes = [int(s) for s in args.sizes.split(",")]
    all_results = []
    for kind in args.stores.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            if kind == "sqlite":
                all_results += await bench_store(kind, f"sqlite+aiosqlite:///{tmp}/catalog.db", sizes, args.queries, Path(tmp), args.facet_cache_s)
            else:
                server = os.environ.get("TECHBRIDGE_TEST_PG_URL")
                if not server:
                    print("postgresql: skipped (TECHBRIDGE_TEST_PG_URL not set)")
                    continue
                name = await new_pg_database(server.rstrip("/"))
                try:
                    all_results += await bench_store(kind, f"{server.rstrip('/')}/{name}", sizes, args.queries, Path(tmp), args.facet_cache_s)
                finally:
                    await drop_pg_database(server.rstrip("/"), name)
    print("\nstore       size     case               p50 ms  p95 ms  import rows/s")
    for r in all_results:
        print(f"{r['store']:<11} {r['size']:<8} {r['case']:<18} {r.get('p50_ms', ''):>6}  {r.get('p95_ms', ''):>6}  "
              f"{r.get('rows_per_s', '')}")


if __name__ == "__main__":
    asyncio.run(main())
