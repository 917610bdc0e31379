"""Read what a service published, straight from the real broker, as a test would check it."""

from __future__ import annotations

import json
import time

from aiokafka import AIOKafkaConsumer


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
