"""The whole platform as real processes, as `make run` starts it, for end-to-end and fault tests.

Four services and the gateway, each an OS process on a free port with a fresh PostgreSQL
database of its own, all on one Kafka broker, sharing one internal auth secret; the gateway
points at the services and has one bootstrap admin client. Consumer groups get a unique
prefix, so committed offsets of other tests on the same broker never hide an event.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from techbridge_shared.testing.kafka_broker import free_port
from techbridge_shared.testing.processes import ServiceProcess

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SERVICES = ("catalog", "matching", "valuation", "vouchers")
MODULES = {"catalog": "techbridge_catalog", "matching": "clocked_matching", "valuation": "techbridge_valuation",
           "vouchers": "techbridge_vouchers", "gateway": "techbridge_gateway"}


@dataclass
class Platform:
    work: Path
    kafka: str
    secret: str
    admin_id: str
    admin_secret: str
    clock_file: Path
    tag: str
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    clock_offset_s: float = 0.0

    @property
    def url(self) -> str:
        return self.processes["gateway"].url

    def advance_clock(self, seconds: float) -> None:
        """Move the matching service's clock forward (public notices run on it)."""
        self.clock_offset_s += seconds
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(str(self.clock_offset_s))
        tmp.replace(self.clock_file)

    def kill(self, name: str) -> None:
        self.processes[name].kill()

    def restart(self, name: str, timeout: float = 120) -> None:
        proc = self.processes[name]
        proc.kill()
        proc.start(ready=True, timeout=timeout)

    def stop(self) -> None:
        # The gateway first (it calls the services), then the services.
        for name in ("gateway", *SERVICES):
            if name in self.processes:
                self.processes[name].terminate()

    def logs(self, name: str, lines: int = 40) -> str:
        return self.processes[name].tail(lines)


def platform_topics() -> list[str]:
    """Every topic the platform documents (the gateway's AsyncAPI)."""
    import yaml

    doc = yaml.safe_load((ROOT / "gateway/techbridge_gateway/asyncapi.yaml").read_text())
    return sorted(ch["address"] for ch in doc["channels"].values())


def create_topics(kafka: str, topics: list[str], timeout: float = 60) -> None:
    """Create the platform's topics before the services start, as a deployment does, and wait
    until the broker's metadata lists every one of them.

    Services create what they need themselves, but a consumer that joins its group before the
    broker's metadata shows a topic created a moment earlier by another process is assigned no
    partitions and only notices the topic at its next metadata refresh (aiokafka: 5 minutes).
    """
    import asyncio

    from aiokafka import AIOKafkaConsumer

    from techbridge_shared import kafka as tb_kafka
    from techbridge_shared.settings import KafkaSettings

    async def run():
        await tb_kafka.ensure_topics(KafkaSettings(kafka_bootstrap_servers=kafka), "e2e", topics)
        deadline = time.monotonic() + timeout
        while True:
            consumer = AIOKafkaConsumer(bootstrap_servers=kafka)
            await consumer.start()
            try:
                known = await consumer.topics()
                if set(topics) <= known:
                    return
            finally:
                await consumer.stop()
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not in the broker's metadata: {sorted(set(topics) - known)}")
            await asyncio.sleep(0.5)

    asyncio.run(run())


def start_groups_at_the_end(kafka: str, groups: list[str]) -> None:
    """Commit the current end of every techbridge topic for each new consumer group.

    The broker may already hold records that other tests produced (the session's broker is
    shared). A platform deployed now starts from now: its groups would otherwise read that whole
    history first (and index other tests' achievements) before reaching the journey's events.
    """
    import asyncio
    import re

    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    async def run():
        for group in groups:
            consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
            await consumer.start()
            try:
                cluster = await consumer._client.fetch_all_metadata()
                tps = [TopicPartition(t, p) for t in cluster.topics() if re.match(r"^techbridge\.", t)
                       for p in cluster.partitions_for_topic(t) or ()]
                if not tps:
                    continue
                consumer.assign(tps)
                ends = await consumer.end_offsets(tps)
                await consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in ends.items()})
            finally:
                await consumer.stop()

    asyncio.run(run())


