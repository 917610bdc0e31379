"""Catalog achievement events -> matching's read model (and saved matching).

Matching keeps its own copy of the fields it reads; it never calls the catalog. Event types
per the cross-service contract; data of published/updated carries the whole public record,
the others at least {achievement_id, owner_org_id}. An event older than what the read model
already holds (by version, then event time) is ignored, so redelivery or reordering across
types cannot resurrect a withdrawn achievement.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from techbridge_shared.consumer import Subscription
from techbridge_shared.envelope import CloudEvent
from techbridge_shared.uow import UnitOfWork

CATALOG_ACHIEVEMENT = "techbridge.catalog.achievement.{verb}.v1"
PUBLISHED = CATALOG_ACHIEVEMENT.format(verb="published")
UPDATED = CATALOG_ACHIEVEMENT.format(verb="updated")
WITHDRAWN = CATALOG_ACHIEVEMENT.format(verb="withdrawn")
EXPIRED = CATALOG_ACHIEVEMENT.format(verb="expired")
TRANSFERRED = CATALOG_ACHIEVEMENT.format(verb="transferred")
REMOVALS = {WITHDRAWN: "withdrawn", EXPIRED: "expired", TRANSFERRED: "transferred"}


def _money_amount(value: Any) -> tuple[int | None, str]:
    if isinstance(value, dict) and value.get("amount") is not None:
        return int(value["amount"]), str(value.get("currency") or "CNY")
    return None, "CNY"


def read_model_values(data: dict, event_time: datetime) -> dict:
    """The catalog's published/updated data -> matching's achievement row."""
    price, currency = _money_amount(data.get("asking_price"))
    published_at = data.get("published_at")
    return dict(
        achievement_id=str(data["achievement_id"]),
        version=int(data.get("version") or 1),
        owner_org_id=str(data["owner_org_id"]),
        status="published",
        title_zh=str(data.get("title_zh") or "")[:500],
        title_en=str(data.get("title_en") or "")[:500],
        abstract_zh=str(data.get("abstract_zh") or ""),
        abstract_en=str(data.get("abstract_en") or ""),
        keywords=[str(k) for k in data.get("keywords") or []],
        fields=[str(f) for f in data.get("fields") or []],
        ipc_codes=[str(c) for c in data.get("ipc_codes") or []],
        ip_type=data.get("ip_type"),
        trl=int(data["trl"]) if data.get("trl") is not None else None,
        transfer_modes=[str(m) for m in data.get("transfer_modes") or []],
        asking_price=price,
        currency=currency,
        negotiable=bool(data.get("negotiable", price is None)),
        region=data.get("region"),
        ip_records=list(data.get("ip_records") or []),
        published_at=datetime.fromisoformat(published_at.replace("Z", "+00:00")) if isinstance(published_at, str) else None,
        updated_at=event_time,
        last_event_time=event_time,
    )


def subscription(handlers, group: str = "matching.achievement-index") -> Subscription:
    """`handlers`: an object with on_published(uow, event) and on_removed(uow, event, status)."""

    async def published(uow: UnitOfWork, event: CloudEvent) -> None:
        await handlers.on_published(uow, event)

    def removal(status: str):
        async def handler(uow: UnitOfWork, event: CloudEvent) -> None:
            await handlers.on_removed(uow, event, status)
        return handler

    return Subscription(group=group, handlers={
        PUBLISHED: published, UPDATED: published,
        **{etype: removal(status) for etype, status in REMOVALS.items()},
    })
