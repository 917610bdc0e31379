"""What a valuation says: every amount in integer minor units, rounded once (domain.money)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from techbridge_shared.money import Money


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class SubjectOut(_Out):
    achievement_id: str
    version: int
    owner_org_id: str
    title_zh: str
    title_en: str
    ip_type: str
    trl: int
    ipc_codes: list[str]
    fields: list[str]
    industry: str = Field(description="Industry used for default royalty rates")
    asking_price: Money | None = Field(default=None, description="The owner's asking price, if listed")
    protection_ends_on: date | None
    remaining_protection_years: float | None
    protection_basis: str


class InputOut(_Out):
    name: str = Field(description="Dotted input name, e.g. income.royalty_rate")
    label: str
    unit: str = Field(description="fraction, minor units, or factor")
    value: Any = Field(description="A number or a distribution {dist, ...}, exactly as used")
    base: float = Field(description="The value used for the base case")
    source: str = Field(description="'requester' or where the default comes from")


class Percentiles(_Out):
    p10: int
    p50: int
    p90: int
    mean: int


class MethodOut(_Out):
    method: str
    label: str
    value: int = Field(description="Base case, minor units (negative values count as 0 in the conclusion)")
    range: Percentiles | None = Field(description="Monte Carlo P10 / P50 / P90 of this method, minor units")
    weight: float
    weight_reason: str
    details: dict[str, Any] = Field(default_factory=dict, description="Intermediate figures; amounts in minor units")
    notes: list[str] = Field(default_factory=list)


class ComparableOut(_Out):
    transfer_id: str
    completed_at: str | None
    match: str
    similarity_weight: float
    mode: str | None
    exclusive: bool | None
    territory: str | None
    trl: int | None
    price: Money
    trl_factor: float
    exclusivity_factor: float
    territory_factor: float
    adjusted_price: Money


class RoyaltyEvidenceOut(_Out):
    transfer_id: str
    completed_at: str | None
    match: str
    mode: str | None
    royalty_rate_bp: int


class Histogram(_Out):
    edges: list[int] = Field(description="Bin edges, minor units (len = bins + 1)")
    counts: list[int]


class SimulationOut(_Out):
    seed: int
    paths: int
    numpy_version: str
    percentiles: Percentiles
    histogram: Histogram
    uncertain_inputs: list[str]


class TornadoBar(_Out):
    input: str
    label: str
    low_input: float
    high_input: float
    basis: str = Field(description="'P10/P90 of its distribution' or '-/+10 % of a fixed value'")
    value_at_low: int
    value_at_high: int
    swing: int


class IndicatorOut(_Out):
    indicator: str
    category: str
    label: str
    rating: int
    source: str


class ScorecardOut(_Out):
    indicators: list[IndicatorOut]
    categories: dict[str, float | None]
    overall: float | None
    verdict: str


class Conclusion(_Out):
    low: Money
    mid: Money
    high: Money
    base_case: int = Field(description="Weighted sum of the methods' base cases (negative method values as 0)")
    basis: str
    weights: dict[str, float]
    reasons: list[str]


class ValuationResult(_Out):
    table_version: str
    valuation_date: date
    currency: str
    subject: SubjectOut
    inputs: list[InputOut]
    methods: list[MethodOut]
    comparables: list[ComparableOut]
    royalty_evidence: list[RoyaltyEvidenceOut]
    simulation: SimulationOut
    tornado: list[TornadoBar]
    scorecard: ScorecardOut
    conclusion: Conclusion
    warnings: list[str]
