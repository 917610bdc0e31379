"""Vouchers process: `python -m techbridge_vouchers` or `create_app()` for an ASGI server."""

from __future__ import annotations

import contextlib
from pathlib import Path

from fastapi import FastAPI

from techbridge_shared.service import ServiceSpec, background_loop, create_app as create_service_app
from techbridge_shared.settings import load_settings

from .api import agencies, applications, ledger, payouts, programmes, redemptions, vouchers
from .config import Settings
from .events.consumed import subscriptions
from .events.published import TOPICS
from .service_layer.expiry import check_periodically, run_periodically
from .store import hot
from .store.tables import metadata

SERVICE = "vouchers"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


@contextlib.asynccontextmanager
async def hot_path_pool(app: FastAPI):
    """The redemption hot path's connection pool (PostgreSQL) closes with the app."""
    try:
        yield
    finally:
        await hot.close_pool(app.state.runtime.db)


def background(settings: Settings) -> tuple:
    """The expiry sweep and the monitoring ledger check, for as long as the app lives."""
    hooks = [hot_path_pool]
    if settings.expiry_sweep_interval_s > 0:
        hooks.append(background_loop(
            "vouchers-expiry", lambda runtime: run_periodically(runtime, settings.expiry_sweep_interval_s)))
    if settings.ledger_check_interval_s > 0:
        hooks.append(background_loop(
            "vouchers-ledger-check", lambda runtime: check_periodically(runtime, settings.ledger_check_interval_s)))
    return tuple(hooks)


def build_spec(settings: Settings | None = None) -> ServiceSpec:
    settings = settings or load_settings(Settings)
    return ServiceSpec(
        name=SERVICE,
        title="Techbridge Vouchers",
        description="Technology-innovation voucher programmes on a double-entry ledger.",
        settings=settings,
        metadata=metadata,
        migrations_dir=MIGRATIONS_DIR,
        routers=[programmes.router, agencies.router, applications.router, vouchers.router, redemptions.router,
                 payouts.router, ledger.router],
        publishes=list(TOPICS),
        subscriptions=subscriptions(settings.consumer_group_prefix),
        lifespan_hooks=background(settings),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(build_spec(settings))
