"""Facet counts kept by the store's triggers (used for searches without text, price or region)
must equal a recount over the rows (used otherwise), through every kind of change: creation,
bulk import, publication, edits of the counted fields and IPC codes, withdrawal. A region
filter every listing here meets sends the same question down the recount path, so each pair of
answers below must be identical, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json

import pytest
from catalog_helpers import achievement, who
from conftest import running_catalog

pytestmark = pytest.mark.timeout(180)

A = "/api/v1/catalog/achievements"
U, V = "org-facet-u", "org-facet-v"
BUYER = who("org-facet-buyer", "enterprise")
REVIEWER = who(None, "government")


def rec(kind: str = "invention_patent") -> list[dict]:
    """An IP record without IPC codes of its own, so the listing's codes are the ones given."""
    return [{"number": "CN202310000001.1", "kind": kind, "legal_status": "granted"}]


def facets(body: dict) -> dict:
    return {k: sorted((str(v["value"]), v["count"]) for v in vals) for k, vals in body["facets"].items()}


async def both_paths(api, identity, **params) -> dict:
    """The same search answered from the counts and by a recount: asserts they agree."""
    counted = await api.get(A, identity, params=params)
    recounted = await api.get(A, identity, params={**params, "region": "Shanghai"})
    assert counted.status_code == 200 and recounted.status_code == 200, (counted.text, recounted.text)
    c, r = counted.json(), recounted.json()
    assert facets(c) == facets(r), params
    assert c["total"] == r["total"], params
    return c


@pytest.fixture
async def api(store_url, kafka_bootstrap, tmp_path):
    # Facet reuse off: every answer below is counted afresh.
    async with running_catalog(store_url, kafka_bootstrap, tmp_path, facet_cache_s=0) as a:
        yield a


async def test_kept_counts_equal_a_recount_through_every_change(api):
    await api.register_org(name="甲大学", org_id=U, region="Shanghai/Yangpu")
    await api.register_org(name="乙研究院", org_id=V, region="Shanghai/Minhang", kind="institute")
    owner_u, owner_v = who(U, "institution"), who(V, "institution")

    # Published listings, one with two codes in the same IPC subclass (counted once there).
    twin = await api.published(U, ipc_codes=["H01M 10/052", "H01M 50/449"], trl=3, ip_records=rec("utility_model"),
                               transfer_modes=["equity"], ip_type="utility_model")
    await api.published(U, ipc_codes=["G06N 3/08"], trl=7, ip_type="software_copyright",
                        ip_records=rec("software_copyright"),
                        transfer_modes=["non_exclusive_licence", "technical_service"])
    gone = await api.published(V, ipc_codes=["C01B 32/184"], trl=5, ip_records=rec())
    await api.create(U, trl=9)  # a draft: only its owner and reviewers count it
    # Bulk import (submitted at once), then published one by one.
    rows = [achievement(trl=t, ipc_codes=codes, transfer_modes=modes, ip_records=rec()) for t, codes, modes in (
        (4, ["H01L 21/02", "H01L 31/18"], ["assignment"]),
        (6, ["H01M 10/052"], ["co_development", "equity"]),
        (8, [], ["exclusive_licence"]),
    )]
    r = await api.post(f"{A}/import", owner_v, params={"submit": "true"},
                       content="\n".join(json.dumps(x, ensure_ascii=False) for x in rows).encode(),
                       headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200 and r.json()["imported"] == 3, r.text
    for row in r.json()["rows"]:
        assert (await api.act(row["achievement_id"], "publish", REVIEWER)).status_code == 200

    body = await both_paths(api, BUYER)
    f = facets(body)
    assert body["total"] == 6
    assert dict(f["ipc_class"])["H01M"] == 2  # twin counts once although two of its codes are H01M
    assert dict(f["institution"]) == {U: 2, V: 4}
    assert dict(f["status"]) == {"published": 6}

    # Edit the counted fields of a live listing: kind, TRL, modes and IPC codes all move.
    r = await api.patch(f"{A}/{twin['achievement_id']}", owner_u, headers={"If-Match": f'"{twin["version"]}"'},
                        json={"trl": 8, "ip_type": "invention_patent", "transfer_modes": ["assignment"],
                              "ipc_codes": ["A61K 39/00"], "ip_records": rec()})
    assert r.status_code == 200, r.text
    # Withdraw another: it leaves the public counts, and shows in its owner's status facet.
    assert (await api.act(gone["achievement_id"], "withdraw", owner_v)).status_code == 200

    body = await both_paths(api, BUYER)
    f = facets(body)
    assert body["total"] == 5
    assert dict(f["ipc_class"]).get("H01M") == 1 and dict(f["ipc_class"])["A61K"] == 1
    assert "C01B" not in dict(f["ipc_class"])
    assert dict(f["trl"]) == {"4": 1, "6": 1, "7": 1, "8": 2}
    assert dict(f["institution"]) == {U: 2, V: 3}

    mine = facets(await both_paths(api, owner_v))
    assert dict(mine["status"]) == {"published": 5, "withdrawn": 1}
    assert dict(facets(await both_paths(api, owner_u))["status"]) == {"published": 5, "draft": 1}
    # One whole IPC subclass is counted from the IPC count table, the caller's own drafts included.
    assert dict(facets(await both_paths(api, owner_u, ipc="H01M"))["status"]) == {"published": 1, "draft": 1}

    for params in ({"trl_min": 5}, {"trl_min": 4, "trl_max": 7, "ip_type": "invention_patent"},
                   {"transfer_mode": ["assignment", "equity"]}, {"ipc": "H01"}, {"institution": V},
                   {"ipc": "H01M", "trl_max": 6}, {"sort": "recency", "limit": 2}):
        await both_paths(api, BUYER, **params)
    everything = ["draft", "submitted", "published", "withdrawn", "under_negotiation"]
    body = await both_paths(api, REVIEWER, status=everything)
    assert body["total"] == 7
    assert dict(facets(body)["status"]) == {"published": 5, "withdrawn": 1, "draft": 1}
    await both_paths(api, REVIEWER, status=["withdrawn", "draft"], trl_min=5)
