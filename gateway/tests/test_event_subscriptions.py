"""Webhooks and event streams fed by a real broker, delivered to real local HTTP receivers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import Response
from gateway_helpers import free_port, gateway_settings, serve

from techbridge_shared.envelope import CloudEvent, kafka_headers, new_event
from techbridge_gateway.domain.events import is_public, org_ids_in
from techbridge_gateway.domain.webhooks import SIGNATURE_HEADER, verify
from techbridge_gateway.main import create_app

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

SECRET = "receiver-shared-secret-0123456789"


class Receiver:
    """A webhook receiver: verifies every signature, records events, can be told to fail."""

    def __init__(self, secret: str = SECRET):
        self.secret = secret
        self.events: list[dict] = []
        self.bad_signatures = 0
        self.fail_with: int | None = None
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request):
            body = await request.body()
            if not verify(self.secret, request.headers.get(SIGNATURE_HEADER, ""), body, int(time.time())):
                self.bad_signatures += 1
                return Response(status_code=401)
            if self.fail_with:
                return Response(status_code=self.fail_with)
            assert request.headers["content-type"].startswith("application/cloudevents+json")
            self.events.append(json.loads(body))
            return Response(status_code=204)

    def of(self, subjects) -> list[dict]:
        return [e for e in self.events if e["subject"] in subjects]


@contextlib.asynccontextmanager
async def gateway(tmp_path, kafka_bootstrap, database_url=None, **overrides):
    settings = gateway_settings(
        tmp_path, kafka_bootstrap_servers=kafka_bootstrap, events_consumer_group=f"gateway.test-{uuid.uuid4().hex[:8]}",
        webhook_backoff_base_s=0.2, webhook_backoff_max_s=1.0, webhook_poll_interval_s=0.1,
        stream_heartbeat_s=1.0, **({"database_url": database_url} if database_url else {}), **overrides)
    app = create_app(settings)
    async with serve(app, lifespan="on") as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        path = tmp_path / "dev-clients.json"
        yield client, (json.loads(path.read_text()) if path.exists() else {})


async def token(client, role, secrets) -> dict[str, str]:
    r = await client.post("/auth/token", data={"grant_type": "client_credentials"},
                          auth=(f"dev-{role}", secrets[f"dev-{role}"]))
    return {"Authorization": "Bearer " + r.json()["access_token"]}


async def publish(bootstrap: str, events: list[CloudEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(e.topic, value=e.to_json(), key=e.subject.encode(), headers=kafka_headers())
    finally:
        await producer.stop()


async def eventually(check, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = await check() if asyncio.iscoroutinefunction(check) else check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def transfer(verb: str, transfer_id: str, seller: str, buyer: str, n: int = 0) -> CloudEvent:
    return new_event(service="matching", aggregate="transfer", verb=verb, subject=transfer_id, data={
        "transfer_id": transfer_id, "seller_org_id": seller, "buyer_org_id": buyer, "achievement_ids": [],
        "mode": "exclusive_licence", "price": {"amount": 100_000 + n, "currency": "CNY"}, "n": n})


def voucher(verb: str, voucher_id: str, org: str) -> CloudEvent:
    return new_event(service="vouchers", aggregate="voucher", verb=verb, subject=voucher_id, data={
        "voucher_id": voucher_id, "holder_org_id": org, "amount": {"amount": 5_000_00, "currency": "CNY"}})


async def subscribe(client, headers, callback_url, types, secret=SECRET) -> str:
    r = await client.post("/api/v1/subscriptions", headers=headers,
                          json={"callback_url": callback_url, "types": types, "secret": secret})
    assert r.status_code == 201, r.text
    return r.json()["subscription_id"]


async def test_signed_webhooks_in_aggregate_order(tmp_path, kafka_bootstrap, store_url):
    receiver = Receiver()
    async with serve(receiver.app) as hook_base, gateway(tmp_path, kafka_bootstrap, store_url) as (client, secrets):
        gov = await token(client, "government", secrets)
        sub = await subscribe(client, gov, hook_base + "/hook", ["techbridge.matching.transfer.*"])
        a, b = str(uuid.uuid4()), str(uuid.uuid4())
        verbs = ["proposed", "offer-made", "offer-made", "signed", "completed"]
        events = []
        for i, verb in enumerate(verbs):
            events.append(transfer(verb, a, "org-s1", "org-b1", i))
            if i < 3:
                events.append(transfer(verb, b, "org-s2", "org-b2", i))
        events.append(voucher("issued", str(uuid.uuid4()), "org-b1"))  # another type: not subscribed
        await publish(kafka_bootstrap, events)

        await eventually(lambda: len(receiver.of({a, b})) == 8, what="8 transfer deliveries")
        await asyncio.sleep(0.5)  # nothing more arrives (no duplicates, no voucher event)
        got = receiver.of({a, b})
        assert len(got) == 8 and receiver.bad_signatures == 0
        assert [e["data"]["n"] for e in got if e["subject"] == a] == [0, 1, 2, 3, 4]
        assert [e["data"]["n"] for e in got if e["subject"] == b] == [0, 1, 2]
        assert {e["id"] for e in got} == {e.id for e in events[:-1]}
        assert all(e["type"].startswith("techbridge.matching.transfer.") for e in receiver.events)

        r = await client.get(f"/api/v1/subscriptions/{sub}/deliveries?limit=100", headers=gov)
        log = [d for d in r.json()["items"] if d["subject"] in (a, b)]
        assert len(log) == 8 and all(d["status"] == "delivered" and d["attempts"] == 1 for d in log)
        assert all(d["attempt_log"][0]["status_code"] == 204 for d in log)


async def test_retries_after_the_receiver_was_down_then_parks_and_redelivers(tmp_path, kafka_bootstrap):
    receiver = Receiver()
    port = free_port()
    async with gateway(tmp_path, kafka_bootstrap, webhook_max_attempts=4) as (client, secrets):
        gov = await token(client, "government", secrets)
        sub = await subscribe(client, gov, f"http://127.0.0.1:{port}/hook", ["techbridge.vouchers.voucher.*"])
        v = str(uuid.uuid4())
        since = datetime.now(UTC) - timedelta(seconds=1)
        await publish(kafka_bootstrap, [voucher("issued", v, "org-x")])

        async def failed_attempts():
            r = await client.get(f"/api/v1/subscriptions/{sub}/deliveries", headers=gov)
            items = [d for d in r.json()["items"] if d["subject"] == v]
            return items and items[0]["attempts"] >= 2 and items[0]

        first = await eventually(failed_attempts, what="two failed attempts while the receiver is down")
        assert first["status"] == "pending" and first["attempt_log"][0]["status_code"] is None
        async with serve(receiver.app, port=port):
            await eventually(lambda: receiver.of({v}), what="delivery once the receiver is up")
            r = await client.get(f"/api/v1/subscriptions/{sub}/deliveries?status=delivered", headers=gov)
            done = [d for d in r.json()["items"] if d["subject"] == v][0]
            assert done["attempts"] >= 3 and done["attempt_log"][-1]["status_code"] == 204
            assert all(a["status_code"] is None for a in done["attempt_log"][:-1])

            # A receiver that keeps refusing: parked after the attempts run out, then redelivered.
            receiver.fail_with = 500
            w = str(uuid.uuid4())
            await publish(kafka_bootstrap, [voucher("frozen", w, "org-x")])

            async def parked():
                r = await client.get(f"/api/v1/subscriptions/{sub}/deliveries?status=parked", headers=gov)
                return [d for d in r.json()["items"] if d["subject"] == w]

            (p,) = await eventually(parked, what="a parked delivery")
            assert p["attempts"] == 4 and p["last_status_code"] == 500
            receiver.fail_with = None
            r = await client.post(f"/api/v1/subscriptions/{sub}/deliveries/{p['delivery_id']}/redeliver", headers=gov)
            assert r.status_code == 200
            await eventually(lambda: receiver.of({w}), what="redelivery")

            # Replay from a point in time sends both events again.
            before = len(receiver.of({v, w}))
            r = await client.post(f"/api/v1/subscriptions/{sub}/replay", headers=gov,
                                  json={"since": since.isoformat()})
            assert r.json()["deliveries_created"] >= 2
            await eventually(lambda: len(receiver.of({v, w})) == before + 2, what="replayed deliveries")


async def test_subscribers_see_only_what_their_organisation_may_see(tmp_path, kafka_bootstrap):
    enterprise_rx, government_rx = Receiver(), Receiver()
    async with (serve(enterprise_rx.app) as ent_base, serve(government_rx.app) as gov_base,
                gateway(tmp_path, kafka_bootstrap) as (client, secrets)):
        ent = await token(client, "enterprise", secrets)
        gov = await token(client, "government", secrets)
        from techbridge_gateway.service.auth import dev_org_id
        mine = dev_org_id("enterprise")
        await subscribe(client, ent, ent_base + "/hook", ["techbridge.*"])
        await subscribe(client, gov, gov_base + "/hook", ["techbridge.*"])
        own_t, other_t, other_v, own_v = (str(uuid.uuid4()) for _ in range(4))
        achievement = new_event(service="catalog", aggregate="achievement", verb="published",
                                subject=str(uuid.uuid4()), data={"achievement_id": "x", "owner_org_id": "org-uni"})
        events = [
            transfer("signed", own_t, "org-uni", mine),
            transfer("signed", other_t, "org-uni", "org-rival"),
            voucher("issued", other_v, "org-rival"),
            voucher("issued", own_v, mine),
            achievement,
        ]
        await publish(kafka_bootstrap, events)
        subjects = {e.subject for e in events}
        await eventually(lambda: len(government_rx.of(subjects)) == 5, what="government gets all five")
        await eventually(lambda: len(enterprise_rx.of(subjects)) == 3, what="enterprise gets its three")
        await asyncio.sleep(1.0)
        assert {e["subject"] for e in enterprise_rx.of(subjects)} == {own_t, own_v, achievement.subject}
        assert all(
            is_public(e["type"]) or mine in org_ids_in(e["data"]) for e in enterprise_rx.events
        ), "never another organisation's transfer or voucher"

        # The stream applies the same rule.
        async with client.stream("GET", "/api/v1/events/stream?types=techbridge.*", headers={
                **ent, "Last-Event-ID": "0"}) as r:
            seen = await _read_sse(r, lambda got: {own_t, own_v} <= {m["data"]["subject"] for m in got})
        assert other_t not in {m["data"]["subject"] for m in seen}
        assert other_v not in {m["data"]["subject"] for m in seen}


async def _read_sse(response, done, timeout: float = 30.0) -> list[dict]:
    messages, current = [], {}
    async def read():
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                current["id"] = line[4:]
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "" and "data" in current:
                messages.append(dict(current))
                current.clear()
                if done(messages):
                    return
    await asyncio.wait_for(read(), timeout)
    return messages


async def test_event_stream_resumes_after_last_event_id(tmp_path, kafka_bootstrap):
    async with gateway(tmp_path, kafka_bootstrap) as (client, secrets):
        gov = await token(client, "government", secrets)
        t = str(uuid.uuid4())
        first = [transfer("proposed", t, "s", "b", 0), transfer("signed", t, "s", "b", 1),
                 transfer("completed", t, "s", "b", 2)]
        later = [voucher("issued", str(uuid.uuid4()), "b"), voucher("expired", str(uuid.uuid4()), "b")]
        path = "/api/v1/events/stream?types=techbridge.matching.transfer.*,techbridge.vouchers.voucher.*"
        async with client.stream("GET", path, headers=gov) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            await publish(kafka_bootstrap, first)
            got = await _read_sse(r, lambda m: len([x for x in m if x["data"]["subject"] == t]) == 3)
        mine = [m for m in got if m["data"]["subject"] == t]
        assert [m["data"]["data"]["n"] for m in mine] == [0, 1, 2]
        assert mine[0]["event"] == "techbridge.matching.transfer.proposed.v1"
        last_id = mine[-1]["id"]

        await publish(kafka_bootstrap, later)
        wanted = {e.subject for e in later}
        async with client.stream("GET", path, headers={**gov, "Last-Event-ID": last_id}) as r:
            got = await _read_sse(r, lambda m: wanted <= {x["data"]["subject"] for x in m})
        assert t not in {m["data"]["subject"] for m in got}, "nothing before Last-Event-ID is sent again"
        # Two aggregates, so possibly two partitions: each once, in no promised order.
        assert sorted(m["data"]["subject"] for m in got if m["data"]["subject"] in wanted) == sorted(wanted)
        assert all(int(m["id"]) > int(last_id) for m in got)


async def test_callbacks_to_internal_addresses_are_refused_outside_development(tmp_path):
    admin_secret = "bootstrap-admin-secret-0123456789"
    async with gateway(tmp_path, "127.0.0.1:1", environment="test", bootstrap_admin_client_id="root",
                       bootstrap_admin_secret=admin_secret) as (client, secrets):
        assert secrets == {}, "outside development no dev-<role> client exists"
        r = await client.post("/auth/token", data={"grant_type": "client_credentials"}, auth=("dev-admin", "x"))
        assert r.status_code == 401
        r = await client.post("/auth/token", data={"grant_type": "client_credentials"}, auth=("root", admin_secret))
        admin = {"Authorization": "Bearer " + r.json()["access_token"]}
        for url in ("http://127.0.0.1:9/hook", "https://127.0.0.1/hook", "https://10.1.2.3/hook",
                    "https://169.254.169.254/latest", "https://[::1]/hook", "https://user:pw@example.com/",
                    "ftp://example.com/"):
            r = await client.post("/api/v1/subscriptions", headers=admin,
                                  json={"callback_url": url, "types": ["techbridge.*"], "secret": SECRET})
            assert r.status_code == 422, url
            assert r.json()["errors"][0]["field"] == "body.callback_url"


async def test_stream_ends_when_its_token_expires(tmp_path):
    async with gateway(tmp_path, "127.0.0.1:1", token_ttl_s=30, token_leeway_s=0) as (client, secrets):
        import jwt as pyjwt

        from techbridge_gateway.config import Settings
        gov = await token(client, "government", secrets)
        claims = pyjwt.decode(gov["Authorization"].split()[1], options={"verify_signature": False})
        # A token that is valid now and expires in two seconds, signed with the gateway's key.
        claims.update(exp=int(time.time()) + 2)
        key = Settings.model_fields["jwt_secret"].default
        short = {"Authorization": "Bearer " + pyjwt.encode(claims, key, algorithm="HS256")}
        async with client.stream("GET", "/api/v1/events/stream", headers=short) as r:
            assert r.status_code == 200
            lines = []

            async def read():
                async for line in r.aiter_lines():
                    lines.append(line)
            await asyncio.wait_for(read(), 20)
        assert "event: end" in lines and any("token expired" in line for line in lines)
