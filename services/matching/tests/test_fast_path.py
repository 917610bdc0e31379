"""The fast matching path agrees with the per-candidate rules it replaces.

Hard filters as numpy columns, postings searched by binary search, and evidence built only for
the final hits must give the same answers as the straightforward checks."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from techbridge_matching.domain.common import DeclineReason, TransferMode
from techbridge_matching.domain.demands import Budget
from techbridge_matching.domain.matching import Decline, FactsColumns, check_constraints, passes_hard, rank
from techbridge_matching.retrieval.engine import HybridIndex
from techbridge_matching.retrieval.index import BM25Index
from techbridge_matching.usecases.engine import MatchingEngine

from test_domain_units import _Cand, achievement_strategy, demand, facts  # noqa: E402  (same sample records)

MODES = [m.value for m in TransferMode]

facts_strategy = st.builds(
    lambda trl, price, currency, neg, modes: facts(trl=trl, asking_price=price, currency=currency, negotiable=neg,
                                                   transfer_modes=tuple(modes)),
    st.one_of(st.none(), st.integers(-2, 12)), st.one_of(st.none(), st.integers(0, 10**14)),
    st.sampled_from(["CNY", "USD"]), st.booleans(), st.lists(st.sampled_from(MODES + ["barter"]), max_size=4),
)
demand_strategy = st.builds(
    lambda min_trl, lo, hi, currency, modes: demand(min_trl=min_trl, budget=Budget(lo, hi, currency),
                                                    transfer_modes=tuple(TransferMode(m) for m in modes)),
    st.one_of(st.none(), st.integers(1, 9)), st.one_of(st.none(), st.integers(0, 10**6)),
    st.one_of(st.none(), st.integers(0, 10**14)), st.sampled_from(["CNY", "USD"]),
    st.lists(st.sampled_from(MODES), max_size=3),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(facts_strategy, min_size=1, max_size=12), demand_strategy)
def test_column_hard_filters_agree_with_the_constraint_checks(achievements, d):
    columns = FactsColumns()
    for slot, a in enumerate(achievements):
        columns.set(slot, a)
    mask = columns.hard_pass(d, len(achievements))
    assert mask.tolist() == [passes_hard(check_constraints(d, a)) for a in achievements]


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["add", "remove"]), st.integers(0, 8),
                          st.lists(st.sampled_from(["sep", "lith", "cell", "rice", "robot"]), min_size=1, max_size=5)),
                min_size=1, max_size=30))
def test_presence_by_binary_search_matches_the_documents_terms(moves):
    index, docs = BM25Index(), {}
    for op, i, terms in moves:
        if op == "add":
            index.add(f"d{i}", terms)
            docs[f"d{i}"] = set(terms)
        else:
            index.remove(f"d{i}")
            docs.pop(f"d{i}", None)
    ids = sorted(docs)
    slots = np.asarray([index.slot(d) for d in ids], dtype=np.int64)
    present = index.presence(["sep", "lith", "cell", "rice", "robot", "absent"], slots)
    for term in ["sep", "lith", "cell", "rice", "robot"]:
        got = present.get(term, np.zeros(len(ids), dtype=bool)).tolist()
        assert got == [term in docs[d] for d in ids], term


def _engine(n: int, fitting_every: int) -> MatchingEngine:
    """n separator abstracts; only every `fitting_every`-th is offered in a wanted mode."""
    rng = np.random.default_rng(3)
    engine = MatchingEngine(None)
    engine.achievements = HybridIndex(dimension=8)
    for i in range(n):
        modes = ("assignment",) if i % fitting_every == 0 else ("technical_service",)
        a = facts(f"a{i}", transfer_modes=modes, trl=6, asking_price=1_000)
        text = f"ceramic separator lithium battery variant {i} " + " ".join(["coating"] * (i % 7))
        v = rng.normal(size=8).astype(np.float32)
        engine.put_achievement(a.achievement_id, text, v / np.linalg.norm(v), ["H01M 50/449"], a)
    return engine


def test_hard_filters_no_longer_starve_the_page():
    # 300 documents fit the text; only one in ten is offered in a wanted mode. Filtering the
    # whole population first still fills a page of 20 with fitting documents only.
    engine = _engine(300, 10)
    d = demand(problem="ceramic separator for lithium battery", transfer_modes=(TransferMode.assignment,), min_trl=None)
    hits = engine.match_demand(d, None, None, [], 20)
    assert len(hits) == 20
    assert all(f.transfer_modes == ("assignment",) for _, f, _ in hits)
    assert [h.score for h, _, _ in hits] == sorted((h.score for h, _, _ in hits), reverse=True)


def test_declined_achievements_are_masked_and_the_final_hits_carry_evidence():
    engine = _engine(50, 1)
    d = demand(problem="ceramic separator for lithium battery", transfer_modes=(), min_trl=None)
    first = engine.match_demand(d, None, None, [], 5)
    top = first[0][0].achievement_id
    again = engine.match_demand(d, None, None, [Decline(top, DeclineReason.timing, engine.facts[top])], 5)
    assert top not in [h.achievement_id for h, _, _ in again]
    for h, _, expl in again:
        assert h.lexical_rank is not None and h.relevance > 0
        assert {"separator", "lithium", "battery", "ceramic"} <= set(expl["matched_terms"])
        assert expl["shared_ipc"] == ["H01M 50"]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(achievement_strategy, min_size=1, max_size=30, unique_by=lambda f: f.achievement_id),
       st.lists(st.floats(-2.0, 5.0), min_size=30, max_size=30), st.integers(1, 10),
       st.lists(st.sampled_from(list(DeclineReason)), max_size=3))
def test_ranking_stops_early_only_when_nothing_later_can_enter_the_page(achievements, scores, limit, reasons):
    d = demand(region="Beijing")  # most samples miss the region: soft penalties reorder the page
    cands = [(_Cand(a.achievement_id, s), a) for a, s in zip(achievements, scores, strict=False)]
    declines = [Decline(a.achievement_id, r, a) for a, r in zip(achievements[::3], reasons, strict=False)]
    everything = rank(d, cands, declines, limit=len(cands))
    assert [(h.achievement_id, h.score) for h in rank(d, cands, declines, limit)] == \
        [(h.achievement_id, h.score) for h in everything[:limit]]
