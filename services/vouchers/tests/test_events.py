"""Events on a real Kafka broker: catalog organisations feed eligibility; matching's transfer
completion settles linked reservations exactly once, even when delivered twice; cancellation
releases them; and our own facts reach the topics."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import func, select

from techbridge_shared.envelope import kafka_headers, new_event

from techbridge_vouchers.store.tables import inbox, journal

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _publish(bootstrap: str, *events) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(e.topic, value=e.to_json(), key=e.subject.encode(), headers=kafka_headers())
    finally:
        await producer.stop()


async def _eventually(probe, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.2)


def _transfer(verb: str, transfer_id: str, buyer: str, **extra):
    return new_event(service="matching", aggregate="transfer", verb=verb, subject=transfer_id, data={
        "transfer_id": transfer_id, "achievement_ids": ["a-1"], "seller_org_id": "uni-1", "buyer_org_id": buyer,
        "mode": "technical_service", "exclusive": False, "territory": "CN", "term_months": 12,
        "price": {"amount": 200_000, "currency": "CNY"}, "royalty_rate_bp": None, "ipc_codes": [], "fields": [],
        "trl": 6, "signed_at": None, "completed_at": None, "cancelled_reason": None, **extra})


async def test_transfer_completion_settles_linked_reservations_exactly_once(store_url, kafka_bootstrap, api_factory):
    async with api_factory(store_url) as api:
        # The enterprise is known only through the catalog's event.
        org = f"ent-{uuid.uuid4().hex[:6]}"
        registered = new_event(service="catalog", aggregate="organisation", verb="registered", subject=org, data={
            "organisation_id": org, "name": "Acme", "name_en": "Acme", "kind": "enterprise",
            "region": "Shanghai/Minhang", "credit_code": "X", "headcount": 40,
            "annual_revenue": {"amount": 5_000_000_00, "currency": "CNY"}, "registered_on": "2019-05-01"})
        await _publish(kafka_bootstrap, registered)

        async def known():
            async with api.runtime.unit_of_work() as uow:
                from techbridge_vouchers.store.repository import Repository
                return await Repository(uow.session).organisation(org)
        await _eventually(known)

        p = await api.open_programme()
        agency = await api.approved_agency(p["id"], "agency-k")
        v = await api.issued_voucher(p["id"], org, 100_000)
        done_id, cancelled_id = f"T-{uuid.uuid4().hex[:8]}", f"T-{uuid.uuid4().hex[:8]}"
        r1 = await api.ok("POST", "/redemptions", agency, status=201,
                          json=api.redemption_body(v, 30_000, 100_000, transfer_id=done_id))
        r2 = await api.ok("POST", "/redemptions", agency, status=201,
                          json=api.redemption_body(v, 20_000, 100_000, transfer_id=cancelled_id))

        completed = _transfer("completed", done_id, org, completed_at="2026-06-01T00:00:00Z")
        # The same event twice (a redelivery), and the fact sent again under a new id (a publisher retry).
        again = completed.model_copy(update={"id": str(uuid.uuid4())})
        cancelled = _transfer("cancelled", cancelled_id, org, cancelled_reason="buyer withdrew")
        await _publish(kafka_bootstrap, completed, completed, again, cancelled)

        async def inbox_rows():
            async with api.runtime.db.engine.connect() as conn:
                n = (await conn.execute(select(func.count()).select_from(inbox).where(
                    inbox.c.consumer_group.like("%.transfers"),
                    inbox.c.event_id.in_([completed.id, again.id, cancelled.id])))).scalar()
            return n == 3  # completed, its re-sent twin, cancelled; the duplicate left no row
        await _eventually(inbox_rows)

        s1 = await api.ok("GET", f"/redemptions/{r1['id']}", api.gov, key=None)
        s2 = await api.ok("GET", f"/redemptions/{r2['id']}", api.gov, key=None)
        assert s1["state"] == "settled" and s1["settled_by"] == f"transfer:{done_id}"
        assert s2["state"] == "voided" and "cancelled" in s2["voided_reason"]
        async with api.runtime.db.engine.connect() as conn:
            settles = (await conn.execute(select(func.count()).select_from(journal).where(
                journal.c.redemption_id == r1["id"], journal.c.kind == "settle"))).scalar()
        assert settles == 1
        types = await api.outbox_types()
        assert types.count("techbridge.vouchers.redemption.settled.v1") == 1
        voucher = await api.ok("GET", f"/vouchers/{v['id']}", api.gov, key=None)
        assert voucher["available"]["amount"] == 70_000 and voucher["reserved"]["amount"] == 0
        check = await api.check()
        assert check["ok"], check["problems"]

        # Our own facts reach Kafka as CloudEvents a government system can read without our code.
        consumer = AIOKafkaConsumer("techbridge.vouchers.redemption.v1", bootstrap_servers=kafka_bootstrap,
                                    group_id=f"gov-audit-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest")
        await consumer.start()
        try:
            seen = {}
            deadline = time.monotonic() + 60
            while r1["id"] not in seen or seen[r1["id"]].get("settled") is None:
                assert time.monotonic() < deadline, "settled event not published"
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for rec in records:
                        body = json.loads(rec.value)
                        verb = body["type"].split(".")[3]
                        seen.setdefault(body["subject"], {})[verb] = body
            settled = seen[r1["id"]]["settled"]
            assert settled["data"]["amount"] == {"amount": 30_000, "currency": "CNY"}
            assert settled["data"]["transfer_id"] == done_id and len(settled["data"]["entry_hash"]) == 64
        finally:
            await consumer.stop()


async def test_a_reservation_linked_to_a_completed_transfer_settles_at_once(store_url, api_factory):
    async with api_factory(store_url) as api:
        from techbridge_vouchers.events.consumed import on_transfer
        p = await api.open_programme()
        await api.register_org("ent-x")
        agency = await api.approved_agency(p["id"], "agency-x")
        v = await api.issued_voucher(p["id"], "ent-x", 10_000)
        async with api.runtime.unit_of_work() as uow:
            await on_transfer(uow, _transfer("completed", "T-done", "ent-x"))
            await on_transfer(uow, _transfer("cancelled", "T-gone", "ent-x"))
            await on_transfer(uow, _transfer("signed", "T-other", "ent-other"))
            await uow.commit()
        r = await api.ok("POST", "/redemptions", agency, status=201,
                         json=api.redemption_body(v, 1_000, 10_000, transfer_id="T-done"))
        assert r["state"] == "settled"
        for tid, code in (("T-gone", "transfer_cancelled"), ("T-other", "transfer_of_another_buyer")):
            resp = await api.call("POST", "/redemptions", agency, key=str(uuid.uuid4()),
                                  json=api.redemption_body(v, 1_000, 10_000, transfer_id=tid))
            assert resp.status_code == 409 and resp.json()["code"] == code
