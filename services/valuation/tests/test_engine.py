"""The valuation as a whole: known answers through the engine, properties, determinism, refusals."""

from datetime import date

import pytest
from hypothesis import given, settings, strategies as st

from techbridge_valuation.domain.assumptions import Assumptions
from techbridge_valuation.domain.engine import AssumptionsRefused, value
from techbridge_valuation.domain.subject import IpRecord, protection
from techbridge_valuation.domain.defaults import CURRENT

from valuation_helpers import TEXTBOOK_REVENUES, TODAY, subject, transfer


def run(body: dict, subj=None, transfers=(), today=TODAY):
    return value(subj or subject(), list(transfers), Assumptions.model_validate(body), today)


def textbook(**income) -> dict:
    inc = {"revenues": TEXTBOOK_REVENUES, "royalty_rate": 0.05, "discount_rate": 0.12, "tax_rate": 0.25}
    inc.update(income)
    return {"methods": ["income"], "income": inc, "simulation": {"paths": 1000}}


def method(result, name):
    return next(m for m in result.methods if m.method == name)


def test_textbook_relief_from_royalty_in_fen():
    r = run(textbook())
    assert method(r, "income").value == 15_916_792  # CNY 159,167.92
    assert r.conclusion.mid.amount == 15_916_792 == r.conclusion.low.amount == r.conclusion.high.amount
    assert any("fixed figure" in reason for reason in r.conclusion.reasons)


def test_textbook_with_tax_amortisation_benefit_in_fen():
    r = run(textbook(tax_amortisation_benefit=True))
    m = method(r, "income")
    assert m.value == 19_416_376  # CNY 194,163.76
    assert m.details["tab_factor"] == pytest.approx(1.219867, abs=1e-6)
    assert m.details["pv_after_tax_royalties"] == 15_916_792


def test_defaults_come_from_the_table_and_are_recorded_with_their_source():
    r = run({"methods": ["income"], "income": {"revenues": TEXTBOOK_REVENUES}, "simulation": {"paths": 1000}})
    inputs = {i.name: i for i in r.inputs}
    ry = CURRENT.industry("energy_batteries").royalty_rate
    assert inputs["income.royalty_rate"].base == ry.mode
    assert "Parr" in inputs["income.royalty_rate"].source
    assert inputs["income.discount_rate"].base == CURRENT.discount_rate_by_trl[6].mode
    assert inputs["tax_rate"].base == 0.25 and "Income Tax Law" in inputs["tax_rate"].source
    assert r.table_version == CURRENT.version
    # Defaults are ranges, so the conclusion is a range
    assert r.conclusion.low.amount < r.conclusion.mid.amount < r.conclusion.high.amount


def test_same_request_and_seed_give_the_same_numbers_and_another_seed_does_not():
    body = textbook(royalty_rate={"dist": "triangular", "low": 0.03, "mode": 0.05, "high": 0.08},
                    discount_rate={"dist": "lognormal", "median": 0.15, "sigma": 0.2},
                    revenue_scale={"dist": "uniform", "low": 0.7, "high": 1.2})
    body["simulation"] = {"paths": 5000, "seed": 42}
    a, b = run(body), run(body)
    assert a.model_dump() == b.model_dump()
    body["simulation"]["seed"] = 43
    c = run(body)
    assert c.simulation.percentiles != a.simulation.percentiles
    assert sum(a.simulation.histogram.counts) == 5000


def test_percentiles_straddle_the_median_and_tornado_ranks_the_widest_input_first():
    body = textbook(royalty_rate={"dist": "triangular", "low": 0.01, "mode": 0.05, "high": 0.15},
                    discount_rate={"dist": "uniform", "low": 0.11, "high": 0.13})
    r = run(body)
    p = r.simulation.percentiles
    assert p.p10 < p.p50 < p.p90
    assert r.tornado[0].input == "income.royalty_rate"
    assert r.tornado[0].value_at_low < r.tornado[0].value_at_high
    assert [b.swing for b in r.tornado] == sorted((b.swing for b in r.tornado), reverse=True)


