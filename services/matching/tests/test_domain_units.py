"""Domain and retrieval rules without I/O: fast, many, and property-based where they are invariants."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from techbridge_matching.domain import demands as D
from techbridge_matching.domain import transfers as T
from techbridge_matching.domain.common import DeclineReason, TransferMode, region_matches
from techbridge_matching.domain.matching import AchievementFacts, Decline, Outcome, check_constraints, rank
from techbridge_matching.retrieval import ipc
from techbridge_matching.retrieval.engine import HybridIndex
from techbridge_matching.retrieval.text import analyse
from techbridge_shared.errors import Conflict, Forbidden, ValidationFailed

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def demand(**over) -> D.Demand:
    values = dict(id="d1", owner_org_id="sme", title="separator", problem="lithium battery separator shrinks",
                  ipc_codes=("H01M 50/40",), keywords=(), budget=D.Budget(1_000, 50_000), deadline=date(2026, 12, 31),
                  transfer_modes=(TransferMode.assignment,), min_trl=5, region="Shanghai")
    values.update(over)
    return D.Demand(**values)


def facts(aid="a1", **over) -> AchievementFacts:
    values = dict(achievement_id=aid, version=1, owner_org_id="univ", title="t", trl=6, transfer_modes=("assignment",),
                  asking_price=40_000, currency="CNY", negotiable=False, region="Shanghai/Pudong",
                  ipc_codes=("H01M 50/449",), legal_statuses=("granted",))
    values.update(over)
    return AchievementFacts(**values)


# --- IPC -----------------------------------------------------------------------------------

def test_ipc_codes_parse_and_normalise():
    assert ipc.normalise_ipc("h01m10/052") == "H01M 10/052"
    assert ipc.parse_ipc("H01M").path == ("H", "H01", "H01M")
    for bad in ("", "H1M 10/052", "Z01M", "H01M 10/", "battery"):
        with pytest.raises(ValueError):
            ipc.parse_ipc(bad)


def test_ipc_overlap_counts_deeper_agreement_more():
    same_group = ipc.overlap(["H01M 10/052"], ["H01M 10/0525"])
    same_subclass = ipc.overlap(["H01M 10/052"], ["H01M 50/449"])
    other_section = ipc.overlap(["H01M 10/052"], ["A01H 6/46"])
    assert same_group.score > same_subclass.score > other_section.score == 0
    assert same_group.shared == ("H01M 10",) and same_subclass.shared == ("H01M",)


@given(st.lists(st.sampled_from(["H01M 10/052", "H01M 50/449", "G06T 7/73", "A01H 6/46", "C02F 3/30"]), min_size=1, max_size=4))
def test_ipc_overlap_of_a_set_with_itself_is_full(codes):
    assert ipc.overlap(codes, codes).score == 1.0


# --- text ----------------------------------------------------------------------------------

def test_chinese_is_segmented_and_english_stemmed():
    assert {"锂电", "电池", "锂电池", "隔膜"} <= set(analyse("锂电池隔膜"))
    assert analyse("The separators") == analyse("separator")
    assert "the" not in analyse("the battery")


# --- demands -------------------------------------------------------------------------------

def test_demand_transitions():
    d = D.publish(demand(), NOW)
    assert d.status == D.DemandStatus.published
    with pytest.raises(Conflict, match="published -> published"):
        D.publish(d, NOW)
    with pytest.raises(Conflict):
        D.edit(d, title="x")
    assert D.close(d, NOW).status == D.DemandStatus.closed
    with pytest.raises(Conflict, match="closed -> fulfilled"):
        D.fulfil(D.close(d, NOW), NOW)
    with pytest.raises(Conflict):
        D.expire(d, NOW)  # deadline not reached
    assert D.expire(d, datetime(2027, 1, 1, tzinfo=UTC)).status == D.DemandStatus.expired


def test_budget_and_deadline_checks_name_the_field():
    with pytest.raises(ValidationFailed) as e:
        D.check_budget(D.Budget(5, 1))
    assert e.value.errors[0].field == "body.budget_max.amount"
    with pytest.raises(ValidationFailed):
        D.check_budget(D.Budget(None, 10**15))
    with pytest.raises(ValidationFailed):
        D.publish(demand(deadline=date(2026, 1, 1)), NOW)


def test_region_prefixes():
    assert region_matches("Shanghai", "Shanghai/Pudong") and region_matches("Shanghai/Pudong", "Shanghai")
    assert region_matches("Shanghai", "Jiangsu/Suzhou") is False and region_matches(None, "x") is None


# --- constraints and ranking ---------------------------------------------------------------

def test_constraints_met_missed_and_hardness():
    checks = {c.name: c for c in check_constraints(demand(), facts())}
    assert all(c.outcome == Outcome.met for c in checks.values())
    checks = {c.name: c for c in check_constraints(demand(), facts(trl=3, asking_price=90_000, negotiable=True, region="Beijing"))}
    assert checks["trl"].outcome == Outcome.missed and checks["trl"].hard
    assert checks["budget"].outcome == Outcome.missed and not checks["budget"].hard  # negotiable
    assert checks["region"].outcome == Outcome.missed and not checks["region"].hard
    fixed = {c.name: c for c in check_constraints(demand(), facts(asking_price=90_000))}
    assert fixed["budget"].hard
    lapsed = {c.name: c for c in check_constraints(demand(), facts(legal_statuses=("lapsed",)))}
    assert lapsed["ip_status"].outcome == Outcome.missed


class _Cand:
    def __init__(self, doc_id, score):
        from techbridge_matching.retrieval.ipc import IpcOverlap
        self.doc_id, self.score, self.relevance, self.dense = doc_id, score, 0.5, 0.5
        self.matched_terms, self.ipc, self.lexical_rank, self.dense_rank = ["x"], IpcOverlap(0.0, ()), 1, 1


achievement_strategy = st.builds(
    lambda i, trl, price, neg, modes, region: facts(f"a{i}", trl=trl, asking_price=price, negotiable=neg,
                                                   transfer_modes=tuple(modes), region=region),
    st.integers(0, 10_000), st.one_of(st.none(), st.integers(1, 9)), st.one_of(st.none(), st.integers(0, 100_000)),
    st.booleans(), st.lists(st.sampled_from([m.value for m in TransferMode]), max_size=3),
    st.sampled_from([None, "Shanghai/Pudong", "Beijing"]),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(achievement_strategy, min_size=1, max_size=15, unique_by=lambda f: f.achievement_id),
       st.lists(st.floats(0.001, 1.0), min_size=15, max_size=15))
def test_ranking_never_returns_hard_misses_and_is_sorted(achievements, scores):
    d = demand()
    hits = rank(d, [(_Cand(a.achievement_id, s), a) for a, s in zip(achievements, scores, strict=False)], [], limit=50)
    for h in hits:
        assert not any(c.hard and c.outcome == Outcome.missed for c in h.checks)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    passing = [a for a in achievements
               if not any(c.hard and c.outcome == Outcome.missed for c in check_constraints(d, a))]
    assert {h.achievement_id for h in hits} == {a.achievement_id for a in passing}


def test_declines_exclude_the_declined_and_demote_look_alikes():
    d = demand()
    cheap, dear, dearer = facts("cheap", asking_price=10_000), facts("dear", asking_price=30_000), facts("dearer", asking_price=35_000)
    cands = [(_Cand("dear", 0.9), dear), (_Cand("dearer", 0.8), dearer), (_Cand("cheap", 0.5), cheap)]
    before = [h.achievement_id for h in rank(d, cands, [], 10)]
    assert before == ["dear", "dearer", "cheap"]
    after = rank(d, cands, [Decline("dear", DeclineReason.price, dear)], 10)
    # The declined one is gone; the one priced like it drops below the cheaper one.
    assert [h.achievement_id for h in after] == ["cheap", "dearer"]
    assert after[1].score == pytest.approx(0.8 * 0.6) and "price" in after[1].adjustments[0]


# --- retrieval -----------------------------------------------------------------------------

def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


DOCS = {
    "sep": "Ceramic-coated separator keeps lithium-ion batteries from shrinking at high temperature",
    "rice": "Lodging-resistant rice variety with strong stems for typhoon seasons",
    "robot": "Camera calibration and part localisation for robot arms on assembly lines",
    "water": "Moving-bed biofilm reactor removing nitrogen from municipal wastewater",
    "cn": "一种锂电池陶瓷涂覆隔膜及其制备方法",
}


def _index() -> HybridIndex:
    rng = np.random.default_rng(7)
    index = HybridIndex(dimension=8)
    for doc_id, text in DOCS.items():
        index.add(doc_id, text, _unit(rng.normal(size=8)), ["H01M 50/449"] if doc_id in ("sep", "cn") else [])
    return index


@given(st.sampled_from(sorted(DOCS)))
def test_a_query_equal_to_a_document_ranks_it_first(doc_id):
    index = _index()
    hits = index.search(DOCS[doc_id], index.vector(doc_id), k=5)
    assert hits[0].doc_id == doc_id


def test_explanations_name_real_overlaps():
    index = _index()
    query = "lithium battery separator that does not shrink"
    for hit in index.search(query, None, ["H01M 50/40"], k=5):
        doc_terms = set(analyse(DOCS[hit.doc_id]))
        assert set(hit.matched_terms) <= doc_terms & set(analyse(query))
        for cls in hit.ipc.shared:
            assert cls.startswith("H01M")


def test_chinese_demand_finds_chinese_achievement():
    index = _index()
    hits = index.search("需要锂电池隔膜技术", None, k=3)
    assert hits[0].doc_id == "cn" and {"锂电池", "隔膜"} <= set(hits[0].matched_terms)


def test_removed_and_replaced_documents():
    index = _index()
    index.remove("sep")
    assert "sep" not in [h.doc_id for h in index.search(DOCS["sep"], None, k=5)]
    index.add("rice", "lithium separator now", None)
    assert index.search("lithium separator", None, k=1)[0].doc_id in ("rice", "cn")
    assert len(index) == 4


# --- transfers -----------------------------------------------------------------------------

def offer(**over) -> T.Offer:
    values = dict(version=0, made_by_org_id="", mode=TransferMode.exclusive_licence, exclusive=True, territory="CN",
                  term_months=60, price=100, currency="CNY", royalty=None, pricing=T.Pricing.private_agreement)
    values.update(over)
    return T.Offer(**values)


def deal() -> T.Transfer:
    return T.propose(transfer_id="t1", by_org_id="buyer", seller_org_id="seller", buyer_org_id="buyer",
                     achievement_ids=("a1",), offer=offer(), now=NOW)


def test_transfer_lifecycle_with_notice():
    t = T.make_offer(deal(), by_org_id="seller", offer=offer(price=150), based_on_version=1, now=NOW)
    assert t.status == T.TransferStatus.negotiating and [o.price for o in t.offers] == [100, 150]
    t = T.sign(t, by_org_id="seller", offer_version=2, now=NOW, notice_days=15)
    t = T.sign(t, by_org_id="buyer", offer_version=2, now=NOW, notice_days=15)
    assert t.status == T.TransferStatus.in_notice and t.notice_ends_at == NOW + timedelta(days=15)
    with pytest.raises(Conflict, match="in_notice -> completed"):
        T.complete(t, by_org_id="buyer", is_admin=False, now=NOW + timedelta(days=14))
    done = T.complete(t, by_org_id="buyer", is_admin=False, now=NOW + timedelta(days=15))
    assert done.status == T.TransferStatus.completed
    with pytest.raises(Conflict):
        T.cancel(done, by_org_id="buyer", is_admin=False, reason="x", now=NOW)


def test_wrong_party_and_wrong_state_are_refused():
    t = deal()
    with pytest.raises(Forbidden):
        T.make_offer(t, by_org_id="stranger", offer=offer(), based_on_version=1, now=NOW)
    with pytest.raises(Conflict, match="both parties must sign"):
        T.complete(t, by_org_id="buyer", is_admin=False, now=NOW)
    with pytest.raises(Forbidden):
        T.propose(transfer_id="t2", by_org_id="broker", seller_org_id="s", buyer_org_id="b", achievement_ids=("a",),
                  offer=offer(), now=NOW)


def test_a_new_offer_resets_signatures():
    t = T.sign(deal(), by_org_id="seller", offer_version=1, now=NOW, notice_days=15)
    t = T.make_offer(t, by_org_id="buyer", offer=offer(price=90), based_on_version=1, now=NOW)
    assert t.seller_signed_at is None and t.buyer_signed_at is None


@given(st.lists(st.tuples(st.sampled_from(["seller", "buyer"]), st.integers(0, 10**6)), min_size=1, max_size=12))
def test_offers_are_immutable_and_versioned_consecutively(moves):
    t = deal()
    history = list(t.offers)
    for party, price in moves:
        t = T.make_offer(t, by_org_id=party, offer=offer(price=price), based_on_version=t.current.version, now=NOW)
        assert list(t.offers[:-1]) == history  # earlier offers are never changed
        history = list(t.offers)
    assert [o.version for o in t.offers] == list(range(1, len(moves) + 2))
