"""Valuation process: `python -m techbridge_valuation` or `create_app()` for an ASGI server."""

from pathlib import Path

from fastapi import FastAPI

from techbridge_shared.service import ServiceSpec, create_app as create_service_app
from techbridge_shared.settings import load_settings

from .api import defaults, valuations
from .config import Settings
from .events.consumers import subscriptions
from .events.published import VALUATION_TOPIC
from .store.tables import metadata

SERVICE = "valuation"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def build_spec(settings: Settings | None = None) -> ServiceSpec:
    settings = settings or load_settings(Settings)
    return ServiceSpec(
        name=SERVICE,
        title="Techbridge Valuation",
        description="Documented valuations of achievements: income, cost and market approaches, Monte Carlo ranges.",
        settings=settings,
        metadata=metadata,
        migrations_dir=MIGRATIONS_DIR,
        routers=[valuations.router, defaults.router],
        publishes=[VALUATION_TOPIC],
        subscriptions=subscriptions(settings.consumer_group_prefix),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(build_spec(settings))
