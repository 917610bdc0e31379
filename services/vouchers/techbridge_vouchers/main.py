"""Vouchers process: `python -m techbridge_vouchers` or `create_app()` for an ASGI server."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from fastapi import FastAPI

from techbridge_shared.service import ServiceSpec, create_app as create_service_app
from techbridge_shared.settings import load_settings

from .api import agencies, applications, ledger, programmes, redemptions, vouchers
from .config import Settings
from .events.consumed import subscriptions
from .events.published import TOPICS
from .service_layer.expiry import check_periodically, run_periodically
from .store.tables import metadata

SERVICE = "vouchers"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _start_sweeper(app: FastAPI, settings: Settings) -> None:
    """Background work: the expiry sweep and the monitoring ledger check."""
    if getattr(app.state, "sweeper", None):
        return
    loop = asyncio.get_running_loop()
    runtime = app.state.runtime
    tasks = []
    if settings.expiry_sweep_interval_s > 0:
        tasks.append(loop.create_task(run_periodically(runtime, settings.expiry_sweep_interval_s),
                                      name="vouchers-expiry"))
    if settings.ledger_check_interval_s > 0:
        tasks.append(loop.create_task(check_periodically(runtime, settings.ledger_check_interval_s),
                                      name="vouchers-ledger-check"))
    app.state.sweeper = tasks


async def _stop_sweeper(app: FastAPI) -> None:
    for task in getattr(app.state, "sweeper", None) or []:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    app.state.sweeper = None


def _configure(settings: Settings):
    def configure(app: FastAPI) -> None:
        app.state.sweeper = None
        inner = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(a):
            async with inner(a) as state:
                _start_sweeper(a, settings)
                try:
                    yield state
                finally:
                    await _stop_sweeper(a)

        app.router.lifespan_context = lifespan
        # `run_service` starts the runtime itself and serves with lifespan off: start here.
        with contextlib.suppress(RuntimeError):
            if app.state.runtime.started:
                _start_sweeper(app, settings)

    return configure


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
                 ledger.router],
        publishes=list(TOPICS),
        subscriptions=subscriptions(settings.consumer_group_prefix),
        configure_app=_configure(settings),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(build_spec(settings))
