"""Callers, recorded catalog events and sample data for the matching tests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from techbridge_matching.config import Settings
from techbridge_shared.envelope import CloudEvent
from techbridge_shared.identity import Identity, identity_headers
from techbridge_shared.testing.events import read_events  # noqa: F401  (re-exported for the tests)


def who(org: str | None, *roles: str, sub: str | None = None) -> Identity:
    return Identity(sub=sub or f"user-{uuid.uuid4().hex[:6]}", org=org, roles=frozenset(roles), kind="user")


def catalog_event(verb: str, data: dict, *, time_: datetime | None = None) -> CloudEvent:
    """A catalog achievement event exactly as the cross-service contract describes it."""
    type_ = f"techbridge.catalog.achievement.{verb}.v1"
    return CloudEvent(source="/techbridge/catalog", type=type_, subject=data["achievement_id"],
                      time=time_ or datetime.now(UTC), dataschema=f"/schemas/{type_}.json", data=data)


def achievement_data(**over) -> dict:
    data = {
        "achievement_id": str(uuid.uuid4()),
        "version": 1,
        "owner_org_id": "org-univ",
        "title_zh": "一种锂电池陶瓷涂覆隔膜及其制备方法",
        "title_en": "Ceramic-coated separator for lithium-ion batteries",
        "abstract_zh": "本发明公开了一种高安全性锂电池隔膜，在高温下不收缩。",
        "abstract_en": "A ceramic-coated polyolefin separator that keeps lithium-ion batteries from shrinking and short-circuiting at high temperature.",
        "keywords": ["separator", "lithium battery", "隔膜"],
        "fields": ["new energy"],
        "ipc_codes": ["H01M 50/449"],
        "ip_type": "invention_patent",
        "trl": 6,
        "transfer_modes": ["assignment", "exclusive_licence"],
        "asking_price": {"amount": 50_000_000, "currency": "CNY"},
        "negotiable": False,
        "region": "Shanghai/Minhang",
        "ip_records": [{"number": "CN202310123456.7", "kind": "invention_patent", "filing_date": "2023-02-01",
                        "grant_date": "2024-06-01", "legal_status": "granted", "expiry_date": "2043-02-01"}],
        "published_at": datetime.now(UTC).isoformat(),
    }
    data.update(over)
    return data


OTHER_ACHIEVEMENTS = [
    dict(title_zh="一种水稻抗倒伏新品种", title_en="Lodging-resistant rice variety",
         abstract_zh="高产抗倒伏水稻品种。", abstract_en="A high-yield rice variety whose stems resist lodging in typhoon seasons.",
         keywords=["rice", "breeding"], fields=["agriculture"], ipc_codes=["A01H 6/46"], ip_type="plant_variety", trl=8,
         transfer_modes=["non_exclusive_licence"]),
    dict(title_zh="工业机器人视觉定位软件", title_en="Vision positioning software for industrial robots",
         abstract_zh="基于深度学习的机器人视觉定位。", abstract_en="Deep-learning camera calibration and part localisation for robot arms on assembly lines.",
         keywords=["robot", "machine vision"], fields=["intelligent manufacturing"], ipc_codes=["G06T 7/73", "B25J 9/16"],
         ip_type="software_copyright", trl=7, transfer_modes=["non_exclusive_licence", "technical_service"]),
    dict(title_zh="污水脱氮生物膜工艺", title_en="Biofilm process for nitrogen removal from wastewater",
         abstract_zh="低能耗污水脱氮。", abstract_en="A moving-bed biofilm reactor removing nitrogen from municipal wastewater with low aeration energy.",
         keywords=["wastewater", "denitrification"], fields=["environment"], ipc_codes=["C02F 3/30"], trl=5),
]


def demand_body(**over) -> dict:
    body = {
        "title": "Safer separators for our lithium-ion battery packs",
        "problem": "Our lithium-ion cells short-circuit when the separator shrinks at high temperature; we need a ceramic-coated separator technology.",
        "ipc_codes": ["H01M 50/40"],
        "keywords": ["separator"],
        "budget_min": {"amount": 10_000_000, "currency": "CNY"},
        "budget_max": {"amount": 80_000_000, "currency": "CNY"},
        "deadline": "2099-12-31",
        "transfer_modes": ["exclusive_licence", "assignment"],
        "min_trl": 5,
        "region": "Shanghai",
    }
    body.update(over)
    return body


def offer_body(**over) -> dict:
    body = {"mode": "exclusive_licence", "exclusive": True, "territory": "CN", "term_months": 60,
            "price": {"amount": 30_000_000, "currency": "CNY"},
            "royalty": {"rate_bp": 300, "base": "net sales"}, "pricing": "private_agreement"}
    body.update(over)
    return body


class Api:
    """Calls matching as the gateway would: every request carries a signed identity."""

    def __init__(self, client: httpx.AsyncClient, secret: str, app):
        self.client, self.secret, self.app = client, secret, app

    async def call(self, method: str, path: str, identity: Identity | None, **kw) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        full = "/api/v1/matching" + path
        if identity is not None:
            headers.update(identity_headers(identity, self.secret, method, full))
        return await self.client.request(method, full, headers=headers, **kw)

    async def get(self, path, identity, **kw):
        return await self.call("GET", path, identity, **kw)

    async def post(self, path, identity, **kw):
        return await self.call("POST", path, identity, **kw)

    async def put(self, path, identity, **kw):
        return await self.call("PUT", path, identity, **kw)

    async def apply(self, event: CloudEvent) -> None:
        """Apply a recorded catalog event through the service's own handler and unit of work."""
        runtime = self.app.state.runtime
        sub = runtime.spec.subscriptions[0]
        async with runtime.unit_of_work() as uow:
            await sub.handlers[event.type](uow, event)
            await uow.commit()

    async def published_demand(self, owner: Identity, **over) -> dict:
        r = await self.post("/demands", owner, json=demand_body(**over))
        assert r.status_code == 201, r.text
        r = await self.post(f"/demands/{r.json()['id']}/publish", owner)
        assert r.status_code == 200, r.text
        return r.json()

    async def outbox(self) -> list[dict]:
        from sqlalchemy import select

        runtime = self.app.state.runtime
        async with runtime.db.engine.connect() as conn:
            rows = (await conn.execute(select(runtime.spec.outbox.c.payload).order_by(runtime.spec.outbox.c.seq))).all()
        return [json.loads(r.payload) for r in rows]


