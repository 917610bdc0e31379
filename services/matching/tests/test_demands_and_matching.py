"""Demands, matches with explanations, feedback and saved matching, on a real store.

Catalog events are recorded CloudEvents built to the cross-service contract, applied through
the service's own subscription handlers (the Kafka path is covered in test_kafka.py).
"""

from __future__ import annotations

import pytest
from matching_helpers import OTHER_ACHIEVEMENTS, achievement_data, catalog_event, demand_body, who

pytestmark = pytest.mark.timeout(180)

ENTERPRISE = who("org-sme", "enterprise")
OTHER_ENTERPRISE = who("org-other", "enterprise")
UNIVERSITY = who("org-univ", "institution")


async def _seed(api, **over) -> dict:
    target = achievement_data(**over)
    await api.apply(catalog_event("published", target))
    for other in OTHER_ACHIEVEMENTS:
        await api.apply(catalog_event("published", achievement_data(**other)))
    return target


async def test_demand_lifecycle_and_who_sees_what(api):
    r = await api.post("/demands", ENTERPRISE, json=demand_body())
    assert r.status_code == 201, r.text
    demand = r.json()
    assert demand["status"] == "draft" and demand["owner_org_id"] == "org-sme"
    assert demand["ipc_codes"] == ["H01M 50/40"]

    # Another enterprise cannot see or publish someone else's draft.
    assert (await api.get(f"/demands/{demand['id']}", OTHER_ENTERPRISE)).status_code == 404
    assert (await api.post(f"/demands/{demand['id']}/publish", OTHER_ENTERPRISE)).status_code == 404

    r = await api.put(f"/demands/{demand['id']}", ENTERPRISE, json=demand_body(title="Heat-proof separators"))
    assert r.status_code == 200 and r.json()["title"] == "Heat-proof separators"
    r = await api.post(f"/demands/{demand['id']}/publish", ENTERPRISE)
    assert r.status_code == 200 and r.json()["status"] == "published"
    assert (await api.get(f"/demands/{demand['id']}", OTHER_ENTERPRISE)).status_code == 200

    # Published demands can no longer be edited or published again.
    r = await api.put(f"/demands/{demand['id']}", ENTERPRISE, json=demand_body())
    assert r.status_code == 409
    r = await api.post(f"/demands/{demand['id']}/publish", ENTERPRISE)
    assert r.status_code == 409 and "published -> published" in r.json()["detail"]

    r = await api.post(f"/demands/{demand['id']}/fulfil", ENTERPRISE, json={"reason": "licensed a separator"})
    assert r.status_code == 200 and r.json()["status"] == "fulfilled"
    types = [e["type"] for e in await api.outbox() if e["subject"] == demand["id"]]
    assert types == ["techbridge.matching.demand.published.v1", "techbridge.matching.demand.fulfilled.v1"]

    page = (await api.get("/demands", ENTERPRISE, params={"mine": "true"})).json()
    assert [d["id"] for d in page["items"]] == [demand["id"]]


BAD_DEMANDS = [
    (demand_body(budget_max={"amount": 10**16, "currency": "CNY"}), "body.budget_max.amount"),
    (demand_body(budget_min={"amount": 9_000, "currency": "CNY"}, budget_max={"amount": 1_000, "currency": "CNY"}), "body.budget_max.amount"),
    (demand_body(ipc_codes=["not-a-code"]), "body.ipc_codes.0"),
    (demand_body(title="   "), "body.title"),
    (demand_body(problem="x" * 20_001), "body.problem"),
    (demand_body(min_trl=12), "body.min_trl"),
    (demand_body(transfer_modes=["barter"]), "body.transfer_modes.0"),
    (demand_body(deadline="2001-01-01"), "body.deadline"),
]


