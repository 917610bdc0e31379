"""Outbox relay: publishes committed outbox rows to Kafka, in order per aggregate, until none is left.

- A row is marked published only after the broker acknowledged it (acks=all, idempotent
  producer), so a crash between commit and publish loses nothing: the row is sent on restart.
  A crash after the send but before marking sends it again; consumers drop it by event id.
- PostgreSQL: rows are claimed `FOR UPDATE SKIP LOCKED` and the locks are held while they are
  sent, so two replicas never publish one row in parallel. Claims of two replicas can
  interleave, so of each aggregate a replica publishes only the rows older than any
  unpublished row of it that it did not claim: per-aggregate order holds.
- SQLite: one process owns the file, so no claim is needed; the write lock is not held while
  waiting for Kafka, so writes go on while the broker is away.
- Failures back off exponentially and recreate the producer (an idempotent aiokafka producer
  can stall on OutOfOrderSequenceNumber after a broker blip).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, timedelta

from aiokafka import AIOKafkaProducer
from sqlalchemy import Table, and_, delete, func, select, update

from .db import Database
from .envelope import kafka_headers, utcnow
from .metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISH_FAILURES, OUTBOX_PUBLISHED
from .tracing import traced_producer

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        *,
        service: str,
        db: Database,
        outbox: Table,
        producer_factory: Callable[[], AIOKafkaProducer],
        poll_interval_s: float = 0.1,
        batch_size: int = 200,
        send_timeout_s: float = 15.0,
        retention: timedelta = timedelta(days=7),
        max_backoff_s: float = 10.0,
    ):
        self.service = service
        self._db = db
        self._outbox = outbox
        self._producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self._send_timeout_s = send_timeout_s
        self._retention = retention
        self._max_backoff_s = max_backoff_s
        self._wake = asyncio.Event()
        self._stopping = False
        self.last_error: str | None = None

    def notify(self) -> None:
        """Called after a commit that added events: publish now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.0
        last_prune = last_observed = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                sent = await self.publish_pending()
                backoff = 0.0
                self.last_error = None
                if loop.time() - last_observed > 5:
                    await self._observe_backlog()
                    last_observed = loop.time()
                if loop.time() - last_prune > 600:
                    await self._prune()
                    last_prune = loop.time()
                if sent:
                    continue  # there may be more behind this batch
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                OUTBOX_PUBLISH_FAILURES.labels(self.service).inc()
                backoff = min(self._max_backoff_s, max(0.2, backoff * 2))
                log.warning("outbox publish failed; retrying in %.1fs: %s", backoff, self.last_error)
                await self._reset_producer()
                await asyncio.sleep(backoff)
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)
            except TimeoutError:
                pass
        await self._reset_producer()

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._producer_factory()
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except Exception:
                log.debug("producer stop failed", exc_info=True)

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows were marked published."""
        if self._db.is_sqlite:
            # Take turns with the process's units of work (see Database.acquire_writer), but
            # not while waiting for Kafka.
            await self._db.acquire_writer()
            try:
                rows = await self._read_batch()
            finally:
                self._db.release_writer()
            if not rows:
                return 0
            published = await self._send(rows)
            if published:
                await self._db.acquire_writer()
                try:
                    async with self._db.sessionmaker() as session, session.begin():
                        await self._mark(session, published)
                finally:
                    self._db.release_writer()
        else:
            async with self._db.sessionmaker() as session, session.begin():
                rows = await self._claim_batch(session)
                if not rows:
                    return 0
                published = await self._send(rows)
                await self._mark(session, published)
        OUTBOX_PUBLISHED.labels(self.service).inc(len(published))
        if len(published) < len(rows):
            raise RuntimeError(self.last_error or "some events were not acknowledged by Kafka")
        return len(published)

    async def _read_batch(self):
        o = self._outbox
        async with self._db.engine.connect() as conn:
            result = await conn.execute(
                select(o.c.seq, o.c.event_id, o.c.topic, o.c.key, o.c.payload)
                .where(o.c.published_at.is_(None))
                .order_by(o.c.seq)
                .limit(self._batch_size)
            )
            return result.all()

    async def _claim_batch(self, session):
        o = self._outbox
        result = await session.execute(
            select(o.c.seq, o.c.event_id, o.c.topic, o.c.key, o.c.payload)
            .where(o.c.published_at.is_(None))
            .order_by(o.c.seq)
            .limit(self._batch_size)
            .with_for_update(skip_locked=True)
        )
        rows = result.all()
        if not rows:
            return rows
        # Per key, publish only the claimed rows older than any unpublished row of that key
        # that another replica holds (or that was skipped): concurrent claims can interleave.
        claimed = [r.seq for r in rows]
        keys = {r.key for r in rows}
        held_elsewhere = dict(
            (
                await session.execute(
                    select(o.c.key, func.min(o.c.seq))
                    .where(and_(o.c.published_at.is_(None), o.c.key.in_(keys), o.c.seq.not_in(claimed)))
                    .group_by(o.c.key)
                )
            ).all()
        )
        return [r for r in rows if r.seq < held_elsewhere.get(r.key, r.seq + 1)]

    async def _send(self, rows) -> list[int]:
        """Send rows; return the seqs acknowledged, stopping each key at its first failure."""
        producer = traced_producer(await self._ensure_producer(), self.service)  # spans when exported
        headers = kafka_headers()
        futures = []
        for r in rows:
            futures.append(
                await producer.send(
                    r.topic, value=r.payload.encode(), key=r.key.encode(), headers=headers
                )
            )
        results = await asyncio.wait_for(
            asyncio.gather(*futures, return_exceptions=True), self._send_timeout_s
        )
        published: list[int] = []
        failed_keys: set[str] = set()
        for r, res in zip(rows, results, strict=True):
            if isinstance(res, BaseException) or r.key in failed_keys:
                failed_keys.add(r.key)
                if isinstance(res, BaseException):
                    self.last_error = f"{type(res).__name__}: {res}"
                continue
            published.append(r.seq)
        return published

    async def _mark(self, session, seqs: list[int]) -> None:
        if not seqs:
            return
        o = self._outbox
        await session.execute(
            update(o)
            .where(o.c.seq.in_(seqs))
            .values(published_at=utcnow())
        )

    async def _prune(self) -> None:
        o = self._outbox
        async with self._db.sessionmaker() as session, session.begin():
            await session.execute(
                delete(o).where(
                    and_(o.c.published_at.is_not(None), o.c.published_at < utcnow() - self._retention)
                )
            )

    async def _observe_backlog(self) -> tuple[int, float]:
        o = self._outbox
        async with self._db.engine.connect() as conn:
            count, oldest = (
                await conn.execute(
                    select(func.count(), func.min(o.c.created_at)).where(o.c.published_at.is_(None))
                )
            ).one()
        age = 0.0
        if oldest is not None:
            if oldest.tzinfo is None:  # SQLite returns naive datetimes
                oldest = oldest.replace(tzinfo=UTC)
            age = max(0.0, (utcnow() - oldest).total_seconds())
        OUTBOX_BACKLOG.labels(self.service).set(count)
        OUTBOX_OLDEST_AGE.labels(self.service).set(age)
        return count, age

    async def backlog(self) -> tuple[int, float]:
        """Unpublished rows and the age in seconds of the oldest (also exported as metrics)."""
        return await self._observe_backlog()
