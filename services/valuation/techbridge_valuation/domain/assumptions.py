"""The requester's assumptions: what each method needs, any of it a distribution.

Amounts are in minor units of `currency` (fen for CNY): revenues, costs, investment. Rates are
fractions (0.12 = 12 %). Anything left out is taken from the defaults table and recorded.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .distributions import Uncertain

Method = Literal["income", "rnpv", "cost", "market", "real_option"]
METHODS: tuple[str, ...] = ("income", "rnpv", "cost", "market", "real_option")
METHOD_LABELS = {
    "income": "Income: relief from royalty",
    "rnpv": "Income: risk-adjusted NPV",
    "cost": "Cost: replacement / reproduction cost less obsolescence",
    "market": "Market: the platform's comparable completed deals",
    "real_option": "Real option (Black-Scholes)",
}

Amount = Annotated[int, Field(ge=0, le=10**15, description="Minor units (fen), not negative")]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IncomeAssumptions(_Model):
    revenues: list[Amount] | None = Field(
        default=None, min_length=1, max_length=50,
        description="Revenue forecast of the products using the technology, minor units, year 1 first",
    )
    first_year_revenue: Uncertain | None = Field(
        default=None, description="Instead of `revenues`: revenue in the launch year (minor units) ...")
    growth_rate: Uncertain = Field(default=0.0, description="... growing by this rate a year after launch")
    launch_year: int = Field(default=1, ge=1, le=30, description="First year with revenue (with first_year_revenue)")
    revenue_scale: Uncertain = Field(
        default=1.0, description="Multiplies the whole forecast; a distribution here expresses forecast risk")
    life_years: int | None = Field(
        default=None, ge=1, le=50,
        description="Economic life in years; default: the forecast length, capped at the remaining patent term")
    life_beyond_patent_term: bool = Field(
        default=False, description="Set to value cash flows after protection ends (know-how, lead time); "
        "otherwise a life beyond the patent term is refused")
    royalty_rate: Uncertain | None = Field(default=None, description="Share of net sales; default by industry")
    tax_rate: Uncertain | None = Field(default=None, description="Income tax rate; default 25 %")
    discount_rate: Uncertain | None = Field(default=None, description="Risk-adjusted rate; default by TRL")
    mid_year: bool = Field(default=False, description="Discount cash flows at mid-year instead of year end")
    tax_amortisation_benefit: bool = Field(default=False, description="Add the tax-amortisation benefit")
    amortisation_years: int | None = Field(
        default=None, ge=1, le=50, description="Tax amortisation period for the benefit; default: the life")


class RnpvAssumptions(_Model):
    margin: Uncertain = Field(description="Operating profit margin on the revenue forecast (before tax)")
    success_probability: Uncertain | None = Field(
        default=None, description="Probability of technical and commercial success; default by TRL")
    discount_rate: Uncertain | None = Field(default=None, description="Cost of capital; default from the table")
    development_costs: list[Amount] = Field(
        default_factory=list, max_length=50, description="Spend still needed to reach the market, per year from year 1")


class CostItem(_Model):
    label: str = Field(min_length=1, max_length=200, description="e.g. researcher time, materials, testing")
    amount: Uncertain = Field(description="Minor units at today's prices")


class CostAssumptions(_Model):
    basis: Literal["reproduction", "replacement"] = Field(
        default="replacement", description="Reproduction: an exact copy; replacement: equal utility with today's means")
    items: list[CostItem] = Field(min_length=1, max_length=100)
    developer_profit_rate: Uncertain = Field(default=0.0, description="Entrepreneurial incentive added to cost")
    functional_obsolescence: Uncertain = Field(default=0.0, description="Share lost to functional shortfalls")
    technological_obsolescence: Uncertain | None = Field(
        default=None, description="Share lost to newer technology; default: the elapsed share of the statutory term")
    economic_obsolescence: Uncertain = Field(default=0.0, description="Share lost because it cannot earn a return")


class MarketAssumptions(_Model):
    exclusivity: Literal["assignment", "exclusive", "non_exclusive"] = Field(
        default="assignment", description="The right being valued")
    territory: str = Field(default="CN", max_length=100, description="Territory of the right being valued")
    max_comparables: int = Field(default=20, ge=1, le=100)


class RealOptionAssumptions(_Model):
    underlying_value: Uncertain | None = Field(
        default=None, description="PV of the cash flows the investment would bring (minor units); "
        "default: the unrisked operating PV of the rNPV method")
    investment_cost: Uncertain = Field(description="Investment to commercialise (the strike), minor units")
    years: float = Field(gt=0, le=20, description="How long the decision to invest can wait")
    volatility: Uncertain | None = Field(default=None, description="Annual volatility of the underlying value")
    risk_free_rate: Uncertain | None = Field(default=None, description="Default from the table")


class ScorecardAssumptions(_Model):
    ratings: dict[str, Annotated[int, Field(ge=1, le=5)]] = Field(
        default_factory=dict, description="Indicator id (e.g. legal.scope) -> rating 1-5")


class Simulation(_Model):
    seed: int = Field(default=20261126, ge=0, le=2**63 - 1, description="Same request and seed, same numbers")
    paths: int = Field(default=10_000, ge=1_000, le=200_000)
    histogram_bins: int = Field(default=30, ge=5, le=100)


class Assumptions(_Model):
    methods: list[Method] | None = Field(
        default=None, description="Methods to run; default: every method whose section is given, plus market")
    income: IncomeAssumptions | None = None
    rnpv: RnpvAssumptions | None = None
    cost: CostAssumptions | None = None
    market: MarketAssumptions = Field(default_factory=MarketAssumptions)
    real_option: RealOptionAssumptions | None = None
    scorecard: ScorecardAssumptions = Field(default_factory=ScorecardAssumptions)
    weights: dict[Method, Annotated[float, Field(ge=0, le=1)]] | None = Field(
        default=None, description="Override the reconciliation weights (normalised to sum to 1)")
    valuation_date: date | None = Field(default=None, description="Default: today (UTC)")
    currency: str = Field(default="CNY", pattern="^[A-Z]{3}$")
    table_version: str | None = Field(default=None, description="Defaults table version; default: current")
    simulation: Simulation = Field(default_factory=Simulation)

    @field_validator("methods")
    @classmethod
    def _unique(cls, v):
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError("list each method once, at least one")
        return v
