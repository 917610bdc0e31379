"""Benchmark: catalog bulk import rate and search latency, and how both grow from 10k to 100k.

The corpus is generated once per run (a fixed seed; Chinese and English titles, abstracts and
keywords; IPC codes drawn with the section weights of Chinese patent grants; skewed TRL, IP
type, transfer mode and price distributions; 300 owner institutions) and the same rows are
imported into each store, through the real HTTP bulk import endpoint (`mode=atomic`,
`submit=true`, 2,000 rows per request, each batch owned by one of up to 300 institutions). After each size
is reached, what was imported is published (one SQL status flip: the review workflow is not
what is measured), the store is analysed, and searches go through the real search endpoint as
an enterprise buyer would send them (facets on unless said otherwise):

- text: one or two words, Chinese or English
- text+filters: words and one filter set (IPC prefix, TRL range, mode, price, kind)
- filters only: one filter set, no words
- recency list: the unfiltered browse, newest first
- text, no facets: words, `facets=false`

Each case is warmed up with a few requests, then timed `--queries` times (random choices from
fixed lists); p50/p95 are wall times of the whole HTTP request in-process (ASGI, no network),
and cpu is this process's CPU time per request (Python, and SQLite which runs in-process; not
the PostgreSQL server's), which a loaded machine disturbs much less than wall time. On
PostgreSQL, when the server runs on this machine, `server_cpu_ms` (per search) and
`server_cpu_us_per_row` (per imported row) add the CPU time of the benchmark database's
server processes, read from /proc (absent when the server is elsewhere).
Facet reuse is off (`--facet-cache-s 0`) unless asked for, so every count is computed.

    .venv/bin/python tests/bench/catalog_search.py                       # sqlite + postgresql, 10k and 100k
    .venv/bin/python tests/bench/catalog_search.py --stores sqlite --sizes 10000 --profile

PostgreSQL is used when TECHBRIDGE_TEST_PG_URL names a server (a fresh database is created and
dropped). `--profile` adds, per case, the SQL statements with their count and time per
request, and the Python functions with the most own time (cProfile), for one import batch and
each search case (the SQLite text-hit query and the search columns' full load go straight to
the driver, so they are not in the SQL list: their time is the aiosqlite thread's).
`--sqlite-file PATH` / `--pg-database NAME` keep the store between runs (importing only what it
lacks; a kept store can be extended by a larger corpus), `--import-only` measures the imports
without the searches, and `--sql-only` answers searches by SQL alone, without the in-memory
columns. Figures go to stdout and to tests/bench/results/catalog_search.json together with the
machine's load average before and after. Nothing is asserted about time (goals: search p95 <=
50 ms, import >= 2,000 rows/s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime as dt
import io
import json
import logging
import os
import platform
import pstats
import random
import re
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import event, text

from techbridge_catalog.config import Settings
from techbridge_catalog.main import create_app
from techbridge_catalog.store import search
from techbridge_shared.identity import Identity, identity_headers

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "services" / "catalog" / "tests"))
from catalog_helpers import credit_code  # noqa: E402

A = "/api/v1/catalog/achievements"
RESULTS = ROOT / "tests" / "bench" / "results" / "catalog_search.json"
BATCH = 2_000
INSTITUTIONS = 300

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


def corpus(total: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """(owner institution, JSON lines body) batches: every row of the run, generated once."""
    rnd = random.Random(seed)
    batches = []
    for start in range(0, total, BATCH):
        n = min(BATCH, total - start)
        # Institutions own skewed shares of the catalog (a few large universities, a long tail).
        org = f"org-{min(INSTITUTIONS, int(rnd.paretovariate(0.8))):03d}"
        body = "\n".join(json.dumps(generate(rnd), ensure_ascii=False) for _ in range(n)).encode()
        batches.append((org, body))
    return batches


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def new_pg_database(server: str, name: str | None = None) -> str:
    """A new database (or `name`, created unless it exists)."""
    name = name or f"tb_bench_catalog_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://") + "/postgres")
    if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
        await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return name


async def drop_pg_database(server: str, name: str) -> None:
    conn = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://") + "/postgres")
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


# --- profiling -------------------------------------------------------------------------------

class SqlTimer:
    """Time of every SQL statement the catalog's engines run, by statement shape."""

    def __init__(self):
        self.on = False
        self.stats: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def attach(self, engine) -> None:
        sync = engine.sync_engine

        @event.listens_for(sync, "before_cursor_execute")
        def before(conn, cursor, statement, parameters, context, executemany):
            conn.info.setdefault("t0", []).append(time.perf_counter())

        @event.listens_for(sync, "after_cursor_execute")
        def after(conn, cursor, statement, parameters, context, executemany):
            t0 = conn.info["t0"].pop()
            if self.on:
                shape = re.sub(r"\s+", " ", statement)[:150]
                s = self.stats[shape]
                s[0] += 1
                s[1] += time.perf_counter() - t0

    @contextlib.contextmanager
    def measuring(self):
        self.stats.clear()
        self.on = True
        try:
            yield
        finally:
            self.on = False

    def report(self, per: int) -> str:
        rows = sorted(self.stats.items(), key=lambda kv: -kv[1][1])[:12]
        return "\n".join(f"    {n / per:6.2f}x {t * 1000 / per:8.2f} ms/req  {shape}" for shape, (n, t) in rows)


