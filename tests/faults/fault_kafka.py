"""Talk to the fault suite's broker directly: read dead-letter topics, produce raw records."""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor

from techbridge_shared.consumer import DLQ_HEADER_PREFIX

DLQ_TOPIC = re.compile(r"^techbridge\.[a-z0-9.-]+\.v[0-9]+\.dlq$")
# What a consumer records when its database, not the record, was the problem.
DATABASE_DOWN = re.compile(r"ConnectionRefused|ConnectionDoesNotExist|CannotConnectNow|shutting down|"
                           r"starting up|connection was closed|AdminShutdown|ConnectionReset", re.I)


def _run(coro):
    with ThreadPoolExecutor(max_workers=1) as pool:  # safe under a running event loop too
        return pool.submit(asyncio.run, coro).result()


def read_dlq(bootstrap: str, timeout_s: float = 60) -> list[dict]:
    """Every record on every dead-letter topic, from the beginning, with its origin headers."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            cluster = await consumer._client.fetch_all_metadata()
            topics = sorted(t for t in cluster.topics() if DLQ_TOPIC.match(t))
            partitions = [TopicPartition(t, p) for t in topics for p in cluster.partitions_for_topic(t) or ()]
            if not partitions:
                return []
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            records = []
            deadline = time.monotonic() + timeout_s
            while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
                if time.monotonic() > deadline:
                    raise AssertionError("could not read the dead-letter topics in time")
                for recs in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                    records.extend(recs)
            out = []
            for r in records:
                headers = {k: v.decode(errors="replace") for k, v in r.headers or ()}
                out.append({"topic": r.topic, "value": r.value, "key": r.key, "headers": headers,
                            **{k[len(DLQ_HEADER_PREFIX):]: v for k, v in headers.items()
                               if k.startswith(DLQ_HEADER_PREFIX)}})
            return out
        finally:
            await consumer.stop()

    return _run(run())


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
