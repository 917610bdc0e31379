"""Search contract on both stores: recall on a fixed bilingual corpus, filters, facets, sort,
cursor pagination, and who sees what. Every expectation is the same list for SQLite and
PostgreSQL, so both stores answer identically."""

from __future__ import annotations

import pytest
from catalog_helpers import who
from search_corpus import CORPUS, KEYS, U1, U2, U3

pytestmark = pytest.mark.timeout(180)

A = "/api/v1/catalog/achievements"
BUYER = who("org-buyer", "enterprise")


@pytest.fixture(scope="module")
async def corpus(module_api):
    """Register the three universities and publish the corpus; returns key -> achievement id."""
    api = module_api
    for org, name in ((U1, "复旦大学"), (U2, "上海交通大学"), (U3, "同济大学")):
        await api.register_org(name=name, org_id=org)
    ids = {}
    for key, org, body in CORPUS:
        r = await api.post(A, who(org, "institution"), json=body)
        assert r.status_code == 201, r.text
        aid = r.json()["achievement_id"]
        assert (await api.act(aid, "submit", who(org, "institution"))).status_code == 200
        assert (await api.act(aid, "publish", who(None, "government"))).status_code == 200
        ids[key] = aid
    api.keys = {v: k for k, v in ids.items()}
    return api


async def search(api, identity=BUYER, **params):
    r = await api.get(A, identity, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    body["keys"] = [api.keys.get(i["achievement_id"], i["achievement_id"]) for i in body["items"]]
    return body


async def test_lithium_battery_finds_lithium_battery_separator(corpus):
    api = corpus
    """锂电池 must match 锂电池隔膜 (segmented, not a whole-string match) and not 锂离子电池."""
    hits = (await search(api, q="锂电池"))["keys"]
    assert set(hits) == {"separator", "recycle"}
    assert "separator" in (await search(api, q="隔膜"))["keys"]


@pytest.mark.parametrize("q, expected", [
    ("电池", {"separator", "cathode", "solid", "recycle", "bms"}),
    ("石墨烯", {"graphene", "solid"}),
    ("battery", {"separator", "cathode", "solid", "recycle", "bms"}),
    ("Batteries", {"separator", "cathode", "solid", "recycle", "bms"}),
    ("solar cell", {"perovskite"}),
    ("lithium 回收", {"recycle"}),
    ("medical radiology segmentation", set()),     # every word must match: "radiology" is not in the text
    ("medical image segmentation", {"imaging"}),
    ("水稻", {"rice"}),
    ("内部工艺参数", set()),                         # confidential details are never searchable
    ("the of and", set(KEYS)),                      # only stopwords: no text condition at all
])
async def test_recall(corpus, q, expected):
    api = corpus
    assert set((await search(api, q=q, limit=100))["keys"]) == expected


async def test_relevance_puts_title_matches_first_and_ties_by_recency(corpus):
    api = corpus
    body = await search(api, q="石墨烯")
    assert body["keys"] == ["graphene", "solid"]  # title beats an abstract mention
    scores = [i["score"] for i in body["items"]]
    assert scores[0] > scores[1] > 0
    body = await search(api, q="锂电池")
    assert body["keys"][0] in ("separator", "recycle") and len(body["keys"]) == 2


@pytest.mark.parametrize("params, expected", [
    ({"ipc": "H01M"}, {"separator", "cathode", "solid", "recycle"}),
    ({"ipc": "H01M 10"}, {"solid", "recycle"}),
    ({"ipc": ["H01L", "C01B"]}, {"layout", "perovskite", "graphene"}),
    ({"trl_min": 7}, {"graphene", "recycle", "imaging", "rice"}),
    ({"trl_min": 4, "trl_max": 5}, {"cathode", "solid", "layout"}),
    ({"ip_type": "software_copyright"}, {"imaging", "bms"}),
    ({"transfer_mode": "assignment"}, {"separator", "graphene", "rice"}),
    ({"transfer_mode": ["co_development", "technical_service"]}, {"solid", "recycle", "perovskite", "bms"}),
    ({"institution": U1}, {"separator", "solid", "rice"}),
    ({"price_max": 5_000_000}, {"graphene", "recycle", "imaging", "rice", "bms"}),
    ({"price_min": 20_000_000}, {"separator", "solid", "layout"}),
    ({"price_min": 1, "currency": "USD"}, set()),
    ({"q": "电池", "trl_max": 5}, {"cathode", "solid"}),
    ({"q": "battery", "institution": U3, "ip_type": "software_copyright"}, {"bms"}),
    ({"region": "Shanghai"}, set(KEYS)),
    ({"region": "Beijing"}, set()),
])
async def test_filters(corpus, params, expected):
    api = corpus
    body = await search(api, limit=100, **params)
    assert set(body["keys"]) == expected
    assert body["total"] == len(expected)


async def test_facets_count_each_filter_without_its_own(corpus):
    api = corpus
    body = await search(api, ipc="H01M", facets="true")
    f = {k: {str(v["value"]): v["count"] for v in vals} for k, vals in body["facets"].items()}
    assert f["ip_type"] == {"invention_patent": 3, "know_how": 1}
    # The IPC facet ignores the IPC filter, so the other classes stay offered.
    assert f["ipc_class"] == {"H01M": 4, "H01L": 2, "A01H": 1, "C01B": 1, "G06T": 1, "H02J": 1}
    assert f["transfer_mode"]["assignment"] == 1 and f["transfer_mode"]["co_development"] == 1
    assert f["trl"] == {"4": 1, "5": 1, "6": 1, "8": 1}
    assert f["status"] == {"published": 4}
    inst = {v["value"]: (v["label"], v["count"]) for v in body["facets"]["institution"]}
    assert inst == {U1: ("复旦大学", 2), U2: ("上海交通大学", 1), U3: ("同济大学", 1)}

    body = await search(api, q="锂电池", ip_type="know_how")
    f = {k: {str(v["value"]): v["count"] for v in vals} for k, vals in body["facets"].items()}
    assert body["keys"] == ["recycle"]
    assert f["ip_type"] == {"invention_patent": 1, "know_how": 1}


async def test_recency_pages_cover_everything_once_newest_first(corpus):
    api = corpus
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, "sort": "recency", **({"cursor": cursor} if cursor else {})}
        body = await search(api, **params)
        seen += body["keys"]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert pages == 4
    assert seen == list(reversed(KEYS))


