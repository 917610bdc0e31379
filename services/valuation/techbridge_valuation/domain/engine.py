"""Run a valuation: resolve assumptions against the defaults table, value, simulate, reconcile.

`value(subject, transfers, assumptions, today)` is a pure function: the same subject, deals,
assumptions (with seed) and table version give the same result, to the fen.

Steps
1. Resolve every input (requester's figure, else the defaults table, recording which), check it
   (a refusal names the field; what a person might mean is a warning in the result).
2. Base case: each method on the base values (mode / median / midpoint).
3. Monte Carlo: the same vectorised formulas on `paths` draws from one seeded generator,
   inputs drawn in name order; the conclusion per path is the weighted sum of the methods.
4. Tornado: the conclusion with one input at a time at its P10 and P90 (fixed inputs -/+10 %).
5. Conclusion: P10 / P50 / P90 of the simulated reconciled value, with the weights and reasons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from techbridge_shared.money import Money

from . import methods as fx
from .assumptions import METHOD_LABELS, Assumptions
from .comparables import Comparable, WeightedEmpirical, find_comparables
from .defaults import DefaultsTable, Range, table as defaults_table
from .distributions import Triangular, Uncertain, base_of, bounds_of, describe, is_uncertain
from .money import to_minor, to_minor_floor0
from .result import (
    ComparableOut, Conclusion, Histogram, IndicatorOut, InputOut, MethodOut, Percentiles,
    RoyaltyEvidenceOut, ScorecardOut, SimulationOut, SubjectOut, TornadoBar, ValuationResult,
)
from .scorecard import INDICATORS, score
from .subject import Protection, Subject, Transfer, protection


class AssumptionsRefused(Exception):
    """Assumptions that cannot be valued; each error is (field path in the request, message)."""

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors


@dataclass
class Input:
    name: str
    label: str
    unit: str
    value: Uncertain | WeightedEmpirical
    source: str
    clip: tuple[float, float] = (-math.inf, math.inf)

    @property
    def uncertain(self) -> bool:
        if isinstance(self.value, WeightedEmpirical):
            return self.value.uncertain
        return is_uncertain(self.value)

    @property
    def base(self) -> float:
        return base_of(self.value) if not isinstance(self.value, WeightedEmpirical) else self.value.base

    def quantile(self, p: float) -> float:
        if isinstance(self.value, (int, float)):
            return float(self.value)
        return self.value.quantile(p)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if isinstance(self.value, (int, float)):
            return np.full(n, float(self.value))
        return np.clip(self.value.sample(rng, n), *self.clip)

    def as_json(self):
        if isinstance(self.value, WeightedEmpirical):
            return {"dist": "empirical", "values": [float(v) for v in self.value.values],
                    "weights": [float(p) for p in self.value.p]}
        if isinstance(self.value, (int, float)):
            return float(self.value)
        return self.value.model_dump()


@dataclass
class Model:
    """A resolved valuation problem: inputs by name and the structure the formulas need."""

    methods: list[str]
    inputs: dict[str, Input]
    life: int = 0
    revenues: list[int] | None = None
    launch_year: int = 1
    amortisation_years: int | None = None
    mid_year: bool = False
    development_costs: list[int] = field(default_factory=list)
    cost_items: list[str] = field(default_factory=list)
    option_years: float = 0.0
    option_underlying_from_rnpv: bool = False

    # -- the formulas, vectorised over paths -------------------------------------------
    def revenue_paths(self, x: dict[str, np.ndarray]) -> np.ndarray:
        """(1, life) when the forecast is shared by every path, else (n, life); scale not applied."""
        if self.revenues is not None:
            base = np.array(self.revenues[: self.life], dtype=float)
            if len(base) < self.life:  # hold the last year flat to the end of the life
                last = base[-1] if len(base) else 0.0
                base = np.concatenate([base, np.full(self.life - len(base), last)])
            return base[None, :]
        first = x["income.first_year_revenue"]
        out = np.zeros((len(first), self.life))
        selling = self.life - (self.launch_year - 1)  # years from launch to the end of the life
        if selling > 0:
            k = np.arange(selling, dtype=float)[None, :]
            # first x (1+g)^k, with exp(k ln(1+g)) instead of a pow per cell
            out[:, self.launch_year - 1:] = first[:, None] * np.exp(k * np.log1p(x["income.growth_rate"])[:, None])
        return out

    def evaluate(self, x: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Values by method, and intermediate figures for the report."""
        out: dict[str, np.ndarray] = {}
        extra: dict[str, np.ndarray] = {}
        rev = None
        if "income" in self.methods or "rnpv" in self.methods:
            rev = self.revenue_paths(x)
            extra["revenue_total"] = rev.sum(axis=1) * x["income.revenue_scale"]
        if "income" in self.methods:
            r = fx.relief_from_royalty(
                rev, x["income.royalty_rate"], x["tax_rate"], x["income.discount_rate"],
                mid_year=self.mid_year, amortisation_years=self.amortisation_years,
                revenue_scale=x["income.revenue_scale"],
            )
            out["income"] = r["value"]
            extra["income.pv_before_tab"] = r["pv"]
            if "tab_factor" in r:
                extra["income.tab_factor"] = r["tab_factor"]
        if "rnpv" in self.methods:
            r = fx.risk_adjusted_npv(
                rev, x["rnpv.margin"], x["tax_rate"], x["rnpv.discount_rate"],
                x["rnpv.success_probability"], self.development_costs, mid_year=self.mid_year,
                revenue_scale=x["income.revenue_scale"],
            )
            out["rnpv"] = r["value"]
            extra["rnpv.pv_operating"] = r["pv_operating"]
            extra["rnpv.pv_costs"] = r["pv_costs"]
        if "cost" in self.methods:
            base = sum(x[f"cost.items[{i}]"] for i in range(len(self.cost_items)))
            base = base * (1.0 + x["cost.developer_profit_rate"])
            extra["cost.base"] = base
            out["cost"] = fx.cost_approach(
                base, x["cost.functional_obsolescence"], x["cost.technological_obsolescence"],
                x["cost.economic_obsolescence"],
            )
        if "market" in self.methods:
            out["market"] = x["market.value"]
        if "real_option" in self.methods:
            spot = extra["rnpv.pv_operating"] if self.option_underlying_from_rnpv else x["real_option.underlying_value"]
            extra["real_option.underlying"] = spot
            out["real_option"] = fx.black_scholes_call(
                spot, x["real_option.investment_cost"], x["real_option.risk_free_rate"],
                x["real_option.volatility"], self.option_years,
            )
        return out, extra

    def combined(self, values: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
        total = None
        for m, w in weights.items():
            v = np.maximum(values[m], 0.0) * w  # a project worth less than nothing is abandoned: 0
            total = v if total is None else total + v
        return total

    def base_inputs(self) -> dict[str, np.ndarray]:
        return {k: np.array([i.base]) for k, i in self.inputs.items()}


# -- resolution and checks --------------------------------------------------------------

@dataclass
class _Resolver:
    table: DefaultsTable
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    inputs: dict[str, Input] = field(default_factory=dict)

    def take(self, name: str, label: str, unit: str, given: Uncertain | None, default: Range | float | None,
             default_source: str, *, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False,
             field_path: str, clip: tuple[float, float] | None = None) -> Input | None:
        if given is not None:
            value, source = given, "requester"
        elif isinstance(default, Range):
            value, source = Triangular(low=default.low, mode=default.mode, high=default.high), default_source
        elif default is not None:
            value, source = float(default), default_source
        else:
            self.errors.append((field_path, "required"))
            return None
        b_lo, b_hi = bounds_of(value)
        too_low = b_lo < lo or (lo_open and b_lo <= lo)
        too_high = b_hi > hi or (hi_open and b_hi >= hi)
        if too_low or too_high:
            rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            hint = ""
            if unit == "fraction" and b_hi > 1:
                hint = f"; rates are fractions (0.12 = 12 %): {describe(value)} reads as {b_hi * 100:g} %"
            self.errors.append((field_path, f"{describe(value)} is outside {rng}{hint}"))
            return None
        inp = Input(name, label, unit, value, source, clip or (lo, hi))
        self.inputs[name] = inp
        return inp


def _resolve(subject: Subject, prot: Protection, a: Assumptions, t: DefaultsTable,
             comparables: list[Comparable]) -> tuple[Model, list[str]]:
    res = _Resolver(t)
    industry = t.industry_for(list(subject.ipc_codes), list(subject.fields))
    # Which methods
    if a.methods is not None:
        methods = list(a.methods)
        for m in methods:
            if m in ("income", "cost", "real_option") and getattr(a, m) is None:
                res.errors.append((m, f"method {m} needs this section"))
            if m == "rnpv" and (a.rnpv is None or a.income is None):
                res.errors.append(("rnpv" if a.rnpv is None else "income",
                                   "method rnpv needs its own section and the income section's revenue forecast"))
    else:
        methods = [m for m in ("income", "rnpv", "cost", "real_option") if getattr(a, m) is not None]
        if "rnpv" in methods and a.income is None:
            res.errors.append(("income", "method rnpv needs the income section's revenue forecast"))
        methods.append("market")
    if "market" in methods and not comparables:
        if methods == ["market"]:
            res.errors.append(("methods", "no comparable completed deal shares an IPC subclass or field with "
                                          "this achievement; add an income or cost section"))
        else:
            res.warnings.append("Market approach: no comparable completed deal on the platform shares an IPC "
                                "subclass or field with this achievement; it carries no weight.")
        methods.remove("market")
    if "real_option" in methods and a.real_option and a.real_option.underlying_value is None and "rnpv" not in methods:
        res.errors.append(("real_option.underlying_value", "required unless the rnpv method supplies it"))
    model = Model(methods=methods, inputs=res.inputs)
    trl = subject.trl

    uses_revenue = "income" in methods or "rnpv" in methods
    if uses_revenue and a.income is not None:
        inc = a.income
        if (inc.revenues is None) == (inc.first_year_revenue is None):
            res.errors.append(("income.revenues", "give either revenues (a forecast per year) or first_year_revenue"))
        # Economic life against the protection term
        allowed = math.ceil(prot.remaining_years) if prot.remaining_years is not None else None
        if inc.life_years is not None:
            life = inc.life_years
            if allowed is not None and life > allowed:
                where = f"protection ends on {prot.ends_on.isoformat()} ({prot.remaining_years:.1f} years from the valuation date)"
                if inc.life_beyond_patent_term:
                    res.warnings.append(f"Income: life of {life} years runs beyond the patent term; {where}. "
                                        "Cash flows after that rest on lead time or secrecy, not on the right.")
                else:
                    res.errors.append(("income.life_years", f"{life} years runs beyond the patent term: {where}; "
                                       "shorten the life or set life_beyond_patent_term"))
        elif inc.revenues is not None:
            life = len(inc.revenues)
            if allowed is not None and life > allowed and not inc.life_beyond_patent_term:
                life = max(allowed, 0)
                res.warnings.append(f"Income: the forecast runs {len(inc.revenues)} years but protection ends on "
                                    f"{prot.ends_on.isoformat()}; only the first {life} year(s) are valued.")
        elif allowed is not None:
            life = min(allowed, 30)
        else:
            life = 0
            res.errors.append(("income.life_years", f"required: {prot.basis}"))
        if life <= 0 and not any(f == "income.life_years" for f, _ in res.errors):
            res.errors.append(("income.life_years", f"no economic life left: protection ended on {prot.ends_on}"))
        model.life = life
        if inc.revenues is not None and 0 < len(inc.revenues) < life:
            res.warnings.append(f"Income: the forecast has {len(inc.revenues)} years and the life {life}; "
                                "the last forecast year is held flat to the end.")
        model.revenues = inc.revenues
        model.launch_year = inc.launch_year
        model.mid_year = inc.mid_year
        if inc.tax_amortisation_benefit:
            model.amortisation_years = inc.amortisation_years or life or None
        res.take("income.revenue_scale", "Revenue forecast multiplier", "factor", inc.revenue_scale, None, "",
                 lo=0, hi=100, lo_open=True, field_path="income.revenue_scale")
        if inc.first_year_revenue is not None:
            res.take("income.first_year_revenue", "First-year revenue", "minor units", inc.first_year_revenue, None, "",
                     lo=0, hi=1e17, field_path="income.first_year_revenue")
            g = res.take("income.growth_rate", "Revenue growth a year", "fraction", inc.growth_rate, None, "",
                         lo=-0.9, hi=3.0, field_path="income.growth_rate")
            if g is not None and g.base > 0.5:
                res.warnings.append(f"Income: revenue growth of {g.base:.0%} a year compounds quickly; check the forecast.")
        res.take("tax_rate", "Income tax rate", "fraction", inc.tax_rate, t.tax_rate.value, t.tax_rate.source,
                 lo=0, hi=0.6, hi_open=True, field_path="income.tax_rate")
        if "income" in methods:
            ind_range = industry.royalty_rate
            ry = res.take("income.royalty_rate", f"Royalty rate ({industry.label})", "fraction", inc.royalty_rate,
                          ind_range, ind_range.source + f" [{industry.label}]",
                          lo=0, hi=0.5, lo_open=True, field_path="income.royalty_rate")
            if ry is not None and ry.base > 0.25:
                res.warnings.append(f"Income: a royalty of {ry.base:.1%} of sales is far above usual licensing "
                                    "rates; check it is a share of sales, not of profit.")
            dr_default = t.discount_rate_by_trl[trl]
            dr = res.take("income.discount_rate", f"Discount rate (TRL {trl})", "fraction", inc.discount_rate,
                          dr_default, dr_default.source, lo=0, hi=1.0, lo_open=True, hi_open=True,
                          field_path="income.discount_rate")
            if dr is not None and dr.base > 0.7:
                res.warnings.append(f"Income: a discount rate of {dr.base:.0%} exceeds even seed-stage venture rates.")
    if "rnpv" in methods and a.rnpv is not None:
        rn = a.rnpv
        res.take("rnpv.margin", "Operating margin", "fraction", rn.margin, None, "", lo=-1, hi=1,
                 lo_open=True, field_path="rnpv.margin")
        sp = t.success_probability_by_trl[trl]
        res.take("rnpv.success_probability", f"Probability of success (TRL {trl})", "fraction",
                 rn.success_probability, sp.value, sp.source, lo=0, hi=1, lo_open=True,
                 field_path="rnpv.success_probability")
        rd = t.rnpv_discount_rate
        res.take("rnpv.discount_rate", "Cost of capital", "fraction", rn.discount_rate, rd, rd.source,
                 lo=0, hi=1, lo_open=True, hi_open=True, field_path="rnpv.discount_rate")
        model.development_costs = list(rn.development_costs)
    if "cost" in methods and a.cost is not None:
        c = a.cost
        model.cost_items = [it.label for it in c.items]
        for i, it in enumerate(c.items):
            res.take(f"cost.items[{i}]", f"Cost: {it.label}", "minor units", it.amount, None, "",
                     lo=0, hi=1e17, field_path=f"cost.items.{i}.amount")
        res.take("cost.developer_profit_rate", "Developer's profit", "fraction", c.developer_profit_rate, None, "",
                 lo=0, hi=1, field_path="cost.developer_profit_rate")
        res.take("cost.functional_obsolescence", "Functional obsolescence", "fraction", c.functional_obsolescence,
                 None, "", lo=0, hi=1, hi_open=True, field_path="cost.functional_obsolescence")
        term = t.statutory_term_years.get(subject.ip_type)
        if c.technological_obsolescence is None and term is not None and prot.remaining_years is not None:
            elapsed = min(max(1 - prot.remaining_years / term.value, 0.0), 0.95)
            tech_default, tech_src = round(elapsed, 4), (
                f"elapsed share of the {int(term.value)}-year statutory term ({prot.remaining_years:.1f} years left)")
        else:
            tech_default, tech_src = 0.0, "no statutory term to age against: none assumed"
        res.take("cost.technological_obsolescence", "Technological obsolescence", "fraction",
                 c.technological_obsolescence, tech_default, tech_src, lo=0, hi=1, hi_open=True,
                 field_path="cost.technological_obsolescence")
        res.take("cost.economic_obsolescence", "Economic obsolescence", "fraction", c.economic_obsolescence,
                 None, "", lo=0, hi=1, hi_open=True, field_path="cost.economic_obsolescence")
    if "market" in methods:
        emp = WeightedEmpirical([c.adjusted_price for c in comparables], [c.weight for c in comparables])
        res.inputs["market.value"] = Input("market.value", "Adjusted comparable price", "minor units", emp,
                                           f"{len(comparables)} comparable completed deal(s)", (0, math.inf))
    if "real_option" in methods and a.real_option is not None:
        ro = a.real_option
        model.option_years = ro.years
        if ro.underlying_value is not None:
            res.take("real_option.underlying_value", "Underlying value (PV of cash flows)", "minor units",
                     ro.underlying_value, None, "", lo=0, hi=1e17, field_path="real_option.underlying_value")
        else:
            model.option_underlying_from_rnpv = True
        res.take("real_option.investment_cost", "Investment to commercialise", "minor units", ro.investment_cost,
                 None, "", lo=0, hi=1e17, lo_open=True, field_path="real_option.investment_cost")
        vol = t.real_option_volatility
        res.take("real_option.volatility", "Volatility", "fraction", ro.volatility, vol, vol.source,
                 lo=0, hi=3, lo_open=True, field_path="real_option.volatility")
        rf = t.risk_free_rate
        res.take("real_option.risk_free_rate", "Risk-free rate", "fraction", ro.risk_free_rate, rf.value, rf.source,
                 lo=-0.05, hi=0.5, field_path="real_option.risk_free_rate")
        if trl >= 7:
            res.warnings.append(f"Real option: at TRL {trl} the investment decision is near; an option view adds little.")
    for k in a.scorecard.ratings:
        if k not in INDICATORS:
            res.errors.append((f"scorecard.ratings.{k}", "unknown indicator; see GET /api/v1/valuation/defaults"))
    if a.weights is not None:
        for k in a.weights:
            if k not in methods:
                res.errors.append((f"weights.{k}", f"method {k} is not run in this valuation"))
        if sum(a.weights.values()) <= 0:
            res.errors.append(("weights", "at least one weight must be above 0"))
    if subject.status in ("withdrawn", "expired", "transferred"):
        res.warnings.append(f"The achievement is {subject.status}, not published; the valuation uses its last known data.")
    if prot.pending:
        res.warnings.append("Protection rests on an application not yet granted: the term assumes grant.")
    if res.errors:
        raise AssumptionsRefused(res.errors)
    return model, res.warnings


def _weights(model: Model, a: Assumptions, trl: int, comparables: list[Comparable]) -> dict[str, tuple[float, str]]:
    if a.weights is not None:
        total = sum(a.weights.get(m, 0.0) for m in model.methods)
        return {m: (a.weights.get(m, 0.0) / total, "set by the requester") for m in model.methods}
    raw: dict[str, tuple[float, str]] = {}
    early = trl <= 3
    for m in model.methods:
        if m == "income":
            raw[m] = (0.3, f"TRL {trl}: revenue forecasts this early are speculative") if early else \
                (0.5, "a revenue forecast and an industry royalty rate measure what the right earns")
        elif m == "rnpv":
            raw[m] = (0.2, "cash flows weighed by a low probability of success") if early else \
                (0.3, f"cash flows weighed by the probability of success at TRL {trl}")
        elif m == "cost":
            raw[m] = (0.4, f"TRL {trl}: cost to recreate is the firmest anchor before a market exists") if early else \
                (0.1, "cost says little about what a maturing technology earns")
        elif m == "market":
            evidence = sum(c.weight for c in comparables)
            w = min(0.1 * evidence, 0.4)
            raw[m] = (w, f"{len(comparables)} comparable completed deal(s) on the platform "
                         f"({sum(1 for c in comparables if c.weight == 1)} in the same IPC subclass)")
        elif m == "real_option":
            raw[m] = (0.3, f"TRL {trl}: much of the value is the right to invest later") if trl <= 4 else \
                (0.1, "the investment decision is near; the option adds little beyond the income value")
    total = sum(w for w, _ in raw.values())
    return {m: (w / total, why) for m, (w, why) in raw.items()}


def _pct(v: np.ndarray) -> Percentiles:
    p10, p50, p90 = np.percentile(v, [10, 50, 90])
    return Percentiles(p10=to_minor(p10), p50=to_minor(p50), p90=to_minor(p90), mean=to_minor(float(v.mean())))


def value(
    subject: Subject,
    transfers: list[Transfer],
    assumptions: Assumptions,
    today: date,
) -> ValuationResult:
    a = assumptions
    try:
        t = defaults_table(a.table_version)
    except KeyError:
        raise AssumptionsRefused([("table_version", f"no defaults table {a.table_version!r}; "
                                   "see GET /api/v1/valuation/defaults/versions")]) from None
    on = a.valuation_date or today
    prot = protection(subject, on, t)
    comparables, royalty_only = find_comparables(
        subject, transfers, t, exclusivity=a.market.exclusivity, territory=a.market.territory,
        currency=a.currency, limit=a.market.max_comparables,
    )
    model, warnings = _resolve(subject, prot, a, t, comparables)
    weights = _weights(model, a, subject.trl, comparables)
    w = {m: wt for m, (wt, _) in weights.items()}

    # Base case
    base_x = model.base_inputs()
    base_vals, base_extra = model.evaluate(base_x)

    # Monte Carlo
    n = a.simulation.paths
    rng = np.random.default_rng(a.simulation.seed)
    xs = {name: model.inputs[name].sample(rng, n) for name in sorted(model.inputs)}
    mc_vals, _ = model.evaluate(xs)
    mc_total = model.combined(mc_vals, w)
    pct = _pct(mc_total)
    counts, edges = np.histogram(mc_total, bins=a.simulation.histogram_bins)

    # Tornado
    base_total = float(model.combined(base_vals, w)[0])
    bars: list[TornadoBar] = []
    for name in sorted(model.inputs):
        inp = model.inputs[name]
        if inp.uncertain:
            lo_in, hi_in, basis = inp.quantile(0.1), inp.quantile(0.9), "P10/P90 of its distribution"
        elif inp.base != 0:
            lo_in, hi_in, basis = inp.base * 0.9, inp.base * 1.1, "-/+10 % of a fixed value"
            lo_in, hi_in = max(lo_in, inp.clip[0]), min(hi_in, inp.clip[1])
        else:
            continue
        vals = []
        for v in (lo_in, hi_in):
            x = dict(base_x)
            x[name] = np.array([v])
            mv, _ = model.evaluate(x)
            vals.append(float(model.combined(mv, w)[0]))
        swing = abs(vals[1] - vals[0])
        if to_minor(swing) == 0:
            continue
        bars.append(TornadoBar(input=name, label=inp.label, low_input=lo_in, high_input=hi_in, basis=basis,
                               value_at_low=to_minor(vals[0]), value_at_high=to_minor(vals[1]), swing=to_minor(swing)))
    bars.sort(key=lambda b: (-b.swing, b.input))

    # Method outputs
    method_out: list[MethodOut] = []
    for m in model.methods:
        details: dict = {}
        notes: list[str] = []
        if m == "income":
            details["years"] = model.life
            details["revenue_total"] = to_minor(float(base_extra["revenue_total"][0]))
            details["pv_after_tax_royalties"] = to_minor(float(base_extra["income.pv_before_tab"][0]))
            if "income.tab_factor" in base_extra:
                details["tab_factor"] = round(float(base_extra["income.tab_factor"][0]), 6)
                details["amortisation_years"] = model.amortisation_years
                notes.append("Includes the tax-amortisation benefit: value = PV x 1/(1 - t/n x annuity(r, n)).")
            notes.append("Value = sum over years of revenue x royalty x (1 - tax) / (1 + r)^t"
                         + (" (mid-year)." if model.mid_year else " (end of year)."))
            rates = sorted(tr.royalty_rate_bp for tr, _ in royalty_only if tr.royalty_rate_bp)
            if rates:
                median_bp = rates[len(rates) // 2] if len(rates) % 2 else (rates[len(rates) // 2 - 1] + rates[len(rates) // 2]) / 2
                used = model.inputs["income.royalty_rate"].base
                notes.append(f"Platform evidence: {len(rates)} comparable royalty deal(s), median {median_bp / 100:.2f} % "
                             f"(range {rates[0] / 100:.2f}-{rates[-1] / 100:.2f} %); this valuation uses {used:.2%}.")
        elif m == "rnpv":
            details["pv_operating_unrisked"] = to_minor(float(base_extra["rnpv.pv_operating"][0]))
            details["pv_development_costs"] = to_minor(float(base_extra["rnpv.pv_costs"][0]))
            details["npv_signed"] = to_minor(float(base_vals["rnpv"][0]))
            notes.append("rNPV = p(success) x PV(operating cash flows after tax) - PV(development costs).")
            if base_vals["rnpv"][0] < 0:
                notes.append("Negative in the base case: counted as 0 in the conclusion (the project would not be pursued).")
        elif m == "cost":
            details["basis"] = a.cost.basis if a.cost else "replacement"
            details["cost_before_obsolescence"] = to_minor(float(base_extra["cost.base"][0]))
            notes.append("Value = cost x (1 + developer's profit) x (1 - functional) x (1 - technological) x (1 - economic).")
        elif m == "market":
            details["comparables"] = len(comparables)
            notes.append("Weighted median of comparable prices adjusted for TRL, exclusivity and territory; "
                         "same IPC subclass counts twice a shared field.")
        elif m == "real_option":
            details["underlying"] = to_minor(float(base_extra["real_option.underlying"][0]))
            details["years"] = model.option_years
            notes.append("Black-Scholes call: the right, not the duty, to invest the cost and receive the underlying.")
            if model.option_underlying_from_rnpv:
                notes.append("Underlying = unrisked PV of operating cash flows from the rNPV method.")
        method_out.append(MethodOut(
            method=m, label=METHOD_LABELS[m], value=to_minor(float(base_vals[m][0])),
            range=_pct(mc_vals[m]), weight=round(w[m], 6), weight_reason=weights[m][1],
            details=details, notes=notes,
        ))

    sc = score(a.scorecard.ratings, remaining_years=prot.remaining_years, trl=subject.trl, comparables=len(comparables))
    uncertain = [nm for nm in sorted(model.inputs) if model.inputs[nm].uncertain]
    cur = a.currency
    reasons = [f"{METHOD_LABELS[m]}: weight {w[m]:.0%} - {weights[m][1]}" for m in model.methods]
    if not uncertain:
        reasons.append("Every input is a fixed figure, so the range collapses to one value; give distributions "
                       "for the uncertain inputs to see a range.")
    industry = t.industry_for(list(subject.ipc_codes), list(subject.fields))
    return ValuationResult(
        table_version=t.version,
        valuation_date=on,
        currency=cur,
        subject=SubjectOut(
            achievement_id=subject.achievement_id, version=subject.version, owner_org_id=subject.owner_org_id,
            title_zh=subject.title_zh, title_en=subject.title_en, ip_type=subject.ip_type, trl=subject.trl,
            ipc_codes=list(subject.ipc_codes), fields=list(subject.fields), industry=industry.label,
            asking_price=None if subject.asking_price is None else Money(amount=subject.asking_price, currency=subject.currency),
            protection_ends_on=prot.ends_on,
            remaining_protection_years=None if prot.remaining_years is None else round(prot.remaining_years, 2),
            protection_basis=prot.basis,
        ),
        inputs=[InputOut(name=i.name, label=i.label, unit=i.unit, value=i.as_json(), base=i.base, source=i.source)
                for i in (model.inputs[k] for k in sorted(model.inputs))],
        methods=method_out,
        comparables=[ComparableOut(
            transfer_id=c.transfer.transfer_id, completed_at=c.transfer.completed_at, match=c.match,
            similarity_weight=c.weight, mode=c.transfer.mode, exclusive=c.transfer.exclusive,
            territory=c.transfer.territory, trl=c.transfer.trl,
            price=Money(amount=c.transfer.price, currency=c.transfer.currency),
            trl_factor=round(c.trl_factor, 6), exclusivity_factor=round(c.exclusivity_factor, 6),
            territory_factor=round(c.territory_factor, 6),
            adjusted_price=Money(amount=to_minor_floor0(c.adjusted_price), currency=c.transfer.currency),
        ) for c in comparables],
        royalty_evidence=[RoyaltyEvidenceOut(
            transfer_id=tr.transfer_id, completed_at=tr.completed_at, match=match, mode=tr.mode,
            royalty_rate_bp=tr.royalty_rate_bp or 0) for tr, match in royalty_only],
        simulation=SimulationOut(
            seed=a.simulation.seed, paths=n, numpy_version=np.__version__, percentiles=pct,
            histogram=Histogram(edges=[to_minor(float(e)) for e in edges], counts=[int(c) for c in counts]),
            uncertain_inputs=uncertain,
        ),
        tornado=bars[:12],
        scorecard=ScorecardOut(
            indicators=[IndicatorOut(indicator=r.indicator, category=r.category, label=r.label, rating=r.rating,
                                     source=r.source) for r in sc.indicators],
            categories={k: (None if v is None else round(v, 3)) for k, v in sc.categories.items()},
            overall=None if sc.overall is None else round(sc.overall, 3), verdict=sc.verdict,
        ),
        conclusion=Conclusion(
            low=Money(amount=max(pct.p10, 0), currency=cur),
            mid=Money(amount=max(pct.p50, 0), currency=cur),
            high=Money(amount=max(pct.p90, 0), currency=cur),
            base_case=to_minor_floor0(base_total),
            basis=f"P10 / P50 / P90 of {n:,} simulated paths of the weighted methods (seed {a.simulation.seed}); "
                  f"base case {to_minor_floor0(base_total):,} minor units",
            weights={m: round(w[m], 6) for m in model.methods},
            reasons=reasons,
        ),
        warnings=warnings,
    )

