"""The service on a real store (SQLite and PostgreSQL) and a real Kafka broker.

Catalog and matching are played by publishing their contract events to Kafka; the service
builds its read models from them, values through its HTTP API, and publishes its own event.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from techbridge_shared.envelope import CloudEvent, kafka_headers, new_event
from techbridge_shared.identity import Identity, identity_headers
from techbridge_valuation.config import Settings
from techbridge_valuation.events.published import VALUATION_COMPLETED, VALUATION_TOPIC
from techbridge_valuation.main import create_app

from valuation_helpers import TEXTBOOK_REVENUES

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]
API = "/api/v1/valuation"


def achievement_event(aid: str, owner: str, subclass: str, version: int = 1, trl: int = 6) -> CloudEvent:
    return new_event(service="catalog", aggregate="achievement", verb="published", subject=aid, data={
        "achievement_id": aid, "version": version, "owner_org_id": owner,
        "title_zh": "固态电解质膜", "title_en": "Solid electrolyte membrane", "abstract_zh": "", "abstract_en": "",
        "keywords": ["电池"], "fields": [f"field-{subclass}"], "ipc_codes": [f"{subclass} 10/052"],
        "ip_type": "invention_patent", "trl": trl, "transfer_modes": ["assignment"],
        "asking_price": {"amount": 500_000_000, "currency": "CNY"}, "negotiable": True, "region": "Shanghai/Pudong",
        "ip_records": [{"number": "CN202010000001.X", "kind": "invention", "filing_date": "2020-01-01",
                        "grant_date": "2022-03-01", "legal_status": "valid", "expiry_date": None}],
        "published_at": "2026-10-01T00:00:00Z",
    })


def transfer_event(verb: str, tid: str, aid: str, seller: str, buyer: str, subclass: str, price: int | None,
                   trl: int = 6) -> CloudEvent:
    return new_event(service="matching", aggregate="transfer", verb=verb, subject=tid, data={
        "transfer_id": tid, "achievement_ids": [aid], "seller_org_id": seller, "buyer_org_id": buyer,
        "mode": "assignment", "exclusive": True, "territory": "CN", "term_months": 120,
        "price": None if price is None else {"amount": price, "currency": "CNY"}, "royalty_rate_bp": None,
        "ipc_codes": [f"{subclass} 4/13"], "fields": [], "trl": trl,
        "signed_at": "2026-09-01T00:00:00Z", "completed_at": "2026-10-15T00:00:00Z" if verb == "completed" else None,
        "cancelled_reason": None,
    })


async def publish(bootstrap: str, events: list[CloudEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(e.topic, value=e.to_json(), key=e.subject.encode(), headers=kafka_headers())
    finally:
        await producer.stop()


async def read_events(bootstrap: str, topic: str, want: set[str], timeout: float = 60) -> dict[str, CloudEvent]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    found: dict[str, CloudEvent] = {}
    try:
        deadline = time.monotonic() + timeout
        while not want <= set(found) and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=500)).values():
                for r in recs:
                    e = CloudEvent.from_json(r.value)
                    if e.subject in want:
                        found[e.subject] = e
    finally:
        await consumer.stop()
    return found


class Client:
    def __init__(self, http: httpx.AsyncClient, secret: str):
        self.http, self.secret = http, secret

    def _h(self, who: Identity, method: str, path: str) -> dict:
        return identity_headers(who, self.secret, method, path)

    async def post(self, who: Identity, path: str, body: dict | None = None) -> httpx.Response:
        return await self.http.post(path, json=body, headers=self._h(who, "POST", path))

    async def get(self, who: Identity, path: str, **params) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self._h(who, "GET", path))

    async def value_when_known(self, who: Identity, body: dict, timeout: float = 60,
                               waiting_for: tuple[int, ...] = (404,)) -> httpx.Response:
        """POST until the facts have arrived through Kafka (404 for the achievement, 403 for a deal)."""
        deadline = time.monotonic() + timeout
        while True:
            r = await self.post(who, f"{API}/valuations", body)
            if r.status_code not in waiting_for or time.monotonic() > deadline:
                return r
            await asyncio.sleep(0.3)


@pytest.fixture
async def service(store_url, kafka_bootstrap):
    settings = Settings(
        database_url=store_url, kafka_bootstrap_servers=kafka_bootstrap, environment="test",
        consumer_group_prefix=f"valuation-test-{uuid.uuid4().hex[:8]}", outbox_poll_interval_ms=50,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://valuation") as http:
            deadline = time.monotonic() + 60
            while (await http.get("/health/ready")).status_code != 200:
                assert time.monotonic() < deadline, (await http.get("/health/ready")).text
                await asyncio.sleep(0.2)
            yield Client(http, settings.internal_auth_secret)


async def test_valuation_from_events_to_report_and_completed_event(service: Client, kafka_bootstrap):
    run = uuid.uuid4().hex[:8]
    aid, owner, buyer, stranger = f"ach-{run}", f"org-owner-{run}", f"org-buyer-{run}", f"org-other-{run}"
    subclass = "H01M"
    comp_ids = [f"tr-comp-{run}-{i}" for i in range(3)]
    await publish(kafka_bootstrap, [
        achievement_event(aid, owner, subclass),
        *[transfer_event("completed", t, f"ach-sold-{run}-{i}", f"org-s-{run}", f"org-b{i}-{run}", subclass,
                         price=(i + 1) * 100_000_000) for i, t in enumerate(comp_ids)],
        transfer_event("signed", f"tr-deal-{run}", aid, owner, buyer, subclass, price=None),
    ])
    as_owner = Identity(sub="u-owner", org=owner, roles=frozenset({"institution"}))
    as_buyer = Identity(sub="u-buyer", org=buyer, roles=frozenset({"enterprise"}))
    as_stranger = Identity(sub="u-x", org=stranger, roles=frozenset({"enterprise"}))
    as_gov = Identity(sub="u-gov", org=f"org-gov-{run}", roles=frozenset({"government"}))

    textbook = {
        "achievement_id": aid, "valuation_date": "2026-11-26",
        "income": {"revenues": TEXTBOOK_REVENUES, "royalty_rate": 0.05, "discount_rate": 0.12, "tax_rate": 0.25,
                   "tax_amortisation_benefit": True},
        "simulation": {"seed": 11, "paths": 2000},
    }
    r = await service.value_when_known(as_owner, {**textbook, "methods": ["income"]})
    assert r.status_code == 201, r.text
    v = r.json()
    assert v["requester_role"] == "owner"
    assert v["result"]["methods"][0]["value"] == 19_416_376  # CNY 194,163.76
    assert v["mid"] == {"amount": 19_416_376, "currency": "CNY"}
    assert v["result"]["subject"]["trl"] == 6 and v["result"]["subject"]["protection_ends_on"] == "2040-01-01"

    # With the market approach: the completed deals in the same IPC subclass are listed.
    uncertain = {**textbook, "income": {**textbook["income"],
                                        "royalty_rate": {"dist": "triangular", "low": 0.03, "mode": 0.05, "high": 0.08}}}
    uncertain["market"] = {"max_comparables": 100}
    deadline = time.monotonic() + 60
    while True:  # the transfers arrive through their own consumer group, maybe after the achievement
        r = await service.post(as_owner, f"{API}/valuations", uncertain)
        assert r.status_code == 201, r.text
        full = r.json()
        listed = {c["transfer_id"] for c in full["result"]["comparables"]}
        if set(comp_ids) <= listed:
            break
        assert time.monotonic() < deadline, f"comparables never arrived: {listed}"
        await asyncio.sleep(0.3)
    assert "market" in full["methods"] and full["low"]["amount"] < full["high"]["amount"]

    # The same request and seed give the same numbers.
    again = (await service.post(as_owner, f"{API}/valuations", uncertain)).json()
    assert again["valuation_id"] != full["valuation_id"]
    assert again["result"]["simulation"] == full["result"]["simulation"]
    assert again["result"]["conclusion"] == full["result"]["conclusion"]

    # A buyer in a signed deal may value; a stranger may not; the owner does not see the buyer's analysis.
    rb = await service.value_when_known(as_buyer, {**textbook, "methods": ["income"]}, waiting_for=(403, 404))
    assert rb.status_code == 201, rb.text
    assert rb.json()["requester_role"] == "buyer"
    bid = rb.json()["valuation_id"]
    rs = await service.post(as_stranger, f"{API}/valuations", textbook)
    assert rs.status_code == 403 and rs.headers["content-type"].startswith("application/problem+json")
    assert (await service.get(as_owner, f"{API}/valuations/{bid}")).status_code == 404
    assert (await service.get(as_stranger, f"{API}/valuations/{full['valuation_id']}")).status_code == 404
    assert (await service.get(as_gov, f"{API}/valuations/{bid}")).status_code == 200
    owner_list = (await service.get(as_owner, f"{API}/valuations", achievement_id=aid, limit=2)).json()
    assert len(owner_list["items"]) == 2 and owner_list["next_cursor"]
    rest = (await service.get(as_owner, f"{API}/valuations", achievement_id=aid, cursor=owner_list["next_cursor"])).json()
    seen = [i["valuation_id"] for i in owner_list["items"] + rest["items"]]
    assert len(seen) >= 3 and bid not in seen and full["valuation_id"] in seen
    gov_list = (await service.get(as_gov, f"{API}/valuations", achievement_id=aid, limit=100)).json()
    assert bid in [i["valuation_id"] for i in gov_list["items"]]

    # Reports people can read, and a reproduction from the recorded inputs.
    page = await service.get(as_owner, f"{API}/valuations/{full['valuation_id']}/report.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.count("<svg ") == 3 and comp_ids[0] in page.text
    doc = await service.get(as_owner, f"{API}/valuations/{full['valuation_id']}/report.pdf")
    assert doc.status_code == 200 and doc.headers["content-type"] == "application/pdf" and doc.content[:5] == b"%PDF-"
    assert (await service.get(as_stranger, f"{API}/valuations/{full['valuation_id']}/report.pdf")).status_code == 404
    js = await service.get(as_owner, f"{API}/valuations/{full['valuation_id']}/report.json")
    assert js.status_code == 200 and js.json()["result"]["conclusion"] == full["result"]["conclusion"]
    rep = (await service.post(as_owner, f"{API}/valuations/{full['valuation_id']}/reproduce")).json()
    assert rep["identical"] is True, rep

    # The completed events went out through the outbox.
    events = await read_events(kafka_bootstrap, VALUATION_TOPIC, {full["valuation_id"], bid})
    e = events[full["valuation_id"]]
    assert e.type == VALUATION_COMPLETED
    assert e.data["achievement_id"] == aid and e.data["requested_by_org_id"] == owner
    assert e.data["low"] == full["low"] and e.data["mid"] == full["mid"] and e.data["high"] == full["high"]
    assert e.data["report_path"] == f"{API}/valuations/{full['valuation_id']}/report.html"
    assert events[bid].data["requester_role"] == "buyer"

    # A cancelled deal ends the buyer's right to request (it keeps seeing what it already has).
    await publish(kafka_bootstrap, [transfer_event("cancelled", f"tr-deal-{run}", aid, owner, buyer, subclass, None)])
    deadline = time.monotonic() + 60
    while (r := await service.post(as_buyer, f"{API}/valuations", {**textbook, "methods": ["income"]})).status_code == 201:
        assert time.monotonic() < deadline, "the cancellation never arrived"
        await asyncio.sleep(0.3)
    assert r.status_code == 403
    assert (await service.get(as_buyer, f"{API}/valuations/{bid}")).status_code == 200


async def test_bad_assumptions_get_a_422_naming_the_field(service: Client, kafka_bootstrap):
    run = uuid.uuid4().hex[:8]
    aid, owner = f"ach-{run}", f"org-owner-{run}"
    await publish(kafka_bootstrap, [achievement_event(aid, owner, "G01N")])
    me = Identity(sub="u", org=owner, roles=frozenset({"institution"}))
    base = {"achievement_id": aid, "methods": ["income"], "valuation_date": "2026-11-26",
            "income": {"revenues": TEXTBOOK_REVENUES, "royalty_rate": 0.05, "discount_rate": 0.12}}

    r = await service.value_when_known(me, {**base, "income": {**base["income"], "discount_rate": 3.0}})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["body.income.discount_rate"]

    r = await service.post(me, f"{API}/valuations", {**base, "income": {**base["income"], "revenues": [100, -5]}})
    assert r.status_code == 422
    assert any(e["field"] == "body.income.revenues.1" for e in r.json()["errors"])

    r = await service.post(me, f"{API}/valuations", {**base, "income": {**base["income"], "life_years": 20}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.income.life_years"

    r = await service.post(me, f"{API}/valuations", {**base, "income": {
        **base["income"], "life_years": 20, "life_beyond_patent_term": True}})
    assert r.status_code == 201 and any("beyond the patent term" in w for w in r.json()["result"]["warnings"])

    assert (await service.post(me, f"{API}/valuations", {**base, "achievement_id": "nope"})).status_code == 404
    assert (await service.http.post(f"{API}/valuations", json=base)).status_code == 401


async def test_newer_achievement_versions_win_and_older_ones_do_not_regress(service: Client, kafka_bootstrap):
    run = uuid.uuid4().hex[:8]
    aid, owner = f"ach-{run}", f"org-owner-{run}"
    v1, v2 = achievement_event(aid, owner, "C08K", version=1, trl=3), achievement_event(aid, owner, "C08K", version=2, trl=7)
    late_v1 = new_event(service="catalog", aggregate="achievement", verb="updated", subject=aid, data=v1.data)
    # Same key, same partition: once the expiry (sent last) shows, the late v1 has been applied too.
    expired = new_event(service="catalog", aggregate="achievement", verb="expired", subject=aid,
                        data={"achievement_id": aid, "owner_org_id": owner})
    await publish(kafka_bootstrap, [v1, v2, late_v1, expired])
    me = Identity(sub="u", org=owner, roles=frozenset({"institution"}))
    body = {"achievement_id": aid, "methods": ["cost"], "cost": {"items": [{"label": "staff", "amount": 1_000_000}]},
            "simulation": {"paths": 1000}}
    deadline = time.monotonic() + 60
    while True:
        r = await service.value_when_known(me, body)
        assert r.status_code == 201, r.text
        if any("expired" in w for w in r.json()["result"]["warnings"]):
            break
        assert time.monotonic() < deadline, "the expiry never arrived"
        await asyncio.sleep(0.3)
    subject = r.json()["result"]["subject"]
    assert subject["version"] == 2 and subject["trl"] == 7


async def test_defaults_table_is_published_with_sources(service: Client):
    anyone = Identity(sub="u", org="org-x", roles=frozenset({"enterprise"}))
    r = await service.get(anyone, f"{API}/defaults")
    assert r.status_code == 200
    t = r.json()
    assert t["version"] == "2026.1" and t["current"] is True
    assert all(ind["royalty_rate"]["source"] for ind in t["industries"])
    assert t["discount_rate_by_trl"]["1"]["mode"] > t["discount_rate_by_trl"]["9"]["mode"]
    assert (await service.get(anyone, f"{API}/defaults/1999.1")).status_code == 404
