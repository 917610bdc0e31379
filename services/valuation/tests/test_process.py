"""`python -m techbridge_valuation` as a real process: settings from the environment, migrations,
Kafka, and an answer through the HTTP API."""

import uuid

import httpx
import pytest

from techbridge_shared.identity import Identity, identity_headers
from techbridge_shared.testing.kafka_broker import free_port
from techbridge_shared.testing.processes import ServiceProcess

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def test_the_process_starts_migrates_and_serves(tmp_path, kafka_bootstrap, pg_url_factory):
    port = free_port()
    secret = "test-secret-" + uuid.uuid4().hex
    env = {
        "VALUATION_PORT": str(port),
        "VALUATION_DATABASE_URL": pg_url_factory("valuation"),
        "VALUATION_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "VALUATION_CONSUMER_GROUP_PREFIX": f"valuation-proc-{uuid.uuid4().hex[:8]}",
        "VALUATION_INTERNAL_AUTH_SECRET": secret,
        "VALUATION_DEFAULT_PATHS": "2000",
        "VALUATION_DATA_DIR": str(tmp_path / "data"),
    }
    proc = ServiceProcess("techbridge_valuation", env, port, tmp_path / "valuation.log").start()
    try:
        ready = httpx.get(proc.url + "/health/ready", timeout=10).json()
        assert ready["checks"]["consumer:" + env["VALUATION_CONSUMER_GROUP_PREFIX"] + ".achievements"] == "ok"
        path = "/api/v1/valuation/defaults/versions"
        who = Identity(sub="u", org="org-1", roles=frozenset({"government"}))
        r = httpx.get(proc.url + path, headers=identity_headers(who, secret, "GET", path), timeout=10)
        assert r.status_code == 200 and r.json() == ["2026.1"]
        forged = identity_headers(who, "not-the-secret", "GET", path)
        assert httpx.get(proc.url + path, headers=forged, timeout=10).status_code == 401
    finally:
        proc.terminate()
