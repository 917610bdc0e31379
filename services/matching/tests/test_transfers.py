"""Transfer deals over HTTP on a real store: versioned offers, signatures, public notice with
a movable clock, completion, cancellation, idempotent writes, and the registration exports."""

from __future__ import annotations

from datetime import timedelta

import pytest
from matching_helpers import achievement_data, catalog_event, offer_body, who

pytestmark = pytest.mark.timeout(180)

SELLER = who("org-univ", "institution")
BUYER = who("org-sme", "enterprise")
STRANGER = who("org-stranger", "enterprise")
GOVERNMENT = who("org-gov", "government")


async def _achievement(api) -> dict:
    a = achievement_data()
    await api.apply(catalog_event("published", a))
    return a


async def _propose(api, achievement_id: str, key: str | None = None, **offer):
    headers = {"Idempotency-Key": key} if key else {}
    return await api.post("/transfers", BUYER, headers=headers, json={
        "seller_org_id": "org-univ", "buyer_org_id": "org-sme", "achievement_ids": [achievement_id],
        "offer": offer_body(**offer)})


def _types(outbox: list[dict], transfer_id: str) -> list[str]:
    return [e["type"].split(".")[-2] for e in outbox if e["subject"] == transfer_id]


async def test_a_deal_from_proposal_through_notice_to_completion(api, clock):
    a = await _achievement(api)
    r = await _propose(api, a["achievement_id"], key="deal-1")
    assert r.status_code == 201, r.text
    deal = r.json()
    assert deal["status"] == "proposed" and deal["current_offer"]["version"] == 1

    # The seller counters; the first offer stays as it was.
    r = await api.post(f"/transfers/{deal['id']}/offers", SELLER, json={
        "based_on_version": 1, "offer": offer_body(price={"amount": 45_000_000, "currency": "CNY"})})
    assert r.status_code == 201, r.text
    deal = r.json()
    assert deal["status"] == "negotiating"
    assert [o["price"]["amount"] for o in deal["offers"]] == [30_000_000, 45_000_000]
    assert [o["made_by_org_id"] for o in deal["offers"]] == ["org-sme", "org-univ"]

    # Answering an outdated offer or signing a stale version is refused.
    r = await api.post(f"/transfers/{deal['id']}/offers", BUYER, json={"based_on_version": 1, "offer": offer_body()})
    assert r.status_code == 409 and r.json()["code"] == "stale_offer"
    assert (await api.post(f"/transfers/{deal['id']}/sign", BUYER, json={"offer_version": 1})).status_code == 409
    # A stranger can neither see nor sign it.
    assert (await api.post(f"/transfers/{deal['id']}/sign", STRANGER, json={"offer_version": 2})).status_code == 404

    assert (await api.post(f"/transfers/{deal['id']}/sign", SELLER, json={"offer_version": 2})).json()["status"] == "negotiating"
    again = await api.post(f"/transfers/{deal['id']}/sign", SELLER, json={"offer_version": 2})
    assert again.status_code == 409 and again.json()["code"] == "already_signed"
    r = await api.post(f"/transfers/{deal['id']}/sign", BUYER, json={"offer_version": 2})
    deal = r.json()
    assert deal["status"] == "in_notice"
    assert deal["notice_ends_at"].startswith((clock.now + timedelta(days=15)).date().isoformat())

    notices = (await api.get("/notices", STRANGER)).json()
    notice = next(n for n in notices if n["transfer_id"] == deal["id"])
    assert notice["price"] == {"amount": 45_000_000, "currency": "CNY"}
    assert notice["achievement_titles"] == [a["title_zh"]]

    r = await api.post(f"/transfers/{deal['id']}/complete", BUYER)
    assert r.status_code == 409 and "in_notice -> completed" in r.json()["detail"]
    clock.now += timedelta(days=15, minutes=1)
    r = await api.post(f"/transfers/{deal['id']}/complete", BUYER)
    assert r.status_code == 200 and r.json()["status"] == "completed"
    assert (await api.post(f"/transfers/{deal['id']}/cancel", SELLER, json={"reason": "too late"})).status_code == 409

    outbox = await api.outbox()
    assert _types(outbox, deal["id"]) == ["proposed", "offer-made", "signed", "notice-published", "completed"]
    completed = [e for e in outbox if e["subject"] == deal["id"]][-1]
    data = completed["data"]
    assert completed["type"] == "techbridge.matching.transfer.completed.v1"
    assert data["seller_org_id"] == "org-univ" and data["buyer_org_id"] == "org-sme"
    assert data["price"] == {"amount": 45_000_000, "currency": "CNY"} and data["royalty_rate_bp"] == 300
    assert data["mode"] == "exclusive_licence" and data["exclusive"] is True and data["ipc_codes"] == ["H01M 50/449"]
    assert data["trl"] == 6 and data["signed_at"] and data["completed_at"]

    record = (await api.get(f"/transfers/{deal['id']}/registration", BUYER)).json()
    assert record["contract_type"] == "technology licence (exclusive)"
    assert record["price"] == {"amount": 45_000_000, "currency": "CNY"} and record["final_offer_version"] == 2
    pdf = await api.get(f"/transfers/{deal['id']}/registration.pdf", SELLER)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    day = clock.now.date().isoformat()
    csv_text = (await api.get("/exports/transfers.csv", GOVERNMENT, params={"from": day, "to": day})).text
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("transfer_id,completed_at") and len(lines) == 2 and deal["id"] in lines[1]
    assert (await api.get("/exports/transfers.csv", BUYER, params={"from": day, "to": day})).status_code == 403


