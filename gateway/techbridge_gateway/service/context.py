"""What every gateway use case needs, built once per process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from techbridge_shared.service import ServiceRuntime

from ..config import Settings
from ..domain.accounts import Hasher, LockoutPolicy
from ..domain.ratelimit import RateLimiter
from ..domain.tokens import TokenGenerations, TokenIssuer, VerifiedTokens


@dataclass
class GatewayContext:
    settings: Settings
    runtime: ServiceRuntime | None = None
    issuer: TokenIssuer = field(init=False)
    tokens: VerifiedTokens = field(init=False)
    generations: TokenGenerations = field(init=False)
    hasher: Hasher = field(init=False)
    lockout: LockoutPolicy = field(init=False)
    client_limiter: RateLimiter = field(init=False)
    anonymous_limiter: RateLimiter = field(init=False)
    # Futures of streams and the delivery worker waiting for newly stored events.
    _waiters: set[asyncio.Future] = field(init=False, default_factory=set)

    def __post_init__(self):
        s = self.settings
        self.issuer = TokenIssuer(s.jwt_secret, s.jwt_issuer, s.jwt_audience, s.token_ttl_s, s.token_leeway_s)
        self.tokens = VerifiedTokens(self.issuer)
        self.generations = TokenGenerations()
        self.hasher = Hasher(s.password_time_cost, s.password_memory_kib)
        self.lockout = LockoutPolicy(s.login_max_failures, timedelta(seconds=s.login_lockout_s))
        self.client_limiter = RateLimiter(s.rate_limit_per_s, s.rate_limit_burst)
        self.anonymous_limiter = RateLimiter(s.anonymous_rate_limit_per_s, s.anonymous_rate_limit_burst)

    def uow(self):
        assert self.runtime is not None, "the gateway runtime is not attached"
        return self.runtime.unit_of_work()

    def notify_events(self) -> None:
        """Wake everyone waiting for events (called after new events are stored)."""
        for fut in list(self._waiters):
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait_events(self, timeout: float) -> bool:
        """True when woken by new events, False after `timeout` seconds."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.discard(fut)