@settings(max_examples=40, deadline=None)
@given(
    royalty=st.floats(0.005, 0.3),
    r1=st.floats(0.01, 0.9),
    r2=st.floats(0.01, 0.9),
    tab=st.booleans(),
)
def test_value_falls_as_the_discount_rate_rises(royalty, r1, r2, tab):
    lo, hi = sorted((r1, r2))
    a = method(run(textbook(royalty_rate=royalty, discount_rate=lo, tax_amortisation_benefit=tab)), "income").value
    b = method(run(textbook(royalty_rate=royalty, discount_rate=hi, tax_amortisation_benefit=tab)), "income").value
    assert a >= b


@settings(max_examples=40, deadline=None)
@given(rate=st.floats(0.01, 0.9), y1=st.floats(0.001, 0.5), y2=st.floats(0.001, 0.5))
def test_value_rises_with_the_royalty_rate(rate, y1, y2):
    lo, hi = sorted((y1, y2))
    a = method(run(textbook(royalty_rate=lo, discount_rate=rate)), "income").value
    b = method(run(textbook(royalty_rate=hi, discount_rate=rate)), "income").value
    assert a <= b


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    low=st.floats(0.01, 0.1), spread=st.floats(0.001, 0.2), sigma=st.floats(0.01, 1.0),
)
def test_p10_p50_p90_are_ordered_for_any_seed_and_distribution(seed, low, spread, sigma):
    body = textbook(royalty_rate={"dist": "uniform", "low": low, "high": low + spread},
                    revenue_scale={"dist": "lognormal", "median": 1.0, "sigma": sigma})
    body["simulation"] = {"paths": 1000, "seed": seed}
    r = run(body)
    p = r.simulation.percentiles
    assert p.p10 <= p.p50 <= p.p90
    assert r.conclusion.low.amount <= r.conclusion.mid.amount <= r.conclusion.high.amount


def refused(body, **kw) -> dict[str, str]:
    with pytest.raises(AssumptionsRefused) as e:
        run(body, **kw)
    return dict(e.value.errors)


def test_a_discount_rate_of_300_percent_is_refused_naming_the_field():
    errors = refused(textbook(discount_rate=3.0))
    assert "income.discount_rate" in errors and "300 %" in errors["income.discount_rate"]


def test_a_life_beyond_the_patent_term_is_refused_unless_acknowledged():
    # Filed 2008-06-01: the patent ends 2028-06-01, 1.5 years after the valuation date.
    old = subject(filed=date(2008, 6, 1))
    errors = refused(textbook(life_years=5), subj=old)
    assert "income.life_years" in errors and "2028-06-01" in errors["income.life_years"]
    r = run(textbook(life_years=5, life_beyond_patent_term=True), subj=old)
    assert any("beyond the patent term" in w for w in r.warnings)
    assert method(r, "income").details["years"] == 5


def test_a_forecast_longer_than_the_patent_is_cut_with_a_warning():
    old = subject(filed=date(2008, 6, 1))
    r = run(textbook(), subj=old)
    assert method(r, "income").details["years"] == 2
    assert any("only the first 2" in w for w in r.warnings)


def test_unusual_but_possible_figures_are_warnings_not_refusals():
    r = run(textbook(royalty_rate=0.3, discount_rate=0.8))
    assert any("royalty of 30.0%" in w for w in r.warnings)
    assert any("discount rate of 80%" in w for w in r.warnings)


def test_missing_sections_and_unknown_indicators_are_named():
    errors = refused({"methods": ["income", "cost"], "scorecard": {"ratings": {"legal.nonsense": 3}}})
    assert set(errors) >= {"income", "cost", "scorecard.ratings.legal.nonsense"}


