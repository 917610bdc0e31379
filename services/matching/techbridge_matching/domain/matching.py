"""Which achievements fit a demand, and why: hard constraints filter, soft ones and feedback rank.

The retrieval layer proposes candidates with evidence (matched terms, cosine, shared IPC
classes); this module checks the business constraints between a demand and an achievement,
applies what the enterprise told us by declining earlier suggestions, and writes an
explanation a person can verify against the two records.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from .common import DeclineReason, TransferMode, region_matches
from .demands import Demand

BAD_LEGAL_STATUS = {"expired", "invalid", "invalidated", "lapsed", "revoked", "abandoned", "withdrawn", "rejected"}

SOFT_MISS_FACTOR = 0.8  # each soft constraint missed
DECLINE_FACTOR = {
    DeclineReason.trl_too_low: 0.6,
    DeclineReason.price: 0.6,
    DeclineReason.region: 0.7,
    DeclineReason.ip_status: 0.6,
    DeclineReason.not_relevant: 0.75,
}


@dataclass(frozen=True)
class AchievementFacts:
    """What matching keeps of a published achievement (its copy of the catalog's fields)."""

    achievement_id: str
    version: int
    owner_org_id: str
    title: str
    trl: int | None
    transfer_modes: tuple[str, ...]
    asking_price: int | None
    currency: str
    negotiable: bool
    region: str | None
    ipc_codes: tuple[str, ...]
    ip_type: str | None = None
    legal_statuses: tuple[str, ...] = ()

    @property
    def ip_in_force(self) -> bool | None:
        if not self.legal_statuses:
            return None
        return any(s.lower() not in BAD_LEGAL_STATUS for s in self.legal_statuses)


class Outcome(StrEnum):
    met = "met"
    missed = "missed"
    unknown = "unknown"


@dataclass(frozen=True)
class ConstraintCheck:
    name: str  # trl, transfer_mode, budget, region, ip_status
    outcome: Outcome
    hard: bool
    detail: str


@dataclass(frozen=True)
class Decline:
    achievement_id: str
    reason: DeclineReason
    facts: AchievementFacts | None = None


@dataclass
class Hit:
    achievement_id: str
    score: float
    relevance: float
    checks: list[ConstraintCheck]
    matched_terms: list[str]
    shared_ipc: list[str]
    semantic_similarity: float
    lexical_rank: int | None
    dense_rank: int | None
    adjustments: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        parts = []
        if self.matched_terms:
            parts.append("shares the terms " + ", ".join(self.matched_terms[:6]))
        if self.shared_ipc:
            parts.append("is classified in " + ", ".join(self.shared_ipc))
        if self.semantic_similarity >= 0.5:
            parts.append(f"is close in meaning (cosine {self.semantic_similarity:.2f})")
        met = [c.name for c in self.checks if c.outcome == Outcome.met]
        missed = [c.name for c in self.checks if c.outcome == Outcome.missed]
        text = "Matches because it " + ("; ".join(parts) if parts else "was retrieved by meaning only") + "."
        if met:
            text += " Meets: " + ", ".join(met) + "."
        if missed:
            text += " Misses: " + ", ".join(missed) + "."
        return text


def check_constraints(demand: Demand, a: AchievementFacts) -> list[ConstraintCheck]:
    checks: list[ConstraintCheck] = []
    if demand.min_trl is not None:
        if a.trl is None:
            checks.append(ConstraintCheck("trl", Outcome.unknown, True, f"wanted TRL >= {demand.min_trl}; the achievement states none"))
        elif a.trl >= demand.min_trl:
            checks.append(ConstraintCheck("trl", Outcome.met, True, f"TRL {a.trl} >= wanted {demand.min_trl}"))
        else:
            checks.append(ConstraintCheck("trl", Outcome.missed, True, f"TRL {a.trl} < wanted {demand.min_trl}"))
    if demand.transfer_modes:
        common = [m for m in demand.transfer_modes if m in a.transfer_modes]
        if common:
            checks.append(ConstraintCheck("transfer_mode", Outcome.met, True, "offered: " + ", ".join(common)))
        else:
            checks.append(ConstraintCheck("transfer_mode", Outcome.missed, True,
                                          f"wanted {', '.join(demand.transfer_modes)}; offered {', '.join(a.transfer_modes) or 'none'}"))
    budget_max = demand.budget.maximum
    if budget_max is not None:
        if a.asking_price is None:
            checks.append(ConstraintCheck("budget", Outcome.unknown, False, "no asking price (negotiable)"))
        elif a.currency != demand.budget.currency:
            checks.append(ConstraintCheck("budget", Outcome.unknown, False, f"asking price in {a.currency}, budget in {demand.budget.currency}"))
        elif a.asking_price <= budget_max:
            checks.append(ConstraintCheck("budget", Outcome.met, False, f"asking {a.asking_price} <= budget {budget_max} ({a.currency} minor units)"))
        else:
            # A fixed price above the budget is out; a negotiable one is only less attractive.
            checks.append(ConstraintCheck("budget", Outcome.missed, not a.negotiable,
                                          f"asking {a.asking_price} > budget {budget_max} ({a.currency} minor units)"
                                          + ("; negotiable" if a.negotiable else "; not negotiable")))
    if demand.region:
        same = region_matches(demand.region, a.region)
        if same is None:
            checks.append(ConstraintCheck("region", Outcome.unknown, False, "region not stated"))
        else:
            checks.append(ConstraintCheck("region", Outcome.met if same else Outcome.missed, False,
                                          f"achievement in {a.region}, wanted {demand.region}"))
    in_force = a.ip_in_force
    if in_force is not None:
        checks.append(ConstraintCheck("ip_status", Outcome.met if in_force else Outcome.missed, False,
                                      "IP in force" if in_force else "no IP right in force: " + ", ".join(a.legal_statuses)))
    return checks


def passes_hard(checks: list[ConstraintCheck]) -> bool:
    return not any(c.hard and c.outcome == Outcome.missed for c in checks)


_MODE_BIT = {m.value: 1 << i for i, m in enumerate(TransferMode)}
_UNKNOWN_TRL = -(2**31)
_NO_PRICE = -(2**63)


class FactsColumns:
    """The facts hard constraints read, one numpy column each, addressed by index slot, so
    the hard filters of a demand are a few vector comparisons over the whole population
    instead of a check per candidate. `hard_pass` agrees with `passes_hard(check_constraints())`
    for every demand and achievement (a property test holds it to that)."""

    def __init__(self):
        self._currencies: dict[str, int] = {}
        self.trl = np.zeros(0, dtype=np.int32)  # _UNKNOWN_TRL: not stated
        self.modes = np.zeros(0, dtype=np.uint8)  # bit per TransferMode
        self.price = np.zeros(0, dtype=np.int64)  # _NO_PRICE: no asking price
        self.currency = np.zeros(0, dtype=np.int16)
        self.negotiable = np.zeros(0, dtype=bool)

    def _grow(self, slot: int) -> None:
        if slot < len(self.trl):
            return
        size = max(1024, 2 * len(self.trl), slot + 1)
        for name, fill in (("trl", _UNKNOWN_TRL), ("modes", 0), ("price", _NO_PRICE), ("currency", -1), ("negotiable", False)):
            old = getattr(self, name)
            grown = np.full(size, fill, dtype=old.dtype)
            grown[: len(old)] = old
            setattr(self, name, grown)

    def _currency_id(self, code: str) -> int:
        return self._currencies.setdefault(code, len(self._currencies))

    def set(self, slot: int, a: AchievementFacts) -> None:
        self._grow(slot)
        self.trl[slot] = _UNKNOWN_TRL if a.trl is None else max(-(2**31) + 1, min(2**31 - 1, a.trl))
        self.modes[slot] = sum(_MODE_BIT.get(m, 0) for m in set(a.transfer_modes))
        self.price[slot] = _NO_PRICE if a.asking_price is None else max(_NO_PRICE + 1, min(2**63 - 1, a.asking_price))
        self.currency[slot] = self._currency_id(a.currency)
        self.negotiable[slot] = a.negotiable

    def hard_pass(self, demand: Demand, size: int) -> np.ndarray:
        """Which of the first `size` slots miss no hard constraint of `demand`."""
        self._grow(size - 1)
        ok = np.ones(size, dtype=bool)
        if demand.min_trl is not None:
            trl = self.trl[:size]
            ok &= (trl == _UNKNOWN_TRL) | (trl >= demand.min_trl)
        if demand.transfer_modes:
            wanted = sum(_MODE_BIT[m.value] for m in set(demand.transfer_modes))
            ok &= (self.modes[:size] & wanted) != 0
        if demand.budget.maximum is not None:
            price = self.price[:size]
            same_currency = self.currency[:size] == self._currency_id(demand.budget.currency)
            # An unknown price (_NO_PRICE) is never above a budget.
            ok &= ~(same_currency & (price > demand.budget.maximum) & ~self.negotiable[:size])
        return ok


def feedback_factor(a: AchievementFacts, declines: list[Decline]) -> tuple[float, list[str]]:
    """How much earlier declines on this demand demote this achievement, and why."""
    factor, why = 1.0, []
    for d in declines:
        ref = d.facts
        if ref is None or d.achievement_id == a.achievement_id:
            continue
        hit = False
        if d.reason == DeclineReason.trl_too_low and ref.trl is not None and a.trl is not None and a.trl <= ref.trl:
            hit = True
        elif d.reason == DeclineReason.price and ref.asking_price is not None and a.asking_price is not None \
                and a.currency == ref.currency and a.asking_price >= ref.asking_price:
            hit = True
        elif d.reason == DeclineReason.region and ref.region and region_matches(ref.region, a.region):
            hit = True
        elif d.reason == DeclineReason.ip_status and a.ip_in_force is not True:
            hit = True
        elif d.reason == DeclineReason.not_relevant:
            ref_sub = {c[:4] for c in ref.ipc_codes}
            if ref_sub and ref_sub & {c[:4] for c in a.ipc_codes}:
                hit = True
        if hit:
            factor *= DECLINE_FACTOR[d.reason]
            why.append(f"demoted: like {d.achievement_id}, declined for {d.reason.value}")
    return factor, why


def rank(
    demand: Demand,
    candidates: list[tuple[object, AchievementFacts]],
    declines: list[Decline],
    limit: int,
) -> list[Hit]:
    """Apply hard filters, soft penalties and feedback to retrieval candidates; best first.

    `candidates` pairs retrieval evidence (an object with score, relevance, matched_terms,
    ipc.shared, dense, lexical_rank, dense_rank) with the achievement's facts.
    """
    declined = {d.achievement_id for d in declines}
    hits: list[Hit] = []
    # Penalties only shrink a positive score, so once `limit` hits are kept and the next
    # candidate's score before penalties is below the lowest kept one, no later candidate
    # (candidates are taken best first) can enter the page: the rest need no checks.
    kept: list[float] = []  # min-heap of the best `limit` scores so far
    for cand, facts in sorted(candidates, key=lambda cf: -cf[0].score):
        if len(kept) >= limit and cand.score >= 0 and cand.score + 1e-6 < kept[0]:  # 1e-6: rounding
            break
        if facts.achievement_id in declined:
            continue
        checks = check_constraints(demand, facts)
        if not passes_hard(checks):
            continue
        misses = sum(1 for c in checks if not c.hard and c.outcome == Outcome.missed)
        factor, why = feedback_factor(facts, declines)
        if misses:
            why.insert(0, f"soft constraints missed: {misses}")
        score = round(cand.score * (SOFT_MISS_FACTOR ** misses) * factor, 6)
        if len(kept) < limit:
            heapq.heappush(kept, score)
        elif score > kept[0]:
            heapq.heapreplace(kept, score)
        hits.append(Hit(
            achievement_id=facts.achievement_id,
            score=score,
            relevance=cand.relevance,
            checks=checks,
            matched_terms=list(cand.matched_terms),
            shared_ipc=list(cand.ipc.shared),
            semantic_similarity=cand.dense,
            lexical_rank=cand.lexical_rank,
            dense_rank=cand.dense_rank,
            adjustments=why,
        ))
    hits.sort(key=lambda h: (-h.score, h.achievement_id))
    return hits[:limit]
