"""Talk to the fault suite's broker directly: read dead-letter topics, produce raw records."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

from techbridge_shared.consumer import DLQ_HEADER_PREFIX
from techbridge_shared.testing.events import read_topics

DLQ_TOPIC = re.compile(r"^techbridge\.[a-z0-9.-]+\.v[0-9]+\.dlq$")
# What a consumer records when its database, not the record, was the problem.
DATABASE_DOWN = re.compile(r"ConnectionRefused|ConnectionDoesNotExist|CannotConnectNow|shutting down|"
                           r"starting up|connection was closed|AdminShutdown|ConnectionReset", re.I)


def _run(coro):
    with ThreadPoolExecutor(max_workers=1) as pool:  # safe under a running event loop too
        return pool.submit(asyncio.run, coro).result()


def read_dlq(bootstrap: str, timeout_s: float = 60) -> list[dict]:
    """Every record on every dead-letter topic, from the beginning, with its origin headers."""
    _topics, records = _run(read_topics(bootstrap, DLQ_TOPIC, timeout_s))
    out = []
    for r in records:
        headers = {k: v.decode(errors="replace") for k, v in r.headers or ()}
        out.append({"topic": r.topic, "value": r.value, "key": r.key, "headers": headers,
                    **{k[len(DLQ_HEADER_PREFIX):]: v for k, v in headers.items() if k.startswith(DLQ_HEADER_PREFIX)}})
    return out


def lost_to_database_outage(bootstrap: str, since_iso: str) -> list[dict]:
    """Dead-lettered records whose only fault was that the consumer's database was unreachable."""
    return [r for r in read_dlq(bootstrap) if r.get("failed-at", "") >= since_iso
            and DATABASE_DOWN.search(r.get("error", ""))]


def produce(bootstrap: str, records: list[tuple[str, int | None, bytes | None, bytes]]) -> list:
    """Send (topic, partition, key, value) records as a foreign producer would, with the
    structured CloudEvents content type header; return each record's metadata (its offset)."""
    from aiokafka import AIOKafkaProducer

    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            return [await producer.send_and_wait(topic, value=value, key=key, partition=partition,
                                                 headers=[("content-type", b"application/cloudevents+json")])
                    for topic, partition, key, value in records]
        finally:
            await producer.stop()

    return _run(run())


def partitions_of(bootstrap: str, topic: str) -> list[int]:
    from aiokafka import AIOKafkaConsumer

    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            cluster = await consumer._client.fetch_all_metadata()
            return sorted(cluster.partitions_for_topic(topic) or ())
        finally:
            await consumer.stop()

    return _run(run())
