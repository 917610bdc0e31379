"""The event plumbing end to end: two real processes, a real broker, a real store each.

Every test runs on SQLite and on PostgreSQL stores (parametrised by `store_url`), since both
ship: SQLite embedded for `make run`, PostgreSQL in production.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from harness import metric, probe_process, record_notes, tally, unique_group, wait_applied

from techbridge_shared.envelope import dlq_topic

NOTE_TOPIC = "techbridge.probe.note.v1"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def consumer_store(tmp_path, pg_url_factory, store_url):
    """The consumer's own store, on the same kind of database as the publisher's."""
    if store_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path / 'consumer.db'}"
    return pg_url_factory("consumer")


@pytest.fixture
def pair(tmp_path, kafka_bootstrap, store_url, consumer_store):
    procs = []

    def start(publisher_settings=None, consumer_settings=None, kafka=None):
        kafka = kafka or kafka_bootstrap
        pub = probe_process(tmp_path, name="publisher", kafka=kafka, database_url=store_url,
                            consume=False, **(publisher_settings or {}))
        con = probe_process(tmp_path, name="consumer", kafka=kafka, database_url=consumer_store,
                            consume=True, group=unique_group(), **(consumer_settings or {}))
        procs.extend([pub, con])
        return pub.start(), con.start()

    yield start
    for p in procs:
        p.terminate()


async def _read_raw(bootstrap: str, topic: str, want: int, timeout: float = 30):
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    records = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def _produce_raw(bootstrap: str, records: list[tuple[str, bytes | None, bytes, list, int | None]]):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for topic, key, value, headers, partition in records:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers, partition=partition)
    finally:
        await producer.stop()


def test_event_reaches_other_process_once_even_when_delivered_twice(pair, kafka_bootstrap):
    publisher, consumer = pair()
    ids = record_notes(publisher, [f"note {i}" for i in range(10)])
    t = wait_applied(consumer, ids)
    assert all(t["per_note"][i] == 1 for i in ids)

    # Deliver the first event's record a second time, exactly as Kafka would on a redelivery.
    records = asyncio.run(_read_raw(kafka_bootstrap, NOTE_TOPIC, want=10_000, timeout=5))
    original = next(r for r in records if r.key == ids[0].encode())
    before = metric(consumer, "techbridge_consumer_records_total", outcome="duplicate")
    asyncio.run(_produce_raw(kafka_bootstrap, [(NOTE_TOPIC, original.key, original.value, list(original.headers), original.partition)]))
    deadline = time.monotonic() + 30
    while metric(consumer, "techbridge_consumer_records_total", outcome="duplicate") <= before:
        assert time.monotonic() < deadline, "the redelivered record was never consumed"
        time.sleep(0.2)
    t = tally(consumer)
    assert t["per_note"][ids[0]] == 1
    assert t["applications"] == t["distinct_events"]


def test_events_committed_before_a_crash_are_delivered_after_restart(pair):
    # The relay is off, so the commit happens and the publish cannot: the crash window itself.
    publisher, consumer = pair(publisher_settings={"outbox_relay_enabled": "false"})
    ids = record_notes(publisher, [f"before crash {i}" for i in range(20)])
    assert httpx.get(publisher.url + "/outbox").json()["unpublished"] == 20
    publisher.kill()
    time.sleep(1)
    assert not set(ids) & set(tally(consumer)["per_note"])

    publisher.env["PROBE_OUTBOX_RELAY_ENABLED"] = "true"
    publisher.start()
    t = wait_applied(consumer, ids)
    assert [t["per_note"][i] for i in ids] == [1] * 20
    assert httpx.get(publisher.url + "/outbox").json()["unpublished"] == 0


def test_sigkill_while_publishing_loses_nothing_and_repeats_nothing(pair):
    publisher, consumer = pair()
    # Many small transactions, killed at an arbitrary point mid-stream.
    def burst():
        try:
            httpx.post(publisher.url + "/notes/batch", params={"count": 5000}, timeout=120)
        except httpx.HTTPError:
            pass  # the process died under us, as intended

    import threading

    writer = threading.Thread(target=burst)
    writer.start()
    time.sleep(1.0)
    publisher.kill()
    writer.join()
    publisher.start()
    committed = httpx.get(publisher.url + "/notes").json()
    assert 0 < len(committed) < 5000, "the crash should land mid-burst"
    assert httpx.get(publisher.url + "/outbox").json()["total"] == len(committed)
    wait_applied(consumer, committed)
    time.sleep(1.0)  # let any duplicate the crash produced arrive, too
    t = tally(consumer)
    assert [t["per_note"][i] for i in committed] == [1] * len(committed)
    assert t["applications"] == t["distinct_events"]


def test_writes_succeed_while_kafka_is_down_and_arrive_when_it_returns(tmp_path, kafka_broker_factory, pair):
    broker = kafka_broker_factory()
    publisher, consumer = pair(kafka=broker.bootstrap)
    first = record_notes(publisher, ["before outage"])
    wait_applied(consumer, first)

    broker.stop()
    during = record_notes(publisher, [f"during outage {i}" for i in range(30)])
    assert httpx.get(publisher.url + "/outbox").json()["unpublished"] >= 30
    assert httpx.get(publisher.url + "/health/ready").status_code == 503

    broker.start()
    t = wait_applied(consumer, during, timeout=120)
    assert all(t["per_note"][i] == 1 for i in first + during)
    assert t["applications"] == t["distinct_events"]


def test_poison_records_go_to_the_dlq_and_the_partition_moves_on(pair, kafka_bootstrap):
    publisher, consumer = pair(consumer_settings={"consumer_max_attempts": "3", "consumer_retry_backoff_ms": "20"})
    [good_before] = record_notes(publisher, ["good before"])
    wait_applied(consumer, [good_before])

    # On one partition, in order: garbage, a valid event its handler always refuses, a good one.
    records = asyncio.run(_read_raw(kafka_bootstrap, NOTE_TOPIC, want=10_000, timeout=5))
    template = next(r for r in records if r.key == good_before.encode())
    [poison_id, good_after] = record_notes(publisher, ["fail-always", "good after"])
    wait_applied(consumer, [good_after])
    garbage = b"\x00not json at all"
    asyncio.run(_produce_raw(kafka_bootstrap, [(NOTE_TOPIC, b"garbage", garbage, [], template.partition)]))
    [last] = record_notes(publisher, ["after garbage"])
    t = wait_applied(consumer, [last])
    assert poison_id not in t["per_note"]

    dead = asyncio.run(_read_raw(kafka_bootstrap, dlq_topic(NOTE_TOPIC), want=10_000, timeout=5))
    ours = {r.key: r for r in dead if r.key in (poison_id.encode(), b"garbage")}
    assert set(ours) == {poison_id.encode(), b"garbage"}
    headers = {k: v.decode() for k, v in ours[poison_id.encode()].headers}
    assert headers["techbridge-dlq-origin-topic"] == NOTE_TOPIC
    assert headers["techbridge-dlq-attempts"] == "3"
    assert "poison" in headers["techbridge-dlq-error"]
    assert int(headers["techbridge-dlq-origin-offset"]) >= 0
    assert headers["techbridge-dlq-origin-partition"].isdigit()
    garbage_headers = {k: v.decode() for k, v in ours[b"garbage"].headers}
    assert garbage_headers["techbridge-dlq-origin-partition"] == str(template.partition)
    assert ours[b"garbage"].value == garbage


def test_a_consumer_waits_out_its_own_store_instead_of_dead_lettering_good_events(pair, kafka_bootstrap):
    publisher, consumer = pair(consumer_settings={"consumer_max_attempts": "3", "consumer_retry_backoff_ms": "20"})
    # Six failures, twice the attempts a faulty event gets: only a store outage may take that long.
    [outage, after] = record_notes(publisher, ["store-down-6", "after the outage"])
    t = wait_applied(consumer, [outage, after])
    assert t["per_note"][outage] == 1 and t["per_note"][after] == 1
    dead = asyncio.run(_read_raw(kafka_bootstrap, dlq_topic(NOTE_TOPIC), want=10_000, timeout=3))
    assert outage.encode() not in {r.key for r in dead}


def test_consumer_is_ready_only_after_joining_its_group(pair):
    _publisher, consumer = pair()
    body = httpx.get(consumer.url + "/health/ready").json()
    assert body["status"] == "ready"
    assert any(k.startswith("consumer:probe.tally-") and v == "ok" for k, v in body["checks"].items())




def test_the_callers_trace_continues_into_the_event(pair, kafka_bootstrap):
    publisher, _consumer = pair()
    trace = "0af7651916cd43dd8448eb211c80319c"
    r = httpx.post(publisher.url + "/notes", json={"text": "traced"},
                   headers={"traceparent": f"00-{trace}-b7ad6b7169203331-01"})
    note_id = r.json()["id"]
    records = asyncio.run(_read_raw(kafka_bootstrap, NOTE_TOPIC, want=10_000, timeout=5))
    [record] = [r for r in records if r.key == note_id.encode()]
    traceparent = json.loads(record.value)["traceparent"]
    assert traceparent.split("-")[1] == trace
    assert traceparent.split("-")[2] != "b7ad6b7169203331"  # the service's own span
