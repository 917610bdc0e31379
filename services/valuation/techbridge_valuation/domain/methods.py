"""The valuation formulas, on floats or numpy arrays (one element per Monte Carlo path).

Every function takes arrays shaped (n,) for its uncertain scalars and (n, years) or (years,) for
per-year series, so the point valuation (n = 1) and the Monte Carlo (n = 100,000) run the same
code. Cash flows fall at the end of each year unless `mid_year` is set.
"""

from __future__ import annotations

import math

import numpy as np


def discount_factors(rate, years: int, mid_year: bool = False) -> np.ndarray:
    """(n, years) factors 1/(1+r)^t with t = 1..years (or t - 0.5 with the mid-year convention)."""
    r = np.atleast_1d(np.asarray(rate, dtype=float))[:, None]
    t = np.arange(1, years + 1, dtype=float)[None, :]
    if mid_year:
        t = t - 0.5
    # exp(-t ln(1+r)) equals (1+r)^-t and costs one exp per cell instead of a pow.
    return np.exp(-t * np.log1p(r))


def annuity_factor(rate, years: int) -> np.ndarray:
    """Present value of 1 a year for `years` years at `rate` (end of year): (1 - (1+r)^-n) / r."""
    r = np.atleast_1d(np.asarray(rate, dtype=float))
    safe = np.where(r == 0, 1.0, r)
    return np.where(r == 0, float(years), -np.expm1(-years * np.log1p(r)) / safe)


def tax_amortisation_factor(rate, tax_rate, amortisation_years: int) -> np.ndarray:
    """TAB factor: 1 / (1 - t/n * annuity(r, n)).

    A buyer of the asset deducts its cost over n years for tax; the value of those deductions is
    part of the asset's fair value, so value = PV(after-tax royalties) * factor (Reilly &
    Schweihs, Guide to Intangible Asset Valuation, 2nd ed., ch. 14; AICPA IPR&D guide).
    """
    t = np.atleast_1d(np.asarray(tax_rate, dtype=float))
    return 1.0 / (1.0 - t / amortisation_years * annuity_factor(rate, amortisation_years))


def _pv(series: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Row-wise sum of series x discount factors; a single shared series is a matrix-vector product."""
    if series.shape[0] == 1:
        return df @ series[0]
    return np.einsum("ij,ij->i", series, df)


def _years(revenues) -> np.ndarray:
    rev = np.asarray(revenues, dtype=float)
    return rev[None, :] if rev.ndim == 1 else rev


def relief_from_royalty(
    revenues,
    royalty_rate,
    tax_rate,
    discount_rate,
    *,
    mid_year: bool = False,
    amortisation_years: int | None = None,
    revenue_scale=1.0,
) -> dict[str, np.ndarray]:
    """Relief-from-royalty: PV of the after-tax royalties the owner is spared paying.

    value = sum_t revenue_t x royalty x (1 - tax) / (1 + r)^t, times the tax-amortisation
    factor when `amortisation_years` is given. revenues: (years,) shared by every path or
    (n, years); the scalars: floats or (n,) arrays; `revenue_scale` multiplies the forecast.
    """
    rev = _years(revenues)
    royalty = np.atleast_1d(np.asarray(royalty_rate, dtype=float))
    tax = np.atleast_1d(np.asarray(tax_rate, dtype=float))
    scale = np.atleast_1d(np.asarray(revenue_scale, dtype=float))
    pv_revenue = _pv(rev, discount_factors(discount_rate, rev.shape[1], mid_year)) * scale
    pv = pv_revenue * royalty * (1.0 - tax)
    out = {"pv": pv}
    if amortisation_years:
        factor = tax_amortisation_factor(discount_rate, tax, amortisation_years)
        out["tab_factor"] = factor
        out["value"] = pv * factor
    else:
        out["value"] = pv
    return out


def risk_adjusted_npv(
    revenues,
    margin,
    tax_rate,
    discount_rate,
    success_probability,
    development_costs,
    *,
    mid_year: bool = False,
    revenue_scale=1.0,
) -> dict[str, np.ndarray]:
    """rNPV: development costs are spent (certain); operating cash flows arrive only on success.

    Operating cash flow in year t = revenue_t x margin x (1 - tax). Development costs are a
    per-year series counted from year 1. rNPV = p x sum(CF_t x df_t) - sum(cost_t x df_t).
    Also returns the unrisked PV of operating cash flows (the underlying of a real option).
    """
    rev = _years(revenues)
    costs = np.asarray(development_costs, dtype=float).reshape(1, -1)
    years = max(rev.shape[1], costs.shape[1])
    if rev.shape[1] < years:
        rev = np.pad(rev, ((0, 0), (0, years - rev.shape[1])))
    if costs.shape[1] < years:
        costs = np.pad(costs, ((0, 0), (0, years - costs.shape[1])))
    m = np.atleast_1d(np.asarray(margin, dtype=float))
    tax = np.atleast_1d(np.asarray(tax_rate, dtype=float))
    p = np.atleast_1d(np.asarray(success_probability, dtype=float))
    scale = np.atleast_1d(np.asarray(revenue_scale, dtype=float))
    df = discount_factors(discount_rate, years, mid_year)
    pv_operating = _pv(rev, df) * scale * m * (1.0 - tax)
    pv_costs = df @ costs[0]
    return {
        "value": p * pv_operating - pv_costs,
        "pv_operating": pv_operating,
        "pv_costs": pv_costs,
    }


def cost_approach(base_cost, functional, technological, economic) -> np.ndarray:
    """Reproduction / replacement cost less obsolescence, applied in sequence.

    value = cost * (1 - functional) * (1 - technological) * (1 - economic): each obsolescence
    is a share of what remains after the previous one (Reilly & Schweihs, ch. 12).
    """
    c = np.atleast_1d(np.asarray(base_cost, dtype=float))
    return c * (1 - np.asarray(functional)) * (1 - np.asarray(technological)) * (1 - np.asarray(economic))


def norm_cdf(x) -> np.ndarray:
    x = np.atleast_1d(np.asarray(x, dtype=float))
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


_erf_vec = np.vectorize(math.erf, otypes=[float])


def _erf(x: np.ndarray) -> np.ndarray:
    return _erf_vec(x)


def black_scholes_call(spot, strike, rate, volatility, years) -> np.ndarray:
    """European call (Black & Scholes, 1973): the value of the right, not the duty, to invest.

    For a real option: spot = PV of the cash flows the investment would bring, strike = the
    investment needed, years = how long the decision can wait, volatility = of that PV.
    """
    s = np.atleast_1d(np.asarray(spot, dtype=float))
    k = np.atleast_1d(np.asarray(strike, dtype=float))
    r = np.atleast_1d(np.asarray(rate, dtype=float))
    v = np.atleast_1d(np.asarray(volatility, dtype=float))
    t = float(years)
    safe_s = np.maximum(s, 1e-12)
    sq = v * math.sqrt(t)
    d1 = (np.log(safe_s / k) + (r + 0.5 * v * v) * t) / sq
    d2 = d1 - sq
    value = s * norm_cdf(d1) - k * np.exp(-r * t) * norm_cdf(d2)
    return np.where(s <= 0, 0.0, np.maximum(value, 0.0))
