"""Market approach: the platform's own completed deals as comparables, adjusted to the subject.

A deal is comparable when it shares an IPC subclass with the subject (weight 1) or, failing
that, a field (weight 0.5). Its price is adjusted for:
- readiness: ratio of the probabilities of reaching the market at the subject's and the deal's
  TRL (a TRL 7 result is worth more than the same result at TRL 4), capped to [0.25, 4];
- exclusivity: assignment / exclusive / non-exclusive factors of the defaults table;
- territory: worldwide / national / regional factors of the defaults table.
Deals without a lump-sum price are listed as royalty-rate evidence, not priced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .defaults import DefaultsTable, exclusivity_of, ipc_subclass, territory_scope
from .subject import Subject, Transfer

TRL_FACTOR_BOUNDS = (0.25, 4.0)


@dataclass(frozen=True)
class Comparable:
    transfer: Transfer
    match: str
    weight: float
    trl_factor: float
    exclusivity: str
    exclusivity_factor: float
    territory_scope: str
    territory_factor: float

    @property
    def adjusted_price(self) -> float:
        assert self.transfer.price is not None
        return self.transfer.price * self.trl_factor * self.exclusivity_factor * self.territory_factor


def _match(subject: Subject, t: Transfer) -> tuple[str, float] | None:
    subject_subclasses = {ipc_subclass(c) for c in subject.ipc_codes if c.strip()}
    shared = sorted(subject_subclasses & {ipc_subclass(c) for c in t.ipc_codes if c.strip()})
    if shared:
        return f"IPC subclass {', '.join(shared)}", 1.0
    fields = sorted({f.lower() for f in subject.fields} & {f.lower() for f in t.fields})
    if fields:
        return f"field {', '.join(fields)}", 0.5
    return None


def find_comparables(
    subject: Subject,
    transfers: list[Transfer],
    table: DefaultsTable,
    *,
    exclusivity: str,
    territory: str,
    currency: str,
    limit: int = 20,
) -> tuple[list[Comparable], list[tuple[Transfer, str]]]:
    """Priced comparables (most similar, then most recent first) and royalty-only evidence."""
    p_subject = table.success_probability_by_trl[subject.trl].value
    subject_excl = table.exclusivity_factor[exclusivity].value
    subject_terr = table.territory_factor[territory_scope(territory)].value
    priced: list[Comparable] = []
    royalty_only: list[tuple[Transfer, str]] = []
    for t in transfers:
        m = _match(subject, t)
        if m is None:
            continue
        match, weight = m
        if t.price is None or t.price <= 0 or t.currency != currency:
            if t.royalty_rate_bp is not None:
                royalty_only.append((t, match))
            continue
        if t.trl is not None and 1 <= t.trl <= 9:
            raw = p_subject / table.success_probability_by_trl[t.trl].value
            trl_factor = min(max(raw, TRL_FACTOR_BOUNDS[0]), TRL_FACTOR_BOUNDS[1])
        else:
            trl_factor = 1.0
        excl = exclusivity_of(t.mode, t.exclusive)
        scope = territory_scope(t.territory)
        priced.append(Comparable(
            transfer=t, match=match, weight=weight, trl_factor=trl_factor,
            exclusivity=excl, exclusivity_factor=subject_excl / table.exclusivity_factor[excl].value,
            territory_scope=scope, territory_factor=subject_terr / table.territory_factor[scope].value,
        ))
    priced.sort(key=lambda c: (-c.weight, _desc(c.transfer.completed_at), c.transfer.transfer_id))
    royalty_only.sort(key=lambda x: (_desc(x[0].completed_at), x[0].transfer_id))
    return priced[:limit], royalty_only[:limit]


def _desc(s: str | None) -> str:
    # Sort newest first with a plain ascending sort: invert each character of the timestamp.
    return "".join(chr(0x10FFFF - ord(ch)) for ch in (s or ""))


class WeightedEmpirical:
    """The adjusted comparable prices as a distribution (weights = similarity)."""

    def __init__(self, values: list[float], weights: list[float]):
        order = np.argsort(values, kind="stable")
        self.values = np.asarray(values, dtype=float)[order]
        w = np.asarray(weights, dtype=float)[order]
        self.p = w / w.sum()
        self.cum = np.cumsum(self.p)

    def quantile(self, q: float) -> float:
        """Weighted quantile with linear interpolation between neighbouring comparables."""
        if len(self.values) == 1:
            return float(self.values[0])
        mid = self.cum - self.p / 2  # each value sits at the middle of its weight
        return float(np.interp(q, mid, self.values))

    @property
    def base(self) -> float:
        return self.quantile(0.5)

    def bounds(self) -> tuple[float, float]:
        return float(self.values[0]), float(self.values[-1])

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.values[rng.choice(len(self.values), size=n, p=self.p)]

    @property
    def uncertain(self) -> bool:
        return len(self.values) > 1
