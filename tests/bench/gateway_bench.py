"""Benchmark: what the gateway costs, and how fast webhooks fan out.

1. Latency (p50/p99) and throughput of one simple authenticated GET sent directly to a service
   and through the gateway, at the same concurrency, in one run. The service is a stand-in that
   verifies the forwarded identity exactly as the real services do (`identity_of`) and
   answers a small JSON body, so the difference is the gateway's own work (JWT check, rate
   limit, header rewriting, signing, proxying). Both run as real processes (uvicorn), and the
   load comes from `http_load` (raw asyncio HTTP/1.1 keep-alive client in a process of its own)
   at each concurrency in turn, direct then through the gateway. Besides latency and
   throughput it reports the CPU time each process spent per request (from /proc), which is
   what the gateway really costs and is much less noisy than wall time on a shared machine.
   Goal: the gateway adds at most 2 ms at p50 and keeps at least 70 % of direct throughput.
2. The same comparison on a real service's simple GET: the catalog process (SQLite, as `make
   run` starts it) reading one organisation by id, directly and through a gateway in front of it.
3. Webhook fan-out: events published to a real Kafka broker, consumed by the gateway and
   delivered to 10 subscribers (one local receiver process): delivered events per second.

    .venv/bin/python tests/bench/gateway_bench.py [--requests 6000] [--concurrency 1,4,16,64] [--events 300]
                                                  [--skip-proxy] [--skip-real] [--skip-fan-out]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
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
OUT = ROOT / "tests" / "bench" / "results" / "gateway_bench.json"
sys.path.insert(0, str(Path(__file__).resolve().parent))
import http_load  # noqa: E402
from http_load import cpu_seconds  # noqa: E402

from techbridge_shared.identity import Identity  # noqa: E402

SECRET = "bench-internal-secret-0123456789abcdef"
HOOK_SECRET = "bench-hook-secret-0123456789"
# Who the direct requests are signed for: the identity the gateway forwards for dev-partner.
PARTNER = Identity(sub="dev-partner", roles=frozenset({"partner"}), client_id="dev-partner", kind="client")


# --- the processes ------------------------------------------------------------------------------
def upstream_main(port: int) -> None:
    import uvicorn

    from techbridge_shared.identity import identity_of

    app = FastAPI()
    app.state.runtime = type("R", (), {"settings": type("S", (), {"internal_auth_secret": SECRET})()})()

    @app.get("/api/v1/catalog/ping")
    async def ping(request: Request):
        who = identity_of(request)
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
def measure(url: str, headers, requests: int, concurrency: int, pids: dict[str, int]) -> dict:
    """One load run, with the CPU seconds each named process spent per request meanwhile."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = http_load.run(url, headers, requests=requests, concurrency=concurrency)
    result["cpu_us_per_request"] = {
        name: round((cpu_seconds(pid) - before[name]) / result["requests"] * 1e6, 1) for name, pid in pids.items()
    }
    result["cpu_us_per_request"]["load"] = result.pop("load_cpu_us_per_request")
    return result


def gateway_env(tmp: Path, port: int, upstream: str, kafka: str) -> dict[str, str]:
    return {
        "GATEWAY_PORT": str(port), "GATEWAY_DATA_DIR": str(tmp), "GATEWAY_CATALOG_URL": upstream,
        "GATEWAY_INTERNAL_AUTH_SECRET": SECRET, "GATEWAY_KAFKA_BOOTSTRAP_SERVERS": kafka,
        "GATEWAY_RATE_LIMIT_PER_S": "1000000", "GATEWAY_RATE_LIMIT_BURST": "1000000",
        "GATEWAY_LOG_LEVEL": "WARNING", "GATEWAY_WEBHOOK_POLL_INTERVAL_S": "0.05",
        "GATEWAY_WEBHOOK_ALLOW_PRIVATE_TARGETS": "false",
    }


def compare(direct_url: str, gateway_url: str, path: str, who, bearer: dict, pids: dict[str, int],
            requests: int, concurrencies: list[int], label: str) -> list[dict]:
    """Direct, then through the gateway, at each concurrency in turn."""
    from techbridge_shared.identity import identity_headers

    runs = []
    for concurrency in concurrencies:
        direct = measure(direct_url + path, lambda: identity_headers(who, SECRET, "GET", path), requests,
                         concurrency, pids)
        via = measure(gateway_url + path, bearer, requests, concurrency, pids)
        run = {
            "concurrency": concurrency, "direct": direct, "gateway": via,
            "added_p50_ms": round(via["p50_ms"] - direct["p50_ms"], 3),
            "throughput_kept": round(via["rps"] / direct["rps"], 3),
            "gateway_cpu_us_per_request": via["cpu_us_per_request"]["gateway"],
        }
        print(f"{label} c={concurrency:>3}  direct {direct['rps']:>7} req/s p50 {direct['p50_ms']:>7} ms  "
              f"gateway {via['rps']:>7} req/s p50 {via['p50_ms']:>7} ms  added p50 {run['added_p50_ms']} ms  "
              f"kept {run['throughput_kept']:.0%}  gateway CPU {run['gateway_cpu_us_per_request']} us/req",
              file=sys.stderr, flush=True)
        runs.append(run)
    return runs


