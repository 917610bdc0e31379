"""deploy/docker/dlq_replay.py on a real broker: dead letters go back to their topic, once."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from deploy_support import DEPLOY

pytestmark = pytest.mark.kafka


def load_tool():
    spec = importlib.util.spec_from_file_location("techbridge_deploy_dlq_replay", DEPLOY / "docker" / "dlq_replay.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


async def read_all(bootstrap: str, topic: str) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(*tps, timeout_ms=1000)).values():
                records.extend(batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def test_replay_sends_one_groups_dead_letters_back_once(kafka_bootstrap):
    from techbridge_shared import kafka
    from techbridge_shared.settings import KafkaSettings

    tool = load_tool()
    origin = f"techbridge.replaytest{uuid.uuid4().hex[:8]}.thing.v1"
    dlq = origin + ".dlq"
    settings = KafkaSettings(kafka_bootstrap_servers=kafka_bootstrap)
    await kafka.ensure_topics(settings, "dlq-replay-test", [origin, dlq], partitions=2)

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for i, group in enumerate(["catalog.index", "matching.index", "catalog.index"]):
            await producer.send_and_wait(
                dlq, key=f"k{i}".encode(), value=f'{{"n": {i}}}'.encode(),
                headers=[
                    ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                    ("techbridge-dlq-origin-topic", origin.encode()),
                    ("techbridge-dlq-origin-offset", str(i).encode()),
                    ("techbridge-dlq-consumer-group", group.encode()),
                    ("techbridge-dlq-error", f"boom {i}".encode()),
                ],
            )
    finally:
        await producer.stop()

    listed = await tool.replay(kafka_bootstrap, dlq, group="catalog.index", dry_run=True)
    assert sorted(r.error for r in listed) == ["boom 0", "boom 2"] and not any(r.sent for r in listed)
    assert await read_all(kafka_bootstrap, origin) == []

    sent = await tool.replay(kafka_bootstrap, dlq, group="catalog.index")
    assert len(sent) == 2 and all(r.origin == origin and r.sent for r in sent)
    replayed = await read_all(kafka_bootstrap, origin)
    assert sorted((r.key, r.value) for r in replayed) == [(b"k0", b'{"n": 0}'), (b"k2", b'{"n": 2}')]
    for r in replayed:
        headers = dict(r.headers)
        assert not any(k.startswith("techbridge-dlq-") for k in headers)
        assert headers["traceparent"].startswith(b"00-0af7")
        assert headers["techbridge-replayed-from"].decode().startswith(dlq + "/")

    # A second run finds everything done; the other group's record is still there for it.
    assert await tool.replay(kafka_bootstrap, dlq, group="catalog.index") == []
    other = await tool.replay(kafka_bootstrap, dlq, group="matching.index")
    assert [r.error for r in other] == ["boom 1"]
    assert len(await read_all(kafka_bootstrap, origin)) == 3


async def test_replay_refuses_what_is_not_a_dead_letter_topic(kafka_bootstrap):
    tool = load_tool()
    with pytest.raises(ValueError, match="not a dead-letter topic"):
        await tool.replay(kafka_bootstrap, "techbridge.catalog.achievement.v1")
    with pytest.raises(ValueError, match="does not exist"):
        await tool.replay(kafka_bootstrap, f"techbridge.none{uuid.uuid4().hex[:6]}.x.v1.dlq", dry_run=True)
    assert await asyncio.to_thread(tool.main, ["dlq_replay.py", "x.v1"]) == 2
