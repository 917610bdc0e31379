"""Catalog process: `python -m techbridge_catalog` or `create_app()` for an ASGI server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from fastapi import FastAPI

from techbridge_shared.service import ServiceRuntime, ServiceSpec, background_loop
from techbridge_shared.service import create_app as create_service_app
from techbridge_shared.settings import load_settings

from .api.achievements import admin_router
from .api.achievements import router as achievements_router
from .api.limits import BodyLimitMiddleware
from .api.organisations import router as organisations_router
from .config import Settings
from .domain.text import warm_up
from .events.consumers import subscriptions
from .events.models import PUBLISHES
from .service import achievements
from .service.common import now
from .store.reader import Reader
from .store.tables import metadata

SERVICE = "catalog"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
log = logging.getLogger(__name__)


def build_spec(settings: Settings | None = None) -> ServiceSpec:
    settings = settings or load_settings(Settings)

    def configure(app: FastAPI) -> None:
        app.add_middleware(BodyLimitMiddleware, max_body=settings.max_body_bytes,
                           max_import=settings.max_import_bytes)

    return ServiceSpec(
        name=SERVICE,
        title="Techbridge Catalog",
        description="Achievements and the organisation registry: listing, review workflow, bilingual search.",
        settings=settings,
        metadata=metadata,
        migrations_dir=MIGRATIONS_DIR,
        routers=(organisations_router, achievements_router, admin_router),
        publishes=PUBLISHES,
        subscriptions=subscriptions(settings.consumer_group_prefix),
        configure_app=configure,
        lifespan_hooks=(readers, background_loop("catalog-expiry", expiry_loop)),
    )


@contextlib.asynccontextmanager
async def readers(app: FastAPI):
    """Read-only sessions for queries, and the segmenter's dictionary loaded before the first
    request (loading it takes a second or two, which the first search or import would pay)."""
    await asyncio.to_thread(warm_up)
    app.state.catalog_reader = Reader(app.state.runtime.db)
    try:
        yield
    finally:
        reader, app.state.catalog_reader = app.state.catalog_reader, None
        await reader.dispose()


async def expiry_loop(runtime: ServiceRuntime) -> None:
    """Expire listings whose period ended, every `expiry_sweep_interval_s` (safe on replicas:
    each expiry is an optimistic update, so two sweepers never expire one listing twice)."""
    interval = runtime.settings.expiry_sweep_interval_s
    while True:
        try:
            while True:
                async with runtime.unit_of_work() as uow:
                    expired = await achievements.expire_due(uow, now())
                    await uow.commit()
                if len(expired) < 200:
                    break
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("expiry sweep failed; retrying next interval", exc_info=True)
        await asyncio.sleep(interval)


def create_app(settings: Settings | None = None, runtime: ServiceRuntime | None = None) -> FastAPI:
    return create_service_app(build_spec(settings), runtime)
