"""What every catalog operation needs: who acts, the clock, and the store's repositories."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from techbridge_shared.errors import Problem
from techbridge_shared.identity import Identity

from ..domain.access import is_reviewer


@dataclass(frozen=True)
class Actor:
    sub: str
    org: str | None
    roles: frozenset[str]

    @classmethod
    def of(cls, identity: Identity) -> Actor:
        return cls(sub=identity.sub, org=identity.org, roles=frozenset(identity.roles))

    @property
    def reviewer(self) -> bool:
        return is_reviewer(self.roles)

    @property
    def admin(self) -> bool:
        return "admin" in self.roles


SYSTEM = Actor(sub="system:catalog", org=None, roles=frozenset())


def now() -> datetime:
    return datetime.now(UTC)


class PreconditionFailed(Problem):
    status, code, title = 412, "precondition_failed", "The resource changed since you read it"


class PreconditionRequired(Problem):
    status, code, title = 428, "precondition_required", "If-Match is required"


def check_version(expected: int | None, actual: int, *, required: bool) -> None:
    if expected is None:
        if required:
            raise PreconditionRequired(
                "send If-Match with the ETag of the version you edited, so a concurrent change is not overwritten"
            )
        return
    if expected != actual:
        raise PreconditionFailed(
            f"the resource is at version {actual}, not {expected}: someone else changed it; "
            "read it again and re-apply your change"
        )


def validated(model, data: dict, prefix: str = "body"):
    """model.model_validate(data), with pydantic's errors as a 422 naming each field."""
    from pydantic import ValidationError

    from techbridge_shared.errors import FieldError, ValidationFailed

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            FieldError(field=".".join([prefix, *(str(p) for p in e["loc"])]), message=e["msg"])
            for e in exc.errors()
        ]
        raise ValidationFailed("; ".join(f"{e.field}: {e.message}" for e in errors[:3]), errors=errors) from None
