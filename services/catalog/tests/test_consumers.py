"""What the catalog learns from matching and valuation, fed with recorded events on a real broker.

Matching's transfer facts decide who may read the confidential details (parties of a signed
deal) and move the achievement: signed -> under negotiation, completed -> transferred (announced),
cancelled -> back on the market. Valuation's range shows on the achievement.
"""

from __future__ import annotations

import uuid

import pytest
from catalog_helpers import who
from catalog_helpers import eventually, produce, read_events

from techbridge_shared.envelope import CloudEvent

pytestmark = pytest.mark.timeout(180)

A = "/api/v1/catalog/achievements"
TRANSFER_TOPIC = "techbridge.matching.transfer.v1"
VALUATION_TOPIC = "techbridge.valuation.valuation.v1"


def transfer_event(verb: str, transfer_id: str, achievement_ids: list[str], seller: str, buyer: str, **extra) -> CloudEvent:
    """As matching publishes it (recorded shape from the cross-service contract)."""
    data = {
        "transfer_id": transfer_id, "achievement_ids": achievement_ids, "seller_org_id": seller,
        "buyer_org_id": buyer, "mode": "exclusive_licence", "exclusive": True, "territory": "CN",
        "term_months": 60, "price": {"amount": 30_000_000, "currency": "CNY"}, "royalty_rate_bp": 300,
        "ipc_codes": ["H01M 50/449"], "fields": ["新能源"], "trl": 6, "signed_at": "2026-05-01T08:00:00Z",
        "completed_at": None, "cancelled_reason": None, **extra,
    }
    return CloudEvent(source="/techbridge/matching", type=f"techbridge.matching.transfer.{verb}.v1",
                      subject=transfer_id, data=data)


async def status_of(api, aid, identity):
    return (await api.get(f"{A}/{aid}", identity)).json()


async def test_signed_deal_opens_confidential_details_to_its_parties_and_completion_transfers(api, kafka_bootstrap):
    org = await api.register_org()
    seller = org["organisation_id"]
    buyer, stranger = f"buyer-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    a = await api.published(seller)
    aid = a["achievement_id"]
    as_buyer, as_stranger = who(buyer, "enterprise"), who(stranger, "enterprise")
    before = await status_of(api, aid, as_buyer)
    assert before["confidential_visible"] is False and before["confidential_details"] is None

    tid = str(uuid.uuid4())
    await produce(kafka_bootstrap, TRANSFER_TOPIC, [transfer_event("signed", tid, [aid], seller, buyer)])

    async def signed():
        body = await status_of(api, aid, as_buyer)
        return body if body["status"] == "under_negotiation" else None

    body = await eventually(signed)
    assert body["confidential_visible"] is True and body["confidential_details"].startswith("Coating recipe")
    other = await status_of(api, aid, as_stranger)
    assert other["confidential_details"] is None
    # Still findable while negotiating (the default search shows what can still be acquired).
    hits = (await api.get(A, as_stranger, params={"q": "锂电池隔膜"})).json()["items"]
    assert aid in [h["achievement_id"] for h in hits]
    r = await api.act(aid, "withdraw", who(seller, "institution"))
    assert r.status_code == 409 and "signed transfer" in r.json()["detail"]

    completed = transfer_event("completed", tid, [aid], seller, buyer, completed_at="2026-06-01T08:00:00Z")
    await produce(kafka_bootstrap, TRANSFER_TOPIC, [completed, completed])  # delivered twice

    async def transferred():
        body = await status_of(api, aid, as_stranger)
        return body if body["status"] == "transferred" else None

    body = await eventually(transferred)
    assert body["transferred_at"]
    events = await read_events(kafka_bootstrap, "techbridge.catalog.achievement.v1", {aid}, want=3)
    kinds = [e["type"].split(".")[-2] for e in events]
    assert kinds == ["submitted", "published", "transferred"]
    assert events[2]["data"]["buyer_org_id"] == buyer and events[2]["data"]["transfer_id"] == tid
    history = (await api.get(f"{A}/{aid}/history", who(seller, "institution"))).json()["items"]
    assert [h["action"] for h in history][-2:] == ["deal_signed", "deal_completed"]
    assert history[-1]["actor"] == "system:matching"


