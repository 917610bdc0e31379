"""The organisation registry and its events; bad input answered clearly; bulk import reports."""

from __future__ import annotations

import json
import uuid

import pytest
from catalog_helpers import achievement, credit_code, who
from catalog_helpers import read_events

pytestmark = pytest.mark.timeout(180)

A = "/api/v1/catalog/achievements"
ORGS = "/api/v1/catalog/organisations"
ADMIN = who(None, "admin")


# --- organisations -------------------------------------------------------------------------------

async def test_registration_and_update_are_announced(api, kafka_bootstrap):
    code = credit_code()
    r = await api.post(ORGS, ADMIN, json={
        "name": "上海交通大学", "name_en": "Shanghai Jiao Tong University", "kind": "university",
        "region": "Shanghai/Minhang", "credit_code": code, "headcount": 20000,
        "annual_revenue": {"amount": 10_000_000_000, "currency": "CNY"}, "registered_on": "1896-04-08"})
    assert r.status_code == 201, r.text
    org = r.json()
    oid = org["organisation_id"]
    assert r.headers["ETag"] == '"1"' and r.headers["Location"].endswith(oid)

    member = who(oid, "institution")
    r = await api.patch(f"{ORGS}/{oid}", member, json={"headcount": 21000}, headers={"If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["version"] == 2
    r = await api.patch(f"{ORGS}/{oid}", who("another-org", "institution"), json={"headcount": 1}, headers={"If-Match": '"2"'})
    assert r.status_code == 403

    events = await read_events(kafka_bootstrap, "techbridge.catalog.organisation.v1", {oid}, want=2)
    assert [e["type"] for e in events] == ["techbridge.catalog.organisation.registered.v1",
                                           "techbridge.catalog.organisation.updated.v1"]
    data = events[0]["data"]
    assert data == {"organisation_id": oid, "name": "上海交通大学", "name_en": "Shanghai Jiao Tong University",
                    "kind": "university", "region": "Shanghai/Minhang", "credit_code": code, "headcount": 20000,
                    "annual_revenue": {"amount": 10_000_000_000, "currency": "CNY"}, "registered_on": "1896-04-08"}
    assert events[1]["data"]["headcount"] == 21000 and events[0]["_key"] == oid

    history = (await api.get(f"{ORGS}/{oid}/history", member)).json()["items"]
    assert [h["action"] for h in history] == ["register", "edit"]
    assert history[1]["changes"] == [{"field": "headcount", "old": 20000, "new": 21000}]


async def test_registry_refuses_duplicates_and_bad_codes(api):
    code = credit_code()
    base = {"name": "同济大学", "kind": "university", "credit_code": code}
    assert (await api.post(ORGS, ADMIN, json=base)).status_code == 201
    r = await api.post(ORGS, ADMIN, json={**base, "name": "同济大学（重复）"})
    assert r.status_code == 409 and r.json()["code"] == "duplicate_credit_code"
    r = await api.post(ORGS, ADMIN, json={**base, "credit_code": code[:-1] + ("0" if code[-1] != "0" else "1")})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.credit_code"
    r = await api.post(ORGS, ADMIN, json={**base, "credit_code": credit_code(), "kind": "pirate"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.kind"


async def test_self_registration_only_for_ones_own_organisation(api):
    mine = f"org-{uuid.uuid4().hex[:8]}"
    body = {"name": "某科技有限公司", "kind": "enterprise", "credit_code": credit_code()}
    r = await api.post(ORGS, who(mine, "enterprise"), json={**body, "organisation_id": "someone-else"})
    assert r.status_code == 403
    r = await api.post(ORGS, who(mine, "enterprise"), json=body)
    assert r.status_code == 201 and r.json()["organisation_id"] == mine


async def test_listing_organisations_pages_by_name(api):
    for name in ("甲研究所", "乙研究所", "丙研究所"):
        await api.register_org(name=name, kind="institute")
    seen, cursor = [], None
    while True:
        r = await api.get(ORGS, who(None, "partner"), params={"limit": 2, "kind": "institute", **({"cursor": cursor} if cursor else {})})
        body = r.json()
        seen += [o["name"] for o in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(["甲研究所", "乙研究所", "丙研究所"])


async def test_calls_without_a_signed_identity_are_refused(api):
    assert (await api.get(A, None)).status_code == 401
    r = await api.get(A, None, headers={"X-Techbridge-Identity": "e30", "X-Techbridge-Identity-Sig": "t=1,v1=00"})
    assert r.status_code == 401


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("over, field", [
    ({"trl": 12}, "body.trl"),
    ({"asking_price": {"amount": -100, "currency": "CNY"}}, "body.asking_price.amount"),
    ({"co_owners": [{"name": "复旦大学", "share_bp": 6000}, {"name": "华为", "share_bp": 3000}]}, "body.co_owners"),
    ({"colour": "red"}, "body.colour"),
    ({"ipc_codes": ["not an ipc"]}, "body.ipc_codes"),
    ({"transfer_modes": ["barter"]}, "body.transfer_modes.0"),
    ({"asking_price": None, "negotiable": False}, "body.asking_price"),
    ({"title_zh": "", "title_en": ""}, "body.title_zh"),
    ({"ip_records": [{"number": "CN1", "kind": "invention_patent", "filing_date": "2024-01-01",
                      "grant_date": "2023-01-01"}]}, "body.ip_records.0"),
])
async def test_bad_achievements_are_refused_naming_the_field(module_api, over, field):
    api = module_api
    org = getattr(api, "org", None) or await api.register_org()
    api.org = org
    r = await api.post(A, who(org["organisation_id"], "institution"), json=achievement(**over))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert any(e["field"] == field or e["field"].startswith(field) for e in r.json()["errors"]), r.json()


async def test_shares_adding_to_100_percent_are_kept(api):
    org = await api.register_org()
    owners = [{"name": "复旦大学", "org_id": org["organisation_id"], "share_bp": 7000}, {"name": "华为", "share_bp": 3000}]
    a = await api.create(org["organisation_id"], co_owners=owners)
    assert [o["share_bp"] for o in a["co_owners"]] == [7000, 3000]


async def test_oversize_bodies_are_refused(api):
    org = await api.register_org()
    big = achievement(abstract_en="x" * 2_000_000)
    r = await api.post(A, who(org["organisation_id"], "institution"), json=big)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"


async def test_oversize_bodies_sent_without_a_length_are_refused_too(api):
    org = await api.register_org()

    async def chunks():  # streamed: no Content-Length, the limit is found while reading
        for _ in range(40):
            yield b"x" * 65536

    r = await api.post(A, who(org["organisation_id"], "institution"), content=chunks(),
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large", r.text[:200]


async def test_an_unregistered_organisation_cannot_list(api):
    r = await api.post(A, who("ghost-org", "institution"), json=achievement())
    assert r.status_code == 409 and r.json()["code"] == "organisation_not_registered"
    r = await api.post(A, who("ghost-org", "enterprise", "partner"), json=achievement())
    assert r.status_code == 409
    r = await api.post(A, who("ghost-org", "partner"), json=achievement())
    assert r.status_code == 403


# --- bulk import ---------------------------------------------------------------------------------

IMPORT = f"{A}/import"


def jsonl(rows) -> bytes:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()


async def drafts_of(api, org):
    r = await api.get(A, who(org, "institution"), params={"status": ["draft", "submitted"], "limit": 100})
    return r.json()["items"]


async def test_atomic_import_stores_nothing_when_a_row_is_bad(api):
    org = (await api.register_org())["organisation_id"]
    rows = [achievement(title_zh="第一行"), achievement(trl=12), achievement(co_owners=[{"name": "x", "share_bp": 9000}])]
    r = await api.post(IMPORT, who(org, "institution"), content=jsonl(rows),
                       headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 422
    fields = [e["field"] for e in r.json()["errors"]]
    assert "rows.2.trl" in fields and "rows.3.co_owners" in fields
    assert "nothing was imported" in r.json()["detail"]
    assert await drafts_of(api, org) == []


async def test_best_effort_import_keeps_good_rows_and_reports_the_rest(api, kafka_bootstrap):
    org = (await api.register_org())["organisation_id"]
    rows = [achievement(title_zh="好的一行"), achievement(trl=0), achievement(title_zh="另一行")]
    raw = jsonl(rows) + b"\n{not json\n"
    r = await api.post(IMPORT, who(org, "institution"), content=raw, params={"mode": "best_effort", "submit": "true"},
                       headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["total"], report["imported"], report["rejected"]) == (4, 2, 2)
    bad = {row["row"]: row["errors"] for row in report["rows"] if row["errors"]}
    assert set(bad) == {2, 4} and bad[2][0]["field"] == "trl" and "JSON" in bad[4][0]["message"]
    ids = {row["achievement_id"] for row in report["rows"] if row["achievement_id"]}
    assert {a["achievement_id"] for a in await drafts_of(api, org)} == ids
    events = await read_events(kafka_bootstrap, "techbridge.catalog.achievement.v1", ids, want=2)
    assert {e["type"] for e in events} == {"techbridge.catalog.achievement.submitted.v1"}


async def test_csv_import_uses_the_same_fields(api):
    org = (await api.register_org())["organisation_id"]
    header = "title_zh,title_en,abstract_zh,ip_type,trl,transfer_modes,keywords,ipc_codes,asking_price_amount,negotiable,ip_records\n"
    rec = json.dumps([{"number": "CN2", "kind": "utility_model"}]).replace('"', '""')
    body = header + f'光纤传感器,Fibre sensor,分布式测温,utility_model,5,assignment;equity,光纤;sensor,G01K 11/32,1200000,false,"{rec}"\n'
    body += "坏行,Bad row,,utility_model,15,assignment,,,,true,\n"
    r = await api.post(IMPORT, who(org, "institution"), content=body.encode(), params={"mode": "best_effort"},
                       headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["imported"] == 1 and report["rows"][1]["row"] == 3 and report["rows"][1]["errors"][0]["field"] == "trl"
    a = (await api.get(f"{A}/{report['rows'][0]['achievement_id']}", who(org, "institution"))).json()
    assert a["transfer_modes"] == ["assignment", "equity"] and a["ipc_codes"] == ["G01K 11/32"]
    assert a["asking_price"] == {"amount": 1_200_000, "currency": "CNY"} and a["ip_records"][0]["number"] == "CN2"
    r = await api.post(IMPORT, who(org, "institution"), content=b"x", headers={"content-type": "application/pdf"})
    assert r.status_code == 415
