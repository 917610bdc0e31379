"""The catalog as a real process (`python -m techbridge_catalog`): it serves, and its expiry
sweeper expires due listings and announces them without anyone calling it."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid

import httpx
import pytest
from catalog_helpers import achievement, credit_code, who
from catalog_helpers import read_events

from techbridge_shared.identity import identity_headers
from techbridge_shared.settings import DEV_SECRET_PREFIX
from techbridge_shared.testing.kafka_broker import free_port
from techbridge_shared.testing.processes import ServiceProcess

pytestmark = pytest.mark.timeout(180)
SECRET = DEV_SECRET_PREFIX + "internal-auth-secret"
A = "/api/v1/catalog/achievements"


def call(base: str, method: str, path: str, identity, **kw) -> httpx.Response:
    headers = identity_headers(identity, SECRET, method, path)
    return httpx.request(method, base + path, headers=headers, timeout=30, **kw)


async def test_the_process_expires_due_listings_by_itself(tmp_path, kafka_bootstrap):
    port = free_port()
    db = tmp_path / "catalog.db"
    env = {
        "CATALOG_PORT": str(port), "CATALOG_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "CATALOG_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "CATALOG_DATA_DIR": str(tmp_path),
        "CATALOG_EXPIRY_SWEEP_INTERVAL_S": "0.2",
        "CATALOG_CONSUMER_GROUP_PREFIX": f"catalog-proc-{uuid.uuid4().hex[:6]}",
    }
    proc = ServiceProcess("techbridge_catalog", env, port, tmp_path / "catalog.log").start(timeout=90)
    try:
        base = proc.url
        org = f"org-{uuid.uuid4().hex[:6]}"
        r = call(base, "POST", "/api/v1/catalog/organisations", who(None, "admin"),
                 json={"organisation_id": org, "name": "华东理工大学", "kind": "university", "credit_code": credit_code()})
        assert r.status_code == 201, r.text
        r = call(base, "POST", A, who(org, "institution"), json=achievement())
        aid = r.json()["achievement_id"]
        assert call(base, "POST", f"{A}/{aid}/submit", who(org, "institution")).status_code == 200
        assert call(base, "POST", f"{A}/{aid}/publish", who(None, "government")).status_code == 200
        with sqlite3.connect(db, timeout=30) as conn:  # its listing period ends now
            conn.execute("UPDATE achievements SET expires_at = published_at WHERE id = ?", (aid,))
        for _ in range(150):
            if call(base, "GET", f"{A}/{aid}", who(org, "institution")).json()["status"] == "expired":
                break
            await asyncio.sleep(0.2)
        assert call(base, "GET", f"{A}/{aid}", who(org, "institution")).json()["status"] == "expired"
        events = await read_events(kafka_bootstrap, "techbridge.catalog.achievement.v1", {aid}, want=3)
        assert [e["type"].split(".")[-2] for e in events] == ["submitted", "published", "expired"]
        assert events[2]["data"]["reason"] == "listing period ended"
    finally:
        proc.terminate()
