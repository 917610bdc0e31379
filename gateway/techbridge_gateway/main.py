"""Gateway process: `python -m techbridge_gateway` or `create_app()` for an ASGI server.

Besides the shared runtime (store, migrations, consumer of every platform topic) the gateway
runs its own parts while the app lives: the upstream connection pools, the OpenAPI refresher
and the webhook delivery worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from techbridge_shared.service import ServiceSpec, create_app as create_service_app
from techbridge_shared.settings import load_settings

from .api import auth as auth_api
from .api import clients as clients_api
from .api import events as events_api
from .api import subscriptions as subscriptions_api
from .config import Settings
from .console import router as console_router
from .events.consumer import event_subscription
from .events.webhooks import DeliveryWorker
from .proxy.forward import Forwarder, ProxyRoutes
from .proxy.openapi import OpenApiAggregator
from .service import auth
from .service.context import GatewayContext
from .store.tables import metadata

SERVICE = "gateway"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
ASYNCAPI = Path(__file__).resolve().parent / "asyncapi.yaml"
PROXY_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

log = logging.getLogger(__name__)


class GatewayApp(FastAPI):
    """The gateway's app: a request to forward is answered before the framework sees it
    (`ProxyRoutes`, set up with the app); anything else is the framework's."""

    proxy: ProxyRoutes | None = None

    async def __call__(self, scope, receive, send) -> None:
        proxy = self.proxy
        if proxy is not None and scope["type"] == "http" and proxy.claim(scope):
            scope["app"] = self
            await proxy.handle(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def build_spec(settings: Settings | None = None) -> ServiceSpec:
    settings = settings or load_settings(Settings)
    ctx = GatewayContext(settings)
    spec = ServiceSpec(
        name=SERVICE,
        title="Techbridge Gateway",
        description="The single public entry: auth, routing, limits, merged OpenAPI, event subscriptions.",
        settings=settings,
        metadata=metadata,
        migrations_dir=MIGRATIONS_DIR,
        routers=[auth_api.router, clients_api.router, clients_api.users_router, subscriptions_api.router,
                 events_api.router, console_router],
        subscriptions=[event_subscription(ctx)],
        lifespan_hooks=(run_parts,),
        app_class=GatewayApp,
    )
    spec.configure_app = lambda app: _configure(app, ctx)
    return spec


class GatewayParts:
    """What runs beside the shared runtime while the app lives."""

    def __init__(self, app: FastAPI, ctx: GatewayContext):
        self.app = app
        self.ctx = ctx
        self.forwarder = Forwarder(ctx)
        self.openapi_clients = openapi_clients(ctx.settings)
        self.openapi = OpenApiAggregator(ctx, app, self.openapi_clients)
        self.webhooks = DeliveryWorker(ctx)
        self._generations: asyncio.Task | None = None

    async def start(self) -> None:
        self.ctx.runtime = self.app.state.runtime
        await auth.ensure_bootstrap_admin(self.ctx)
        if self.ctx.settings.is_dev and self.ctx.settings.dev_clients:
            await write_dev_clients(self.ctx)
        await auth.refresh_generations(self.ctx)
        self._generations = asyncio.create_task(self._refresh_generations(), name="gateway-token-generations")
        self.openapi.start()
        self.webhooks.start()

    async def _refresh_generations(self) -> None:
        while True:
            await asyncio.sleep(self.ctx.settings.token_generations_refresh_s)
            try:
                await auth.refresh_generations(self.ctx)
            except Exception as exc:  # keeps what it knows; the next round tries again
                log.warning("could not refresh token generations: %s", exc)

    async def stop(self) -> None:
        if self._generations is not None:
            self._generations.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._generations
        await self.webhooks.stop()
        await self.openapi.stop()
        await self.forwarder.aclose()
        for client in self.openapi_clients.values():
            await client.aclose()


def openapi_clients(s: Settings) -> dict[str, httpx.AsyncClient]:
    """One small client per service for the OpenAPI fetches (the proxy has its own pool)."""
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=min(4, s.upstream_max_keepalive))
    timeout = httpx.Timeout(s.upstream_timeout_s, connect=s.upstream_connect_timeout_s)
    return {name: httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout, follow_redirects=False)
            for name, url in s.upstreams().items()}


@contextlib.asynccontextmanager
async def run_parts(app: FastAPI):
    parts: GatewayParts = app.state.parts
    await parts.start()
    try:
        yield
    finally:
        await parts.stop()


def dev_clients_path(settings: Settings) -> Path:
    return Path(settings.dev_clients_file or Path(settings.data_dir) / "dev-clients.json")


async def write_dev_clients(ctx: GatewayContext) -> None:
    path = dev_clients_path(ctx.settings)
    known: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError, ValueError):
        known = json.loads(path.read_text())
    secrets = await auth.ensure_dev_clients(ctx, known if isinstance(known, dict) else {})
    if secrets != known:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(secrets, indent=2) + "\n")
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    base = f"http://{ctx.settings.host}:{ctx.settings.port}"
    log.info(
        "development clients dev-<role> with secrets in %s; get a token with: curl -s -u "
        "dev-admin:$(python3 -c 'import json;print(json.load(open(\"%s\"))[\"dev-admin\"])') "
        "-d grant_type=client_credentials %s/auth/token", path, path, base,
    )


def _configure(app: GatewayApp, ctx: GatewayContext) -> None:
    parts = GatewayParts(app, ctx)
    app.state.gateway = ctx
    app.state.parts = parts

    # Proxied paths are answered ahead of the framework (GatewayApp, ProxyRoutes); the routes
    # are there for the metrics' labels and for anything that lists the app's routes.
    routes = {}
    for service in ctx.settings.upstreams():
        async def endpoint(request: Request, _service=service):
            return await parts.forwarder.forward(_service, request)

        app.add_route(f"/api/v1/{service}/{{path:path}}", endpoint, methods=PROXY_METHODS, include_in_schema=False)
        routes[service] = app.router.routes[-1]
    app.proxy = ProxyRoutes(parts.forwarder, routes, service=SERVICE, unexpected=app.exception_handlers[Exception])

    # The merged document replaces the gateway's own at /openapi.json; /docs renders it.
    app.openapi = parts.openapi.merged
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) not in ("/docs", "/docs/oauth2-redirect", "/redoc")]

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Techbridge API")

    @app.get("/asyncapi.yaml", include_in_schema=False)
    async def asyncapi() -> Response:
        return Response(ASYNCAPI.read_bytes(), media_type="application/yaml")

    @app.get("/openapi/status", include_in_schema=False)
    async def openapi_status() -> JSONResponse:
        return JSONResponse({"unavailable": sorted(parts.openapi.unavailable)})



def create_app(settings: Settings | None = None) -> GatewayApp:
    return create_service_app(build_spec(settings))