@contextlib.contextmanager
def profiled(enabled: bool, label: str, sql: SqlTimer, per: int):
    if not enabled:
        yield
        return
    prof = cProfile.Profile()
    with sql.measuring():
        prof.enable()
        try:
            yield
        finally:
            prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(14)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip() and not ln.startswith(("   Ordered", "   List"))]
    print(f"\n--- profile: {label} (SQL per request: count, time, statement)\n{sql.report(per)}", flush=True)
    print("    python, by own time:\n" + "\n".join("    " + ln for ln in lines[1:18]), flush=True)


class ServerCpu:
    """CPU seconds used so far by the PostgreSQL server processes serving one database, read
    from /proc (None when the server is not on this machine or not PostgreSQL)."""

    def __init__(self, url: str | None):
        self.url = url.replace("postgresql+asyncpg://", "postgresql://") if url else None
        self.conn = None

    async def start(self) -> None:
        if self.url:
            self.conn = await asyncpg.connect(self.url)
            if not Path(f"/proc/{await self.conn.fetchval('SELECT pg_backend_pid()')}").exists():
                await self.close()

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    async def seconds(self) -> float | None:
        if self.conn is None:
            return None
        pids = await self.conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        ticks = 0
        for (pid,) in pids:
            try:  # utime and stime, the 14th and 15th fields (after the command in parentheses)
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
        return ticks / os.sysconf("SC_CLK_TCK")


# --- one store -------------------------------------------------------------------------------

