"""Concurrent redemptions against one voucher never overspend, on SQLite and PostgreSQL; one
Idempotency-Key used by many parallel requests has one effect and one answer."""

from __future__ import annotations

import asyncio
import uuid

import pytest

pytestmark = pytest.mark.postgres


async def _setup(api, face: int) -> tuple[dict, object]:
    p = await api.open_programme()
    await api.register_org("ent-c")
    agency = await api.approved_agency(p["id"], "agency-c")
    v = await api.issued_voucher(p["id"], "ent-c", face)
    return v, agency


async def test_200_concurrent_redemptions_of_one_unit_against_50(api):
    v, agency = await _setup(api, 50)
    vid = v["id"]
    stop = asyncio.Event()
    observed: list[int] = []

    async def watch():
        # Balances read while the storm runs: never below zero, never above the face value.
        while not stop.is_set():
            seen = await api.ok("GET", f"/vouchers/{vid}", api.gov, key=None)
            observed.append(seen["available"]["amount"])
            assert 0 <= seen["available"]["amount"] <= 50
            assert seen["available"]["amount"] + seen["reserved"]["amount"] == 50
            await asyncio.sleep(0.01)

    async def redeem(i: int):
        body = api.redemption_body(v, 1, 2, invoice_ref=f"INV-{i}")
        return await api.call("POST", "/redemptions", agency, json=body, key=f"k-{i}")

    watcher = asyncio.create_task(watch())
    responses = await asyncio.gather(*(redeem(i) for i in range(200)))
    stop.set()
    await watcher
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 50, statuses
    assert statuses.count(409) == 150, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"insufficient_balance"}
    final = await api.ok("GET", f"/vouchers/{vid}", api.gov, key=None)
    assert final["available"]["amount"] == 0 and final["reserved"]["amount"] == 50
    reserved = await api.ok("GET", "/redemptions", api.gov, key=None, params={"voucher_id": vid, "limit": 100})
    assert len(reserved["items"]) == 50
    check = await api.check()
    assert check["ok"], check["problems"]
    assert observed  # the watcher did look while requests ran


async def test_100_parallel_requests_with_one_key_have_one_effect(api):
    v, agency = await _setup(api, 10_000)
    body = api.redemption_body(v, 100, 1_000)
    key = str(uuid.uuid4())
    responses = await asyncio.gather(*(api.call("POST", "/redemptions", agency, json=body, key=key)
                                       for _ in range(100)))
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses if r.status_code != 201][:3]
    bodies = {r.text for r in responses}
    assert len(bodies) == 1
    final = await api.ok("GET", f"/vouchers/{v['id']}", api.gov, key=None)
    assert final["available"]["amount"] == 9_900 and final["reserved"]["amount"] == 100
    # The same key from another client is that client's own key: a separate request.
    other = api.agency("agency-c").model_copy(update={"client_id": "another-client"})
    r = await api.call("POST", "/redemptions", other, json=body, key=key)
    assert r.status_code == 201 and r.headers.get("Idempotent-Replayed") is None
    assert r.json()["id"] != responses[0].json()["id"]
    final = await api.ok("GET", f"/vouchers/{v['id']}", api.gov, key=None)
    assert final["available"]["amount"] == 9_800
    assert (await api.check())["ok"]
