"""pytest plugin: real Kafka and PostgreSQL for every test that asks for them.

- `kafka_bootstrap`: a broker for the whole test session. TECHBRIDGE_TEST_KAFKA=host:port uses
  one that already runs; otherwise one is started from deploy/kafka and stopped at the end.
- `kafka_broker_factory`: private brokers a test may stop and start (fault tests).
- `pg_url_factory`: a fresh PostgreSQL database per call, dropped after the test session.
  The server comes from TECHBRIDGE_TEST_PG_URL (set by `make test` from deploy/postgres/pg.sh).
- `store_url` (parametrised "sqlite" / "postgresql"): for code that must behave alike on both.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .kafka_broker import KafkaBroker


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> Iterator[str]:
    existing = os.environ.get("TECHBRIDGE_TEST_KAFKA")
    if existing:
        yield existing
        return
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def own_kafka_broker(label: str):
    """A session fixture standing in for `kafka_bootstrap` in one test folder:

        kafka_bootstrap = own_kafka_broker("gateway")   # in that folder's conftest.py

    For suites that consume whole topics from the start (read models, the gateway's event
    log): on the shared broker they would also see every other suite's events.
    """

    @pytest.fixture(scope="session")
    def fixture(tmp_path_factory) -> Iterator[str]:
        broker = KafkaBroker(tmp_path_factory.mktemp(f"{label}-kafka"))
        broker.start()
        try:
            yield broker.bootstrap
        finally:
            broker.stop()

    return fixture


@pytest.fixture
def kafka_broker_factory(tmp_path) -> Iterator[Callable[[], KafkaBroker]]:
    brokers: list[KafkaBroker] = []

    def make() -> KafkaBroker:
        broker = KafkaBroker(tmp_path / f"kafka-{len(brokers)}")
        brokers.append(broker)
        broker.start()
        return broker

    yield make
    for b in brokers:
        b.stop()


def _pg_server_url() -> str:
    url = os.environ.get("TECHBRIDGE_TEST_PG_URL")
    if not url:
        pytest.fail(
            "TECHBRIDGE_TEST_PG_URL is not set: run tests with `make test`, which starts "
            "PostgreSQL (deploy/postgres/pg.sh), or export it yourself"
        )
    return url.rstrip("/")


def _admin(sql: str) -> None:
    """Run one statement on the server's maintenance database.

    In a thread of its own, so it works from sync and async tests alike (an async test's
    loop is already running in this thread).
    """
    import asyncpg

    server = _pg_server_url().replace("postgresql+asyncpg://", "postgresql://")

    async def run() -> None:
        conn = await asyncpg.connect(server + "/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="session")
def pg_url_factory() -> Iterator[Callable[[str], str]]:
    created: list[str] = []

    def make(label: str = "t") -> str:
        name = f"tb_{label}_{uuid.uuid4().hex[:10]}"
        _admin(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"{_pg_server_url()}/{name}"

    yield make
    for name in created:
        try:
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception:
            pass


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path: Path, pg_url_factory) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    return pg_url_factory("store")
