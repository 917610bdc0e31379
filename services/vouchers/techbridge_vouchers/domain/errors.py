"""Refusals the domain makes, each a problem+json with a stable code naming the reason."""

from __future__ import annotations

from techbridge_shared.errors import Conflict, FieldError, Forbidden, NotFound, Problem, ValidationFailed

__all__ = [
    "Conflict", "FieldError", "Forbidden", "NotFound", "Problem", "ValidationFailed",
    "refused", "invalid",
]


def refused(code: str, detail: str) -> Conflict:
    """A request that is well-formed but not allowed in the current state (409)."""
    return Conflict(detail, code=code)


def invalid(field: str, message: str, code: str = "validation_failed") -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", code=code, errors=[FieldError(field=field, message=message)])