async def test_cancelled_deal_puts_it_back_on_the_market_and_closes_the_details(api, kafka_bootstrap):
    org = await api.register_org()
    seller = org["organisation_id"]
    buyer = f"buyer-{uuid.uuid4().hex[:6]}"
    aid = (await api.published(seller))["achievement_id"]
    tid = str(uuid.uuid4())
    await produce(kafka_bootstrap, TRANSFER_TOPIC, [
        transfer_event("signed", tid, [aid], seller, buyer),
        transfer_event("cancelled", tid, [aid], seller, buyer, cancelled_reason="buyer withdrew"),
    ])

    async def back():
        body = await status_of(api, aid, who(buyer, "enterprise"))
        return body if body["status"] == "published" and "cancelled" in (body["status_reason"] or "") else None

    body = await eventually(back)
    assert body["confidential_details"] is None


async def test_a_deal_from_someone_who_does_not_own_the_achievement_changes_nothing(api, kafka_bootstrap):
    org = await api.register_org()
    seller = org["organisation_id"]
    aid = (await api.published(seller))["achievement_id"]
    control = (await api.published(seller))["achievement_id"]
    impostor, buyer = "org-impostor", f"buyer-{uuid.uuid4().hex[:6]}"
    tid = str(uuid.uuid4())
    # Same key, so the same partition: once the genuine event is applied, the forged one was too.
    await produce(kafka_bootstrap, TRANSFER_TOPIC, [
        transfer_event("signed", tid, [aid], impostor, buyer),
        transfer_event("signed", tid, [control], seller, buyer),
    ])

    async def control_signed():
        body = await status_of(api, control, who(buyer, "enterprise"))
        return body if body["status"] == "under_negotiation" else None

    await eventually(control_signed)
    body = await status_of(api, aid, who(buyer, "enterprise"))
    assert body["status"] == "published" and body["confidential_details"] is None


def valuation_event(aid: str, requested_by: str, valuation_id: str, mid: int = 40_000_000,
                    completed_at: str = "2026-04-01T00:00:00Z") -> CloudEvent:
    return CloudEvent(
        source="/techbridge/valuation", type="techbridge.valuation.valuation.completed.v1", subject=valuation_id,
        data={"valuation_id": valuation_id, "achievement_id": aid, "requested_by_org_id": requested_by,
              "low": {"amount": mid // 2, "currency": "CNY"}, "mid": {"amount": mid, "currency": "CNY"},
              "high": {"amount": mid * 2, "currency": "CNY"}, "methods": ["income", "market"],
              "completed_at": completed_at},
    )


async def test_valuation_range_shows_the_owners_latest_and_a_requester_its_own(api, kafka_bootstrap):
    org = await api.register_org()
    owner = org["organisation_id"]
    aid = (await api.published(owner))["achievement_id"]
    buyer = f"buyer-{uuid.uuid4().hex[:6]}"
    newer, older, buyers = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    await produce(kafka_bootstrap, VALUATION_TOPIC, [
        valuation_event(aid, owner, newer, mid=40_000_000, completed_at="2026-04-02T00:00:00Z"),
        valuation_event(aid, owner, older, mid=10_000_000, completed_at="2026-03-01T00:00:00Z"),  # late, older
        valuation_event(aid, buyer, buyers, mid=25_000_000),
    ])

    async def buyer_sees_own():
        body = await status_of(api, aid, who(buyer, "enterprise"))
        return body if body["valuation"] and body["valuation"]["valuation_id"] == buyers else None

    await eventually(buyer_sees_own)
    public = await status_of(api, aid, who("anyone", "partner"))
    assert public["valuation"]["valuation_id"] == newer
    assert public["valuation"]["low"] == {"amount": 20_000_000, "currency": "CNY"}
    assert public["valuation"]["high"] == {"amount": 80_000_000, "currency": "CNY"}
    assert public["valuation"]["methods"] == ["income", "market"]
