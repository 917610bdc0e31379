"""The Kafka side of a service: a safe producer, explicit topic creation, and a health ping.

aiokafka's defaults are not safe for an outbox (acks=1, no idempotence); these are.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from .settings import KafkaSettings

log = logging.getLogger(__name__)


def new_producer(settings: KafkaSettings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        retry_backoff_ms=200,
    )


async def ensure_topics(
    settings: KafkaSettings, client_id: str, topics: list[str], partitions: int | None = None
) -> None:
    """Create the topics that do not exist yet (the broker never auto-creates them)."""
    if not topics:
        return
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{client_id}-admin",
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = sorted(set(topics) - existing)
        if not missing:
            return
        new = [
            NewTopic(
                name=t,
                num_partitions=partitions or settings.kafka_topic_partitions,
                replication_factor=settings.kafka_topic_replication_factor,
            )
            for t in missing
        ]
        try:
            response = await admin.create_topics(new)
        except TopicAlreadyExistsError:
            return  # another replica created them first
        for error in getattr(response, "topic_errors", []):
            name, code = error[0], error[1]
            # 36 = TOPIC_ALREADY_EXISTS: a replica of this or another service won the race.
            if code not in (0, 36):
                raise RuntimeError(f"could not create topic {name}: error code {code}")
        log.info("created topics", extra={"topics": missing})
    finally:
        await admin.close()


async def ping(producer: AIOKafkaProducer, timeout: float = 2.0) -> None:
    """Ask the cluster for metadata: succeeds only while a broker answers."""
    ok = await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout)
    if ok is None or not ok.brokers():
        raise ConnectionError("no broker answered")
