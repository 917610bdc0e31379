"""Consumers: catalog achievements (the subject data) and matching transfers (buyers, comparables).

This service keeps its own copy of the fields it reads (see the README for which); events it
does not know are acknowledged and ignored by the shared consumer.
"""

from __future__ import annotations

from techbridge_shared.consumer import Subscription
from techbridge_shared.envelope import CloudEvent
from techbridge_shared.uow import UnitOfWork

from ..store.repository import Repository

ACH = "techbridge.catalog.achievement.{}.v1"
TRANSFER = "techbridge.matching.transfer.{}.v1"


async def on_achievement_published(uow: UnitOfWork, event: CloudEvent) -> None:
    # Catalog says "published" or "under_negotiation"; both are live listings.
    status = str(event.data.get("status") or "published")
    await Repository(uow.session).upsert_achievement(dict(event.data), status)


def _status_handler(status: str):
    async def handler(uow: UnitOfWork, event: CloudEvent) -> None:
        d = event.data
        await Repository(uow.session).set_achievement_status(str(d["achievement_id"]), d.get("owner_org_id"), status)
    handler.__name__ = f"on_achievement_{status}"
    return handler


def _transfer_handler(status: str):
    async def handler(uow: UnitOfWork, event: CloudEvent) -> None:
        await Repository(uow.session).apply_transfer(dict(event.data), status)
    handler.__name__ = f"on_transfer_{status}"
    return handler


def subscriptions(prefix: str = "valuation") -> list[Subscription]:
    return [
        Subscription(group=f"{prefix}.achievements", handlers={
            ACH.format("published"): on_achievement_published,
            ACH.format("updated"): on_achievement_published,
            ACH.format("withdrawn"): _status_handler("withdrawn"),
            ACH.format("expired"): _status_handler("expired"),
            ACH.format("transferred"): _status_handler("transferred"),
        }),
        Subscription(group=f"{prefix}.transfers", handlers={
            TRANSFER.format("signed"): _transfer_handler("signed"),
            TRANSFER.format("completed"): _transfer_handler("completed"),
            TRANSFER.format("cancelled"): _transfer_handler("cancelled"),
        }),
    ]
