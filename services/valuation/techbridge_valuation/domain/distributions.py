"""Uncertain inputs: a fixed number or a distribution (triangular, lognormal, uniform).

On the wire an input is either a plain number or `{"dist": "triangular", "low", "mode", "high"}`,
`{"dist": "lognormal", "median", "sigma"}` (sigma of the natural log) or
`{"dist": "uniform", "low", "high"}`. Each has a base value (used for the point valuation and
the tornado chart: the mode, the median, the midpoint) and draws vectorised samples from a
numpy Generator, so one seed gives the same paths every time.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Dist(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @property
    def uncertain(self) -> bool:
        return True

    def bounds(self) -> tuple[float, float]:
        raise NotImplementedError

    def quantile(self, p: float) -> float:
        raise NotImplementedError

    def scaled(self, k: float) -> _Dist:
        raise NotImplementedError


class Triangular(_Dist):
    dist: Literal["triangular"] = "triangular"
    low: float = Field(description="Minimum")
    mode: float = Field(description="Most likely value")
    high: float = Field(description="Maximum")

    @model_validator(mode="after")
    def _order(self):
        if not (self.low <= self.mode <= self.high) or self.low == self.high:
            raise ValueError("triangular needs low <= mode <= high and low < high")
        return self

    @property
    def base(self) -> float:
        return self.mode

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.triangular(self.low, self.mode, self.high, n)

    def quantile(self, p: float) -> float:
        a, c, b = self.low, self.mode, self.high
        f = (c - a) / (b - a)
        if p < f:
            return a + math.sqrt(p * (b - a) * (c - a))
        return b - math.sqrt((1 - p) * (b - a) * (b - c))

    def scaled(self, k: float) -> Triangular:
        return Triangular(low=self.low * k, mode=self.mode * k, high=self.high * k)


class Lognormal(_Dist):
    dist: Literal["lognormal"] = "lognormal"
    median: float = Field(gt=0, description="Median (exp of the mean of the log)")
    sigma: float = Field(gt=0, le=3, description="Standard deviation of the natural log")

    @property
    def base(self) -> float:
        return self.median

    def bounds(self) -> tuple[float, float]:
        # The 0.1 % and 99.9 % quantiles stand for the bounds when checking plausibility.
        return self.quantile(0.001), self.quantile(0.999)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(math.log(self.median), self.sigma, n)

    def quantile(self, p: float) -> float:
        return self.median * math.exp(self.sigma * _norm_ppf(p))

    def scaled(self, k: float) -> Lognormal:
        return Lognormal(median=self.median * k, sigma=self.sigma)


class Uniform(_Dist):
    dist: Literal["uniform"] = "uniform"
    low: float
    high: float

    @model_validator(mode="after")
    def _order(self):
        if not self.low < self.high:
            raise ValueError("uniform needs low < high")
        return self

    @property
    def base(self) -> float:
        return (self.low + self.high) / 2

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)

    def quantile(self, p: float) -> float:
        return self.low + p * (self.high - self.low)

    def scaled(self, k: float) -> Uniform:
        return Uniform(low=self.low * k, high=self.high * k)


Distribution = Annotated[Union[Triangular, Lognormal, Uniform], Field(discriminator="dist")]
Uncertain = Union[float, Distribution]


def base_of(x: Uncertain) -> float:
    return float(x) if isinstance(x, (int, float)) else x.base


def is_uncertain(x: Uncertain) -> bool:
    return not isinstance(x, (int, float))


def bounds_of(x: Uncertain) -> tuple[float, float]:
    return (float(x), float(x)) if isinstance(x, (int, float)) else x.bounds()


def quantile_of(x: Uncertain, p: float) -> float:
    return float(x) if isinstance(x, (int, float)) else x.quantile(p)


def sample_of(x: Uncertain, rng: np.random.Generator, n: int) -> np.ndarray:
    if isinstance(x, (int, float)):
        return np.full(n, float(x))
    return x.sample(rng, n)


def describe(x: Uncertain) -> str:
    if isinstance(x, (int, float)):
        return f"{x:g}"
    if isinstance(x, Triangular):
        return f"triangular({x.low:g}, {x.mode:g}, {x.high:g})"
    if isinstance(x, Lognormal):
        return f"lognormal(median {x.median:g}, sigma {x.sigma:g})"
    return f"uniform({x.low:g}, {x.high:g})"


def _norm_ppf(p: float) -> float:
    """Inverse standard normal CDF (Acklam's rational approximation, refined by one Newton step)."""
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    lo = 0.02425
    if p < lo:
        q = math.sqrt(-2 * math.log(p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    elif p <= 1 - lo:
        q = p - 0.5
        r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    else:
        q = math.sqrt(-2 * math.log(1 - p))
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    e = 0.5 * math.erfc(-x / math.sqrt(2)) - p
    u = e * math.sqrt(2 * math.pi) * math.exp(x * x / 2)
    return x - u / (1 + x * u / 2)
