"""Queries on the gateway store; every function takes the unit of work's session."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from .tables import api_clients, api_keys, deliveries, delivery_attempts, event_log, openapi_cache, subscriptions, users


def aware(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _row(r) -> dict[str, Any] | None:
    if r is None:
        return None
    d = dict(r._mapping)
    for k, v in d.items():
        if isinstance(v, datetime):
            d[k] = aware(v)
    return d


# --- clients and keys -------------------------------------------------------------------------
async def get_client(s: AsyncSession, client_id: str) -> dict | None:
    return _row((await s.execute(sa.select(api_clients).where(api_clients.c.client_id == client_id))).first())


async def insert_client(s: AsyncSession, **values) -> None:
    await s.execute(sa.insert(api_clients).values(**values))


async def update_client(s: AsyncSession, client_id: str, **values) -> None:
    await s.execute(sa.update(api_clients).where(api_clients.c.client_id == client_id).values(**values))


async def list_clients(s: AsyncSession, after: str | None, limit: int) -> list[dict]:
    q = sa.select(api_clients).order_by(api_clients.c.client_id).limit(limit)
    if after:
        q = q.where(api_clients.c.client_id > after)
    return [_row(r) for r in (await s.execute(q)).all()]


async def insert_api_key(s: AsyncSession, **values) -> None:
    await s.execute(sa.insert(api_keys).values(**values))


async def get_api_key(s: AsyncSession, key_id: str) -> dict | None:
    return _row((await s.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id))).first())


async def revoke_api_key(s: AsyncSession, key_id: str, now: datetime) -> int:
    r = await s.execute(
        sa.update(api_keys).where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    return r.rowcount


# --- users ------------------------------------------------------------------------------------
async def get_user_by_email(s: AsyncSession, email: str) -> dict | None:
    return _row((await s.execute(sa.select(users).where(users.c.email == email.lower()))).first())


async def get_user(s: AsyncSession, user_id: str) -> dict | None:
    return _row((await s.execute(sa.select(users).where(users.c.user_id == user_id))).first())


async def insert_user(s: AsyncSession, **values) -> None:
    await s.execute(sa.insert(users).values(**values))


async def update_user(s: AsyncSession, user_id: str, **values) -> None:
    await s.execute(sa.update(users).where(users.c.user_id == user_id).values(**values))


async def next_client_generation(s: AsyncSession, client_id: str) -> None:
    await s.execute(sa.update(api_clients).where(api_clients.c.client_id == client_id)
                    .values(token_generation=api_clients.c.token_generation + 1))


async def next_user_generation(s: AsyncSession, user_id: str) -> None:
    await s.execute(sa.update(users).where(users.c.user_id == user_id)
                    .values(token_generation=users.c.token_generation + 1))


async def token_generations(s: AsyncSession) -> dict[str, int]:
    """`client:<id>` and `user:<id>` -> generation, for every account past its first."""
    out = {}
    for r in await s.execute(sa.select(api_clients.c.client_id, api_clients.c.token_generation)
                             .where(api_clients.c.token_generation > 0)):
        out[f"client:{r[0]}"] = r[1]
    for r in await s.execute(sa.select(users.c.user_id, users.c.token_generation).where(users.c.token_generation > 0)):
        out[f"user:{r[0]}"] = r[1]
    return out


# --- subscriptions ----------------------------------------------------------------------------
async def insert_subscription(s: AsyncSession, **values) -> None:
    await s.execute(sa.insert(subscriptions).values(**values))


async def get_subscription(s: AsyncSession, subscription_id: str) -> dict | None:
    return _row(
        (await s.execute(sa.select(subscriptions).where(subscriptions.c.subscription_id == subscription_id))).first()
    )


async def list_subscriptions(s: AsyncSession, *, owner_sub: str | None, after: str | None, limit: int) -> list[dict]:
    q = sa.select(subscriptions).where(subscriptions.c.active.is_(True))
    if owner_sub is not None:
        q = q.where(subscriptions.c.owner_sub == owner_sub)
    if after:
        q = q.where(subscriptions.c.subscription_id > after)
    q = q.order_by(subscriptions.c.subscription_id).limit(limit)
    return [_row(r) for r in (await s.execute(q)).all()]


async def active_subscriptions(s: AsyncSession) -> list[dict]:
    q = sa.select(subscriptions).where(subscriptions.c.active.is_(True))
    return [_row(r) for r in (await s.execute(q)).all()]


async def deactivate_subscription(s: AsyncSession, subscription_id: str) -> None:
    await s.execute(
        sa.update(subscriptions).where(subscriptions.c.subscription_id == subscription_id).values(active=False)
    )
    # Nothing more goes out for it: pending deliveries are parked.
    await s.execute(
        sa.update(deliveries)
        .where(deliveries.c.subscription_id == subscription_id, deliveries.c.status == "pending")
        .values(status="parked", last_error="subscription deleted")
    )


# --- event log --------------------------------------------------------------------------------
async def insert_event(s: AsyncSession, **values) -> int:
    r = await s.execute(sa.insert(event_log).values(**values).returning(event_log.c.seq))
    return int(r.scalar_one())


async def events_after(s: AsyncSession, seq: int, limit: int) -> list[dict]:
    q = sa.select(event_log).where(event_log.c.seq > seq).order_by(event_log.c.seq).limit(limit)
    return [_row(r) for r in (await s.execute(q)).all()]


async def events_since(s: AsyncSession, since: datetime, after_seq: int, limit: int) -> list[dict]:
    q = (sa.select(event_log).where(event_log.c.time >= since, event_log.c.seq > after_seq)
         .order_by(event_log.c.seq).limit(limit))
    return [_row(r) for r in (await s.execute(q)).all()]


async def last_event_seq(s: AsyncSession) -> int:
    return int((await s.execute(sa.select(sa.func.coalesce(sa.func.max(event_log.c.seq), 0)))).scalar_one())


async def get_event(s: AsyncSession, seq: int) -> dict | None:
    return _row((await s.execute(sa.select(event_log).where(event_log.c.seq == seq))).first())


# --- deliveries -------------------------------------------------------------------------------
async def insert_deliveries(s: AsyncSession, rows: list[dict]) -> None:
    if rows:
        await s.execute(sa.insert(deliveries), rows)


async def due_deliveries(s: AsyncSession, now: datetime, limit: int) -> list[dict]:
    """Pending and due, and the oldest pending one of its (subscription, aggregate): per-aggregate order."""
    earlier = deliveries.alias("earlier")
    blocked = sa.exists().where(
        earlier.c.subscription_id == deliveries.c.subscription_id,
        earlier.c.subject == deliveries.c.subject,
        earlier.c.status == "pending",
        earlier.c.event_seq < deliveries.c.event_seq,
    )
    q = (
        sa.select(deliveries)
        .where(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= now, ~blocked)
        .order_by(deliveries.c.next_attempt_at, deliveries.c.event_seq)
        .limit(limit)
    )
    return [_row(r) for r in (await s.execute(q)).all()]


async def claim_due(s: AsyncSession, delivery_ids: list[str], now: datetime, lease_until: datetime) -> list[str]:
    """Claim many at once: only rows still pending and due change, and are returned."""
    if not delivery_ids:
        return []
    r = await s.execute(
        sa.update(deliveries)
        .where(deliveries.c.delivery_id.in_(delivery_ids), deliveries.c.status == "pending",
               deliveries.c.next_attempt_at <= now)
        .values(next_attempt_at=lease_until)
        .returning(deliveries.c.delivery_id)
    )
    return [row[0] for row in r.all()]


async def subscriptions_by_id(s: AsyncSession, ids: set[str]) -> dict[str, dict]:
    if not ids:
        return {}
    rows = (await s.execute(sa.select(subscriptions).where(subscriptions.c.subscription_id.in_(ids)))).all()
    return {r.subscription_id: _row(r) for r in rows}


async def events_by_seq(s: AsyncSession, seqs: set[int]) -> dict[int, dict]:
    if not seqs:
        return {}
    rows = (await s.execute(sa.select(event_log).where(event_log.c.seq.in_(seqs)))).all()
    return {r.seq: _row(r) for r in rows}


async def update_delivery(s: AsyncSession, delivery_id: str, **values) -> None:
    await s.execute(sa.update(deliveries).where(deliveries.c.delivery_id == delivery_id).values(**values))


async def insert_attempt(s: AsyncSession, **values) -> None:
    await s.execute(sa.insert(delivery_attempts).values(**values))


async def get_delivery(s: AsyncSession, delivery_id: str) -> dict | None:
    return _row((await s.execute(sa.select(deliveries).where(deliveries.c.delivery_id == delivery_id))).first())


async def list_deliveries(
    s: AsyncSession, subscription_id: str, *, status: str | None, after_seq: int | None, after_id: str | None,
    limit: int,
) -> list[dict]:
    q = sa.select(deliveries).where(deliveries.c.subscription_id == subscription_id)
    if status:
        q = q.where(deliveries.c.status == status)
    if after_seq is not None and after_id is not None:
        q = q.where(sa.or_(deliveries.c.event_seq > after_seq,
                           sa.and_(deliveries.c.event_seq == after_seq, deliveries.c.delivery_id > after_id)))
    q = q.order_by(deliveries.c.event_seq, deliveries.c.delivery_id).limit(limit)
    return [_row(r) for r in (await s.execute(q)).all()]


async def attempts_of(s: AsyncSession, delivery_ids: list[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {d: [] for d in delivery_ids}
    if not delivery_ids:
        return out
    q = (sa.select(delivery_attempts).where(delivery_attempts.c.delivery_id.in_(delivery_ids))
         .order_by(delivery_attempts.c.attempt_id))
    for r in (await s.execute(q)).all():
        row = _row(r)
        out[row["delivery_id"]].append(row)
    return out


# --- OpenAPI cache ----------------------------------------------------------------------------
async def cached_documents(s: AsyncSession) -> dict[str, str]:
    return {r.service: r.document for r in (await s.execute(sa.select(openapi_cache))).all()}


async def store_document(s: AsyncSession, service: str, document: str, now: datetime) -> None:
    await s.execute(sa.delete(openapi_cache).where(openapi_cache.c.service == service))
    await s.execute(sa.insert(openapi_cache).values(service=service, document=document, fetched_at=now))


def after_commit(s: AsyncSession, callback) -> None:
    """Run `callback()` once this session's transaction has committed."""
    sa.event.listen(s.sync_session, "after_commit", lambda _session: callback(), once=True)


async def prune_received_before(s: AsyncSession, cutoff: datetime) -> int:
    """Forget events received before `cutoff` with their finished deliveries; pending ones stay."""
    last = (await s.execute(sa.select(sa.func.max(event_log.c.seq)).where(event_log.c.received_at < cutoff))).scalar()
    if last is None:
        return 0
    finished = sa.select(deliveries.c.delivery_id).where(deliveries.c.event_seq <= last,
                                                         deliveries.c.status != "pending")
    await s.execute(sa.delete(delivery_attempts).where(delivery_attempts.c.delivery_id.in_(finished)))
    await s.execute(sa.delete(deliveries).where(deliveries.c.event_seq <= last, deliveries.c.status != "pending"))
    still_pending = sa.exists().where(deliveries.c.event_seq == event_log.c.seq)
    r = await s.execute(sa.delete(event_log).where(event_log.c.seq <= last, ~still_pending))
    return r.rowcount
