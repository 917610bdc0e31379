"""The whole platform as real processes on a broker of its own, so a fault test may stop it."""

import random
import sys
import uuid
from pathlib import Path

import pytest

E2E = str(Path(__file__).resolve().parents[1] / "e2e")
if E2E not in sys.path:
    sys.path.insert(0, E2E)

from e2e_platform import Partner, start_platform  # noqa: E402

from techbridge_catalog.domain.rules import credit_code_check_char  # noqa: E402
from techbridge_shared.testing.kafka_broker import KafkaBroker  # noqa: E402

CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


@pytest.fixture(scope="session")
def fault_broker(tmp_path_factory):
    broker = KafkaBroker(tmp_path_factory.mktemp("fault-kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def fault_platform(tmp_path_factory, fault_broker, pg_url_factory):
    started = start_platform(tmp_path_factory.mktemp("fault-platform"), fault_broker.bootstrap, pg_url_factory)
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
