"""Idempotent Kafka consumers: at-least-once delivery, exactly-once effects.

For each record: in one database transaction, insert (consumer group, event id) into the inbox
and run the handler; a record whose id is already there is a duplicate and changes nothing.
Offsets are committed to Kafka only after that transaction committed (auto-commit is off), so
a crash re-delivers and the inbox drops what was already applied.

A handler that keeps failing is retried with backoff a bounded number of times; then the
record goes to `<topic>.dlq` with headers naming its origin and the partition moves on. A
record that is not a valid CloudEvent goes there at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .envelope import CloudEvent, EnvelopeError, dlq_topic, topic_for_type, utcnow
from .errors import is_database_unavailable
from .metrics import CONSUMED, CONSUMER_LAG, DLQ_RECORDS, HANDLER_FAILURES
from .settings import KafkaSettings
from .tracing import consuming
from .uow import UnitOfWork

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, CloudEvent], Awaitable[None]]

DLQ_HEADER_PREFIX = "techbridge-dlq-"
# Longest wait between tries while the consumer's own store is unreachable.
STORE_RETRY_MAX_S = 5.0


@dataclass
class Subscription:
    """A consumer group (`<consuming-service>.<purpose>`) and its handlers by event type.

    Events of other types on the same topics are acknowledged and ignored, so publishers can
    add types without breaking consumers.

    A consumer of every topic (the gateway's event subscriptions) gives a topic `pattern`
    (a regular expression matched against whole topic names) and a `fallback` handler for the
    types it has no handler for. Topics and partitions that appear later are found within
    `metadata_max_age_ms`.
    `topics` may still name topics to create at start-up.
    """

    group: str
    handlers: dict[str, Handler] = field(default_factory=dict)
    topics: list[str] = field(default_factory=list)
    pattern: str | None = None
    fallback: Handler | None = None
    metadata_max_age_ms: int = 5_000

    def __post_init__(self):
        if not self.topics:
            self.topics = sorted({topic_for_type(t) for t in self.handlers})
        if not self.topics and not self.pattern:
            raise ValueError(f"subscription {self.group} names no event type, topic or pattern")

    def handler_for(self, type_: str) -> Handler | None:
        return self.handlers.get(type_, self.fallback)


class _JoinListener(ConsumerRebalanceListener):
    def __init__(self, runner: ConsumerRunner):
        self.runner = runner

    async def on_partitions_revoked(self, revoked):
        pass  # offsets are committed after every batch; nothing is pending here

    async def on_partitions_assigned(self, assigned):
        self.runner.joined = True
        log.info("joined group %s", self.runner.subscription.group, extra={"partitions": len(assigned)})


class ConsumerRunner:
    def __init__(
        self,
        *,
        service: str,
        subscription: Subscription,
        kafka: KafkaSettings,
        unit_of_work: Callable[[], UnitOfWork],
        inbox: Table,
        dlq_producer: Callable[[], Awaitable[AIOKafkaProducer]],
        max_attempts: int = 5,
        retry_backoff_s: float = 0.2,
        max_batch: int = 200,
    ):
        self.service = service
        self.subscription = subscription
        self._kafka = kafka
        self._uow = unit_of_work
        self._inbox = inbox
        self._dlq_producer = dlq_producer
        self._max_attempts = max_attempts
        self._retry_backoff_s = retry_backoff_s
        self._max_batch = max_batch
        self._stopping = False
        self._consumer: AIOKafkaConsumer | None = None
        self.joined = False
        self.last_error: str | None = None

    @property
    def group(self) -> str:
        return self.subscription.group

    async def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        backoff = 0.5
        while not self._stopping:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._kafka.kafka_bootstrap_servers,
                group_id=self.group,
                client_id=f"{self.service}-{self.group}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
                request_timeout_ms=self._kafka.kafka_request_timeout_ms + 30_000,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=1_000,
                # Also for named topics: a consumer that joined before a new topic's partitions
                # were visible would otherwise wait aiokafka's default 5 minutes to see them.
                metadata_max_age_ms=self.subscription.metadata_max_age_ms,
            )
            try:
                await consumer.start()
                self._consumer = consumer
                if self.subscription.pattern:
                    consumer.subscribe(pattern=self.subscription.pattern, listener=_JoinListener(self))
                else:
                    consumer.subscribe(self.subscription.topics, listener=_JoinListener(self))
                while not self._stopping:
                    batches = await consumer.getmany(timeout_ms=200, max_records=self._max_batch)
                    for tp, records in batches.items():
                        next_offset = await self._handle(records)
                        if next_offset > records[0].offset:
                            await self._commit(consumer, tp, next_offset)
                            self._observe_lag(consumer, tp, next_offset)
                    backoff = 0.5
                    self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Includes the UnknownMemberId loops aiokafka can fall into: start afresh.
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("consumer %s failed; restarting in %.1fs: %s", self.group, backoff, self.last_error)
                await asyncio.sleep(backoff)
                backoff = min(10.0, backoff * 2)
            finally:
                self.joined = False
                self._consumer = None
                try:
                    await asyncio.wait_for(consumer.stop(), 10)
                except Exception:
                    log.debug("consumer stop failed", exc_info=True)

    async def _commit(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
        try:
            await consumer.commit({tp: offset})
        except CommitFailedError as exc:
            # The group rebalanced under us; the new owner re-reads and the inbox drops repeats.
            log.info("commit after rebalance refused for %s: %s", tp, exc)

    def _observe_lag(self, consumer: AIOKafkaConsumer, tp: TopicPartition, position: int) -> None:
        highwater = consumer.highwater(tp)
        if highwater is not None:
            CONSUMER_LAG.labels(self.service, self.group, tp.topic, str(tp.partition)).set(
                max(0, highwater - position)
            )

    async def _handle(self, records) -> int:
        """Handle one partition's records in order; return the offset after the last one handled."""
        if len(records) > 1 and await self._apply_together(records):
            return records[-1].offset + 1
        next_offset = records[0].offset
        for record in records:
            if self._stopping or not await self._process(record):
                break
            next_offset = record.offset + 1
        return next_offset

    async def _apply_together(self, records) -> bool:
        """Apply a whole batch in one transaction (one commit instead of one per record).

        Any failure rolls the batch back and returns False; the caller then takes the records
        one by one, with retries and the DLQ, so a bad record costs only throughput.
        """
        items = []
        for record in records:
            try:
                event = CloudEvent.from_json(record.value)
            except EnvelopeError:
                return False
            items.append((record, event, self.subscription.handler_for(event.type)))
        outcomes = []
        try:
            async with self._uow() as uow:
                for record, event, handler in items:
                    if handler is None:
                        outcomes.append("ignored")
                    elif not await self._claim(uow, record, event):
                        outcomes.append("duplicate")
                    else:
                        await self._call(handler, uow, event)
                        outcomes.append("applied")
                await uow.commit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("batch of %d failed (%s); applying one by one", len(records), type(exc).__name__)
            return False
        for outcome in outcomes:
            CONSUMED.labels(self.service, self.group, outcome).inc()
        return True

    async def _process(self, record) -> bool:
        """Apply, ignore or dead-letter one record; False if it was left for later (stopping
        while the store was unreachable), so its offset must not be committed."""
        try:
            event = CloudEvent.from_json(record.value)
        except EnvelopeError as exc:
            await self._dead_letter(record, str(exc), attempts=1)
            return True
        handler = self.subscription.handler_for(event.type)
        if handler is None:
            CONSUMED.labels(self.service, self.group, "ignored").inc()
            return True
        attempt = 0
        store_wait = self._retry_backoff_s
        while True:
            try:
                applied = await self._apply(record, event, handler)
                CONSUMED.labels(self.service, self.group, "applied" if applied else "duplicate").inc()
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                HANDLER_FAILURES.labels(self.service, self.group).inc()
                error = f"{type(exc).__name__}: {exc}"
                if is_database_unavailable(exc):
                    # Our own store is down, not the event at fault: wait for it as long as it
                    # takes instead of spending attempts and dead-lettering a good event.
                    if self._stopping:
                        return False
                    log.warning("store unreachable while handling %s; retrying in %.1fs: %s",
                                event.id, store_wait, error)
                    await asyncio.sleep(store_wait)
                    store_wait = min(STORE_RETRY_MAX_S, store_wait * 2)
                    continue
                attempt += 1
                if attempt >= self._max_attempts:
                    log.error("giving up on %s after %d attempts: %s", event.id, attempt, error)
                    await self._dead_letter(record, error, attempts=attempt)
                    return True
                log.warning("handler for %s failed (attempt %d): %s", event.type, attempt, error)
                await asyncio.sleep(self._retry_backoff_s * 2 ** (attempt - 1))

    async def _apply(self, record, event: CloudEvent, handler: Handler) -> bool:
        async with self._uow() as uow:
            if not await self._claim(uow, record, event):
                return False  # already applied by this group
            await self._call(handler, uow, event)
            await uow.commit()
            return True

    async def _call(self, handler: Handler, uow: UnitOfWork, event: CloudEvent) -> None:
        """Run a handler inside the event's trace, so what it publishes continues that trace."""
        with consuming(self.service, self.group, event):
            await handler(uow, event)

    async def _claim(self, uow: UnitOfWork, record, event: CloudEvent) -> bool:
        """Insert the inbox row in the handler's transaction; False if this group has it already."""
        values = {
            "consumer_group": self.group,
            "event_id": event.id,
            "source": event.source,
            "type": event.type,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "processed_at": utcnow(),
        }
        insert = pg_insert if uow.session.bind.dialect.name == "postgresql" else sqlite_insert
        result = await uow.session.execute(insert(self._inbox).values(**values).on_conflict_do_nothing())
        return result.rowcount == 1

    async def _dead_letter(self, record, error: str, attempts: int) -> None:
        producer = await self._dlq_producer()
        headers = list(record.headers or []) + [
            (DLQ_HEADER_PREFIX + "origin-topic", record.topic.encode()),
            (DLQ_HEADER_PREFIX + "origin-partition", str(record.partition).encode()),
            (DLQ_HEADER_PREFIX + "origin-offset", str(record.offset).encode()),
            (DLQ_HEADER_PREFIX + "consumer-group", self.group.encode()),
            (DLQ_HEADER_PREFIX + "error", error[:2000].encode()),
            (DLQ_HEADER_PREFIX + "attempts", str(attempts).encode()),
            (DLQ_HEADER_PREFIX + "failed-at", utcnow().isoformat().encode()),
        ]
        await producer.send_and_wait(
            dlq_topic(record.topic), value=record.value, key=record.key, headers=headers
        )
        DLQ_RECORDS.labels(self.service, self.group, record.topic).inc()
        CONSUMED.labels(self.service, self.group, "dead_lettered").inc()
