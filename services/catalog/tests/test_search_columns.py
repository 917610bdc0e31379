"""The in-memory search columns (store/search.py, kept up to date from the change log of
migration 0005) must answer exactly as SQL alone does: the same items, order, cursors, totals
and facet counts for every kind of search over the fixed corpus, and after every kind of change
(publication, edits of searched fields and IPC codes, withdrawal, a transfer), also when the
change was made by another process on the same store, committed while searches went on, or
when the change log was pruned before a replica read it. A region prefix (matched by each
store's own LIKE) is never answered from the columns. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from catalog_helpers import achievement, eventually, produce, who
from conftest import running_catalog
from search_corpus import CORPUS, U1, U2, U3
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from test_consumers import TRANSFER_TOPIC, transfer_event

from techbridge_catalog.domain.model import Status
from techbridge_catalog.domain.search import SearchQuery, Viewer
from techbridge_catalog.store import search as store_search
from techbridge_catalog.store.search import Search

pytestmark = pytest.mark.timeout(240)

A = "/api/v1/catalog/achievements"
BUYER = who("org-columns-buyer", "enterprise")
REVIEWER = who(None, "government")
EVERY_STATUS = ["draft", "submitted", "returned", "published", "under_negotiation", "transferred", "withdrawn",
                "expired", "rejected"]


def columns_of(api):
    return store_search._COLUMNS.get(api.app.state.catalog_reader.engine.sync_engine)


async def same(api, identity, **params) -> dict:
    """The search answered from the columns, then by SQL alone: they must be identical."""
    r = await api.get(A, identity, params=params)
    assert r.status_code == 200, r.text
    store_search.SNAPSHOT = False
    try:
        by_sql = await api.get(A, identity, params=params)
    finally:
        store_search.SNAPSHOT = True
    assert by_sql.status_code == 200, by_sql.text
    assert r.json() == by_sql.json(), params
    return r.json()


async def pages(api, identity, limit: int, **params) -> list[str]:
    """Every page in turn, each the same from the columns and by SQL alone: the ids in order,
    each once, as many as the total says."""
    cursor, seen = None, []
    while True:
        body = await same(api, identity, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
        seen += [i["achievement_id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            assert len(seen) == len(set(seen)) == body["total"], params
            return seen


def counts(body: dict, facet: str) -> dict:
    return {str(v["value"]): v["count"] for v in body["facets"][facet]}


# --- the fixed corpus: every kind of search ----------------------------------------------------

@pytest.fixture(scope="module")
async def corpus(module_api):
    api = module_api
    for org, name in ((U1, "复旦大学"), (U2, "上海交通大学"), (U3, "同济大学")):
        await api.register_org(name=name, org_id=org)
    for n, (_key, org, body) in enumerate(CORPUS):
        r = await api.post(A, who(org, "institution"), json=body)
        assert r.status_code == 201, r.text
        aid = r.json()["achievement_id"]
        assert (await api.act(aid, "submit", who(org, "institution"))).status_code == 200
        if n % 4 != 3:  # every fourth stays submitted: only its owner and reviewers see it
            assert (await api.act(aid, "publish", REVIEWER)).status_code == 200
    return api


@pytest.mark.parametrize("params", [
    {}, {"q": "电池"}, {"q": "battery"}, {"q": "石墨烯"}, {"q": "lithium 回收"}, {"q": "the of and"},
    {"q": "medical radiology segmentation"}, {"ipc": "H01M"}, {"ipc": "H01M 10"}, {"ipc": ["H01L", "C01B"]},
    {"ipc": "H01M10/05"}, {"trl_min": 5}, {"trl_min": 4, "trl_max": 5}, {"ip_type": "software_copyright"},
    {"transfer_mode": ["co_development", "technical_service"]}, {"institution": [U1, U3]},
    {"price_max": 5_000_000}, {"price_min": 20_000_000}, {"price_min": 1, "currency": "USD"},
    {"q": "电池", "trl_max": 5}, {"q": "battery", "sort": "recency"}, {"q": "battery", "ipc": "H01M", "price_max": 60_000_000},
    {"q": "电池", "institution": U1, "transfer_mode": "assignment"}, {"q": "电池", "facets": "false"},
    {"status": ["transferred"]}, {"status": ["submitted", "published"]}, {"q": "电池", "status": ["submitted"]},
    {"ip_type": "know_how", "ipc": "H01M", "institution": U3, "trl_min": 8},
])
@pytest.mark.parametrize("identity", [BUYER, who(U1, "institution"), REVIEWER], ids=["buyer", "owner", "reviewer"])
async def test_columns_answer_as_sql_alone(corpus, params, identity):
    await same(corpus, identity, limit=100, **params)


@pytest.mark.parametrize("params", [{"q": "电池"}, {"q": "battery", "trl_min": 4}, {}, {"ipc": "H01M"}])
async def test_pages_follow_the_same_order_either_way(corpus, params):
    assert len(await pages(corpus, REVIEWER, 2, **params)) > 1


async def test_hits_come_back_as_ids_when_two_ids_share_a_hash(corpus):
    """PostgreSQL sends text hits as 64-bit hashes of their ids; were two ids ever to share
    one, the hits are asked for again as ids (forced here by giving two rows one hash)."""
    await same(corpus, BUYER, q="电池")
    cols = columns_of(corpus)
    if not cols.pg:
        pytest.skip("SQLite hits come back as FTS rowids")
    keys = cols.rows.cols["fts"]
    saved = keys[:2].copy()
    keys[1] = keys[0]
    cols._by_key = None
    try:
        assert cols.rows_of_keys(keys[:2]) is None
        assert (await same(corpus, BUYER, q="电池", limit=100))["total"] > 1
    finally:
        keys[:2] = saved
        cols._by_key = None


async def test_a_region_prefix_is_answered_by_sql(api):
    await api.register_org(name="甲大学", org_id="org-columns-region", region="Shanghai/Yangpu")
    await api.published("org-columns-region")
    body = (await api.get(A, BUYER, params={"region": "Shanghai"})).json()
    assert body["total"] == 1
    assert columns_of(api) is None  # never loaded: the only search named a region
    assert (await api.get(A, BUYER)).json()["total"] == 1
    assert columns_of(api) is not None and columns_of(api).loads == 1


# --- staying exact through changes -----------------------------------------------------------

@pytest.fixture
async def replicas(store_url, kafka_bootstrap, tmp_path):
    """Two catalog processes on one store (facet reuse off): one writes, the other searches."""
    async with running_catalog(store_url, kafka_bootstrap, tmp_path / "a", facet_cache_s=0) as a:
        async with running_catalog(store_url, kafka_bootstrap, tmp_path / "b", facet_cache_s=0) as b:
            yield a, b


def rec() -> list[dict]:
    return [{"number": "CN202310000001.1", "kind": "invention_patent", "legal_status": "granted"}]


async def test_changes_by_another_replica_show_in_the_next_search(replicas):
    a, b = replicas
    u, v = f"org-u-{uuid.uuid4().hex[:6]}", f"org-v-{uuid.uuid4().hex[:6]}"
    await a.register_org(name="甲大学", org_id=u)
    await a.register_org(name="乙大学", org_id=v)
    first = await a.published(u, trl=3, ipc_codes=["H01M 10/052"], ip_records=rec())
    await a.published(v, trl=5, ipc_codes=["G06N 3/08"], ip_records=rec())
    body = await same(b, BUYER)
    assert body["total"] == 2 and counts(body, "trl") == {"3": 1, "5": 1}
    assert columns_of(b).loads == 1

    # Published by the other process: counted at once (no facet reuse, no staleness).
    third = await a.published(v, trl=7, ipc_codes=["H01M 50/449"], ip_records=rec(), transfer_modes=["equity"])
    body = await same(b, BUYER)
    assert body["total"] == 3 and counts(body, "ipc_class") == {"H01M": 2, "G06N": 1}
    assert counts(body, "transfer_mode")["equity"] == 1

    # An edit of the searched fields and IPC codes of a live listing.
    r = await a.patch(f"{A}/{first['achievement_id']}", who(u, "institution"),
                      headers={"If-Match": f'"{first["version"]}"'},
                      json={"trl": 9, "ipc_codes": ["A61K 39/00"], "asking_price": {"amount": 100, "currency": "CNY"}})
    assert r.status_code == 200, r.text
    body = await same(b, BUYER)
    assert counts(body, "trl") == {"5": 1, "7": 1, "9": 1}
    assert counts(body, "ipc_class") == {"A61K": 1, "H01M": 1, "G06N": 1}
    assert (await same(b, BUYER, price_max=100))["total"] == 1
    assert (await same(b, BUYER, ipc="H01M10"))["total"] == 0

    # Withdrawn: gone from the public counts, still in its owner's status facet.
    assert (await a.act(third["achievement_id"], "withdraw", who(v, "institution"))).status_code == 200
    body = await same(b, BUYER)
    assert body["total"] == 2 and "H01M" not in counts(body, "ipc_class")
    assert counts(await same(b, who(v, "institution")), "status") == {"published": 2, "withdrawn": 1}
    # A draft: its owner and reviewers only.
    await a.create(u, trl=2)
    assert counts(await same(b, who(u, "institution")), "status") == {"published": 2, "draft": 1}
    assert (await same(b, REVIEWER, status=EVERY_STATUS))["total"] == 4
    assert (await same(b, BUYER))["total"] == 2
    cols = columns_of(b)
    assert cols.loads == 1 and cols.applied > 0  # followed change by change, never reloaded


async def test_a_change_committed_while_searches_go_on_is_never_missed(replicas, store_url):
    """A writer's transaction open across searches (PostgreSQL: while another transaction that
    began later commits first) is counted by the first search after it commits."""
    a, b = replicas
    u = f"org-w-{uuid.uuid4().hex[:6]}"
    await a.register_org(name="甲大学", org_id=u)
    slow = await a.published(u, trl=3, ip_records=rec())
    assert counts(await same(b, BUYER), "trl") == {"3": 1}
    engine = create_async_engine(store_url)
    try:
        async with engine.connect() as conn:
            tx = await conn.begin()
            await conn.execute(text("UPDATE achievements SET trl = 8 WHERE id = :i"), {"i": slow["achievement_id"]})
            if engine.dialect.name == "postgresql":
                # A later transaction commits first; its change is seen, the open one's not yet.
                await a.published(u, trl=4, ip_records=rec())
                assert counts(await same(b, BUYER), "trl") == {"3": 1, "4": 1}
                # The open transaction holds the horizon back, but what was applied above it
                # is not read again by every search.
                applied = columns_of(b).applied
                await same(b, BUYER)
                assert columns_of(b).applied == applied
            else:  # SQLite has one writer at a time: readers go on, still seeing the old value
                assert counts(await same(b, BUYER), "trl") == {"3": 1}
            await tx.commit()
        body = await same(b, BUYER)
        assert counts(body, "trl")["8"] == 1 and "3" not in counts(body, "trl")
    finally:
        await engine.dispose()


async def test_a_replica_behind_a_pruned_change_log_loads_everything_again(replicas, store_url):
    a, b = replicas
    u = f"org-p-{uuid.uuid4().hex[:6]}"
    await a.register_org(name="甲大学", org_id=u)
    await a.published(u, trl=3, ip_records=rec())
    assert (await same(b, BUYER))["total"] == 1
    engine = create_async_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE search_horizon SET keep = 2"))
        # 80 rows with codes: more than 64 changes, so the log is cut to its last two.
        rows = [achievement(trl=1 + n % 9, ipc_codes=["B25J 9/16"], ip_records=rec()) for n in range(80)]
        r = await a.post(f"{A}/import", who(u, "institution"),
                         content="\n".join(json.dumps(x, ensure_ascii=False) for x in rows).encode(),
                         headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 200 and r.json()["imported"] == 80, r.text
        async with engine.connect() as conn:
            kept = (await conn.execute(text("SELECT count(*) FROM search_changes"))).scalar_one()
            pruned = (await conn.execute(text("SELECT pruned_upto FROM search_horizon"))).scalar_one()
        assert kept < 80 and pruned > 0
    finally:
        await engine.dispose()
    body = await same(b, who(u, "institution"), status=["draft", "published"])
    assert body["total"] == 81 and counts(body, "status") == {"draft": 80, "published": 1}
    assert counts(body, "ipc_class")["B25J"] == 80
    assert columns_of(b).loads == 2  # it could not know what the pruned entries said


async def test_a_transfer_moves_the_counts(store_url, kafka_bootstrap, tmp_path):
    async with running_catalog(store_url, kafka_bootstrap, tmp_path, facet_cache_s=0) as api:
        seller, buyer = f"org-s-{uuid.uuid4().hex[:6]}", f"org-b-{uuid.uuid4().hex[:6]}"
        await api.register_org(name="甲大学", org_id=seller)
        aid = (await api.published(seller, ip_records=rec()))["achievement_id"]
        await api.published(seller, ip_records=rec())
        assert counts(await same(api, BUYER), "status") == {"published": 2}
        tid = str(uuid.uuid4())
        await produce(kafka_bootstrap, TRANSFER_TOPIC, [transfer_event("signed", tid, [aid], seller, buyer)])

        async def status_is(status):
            r = await api.get(f"{A}/{aid}", BUYER)
            return r.json()["status"] == status

        await eventually(lambda: status_is("under_negotiation"))
        assert counts(await same(api, BUYER), "status") == {"published": 1, "under_negotiation": 1}
        await produce(kafka_bootstrap, TRANSFER_TOPIC, [
            transfer_event("completed", tid, [aid], seller, buyer, completed_at="2026-06-01T08:00:00Z")])
        await eventually(lambda: status_is("transferred"))
        assert (await same(api, BUYER))["total"] == 1
        body = await same(api, BUYER, status=["published", "transferred"])
        assert counts(body, "status") == {"published": 1, "transferred": 1}


async def test_listings_of_one_instant_page_by_id_either_way(replicas, store_url):
    """A bulk import lists its rows at one instant: recency pages then run on the id alone."""
    a, b = replicas
    u = f"org-t-{uuid.uuid4().hex[:6]}"
    await a.register_org(name="甲大学", org_id=u)
    rows = [achievement(trl=1 + n % 3, ip_records=rec()) for n in range(7)]
    r = await a.post(f"{A}/import", who(u, "institution"),
                     content="\n".join(json.dumps(x, ensure_ascii=False) for x in rows).encode(),
                     headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200 and r.json()["imported"] == 7, r.text
    engine = create_async_engine(store_url)
    try:
        async with engine.connect() as conn:
            instants = (await conn.execute(text("SELECT count(DISTINCT listed_at) FROM achievements "
                                                "WHERE owner_org_id = :u"), {"u": u})).scalar_one()
    finally:
        await engine.dispose()
    assert instants == 1
    for params in ({"sort": "recency"}, {"q": "电池", "sort": "recency"}, {"q": "电池"}):
        assert len(await pages(b, REVIEWER, 2, status="draft", **params)) == 7, params


async def test_searches_running_together_while_another_replica_writes(replicas):
    """Searches interleave on one process while another publishes: each answer is whole (its
    facets add up to its total) although the columns move between and during them."""
    a, b = replicas
    u = f"org-c-{uuid.uuid4().hex[:6]}"
    await a.register_org(name="甲大学", org_id=u)
    await a.published(u, trl=2, ip_records=rec())
    await same(b, BUYER)

    async def writer():
        for n in range(6):
            await a.published(u, trl=1 + n, ip_records=rec())

    async def searcher(params):
        for _ in range(8):
            r = await b.get(A, BUYER, params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            assert sum(counts(body, "trl").values()) == body["total"] == sum(counts(body, "ip_type").values())
            assert 1 <= body["total"] <= 7

    await asyncio.gather(writer(), searcher({}), searcher({"q": "电池"}), searcher({"q": "battery", "sort": "recency"}),
                         searcher({"trl_max": 9, "limit": 2}))
    body = await same(b, BUYER)
    assert body["total"] == 7


async def test_a_search_s_facets_belong_to_the_state_its_page_was_taken_from(replicas):
    """Between one search's page and its facets (the documents are read in between) another
    search may bring the columns up to date: the first still answers from one state."""
    a, b = replicas
    u = f"org-f-{uuid.uuid4().hex[:6]}"
    await a.register_org(name="甲大学", org_id=u)
    await a.published(u, trl=2, ip_records=rec())
    q, viewer = SearchQuery(statuses=(Status.published, Status.under_negotiation)), Viewer(org=None, reviewer=False)
    reader = b.app.state.catalog_reader
    async with reader.session() as s1:
        first = Search(s1)
        page = await first.run(q, viewer)
        await a.published(u, trl=5, ip_records=rec())
        async with reader.session() as s2:
            second = Search(s2)
            later = await second.run(q, viewer)
            later_facets = await second.facets(q, viewer)
        facets = await first.facets(q, viewer)
    assert page.total == 1 and facets["trl"] == [{"value": 2, "count": 1}]
    assert later.total == 2 and sum(f["count"] for f in later_facets["trl"]) == 2


def test_id_order_merged_with_new_ids_equals_a_full_sort():
    """Ties are broken by id through each row's place in id order; achievements added since
    are merged into it rather than sorted anew, which must give the same order."""
    import random

    cols = store_search.SearchColumns(pg=False)
    rnd = random.Random(5)
    for step in range(40):
        cols.ids += [uuid.UUID(int=rnd.getrandbits(128)).hex[: rnd.randint(3, 32)] for _ in range(rnd.randint(0, 30))]
        ordered, order, rank = cols._ids_sorted()
        assert list(ordered) == sorted(cols.ids), step
        assert [cols.ids[i] for i in order] == list(ordered)
        assert sorted(range(len(order)), key=lambda r: rank[r]) == list(order)
