"""The text a search matches and ranks follows every change, whichever process made it.

On PostgreSQL text hits are matched and ranked on `achievement_search` (migration 0006), a
narrow copy of each achievement's tsvector kept by triggers; on SQLite on the FTS5 table.
Both ways (in-memory columns and SQL alone) must find an edited title's new words and no
longer its old ones, follow withdrawal and a transfer, and on PostgreSQL the narrow table
must hold exactly the vectors of the achievement rows, be rewritten only when a vector
changes (not by a status change), and lose a deleted achievement's row. On SQLite a search
whose filters keep few of its hits scores only those (bm25 is most of a common word's cost),
and any other takes from SQLite only the best-scored hits its page can come from (more when
a tie straddles the cut), with the same scores and order as when every hit is scored."""

from __future__ import annotations

import uuid

import pytest
from catalog_helpers import eventually, produce, who
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from test_consumers import TRANSFER_TOPIC, transfer_event
from search_corpus import U2, U3
from test_search_columns import (  # noqa: F401 (corpus, replicas: fixtures)
    BUYER, REVIEWER, columns_of, corpus, pages, rec, replicas, same)

from techbridge_catalog.store import search as store_search
from techbridge_catalog.store.search import Search

pytestmark = pytest.mark.timeout(240)

A = "/api/v1/catalog/achievements"


async def found(api, identity, word: str, **params) -> list[str]:
    """Ids a text search finds, asked from the columns and by SQL alone (which must agree)."""
    body = await same(api, identity, q=word, limit=100, **params)
    return [i["achievement_id"] for i in body["items"]]


async def narrow_table_mismatches(store_url: str) -> int:
    engine = create_async_engine(store_url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(
                "SELECT count(*) FROM achievements a FULL JOIN achievement_search s ON s.id = a.id "
                "WHERE a.search_vector IS DISTINCT FROM s.search_vector"))).scalar_one()
    finally:
        await engine.dispose()


async def test_text_edits_withdrawal_and_transfer_by_another_process(replicas, store_url, kafka_bootstrap):
    a, b = replicas
    seller, buyer = f"org-s-{uuid.uuid4().hex[:6]}", f"org-b-{uuid.uuid4().hex[:6]}"
    await a.register_org(name="甲大学", org_id=seller)
    owner = who(seller, "institution")
    first = await a.published(seller, title_en="Zebrafish cardiac imaging platform", ip_records=rec())
    other = await a.published(seller, title_en="Zebrafish larvae sorting robot", ip_records=rec())
    aid = first["achievement_id"]
    assert sorted(await found(b, BUYER, "zebrafish")) == sorted([aid, other["achievement_id"]])
    assert await found(b, BUYER, "cardiac") == [aid]

    # The title edited by the other process: its new words found at once, its old ones no more.
    r = await a.patch(f"{A}/{aid}", owner, headers={"If-Match": f'"{first["version"]}"'},
                      json={"title_en": "Axolotl limb regeneration assay"})
    assert r.status_code == 200, r.text
    assert await found(b, BUYER, "axolotl") == [aid]
    assert await found(b, BUYER, "cardiac") == []
    assert await found(b, BUYER, "zebrafish") == [other["achievement_id"]]

    # Withdrawn: public searches no longer find it, its owner still does (asking for withdrawn ones).
    assert (await a.act(other["achievement_id"], "withdraw", owner)).status_code == 200
    assert await found(b, BUYER, "zebrafish") == []
    assert await found(b, BUYER, "zebrafish", status=["withdrawn"]) == []
    assert await found(b, owner, "zebrafish", status=["withdrawn"]) == [other["achievement_id"]]

    # Transferred (matching's events, consumed by the writing process): found among transferred ones.
    tid = str(uuid.uuid4())
    await produce(kafka_bootstrap, TRANSFER_TOPIC, [transfer_event("signed", tid, [aid], seller, buyer)])
    await produce(kafka_bootstrap, TRANSFER_TOPIC, [
        transfer_event("completed", tid, [aid], seller, buyer, completed_at="2026-06-01T08:00:00Z")])

    async def transferred():
        return (await b.get(f"{A}/{aid}", BUYER)).json()["status"] == "transferred"

    await eventually(transferred)
    assert await found(b, BUYER, "axolotl") == []  # the default: published and under negotiation
    body = await same(b, BUYER, q="axolotl", status=["transferred"])
    assert [i["achievement_id"] for i in body["items"]] == [aid] and body["items"][0]["score"] > 0
    if store_url.startswith("postgresql"):
        assert await narrow_table_mismatches(store_url) == 0


