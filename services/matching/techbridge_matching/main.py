"""Matching process: `python -m techbridge_matching` or `create_app()` for an ASGI server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI

from techbridge_shared.envelope import utcnow
from techbridge_shared.service import ServiceRuntime, ServiceSpec, background_loop, create_app as create_service_app
from techbridge_shared.settings import ConfigurationError, load_settings

from .api import demands as demands_api
from .api import proposals as proposals_api
from .api import transfers as transfers_api
from .config import Settings
from .events import consumed
from .events.published import TOPICS
from .retrieval.embedder import Embedder, EmbedderUnavailable
from .retrieval.index import set_blas_threads
from .store.tables import metadata
from .usecases import demands as demand_usecases
from .usecases.engine import MatchingEngine
from .usecases.index import AchievementIndexer

SERVICE = "matching"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
log = logging.getLogger(__name__)

_EMBEDDERS: dict[tuple[str, int], Embedder] = {}


def load_embedder(settings: Settings) -> Embedder | None:
    """The model, or ConfigurationError: the service refuses to start without it unless allowed."""
    key = (settings.embedding_model_path, settings.embedding_threads)
    if key in _EMBEDDERS:
        return _EMBEDDERS[key]
    try:
        embedder = Embedder(settings.embedding_model_path or None, threads=settings.embedding_threads)
    except EmbedderUnavailable as exc:
        if settings.allow_lexical_only:
            log.warning("embedding model unavailable, matching lexically only (development): %s", exc)
            return None
        raise ConfigurationError(f"{exc} (set MATCHING_ALLOW_LEXICAL_ONLY=true only in development)") from None
    _EMBEDDERS[key] = embedder
    return embedder


def demand_expiry(settings: Settings, clock: Callable[[], datetime]):
    """Lifespan hook: expire published demands past their deadline every few seconds."""

    async def loop(runtime: ServiceRuntime) -> None:
        while True:
            try:
                async with runtime.unit_of_work() as uow:
                    n = await demand_usecases.expire_due(uow, clock())
                if n:
                    log.info("expired %d demands", n)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("demand expiry sweep failed; retrying next interval", exc_info=True)
            await asyncio.sleep(settings.expiry_sweep_interval_s)

    return (background_loop("matching-expiry", loop),) if settings.expiry_sweep_interval_s > 0 else ()


def build_spec(settings: Settings | None = None, clock: Callable[[], datetime] = utcnow) -> ServiceSpec:
    settings = settings or load_settings(Settings)
    set_blas_threads(settings.blas_threads)
    engine = MatchingEngine(load_embedder(settings))
    indexer = AchievementIndexer(engine, settings.match_threshold)

    def configure(app: FastAPI) -> None:
        app.state.engine = engine
        app.state.indexer = indexer
        app.state.clock = clock

    return ServiceSpec(
        name=SERVICE,
        title="Techbridge Matching",
        description="Technology demands, supply-demand matching that explains itself, and transfer deals.",
        settings=settings,
        metadata=metadata,
        migrations_dir=MIGRATIONS_DIR,
        routers=[demands_api.router, proposals_api.router, transfers_api.router],
        publishes=list(TOPICS),
        subscriptions=[consumed.subscription(indexer, group=settings.achievement_consumer_group)],
        configure_app=configure,
        lifespan_hooks=demand_expiry(settings, clock),
    )


def create_app(settings: Settings | None = None, clock: Callable[[], datetime] = utcnow) -> FastAPI:
    return create_service_app(build_spec(settings, clock))
