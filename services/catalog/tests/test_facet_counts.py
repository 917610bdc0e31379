"""Facet counts kept by the store's triggers (read when searches are answered by SQL alone,
without text, price or region) must equal a recount over the rows (used otherwise), through
every kind of change: creation, bulk import (several IPC codes of one subclass, imports into
pairs that already exist), publication, edits of the counted fields and IPC codes,
withdrawal. A region filter every listing here meets sends the same question down the recount
path, so each pair of answers below must be identical, on SQLite and on PostgreSQL; and after
each step every cell of the three count tables must equal the same count grouped from the
rows (`cells_exact`)."""

from __future__ import annotations

import json

import pytest
from catalog_helpers import achievement, who
from conftest import running_catalog
from sqlalchemy import text

from techbridge_catalog.store import search as store_search

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


CELLS = {
    "facet_cells": ("status, ip_type, trl, modes_bits",
                    "SELECT status, ip_type, trl, modes_bits, count(*) FROM achievements "
                    "GROUP BY status, ip_type, trl, modes_bits"),
    "facet_owner_cells": ("status, owner_org_id, ip_type, trl, modes_bits",
                          "SELECT status, owner_org_id, ip_type, trl, modes_bits, count(*) FROM achievements "
                          "GROUP BY status, owner_org_id, ip_type, trl, modes_bits"),
    "facet_ipc_cells": ("status, subclass, ip_type, trl, modes_bits",
                        "SELECT a.status, s.subclass, a.ip_type, a.trl, a.modes_bits, count(*) FROM "
                        "(SELECT DISTINCT achievement_id, subclass FROM achievement_ipc) s "
                        "JOIN achievements a ON a.id = s.achievement_id "
                        "GROUP BY a.status, s.subclass, a.ip_type, a.trl, a.modes_bits"),
}


async def cells_exact(api) -> None:
    """Every count cell the triggers keep equals the count grouped from the rows."""
    async with api.app.state.runtime.db.engine.connect() as conn:
        for table, (key, recount) in CELLS.items():
            kept = set(map(tuple, await conn.execute(text(f"SELECT {key}, n FROM {table} WHERE n <> 0"))))
            assert kept == set(map(tuple, await conn.execute(text(recount)))), table


@pytest.fixture(params=["count tables", "search columns"])
async def api(request, store_url, kafka_bootstrap, tmp_path, monkeypatch):
    """The counted side of each comparison from the count tables (searches answered by SQL
    alone, the only way that reads them) or from the in-memory search columns."""
    monkeypatch.setattr(store_search, "SNAPSHOT", request.param == "search columns")
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
    await cells_exact(api)
    for row in r.json()["rows"]:
        assert (await api.act(row["achievement_id"], "publish", REVIEWER)).status_code == 200
    await cells_exact(api)

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
    await cells_exact(api)

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


async def test_imports_count_each_subclass_of_an_achievement_once(api):
    """A bulk import's IPC rows arrive in one statement per step: an achievement with several
    codes of one subclass counts once there, and a later change that adds a code to a subclass
    the achievement already has does not count it again."""
    await api.register_org(name="丙大学", org_id=U, region="Shanghai/Yangpu")
    owner = who(U, "institution")
    rows = [achievement(trl=4, ipc_codes=["H01M 10/052", "H01M 50/449", "H01M 4/36", "G06N 3/08"], ip_records=rec()),
            achievement(trl=4, ipc_codes=["H01M 10/052"], ip_records=rec()),
            achievement(trl=5, ipc_codes=["G06N 3/08", "G06N 20/00"], ip_records=rec()),
            achievement(trl=5, ipc_codes=[], ip_records=rec())]
    r = await api.post(f"{A}/import", owner,  # drafts, which their owner may edit
                       content="\n".join(json.dumps(x, ensure_ascii=False) for x in rows).encode(),
                       headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200 and r.json()["imported"] == 4, r.text
    await cells_exact(api)
    body = await both_paths(api, REVIEWER, status=["draft"])
    assert dict(facets(body)["ipc_class"]) == {"H01M": 2, "G06N": 2}
    first = r.json()["rows"][0]["achievement_id"]
    current = (await api.get(f"{A}/{first}", owner)).json()
    r = await api.patch(f"{A}/{first}", owner, headers={"If-Match": f'"{current["version"]}"'},
                        json={"ipc_codes": ["H01M 10/052", "H01M 50/449", "H01M 4/36", "H01M 8/10"]})
    assert r.status_code == 200, r.text
    await cells_exact(api)
    body = await both_paths(api, REVIEWER, status=["draft"])
    assert dict(facets(body)["ipc_class"]) == {"H01M": 2, "G06N": 1}
