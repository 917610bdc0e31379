"""What vouchers reads from others, into its own copies.

- catalog organisations -> the `organisations` read model used by eligibility checks;
- matching transfers -> the `transfers` read model, and completion settles (cancellation
  releases) every reservation linked to the transfer.

Handlers run inside the consumer's unit of work together with the inbox row, so a redelivered
event changes nothing; settlement is also guarded by the redemption's state.
"""

from __future__ import annotations

from techbridge_shared.consumer import Subscription
from techbridge_shared.envelope import CloudEvent
from techbridge_shared.uow import UnitOfWork

from ..service_layer import redemptions
from ..store.repository import Repository, as_date

ORGANISATION_REGISTERED = "techbridge.catalog.organisation.registered.v1"
ORGANISATION_UPDATED = "techbridge.catalog.organisation.updated.v1"
TRANSFER_TYPES = {
    verb: f"techbridge.matching.transfer.{verb}.v1"
    for verb in ("proposed", "offer-made", "signed", "completed", "cancelled")
}


async def on_organisation(uow: UnitOfWork, event: CloudEvent) -> None:
    d = event.data
    revenue = d.get("annual_revenue") or None
    await Repository(uow.session).upsert_organisation({
        "id": str(d["organisation_id"]),
        "name": str(d.get("name") or d.get("name_en") or ""),
        "kind": str(d.get("kind") or "other"),
        "region": str(d.get("region") or ""),
        "credit_code": d.get("credit_code"),
        "headcount": int(d["headcount"]) if d.get("headcount") is not None else None,
        "annual_revenue": int(revenue["amount"]) if revenue else None,
        "revenue_currency": str(revenue.get("currency", "CNY")) if revenue else None,
        "registered_on": as_date(d.get("registered_on")),
    }, as_of=event.time)


async def on_transfer(uow: UnitOfWork, event: CloudEvent) -> None:
    d = event.data
    transfer_id = str(d.get("transfer_id") or event.subject)
    verb = event.type.split(".")[3]
    status = {"completed": "completed", "cancelled": "cancelled"}.get(verb, verb)
    repo = Repository(uow.session)
    await repo.record_transfer(transfer_id, status, d.get("buyer_org_id"), d.get("seller_org_id"), event.time)
    if verb in ("completed", "cancelled"):
        await redemptions.on_transfer_finished(repo, uow, transfer_id, completed=verb == "completed",
                                               reason=str(d.get("cancelled_reason") or ""))


def subscriptions(group_prefix: str = "vouchers") -> list[Subscription]:
    return [
        Subscription(group=f"{group_prefix}.organisations",
                     handlers={ORGANISATION_REGISTERED: on_organisation, ORGANISATION_UPDATED: on_organisation}),
        Subscription(group=f"{group_prefix}.transfers", handlers={t: on_transfer for t in TRANSFER_TYPES.values()}),
    ]
