"""Matching test support: the app in-process on a real store (SQLite or PostgreSQL) and the
session's real broker, with callers carrying signed identities and a clock tests can move."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from matching_helpers import Api, matching_settings, start_group_at_the_end  # noqa: E402

from techbridge_matching.main import create_app  # noqa: E402
from techbridge_shared.testing.fixtures import own_kafka_broker  # noqa: E402


# Matching's read model indexes every achievement on the catalog topic from the start; on
# the shared broker the achievements other suites publish would join the rankings checked here.
# Within this suite each app's consumer group starts at the topic's current end, so what an
# earlier test produced never reaches a later test's read model, whatever the order.
kafka_bootstrap = own_kafka_broker("matching")


class Clock:
    def __init__(self):
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def api(store_url, kafka_bootstrap, tmp_path, clock):
    settings = matching_settings(store_url, kafka_bootstrap, tmp_path)
    await start_group_at_the_end(kafka_bootstrap, settings.achievement_consumer_group)
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://matching") as client:
            yield Api(client, settings.internal_auth_secret, app)
