"""A qualitative scorecard in the style of EPO IPscore: five categories of indicators rated 1-5.

Ratings come from the requester; three indicators are filled from facts when not given
(remaining term from the IP records, maturity from the TRL, deal evidence from the number of
comparables) and say so. A category scores the mean of its rated indicators; the overall score
is the mean of the rated categories. The scorecard informs the reader; it does not move the
monetary value.
"""

from __future__ import annotations

from dataclasses import dataclass

CATEGORIES: dict[str, str] = {
    "legal": "Legal status",
    "technology": "Technology",
    "market": "Market conditions",
    "finance": "Finance",
    "strategy": "Strategy",
}

# id -> (category, label, what 1 and 5 mean)
INDICATORS: dict[str, tuple[str, str, str]] = {
    "legal.validity": ("legal", "Validity of the right", "1 likely invalid - 5 examined and robust"),
    "legal.scope": ("legal", "Scope of protection", "1 narrow, easy to design around - 5 broad"),
    "legal.remaining_term": ("legal", "Remaining term", "1 under 2 years - 5 over 15 years"),
    "legal.enforceability": ("legal", "Ease of detecting and enforcing infringement", "1 hard - 5 easy"),
    "legal.freedom_to_operate": ("legal", "Freedom to operate", "1 blocked by others' rights - 5 clear"),
    "technology.maturity": ("technology", "Technical maturity", "1 TRL 1-2 - 5 TRL 9"),
    "technology.substitutes": ("technology", "Absence of substitute technologies", "1 many substitutes - 5 none"),
    "technology.dependence": ("technology", "Independence from other technologies", "1 depends on others' IP - 5 stand-alone"),
    "technology.usability": ("technology", "Breadth of application", "1 one niche use - 5 many uses"),
    "market.size": ("market", "Market size", "1 small - 5 large"),
    "market.growth": ("market", "Market growth", "1 shrinking - 5 fast-growing"),
    "market.competition": ("market", "Competitive position", "1 crowded - 5 leading"),
    "market.demand_evidence": ("market", "Evidence of demand (enquiries, demands posted)", "1 none - 5 strong"),
    "market.deal_evidence": ("market", "Comparable completed deals on the platform", "1 none - 5 seven or more"),
    "finance.margin": ("finance", "Expected profit margin", "1 thin - 5 high"),
    "finance.investment_needed": ("finance", "Investment still needed (5 = little)", "1 large - 5 little"),
    "finance.time_to_revenue": ("finance", "Time to first revenue (5 = soon)", "1 over 5 years - 5 under 1 year"),
    "strategy.fit": ("strategy", "Fit with the owner's and buyers' strategy", "1 poor - 5 core"),
    "strategy.licensing_potential": ("strategy", "Licensing and transfer potential", "1 low - 5 high"),
    "strategy.team": ("strategy", "Inventor team available to support transfer", "1 no - 5 fully"),
}


@dataclass(frozen=True)
class Rated:
    indicator: str
    category: str
    label: str
    rating: int
    source: str  # "requester" or how it was derived


@dataclass(frozen=True)
class Scorecard:
    indicators: tuple[Rated, ...]
    categories: dict[str, float | None]
    overall: float | None

    @property
    def verdict(self) -> str:
        if self.overall is None:
            return "not rated"
        if self.overall >= 4:
            return "strong"
        if self.overall >= 3:
            return "moderate"
        if self.overall >= 2:
            return "weak"
        return "very weak"


def rating_for_term(years: float | None) -> int | None:
    if years is None:
        return None
    return 5 if years >= 15 else 4 if years >= 10 else 3 if years >= 5 else 2 if years >= 2 else 1


def rating_for_trl(trl: int) -> int:
    return {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 4, 9: 5}[trl]


def rating_for_deals(n: int) -> int:
    return 1 if n == 0 else 2 if n == 1 else 3 if n <= 3 else 4 if n <= 6 else 5


def score(ratings: dict[str, int], *, remaining_years: float | None, trl: int, comparables: int) -> Scorecard:
    derived: dict[str, tuple[int, str]] = {
        "technology.maturity": (rating_for_trl(trl), f"derived from TRL {trl}"),
        "market.deal_evidence": (rating_for_deals(comparables), f"derived from {comparables} comparable deal(s)"),
    }
    term = rating_for_term(remaining_years)
    if term is not None:
        derived["legal.remaining_term"] = (term, f"derived from {remaining_years:.1f} remaining years")
    rated: list[Rated] = []
    for ind, (cat, label, _) in INDICATORS.items():
        if ind in ratings:
            rated.append(Rated(ind, cat, label, ratings[ind], "requester"))
        elif ind in derived:
            r, why = derived[ind]
            rated.append(Rated(ind, cat, label, r, why))
    categories: dict[str, float | None] = {}
    for cat in CATEGORIES:
        vals = [r.rating for r in rated if r.category == cat]
        categories[cat] = sum(vals) / len(vals) if vals else None
    present = [v for v in categories.values() if v is not None]
    overall = sum(present) / len(present) if present else None
    return Scorecard(tuple(rated), categories, overall)