def start_platform(work: Path, kafka: str, pg_url_factory, timeout: float = 180) -> Platform:
    work.mkdir(parents=True, exist_ok=True)
    create_topics(kafka, platform_topics())
    tag = uuid.uuid4().hex[:8]
    start_groups_at_the_end(kafka, [
        f"catalog-e2e-{tag}.transfers", f"catalog-e2e-{tag}.valuations",
        f"matching-e2e-{tag}.achievement-index",
        f"valuation-e2e-{tag}.achievements", f"valuation-e2e-{tag}.transfers",
        f"vouchers-e2e-{tag}.organisations", f"vouchers-e2e-{tag}.transfers",
        f"gateway-e2e-{tag}.subscriptions",
    ])
    platform = Platform(
        work=work, kafka=kafka, secret="e2e-internal-" + secrets.token_hex(24),
        admin_id=f"e2e-admin-{tag}", admin_secret=secrets.token_urlsafe(32),
        clock_file=work / "matching-clock-offset", tag=tag,
    )
    platform.clock_file.write_text("0")
    ports = {name: free_port() for name in (*SERVICES, "gateway")}
    databases = {name: pg_url_factory(f"e2e_{name}") for name in (*SERVICES, "gateway")}
    pythonpath = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))

    for name in (*SERVICES, "gateway"):
        p = name.upper() + "_"
        env = {
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": pythonpath,
            p + "ENVIRONMENT": "dev",
            p + "PORT": str(ports[name]),
            p + "DATABASE_URL": databases[name],
            p + "KAFKA_BOOTSTRAP_SERVERS": kafka,
            p + "DATA_DIR": str(work / name),
            p + "INTERNAL_AUTH_SECRET": platform.secret,
            p + "LOG_LEVEL": "INFO",
            p + "OUTBOX_POLL_INTERVAL_MS": "50",
        }
        if name in ("catalog", "valuation", "vouchers"):
            env[p + "CONSUMER_GROUP_PREFIX"] = f"{name}-e2e-{tag}"
        if name == "matching":
            env[p + "ACHIEVEMENT_CONSUMER_GROUP"] = f"matching-e2e-{tag}.achievement-index"
            env["E2E_CLOCK_OFFSET_FILE"] = str(platform.clock_file)
        if name == "gateway":
            env.update({
                p + "EVENTS_CONSUMER_GROUP": f"gateway-e2e-{tag}.subscriptions",
                p + "BOOTSTRAP_ADMIN_CLIENT_ID": platform.admin_id,
                p + "BOOTSTRAP_ADMIN_SECRET": platform.admin_secret,
                p + "DEV_CLIENTS": "false",
                p + "PASSWORD_TIME_COST": "1",
                p + "PASSWORD_MEMORY_KIB": "1024",
                p + "WEBHOOK_POLL_INTERVAL_S": "0.2",
                p + "WEBHOOK_BACKOFF_BASE_S": "0.5",
                p + "WEBHOOK_BACKOFF_MAX_S": "5",
                p + "STREAM_POLL_INTERVAL_S": "0.2",
                p + "STREAM_HEARTBEAT_S": "2",
                p + "OPENAPI_REFRESH_S": "5",
                p + "UPSTREAM_TIMEOUT_S": "60",
                **{f"{p}{svc.upper()}_URL": f"http://127.0.0.1:{ports[svc]}" for svc in SERVICES},
            })
        platform.processes[name] = ServiceProcess(MODULES[name], env, ports[name], work / f"{name}.log", cwd=ROOT)

    try:
        # The services start side by side (each migrates its store, creates its topics, joins
        # its consumer groups); the gateway once they answer.
        with ThreadPoolExecutor(max_workers=len(SERVICES)) as pool:
            for f in [pool.submit(platform.processes[n].start, True, timeout) for n in SERVICES]:
                f.result()
        platform.processes["gateway"].start(ready=True, timeout=timeout)
    except BaseException:
        platform.stop()
        raise
    return platform


class Partner:
    """A partner's HTTP client through the gateway, with a client-credentials token."""

    def __init__(self, base_url: str, client_id: str, client_secret: str, org_id: str | None = None):
        self.client_id, self.client_secret, self.org_id = client_id, client_secret, org_id
        self.http = httpx.Client(base_url=base_url, timeout=90)
        self._token: str | None = None
        self._expires = 0.0

    def token(self) -> str:
        if not self._token or time.monotonic() > self._expires - 30:
            r = self.http.post("/auth/token", data={"grant_type": "client_credentials"},
                               auth=(self.client_id, self.client_secret))
            assert r.status_code == 200, r.text
            body = r.json()
            self._token, self._expires = body["access_token"], time.monotonic() + body["expires_in"]
        return self._token

    def request(self, method: str, path: str, *, key: str | None = None, headers: dict | None = None,
                **kw) -> httpx.Response:
        h = {"Authorization": f"Bearer {self.token()}", **(headers or {})}
        if key:
            h["Idempotency-Key"] = key
        return self.http.request(method, path, headers=h, **kw)

    def get(self, path: str, **kw) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        return self.request("POST", path, **kw)

    def ok(self, method: str, path: str, status: int | tuple[int, ...] = (200, 201), **kw) -> dict:
        r = self.request(method, path, **kw)
        wanted = (status,) if isinstance(status, int) else status
        assert r.status_code in wanted, f"{method} {path} -> {r.status_code}: {r.text}"
        return r.json()

    def close(self) -> None:
        self.http.close()


def wait_for(what: str, probe, timeout: float = 60, interval: float = 0.25):
    """Poll until probe() returns something truthy; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
