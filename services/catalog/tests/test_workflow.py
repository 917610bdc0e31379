"""The review workflow through the API, on SQLite and PostgreSQL, with its events on Kafka."""

from __future__ import annotations

import pytest
from catalog_helpers import who
from catalog_helpers import read_events

pytestmark = pytest.mark.timeout(120)

A = "/api/v1/catalog/achievements"
ACH_TOPIC = "techbridge.catalog.achievement.v1"


async def test_draft_to_published_announces_each_step(api, kafka_bootstrap):
    org = await api.register_org()
    owner = who(org["organisation_id"], "institution")
    created = await api.create(org["organisation_id"])
    aid = created["achievement_id"]
    assert created["status"] == "draft" and created["region"] == "Shanghai/Yangpu"

    r = await api.act(aid, "submit", owner)
    assert r.status_code == 200 and r.json()["status"] == "submitted"
    r = await api.act(aid, "return", who(None, "government"), reason="请补充专利授权证书")
    assert r.json()["status"] == "returned" and r.json()["status_reason"] == "请补充专利授权证书"
    r = await api.get(f"{A}/{aid}", owner)
    r = await api.patch(f"{A}/{aid}", owner, json={"trl": 7}, headers={"If-Match": r.headers["ETag"]})
    assert r.status_code == 200, r.text
    assert (await api.act(aid, "submit", owner)).status_code == 200
    r = await api.act(aid, "publish", who(None, "admin"))
    body = r.json()
    assert body["status"] == "published" and body["trl"] == 7
    assert body["published_at"] and body["expires_at"] > body["published_at"]

    events = await read_events(kafka_bootstrap, ACH_TOPIC, {aid}, want=4)
    types = [e["type"].split(".")[-2] for e in events]
    assert types == ["submitted", "returned", "submitted", "published"]
    assert all(e["_key"] == aid for e in events)
    assert events[1]["data"]["reason"] == "请补充专利授权证书"
    published = events[3]["data"]
    assert published["owner_org_id"] == org["organisation_id"] and published["trl"] == 7
    assert published["ipc_codes"] == ["H01M 50/449"]
    assert published["asking_price"] == {"amount": 50_000_000, "currency": "CNY"}
    assert published["ip_records"][0]["number"] == "CN202310123456.7"
    assert "confidential_details" not in published


async def test_illegal_transitions_are_refused_naming_the_transition(api, kafka_bootstrap):
    org = await api.register_org()
    owner = who(org["organisation_id"], "institution")
    a = await api.create(org["organisation_id"])
    r = await api.act(a["achievement_id"], "publish", who(None, "government"))
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == "illegal_transition"
    assert "cannot publish" in problem["detail"] and "'draft'" in problem["detail"]
    assert "submitted" in problem["detail"]  # where it would have been allowed

    await api.act(a["achievement_id"], "submit", owner)
    await api.act(a["achievement_id"], "reject", who(None, "government"), reason="not novel")
    r = await api.act(a["achievement_id"], "submit", owner)
    assert r.status_code == 409 and "rejected" in r.json()["detail"]
    r = await api.patch(f"{A}/{a['achievement_id']}", owner, json={"trl": 3}, headers={"If-Match": '"3"'})
    assert r.status_code == 409 and "cannot edit" in r.json()["detail"]
    events = await read_events(kafka_bootstrap, ACH_TOPIC, {a["achievement_id"]}, want=2)
    assert [e["type"] for e in events] == ["techbridge.catalog.achievement.submitted.v1",
                                           "techbridge.catalog.achievement.rejected.v1"]
    assert events[1]["data"]["reason"] == "not novel" and events[1]["data"]["status"] == "rejected"


