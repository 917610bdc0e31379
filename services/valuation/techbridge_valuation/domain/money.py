"""The one place a computed amount becomes integer minor units.

Valuation arithmetic (discounting, Monte Carlo, option pricing) runs in binary floating point on
amounts expressed in minor units, because it is vectorised and its inputs are estimates. Every
amount leaves the domain through `to_minor`, exactly once, rounding half away from zero to a
whole minor unit (fen). Nothing rounds intermediate results, so a reported total is the rounded
exact total, not a sum of rounded parts.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal


def to_minor(value: float) -> int:
    """Round a float amount in minor units to an int, half away from zero; non-finite -> error."""
    if not math.isfinite(value):
        raise ValueError(f"amount is not finite: {value}")
    return int(Decimal(repr(float(value))).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def to_minor_floor0(value: float) -> int:
    """As `to_minor`, but a negative value (a project worth less than nothing) reports as 0."""
    return max(0, to_minor(value))
