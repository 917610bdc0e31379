"""Proposals on a real store: an institution or agency answers a published demand; the
demand's owner accepts or rejects (with a coded reason), the proposer withdraws, and an
accepted proposal becomes a deal. Wrong party: 403; wrong state: 409; events via the outbox."""

from __future__ import annotations

from datetime import timedelta

import pytest
from matching_helpers import achievement_data, catalog_event, demand_body, offer_body, who

pytestmark = pytest.mark.timeout(180)

OWNER = who("org-sme", "enterprise")
UNIVERSITY = who("org-univ", "institution")
OTHER_UNIVERSITY = who("org-univ-2", "institution")
AGENCY = who("org-broker", "agency")
STRANGER = who("org-stranger", "enterprise")

PROPOSAL_EVENT = "techbridge.matching.demand.proposal-{}.v1"


async def _achievement(api, owner: str = "org-univ", **over) -> dict:
    a = achievement_data(owner_org_id=owner, **over)
    await api.apply(catalog_event("published", a))
    return a


async def _submit(api, demand_id: str, who_, ids: list[str], **kw):
    return await api.post(f"/demands/{demand_id}/proposals", who_, json={"achievement_ids": ids, "message": "Ours fits."}, **kw)


def _problem(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    if code:
        assert body["code"] == code, body
    return body


async def _events(api, demand_id: str) -> list[dict]:
    return [e for e in await api.outbox() if e["subject"] == demand_id]


async def test_accepted_proposal_becomes_a_deal_between_owner_and_seller(api):
    a = await _achievement(api)
    demand = await api.published_demand(OWNER)
    path = f"/demands/{demand['id']}/proposals"
    r = await _submit(api, demand["id"], UNIVERSITY, [a["achievement_id"]])
    assert r.status_code == 201, r.text
    proposal = r.json()
    assert proposal["status"] == "submitted" and proposal["proposer_org_id"] == "org-univ"
    pid = proposal["id"]

    # Only the demand's owner decides; the proposer cannot accept its own proposal.
    _problem(await api.post(f"{path}/{pid}/accept", UNIVERSITY), 403)
    # Nobody else even sees it.
    assert (await api.get(f"{path}/{pid}", STRANGER)).status_code == 404
    _problem(await api.post(f"{path}/{pid}/accept", STRANGER), 404)
    # No deal before the owner accepted.
    _problem(await api.post(f"{path}/{pid}/transfer", OWNER, json={"offer": offer_body()}), 409, "invalid_transition")

    r = await api.post(f"{path}/{pid}/accept", OWNER)
    assert r.status_code == 200 and r.json()["status"] == "accepted" and r.json()["decided_at"]
    body = _problem(await api.post(f"{path}/{pid}/accept", OWNER), 409, "invalid_transition")
    assert "accepted -> accepted" in body["detail"]
    # The owner cannot withdraw someone else's proposal.
    _problem(await api.post(f"{path}/{pid}/withdraw", OWNER), 403)

    r = await api.post(f"{path}/{pid}/transfer", OWNER, json={"offer": offer_body()}, headers={"Idempotency-Key": "deal-from-p"})
    assert r.status_code == 201, r.text
    deal = r.json()
    assert (deal["seller_org_id"], deal["buyer_org_id"], deal["proposed_by_org_id"]) == ("org-univ", "org-sme", "org-sme")
    assert deal["achievement_ids"] == [a["achievement_id"]]
    assert deal["demand_id"] == demand["id"] and deal["proposal_id"] == pid and deal["status"] == "proposed"
    again = await api.post(f"{path}/{pid}/transfer", OWNER, json={"offer": offer_body()}, headers={"Idempotency-Key": "deal-from-p"})
    assert again.status_code == 201 and again.json()["id"] == deal["id"] and again.headers.get("Idempotent-Replayed") == "true"

    p = (await api.get(f"{path}/{pid}", UNIVERSITY)).json()
    assert p["status"] == "in_deal" and p["transfer_id"] == deal["id"]
    # A proposal in a deal is settled by the deal.
    _problem(await api.post(f"{path}/{pid}/withdraw", UNIVERSITY), 409, "invalid_transition")
    _problem(await api.post(f"{path}/{pid}/reject", OWNER, json={"reason": "price"}), 409, "invalid_transition")
    _problem(await api.post(f"{path}/{pid}/transfer", OWNER, json={"offer": offer_body()}), 409, "invalid_transition")
    # The seller sees the deal as its own.
    assert (await api.get(f"/transfers/{deal['id']}", UNIVERSITY)).json()["proposal_id"] == pid

    types = [e["type"] for e in await _events(api, demand["id"])]
    assert types == ["techbridge.matching.demand.published.v1", PROPOSAL_EVENT.format("submitted"), PROPOSAL_EVENT.format("accepted")]
    accepted = (await _events(api, demand["id"]))[-1]["data"]
    assert accepted["proposal_id"] == pid and accepted["status"] == "accepted"
    assert accepted["demand_owner_org_id"] == "org-sme" and accepted["proposer_org_id"] == "org-univ"
    assert accepted["achievement_titles"] == [a["title_zh"]] and accepted["achievement_owner_org_ids"] == ["org-univ"]
    proposed = [e for e in await api.outbox() if e["subject"] == deal["id"]]
    assert [e["type"] for e in proposed] == ["techbridge.matching.transfer.proposed.v1"]
    assert proposed[0]["data"]["proposal_id"] == pid and proposed[0]["data"]["demand_id"] == demand["id"]


async def test_rejection_takes_a_coded_reason_and_declines_the_achievements(api):
    a = await _achievement(api)
    demand = await api.published_demand(OWNER)
    path = f"/demands/{demand['id']}/proposals"
    matches = f"/demands/{demand['id']}/matches"
    assert a["achievement_id"] in [i["achievement_id"] for i in (await api.get(matches, OWNER)).json()["items"]]
    pid = (await _submit(api, demand["id"], UNIVERSITY, [a["achievement_id"]])).json()["id"]

    bad = _problem(await api.post(f"{path}/{pid}/reject", OWNER, json={"reason": "vibes"}), 422)
    assert bad["errors"][0]["field"] == "body.reason"
    _problem(await api.post(f"{path}/{pid}/reject", UNIVERSITY, json={"reason": "price"}), 403)

    r = await api.post(f"{path}/{pid}/reject", OWNER, json={"reason": "trl_too_low", "note": "need a pilot line"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["reject_reason"], r.json()["reject_note"]) == ("rejected", "trl_too_low", "need a pilot line")

    # Rejected: nothing moves it any more.
    _problem(await api.post(f"{path}/{pid}/accept", OWNER), 409, "invalid_transition")
    _problem(await api.post(f"{path}/{pid}/withdraw", UNIVERSITY), 409, "invalid_transition")
    _problem(await api.post(f"{path}/{pid}/reject", OWNER, json={"reason": "other"}), 409, "invalid_transition")

    # The reason joins the demand's feedback: the achievement is no longer suggested, and counted.
    declines = (await api.get(f"/demands/{demand['id']}/declines", OWNER)).json()
    assert [(d["achievement_id"], d["reason"]) for d in declines] == [(a["achievement_id"], "trl_too_low")]
    assert a["achievement_id"] not in [i["achievement_id"] for i in (await api.get(matches, OWNER)).json()["items"]]
    assert (await api.get("/reports/declines", OWNER)).json()["trl_too_low"] == 1

    rejected = (await _events(api, demand["id"]))[-1]
    assert rejected["type"] == PROPOSAL_EVENT.format("rejected")
    assert rejected["data"]["reject_reason"] == "trl_too_low" and rejected["data"]["reject_note"] == "need a pilot line"


async def test_the_proposer_withdraws_and_may_propose_again(api, clock):
    a = await _achievement(api)
    demand = await api.published_demand(OWNER)
    path = f"/demands/{demand['id']}/proposals"
    pid = (await _submit(api, demand["id"], UNIVERSITY, [a["achievement_id"]])).json()["id"]
    # One open proposal per achievement and proposer.
    dup = _problem(await _submit(api, demand["id"], UNIVERSITY, [a["achievement_id"]]), 409, "already_proposed")
    assert dup["errors"][0]["field"] == "body.achievement_ids.0"

    r = await api.post(f"{path}/{pid}/withdraw", UNIVERSITY)
    assert r.status_code == 200 and r.json()["status"] == "withdrawn" and r.json()["withdrawn_at"]
    _problem(await api.post(f"{path}/{pid}/accept", OWNER), 409, "invalid_transition")
    _problem(await api.post(f"{path}/{pid}/withdraw", UNIVERSITY), 409, "invalid_transition")
    clock.now += timedelta(minutes=5)
    assert (await _submit(api, demand["id"], UNIVERSITY, [a["achievement_id"]])).status_code == 201

    mine = (await api.get("/proposals", UNIVERSITY)).json()
    assert [p["status"] for p in mine] == ["withdrawn", "submitted"]
    assert (await api.get("/proposals", UNIVERSITY, params={"status": "withdrawn"})).json()[0]["id"] == pid
    assert (await api.get("/proposals", OTHER_UNIVERSITY)).json() == []
    types = [e["type"] for e in await _events(api, demand["id"])][1:]
    assert types == [PROPOSAL_EVENT.format(v) for v in ("submitted", "withdrawn", "submitted")]


async def test_an_agency_proposal_spanning_owners_leads_to_a_deal_with_one_seller(api):
    a = await _achievement(api, "org-univ")
    b = await _achievement(api, "org-univ-2", title_en="Boehmite-coated separator")
    demand = await api.published_demand(OWNER)
    path = f"/demands/{demand['id']}/proposals"
    r = await _submit(api, demand["id"], AGENCY, [a["achievement_id"], b["achievement_id"]])
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert (await api.post(f"{path}/{pid}/accept", OWNER)).status_code == 200

    # Two owners: a deal has one seller, so the buyer must choose.
    body = _problem(await api.post(f"{path}/{pid}/transfer", OWNER, json={"offer": offer_body()}), 422)
    assert body["errors"][0]["field"] == "body.achievement_ids"
    body = _problem(await api.post(f"{path}/{pid}/transfer", OWNER, json={"achievement_ids": ["elsewhere"], "offer": offer_body()}), 422)
    assert body["errors"][0]["field"] == "body.achievement_ids.0"
    # The broker that made the proposal is not a party to the deal.
    _problem(await api.post(f"{path}/{pid}/transfer", AGENCY, json={"achievement_ids": [b["achievement_id"]], "offer": offer_body()}), 403)

    # The chosen achievement's owner may propose it too.
    r = await api.post(f"{path}/{pid}/transfer", OTHER_UNIVERSITY, json={"achievement_ids": [b["achievement_id"]], "offer": offer_body()})
    assert r.status_code == 201, r.text
    assert (r.json()["seller_org_id"], r.json()["buyer_org_id"], r.json()["achievement_ids"]) == ("org-univ-2", "org-sme", [b["achievement_id"]])
    submitted = (await _events(api, demand["id"]))[1]["data"]
    assert submitted["achievement_owner_org_ids"] == ["org-univ", "org-univ-2"]


async def test_proposals_need_a_published_demand_and_a_party_of_their_own(api):
    a = await _achievement(api)
    draft = (await api.post("/demands", OWNER, json=demand_body())).json()
    # A draft is invisible to the proposer.
    assert (await _submit(api, draft["id"], UNIVERSITY, [a["achievement_id"]])).status_code == 404
    demand = await api.published_demand(OWNER)
    _problem(await _submit(api, demand["id"], UNIVERSITY, [a["achievement_id"], a["achievement_id"]]), 422)
    pid = (await _submit(api, demand["id"], UNIVERSITY, [a["achievement_id"]])).json()["id"]
    # Once the demand is closed nothing new is accepted there.
    assert (await api.post(f"/demands/{demand['id']}/close", OWNER, json={"reason": "budget cut"})).status_code == 200
    body = _problem(await api.post(f"/demands/{demand['id']}/proposals/{pid}/accept", OWNER), 409, "invalid_transition")
    assert "closed" in body["detail"]
    _problem(await _submit(api, demand["id"], AGENCY, [a["achievement_id"]]), 409, "invalid_transition")
    # But the proposer can still take it back.
    assert (await api.post(f"/demands/{demand['id']}/proposals/{pid}/withdraw", UNIVERSITY)).json()["status"] == "withdrawn"
