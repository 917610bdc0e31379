"""Benchmark: outbox -> Kafka -> consumer latency and throughput at a steady 500 events/s.

Two real processes (the probe service: a publisher and a consumer, each with its own store)
and a real Apache Kafka broker started for the run. The publisher writes each event in its
own transaction (row + outbox row) at the target rate; the relay publishes; the consumer
applies each event in its own transaction with its inbox row. Latency is measured per event
from its creation time (in the publisher's transaction) to the consumer's commit-side
timestamp, on one machine clock. Run on SQLite stores and on PostgreSQL stores.

    make bench                                   (all stores)
    .venv/bin/python tests/bench/outbox_latency.py --rate 500 --seconds 20 --stores sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "platform"))

from harness import probe_process  # noqa: E402

from techbridge_shared.testing.kafka_broker import KafkaBroker  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def drive(url: str, rate: int, seconds: float, tick_s: float = 0.02) -> tuple[int, float]:
    """Send `rate` events/s as small batches every tick; returns (events written, elapsed)."""
    per_tick = max(1, round(rate * tick_s))
    written = 0
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        start = time.perf_counter()
        next_tick = start
        while time.perf_counter() - start < seconds:
            # Each event is its own transaction; a tick's events commit concurrently, as
            # concurrent requests would.
            r = await client.post("/notes/batch", params={"count": per_tick, "concurrency": per_tick})
            r.raise_for_status()
            written += per_tick
            next_tick += tick_s
            delay = next_tick - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        return written, time.perf_counter() - start


def run_once(store: str, rate: int, seconds: float, workdir: Path, kafka: str, pg_server: str | None) -> dict:
    def url(name: str) -> str:
        if store == "sqlite":
            return f"sqlite+aiosqlite:///{workdir / f'{name}.db'}"
        db = f"tb_bench_{name}_{uuid.uuid4().hex[:8]}"
        import subprocess

        subprocess.run(["psql", pg_server.replace("postgresql+asyncpg", "postgresql") + "/postgres",
                        "-qc", f'CREATE DATABASE "{db}"'], check=True)
        return f"{pg_server}/{db}"

    publisher = probe_process(workdir, name=f"{store}-publisher", kafka=kafka, database_url=url("publisher"),
                              consume=False, log_level="WARNING")
    consumer = probe_process(workdir, name=f"{store}-consumer", kafka=kafka, database_url=url("consumer"),
                             consume=True, group=f"probe.bench-{uuid.uuid4().hex[:8]}", log_level="WARNING")
    publisher.start()
    consumer.start()
    try:
        written, elapsed = asyncio.run(drive(publisher.url, rate, seconds))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            t = httpx.get(consumer.url + "/tally", timeout=30).json()
            if t["applications"] >= written:
                break
            time.sleep(0.5)
        latencies = httpx.get(consumer.url + "/latencies", timeout=60).json()
        t = httpx.get(consumer.url + "/tally", timeout=30).json()
    finally:
        publisher.terminate()
        consumer.terminate()
    return {
        "store": store,
        "target_rate": rate,
        "written": written,
        "achieved_write_rate": round(written / elapsed, 1),
        "applied": t["applications"],
        "distinct": t["distinct_events"],
        "lost": written - t["distinct_events"],
        "applied_twice": t["applications"] - t["distinct_events"],
        "p50_ms": round(statistics.median(latencies), 1),
        "p90_ms": round(percentile(latencies, 90), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--out", default=str(ROOT / "tests" / "bench" / "results" / "outbox_latency.json"))
    args = parser.parse_args()
    pg_server = os.environ.get("TECHBRIDGE_TEST_PG_URL")
    stores = args.stores.split(",")
    if "postgresql" in stores and not pg_server:
        print("TECHBRIDGE_TEST_PG_URL is not set (make bench sets it)", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for store in stores:
            # A fresh broker per store, so one run's events are not the next run's backlog.
            broker = KafkaBroker(workdir / f"kafka-{store}")
            broker.start()
            try:
                results.append(run_once(store, args.rate, args.seconds, workdir, broker.bootstrap, pg_server))
            finally:
                broker.stop()
            print(json.dumps(results[-1]), flush=True)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "seconds": args.seconds, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'store':<11} {'rate/s':>8} {'written':>8} {'lost':>5} {'twice':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in results:
        print(f"{r['store']:<11} {r['achieved_write_rate']:>8} {r['written']:>8} {r['lost']:>5} "
              f"{r['applied_twice']:>6} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
