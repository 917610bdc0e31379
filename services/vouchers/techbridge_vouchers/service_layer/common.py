from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from techbridge_shared.envelope import utcnow
from techbridge_shared.identity import Identity
from techbridge_shared.money import Money

from ..domain import model as m
from ..domain.errors import Forbidden, NotFound, refused
from ..domain.ledger import InsufficientBalance

#: The service's clock; tests replace it to move through validity periods.
clock: Callable[[], datetime] = utcnow


def now() -> datetime:
    return clock()


def money(amount: int, currency: str) -> Money:
    return Money(amount=amount, currency=currency)


@dataclass(frozen=True)
class Actor:
    """Who asks, as the gateway verified it."""

    sub: str
    org: str | None
    roles: frozenset[str]

    @classmethod
    def of(cls, identity: Identity) -> Actor:
        return cls(identity.sub, identity.org, frozenset(identity.roles))

    @property
    def is_official(self) -> bool:
        return bool(self.roles & {"government", "admin"})

    def require_org(self) -> str:
        if not self.org:
            raise Forbidden("the caller acts for no organisation", code="no_organisation")
        return self.org


def authorise(actor: Actor, programme: m.Programme, action: m.Governing = m.Governing.MANAGE,
              review_level: int | None = None) -> None:
    """The domain's rule on who governs a programme, for this caller (403 if not)."""
    m.authorise_governing(programme, org=actor.org, admin="admin" in actor.roles, action=action,
                          review_level=review_level)


SYSTEM = Actor("system", None, frozenset({"admin"}))


def not_found(kind: str, ident: str) -> NotFound:
    return NotFound(f"{kind} {ident} does not exist", code=f"{kind}_not_found")


def overdraft(exc: InsufficientBalance):
    return refused("insufficient_balance", f"the ledger refused the movement: {exc}")
