"""What every Techbridge process is made of, so each service only writes its own parts.

`ServiceSpec` names a service's settings, store, routers, topics and consumers;
`ServiceRuntime` runs them (store + migrations, outbox relay, consumers, producer);
`create_app` wraps them in a FastAPI app with problem+json errors, health, metrics and logs;
`run_service` is each service's `python -m` entry point and turns start-up failures into one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import MetaData, Table

from . import kafka, tracing
from .consumer import ConsumerRunner, Subscription
from .db import Database, wait_for_database
from .envelope import dlq_topic
from .errors import install_problem_handlers
from .http import RequestContextMiddleware
from .logs import configure_logging
from .migrations import upgrade_to_head
from .outbox import OutboxRelay
from .settings import ConfigurationError, DatabaseSettings, KafkaSettings, ServiceSettings
from .uow import UnitOfWork

log = logging.getLogger(__name__)


class Settings(ServiceSettings, DatabaseSettings, KafkaSettings):
    """The settings every process has; a service subclasses it with its own env_prefix."""


@dataclass
class ServiceSpec:
    name: str
    settings: Settings
    metadata: MetaData
    migrations_dir: Path
    title: str = ""
    description: str = ""
    version: str = "0.1.0"
    routers: Sequence[APIRouter] = ()
    publishes: Sequence[str] = ()  # topic names this service writes to
    subscriptions: Sequence[Subscription] = ()
    configure_app: Callable[[FastAPI], None] | None = None  # extra routes, middleware, state
    # Entered while the app lives, after the runtime started (background loops, client
    # pools, workers); exited in reverse order before it stops.
    lifespan_hooks: Sequence[Callable[[FastAPI], contextlib.AbstractAsyncContextManager]] = ()
    # A FastAPI subclass for a service that answers some requests before the framework does.
    app_class: type[FastAPI] = FastAPI

    @property
    def outbox(self) -> Table:
        return self.metadata.tables["outbox"]

    @property
    def inbox(self) -> Table:
        return self.metadata.tables["inbox"]

    @property
    def env_prefix(self) -> str:
        return self.settings.model_config.get("env_prefix", "")


@dataclass
class ServiceRuntime:
    spec: ServiceSpec
    db: Database = field(init=False)
    relay: OutboxRelay | None = field(init=False, default=None)
    consumers: list[ConsumerRunner] = field(init=False, default_factory=list)
    topics_ready: bool = field(init=False, default=False)
    started: bool = field(init=False, default=False)
    _producer: AIOKafkaProducer | None = field(init=False, default=None)
    _producer_lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)
    _tasks: list[asyncio.Task] = field(init=False, default_factory=list)

    def __post_init__(self):
        self.db = Database.from_settings(self.spec.settings, self.spec.name)

    @property
    def settings(self) -> Settings:
        return self.spec.settings

    # --- life cycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Store reachable and migrated, or ConfigurationError; Kafka is joined in the background."""
        if self.started:
            return
        s = self.settings
        await wait_for_database(self.db, self.spec.env_prefix + "DATABASE_URL", s.database_startup_timeout_s)
        await upgrade_to_head(self.db, self.spec.migrations_dir, self.spec.name)
        if s.outbox_relay_enabled:
            self.relay = OutboxRelay(
                service=self.spec.name,
                db=self.db,
                outbox=self.spec.outbox,
                producer_factory=self._new_producer,
                poll_interval_s=s.outbox_poll_interval_ms / 1000,
                batch_size=s.outbox_batch_size,
                send_timeout_s=s.kafka_request_timeout_ms / 1000 + 5,
            )
        self.consumers = [
            ConsumerRunner(
                service=self.spec.name,
                subscription=sub,
                kafka=s,
                unit_of_work=self.unit_of_work,
                inbox=self.spec.inbox,
                dlq_producer=self.producer,
                max_attempts=s.consumer_max_attempts,
                retry_backoff_s=s.consumer_retry_backoff_ms / 1000,
            )
            for sub in self.spec.subscriptions
        ]
        self._tasks.append(asyncio.create_task(self._join_kafka(), name=f"{self.spec.name}-kafka"))
        self.started = True
        log.info("%s started", self.spec.name, extra={"database": self.db.dialect})

    async def stop(self) -> None:
        if not self.started:
            return
        if self.relay:
            await self.relay.stop()
        for c in self.consumers:
            await c.stop()
        # Give loops a moment to finish their current batch, then cancel what is left.
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=5)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._tasks.clear()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), 5)
            self._producer = None
        await self.db.dispose()
        self.started = False

    async def _join_kafka(self) -> None:
        topics = set(self.spec.publishes)
        for sub in self.spec.subscriptions:
            topics.update(sub.topics)
            topics.update(dlq_topic(t) for t in sub.topics)
        backoff = 0.5
        while True:
            try:
                await kafka.ensure_topics(self.settings, self.spec.name, sorted(topics))
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("waiting for Kafka at %s: %s", self.settings.kafka_bootstrap_servers, exc)
                await asyncio.sleep(backoff)
                backoff = min(10.0, backoff * 2)
        self.topics_ready = True
        if self.relay:
            self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.spec.name}-outbox"))
        for c in self.consumers:
            self._tasks.append(asyncio.create_task(c.run(), name=f"{self.spec.name}-{c.group}"))

    # --- resources --------------------------------------------------------------------
    def _new_producer(self) -> AIOKafkaProducer:
        return kafka.new_producer(self.settings, client_id=f"{self.spec.name}-{id(self):x}")

    async def producer(self) -> AIOKafkaProducer:
        """A started producer for dead letters and health checks (the relay keeps its own)."""
        async with self._producer_lock:
            if self._producer is None:
                producer = self._new_producer()
                try:
                    await producer.start()
                except BaseException:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.db, self.spec.outbox, on_commit=self.relay.notify if self.relay else None)

    # --- health -----------------------------------------------------------------------
    async def readiness(self) -> dict[str, str]:
        """Each check is "ok" or the reason it is not."""
        checks: dict[str, str] = {}
        try:
            await self.db.ping()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        try:
            await kafka.ping(await asyncio.wait_for(self.producer(), 3))
            checks["kafka"] = "ok" if self.topics_ready else "topics not created yet"
        except Exception as exc:
            checks["kafka"] = f"unreachable: {type(exc).__name__}"
        for c in self.consumers:
            checks[f"consumer:{c.group}"] = "ok" if c.joined else (c.last_error or "joining group")
        return checks


