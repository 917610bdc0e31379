"""Catalog process: `python -m techbridge_catalog` or `create_app()` for an ASGI server."""

from pathlib import Path

from fastapi import FastAPI

from techbridge_shared.service import ServiceSpec, create_app as create_service_app
from techbridge_shared.settings import load_settings

from .config import Settings
from .store.tables import metadata

SERVICE = "catalog"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def build_spec(settings: Settings | None = None) -> ServiceSpec:
    return ServiceSpec(
        name=SERVICE,
        title="Techbridge Catalog",
        description="Achievements and the organisation registry: listing, review workflow, bilingual search.",
        settings=settings or load_settings(Settings),
        metadata=metadata,
        migrations_dir=MIGRATIONS_DIR,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(build_spec(settings))
