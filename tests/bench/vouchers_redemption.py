"""Benchmark: sustained voucher redemptions (reserve + settle) per second on PostgreSQL.

Each redemption is two transactions through the same service functions and the same PostgreSQL
hot path the REST endpoints use (reads without locks checked by row version at the write, or the
voucher's row lock after a conflict; conditional balance updates, journal + postings with the hash
chain, outbox events, Idempotency-Key lookup and record): reserve 1 fen of
a random voucher among 1,000 for one of 8 agencies, then settle it. Clients are asyncio tasks
spread over worker processes (the service scales out as replicas). At the end the ledger check
replays the whole journal and must pass. In the same run pgbench's built-in TPC-B-like script
runs against the same server with the same client count, for comparison. Besides the rates it
reports CPU per redemption in the service processes and in the PostgreSQL backends (from /proc),
which the machine's other load disturbs far less than the rates. The summary is printed as JSON
and written to tests/bench/results/vouchers_redemption.json.

    TECHBRIDGE_TEST_PG_URL=$(deploy/postgres/pg.sh start) \
        .venv/bin/python tests/bench/vouchers_redemption.py [--clients 64] [--seconds 15] [--scaling 1,8,32,64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VOUCHERS = 1000
AGENCIES = 8
FACE = 100_000


def pg_server() -> str:
    url = os.environ.get("TECHBRIDGE_TEST_PG_URL")
    if not url:
        url = subprocess.run([str(ROOT / "deploy/postgres/pg.sh"), "start"], capture_output=True, text=True,
                             check=True).stdout.strip()
    return url.rstrip("/")


async def admin(server: str, sql: str) -> None:
    import asyncpg
    conn = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://") + "/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def backend_cpu_s(db: str) -> float | None:
    """CPU seconds used so far by the PostgreSQL backends serving database `db` (Linux /proc;
    None elsewhere). Read at the start and end of the measured window: the server's cost per
    redemption, which load on the machine disturbs far less than the rate."""
    total, found, tick = 0.0, False, os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not title.startswith("postgres:") or f" {db} " not in title:
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            found = True
        except (OSError, IndexError, ValueError):
            continue
    return total if found else None


def runtime_for(url: str, pool: int):
    from techbridge_shared.service import ServiceRuntime
    from techbridge_vouchers.config import Settings
    from techbridge_vouchers.main import build_spec
    settings = Settings(database_url=url, outbox_relay_enabled=False, expiry_sweep_interval_s=0, ledger_check_interval_s=0,
                        database_pool_size=max(1, min(100, pool)), environment="test")
    return ServiceRuntime(build_spec(settings))


async def setup(url: str, count: int = VOUCHERS) -> dict:
    from techbridge_shared.migrations import upgrade_to_head
    from techbridge_vouchers.domain import model as m
    from techbridge_vouchers.main import MIGRATIONS_DIR
    from techbridge_vouchers.service_layer import agencies, applications, programmes
    from techbridge_vouchers.service_layer.common import Actor
    from techbridge_vouchers.store.transact import transact

    rt = runtime_for(url, 10)
    await upgrade_to_head(rt.db, MIGRATIONS_DIR, "vouchers")
    gov = Actor("officer", "gov", frozenset({"government"}))
    now = datetime.now(UTC)
    terms = m.ProgrammeTerms(
        name="bench", currency="CNY", face_values=(FACE,), max_share_bp=5000, annual_quota=FACE,
        categories=("testing",), eligibility=m.EligibilityRules(org_kinds=()), applications_open_at=now - timedelta(days=1),
        applications_close_at=now + timedelta(days=30), validity_days=365, unspent_policy=m.UnspentPolicy.LAPSE,
        reminder_days=0, review_levels=1)
    p = (await transact(rt, lambda repo, uow: programmes.open_programme(repo, uow, gov, terms, FACE * count))).body
    pid = p.programme.id
    agency_ids = [f"agency-{i}" for i in range(AGENCIES)]
    for a in agency_ids:
        who = Actor(f"u-{a}", a, frozenset({"agency"}))
        await transact(rt, lambda repo, uow, who=who: agencies.apply(repo, uow, who, pid, ["testing"]))
        await transact(rt, lambda repo, uow, a=a: agencies.decide(repo, uow, gov, pid, a, "approve", ""))
    async def issue(i: int) -> tuple[str, str]:
        ent = Actor(f"u-e{i}", f"ent-{i}", frozenset({"enterprise"}))
        await transact(rt, lambda repo, uow: repo.upsert_organisation({
            "id": f"ent-{i}", "name": f"SME {i}", "kind": "enterprise", "region": "Shanghai", "credit_code": None,
            "headcount": 10, "annual_revenue": None, "revenue_currency": None, "registered_on": None}, as_of=now))
        app = (await transact(rt, lambda repo, uow: applications.submit(repo, uow, ent, pid, FACE, "CNY", ""))).body
        _, v = (await transact(rt, lambda repo, uow: applications.review(
            repo, uow, gov, app.id, approve=True, reason=""))).body
        return v.id, v.enterprise_org_id

    vouchers = []
    for start in range(0, count, 8):  # a few at a time: issuance takes turns on the programme row
        vouchers += await asyncio.gather(*(issue(i) for i in range(start, min(count, start + 8))))
    await rt.db.dispose()
    return {"programme_id": pid, "vouchers": vouchers, "agencies": agency_ids}


async def worker_main(url: str, clients: int, seconds: float, warmup: float, fixture: dict, seed: int,
                      hot_path: bool = True) -> dict:
    from techbridge_vouchers.api.redemptions import present as api_present
    from techbridge_vouchers.domain import model as m
    from techbridge_vouchers.service_layer import redemptions
    from techbridge_vouchers.service_layer.common import Actor
    from techbridge_vouchers.store.hot import close_pool, hot_path_for
    from techbridge_vouchers.store.transact import IdempotencyRequest, transact

    def present(r: m.Redemption) -> dict:  # the response body, as the REST endpoints make and store it
        return api_present(r).model_dump(mode="json")

    rt = runtime_for(url, clients)
    gov = Actor("officer", "gov", frozenset({"government"}))
    rng = random.Random(seed)
    done = 0
    all_done = 0  # every redemption, warm-up and wind-down included (the server-side sampler's window)
    commands = 0  # transactions started during the measured window (two per redemption)
    refused = 0
    latencies: list[float] = []
    measuring = False
    stop = False

    async def client(n: int):
        nonlocal done, refused, commands, all_done
        agency = fixture["agencies"][n % len(fixture["agencies"])]
        who = Actor(f"u-{agency}", agency, frozenset({"agency"}))
        while not stop:
            vid, ent = fixture["vouchers"][rng.randrange(len(fixture["vouchers"]))]
            req = m.RedemptionRequest(voucher_id=vid, enterprise_org_id=ent, amount=1, currency="CNY",
                                      invoice_amount=2, invoice_ref=uuid.uuid4().hex, category="testing")
            t0 = time.perf_counter()
            if measuring:
                commands += 2
            try:
                key = uuid.uuid4().hex
                r = (await transact(rt, lambda repo, uow: redemptions.reserve(repo, uow, who, req), status=201,
                                    present=present, idempotency=IdempotencyRequest(f"client-{agency}", key, key),
                                    hot_path=hot_path)).body
                await transact(rt, lambda repo, uow: redemptions.settle(repo, uow, gov, r["id"]), present=present,
                               idempotency=IdempotencyRequest("gov", key + "s", key), hot_path=hot_path)
            except Exception:
                refused += 1
                continue
            all_done += 1
            if measuring:
                done += 1
                latencies.append(time.perf_counter() - t0)

    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    db = url.rsplit("/", 1)[1]
    await asyncio.sleep(warmup)
    from techbridge_vouchers.store.transact import retries
    retries_before = dict(retries)
    writes = (await hot_path_for(rt.db, 2 * rt.settings.database_pool_size)).writes if hot_path else None
    grouped_before = (writes.documents, writes.batches) if writes else (0, 0)
    measuring = True
    t_start = time.perf_counter()
    cpu_start, pg_start = time.process_time(), backend_cpu_s(db) if seed == 0 else None
    await asyncio.sleep(seconds)
    measuring = False
    elapsed = time.perf_counter() - t_start
    cpu, pg_end = time.process_time() - cpu_start, backend_cpu_s(db) if seed == 0 else None
    retries_in_window = {k: n - retries_before.get(k, 0) for k, n in retries.items() if n > retries_before.get(k, 0)}
    grouped = (writes.documents - grouped_before[0], writes.batches - grouped_before[1]) if writes else (0, 0)
    stop = True
    await asyncio.gather(*tasks)
    await close_pool(rt.db)
    await rt.db.dispose()
    latencies.sort()
    return {"retries": retries_in_window, "grouped_writes": grouped, "commands": commands, "done": done, "all_done": all_done, "elapsed": elapsed, "refused": refused, "client_cpu_s": cpu,
            "server_cpu_s": (pg_end - pg_start) if pg_start is not None and pg_end is not None else None,
            "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else None,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else None}


def _worker(args) -> dict:
    sys.path.insert(0, str(ROOT))
    return asyncio.run(worker_main(*args))


class ServerSampler:
    """What the benchmark database's backends do while the load runs, sampled from
    pg_stat_activity every 50 ms: mean backends waiting on a lock (`Lock`: row and transaction
    locks, i.e. contention), on WAL or other internal locks (`LWLock`, `IO`), running, or waiting
    for the service (`Client`); and the work per committed transaction from pg_stat_database
    (buffers touched, rows written, transactions), per redemption. Unlike rates, these hardly
    depend on the machine's other load."""

    STATS = ("xact_commit", "blks_hit", "blks_read", "tup_inserted", "tup_updated")
    redemptions = 0  # set after the run: every redemption made while sampling

    def __init__(self, url: str):
        import threading
        self.dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        self.db = url.rsplit("/", 1)[1]
        self.stop = threading.Event()
        self.result: dict = {}
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _stats(self, conn) -> dict:
        row = await conn.fetchrow(f"SELECT {', '.join(self.STATS)} FROM pg_stat_database WHERE datname = $1", self.db)
        return dict(row)

    async def _run(self) -> None:
        import asyncpg
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            before = await self._stats(conn)
            counts: dict[str, int] = {}
            samples = 0
            while not self.stop.is_set():
                rows = await conn.fetch("SELECT state, wait_event_type FROM pg_stat_activity WHERE datname = $1 "
                                        "AND pid <> pg_backend_pid()", self.db)
                samples += 1
                for r in rows:
                    what = r["wait_event_type"] or ("running" if r["state"] == "active" else "idle")
                    counts[what] = counts.get(what, 0) + 1
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.1)  # backends report their statistics at most once a second
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            after = await self._stats(conn)
            self.result = {
                "backends": {k: round(n / max(1, samples), 2) for k, n in sorted(counts.items())},
                "delta": {k: after[k] - before[k] for k in self.STATS},
            }
        finally:
            await conn.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def summary(self, redemptions: int) -> dict:
        delta = self.result.pop("delta", {})
        if delta:
            self.result["per_redemption"] = {k: round(n / max(1, redemptions), 1) for k, n in delta.items()}
        return self.result


