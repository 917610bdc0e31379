"""Token buckets per client: sustained `rate` per second with bursts up to `burst`."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """In-process buckets keyed by client; the least recently used are forgotten beyond `max_keys`.

    `take(key)` returns 0 when the request may go, or the seconds until one token is back.
    """

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000, clock=time.monotonic):
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def take(self, key: str, cost: float = 1.0) -> float:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = Bucket(tokens=float(self.burst), updated=now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.rate

    def remaining(self, key: str) -> int:
        bucket = self._buckets.get(key)
        return self.burst if bucket is None else int(bucket.tokens)


def retry_after_header(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))