def test_an_unknown_defaults_table_version_is_refused_and_a_known_one_is_recorded():
    assert "table_version" in refused({**textbook(), "table_version": "1999.1"})
    assert run({**textbook(), "table_version": "2026.1"}).table_version == "2026.1"


def test_market_alone_without_comparables_is_refused():
    errors = refused({"methods": ["market"]})
    assert "methods" in errors


def test_market_comparables_are_adjusted_listed_and_weighted():
    comps = [
        transfer(1, 100_000_000, trl=6, mode="assignment", territory="CN"),
        transfer(2, 100_000_000, trl=4, mode="non_exclusive_licence", exclusive=False, territory="CN"),
        transfer(3, 100_000_000, ipc=("G06F 17/00",), fields=("energy storage",), trl=6, territory="worldwide"),
        transfer(4, 999_000_000, ipc=("A61K 31/00",)),  # unrelated: not a comparable
        transfer(5, None, bp=350),  # royalty only: evidence, not priced
    ]
    r = run({"methods": ["market"], "simulation": {"paths": 2000}}, transfers=comps)
    listed = {c.transfer_id: c for c in r.comparables}
    assert set(listed) == {"tr-1", "tr-2", "tr-3"}
    assert listed["tr-1"].adjusted_price.amount == 100_000_000  # same TRL, mode, territory
    # TRL 4 -> 6: success 0.15 -> 0.35; non-exclusive -> assignment: 0.5 -> 1.0
    assert listed["tr-2"].trl_factor == pytest.approx(0.35 / 0.15, abs=1e-6)
    assert listed["tr-2"].adjusted_price.amount == round(100_000_000 * 0.35 / 0.15 * 2)
    # Worldwide deal, subject China-only: scaled down; matched by field, half the weight
    assert listed["tr-3"].territory_factor == pytest.approx(0.7)
    assert listed["tr-3"].similarity_weight == 0.5 and listed["tr-3"].match.startswith("field")
    assert [e.transfer_id for e in r.royalty_evidence] == ["tr-5"]
    assert r.conclusion.low.amount <= r.conclusion.mid.amount <= r.conclusion.high.amount


def test_early_stage_weights_lean_on_cost_and_options_and_say_why():
    body = {
        "income": {"revenues": TEXTBOOK_REVENUES, "royalty_rate": 0.05, "discount_rate": 0.5},
        "cost": {"items": [{"label": "research staff", "amount": 50_000_000}]},
        "simulation": {"paths": 1000},
    }
    early = run(body, subj=subject(trl=2))
    late = run(body, subj=subject(trl=8))
    assert early.conclusion.weights["cost"] > late.conclusion.weights["cost"]
    assert sum(early.conclusion.weights.values()) == pytest.approx(1.0)
    assert "TRL 2" in method(early, "cost").weight_reason


def test_requester_weights_override_and_are_normalised():
    body = {
        "income": {"revenues": TEXTBOOK_REVENUES, "royalty_rate": 0.05, "discount_rate": 0.12},
        "cost": {"items": [{"label": "staff", "amount": 10_000_000}], "technological_obsolescence": 0},
        "weights": {"income": 0.6, "cost": 0.2},
        "simulation": {"paths": 1000},
    }
    r = run(body)
    assert r.conclusion.weights == {"income": 0.75, "cost": 0.25}  # 0.6 : 0.2 normalised
    assert r.conclusion.mid.amount == round(0.75 * 15_916_792 + 0.25 * 10_000_000)


def test_cost_approach_ages_by_the_elapsed_patent_term_by_default():
    body = {"methods": ["cost"], "cost": {"items": [{"label": "staff", "amount": 100_000_000}]},
            "simulation": {"paths": 1000}, "valuation_date": "2030-01-01"}
    r = run(body)  # filed 2020-01-01, 20-year term, 10 years left: half aged
    inputs = {i.name: i for i in r.inputs}
    assert inputs["cost.technological_obsolescence"].base == pytest.approx(0.5, abs=1e-3)
    assert method(r, "cost").value == pytest.approx(50_000_000, rel=1e-3)


