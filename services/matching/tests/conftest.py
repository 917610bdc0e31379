"""Matching test support: the app in-process on a real store (SQLite or PostgreSQL) and the
session's real broker, with callers carrying signed identities and a clock tests can move."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from matching_helpers import Api  # noqa: E402

from techbridge_matching.config import Settings  # noqa: E402
from techbridge_matching.main import create_app  # noqa: E402


class Clock:
    def __init__(self):
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def matching_settings(store_url: str, kafka: str, tmp_path: Path, **overrides) -> Settings:
    return Settings(
        database_url=store_url, kafka_bootstrap_servers=kafka, data_dir=str(tmp_path / "data"),
        environment="test", achievement_consumer_group=f"matching.achievement-index-{uuid.uuid4().hex[:8]}",
        outbox_poll_interval_ms=50, consumer_retry_backoff_ms=50, expiry_sweep_interval_s=0, **overrides,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def api(store_url, kafka_bootstrap, tmp_path, clock):
    settings = matching_settings(store_url, kafka_bootstrap, tmp_path)
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://matching") as client:
            yield Api(client, settings.internal_auth_secret, app)