async def test_reviewer_actions_need_a_reviewer_and_a_reason(api):
    org = await api.register_org()
    owner = who(org["organisation_id"], "institution")
    a = await api.create(org["organisation_id"])
    await api.act(a["achievement_id"], "submit", owner)
    r = await api.act(a["achievement_id"], "publish", owner)
    assert r.status_code == 403
    r = await api.act(a["achievement_id"], "return", who(None, "government"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.reason"
    other = who("someone-else", "institution")
    assert (await api.act(a["achievement_id"], "withdraw", other)).status_code == 404  # not even visible
    assert (await api.get(f"{A}/{a['achievement_id']}", other)).status_code == 404


async def test_withdraw_expire_and_renew(api, kafka_bootstrap):
    org = await api.register_org()
    owner = who(org["organisation_id"], "institution")
    a = await api.published(org["organisation_id"])
    aid = a["achievement_id"]
    # Make it due, then let the sweeper (via the admin endpoint) expire it.
    from sqlalchemy import update

    from techbridge_catalog.store.tables import achievements
    runtime = api.app.state.runtime
    async with runtime.unit_of_work() as uow:
        await uow.session.execute(update(achievements).where(achievements.c.id == aid)
                                  .values(expires_at=achievements.c.published_at))
        await uow.commit()
    r = await api.post("/api/v1/catalog/admin/expire-due", who(None, "admin"))
    assert r.status_code == 200 and aid in r.json()["expired"]
    assert (await api.get(f"{A}/{aid}", owner)).json()["status"] == "expired"
    # An expired listing is not found by the default search, but is by its owner asking for it.
    hits = (await api.get(A, who(None, "enterprise"), params={"q": "锂电池"})).json()["items"]
    assert aid not in [h["achievement_id"] for h in hits]
    r = await api.act(aid, "renew", owner)
    assert r.status_code == 200 and r.json()["status"] == "published"
    r = await api.act(aid, "withdraw", owner, reason="licensed elsewhere")
    assert r.json()["status"] == "withdrawn"
    r = await api.act(aid, "renew", owner)
    assert r.status_code == 409 and "withdrawn" in r.json()["detail"]
    events = await read_events(kafka_bootstrap, ACH_TOPIC, {aid}, want=5)
    assert [e["type"].split(".")[-2] for e in events] == ["submitted", "published", "expired", "published", "withdrawn"]


async def test_concurrent_edit_is_detected(api):
    org = await api.register_org()
    owner = who(org["organisation_id"], "institution")
    a = await api.create(org["organisation_id"])
    path = f"{A}/{a['achievement_id']}"
    tag = (await api.get(path, owner)).headers["ETag"]
    r1 = await api.patch(path, owner, json={"trl": 4}, headers={"If-Match": tag})
    r2 = await api.patch(path, owner, json={"trl": 5}, headers={"If-Match": tag})
    assert r1.status_code == 200 and r2.status_code == 412
    assert r2.json()["code"] == "precondition_failed"
    assert (await api.get(path, owner)).json()["trl"] == 4
    r = await api.patch(path, owner, json={"trl": 5})
    assert r.status_code == 428
    tag = (await api.get(path, owner)).headers["ETag"]
    r = await api.patch(path, owner, json={"colour": "red"}, headers={"If-Match": tag})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.colour"
    r = await api.patch(path, owner, json={"trl": 12}, headers={"If-Match": tag})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.trl"
    r = await api.patch(path, owner, json={"co_owners": [{"name": "x", "share_bp": 9000}]}, headers={"If-Match": tag})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.co_owners"
    r = await api.patch(path, owner, json={"trl": 5}, headers={"If-Match": "yesterday"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "header.If-Match"
    assert (await api.get(path, owner)).json()["trl"] == 4


async def test_edit_of_a_published_listing_announces_only_public_changes(api, kafka_bootstrap):
    org = await api.register_org()
    owner = who(org["organisation_id"], "institution")
    a = await api.published(org["organisation_id"])
    path = f"{A}/{a['achievement_id']}"
    tag = (await api.get(path, owner)).headers["ETag"]
    r = await api.patch(path, owner, json={"confidential_details": "new recipe"}, headers={"If-Match": tag})
    assert r.status_code == 200
    r = await api.patch(path, owner, json={"asking_price": {"amount": 40_000_000, "currency": "CNY"}},
                        headers={"If-Match": r.headers["ETag"]})
    assert r.status_code == 200
    events = await read_events(kafka_bootstrap, ACH_TOPIC, {a["achievement_id"]}, want=3)
    assert [e["type"].split(".")[-2] for e in events] == ["submitted", "published", "updated"]
    assert events[2]["data"]["asking_price"]["amount"] == 40_000_000
    assert events[2]["data"]["version"] > events[1]["data"]["version"]


async def test_history_records_who_changed_what(api):
    org = await api.register_org()
    owner = who(org["organisation_id"], "institution", sub="alice")
    a = await api.create(org["organisation_id"])
    path = f"{A}/{a['achievement_id']}"
    tag = (await api.get(path, owner)).headers["ETag"]
    await api.patch(path, owner, json={"trl": 8, "confidential_details": "secret v2"}, headers={"If-Match": tag})
    await api.act(a["achievement_id"], "submit", owner)
    r = await api.get(f"{path}/history", owner)
    items = r.json()["items"]
    assert [i["action"] for i in items] == ["create", "edit", "submit"]
    edit = items[1]
    assert edit["actor"] == "alice" and edit["actor_org"] == org["organisation_id"]
    changed = {c["field"]: c for c in edit["changes"]}
    assert changed["trl"]["old"] == 6 and changed["trl"]["new"] == 8
    assert changed["confidential_details"]["new"] is None and changed["confidential_details"]["redacted"]
    assert items[2]["from_status"] == "draft" and items[2]["to_status"] == "submitted"
    assert (await api.get(f"{path}/history", who("other", "institution"))).status_code == 404


async def test_confidential_details_only_for_the_owner_and_registered_co_owners(api):
    org = await api.register_org()
    oid, co = org["organisation_id"], "org-co-owner"
    a = await api.published(oid, co_owners=[{"name": "本校", "org_id": oid, "share_bp": 7000},
                                             {"name": "合作企业", "org_id": co, "share_bp": 3000}])
    path = f"{A}/{a['achievement_id']}"
    for identity, visible in ((who(oid, "institution"), True), (who(co, "enterprise"), True),
                              (who("org-stranger", "enterprise"), False), (who(None, "admin"), False),
                              (who(None, "government"), False)):
        body = (await api.get(path, identity)).json()
        assert body["confidential_visible"] is visible
        assert (body["confidential_details"] is not None) is visible
        assert body["abstract_en"].startswith("A ceramic-coated separator")  # the teaser is public