def test_real_option_on_rnpv_underlying_for_an_early_result():
    body = {
        "income": {"revenues": [0, 0, 200_000_000, 300_000_000, 400_000_000], "royalty_rate": 0.05, "discount_rate": 0.5},
        "rnpv": {"margin": 0.2, "development_costs": [30_000_000, 30_000_000]},
        "real_option": {"investment_cost": 100_000_000, "years": 2, "volatility": 0.5},
        "simulation": {"paths": 1000},
    }
    r = run(body, subj=subject(trl=3))
    ro = method(r, "real_option")
    assert ro.value > 0 and ro.details["underlying"] == method(r, "rnpv").details["pv_operating_unrisked"]
    assert "TRL 3" in ro.weight_reason


def test_protection_counts_live_records_only_and_reads_expiry_dates():
    s = subject(filed=None, ip_records=(
        IpRecord(number="A", filing_date=date(2010, 1, 1), legal_status="lapsed"),
        IpRecord(number="B", expiry_date=date(2031, 11, 26), legal_status="valid", grant_date=date(2015, 1, 1)),
    ))
    p = protection(s, TODAY, CURRENT)
    assert p.ends_on == date(2031, 11, 26) and p.remaining_years == pytest.approx(5.0, abs=0.01)
    assert any("lapsed" in n for n in p.notes)


def test_know_how_needs_a_stated_life():
    s = subject(filed=None, ip_type="know_how")
    errors = refused({"methods": ["income"], "income": {"first_year_revenue": 1_000_000, "royalty_rate": 0.05}}, subj=s)
    assert "income.life_years" in errors
    r = run({"methods": ["income"], "income": {"first_year_revenue": 1_000_000, "growth_rate": 0.1, "life_years": 3,
             "royalty_rate": 0.1, "discount_rate": 0.1, "tax_rate": 0}, "simulation": {"paths": 1000}}, subj=s)
    expected = sum(1_000_000 * 1.1 ** (t - 1) * 0.1 / 1.1 ** t for t in (1, 2, 3))
    assert method(r, "income").value == round(expected)


def test_scorecard_fills_what_facts_tell_and_keeps_the_requesters_ratings():
    r = run({**textbook(), "scorecard": {"ratings": {"legal.scope": 5, "technology.maturity": 2}}})
    ind = {i.indicator: i for i in r.scorecard.indicators}
    assert ind["technology.maturity"].rating == 2 and ind["technology.maturity"].source == "requester"
    assert ind["legal.remaining_term"].rating == 4  # 13 years left
    assert r.scorecard.categories["legal"] == pytest.approx(4.5)
    assert r.scorecard.categories["finance"] is None


@settings(max_examples=30, deadline=None)
@given(k=st.floats(0.1, 10), royalty=st.floats(0.01, 0.3), rate=st.floats(0.02, 0.6))
def test_income_value_is_proportional_to_the_revenue_forecast(k, royalty, rate):
    base = method(run(textbook(royalty_rate=royalty, discount_rate=rate)), "income").value
    scaled = method(run(textbook(royalty_rate=royalty, discount_rate=rate, revenue_scale=k)), "income").value
    assert scaled == pytest.approx(base * k, rel=1e-6, abs=1)


@settings(max_examples=30, deadline=None)
@given(f1=st.floats(0, 0.95), f2=st.floats(0, 0.95), which=st.sampled_from(
    ["functional_obsolescence", "technological_obsolescence", "economic_obsolescence"]))
def test_more_obsolescence_never_raises_the_cost_value(f1, f2, which):
    lo, hi = sorted((f1, f2))

    def cost(x):
        body = {"methods": ["cost"], "simulation": {"paths": 1000},
                "cost": {"items": [{"label": "staff", "amount": 80_000_000}], "technological_obsolescence": 0.1, which: x}}
        return method(run(body), "cost").value

    assert cost(lo) >= cost(hi)


