"""Technology demands: an enterprise's need, from draft to published to closed/fulfilled/expired."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum

from techbridge_shared.errors import Conflict, FieldError, ValidationFailed

from .common import MAX_AMOUNT, TransferMode


class DemandStatus(StrEnum):
    draft = "draft"
    published = "published"
    closed = "closed"
    fulfilled = "fulfilled"
    expired = "expired"


OPEN = {DemandStatus.draft, DemandStatus.published}


@dataclass(frozen=True)
class Budget:
    minimum: int | None
    maximum: int | None
    currency: str = "CNY"


@dataclass(frozen=True)
class Demand:
    id: str
    owner_org_id: str
    title: str
    problem: str
    ipc_codes: tuple[str, ...]
    keywords: tuple[str, ...]
    budget: Budget
    deadline: date | None
    transfer_modes: tuple[TransferMode, ...]
    min_trl: int | None
    region: str | None
    status: DemandStatus = DemandStatus.draft
    created_at: datetime | None = None
    published_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def query_text(self) -> str:
        parts = [self.title, self.problem, " ".join(self.keywords)]
        return "\n".join(p for p in parts if p)


def check_budget(budget: Budget) -> None:
    errors = []
    for name, value in (("budget_min", budget.minimum), ("budget_max", budget.maximum)):
        if value is not None and not (0 <= value <= MAX_AMOUNT):
            errors.append(FieldError(field=f"body.{name}.amount", message=f"must be between 0 and {MAX_AMOUNT} minor units"))
    if budget.minimum is not None and budget.maximum is not None and budget.minimum > budget.maximum:
        errors.append(FieldError(field="body.budget_max.amount", message="must not be below budget_min"))
    if errors:
        raise ValidationFailed("the budget is not plausible", errors=errors)


def check_deadline(deadline: date | None, today: date) -> None:
    if deadline is not None and deadline < today:
        raise ValidationFailed("the deadline has passed", errors=[FieldError(field="body.deadline", message="must be today or later")])


def _refuse(demand: Demand, target: str) -> Conflict:
    return Conflict(f"demand {demand.id} is {demand.status.value}; {demand.status.value} -> {target} is not allowed", code="invalid_transition")


def edit(demand: Demand, **changes) -> Demand:
    if demand.status != DemandStatus.draft:
        raise Conflict(f"demand {demand.id} is {demand.status.value}; only drafts can be edited", code="invalid_transition")
    return replace(demand, **changes)


def publish(demand: Demand, now: datetime) -> Demand:
    if demand.status != DemandStatus.draft:
        raise _refuse(demand, "published")
    check_deadline(demand.deadline, now.date())
    return replace(demand, status=DemandStatus.published, published_at=now)


def close(demand: Demand, now: datetime, reason: str | None = None) -> Demand:
    if demand.status not in OPEN:
        raise _refuse(demand, "closed")
    return replace(demand, status=DemandStatus.closed, closed_at=now, close_reason=reason)


def fulfil(demand: Demand, now: datetime, reason: str | None = None) -> Demand:
    if demand.status != DemandStatus.published:
        raise _refuse(demand, "fulfilled")
    return replace(demand, status=DemandStatus.fulfilled, closed_at=now, close_reason=reason)


def expire(demand: Demand, now: datetime) -> Demand:
    if demand.status != DemandStatus.published:
        raise _refuse(demand, "expired")
    if demand.deadline is None or demand.deadline >= now.date():
        raise Conflict(f"demand {demand.id} has not reached its deadline", code="invalid_transition")
    return replace(demand, status=DemandStatus.expired, closed_at=now, close_reason="deadline passed")


def is_due_to_expire(demand: Demand, now: datetime) -> bool:
    return demand.status == DemandStatus.published and demand.deadline is not None and demand.deadline < now.date()
