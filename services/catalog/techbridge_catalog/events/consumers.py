"""What the catalog learns from other services.

- matching's transfer facts: who is party to a signed deal (they may read the confidential
  details) and whether the achievement is under negotiation, transferred or back on the market.
- valuation's completed valuations: the range shown on the achievement.

Each handler keeps its own copy of the few fields it reads (see service.achievements).
"""

from __future__ import annotations

from techbridge_shared.consumer import Subscription
from techbridge_shared.envelope import CloudEvent
from techbridge_shared.uow import UnitOfWork

from ..service import achievements

TRANSFER_SIGNED = "techbridge.matching.transfer.signed.v1"
TRANSFER_COMPLETED = "techbridge.matching.transfer.completed.v1"
TRANSFER_CANCELLED = "techbridge.matching.transfer.cancelled.v1"
VALUATION_COMPLETED = "techbridge.valuation.valuation.completed.v1"


async def on_signed(uow: UnitOfWork, event: CloudEvent) -> None:
    await achievements.on_transfer(uow, event, "signed")


async def on_completed(uow: UnitOfWork, event: CloudEvent) -> None:
    await achievements.on_transfer(uow, event, "completed")


async def on_cancelled(uow: UnitOfWork, event: CloudEvent) -> None:
    await achievements.on_transfer(uow, event, "cancelled")


async def on_valuation(uow: UnitOfWork, event: CloudEvent) -> None:
    await achievements.on_valuation(uow, event)


def subscriptions(prefix: str = "catalog") -> list[Subscription]:
    return [
        Subscription(group=f"{prefix}.transfers", handlers={
            TRANSFER_SIGNED: on_signed, TRANSFER_COMPLETED: on_completed, TRANSFER_CANCELLED: on_cancelled,
        }),
        Subscription(group=f"{prefix}.valuations", handlers={VALUATION_COMPLETED: on_valuation}),
    ]
