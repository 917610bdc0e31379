"""The whole platform as real processes on a Kafka broker and a PostgreSQL server of its own,
so a fault test may stop and restart either without disturbing other suites."""

import asyncio
import os
import random
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

E2E = str(Path(__file__).resolve().parents[1] / "e2e")
HERE = str(Path(__file__).resolve().parent)
for _path in (E2E, HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from e2e_platform import Partner, start_platform  # noqa: E402

from techbridge_catalog.domain.rules import credit_code_check_char  # noqa: E402
from techbridge_shared.testing.kafka_broker import KafkaBroker, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


@pytest.fixture(scope="session")
def fault_broker(tmp_path_factory):
    broker = KafkaBroker(tmp_path_factory.mktemp("fault-kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class PostgresServer:
    """A PostgreSQL cluster of the fault suite's own, run by deploy/postgres/pg.sh on a free port
    and a data directory of its own (outside pytest's temporary tree, which the server's user
    may not reach)."""

    def __init__(self):
        self.port = free_port()
        self.data = Path(f"/tmp/techbridge-faults-pg-{self.port}-{uuid.uuid4().hex[:6]}")
        self.env = {k: v for k, v in os.environ.items() if k != "TECHBRIDGE_PG_URL"}
        self.env.update(TECHBRIDGE_PG_PORT=str(self.port), TECHBRIDGE_PG_DATA=str(self.data))
        self.url = ""

    def _pg(self, action: str) -> str:
        done = subprocess.run([str(ROOT / "deploy/postgres/pg.sh"), action], env=self.env, capture_output=True,
                              text=True, timeout=180)
        assert done.returncode == 0, f"pg.sh {action}: {done.stderr[-2000:]}"
        return done.stdout.strip()

    def start(self) -> None:
        self.url = self._pg("start").splitlines()[-1]

    def stop(self) -> None:
        self._pg("stop")

    def create_database(self, label: str) -> str:
        import asyncpg

        name = f"tb_{label}_{uuid.uuid4().hex[:10]}"

        async def run():
            conn = await asyncpg.connect(self.url.replace("postgresql+asyncpg://", "postgresql://") + "/postgres")
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        with ThreadPoolExecutor(max_workers=1) as pool:  # works under a running event loop too
            pool.submit(asyncio.run, run()).result()
        return f"{self.url}/{name}"

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)


@pytest.fixture(scope="session")
def fault_postgres():
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def fault_platform(tmp_path_factory, fault_broker, fault_postgres):
    started = start_platform(tmp_path_factory.mktemp("fault-platform"), fault_broker.bootstrap,
                             fault_postgres.create_database)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def fault_admin(fault_platform):
    client = Partner(fault_platform.url, fault_platform.admin_id, fault_platform.admin_secret)
    yield client
    client.close()


@pytest.fixture(scope="session")
def enrol(fault_platform, fault_admin):
    """Register an organisation in the catalog and an API client for it; return the partner."""
    rnd = random.Random(7)
    made: list[Partner] = []

    def make(kind: str, roles: list[str], region: str = "Shanghai/Pudong", **extra) -> Partner:
        org_id = str(uuid.uuid4())
        body17 = "91310115" + "".join(rnd.choice(CODE_ALPHABET) for _ in range(9))
        fault_admin.ok("POST", "/api/v1/catalog/organisations", status=201, json={
            "organisation_id": org_id, "name": f"{kind} {org_id[:6]}", "name_en": f"{kind} {org_id[:6]}",
            "kind": kind, "region": region, "credit_code": body17 + credit_code_check_char(body17), **extra})
        c = fault_admin.ok("POST", "/api/v1/clients", status=201,
                           json={"name": f"{kind} {org_id[:6]}", "org_id": org_id, "roles": roles})
        p = Partner(fault_platform.url, c["client_id"], c["client_secret"], org_id)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