def run_load(url: str, clients: int, processes: int, seconds: float, fixture: dict) -> dict:
    processes = max(1, min(processes, clients))
    split = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes) as pool, ServerSampler(url) as server_side:
        results = pool.map(_worker, [(url, c, seconds, 2.0, fixture, i) for i, c in enumerate(split)])
    done = sum(r["done"] for r in results)
    elapsed = max(r["elapsed"] for r in results)
    server = results[0]["server_cpu_s"]
    return {"clients": clients, "processes": processes, "redemptions_per_s": done / elapsed,
            "client_cpu_ms": 1000 * sum(r["client_cpu_s"] for r in results) / max(1, done),
            "server_cpu_ms": 1000 * server / max(1, done) if server is not None else None,
            "refused": sum(r["refused"] for r in results), "retries": [r["retries"] for r in results],
            # Commands written without locks that found their read changed and ran again under them.
            "second_runs": sum(r["retries"].get("unlocked_read_changed", 0) for r in results)
            / max(1, sum(r["commands"] for r in results)),
            # Unlocked writes per group commit (each batch is one transaction).
            "writes_per_commit": sum(r["grouped_writes"][0] for r in results)
            / max(1, sum(r["grouped_writes"][1] for r in results)),
            "p50_ms": max((r["p50_ms"] or 0) for r in results), "p99_ms": max((r["p99_ms"] or 0) for r in results),
            "server_side": server_side.summary(sum(r["all_done"] for r in results))}


