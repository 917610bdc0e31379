"""Callers and sample data for the catalog tests."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import httpx
from aiokafka import AIOKafkaProducer

from techbridge_catalog.domain.rules import credit_code_check_char
from techbridge_shared.identity import Identity, identity_headers
from techbridge_shared.testing.events import read_events  # noqa: F401  (re-exported for the tests)

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def credit_code(seed: int | None = None) -> str:
    rnd = random.Random(seed)
    body = "91" + "310115" + "".join(rnd.choice(ALPHABET) for _ in range(9))
    return body + credit_code_check_char(body)


def who(org: str | None, *roles: str, sub: str | None = None) -> Identity:
    return Identity(sub=sub or f"user-{uuid.uuid4().hex[:6]}", org=org, roles=frozenset(roles), kind="user")


def achievement(**over) -> dict:
    body = {
        "title_zh": "一种锂电池隔膜及其制备方法",
        "title_en": "Lithium battery separator and its preparation",
        "abstract_zh": "本发明公开了一种高安全性锂电池隔膜。",
        "abstract_en": "A ceramic-coated separator that keeps lithium batteries safe at high temperature.",
        "confidential_details": "Coating recipe: 40% boehmite, 2 µm, 60 °C cure.",
        "keywords": ["隔膜", "separator"],
        "fields": ["新能源"],
        "ipc_codes": ["H01M 50/449"],
        "ip_type": "invention_patent",
        "trl": 6,
        "transfer_modes": ["assignment", "exclusive_licence"],
        "asking_price": {"amount": 50_000_000, "currency": "CNY"},
        "negotiable": True,
        "ip_records": [{"number": "CN202310123456.7", "kind": "invention_patent", "filing_date": "2023-02-01",
                        "grant_date": "2024-06-01", "legal_status": "granted", "ipc_codes": ["H01M 50/449"]}],
        "inventors": [{"name": "张伟", "role": "lead inventor"}],
        "co_owners": [],
    }
    body.update(over)
    return body


class Api:
    """Calls the catalog as the gateway would: every request carries a signed identity."""

    def __init__(self, client: httpx.AsyncClient, secret: str, app=None):
        self.client = client
        self.secret = secret
        self.app = app

    async def call(self, method: str, path: str, identity: Identity | None, **kw) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if identity is not None:
            headers.update(identity_headers(identity, self.secret, method, path))
        return await self.client.request(method, path, headers=headers, **kw)

    async def get(self, path, identity, **kw):
        return await self.call("GET", path, identity, **kw)

    async def post(self, path, identity, **kw):
        return await self.call("POST", path, identity, **kw)

    async def patch(self, path, identity, **kw):
        return await self.call("PATCH", path, identity, **kw)

    # --- shortcuts ----------------------------------------------------------------------------
    async def register_org(self, name: str = "复旦大学", kind: str = "university", region: str = "Shanghai/Yangpu",
                           org_id: str | None = None, **over) -> dict:
        org_id = org_id or str(uuid.uuid4())
        body = {"organisation_id": org_id, "name": name, "name_en": over.pop("name_en", ""), "kind": kind,
                "region": region, "credit_code": credit_code(), **over}
        r = await self.post("/api/v1/catalog/organisations", who(None, "admin"), json=body)
        assert r.status_code == 201, r.text
        return r.json()

    async def create(self, org_id: str, **over) -> dict:
        r = await self.post("/api/v1/catalog/achievements", who(org_id, "institution"), json=achievement(**over))
        assert r.status_code == 201, r.text
        return r.json()

    async def act(self, achievement_id: str, action: str, identity: Identity, reason: str | None = None) -> httpx.Response:
        body = {"reason": reason} if reason else None
        return await self.post(f"/api/v1/catalog/achievements/{achievement_id}/{action}", identity, json=body)

    async def published(self, org_id: str, **over) -> dict:
        a = await self.create(org_id, **over)
        r = await self.act(a["achievement_id"], "submit", who(org_id, "institution"))
        assert r.status_code == 200, r.text
        r = await self.act(a["achievement_id"], "publish", who(None, "government"))
        assert r.status_code == 200, r.text
        return r.json()


async def produce(bootstrap: str, topic: str, events: list) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(topic, value=e.to_json(), key=e.subject.encode(),
                                         headers=[("content-type", b"application/cloudevents+json")])
    finally:
        await producer.stop()


async def eventually(check, timeout: float = 30, interval: float = 0.2):
    """Poll an async check until it returns a truthy value; fail with its last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")