async def produce(bootstrap: str, events: list[CloudEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(e.topic, value=e.to_json(), key=e.subject.encode(),
                                         headers=[("content-type", b"application/cloudevents+json")])
    finally:
        await producer.stop()


CATALOG_TOPIC = "techbridge.catalog.achievement.v1"


async def start_group_at_the_end(bootstrap: str, group: str, topics: tuple[str, ...] = (CATALOG_TOPIC,)) -> None:
    """Commit the current end of `topics` for a new consumer group.

    The session's broker keeps what earlier tests produced; an app started for this test must
    index only this test's achievements, whatever ran before it. A topic that does not exist
    yet holds nothing to skip.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(t, p) for t in topics for p in cluster.partitions_for_topic(t) or ()]
        if tps:
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            await consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in ends.items()})
    finally:
        await consumer.stop()


def matching_settings(store_url: str, kafka: str, tmp_path: Path, **overrides) -> Settings:
    """Settings for one test's app: its own store and its own consumer group (see
    start_group_at_the_end, which a fixture calls before starting the app)."""
    return Settings(
        database_url=store_url, kafka_bootstrap_servers=kafka, data_dir=str(tmp_path / "data"),
        environment="test", achievement_consumer_group=f"matching.achievement-index-{uuid.uuid4().hex[:8]}",
        outbox_poll_interval_ms=50, consumer_retry_backoff_ms=50, expiry_sweep_interval_s=0, **overrides,
    )
