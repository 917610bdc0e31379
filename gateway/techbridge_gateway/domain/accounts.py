"""API clients, API keys and user accounts: secrets, hashes and the lock-out rule.

Client secrets and passwords are hashed with argon2id (slow, salted); API keys are long random
strings, so a SHA-256 of the key is enough to look one up without storing it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

API_KEY_PREFIX = "tbk"
_API_KEY_RE = re.compile(r"^tbk_([0-9a-f]{16})_([A-Za-z0-9_-]{32,})$")
CLIENT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_client_id() -> str:
    return "cl-" + secrets.token_hex(8)


class Hasher:
    """argon2id with the configured cost; `verify` never raises for a wrong secret."""

    def __init__(self, time_cost: int = 2, memory_kib: int = 19_456):
        self._ph = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)

    def hash(self, secret: str) -> str:
        return self._ph.hash(secret)

    def verify(self, hashed: str | None, secret: str) -> bool:
        if not hashed:
            # Same work as a real check, so timing does not tell unknown from wrong.
            self._ph.hash(secret)
            return False
        try:
            return self._ph.verify(hashed, secret)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    secret: str

    @property
    def token(self) -> str:
        return f"{API_KEY_PREFIX}_{self.key_id}_{self.secret}"


def new_api_key() -> ApiKey:
    return ApiKey(key_id=secrets.token_hex(8), secret=secrets.token_urlsafe(32))


def parse_api_key(value: str) -> ApiKey | None:
    m = _API_KEY_RE.match(value.strip())
    return ApiKey(m.group(1), m.group(2)) if m else None


def api_key_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def digests_match(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)


@dataclass(frozen=True)
class LockoutPolicy:
    """After `max_failures` consecutive failed logins the account is locked for `lockout`."""

    max_failures: int
    lockout: timedelta

    def is_locked(self, locked_until: datetime | None, now: datetime) -> bool:
        return locked_until is not None and locked_until > now

    def after_failure(self, failures: int, now: datetime) -> tuple[int, datetime | None]:
        """(new failure count, locked until or None)."""
        failures += 1
        if failures >= self.max_failures:
            return 0, now + self.lockout
        return failures, None


def secret_accepted(
    *, hasher: Hasher, secret: str, current_hash: str, previous_hash: str | None,
    previous_valid_until: datetime | None, now: datetime,
) -> bool:
    """The current secret, or the one it replaced while its grace period lasts."""
    if hasher.verify(current_hash, secret):
        return True
    if previous_hash and previous_valid_until and previous_valid_until > now:
        return hasher.verify(previous_hash, secret)
    return False
