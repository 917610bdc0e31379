"""Every platform event: stored in the event log (for streams and replay) and turned into one
delivery per matching subscription, in the same transaction as the consumer's inbox row."""

from __future__ import annotations

import re

from techbridge_shared.consumer import Subscription
from techbridge_shared.envelope import CloudEvent
from techbridge_shared.uow import UnitOfWork

from ..domain import events as ev
from ..service.auth import now_utc
from ..service.context import GatewayContext
from ..service.subscriptions import new_delivery, subscription_wants
from ..store import repositories as repo

# Every techbridge topic; dead-letter topics (`<topic>.dlq`) do not match.
ALL_TOPICS_PATTERN = r"^techbridge\.[a-z][a-z0-9-]*\.[a-z][a-z0-9-]*\.v[1-9][0-9]*$"

# The platform's topics by contract, created at start-up so the gateway consumes them from the
# first event even when it starts before their publishers; later topics are found by pattern.
KNOWN_TOPICS = [
    "techbridge.catalog.organisation.v1",
    "techbridge.catalog.achievement.v1",
    "techbridge.matching.demand.v1",
    "techbridge.matching.transfer.v1",
    "techbridge.matching.match.v1",
    "techbridge.valuation.valuation.v1",
    "techbridge.vouchers.programme.v1",
    "techbridge.vouchers.voucher.v1",
    "techbridge.vouchers.redemption.v1",
    "techbridge.vouchers.agency.v1",
    "techbridge.vouchers.application.v1",
    "techbridge.vouchers.payout-batch.v1",
]
assert all(re.match(ALL_TOPICS_PATTERN, t) for t in KNOWN_TOPICS)


def event_subscription(ctx: GatewayContext) -> Subscription:
    async def on_event(uow: UnitOfWork, event: CloudEvent) -> None:
        now = now_utc()
        row = {
            "event_id": event.id, "source": event.source, "type": event.type, "subject": event.subject,
            "time": event.time, "orgs": sorted(ev.org_ids_in(event.data)), "payload": event.to_json().decode(),
            "received_at": now,
        }
        row["seq"] = await repo.insert_event(uow.session, **row)
        subs = await repo.active_subscriptions(uow.session)
        await repo.insert_deliveries(uow.session, [new_delivery(s, row, now) for s in subs if subscription_wants(s, row)])
        repo.after_commit(uow.session, ctx.notify_events)

    return Subscription(
        group=ctx.settings.events_consumer_group, topics=list(KNOWN_TOPICS), pattern=ALL_TOPICS_PATTERN,
        fallback=on_event,
    )