async def test_relevance_pages_follow_one_order(corpus):
    api = corpus
    full = (await search(api, q="battery", limit=100))["keys"]
    paged, cursor = [], None
    while True:
        body = await search(api, q="battery", limit=2, **({"cursor": cursor} if cursor else {}))
        paged += body["keys"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert paged == full and len(full) == 5
    r = await api.get(A, BUYER, params={"q": "battery", "sort": "recency", "cursor": body_cursor_of_relevance(api)})
    assert r.status_code == 422


def body_cursor_of_relevance(api) -> str:
    from techbridge_shared.pagination import encode_cursor
    return encode_cursor({"s": "relevance", "o": 2})


async def test_unpublished_achievements_are_only_found_by_their_owner_and_reviewers(corpus):
    api = corpus
    owner = who(U1, "institution")
    draft = await api.create(U1, title_zh="锂电池草稿", title_en="Draft battery")
    withdrawn = await api.published(U1, title_zh="锂电池撤回", title_en="Withdrawn battery")
    await api.act(withdrawn["achievement_id"], "withdraw", owner)
    ids = {draft["achievement_id"], withdrawn["achievement_id"]}
    assert not ids & {i["achievement_id"] for i in (await search(api, q="锂电池", limit=100))["items"]}
    mine = await search(api, owner, q="锂电池", status=["draft", "withdrawn"])
    assert {i["achievement_id"] for i in mine["items"]} == ids
    theirs = await search(api, who(U2, "institution"), q="锂电池", status=["draft", "withdrawn"])
    assert theirs["items"] == []
    reviewer = await search(api, who(None, "government"), status="draft")
    assert draft["achievement_id"] in {i["achievement_id"] for i in reviewer["items"]}


@pytest.mark.parametrize("params, field", [
    ({"trl_min": 12}, "query.trl_min"),
    ({"trl_min": 7, "trl_max": 3}, "query.trl_min"),
    ({"ipc": "Z99"}, "query.ipc.0"),
    ({"price_min": -1}, "query.price_min"),
    ({"colour": "red"}, "query.colour"),
    ({"ip_type": "recipe"}, "query.ip_type.0"),
    ({"cursor": "not-a-cursor"}, "query.cursor"),
])
async def test_bad_search_parameters_are_named(module_api, params, field):
    api = module_api
    r = await api.get(A, BUYER, params=params)
    assert r.status_code == 422
    assert field in [e["field"] for e in r.json()["errors"]]
