"""Who is calling: the identity the gateway verified, carried to services so they can trust it.

The gateway authenticates the caller (JWT or API key), then adds two headers:

    X-Techbridge-Identity:     base64url(JSON {sub, org, roles, client_id, kind})
    X-Techbridge-Identity-Sig: t=<unix seconds>,v1=<hex HMAC-SHA256>

The HMAC covers the timestamp, the identity, the method and the path, keyed by a secret only
the gateway and the services hold, so an outside caller can neither forge an identity nor
replay one against another endpoint or after the window. Services use `require_identity`
(and `require_roles`) on every /api route; object-level rules stay in each service.

Rotating that secret without refusing anything: services are given the new secret as
`internal_auth_secret` and the old one in `internal_auth_previous_secrets` (they accept both),
then the gateway switches to signing with the new one, then the old one is dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Literal

from fastapi import Depends, Request
from pydantic import BaseModel, Field, ValidationError

from .errors import Forbidden, Unauthorized

IDENTITY_HEADER = "X-Techbridge-Identity"
SIGNATURE_HEADER = "X-Techbridge-Identity-Sig"
MAX_SKEW_S = 60

Role = Literal["admin", "institution", "enterprise", "agency", "government", "partner"]
ROLES: tuple[str, ...] = ("admin", "institution", "enterprise", "agency", "government", "partner")


class Identity(BaseModel):
    model_config = {"frozen": True}

    sub: str = Field(description="The user id or API client id")
    org: str | None = Field(default=None, description="Organisation (tenant) id from the catalog registry")
    roles: frozenset[Role] = Field(default_factory=frozenset)
    client_id: str | None = None
    kind: Literal["user", "client", "api_key"] = "client"

    def has_any(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


@lru_cache(maxsize=16)
def _keyed(secret: str) -> hmac.HMAC:
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


def _mac(secret: str, timestamp: int, encoded: str, method: str, path: str) -> str:
    # A copy of the HMAC keyed once per secret skips the key set-up on every request.
    mac = _keyed(secret).copy()
    mac.update(f"{timestamp}.{encoded}.{method.upper()}.{path}".encode())
    return mac.hexdigest()


@lru_cache(maxsize=4096)
def _encoded(identity: Identity) -> str:
    # The same caller sends many requests: its identity is serialised once, not per request.
    return base64.urlsafe_b64encode(identity.model_dump_json().encode()).decode().rstrip("=")


def identity_headers(identity: Identity, secret: str, method: str, path: str, now: float | None = None) -> dict[str, str]:
    """What the gateway adds to a forwarded request (and what tests use to call a service)."""
    encoded = _encoded(identity)
    timestamp = int(now if now is not None else time.time())
    return {
        IDENTITY_HEADER: encoded,
        SIGNATURE_HEADER: f"t={timestamp},v1={_mac(secret, timestamp, encoded, method, path)}",
    }


def verify_identity(headers, secret: str | Sequence[str], method: str, path: str,
                    now: float | None = None) -> Identity:
    """The identity the gateway signed, or 401. `secret` is one secret or several accepted ones
    (the current first, then previous ones during a rotation)."""
    secrets = (secret,) if isinstance(secret, str) else tuple(secret)
    encoded = headers.get(IDENTITY_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not encoded or not signature:
        raise Unauthorized("this endpoint is reached through the gateway with a verified identity")
    try:
        parts = dict(p.split("=", 1) for p in signature.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (ValueError, KeyError):
        raise Unauthorized("malformed identity signature") from None
    current = now if now is not None else time.time()
    if abs(current - timestamp) > MAX_SKEW_S:
        raise Unauthorized("identity signature expired")
    if not any(hmac.compare_digest(given, _mac(s, timestamp, encoded, method, path)) for s in secrets if s):
        raise Unauthorized("identity signature does not match")
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        return Identity.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        raise Unauthorized("malformed identity") from None


@lru_cache(maxsize=16)
def _secrets(current: str, previous: str) -> tuple[str, ...]:
    earlier = [p.strip() for p in previous.split(",") if p.strip() and p.strip() != current]
    return (current, *dict.fromkeys(earlier))


def accepted_secrets(settings) -> tuple[str, ...]:
    """The secrets a service accepts: `internal_auth_secret`, then each of the comma-separated
    `internal_auth_previous_secrets` (absent on settings objects without it: none)."""
    return _secrets(settings.internal_auth_secret, getattr(settings, "internal_auth_previous_secrets", "") or "")


def identity_of(request: Request) -> Identity:
    """The verified caller of `request`, or 401 problem+json."""
    secrets = accepted_secrets(request.app.state.runtime.settings)
    return verify_identity(request.headers, secrets, request.method, request.url.path)


# The dependencies are coroutines although they never wait: FastAPI runs a plain function
# dependency in a worker thread, a thread hop per dependency per request.
async def require_identity(request: Request) -> Identity:
    """FastAPI dependency: the verified caller, or 401 problem+json."""
    return identity_of(request)


def require_roles(*roles: str) -> Callable[..., Awaitable[Identity]]:
    """FastAPI dependency factory: the caller must hold one of `roles` (admin always may)."""

    async def dependency(identity: Identity = Depends(require_identity)) -> Identity:
        if not identity.has_any(*roles, "admin"):
            raise Forbidden(f"requires one of the roles: {', '.join(roles)}")
        return identity

    return dependency
