"""Bulk payout per agency, on SQLite and PostgreSQL: one idempotent operation pays every settled,
unpaid redemption of the agency that matches the filters, each by its own journal entry, and
leaves a batch record and events an auditor can reconcile with the agency's statement."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from techbridge_vouchers.service_layer import common

pytestmark = pytest.mark.postgres


async def _settled(api, agency, voucher, amount: int, *, settle: bool = True) -> dict:
    red = await api.ok("POST", "/redemptions", agency, json=api.redemption_body(voucher, amount, 2 * amount),
                       status=201)
    if settle:
        red = await api.ok("POST", f"/redemptions/{red['id']}/settle", api.gov)
    return red


async def _events(api, type_suffix: str) -> list[dict]:
    outbox = api.runtime.spec.outbox
    async with api.runtime.db.engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.type, outbox.c.payload).order_by(outbox.c.seq))).all()
    return [json.loads(r.payload) for r in rows if r.type == f"techbridge.vouchers.{type_suffix}.v1"]


async def test_bulk_payout_pays_every_settled_unpaid_redemption_of_the_agency_once(api):
    p = await api.open_programme()
    pid = p["id"]
    await api.register_org("ent-1")
    await api.register_org("ent-2")
    a = await api.approved_agency(pid, "agency-a")
    b = await api.approved_agency(pid, "agency-b")
    v1 = await api.issued_voucher(pid, "ent-1", 100_000)
    v2 = await api.issued_voucher(pid, "ent-2", 100_000)
    s1 = await _settled(api, a, v1, 10_000)
    s2 = await _settled(api, a, v2, 7_000)
    s3 = await _settled(api, a, v1, 3_000)
    already = await _settled(api, a, v2, 1_000)
    await api.ok("POST", f"/redemptions/{already['id']}/payout", api.gov, json={"reference": "EARLIER"})
    reserved = await _settled(api, a, v1, 500, settle=False)
    other_agency = await _settled(api, b, v2, 2_000)
    # A claw-back before payment lowers what is paid; one clawed back in full is paid nothing.
    await api.ok("POST", f"/redemptions/{s2['id']}/clawback", api.gov,
                 json={"amount": {"amount": 2_000, "currency": "CNY"}, "reason": "overstated"})
    await api.ok("POST", f"/redemptions/{s3['id']}/clawback", api.gov,
                 json={"amount": {"amount": 3_000, "currency": "CNY"}, "reason": "not delivered"})

    path = "/agencies/agency-a/payouts"
    body = {"reference": "PAY-2026-11", "note": "November"}
    r = await api.call("POST", path, a, json=body, key="k1")
    assert r.status_code == 403  # only government pays out
    r = await api.call("POST", path, api.gov, json=body)
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_required"

    key = str(uuid.uuid4())
    first = await api.call("POST", path, api.gov, json=body, key=key)
    assert first.status_code == 201, first.text
    batch = first.json()
    assert batch["count"] == 3 and batch["reference"] == "PAY-2026-11"
    assert batch["totals"] == [{"programme_id": pid, "amount": {"amount": 15_000, "currency": "CNY"}, "count": 3}]
    items = {i["redemption_id"]: i for i in batch["items"]}
    assert set(items) == {s1["id"], s2["id"], s3["id"]}
    assert items[s1["id"]]["amount"]["amount"] == 10_000 and items[s2["id"]]["amount"]["amount"] == 5_000
    assert items[s3["id"]]["amount"]["amount"] == 0 and items[s3["id"]]["entry_id"] is None
    assert items[s1["id"]]["entry_id"] and len(items[s1["id"]]["entry_hash"]) == 64

    # Same key and body: the same answer, no second effect; another body: 422.
    again = await api.call("POST", path, api.gov, json=body, key=key)
    assert again.status_code == 201 and again.json() == batch
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = await api.call("POST", path, api.gov, json={**body, "reference": "PAY-X"}, key=key)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    # Nothing left to pay: refused, nothing changes.
    r = await api.call("POST", path, api.gov, json=body, key=str(uuid.uuid4()))
    assert r.status_code == 409 and r.json()["code"] == "nothing_to_pay"

    for rid in (s1["id"], s2["id"], s3["id"]):
        got = await api.ok("GET", f"/redemptions/{rid}", api.gov, key=None)
        assert got["state"] == "paid" and got["payout_batch_id"] == batch["id"] and got["payout_ref"] == "PAY-2026-11"
    assert (await api.ok("GET", f"/redemptions/{already['id']}", api.gov, key=None))["payout_batch_id"] is None
    assert (await api.ok("GET", f"/redemptions/{reserved['id']}", api.gov, key=None))["state"] == "reserved"
    assert (await api.ok("GET", f"/redemptions/{other_agency['id']}", api.gov, key=None))["state"] == "settled"

    # Reconciliation: the agency's paid balance is the earlier payout plus this batch, and each
    # payout entry of the statement is one of the batch's items.
    statement = await api.ok("GET", "/agencies/agency-a/statement", a, key=None)
    assert statement["balances"][f"agency:{pid}:agency-a:paid"] == 1_000 + 15_000
    assert statement["balances"][f"agency:{pid}:agency-a:payable"] == 0
    payout_entries = {line["entry_id"] for line in statement["items"] if line["kind"] == "payout"}
    assert {i["entry_id"] for i in batch["items"] if i["entry_id"]} <= payout_entries
    assert len(payout_entries) == 3  # the earlier one and the batch's two that moved money

    # The batch as the agency and an auditor see it; another agency does not.
    got = await api.ok("GET", f"/payouts/{batch['id']}", a, key=None)
    assert got == batch
    assert (await api.call("GET", f"/payouts/{batch['id']}", b)).status_code == 404
    listed = await api.ok("GET", path, api.gov, key=None)
    assert [x["id"] for x in listed["items"]] == [batch["id"]] and listed["items"][0]["items"] is None
    assert (await api.call("GET", path, b)).status_code == 404

    # Events: one redemption.paid per item, naming the batch, and one payout-batch.paid.
    paid_events = [e for e in await _events(api, "redemption.paid") if e["data"]["payout_batch_id"] == batch["id"]]
    assert sorted(e["subject"] for e in paid_events) == sorted(items)
    batch_events = await _events(api, "payout-batch.paid")
    assert len(batch_events) == 1
    data = batch_events[0]["data"]
    assert batch_events[0]["subject"] == batch["id"] and data["agency_org_id"] == "agency-a"
    assert {i["redemption_id"]: i["entry_hash"] for i in data["items"]} == {k: v["entry_hash"] for k, v in items.items()}
    assert sum(i["amount"]["amount"] for i in data["items"]) == data["totals"][0]["amount"]["amount"] == 15_000

    check = await api.check()
    assert check["ok"], check["problems"]


async def test_bulk_payout_filters_by_programme_and_settlement_time(api, monkeypatch):
    await api.register_org("ent-f")
    p1 = (await api.open_programme())["id"]
    p2 = (await api.open_programme(name="second"))["id"]
    a = await api.approved_agency(p1, "agency-f")
    await api.approved_agency(p2, "agency-f")
    v1 = await api.issued_voucher(p1, "ent-f", 100_000)
    v2 = await api.issued_voucher(p2, "ent-f", 100_000)
    t0 = datetime.now(UTC)
    monkeypatch.setattr(common, "clock", lambda: t0 - timedelta(days=10))
    old = await _settled(api, a, v1, 1_000)
    monkeypatch.setattr(common, "clock", lambda: t0 - timedelta(days=1))
    recent = await _settled(api, a, v1, 2_000)
    in_p2 = await _settled(api, a, v2, 4_000)
    monkeypatch.setattr(common, "clock", lambda: t0)

    r = await api.call("POST", "/agencies/agency-f/payouts", api.gov, key=str(uuid.uuid4()),
                       json={"reference": "P", "settled_before": (t0 + timedelta(days=1)).isoformat()})
    assert r.status_code == 422  # a cut-off in the future is not a statement period
    r = await api.call("POST", "/agencies/agency-f/payouts", api.gov, key=str(uuid.uuid4()),
                       json={"reference": "P", "programme_id": "nope"})
    assert r.status_code == 404

    cut = (t0 - timedelta(days=5)).isoformat()
    b1 = await api.ok("POST", "/agencies/agency-f/payouts", api.gov, status=201,
                      json={"reference": "OCT", "programme_id": p1, "settled_before": cut})
    assert [i["redemption_id"] for i in b1["items"]] == [old["id"]]
    b2 = await api.ok("POST", "/agencies/agency-f/payouts", api.gov, status=201,
                      json={"reference": "NOV-P1", "programme_id": p1})
    assert [i["redemption_id"] for i in b2["items"]] == [recent["id"]]
    b3 = await api.ok("POST", "/agencies/agency-f/payouts", api.gov, status=201, json={"reference": "NOV"})
    assert [i["redemption_id"] for i in b3["items"]] == [in_p2["id"]]
    assert b3["totals"] == [{"programme_id": p2, "amount": {"amount": 4_000, "currency": "CNY"}, "count": 1}]
    listed = await api.ok("GET", "/agencies/agency-f/payouts", a, key=None)
    assert {x["id"] for x in listed["items"]} == {b1["id"], b2["id"], b3["id"]}
    check = await api.check()
    assert check["ok"], check["problems"]


async def test_bulk_payout_racing_single_payouts_and_settlements_pays_each_redemption_once(api):
    p = await api.open_programme()
    pid = p["id"]
    a = await api.approved_agency(pid, "agency-r")
    vouchers = []
    for i in range(4):
        await api.register_org(f"ent-r{i}")
        vouchers.append(await api.issued_voucher(pid, f"ent-r{i}", 100_000))
    settled = [await _settled(api, a, vouchers[i % 4], 100 + i) for i in range(12)]
    pending = [await _settled(api, a, vouchers[i % 4], 1_000 + i, settle=False) for i in range(4)]

    async def single(red):
        return await api.call("POST", f"/redemptions/{red['id']}/payout", api.gov, key=str(uuid.uuid4()),
                              json={"reference": "SINGLE"})

    async def settle(red):
        return await api.call("POST", f"/redemptions/{red['id']}/settle", api.gov, key=str(uuid.uuid4()))

    async def bulk(n):
        return await api.call("POST", "/agencies/agency-r/payouts", api.gov, key=f"bulk-{n}",
                              json={"reference": f"BULK-{n}"})

    results = await asyncio.gather(*[single(r) for r in settled[:6]], *[settle(r) for r in pending],
                                   bulk(1), bulk(2))
    assert all(r.status_code in (200, 201, 409) for r in results), [r.text for r in results if r.status_code >= 500]
    batches = [r.json() for r in results[-2:] if r.status_code == 201]
    assert batches, [r.text for r in results[-2:]]
    in_batches = [i["redemption_id"] for b in batches for i in b["items"]]
    singles = {r.json()["id"] for r in results[:6] if r.status_code == 200}
    assert len(in_batches) == len(set(in_batches))  # no redemption in two batches
    assert not (set(in_batches) & singles)  # nor paid singly and in a batch
    # Every settled one is now paid, by exactly one of the two ways; pending ones settled
    # meanwhile are either in a batch or still waiting, never lost.
    for red in settled:
        got = await api.ok("GET", f"/redemptions/{red['id']}", api.gov, key=None)
        assert got["state"] == "paid"
        assert (got["payout_batch_id"] is not None) == (red["id"] in in_batches)
    statement = await api.ok("GET", "/agencies/agency-r/statement", api.gov, key=None)
    balances = statement["balances"]
    total_settled = sum(100 + i for i in range(12)) + sum(1_000 + i for i in range(4))
    assert balances[f"agency:{pid}:agency-r:paid"] + balances[f"agency:{pid}:agency-r:payable"] == total_settled
    paid_by_batches = sum(i["amount"]["amount"] for b in batches for i in b["items"])
    paid_singly = sum(100 + i for i in range(6) if settled[i]["id"] in singles)
    assert balances[f"agency:{pid}:agency-r:paid"] == paid_by_batches + paid_singly
    check = await api.check()
    assert check["ok"], check["problems"]