async def bench_store(kind: str, url: str, sizes: list[int], batches, queries: int, tmp: Path,
                      facet_cache_s: float, profile: bool, reuse: bool = False,
                      import_only: bool = False) -> list[dict]:
    settings = Settings(database_url=url, kafka_bootstrap_servers="127.0.0.1:1", data_dir=str(tmp),
                        environment="test", outbox_relay_enabled=False, expiry_sweep_interval_s=3600,
                        facet_cache_s=facet_cache_s)
    app = create_app(settings)
    secret = settings.internal_auth_secret
    admin = Identity(sub="admin", roles=frozenset({"admin"}))
    buyer = Identity(sub="buyer", org="org-buyer", roles=frozenset({"enterprise"}))
    rnd = random.Random(11)
    results = []
    sql = SqlTimer()

    def h(identity, method, path):
        return identity_headers(identity, secret, method, path)

    server = ServerCpu(url if kind == "postgresql" else None)
    async with app.router.lifespan_context(app):
        await server.start()
        runtime = app.state.runtime
        sql.attach(runtime.db.engine)
        reader = getattr(app.state, "catalog_reader", None)
        # (On PostgreSQL the reader's engine is the service's with options: its events reach
        # the listeners of the service's engine too, so it is not listened to twice.)
        base = getattr(reader.engine.sync_engine, "_proxied", None) if reader is not None else None
        if reader is not None and runtime.db.engine.sync_engine not in (reader.engine.sync_engine, base):
            sql.attach(reader.engine)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c", timeout=600) as c:
            orgs = sorted({org for org, _ in batches})
            for org in orgs:
                # Named and coded by the institution's number, not its place in this run's list, so a
                # kept store can be extended with a larger corpus (which has more institutions).
                i = int(org.removeprefix("org-"))
                path = "/api/v1/catalog/organisations"
                r = await c.post(path, headers=h(admin, "POST", path),
                                 json={"organisation_id": org, "name": f"基准大学{i}", "kind": "university",
                                       "region": "Shanghai/Xuhui", "credit_code": credit_code(i)})
                assert r.status_code == 201 or (reuse and r.status_code == 409), r.text
            loaded, batch_no, prev = 0, 0, 0
            if reuse:  # a kept database: what it holds is not imported again
                async with runtime.db.engine.connect() as conn:
                    loaded = (await conn.execute(text("SELECT count(*) FROM achievements"))).scalar_one()
                batch_no = loaded // BATCH
            for size in sizes:
                rows, seconds, cpu, server_cpu = 0, 0.0, 0.0, 0.0
                reused = loaded >= size
                while loaded < size:
                    org, body = batches[batch_no]
                    batch_no += 1
                    n = body.count(b"\n") + 1
                    owner = Identity(sub="bench", org=org, roles=frozenset({"institution"}))
                    with profiled(profile and batch_no == 1, f"{kind}: import {n} rows", sql, 1):
                        s0 = await server.seconds()
                        c0, t0 = time.process_time(), time.perf_counter()
                        r = await c.post(f"{A}/import", headers={**h(owner, "POST", f"{A}/import"),
                                                                 "content-type": "application/x-ndjson"},
                                         params={"submit": "true"}, content=body)
                        seconds += time.perf_counter() - t0
                        cpu += time.process_time() - c0
                        if s0 is not None:
                            server_cpu += await server.seconds() - s0
                    assert r.status_code == 200 and r.json()["imported"] == n, r.text[:500]
                    rows += n
                    loaded += n
                if reused:
                    print(f"{kind}: {loaded} achievements kept from an earlier run, none imported", flush=True)
                    prev = size
                # Publish what was imported (not measured).
                async with runtime.db.engine.begin() as conn:
                    await conn.execute(text(
                        "UPDATE achievements SET status = 'published', published_at = created_at, "
                        "expires_at = NULL WHERE status = 'submitted'"))
                    if kind == "sqlite":
                        await conn.execute(text("ANALYZE"))
                if kind == "postgresql" and not reused:
                    # Publishing every row in one statement rewrote each count row thousands of
                    # times in one transaction; vacuum as autovacuum would after it.
                    # (VACUUM FULL of the count tables: one statement rewriting a count row
                    # thousands of times leaves pages no plain vacuum gives back.)
                    async with runtime.db.engine.connect() as conn:
                        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                        await conn.execute(text("VACUUM FULL facet_cells, facet_owner_cells, facet_ipc_cells"))
                        await conn.execute(text("VACUUM ANALYZE"))
                if hasattr(app.state, "facet_cache"):
                    app.state.facet_cache = None
                if not reused:
                    results.append({"store": kind, "size": size, "case": "import", "rows": rows, "from": prev,
                                    "rows_per_s": round(rows / seconds) if seconds else None,
                                    "cpu_us_per_row": round(cpu * 1e6 / rows) if rows else None})
                    if server.conn is not None and rows:
                        results[-1]["server_cpu_us_per_row"] = round(server_cpu * 1e6 / rows)
                    print(json.dumps(results[-1]), flush=True)
                prev = size
                if import_only:
                    continue

                async def timed(params, n):
                    times, cpu = [], 0.0
                    s0 = await server.seconds()
                    for _ in range(n):
                        p = params()
                        c0, t0 = time.process_time(), time.perf_counter()
                        r = await c.get(A, headers=h(buyer, "GET", A), params=p)
                        times.append((time.perf_counter() - t0) * 1000)
                        cpu += time.process_time() - c0
                        assert r.status_code == 200, r.text[:300]
                    server_ms = None if s0 is None else round((await server.seconds() - s0) * 1000 / n, 1)
                    return times, cpu * 1000 / n, server_ms

                cases = {
                    "text": lambda: {"q": rnd.choice(QUERIES)},
                    "text+filters": lambda: {"q": rnd.choice(QUERIES), **rnd.choice(FILTERS)},
                    "filters only": lambda: rnd.choice(FILTERS),
                    "recency list": lambda: {},
                    "text, no facets": lambda: {"q": rnd.choice(QUERIES), "facets": "false"},
                }
                for name, params in cases.items():
                    await timed(params, 5)  # warm up
                    with profiled(profile, f"{kind} {size}: {name}", sql, queries):
                        times, cpu_ms, server_ms = await timed(params, queries)
                    results.append({"store": kind, "size": size, "case": name, "columns": search.SNAPSHOT,
                                    "p50_ms": round(pct(times, 50), 1),
                                    "p95_ms": round(pct(times, 95), 1), "mean_ms": round(sum(times) / len(times), 1),
                                    "cpu_ms": round(cpu_ms, 1)})
                    if server_ms is not None:
                        results[-1]["server_cpu_ms"] = server_ms
                    print(json.dumps(results[-1]), flush=True)
    await server.close()
    return results


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=60, help="timed searches per case and size")
    ap.add_argument("--facet-cache-s", type=float, default=0.0,
                    help="facet count reuse (the service default is 5 s; 0 measures every count)")
    ap.add_argument("--profile", action="store_true", help="SQL and Python time per import and per search case")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--keep-pg", action="store_true", help="keep the PostgreSQL database (to EXPLAIN queries on it)")
    ap.add_argument("--pg-database", help="use (and keep) this PostgreSQL database, importing only what it lacks")
    ap.add_argument("--sqlite-file", help="use (and keep) this SQLite file, importing only what it lacks")
    ap.add_argument("--import-only", action="store_true",
                    help="measure the imports alone (no searches; with --sqlite-file, e.g. to time 90k -> 100k on copies)")
    ap.add_argument("--sql-only", action="store_true",
                    help="answer searches by SQL alone, without the in-memory search columns (the former way)")
    args = ap.parse_args()
    search.SNAPSHOT = not args.sql_only
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    t0 = time.perf_counter()
    batches = corpus(sizes[-1])
    print(f"corpus: {sizes[-1]} rows generated in {time.perf_counter() - t0:.1f} s", flush=True)
    load_before = os.getloadavg()
    all_results = []
    for kind in args.stores.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            if kind == "sqlite":
                file = args.sqlite_file or f"{tmp}/catalog.db"
                all_results += await bench_store(kind, f"sqlite+aiosqlite:///{file}", sizes, batches,
                                                 args.queries, Path(tmp), args.facet_cache_s, args.profile,
                                                 reuse=bool(args.sqlite_file), import_only=args.import_only)
            else:
                server = os.environ.get("TECHBRIDGE_TEST_PG_URL")
                if not server:
                    print("postgresql: skipped (TECHBRIDGE_TEST_PG_URL not set)")
                    continue
                name = await new_pg_database(server.rstrip("/"), args.pg_database)
                try:
                    all_results += await bench_store(kind, f"{server.rstrip('/')}/{name}", sizes, batches,
                                                     args.queries, Path(tmp), args.facet_cache_s, args.profile,
                                                     reuse=bool(args.pg_database), import_only=args.import_only)
                finally:
                    if args.keep_pg or args.pg_database:
                        print(f"postgresql database kept: {name}")
                    else:
                        await drop_pg_database(server.rstrip("/"), name)
    load_after = os.getloadavg()
    print(f"\nload average (1/5/15 min) before {load_before}, after {load_after}; {os.cpu_count()} cpus")
    print("store       size     case               p50 ms  p95 ms  cpu ms/req  server ms/req  import rows/s  "
          "cpu us/row  server us/row")
    for r in all_results:
        print(f"{r['store']:<11} {r['size']:<8} {r['case']:<18} {r.get('p50_ms', ''):>6}  {r.get('p95_ms', ''):>6}  "
              f"{r.get('cpu_ms', ''):>10}  {r.get('server_cpu_ms', ''):>13}  {r.get('rows_per_s', ''):>13}  "
              f"{r.get('cpu_us_per_row', ''):>10}  {r.get('server_cpu_us_per_row', ''):>13}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "catalog_search", "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_before": load_before, "load_after": load_after},
        "args": vars(args), "results": all_results,
    }, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
