"""Replay dead-lettered records onto the topic they came from, once their cause is fixed.

    python /app/dlq_replay.py TOPIC.dlq [--group GROUP] [--limit N] [--dry-run]
                              [--bootstrap-server HOST:PORT]

A consumer that gives up on a record sends it to `<topic>.dlq` with techbridge-dlq-* headers
(origin topic, partition and offset, consumer group, error, attempts, time). This reads the
dead-letter topic up to the end it has when the command starts, and for each record (of one
consumer group with --group) sends the original key, value and headers back to the origin
topic, with `techbridge-replayed-from: <dlq>/<partition>/<offset>` added. Consumers are
idempotent (each group's inbox remembers the event ids it applied), so groups that had already
applied an event skip it; only the group that failed applies it now.

Progress is committed in the consumer group `techbridge.dlq-replay.<dlq topic>[.<group>]`
after every record sent, so a replay that stops half way continues where it stopped and a
second run sends nothing twice. --dry-run lists what would be sent and commits nothing.

The broker address comes from --bootstrap-server or, in a service image, from that service's
<SERVICE>_KAFKA_BOOTSTRAP_SERVERS setting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from techbridge_shared import kafka
from techbridge_shared.settings import KafkaSettings

HEADER_PREFIX = "techbridge-dlq-"
REPLAYED_FROM = "techbridge-replayed-from"


@dataclass
class Replayed:
    partition: int
    offset: int
    origin: str
    group: str
    error: str
    sent: bool


def headers_of(record) -> dict[str, str]:
    return {k: (v or b"").decode(errors="replace") for k, v in (record.headers or [])}


def replay_group_id(dlq: str, group: str | None) -> str:
    return f"techbridge.dlq-replay.{dlq}" + (f".{group}" if group else "")


async def replay(
    bootstrap: str, dlq: str, *, group: str | None = None, limit: int | None = None, dry_run: bool = False
) -> list[Replayed]:
    if not dlq.endswith(".dlq"):
        raise ValueError(f"{dlq} is not a dead-letter topic (<topic>.dlq)")
    settings = KafkaSettings(kafka_bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=replay_group_id(dlq, group),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    producer = None if dry_run else kafka.new_producer(settings, client_id="techbridge-dlq-replay")
    if producer:
        await producer.start()
    done: list[Replayed] = []
    try:
        partitions = consumer.partitions_for_topic(dlq) or await _partitions(consumer, dlq)
        if not partitions:
            raise ValueError(f"topic {dlq} does not exist")
        tps = [TopicPartition(dlq, p) for p in sorted(partitions)]
        consumer.assign(tps)
        # Only what is there now: records dead-lettered during the replay wait for the next run.
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        while pending and (limit is None or len(done) < limit):
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp] or tp not in pending:
                        pending.discard(tp)
                        break
                    if limit is not None and len(done) >= limit:
                        pending.clear()
                        break
                    h = headers_of(record)
                    origin = h.get(HEADER_PREFIX + "origin-topic") or dlq.removesuffix(".dlq")
                    failed_group = h.get(HEADER_PREFIX + "consumer-group", "")
                    wanted = group is None or failed_group == group
                    if wanted and not dry_run:
                        headers = [(k, v) for k, v in (record.headers or []) if not k.startswith(HEADER_PREFIX)]
                        headers.append((REPLAYED_FROM, f"{dlq}/{record.partition}/{record.offset}".encode()))
                        await producer.send_and_wait(origin, value=record.value, key=record.key, headers=headers)
                    if not dry_run:
                        await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})
                    if wanted:
                        done.append(Replayed(record.partition, record.offset, origin, failed_group,
                                             h.get(HEADER_PREFIX + "error", ""), not dry_run))
                    if record.offset + 1 >= ends[tp]:
                        pending.discard(tp)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        if producer:
            await producer.stop()
        await consumer.stop()
    return done


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int] | None:
    await consumer._client.force_metadata_update()  # a fresh client may not know the topic yet
    return consumer.partitions_for_topic(topic)


def default_bootstrap() -> str:
    service = os.environ.get("TECHBRIDGE_SERVICE", "")
    return os.environ.get(f"{service.upper()}_KAFKA_BOOTSTRAP_SERVERS", "") if service else ""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dlq_replay.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("dlq", help="the dead-letter topic, e.g. techbridge.catalog.achievement.v1.dlq")
    parser.add_argument("--group", help="replay only records this consumer group gave up on")
    parser.add_argument("--limit", type=int, help="stop after this many records")
    parser.add_argument("--dry-run", action="store_true", help="list the records; send and commit nothing")
    parser.add_argument("--bootstrap-server", default=default_bootstrap())
    args = parser.parse_args(argv[1:])
    if not args.bootstrap_server:
        print("dlq_replay: give --bootstrap-server (or run it in a service image)", file=sys.stderr)
        return 2
    try:
        done = asyncio.run(replay(args.bootstrap_server, args.dlq, group=args.group, limit=args.limit,
                                  dry_run=args.dry_run))
    except ValueError as exc:
        print(f"dlq_replay: {exc}", file=sys.stderr)
        return 2
    verb = "sent" if not args.dry_run else "would send"
    for r in done:
        print(f"{verb} {args.dlq}/{r.partition}/{r.offset} -> {r.origin} (group {r.group or '?'}: {r.error[:120]})")
    print(f"{len(done)} record(s) {verb}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