def create_app(spec: ServiceSpec, runtime: ServiceRuntime | None = None) -> FastAPI:
    runtime = runtime or ServiceRuntime(spec)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        owned = not runtime.started
        await runtime.start()
        try:
            async with contextlib.AsyncExitStack() as hooks:
                for hook in spec.lifespan_hooks:
                    await hooks.enter_async_context(hook(app))
                yield
        finally:
            if owned:
                await runtime.stop()

    app = spec.app_class(
        title=spec.title or f"Techbridge {spec.name}",
        description=spec.description,
        version=spec.version,
        lifespan=lifespan,
        generate_unique_id_function=lambda route: f"{route.tags[0] if route.tags else spec.name}-{route.name}",
    )
    app.state.runtime = runtime
    install_problem_handlers(app)
    tracing.instrument_app(app, spec.name)  # spans when traces are exported, inside the request context
    app.add_middleware(RequestContextMiddleware, service=spec.name)
    app.include_router(health_router(runtime))
    for router in spec.routers:
        app.include_router(router)
    if spec.configure_app:
        spec.configure_app(app)
    return app


def health_router(runtime: ServiceRuntime) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health/live", summary="The process is up")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/health/ready", summary="Store reachable, Kafka connected, consumers joined")
    async def ready() -> JSONResponse:
        checks = await runtime.readiness()
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503)

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        if runtime.relay:
            with contextlib.suppress(Exception):
                await runtime.relay.backlog()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def runtime_of(request: Request) -> ServiceRuntime:
    """FastAPI dependency: the runtime of the app serving this request (a coroutine: FastAPI runs
    plain function dependencies in a worker thread)."""
    return request.app.state.runtime


def run_service(build_spec: Callable[[], ServiceSpec]) -> None:
    """Entry point: `python -m techbridge_<service>`. Exit 2 with one line if it cannot start."""
    import uvicorn

    try:
        spec = build_spec()
    except ConfigurationError as exc:
        name = build_spec.__module__.split(".")[0].removeprefix("techbridge_")
        print(f"{name}: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(spec.name, spec.settings.log_level)

    async def serve() -> int:
        try:
            runtime = ServiceRuntime(spec)
            await runtime.start()
        except ConfigurationError as exc:
            print(f"{spec.name}: cannot start: {exc}", file=sys.stderr)
            return 2
        app = create_app(spec, runtime)
        # The runtime is already up (so a bad setting is one line, not a traceback); the
        # app's lifespan still runs the service's own hooks.
        config = uvicorn.Config(
            app, host=spec.settings.host, port=spec.settings.port, lifespan="on",
            log_config=None, access_log=False, timeout_graceful_shutdown=10,
        )
        try:
            await uvicorn.Server(config).serve()
        finally:
            await runtime.stop()
        return 0

    raise SystemExit(asyncio.run(serve()))


def background_loop(name: str, loop: Callable[[ServiceRuntime], Awaitable[None]]):
    """A lifespan hook running `loop(runtime)` as a task for as long as the app lives."""

    @contextlib.asynccontextmanager
    async def hook(app: FastAPI):
        task = asyncio.create_task(loop(app.state.runtime), name=name)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    return hook
