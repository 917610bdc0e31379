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

    def issue(self, identity: Identity, now: float | None = None, generation: int = 0) -> tuple[str, int]:
        """A signed token for `identity` and its lifetime in seconds; `generation` is the
        account's token generation (see `TokenGenerations`)."""
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
            "gen": generation,
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM, headers={"typ": "JWT"}), self.ttl_s

    def verify(self, token: str, now: float | None = None) -> Identity:
        return self.verify_with_expiry(token, now)[0]

    def verify_with_expiry(self, token: str, now: float | None = None) -> tuple[Identity, int]:
        identity, exp, _ = self.verify_full(token, now)
        return identity, exp

    def verify_full(self, token: str, now: float | None = None) -> tuple[Identity, int, int]:
        """The identity, expiry and token generation (0 when the token has none)."""
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
            ), int(claims["exp"]), int(claims.get("gen") or 0)
        except (TypeError, ValueError):
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
        self._seen: dict[str, tuple[Identity, int, int]] = {}

    def verify(self, token: str, now: float | None = None) -> Identity:
        return self.verify_with_generation(token, now)[0]

    def verify_with_generation(self, token: str, now: float | None = None) -> tuple[Identity, int]:
        current = time.time() if now is None else now
        hit = self._seen.get(token)
        if hit is not None and hit[1] + self.issuer.leeway_s > current:
            return hit[0], hit[2]
        identity, exp, generation = self.issuer.verify_full(token, current)
        if len(self._seen) >= self.max_entries:
            self._seen.clear()  # rare; simpler and cheaper than LRU bookkeeping per request
        self._seen[token] = (identity, exp, generation)
        return identity, generation


def account_key(identity: Identity) -> str:
    """Whose token generation applies: the user's for people, the client's otherwise."""
    if identity.kind == "user":
        return f"user:{identity.sub}"
    return f"client:{identity.client_id or identity.sub}"


class TokenGenerations:
    """Each account's current token generation, so tokens issued before a disable or a secret
    rotation stop working at once instead of living out their lifetime.

    An account starts at generation 0 and moves up by one when it is disabled (users and
    clients) or its secret is rotated (clients); a token carries the generation its account had
    when it was issued, and one older than the account's current generation is refused. Only
    accounts past generation 0 are kept. Generations only ever go up, so merging what the store
    says (other replicas' changes) with what this replica already knows takes the larger one.
    """

    def __init__(self) -> None:
        self._current: dict[str, int] = {}

    def current(self, key: str) -> int:
        return self._current.get(key, 0)

    def raise_to(self, key: str, generation: int) -> None:
        if generation > self._current.get(key, 0):
            self._current[key] = generation

    def merge(self, known: dict[str, int]) -> None:
        for key, generation in known.items():
            self.raise_to(key, generation)

    def accepts(self, identity: Identity, generation: int) -> bool:
        return generation >= self._current.get(account_key(identity), 0)
