"""Access tokens: short-lived JWTs, HS256 pinned, with issuer, audience, expiry and identity.

Verification accepts exactly one algorithm, so `alg: none` and algorithm-confusion tokens are
refused before any key is used; every registered claim the gateway relies on is required.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from techbridge_shared.identity import Identity

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why (safe to show the caller)."""


@dataclass(frozen=True)
class TokenIssuer:
    secret: str
    issuer: str
    audience: str
    ttl_s: int
    leeway_s: int = 10

    def issue(self, identity: Identity, now: float | None = None) -> tuple[str, int]:
        """A signed token for `identity` and its lifetime in seconds."""
        issued = int(now if now is not None else time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": identity.sub,
            "iat": issued,
            "nbf": issued,
            "exp": issued + self.ttl_s,
            "jti": uuid.uuid4().hex,
            "client_id": identity.client_id,
            "org": identity.org,
            "roles": sorted(identity.roles),
            "kind": identity.kind,
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM, headers={"typ": "JWT"}), self.ttl_s

    def verify(self, token: str, now: float | None = None) -> Identity:
        return self.verify_with_expiry(token, now)[0]

    def verify_with_expiry(self, token: str, now: float | None = None) -> tuple[Identity, int]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"token algorithm {header.get('alg')!r} is not accepted")
        try:
            claims = _decode_at(token, self, time.time() if now is None else now)
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("token from another issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("token signature does not match") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"token lacks the {exc.claim} claim") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {type(exc).__name__}") from None
        try:
            return Identity(
                sub=claims["sub"],
                org=claims.get("org"),
                roles=frozenset(claims.get("roles") or ()),
                client_id=claims.get("client_id"),
                kind=claims.get("kind") or "client",
            ), int(claims["exp"])
        except ValueError:
            raise InvalidToken("token carries an unknown role or identity kind") from None


def _decode_at(token: str, issuer: TokenIssuer, now: float) -> dict:
    """Signature, algorithm, issuer and audience by PyJWT; time claims as of `now`."""
    claims = jwt.decode(
        token, issuer.secret, algorithms=[ALGORITHM], audience=issuer.audience, issuer=issuer.issuer,
        options={"require": REQUIRED_CLAIMS, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    if claims["exp"] + issuer.leeway_s <= now:
        raise jwt.ExpiredSignatureError("expired")
    if claims["nbf"] - issuer.leeway_s > now:
        raise jwt.ImmatureSignatureError("not yet valid")
    return claims


class VerifiedTokens:
    """Tokens already verified, until they expire: a partner sends the same token many times,
    and checking its signature again each time is the gateway's largest cost per request."""

    def __init__(self, issuer: TokenIssuer, max_entries: int = 10_000):
        self.issuer = issuer
        self.max_entries = max_entries
        self._seen: dict[str, tuple[Identity, int]] = {}

    def verify(self, token: str, now: float | None = None) -> Identity:
        current = time.time() if now is None else now
        hit = self._seen.get(token)
        if hit is not None and hit[1] + self.issuer.leeway_s > current:
            return hit[0]
        identity, exp = self.issuer.verify_with_expiry(token, current)
        if len(self._seen) >= self.max_entries:
            self._seen.clear()  # rare; simpler and cheaper than LRU bookkeeping per request
        self._seen[token] = (identity, exp)
        return identity
