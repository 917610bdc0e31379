"""Each valuation formula against hand-computed and published textbook figures."""

import math

import numpy as np
import pytest

from techbridge_valuation.domain import methods as fx
from techbridge_valuation.domain.money import to_minor

REVENUES = [1.0e6, 1.1e6, 1.2e6, 1.3e6, 1.4e6]


def test_relief_from_royalty_known_answer_without_amortisation_benefit():
    r = fx.relief_from_royalty(REVENUES, 0.05, 0.25, 0.12)
    # 37,500/1.12 + 41,250/1.12^2 + 45,000/1.12^3 + 48,750/1.12^4 + 52,500/1.12^5
    assert float(r["value"][0]) == pytest.approx(159_167.92, abs=0.005)


def test_relief_from_royalty_known_answer_with_amortisation_benefit():
    r = fx.relief_from_royalty(REVENUES, 0.05, 0.25, 0.12, amortisation_years=5)
    assert float(r["tab_factor"][0]) == pytest.approx(1.219867, abs=5e-7)
    assert float(r["value"][0]) == pytest.approx(194_163.76, abs=0.005)


def test_a_forecast_per_path_and_a_shared_forecast_give_the_same_values():
    shared = fx.relief_from_royalty(REVENUES, [0.05, 0.06], 0.25, [0.12, 0.2], revenue_scale=[1.0, 0.5])["value"]
    per_path = fx.relief_from_royalty([REVENUES, [r * 0.5 for r in REVENUES]], [0.05, 0.06], 0.25, [0.12, 0.2])["value"]
    assert shared.tolist() == pytest.approx(per_path.tolist())
    assert shared[0] == pytest.approx(159_167.92, abs=0.005)


def test_mid_year_convention_lifts_value_by_half_a_year_of_discounting():
    end = fx.relief_from_royalty(REVENUES, 0.05, 0.25, 0.12)["value"][0]
    mid = fx.relief_from_royalty(REVENUES, 0.05, 0.25, 0.12, mid_year=True)["value"][0]
    assert mid == pytest.approx(end * math.sqrt(1.12))


def test_annuity_factor_matches_the_closed_form():
    # (1 - 1.12^-5) / 0.12 = 3.604776
    assert float(fx.annuity_factor(0.12, 5)[0]) == pytest.approx(3.604776, abs=1e-6)


@pytest.mark.parametrize(
    "spot, strike, rate, vol, years, expected",
    [
        (42, 40, 0.10, 0.20, 0.5, 4.7594),   # Hull, Options, Futures and Other Derivatives, example 15.6
        (100, 100, 0.05, 0.20, 1.0, 10.4506),  # the at-the-money textbook case
    ],
)
def test_black_scholes_call_known_answers(spot, strike, rate, vol, years, expected):
    assert float(fx.black_scholes_call(spot, strike, rate, vol, years)[0]) == pytest.approx(expected, abs=5e-5)


def test_black_scholes_call_is_vectorised_and_never_negative():
    v = fx.black_scholes_call(np.array([0.0, 10.0, 200.0]), 100, 0.02, 0.4, 2)
    assert v[0] == 0.0 and 0 < v[1] < v[2]
    assert v[2] >= 200 - 100 * math.exp(-0.04)  # at least the discounted intrinsic value


def test_risk_adjusted_npv_weighs_operating_cash_by_success_and_deducts_costs():
    # Revenue 1,000 in years 2 and 3, margin 20 %, tax 25 % -> 150 a year; p = 0.5; cost 100 in year 1; r = 10 %.
    r = fx.risk_adjusted_npv([0, 1000, 1000], 0.2, 0.25, 0.10, 0.5, [100])
    pv_op = 150 / 1.1**2 + 150 / 1.1**3
    assert float(r["pv_operating"][0]) == pytest.approx(pv_op)
    assert float(r["value"][0]) == pytest.approx(0.5 * pv_op - 100 / 1.1)


def test_cost_approach_applies_obsolescence_in_sequence():
    # 1,000,000 less 10 % functional, then 20 % technological, then 5 % economic = 684,000
    assert float(fx.cost_approach(1_000_000, 0.10, 0.20, 0.05)[0]) == pytest.approx(684_000)


def test_rounding_to_minor_units_happens_once_half_away_from_zero():
    assert to_minor(2.5) == 3 and to_minor(-2.5) == -3 and to_minor(2.4999) == 2
    assert to_minor(15_916_791.770519) == 15_916_792
    with pytest.raises(ValueError):
        to_minor(float("nan"))