async def test_the_narrow_text_table_changes_only_with_the_vectors(api, store_url):
    if not store_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's narrow text table (SQLite ranks on its FTS5 table)")
    u = f"org-n-{uuid.uuid4().hex[:6]}"
    await api.register_org(name="甲大学", org_id=u)
    listing = await api.published(u, title_en="Perovskite tandem solar cell", ip_records=rec())
    aid = listing["achievement_id"]
    await api.create(u, title_en="Perovskite ink for printing")
    engine = create_async_engine(store_url)
    try:
        async def version_of_row() -> str:  # the row version PostgreSQL gives each write
            async with engine.connect() as conn:
                return (await conn.execute(text("SELECT xmin::text FROM achievement_search WHERE id = :i"),
                                           {"i": aid})).scalar_one()

        assert await narrow_table_mismatches(store_url) == 0
        before = await version_of_row()
        # A status change leaves the vector, and so the narrow row, as it was.
        assert (await api.act(aid, "withdraw", who(u, "institution"))).status_code == 200
        assert await version_of_row() == before
        # A vector changed by a direct write is copied; a deleted achievement's row goes.
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE achievements SET search_vector = to_tsvector('simple', 'gallium') "
                                    "WHERE id = :i"), {"i": aid})
        assert await version_of_row() != before
        assert await narrow_table_mismatches(store_url) == 0
        assert await found(api, who(u, "institution"), "gallium", status=["withdrawn"]) == [aid]
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM achievement_ipc WHERE achievement_id = :i"), {"i": aid})
            await conn.execute(text("DELETE FROM history WHERE aggregate_id = :i"), {"i": aid})
            await conn.execute(text("DELETE FROM achievements WHERE id = :i"), {"i": aid})
        async with engine.connect() as conn:
            left = (await conn.execute(text("SELECT count(*) FROM achievement_search WHERE id = :i"), {"i": aid}))
            assert left.scalar_one() == 0
        assert await narrow_table_mismatches(store_url) == 0
        assert await found(api, who(u, "institution"), "gallium", status=["withdrawn"]) == []
        assert len(await found(api, who(u, "institution"), "perovskite", status=["draft", "withdrawn"])) == 1
    finally:
        await engine.dispose()


# --- SQLite: which hits are scored -------------------------------------------------------------

@pytest.mark.parametrize("params, way", [
    ({"q": "电池"}, "all"),                          # a page of 100 is more than a good part of 5 hits
    ({"q": "电池", "trl_min": 1}, "all"),            # a filter every hit passes: likewise
    ({"q": "电池", "institution": U2}, "filtered"),  # one hit of five passes: only it is scored
    ({"q": "电池", "institution": "org-none"}, "none"),  # none passes: nothing to score
    ({"q": "zyzzyva"}, "none"),                      # no hit at all: likewise
    ({"q": "电池", "sort": "recency"}, "none"),      # a page by listing time needs no score
    ({"q": "电池", "institution": U2, "sort": "recency"}, "none"),
])
async def test_sqlite_scores_only_hits_the_page_can_come_from(corpus, params, way):
    whole = {i["achievement_id"]: i["score"] for i in (await same(corpus, BUYER, q="电池", limit=100))["items"]}
    cols = columns_of(corpus)
    if cols.pg:
        pytest.skip("SQLite's FTS5 scoring (PostgreSQL ranks its narrow table's hits in the match)")
    before = cols.text_ranking.copy()
    body = await same(corpus, BUYER, limit=100, **params)
    assert cols.text_ranking - before == {way: 1}  # (then SQL alone answers it, for the comparison)
    for item in body["items"]:  # the same scores as when every hit is scored
        assert item["score"] == (whole[item["achievement_id"]] if params.get("sort") != "recency" else None)
    if params.get("institution") == U2:
        assert body["total"] == 1 and len(body["items"]) == 1


