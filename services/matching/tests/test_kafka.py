"""Through the real broker: recorded catalog events in, matching's own events out.

The catalog is a separate service; these are CloudEvents built to the cross-service contract
and produced to its topic, consumed by matching's subscription as they would be in production.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from matching_helpers import (Api, achievement_data, catalog_event, matching_settings, offer_body, produce, read_events,
                              start_group_at_the_end, who)

from techbridge_matching.main import create_app

pytestmark = [pytest.mark.timeout(240), pytest.mark.kafka]

ENTERPRISE = who("org-sme", "enterprise")
UNIVERSITY = who("org-univ", "institution")


@pytest.fixture
async def live_api(pg_url_factory, kafka_bootstrap, tmp_path, clock):
    settings = matching_settings(pg_url_factory("matching"), kafka_bootstrap, tmp_path)
    await start_group_at_the_end(kafka_bootstrap, settings.achievement_consumer_group)
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://matching") as client:
            yield Api(client, settings.internal_auth_secret, app)


async def _until(check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.25)


async def test_catalog_events_drive_the_read_model_and_saved_matching(live_api, kafka_bootstrap):
    api = live_api
    demand = await api.published_demand(ENTERPRISE)
    target = achievement_data()
    await produce(kafka_bootstrap, [catalog_event("published", target)])

    async def listed():
        r = await api.get(f"/demands/{demand['id']}/matches", ENTERPRISE)
        return target["achievement_id"] in [i["achievement_id"] for i in r.json()["items"]]

    await _until(listed)
    found = await read_events(kafka_bootstrap, "techbridge.matching.match.v1", {demand["id"]}, want=1)
    assert found and found[0]["type"] == "techbridge.matching.match.found.v1"
    assert found[0]["_key"] == demand["id"] and found[0]["data"]["achievement_id"] == target["achievement_id"]
    published = await read_events(kafka_bootstrap, "techbridge.matching.demand.v1", {demand["id"]}, want=1)
    assert published[0]["type"] == "techbridge.matching.demand.published.v1"
    assert published[0]["data"]["budget_max"] == {"amount": 80_000_000, "currency": "CNY"}

    # The same event delivered again and then a withdrawal: applied once, then gone.
    await produce(kafka_bootstrap, [catalog_event("published", target),
                                    catalog_event("withdrawn", {"achievement_id": target["achievement_id"], "owner_org_id": "org-univ"})])

    async def gone():
        return not await listed()

    await _until(gone)
    assert len(await read_events(kafka_bootstrap, "techbridge.matching.match.v1", {demand["id"]}, want=2, timeout=3)) == 1


async def test_deal_events_reach_the_transfer_topic_keyed_by_deal(live_api, kafka_bootstrap):
    api = live_api
    a = achievement_data()
    await api.apply(catalog_event("published", a))
    r = await api.post("/transfers", ENTERPRISE, json={"seller_org_id": "org-univ", "buyer_org_id": "org-sme",
                                                      "achievement_ids": [a["achievement_id"]], "offer": offer_body()})
    deal = r.json()
    await api.post(f"/transfers/{deal['id']}/cancel", UNIVERSITY, json={"reason": "owner withdrew"})
    events = await read_events(kafka_bootstrap, "techbridge.matching.transfer.v1", {deal["id"]}, want=2)
    assert [e["type"] for e in events] == ["techbridge.matching.transfer.proposed.v1", "techbridge.matching.transfer.cancelled.v1"]
    assert all(e["_key"] == deal["id"] for e in events)
    assert events[0]["data"]["achievement_titles"] == [a["title_zh"]]


async def test_proposal_events_reach_the_demand_topic_keyed_by_demand(live_api, kafka_bootstrap):
    api = live_api
    a = achievement_data()
    await api.apply(catalog_event("published", a))
    demand = await api.published_demand(ENTERPRISE)
    r = await api.post(f"/demands/{demand['id']}/proposals", UNIVERSITY, json={"achievement_ids": [a["achievement_id"]], "message": "fits"})
    pid = r.json()["id"]
    await api.post(f"/demands/{demand['id']}/proposals/{pid}/reject", ENTERPRISE, json={"reason": "timing"})
    events = await read_events(kafka_bootstrap, "techbridge.matching.demand.v1", {demand["id"]}, want=3)
    assert [e["type"] for e in events] == ["techbridge.matching.demand.published.v1",
                                           "techbridge.matching.demand.proposal-submitted.v1",
                                           "techbridge.matching.demand.proposal-rejected.v1"]
    assert all(e["_key"] == demand["id"] for e in events)
    assert events[2]["data"]["proposal_id"] == pid and events[2]["data"]["reject_reason"] == "timing"
