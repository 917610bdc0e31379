"""Benchmark: what the gateway costs, and how fast webhooks fan out.

1. Latency (p50/p99) and throughput of one simple authenticated GET sent directly to a service
   and through the gateway, at the same concurrency, in one run. The service is a stand-in that
   verifies the forwarded identity exactly as the real services do (`require_identity`) and
   answers a small JSON body, so the difference is the gateway's own work (JWT check, rate
   limit, header rewriting, signing, proxying). Both run as real processes (uvicorn).
   Goal: the gateway adds at most 2 ms at p50 and keeps at least 70 % of direct throughput.
2. Webhook fan-out: events published to a real Kafka broker, consumed by the gateway and
   delivered to 10 subscribers (one local receiver process): delivered events per second.

    .venv/bin/python tests/bench/gateway_bench.py [--requests 4000] [--concurrency 16] [--events 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response

ROOT = Path(__file__).resolve().parents[2]
SECRET = "bench-internal-secret-0123456789abcdef"
HOOK_SECRET = "bench-hook-secret-0123456789"


# --- the processes ------------------------------------------------------------------------------
def upstream_main(port: int) -> None:
    import uvicorn

    from techbridge_shared.identity import require_identity

    app = FastAPI()
    app.state.runtime = type("R", (), {"settings": type("S", (), {"internal_auth_secret": SECRET})()})()

    @app.get("/api/v1/catalog/ping")
    async def ping(request: Request):
        who = require_identity(request)
        return {"ok": True, "sub": who.sub}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def receiver_main(port: int) -> None:
    import uvicorn

    app = FastAPI()
    counts = {"n": 0, "first": None, "last": None}

    @app.post("/hook/{i}")
    async def hook(i: int, request: Request):
        await request.body()
        now = time.time()
        counts["n"] += 1
        counts["first"] = counts["first"] or now
        counts["last"] = now
        return Response(status_code=204)

    @app.get("/count")
    async def count():
        return counts

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], env={**os.environ, **env}, cwd=ROOT,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- load ---------------------------------------------------------------------------------------
async def load(url: str, headers_for, requests: int, concurrency: int) -> dict:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for _ in range(concurrency * 5):  # warm up connections and caches
            await client.get(url, headers=headers_for())
        remaining = requests

        async def worker():
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                r = await client.get(url, headers=headers_for())
                latencies.append(time.perf_counter() - started)
                errors += r.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies), "errors": errors, "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
    }


def gateway_env(tmp: Path, port: int, upstream: str, kafka: str) -> dict[str, str]:
    return {
        "GATEWAY_PORT": str(port), "GATEWAY_DATA_DIR": str(tmp), "GATEWAY_CATALOG_URL": upstream,
        "GATEWAY_INTERNAL_AUTH_SECRET": SECRET, "GATEWAY_KAFKA_BOOTSTRAP_SERVERS": kafka,
        "GATEWAY_RATE_LIMIT_PER_S": "1000000", "GATEWAY_RATE_LIMIT_BURST": "1000000",
        "GATEWAY_LOG_LEVEL": "WARNING", "GATEWAY_WEBHOOK_POLL_INTERVAL_S": "0.05",
        "GATEWAY_WEBHOOK_ALLOW_PRIVATE_TARGETS": "false",
    }


async def proxy_overhead(tmp: Path, kafka: str, requests: int, concurrency: int) -> dict:
    from techbridge_shared.identity import Identity, identity_headers

    up_port, gw_port = free_port(), free_port()
    procs = [spawn([__file__, "--serve-upstream", str(up_port)], {}, tmp / "upstream.log")]
    try:
        wait_http(f"http://127.0.0.1:{up_port}/docs")
        procs.append(spawn(["-m", "techbridge_gateway"], gateway_env(tmp, gw_port, f"http://127.0.0.1:{up_port}", kafka),
                           tmp / "gateway.log"))
        wait_http(f"http://127.0.0.1:{gw_port}/health/live")
        secrets = json.loads((tmp / "dev-clients.json").read_text())
        r = httpx.post(f"http://127.0.0.1:{gw_port}/auth/token", data={"grant_type": "client_credentials"},
                       auth=("dev-partner", secrets["dev-partner"]))
        bearer = {"Authorization": "Bearer " + r.json()["access_token"]}
        who = Identity(sub="dev-partner", roles=frozenset({"partner"}), client_id="dev-partner")
        path = "/api/v1/catalog/ping"
        direct = await load(f"http://127.0.0.1:{up_port}{path}", lambda: identity_headers(who, SECRET, "GET", path),
                            requests, concurrency)
        via = await load(f"http://127.0.0.1:{gw_port}{path}", lambda: bearer, requests, concurrency)
        return {
            "concurrency": concurrency, "direct": direct, "gateway": via,
            "added_p50_ms": round(via["p50_ms"] - direct["p50_ms"], 3),
            "throughput_kept": round(via["rps"] / direct["rps"], 3),
        }
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)


async def fan_out(tmp: Path, kafka: str, events: int, subscribers: int = 10) -> dict:
    from aiokafka import AIOKafkaProducer

    from techbridge_shared.envelope import kafka_headers, new_event

    rx_port, gw_port = free_port(), free_port()
    gw_tmp = tmp / "fanout"
    gw_tmp.mkdir()
    procs = [spawn([__file__, "--serve-receiver", str(rx_port)], {}, tmp / "receiver.log")]
    try:
        wait_http(f"http://127.0.0.1:{rx_port}/count")
        env = gateway_env(gw_tmp, gw_port, "http://127.0.0.1:1", kafka)
        env["GATEWAY_EVENTS_CONSUMER_GROUP"] = f"gateway.bench-{uuid.uuid4().hex[:6]}"
        procs.append(spawn(["-m", "techbridge_gateway"], env, tmp / "gateway-fanout.log"))
        wait_http(f"http://127.0.0.1:{gw_port}/health/ready", timeout=90)
        secrets = json.loads((gw_tmp / "dev-clients.json").read_text())
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}") as gw:
            r = await gw.post("/auth/token", data={"grant_type": "client_credentials"},
                              auth=("dev-government", secrets["dev-government"]))
            gov = {"Authorization": "Bearer " + r.json()["access_token"]}
            for i in range(subscribers):
                r = await gw.post("/api/v1/subscriptions", headers=gov, json={
                    "callback_url": f"http://127.0.0.1:{rx_port}/hook/{i}", "types": ["techbridge.vouchers.*"],
                    "secret": HOOK_SECRET})
                assert r.status_code == 201, r.text
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True)
        await producer.start()
        started = time.time()
        try:
            for i in range(events):
                e = new_event(service="vouchers", aggregate="voucher", verb="issued", subject=str(uuid.uuid4()),
                              data={"voucher_id": str(i), "holder_org_id": "org"})
                await producer.send(e.topic, value=e.to_json(), key=e.subject.encode(), headers=kafka_headers())
            await producer.flush()
        finally:
            await producer.stop()
        want = events * subscribers
        deadline = time.monotonic() + 300
        async with httpx.AsyncClient() as rx:
            while True:
                counts = (await rx.get(f"http://127.0.0.1:{rx_port}/count")).json()
                if counts["n"] >= want or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
        elapsed = (counts["last"] or started) - started
        return {"events": events, "subscribers": subscribers, "deliveries": counts["n"],
                "seconds": round(elapsed, 2), "deliveries_per_s": round(counts["n"] / max(elapsed, 1e-9), 1),
                "events_per_s_to_all": round(counts["n"] / subscribers / max(elapsed, 1e-9), 1)}
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--serve-upstream", type=int)
    parser.add_argument("--serve-receiver", type=int)
    args = parser.parse_args()
    if args.serve_upstream:
        return upstream_main(args.serve_upstream)
    if args.serve_receiver:
        return receiver_main(args.serve_receiver)

    from techbridge_shared.testing.kafka_broker import KafkaBroker

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = KafkaBroker(tmp / "kafka")
        broker.start()
        try:
            overhead = asyncio.run(proxy_overhead(tmp, broker.bootstrap, args.requests, args.concurrency))
            fanout = asyncio.run(fan_out(tmp, broker.bootstrap, args.events))
        finally:
            broker.stop()
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "proxy": overhead, "webhook_fan_out": fanout}
    print(json.dumps(result, indent=2))
    out = ROOT / "tests" / "bench" / "results" / "gateway_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
