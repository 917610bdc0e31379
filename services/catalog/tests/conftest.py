"""Catalog test support: the app in-process on a real store (SQLite or PostgreSQL) and a real
broker, callers with signed identities, and readers of the published events."""

from __future__ import annotations

import contextlib
import sys
import uuid
from pathlib import Path

import httpx
import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from catalog_helpers import Api  # noqa: E402

from techbridge_catalog.config import Settings  # noqa: E402
from techbridge_catalog.main import create_app  # noqa: E402


def catalog_settings(store_url: str, kafka: str, tmp_path: Path, **overrides) -> Settings:
    return Settings(
        database_url=store_url, kafka_bootstrap_servers=kafka, data_dir=str(tmp_path / "data"),
        environment="test", consumer_group_prefix=f"catalog-test-{uuid.uuid4().hex[:8]}",
        outbox_poll_interval_ms=50, consumer_retry_backoff_ms=50, **overrides,
    )


@contextlib.asynccontextmanager
async def running_catalog(store_url: str, kafka: str, tmp_path: Path, **overrides):
    settings = catalog_settings(store_url, kafka, tmp_path, **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as client:
            yield Api(client, settings.internal_auth_secret, app)


@pytest.fixture
async def api(store_url, kafka_bootstrap, tmp_path):
    async with running_catalog(store_url, kafka_bootstrap, tmp_path) as a:
        yield a


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def module_api(request, kafka_bootstrap, tmp_path_factory, pg_url_factory):
    """One catalog per test module and store kind, for read-only tests over shared data."""
    tmp = tmp_path_factory.mktemp("catalog")
    url = f"sqlite+aiosqlite:///{tmp / 'store.db'}" if request.param == "sqlite" else pg_url_factory("catalog")
    async with running_catalog(url, kafka_bootstrap, tmp) as a:
        yield a
