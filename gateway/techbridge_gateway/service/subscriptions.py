"""Event subscriptions: register, list, delete, read the delivery log, redeliver, replay."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import uuid
from datetime import datetime

from techbridge_shared.errors import FieldError, Forbidden, NotFound, ValidationFailed, is_concurrent_conflict
from techbridge_shared.identity import Identity

from ..domain import events as ev
from ..domain.webhooks import CallbackRefused, check_addresses, check_callback_url
from ..store import repositories as repo
from .auth import now_utc
from .context import GatewayContext

REPLAY_MAX_EVENTS = 10_000


async def resolve(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]  # a literal address needs no lookup
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({info[4][0] for info in infos})


async def check_callback(ctx: GatewayContext, url: str) -> None:
    """Scheme and address rules against server-side request forgery (also checked per delivery)."""
    s = ctx.settings
    host, port = check_callback_url(url, allow_http=s.is_dev)
    check_addresses(await resolve(host, port), allow_loopback=s.is_dev,
                    allow_private=s.webhook_allow_private_targets)


def _field(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", errors=[FieldError(field=field, message=message)])


async def create(ctx: GatewayContext, identity: Identity, *, callback_url: str, types: list[str], secret: str,
                 description: str) -> dict:
    bad = [t for t in types if not ev.valid_pattern(t)]
    if not types or bad:
        raise _field("body.types", f"event type patterns like techbridge.matching.transfer.* (refused: {bad})")
    if len(secret) < 16:
        raise _field("body.secret", "at least 16 characters")
    try:
        await check_callback(ctx, callback_url)
    except CallbackRefused as exc:
        raise _field("body.callback_url", str(exc)) from None
    subscription_id = str(uuid.uuid4())
    async with ctx.uow() as uow:
        await repo.insert_subscription(
            uow.session, subscription_id=subscription_id, owner_sub=identity.sub, owner_kind=identity.kind,
            owner_org=identity.org, owner_roles=sorted(identity.roles), callback_url=callback_url,
            types=sorted(set(types)), secret=secret, description=description, active=True, created_at=now_utc(),
        )
        await uow.commit()
        return await repo.get_subscription(uow.session, subscription_id)


def _owned(identity: Identity, sub: dict | None, subscription_id: str) -> dict:
    if sub is None or not sub["active"]:
        raise NotFound(f"subscription {subscription_id} not found")
    if sub["owner_sub"] != identity.sub and not identity.is_admin:
        # Someone else's subscription does not exist as far as this caller can tell.
        raise NotFound(f"subscription {subscription_id} not found")
    return sub


async def get(ctx: GatewayContext, identity: Identity, subscription_id: str) -> dict:
    async with ctx.uow() as uow:
        return _owned(identity, await repo.get_subscription(uow.session, subscription_id), subscription_id)


async def list_for(ctx: GatewayContext, identity: Identity, after: str | None, limit: int) -> list[dict]:
    async with ctx.uow() as uow:
        return await repo.list_subscriptions(
            uow.session, owner_sub=None if identity.is_admin else identity.sub, after=after, limit=limit)


# Deleting parks pending deliveries the webhook sender may be updating at the same moment; one
# of the two transactions can then be chosen as a deadlock victim and simply runs again.
DELETE_ATTEMPTS = 3


async def delete(ctx: GatewayContext, identity: Identity, subscription_id: str) -> None:
    for attempt in range(1, DELETE_ATTEMPTS + 1):
        try:
            async with ctx.uow() as uow:
                _owned(identity, await repo.get_subscription(uow.session, subscription_id), subscription_id)
                await repo.deactivate_subscription(uow.session, subscription_id)
                await uow.commit()
            return
        except Exception as exc:
            if attempt == DELETE_ATTEMPTS or not is_concurrent_conflict(exc):
                raise
            await asyncio.sleep(0.05 * attempt)


async def deliveries(ctx: GatewayContext, identity: Identity, subscription_id: str, *, status: str | None,
                     after: tuple[int, str] | None, limit: int) -> tuple[list[dict], dict[str, list[dict]]]:
    async with ctx.uow() as uow:
        _owned(identity, await repo.get_subscription(uow.session, subscription_id), subscription_id)
        rows = await repo.list_deliveries(
            uow.session, subscription_id, status=status, after_seq=after[0] if after else None,
            after_id=after[1] if after else None, limit=limit)
        attempts = await repo.attempts_of(uow.session, [r["delivery_id"] for r in rows])
    return rows, attempts


async def redeliver(ctx: GatewayContext, identity: Identity, subscription_id: str, delivery_id: str) -> dict:
    """Send a delivery again (a parked one, or a delivered one the receiver lost)."""
    async with ctx.uow() as uow:
        _owned(identity, await repo.get_subscription(uow.session, subscription_id), subscription_id)
        row = await repo.get_delivery(uow.session, delivery_id)
        if row is None or row["subscription_id"] != subscription_id:
            raise NotFound(f"delivery {delivery_id} not found")
        await repo.update_delivery(uow.session, delivery_id, status="pending", next_attempt_at=now_utc(),
                                   attempts=0)
        repo.after_commit(uow.session, ctx.notify_events)
        await uow.commit()
        return await repo.get_delivery(uow.session, delivery_id)


async def replay(ctx: GatewayContext, identity: Identity, subscription_id: str, since: datetime) -> int:
    """Deliver again every stored event since `since` that the subscription matches and may see."""
    now = now_utc()
    if since > now:
        raise _field("body.since", "must not be in the future")
    created = 0
    async with ctx.uow() as uow:
        sub = _owned(identity, await repo.get_subscription(uow.session, subscription_id), subscription_id)
        after = 0
        while created < REPLAY_MAX_EVENTS:
            rows = await repo.events_since(uow.session, since, after, 500)
            if not rows:
                break
            after = rows[-1]["seq"]
            batch = [new_delivery(sub, row, now) for row in rows if subscription_wants(sub, row)]
            await repo.insert_deliveries(uow.session, batch)
            created += len(batch)
        repo.after_commit(uow.session, ctx.notify_events)
        await uow.commit()
    return created


def subscription_wants(sub: dict, event_row: dict) -> bool:
    return ev.type_matches(sub["types"], event_row["type"]) and ev.may_see(
        roles=sub["owner_roles"], org=sub["owner_org"], type_=event_row["type"], orgs=event_row["orgs"])


def new_delivery(sub: dict, event_row: dict, now: datetime) -> dict:
    return {
        "delivery_id": str(uuid.uuid4()), "subscription_id": sub["subscription_id"], "event_seq": event_row["seq"],
        "event_id": event_row["event_id"], "event_type": event_row["type"], "subject": event_row["subject"],
        "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
    }


def require_subscriber(identity: Identity) -> None:
    if not identity.roles:
        raise Forbidden("subscribing needs a role")