def start_gateway(tmp: Path, kafka: str, upstream: str) -> tuple[subprocess.Popen, str, dict]:
    """A gateway process forwarding catalog paths to `upstream`, and a partner's bearer header."""
    port = free_port()
    env = gateway_env(tmp, port, upstream, kafka)
    env.pop("GATEWAY_WEBHOOK_POLL_INTERVAL_S")  # the default: no webhooks in this part
    proc = spawn(["-m", "techbridge_gateway"], env, tmp / "gateway.log")
    wait_http(f"http://127.0.0.1:{port}/health/live")
    secrets = json.loads((tmp / "dev-clients.json").read_text())
    r = httpx.post(f"http://127.0.0.1:{port}/auth/token", data={"grant_type": "client_credentials"},
                   auth=("dev-partner", secrets["dev-partner"]))
    return proc, f"http://127.0.0.1:{port}", {"Authorization": "Bearer " + r.json()["access_token"]}


def proxy_overhead(tmp: Path, kafka: str, requests: int, concurrencies: list[int]) -> dict:
    """The stand-in service: what the gateway's own work costs."""
    up_port = free_port()
    procs = [spawn([__file__, "--serve-upstream", str(up_port)], {}, tmp / "upstream.log")]
    try:
        wait_http(f"http://127.0.0.1:{up_port}/docs")
        gateway, gateway_url, bearer = start_gateway(tmp, kafka, f"http://127.0.0.1:{up_port}")
        procs.append(gateway)
        pids = {"upstream": procs[0].pid, "gateway": gateway.pid}
        runs = compare(f"http://127.0.0.1:{up_port}", gateway_url, "/api/v1/catalog/ping", PARTNER, bearer,
                       pids, requests, concurrencies, "stand-in")
        return {"requests_per_run": requests, "runs": runs}
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)


def real_service(tmp: Path, kafka: str, requests: int, concurrencies: list[int]) -> dict:
    """The catalog itself (SQLite, as `make run` starts it): one organisation read by id, a simple
    GET with the service's real work (identity check, a read session, a row, a schema)."""
    from techbridge_catalog.domain.rules import credit_code_check_char
    from techbridge_shared.identity import identity_headers
    from techbridge_shared.testing.processes import ServiceProcess

    tmp = tmp / "real"
    tmp.mkdir()
    port = free_port()
    catalog = ServiceProcess("techbridge_catalog", {
        "CATALOG_PORT": str(port), "CATALOG_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'catalog.db'}",
        "CATALOG_KAFKA_BOOTSTRAP_SERVERS": kafka, "CATALOG_DATA_DIR": str(tmp),
        "CATALOG_INTERNAL_AUTH_SECRET": SECRET, "CATALOG_LOG_LEVEL": "WARNING",
    }, port, tmp / "catalog.log").start(timeout=90)
    gateway = None
    try:
        org, path = "org-bench", "/api/v1/catalog/organisations"
        body = "91310115" + "0" * 9
        admin = Identity(sub="bench-admin", roles=frozenset({"admin"}), kind="user")
        r = httpx.post(catalog.url + path, headers=identity_headers(admin, SECRET, "POST", path), json={
            "organisation_id": org, "name": "华东理工大学", "kind": "university",
            "credit_code": body + credit_code_check_char(body)})
        assert r.status_code == 201, r.text
        gateway, gateway_url, bearer = start_gateway(tmp, kafka, catalog.url)
        pids = {"upstream": catalog.process.pid, "gateway": gateway.pid}
        runs = compare(catalog.url, gateway_url, f"{path}/{org}", PARTNER, bearer, pids, requests,
                       concurrencies, "catalog")
        return {"requests_per_run": requests, "path": f"GET {path}/{{id}}", "runs": runs}
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(15)
        catalog.terminate()


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
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--concurrency", default="1,4,16,64", help="comma-separated concurrencies")
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--skip-fan-out", action="store_true")
    parser.add_argument("--skip-proxy", action="store_true", help="no stand-in comparison; keep the last figures")
    parser.add_argument("--skip-real", action="store_true", help="no catalog comparison; keep the last figures")
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
            last: dict = {}
            with contextlib.suppress(FileNotFoundError, ValueError):
                last = json.loads(OUT.read_text())
            load_before = os.getloadavg()
            concurrencies = [int(c) for c in args.concurrency.split(",")]
            overhead = None if args.skip_proxy else proxy_overhead(tmp, broker.bootstrap, args.requests, concurrencies)
            load_between = os.getloadavg()
            real = None if args.skip_real else real_service(tmp, broker.bootstrap, args.requests, concurrencies)
            load_after = os.getloadavg()
            fanout = None if args.skip_fan_out else asyncio.run(fan_out(tmp, broker.bootstrap, args.events))
            load_end = os.getloadavg()
        finally:
            broker.stop()
    # What was not measured this time is kept from the last run, with the load it ran under.
    machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
    result = {"machine": machine, "proxy": overhead, "real_service": real, "webhook_fan_out": fanout}
    if overhead is None:
        result["proxy"] = last.get("proxy")
    else:
        result["proxy"]["load_average_1m_before_after"] = [round(load_before[0], 2), round(load_between[0], 2)]
    if real is None:
        result["real_service"] = last.get("real_service")
    else:
        real["load_average_1m_before_after"] = [round(load_between[0], 2), round(load_after[0], 2)]
    if fanout is None:
        result["webhook_fan_out"] = last.get("webhook_fan_out")
    else:
        fanout["load_average_1m_before_after"] = [round(load_after[0], 2), round(load_end[0], 2)]
    print(json.dumps(result, indent=2))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