async def test_sqlite_pages_of_filtered_hits_follow_one_order(corpus):
    """Relevance pages over a filter that keeps few hits (scored apart) cover them once each,
    in the order SQL alone gives."""
    await same(corpus, REVIEWER, q="battery")
    cols = columns_of(corpus)
    before = cols.text_ranking.copy()
    seen = await pages(corpus, REVIEWER, 1, q="battery", institution=U3)
    assert len(seen) > 1
    if not cols.pg:  # two of the five hits pass: each page scored just those
        assert cols.text_ranking - before == {"filtered": len(seen)}


@pytest.fixture
def few_best(monkeypatch):
    """SQLite asks for as few of the best hits as can hold a page, and for every hit only when
    that would be all of them (the defaults ask for hundreds, more than a test corpus has)."""
    monkeypatch.setattr(store_search, "BEST_MARGIN", 1)
    monkeypatch.setattr(store_search, "BEST_EXTRA", 1)
    monkeypatch.setattr(store_search, "BEST_SHARE", 1.01)


@pytest.fixture
def asked(monkeypatch) -> list:
    """How many best hits each SQLite scoring statement asked for (None: every hit)."""
    calls = []
    score = Search._fts_scores

    async def spy(self, q, only=None, best=None):
        calls.append(best)
        return await score(self, q, only=only, best=best)

    monkeypatch.setattr(Search, "_fts_scores", spy)
    return calls


async def quokkas(api, owner: str, drafts: int = 0) -> None:
    """Published listings in three tiers of equal scores (two, six and ten), and drafts that
    score above them all."""
    await api.register_org(name="甲大学", org_id=owner)
    titles = ["Quokka quokka habitat survey"] * 2 + ["Quokka habitat survey"] * 6 + [
        "Quokka habitat survey along the western coastal dunes"] * 10
    for title in titles:
        await api.published(owner, title_en=title, title_zh="袋鼠", ip_records=rec())
    for _ in range(drafts):
        await api.create(owner, title_en="Quokka quokka quokka habitat survey", title_zh="袋鼠", ip_records=rec())


@pytest.mark.parametrize("word", ["battery", "电池"])
async def test_sqlite_pages_from_the_best_hits_follow_one_order(corpus, few_best, word):
    """Pages taken from the best-scored hits alone are those SQL alone gives, hit by hit."""
    cols = columns_of(corpus)
    if cols.pg:
        pytest.skip("SQLite's FTS5 scoring")
    before = cols.text_ranking.copy()
    seen = await pages(corpus, BUYER, 1, q=word)
    assert len(seen) > 2
    assert (cols.text_ranking - before)["best"] >= 1


async def test_sqlite_asks_for_more_best_hits_when_a_tie_straddles_the_cut(api, store_url, few_best, asked):
    """A first page of two needs three hits: the best four end inside the tie of six (which
    of the six SQLite kept is its choice), so only the two above it are known to come first;
    the best sixteen settle it. Every page is the one SQL alone gives."""
    if not store_url.startswith("sqlite"):
        pytest.skip("SQLite's FTS5 scoring")
    await quokkas(api, f"org-q-{uuid.uuid4().hex[:6]}")
    body = await same(api, BUYER, q="quokka", limit=2)
    assert body["total"] == 18
    assert asked[:2] == [4, 16]
    scores = [i["score"] for i in body["items"]]
    assert scores[0] == scores[1]
    assert len(await pages(api, BUYER, 2, q="quokka")) == 18


async def test_sqlite_asks_for_more_best_hits_when_hidden_ones_come_first(api, store_url, few_best, asked):
    """Three drafts score best, and only their owner sees them. A buyer's first page of two
    needs three of the hits the buyer sees (18 of 21): the best four hold the three drafts,
    so the best sixteen are asked for. The drafts never show; every page is the one SQL alone
    gives, the owner's (drafts included) too."""
    if not store_url.startswith("sqlite"):
        pytest.skip("SQLite's FTS5 scoring")
    owner = f"org-q-{uuid.uuid4().hex[:6]}"
    await quokkas(api, owner, drafts=3)
    body = await same(api, BUYER, q="quokka", limit=2)
    assert body["total"] == 18
    assert asked[:2] == [4, 16]
    seen = await pages(api, BUYER, 2, q="quokka")
    assert len(seen) == 18
    mine = await pages(api, who(owner, "institution"), 2, q="quokka", status=["draft", "published"])
    assert len(mine) == 21 and set(seen) < set(mine)
