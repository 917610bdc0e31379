"""Stop the Kafka broker in the middle of the journey and start it again: writes keep working
(they land in each service's outbox), and once the broker is back the outboxes drain and every
event reaches its consumers; nothing is lost."""

from __future__ import annotations

import time

import pytest
from e2e_platform import wait_for

pytestmark = pytest.mark.timeout(420)

C, M = "/api/v1/catalog", "/api/v1/matching"


def achievement(i: int) -> dict:
    return {
        "title_zh": f"停机测试成果 {i} 一种固态电解质", "title_en": f"Outage-test achievement {i}: solid electrolyte",
        "abstract_zh": "用于停机测试。", "abstract_en": f"Sulfide solid electrolyte number {i}, listed while Kafka was down.",
        "keywords": ["solid electrolyte"], "fields": ["energy"], "ipc_codes": ["H01M 10/0562"], "ip_type": "know_how",
        "trl": 5, "transfer_modes": ["non_exclusive_licence"], "negotiable": True, "region": "Shanghai",
        "ip_records": [], "inventors": [], "co_owners": []}


def test_broker_outage_mid_journey_loses_no_event(fault_platform, fault_broker, enrol):
    uni = enrol("university", ["institution"])
    gov = enrol("government", ["government"])
    ent = enrol("enterprise", ["enterprise"])
    before = uni.ok("POST", f"{C}/achievements", json=achievement(0), status=201)["achievement_id"]

    fault_broker.stop()
    down_at = time.monotonic()
    try:
        # While the broker is down: listings are written, submitted and published; a demand is posted.
        ids = [before]
        for i in range(1, 6):
            ids.append(uni.ok("POST", f"{C}/achievements", json=achievement(i), status=201)["achievement_id"])
        for aid in ids:
            assert uni.ok("POST", f"{C}/achievements/{aid}/submit")["status"] == "submitted"
            assert gov.ok("POST", f"{C}/achievements/{aid}/publish")["status"] == "published"
        demand = ent.ok("POST", f"{M}/demands", status=201, json={
            "title": "Solid electrolytes for our cells", "problem": "We need a sulfide solid electrolyte for "
            "all-solid-state lithium batteries.", "ipc_codes": ["H01M 10/0562"], "min_trl": 4})
        assert ent.ok("POST", f"{M}/demands/{demand['id']}/publish")["status"] == "published"
        time.sleep(max(0.0, 8 - (time.monotonic() - down_at)))
    finally:
        fault_broker.start()
    print(f"\nKafka down for {time.monotonic() - down_at:.1f}s; {len(ids)} listings published meanwhile")

    # The catalog's outbox drains to the broker and matching's read model catches up.
    def indexed() -> bool:
        return all(uni.get(f"{M}/achievements/{aid}/matches", params={"limit": 5}).status_code == 200 for aid in ids)

    wait_for("matching indexing every listing published during the outage", indexed, timeout=120, interval=1)
    matches = ent.ok("GET", f"{M}/demands/{demand['id']}/matches", params={"limit": 50})["items"]
    assert set(ids) <= {m["achievement_id"] for m in matches}
    # Every service is ready again.
    for name, proc in fault_platform.processes.items():
        wait_for(f"{name} ready after the outage",
                 lambda p=proc: __import__("httpx").get(p.url + "/health/ready", timeout=5).status_code == 200,
                 timeout=60, interval=1)
