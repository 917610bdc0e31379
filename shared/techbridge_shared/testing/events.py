"""Read what a service published, straight from the real broker, as a test would check it."""

from __future__ import annotations

import json
import re
import time

from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_events(bootstrap: str, topic: str, subjects: set[str], want: int, timeout: float = 30) -> list[dict]:
    """Events on `topic` about `subjects`, in log order, once `want` of them arrived (or timeout).

    Each is the CloudEvent as JSON plus `_key` (the Kafka key) and `_headers`.
    """
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    found: list[dict] = []
    try:
        deadline = time.monotonic() + timeout
        while len(found) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for recs in batch.values():
                for r in recs:
                    body = json.loads(r.value)
                    if body.get("subject") in subjects:
                        body["_key"] = r.key.decode() if r.key else None
                        body["_headers"] = {k: v.decode() for k, v in r.headers}
                        found.append(body)
    finally:
        await consumer.stop()
    return found


async def read_topics(bootstrap: str, pattern: re.Pattern[str], timeout_s: float = 60) -> tuple[list[str], list]:
    """Every record on every topic whose name matches `pattern`, from the beginning up to the
    end offsets seen at the start: (the topics, their records)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        topics = sorted(t for t in cluster.topics() if pattern.match(t))
        partitions = [TopicPartition(t, p) for t in topics for p in cluster.partitions_for_topic(t) or ()]
        if not partitions:
            return topics, []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list = []
        deadline = time.monotonic() + timeout_s
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read every record of {topics} in {timeout_s:g}s")
            for recs in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                records.extend(recs)
        return topics, records
    finally:
        await consumer.stop()