def pgbench(server: str, db: str, clients: int, seconds: int, scale: int) -> float:
    exe = shutil.which("pgbench") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))), None)
    m = re.match(r"postgresql\+asyncpg://(?:(?P<user>[^@:/]+)@)?(?P<host>[^:/]+):(?P<port>\d+)", server)
    env = {**os.environ, "PGHOST": m["host"], "PGPORT": m["port"], "PGUSER": m["user"] or "postgres"}
    subprocess.run([str(exe), "-i", "-q", "-s", str(scale), db], env=env, check=True, capture_output=True)
    out = subprocess.run([str(exe), "-c", str(clients), "-j", "2", "-T", str(seconds), "-M", "prepared", db],
                         env=env, check=True, capture_output=True, text=True).stdout
    tps = re.search(r"tps = ([0-9.]+)", out)
    return float(tps.group(1))


async def ledger_check(url: str) -> tuple[bool, int, list[str]]:
    from techbridge_vouchers.service_layer import ledger
    from techbridge_vouchers.store.transact import read
    rt = runtime_for(url, 2)
    try:
        report = await read(rt, lambda repo: ledger.check(repo))
    finally:
        await rt.db.dispose()
    return report.ok, report.entries_checked, report.problems[:5]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--processes", type=int, default=2, help="worker processes sharing the clients")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--scaling", default="1,8,32,64", help="client counts for the scaling table ('' to skip)")
    ap.add_argument("--vouchers", type=int, default=VOUCHERS)
    ap.add_argument("--pgbench-scale", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "tests" / "bench" / "results" / "vouchers_redemption.json"))
    args = ap.parse_args()

    server = pg_server()
    db = f"tb_bench_vouchers_{uuid.uuid4().hex[:8]}"
    pgdb = f"tb_bench_pgbench_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin(server, f'CREATE DATABASE "{db}"'))
    asyncio.run(admin(server, f'CREATE DATABASE "{pgdb}"'))
    url = f"{server}/{db}"
    try:
        t = time.perf_counter()
        fixture = asyncio.run(setup(url, args.vouchers))
        print(f"setup: 1 programme, {AGENCIES} agencies, {args.vouchers} vouchers issued in {time.perf_counter() - t:.1f}s")
        counts = sorted({int(c) for c in args.scaling.split(",") if c} | {args.clients})
        results = {}
        for c in counts:
            results[c] = run_load(url, c, args.processes, args.seconds, fixture)
            r = results[c]
            server_ms = f"{r['server_cpu_ms']:.2f}" if r["server_cpu_ms"] is not None else "?"
            print(f"clients={c:3d} processes={r['processes']}: {r['redemptions_per_s']:7.1f} redemptions/s "
                  f"(reserve+settle), p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, refused {r['refused']}, "
                  f"retries {r['retries']} ({r['second_runs']:.1%} of commands ran again under the locks), "
                  f"{r['writes_per_commit']:.1f} writes per group commit; CPU per redemption: service {r['client_cpu_ms']:.2f} ms, "
                  f"PostgreSQL {server_ms} ms")
            print(f"    PostgreSQL backends (mean): {r['server_side'].get('backends')}; "
                  f"per redemption: {r['server_side'].get('per_redemption')}")
        ok, entries, problems = asyncio.run(ledger_check(url))
        print(f"ledger check: {'PASSED' if ok else 'FAILED'} over {entries} journal entries {problems or ''}")
        tps = pgbench(server, pgdb, args.clients, int(args.seconds), args.pgbench_scale)
        ours = results[args.clients]["redemptions_per_s"]
        print(f"pgbench tpcb-like, scale {args.pgbench_scale}, {args.clients} clients: {tps:.1f} tps")
        print(f"ours at {args.clients} clients: {ours:.1f} redemptions/s = {ours / tps:.1%} of pgbench "
              f"({2 * ours:.1f} ledger transactions/s = {2 * ours / tps:.1%})")
        summary = {"clients": args.clients, "redemptions_per_s": round(ours, 1), "pgbench_tps": round(tps, 1),
                   "fraction": round(ours / tps, 3), "ledger_ok": ok,
                   "scaling": {c: round(r["redemptions_per_s"], 1) for c, r in results.items()},
                   "cpu_ms_per_redemption": {
                       c: {"service": round(r["client_cpu_ms"], 2),
                           "postgresql": r["server_cpu_ms"] and round(r["server_cpu_ms"], 2)}
                       for c, r in results.items()},
                   "second_runs_under_locks": {c: round(r["second_runs"], 4) for c, r in results.items()},
                   "writes_per_group_commit": {c: round(r["writes_per_commit"], 1) for c, r in results.items()},
                   "postgresql_side": {c: r["server_side"] for c, r in results.items()}}
        print(json.dumps(summary))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({
            **summary, "seconds": args.seconds, "processes": args.processes,
            "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end"}, indent=2))
        if not ok:
            raise SystemExit(1)
    finally:
        asyncio.run(admin(server, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        asyncio.run(admin(server, f'DROP DATABASE IF EXISTS "{pgdb}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
