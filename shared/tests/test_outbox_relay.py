"""Two relay replicas on one PostgreSQL outbox: each event reaches Kafka once, in order per key."""

import asyncio
import json
import random
import uuid

from aiokafka import AIOKafkaConsumer
from sqlalchemy import MetaData, func, select

from techbridge_shared.db import Database
from techbridge_shared.envelope import new_event, topic_name
from techbridge_shared.kafka import ensure_topics, new_producer
from techbridge_shared.outbox import OutboxRelay
from techbridge_shared.service import Settings
from techbridge_shared.tables import add_messaging_tables
from techbridge_shared.uow import UnitOfWork


async def test_two_replicas_never_publish_a_row_twice_and_keep_key_order(pg_url_factory, kafka_bootstrap):
    metadata = MetaData()
    outbox, _inbox = add_messaging_tables(metadata)
    url = pg_url_factory("relay")
    aggregate = "a" + uuid.uuid4().hex[:8]
    topic = topic_name("relaytest", aggregate)
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap)
    await ensure_topics(settings, "relay-test", [topic], partitions=3)

    writer = Database(url)
    async with writer.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    replicas = [Database(url) for _ in range(2)]
    relays = [
        OutboxRelay(service=f"replica-{i}", db=db, outbox=outbox, batch_size=25, poll_interval_s=0.01,
                    producer_factory=lambda: new_producer(settings, f"relay-test-{uuid.uuid4().hex[:4]}"))
        for i, db in enumerate(replicas)
    ]
    tasks = [asyncio.create_task(r.run()) for r in relays]

    keys = [f"k{i}" for i in range(20)]
    sequence = {k: 0 for k in keys}
    rng = random.Random(7)
    for _ in range(60):  # written while both replicas publish
        async with UnitOfWork(writer, outbox) as uow:
            for _ in range(10):
                k = rng.choice(keys)
                sequence[k] += 1
                uow.publish(new_event(service="relaytest", aggregate=aggregate, verb="happened",
                                      subject=k, data={"n": sequence[k]}))
            await uow.commit()
    total = sum(sequence.values())

    async def backlog():
        async with writer.engine.connect() as conn:
            return (await conn.execute(select(func.count()).where(outbox.c.published_at.is_(None)))).scalar()

    for _ in range(300):
        if await backlog() == 0:
            break
        await asyncio.sleep(0.1)
    for r in relays:
        await r.stop()
    await asyncio.gather(*tasks)
    assert await backlog() == 0

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    received = []
    try:
        # Everything, then one more quiet poll so a duplicate would be seen too.
        deadline = asyncio.get_running_loop().time() + 90
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=2000)
            for records in batch.values():
                received.extend(records)
            if not batch and len(received) >= total:
                break
    finally:
        await consumer.stop()
    for db in [writer, *replicas]:
        await db.dispose()

    ids = [json.loads(r.value)["id"] for r in received]
    assert len(ids) == total and len(set(ids)) == total, "every event exactly once"
    by_key: dict[str, list[int]] = {}
    for r in received:  # records of one key share a partition, so this is log order
        by_key.setdefault(r.key.decode(), []).append(json.loads(r.value)["data"]["n"])
    bad = {k: ns for k, ns in by_key.items() if ns != list(range(1, sequence[k] + 1))}
    assert not bad, {k: [(i, n) for i, n in enumerate(ns, 1) if i != n][:5] for k, ns in bad.items()}