async def test_bad_demands_are_refused_naming_the_field(api):
    for body, field in BAD_DEMANDS:
        r = await api.post("/demands", ENTERPRISE, json=body)
        assert r.status_code == 422, (field, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert field in [e["field"] for e in r.json()["errors"]], (field, r.json())
    assert (await api.get("/demands", ENTERPRISE, params={"mine": "true"})).json()["items"] == []


async def test_a_retried_demand_post_with_the_same_key_makes_one_draft(api):
    first = await api.post("/demands", ENTERPRISE, json=demand_body(), headers={"Idempotency-Key": "d-1"})
    again = await api.post("/demands", ENTERPRISE, json=demand_body(), headers={"Idempotency-Key": "d-1"})
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    assert len((await api.get("/demands", ENTERPRISE, params={"mine": "true"})).json()["items"]) == 1


async def test_only_enterprises_post_demands(api):
    assert (await api.post("/demands", UNIVERSITY, json=demand_body())).status_code == 403
    assert (await api.post("/demands", None, json=demand_body())).status_code == 401


async def test_matches_rank_the_fitting_achievement_first_and_explain_why(api):
    target = await _seed(api)
    demand = await api.published_demand(ENTERPRISE)
    r = await api.get(f"/demands/{demand['id']}/matches", ENTERPRISE)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items[0]["achievement_id"] == target["achievement_id"]
    why = items[0]["explanation"]
    assert "separators" in why["matched_terms"] and "lithium" in why["matched_terms"]
    assert why["shared_ipc"] == ["H01M 50"]
    met = {c["name"] for c in why["constraints_met"]}
    assert {"trl", "transfer_mode", "budget", "region", "ip_status"} <= met
    assert why["semantic_similarity"] > 0.4
    assert all(term in why["summary"] for term in why["matched_terms"][:6])
    # The rice variety and the robot software are offered in no wanted mode: filtered out.
    titles = {i["title"] for i in items}
    assert "Lodging-resistant rice variety" not in titles and "Vision positioning software for industrial robots" not in titles
    # Someone else's demand's matches are not for others to read.
    assert (await api.get(f"/demands/{demand['id']}/matches", OTHER_ENTERPRISE)).status_code == 404


async def test_hard_constraints_filter_and_soft_ones_only_demote(api):
    low_trl = await _seed(api, trl=3)
    far = achievement_data(region="Guangdong/Shenzhen", title_en="Ceramic separator coating for lithium cells")
    await api.apply(catalog_event("published", far))
    demand = await api.published_demand(ENTERPRISE)
    items = (await api.get(f"/demands/{demand['id']}/matches", ENTERPRISE)).json()["items"]
    ids = [i["achievement_id"] for i in items]
    assert low_trl["achievement_id"] not in ids  # TRL 3 < 5 is a hard miss
    hit = next(i for i in items if i["achievement_id"] == far["achievement_id"])
    missed = hit["explanation"]["constraints_missed"]
    assert [m["name"] for m in missed] == ["region"] and missed[0]["hard"] is False


async def test_withdrawn_and_updated_achievements_follow_the_catalog(api):
    target = await _seed(api)
    demand = await api.published_demand(ENTERPRISE)
    ids = lambda r: [i["achievement_id"] for i in r.json()["items"]]  # noqa: E731
    assert target["achievement_id"] in ids(await api.get(f"/demands/{demand['id']}/matches", ENTERPRISE))

    await api.apply(catalog_event("withdrawn", {"achievement_id": target["achievement_id"], "owner_org_id": "org-univ", "reason": "licensed elsewhere"}))
    assert target["achievement_id"] not in ids(await api.get(f"/demands/{demand['id']}/matches", ENTERPRISE))

    # A stale published event (older version) does not bring it back; a new version does.
    await api.apply(catalog_event("published", target))
    assert target["achievement_id"] not in ids(await api.get(f"/demands/{demand['id']}/matches", ENTERPRISE))
    await api.apply(catalog_event("updated", {**target, "version": 2, "trl": 7}))
    r = await api.get(f"/demands/{demand['id']}/matches", ENTERPRISE)
    top = r.json()["items"][0]
    assert top["achievement_id"] == target["achievement_id"] and top["version"] == 2 and top["trl"] == 7


async def test_declines_are_stored_reported_and_change_the_ranking(api):
    target = await _seed(api, asking_price={"amount": 60_000_000, "currency": "CNY"})
    pricier = achievement_data(title_en="Ceramic-coated separator with boehmite layer", asking_price={"amount": 70_000_000, "currency": "CNY"})
    await api.apply(catalog_event("published", pricier))
    demand = await api.published_demand(ENTERPRISE)
    before = (await api.get(f"/demands/{demand['id']}/matches", ENTERPRISE)).json()["items"]
    score_before = next(i["score"] for i in before if i["achievement_id"] == pricier["achievement_id"])

    r = await api.post(f"/demands/{demand['id']}/declines", ENTERPRISE,
                       json={"achievement_id": target["achievement_id"], "reason": "price", "note": "too dear"})
    assert r.status_code == 201, r.text
    bad = await api.post(f"/demands/{demand['id']}/declines", ENTERPRISE, json={"achievement_id": target["achievement_id"], "reason": "vibes"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.reason"

    after = (await api.get(f"/demands/{demand['id']}/matches", ENTERPRISE)).json()["items"]
    assert target["achievement_id"] not in [i["achievement_id"] for i in after]
    hit = next(i for i in after if i["achievement_id"] == pricier["achievement_id"])
    assert hit["score"] < score_before
    assert any("price" in a for a in hit["explanation"]["adjustments"])

    report = (await api.get("/reports/declines", ENTERPRISE)).json()
    assert report["price"] == 1 and report["region"] == 0
    listed = (await api.get(f"/demands/{demand['id']}/declines", ENTERPRISE)).json()
    assert [(d["achievement_id"], d["reason"]) for d in listed] == [(target["achievement_id"], "price")]


async def test_a_new_achievement_that_fits_a_published_demand_is_reported_once(api):
    demand = await api.published_demand(ENTERPRISE)
    target = achievement_data()
    await api.apply(catalog_event("published", target))
    await api.apply(catalog_event("published", achievement_data(**OTHER_ACHIEVEMENTS[0])))
    def found_for_demand(outbox):
        return [e for e in outbox if e["type"] == "techbridge.matching.match.found.v1" and e["subject"] == demand["id"]]

    found = found_for_demand(await api.outbox())
    assert len(found) == 1
    data = found[0]["data"]
    assert found[0]["subject"] == demand["id"]
    assert data["achievement_id"] == target["achievement_id"] and data["demand_owner_org_id"] == "org-sme"
    assert data["score"] >= 0.5 and "separators" in data["explanation"]["matched_terms"]
    # The same achievement updated again is not reported twice.
    await api.apply(catalog_event("updated", {**target, "version": 2}))
    assert len(found_for_demand(await api.outbox())) == 1


async def test_achievement_owner_sees_fitting_demands(api):
    target = await _seed(api)
    demand = await api.published_demand(ENTERPRISE)
    await api.published_demand(OTHER_ENTERPRISE, title="Rice that survives typhoons", problem="Our paddies lodge in typhoon season; we need a rice variety with strong stems.",
                               ipc_codes=["A01H 6/46"], keywords=["rice"], transfer_modes=[])
    r = await api.get(f"/achievements/{target['achievement_id']}/matches", UNIVERSITY)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items[0]["demand_id"] == demand["id"]
    assert items[0]["explanation"]["shared_ipc"] == ["H01M 50"]
    assert (await api.get(f"/achievements/{target['achievement_id']}/matches", OTHER_ENTERPRISE)).status_code == 404


async def test_proposals_answer_published_demands_with_real_achievements(api):
    target = await _seed(api)
    demand = await api.published_demand(ENTERPRISE)
    r = await api.post(f"/demands/{demand['id']}/proposals", UNIVERSITY,
                       json={"achievement_ids": [target["achievement_id"]], "message": "Our separator fits."})
    assert r.status_code == 201, r.text
    r = await api.post(f"/demands/{demand['id']}/proposals", UNIVERSITY, json={"achievement_ids": ["nope"], "message": "x"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.achievement_ids.0"
    other_univ = who("org-other-univ", "institution")
    r = await api.post(f"/demands/{demand['id']}/proposals", other_univ,
                       json={"achievement_ids": [target["achievement_id"]], "message": "Not ours, but"})
    assert r.status_code == 403
    listed = (await api.get(f"/demands/{demand['id']}/proposals", ENTERPRISE)).json()
    assert [p["proposer_org_id"] for p in listed] == ["org-univ"]
    assert (await api.get(f"/demands/{demand['id']}/proposals", other_univ)).json() == []


async def test_demands_past_their_deadline_expire(api, clock):
    from datetime import timedelta

    demand = await api.published_demand(ENTERPRISE, deadline=(clock.now.date() + timedelta(days=3)).isoformat())
    admin = who(None, "admin")
    assert (await api.post("/maintenance/expire-demands", admin)).json() == {"expired": 0}
    clock.now += timedelta(days=5)
    assert (await api.post("/maintenance/expire-demands", admin)).json() == {"expired": 1}
    assert (await api.get(f"/demands/{demand['id']}", ENTERPRISE)).json()["status"] == "expired"
    assert "techbridge.matching.demand.expired.v1" in [e["type"] for e in await api.outbox() if e["subject"] == demand["id"]]