async def test_idempotency_key_replays_and_refuses_another_body(api):
    a = await _achievement(api)
    first = await _propose(api, a["achievement_id"], key="same-key")
    again = await _propose(api, a["achievement_id"], key="same-key")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.headers.get("Idempotent-Replayed") == "true"
    other = await _propose(api, a["achievement_id"], key="same-key", territory="worldwide")
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "header.Idempotency-Key"
    assert _types(await api.outbox(), first.json()["id"]) == ["proposed"]


async def test_listed_prices_need_no_notice_and_deals_can_be_cancelled(api):
    a = await _achievement(api)
    deal = (await _propose(api, a["achievement_id"], pricing="public_listing")).json()
    await api.post(f"/transfers/{deal['id']}/sign", SELLER, json={"offer_version": 1})
    signed = (await api.post(f"/transfers/{deal['id']}/sign", BUYER, json={"offer_version": 1})).json()
    assert signed["status"] == "signed" and signed["notice_ends_at"] is None

    other = (await _propose(api, a["achievement_id"])).json()
    assert (await api.post(f"/transfers/{other['id']}/complete", BUYER)).status_code == 409
    r = await api.post(f"/transfers/{other['id']}/cancel", SELLER, json={"reason": "sold to another buyer"})
    assert r.status_code == 200 and r.json()["cancelled_reason"] == "sold to another buyer"
    cancelled = [e for e in await api.outbox() if e["subject"] == other["id"]][-1]
    assert cancelled["type"].endswith("transfer.cancelled.v1") and cancelled["data"]["cancelled_reason"] == "sold to another buyer"


BAD_OFFERS = [
    ({"mode": "assignment", "exclusive": False}, "body.exclusive"),
    ({"price": None, "royalty": None}, "body.price"),
    ({"price": {"amount": -5, "currency": "CNY"}}, "body.offer.price.amount"),
    ({"royalty": {"rate_bp": 20_000, "base": "net sales"}}, "body.offer.royalty.rate_bp"),
]


async def test_inconsistent_offers_are_refused(api):
    a = await _achievement(api)
    for change, field in BAD_OFFERS:
        r = await _propose(api, a["achievement_id"], **change)
        assert r.status_code == 422, (field, r.text)
        assert field in [e["field"] for e in r.json()["errors"]], (field, r.json())
    assert not [e for e in await api.outbox() if "transfer" in e["type"]]


async def test_deals_need_the_sellers_own_published_achievements_and_a_party_as_proposer(api):
    a = await _achievement(api)
    r = await api.post("/transfers", STRANGER, json={"seller_org_id": "org-univ", "buyer_org_id": "org-sme",
                                                      "achievement_ids": [a["achievement_id"]], "offer": offer_body()})
    assert r.status_code == 403
    r = await api.post("/transfers", BUYER, json={"seller_org_id": "org-other", "buyer_org_id": "org-sme",
                                                   "achievement_ids": [a["achievement_id"]], "offer": offer_body()})
    assert r.status_code == 422 and r.json()["errors"][0]["message"] == "not owned by the seller"