@settings(max_examples=20, deadline=None)
@given(trl=st.integers(1, 9), seed=st.integers(0, 1000))
def test_the_conclusion_is_never_negative_and_weights_sum_to_one(trl, seed):
    body = {
        "income": {"revenues": [0, 0, 50_000_000], "royalty_rate": 0.05, "discount_rate": 0.3},
        "rnpv": {"margin": {"dist": "uniform", "low": -0.2, "high": 0.1}, "development_costs": [90_000_000]},
        "cost": {"items": [{"label": "staff", "amount": 1_000_000}]},
        "simulation": {"paths": 1000, "seed": seed},
    }
    r = run(body, subj=subject(trl=trl))
    assert r.conclusion.low.amount >= 0
    assert sum(r.conclusion.weights.values()) == pytest.approx(1.0)
    assert method(r, "rnpv").value < 0  # reported as computed ...
    weighted = sum(m.weight * max(m.value, 0) for m in r.methods)
    assert r.conclusion.base_case == pytest.approx(weighted, abs=2)  # ... and counted as 0 in the conclusion


def _uncertain(lo: float, hi: float):
    num = st.floats(lo, hi, allow_nan=False)
    return st.one_of(
        num,
        st.tuples(num, num, num).map(lambda t: sorted(t)).filter(lambda t: t[0] < t[2]).map(
            lambda t: {"dist": "triangular", "low": t[0], "mode": t[1], "high": t[2]}),
        st.tuples(st.floats(max(lo, 1e-6), max(hi, 1e-6)), st.floats(0.01, 1.5)).map(
            lambda t: {"dist": "lognormal", "median": t[0], "sigma": t[1]}),
        st.tuples(num, num).map(sorted).filter(lambda t: t[0] < t[1]).map(
            lambda t: {"dist": "uniform", "low": t[0], "high": t[1]}),
    )


@settings(max_examples=60, deadline=None)
@given(
    trl=st.integers(1, 9),
    royalty=_uncertain(-0.1, 0.7), discount=_uncertain(-0.2, 1.5), tax=_uncertain(-0.1, 0.8),
    margin=_uncertain(-1.5, 1.5), vol=_uncertain(-0.1, 3.5), obsolescence=_uncertain(-0.2, 1.2),
    life=st.one_of(st.none(), st.integers(1, 50)), tab=st.booleans(),
)
def test_any_assumptions_give_a_result_or_a_refusal_never_a_crash(trl, royalty, discount, tax, margin, vol,
                                                                   obsolescence, life, tab):
    body = {
        "income": {"revenues": TEXTBOOK_REVENUES, "royalty_rate": royalty, "discount_rate": discount, "tax_rate": tax,
                   "life_years": life, "tax_amortisation_benefit": tab, "life_beyond_patent_term": True},
        "rnpv": {"margin": margin, "development_costs": [10_000_000]},
        "cost": {"items": [{"label": "staff", "amount": 10_000_000}], "functional_obsolescence": obsolescence},
        "real_option": {"investment_cost": 50_000_000, "years": 2, "volatility": vol},
        "simulation": {"paths": 1000},
    }
    try:
        r = run(body, subj=subject(trl=trl), transfers=[transfer(1, 10_000_000)])
    except AssumptionsRefused as e:
        assert e.errors and all(f and m for f, m in e.errors)
        return
    assert r.conclusion.low.amount <= r.conclusion.mid.amount <= r.conclusion.high.amount


def test_a_listing_that_is_no_longer_live_is_valued_with_a_warning():
    assert not any("no longer" in w or "withdrawn" in w for w in run(textbook(), subj=subject(status="under_negotiation")).warnings)
    r = run(textbook(), subj=subject(status="withdrawn"))
    assert any("The achievement is withdrawn" in w for w in r.warnings)
