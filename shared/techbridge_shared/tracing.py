"""Traces that follow one request from the gateway through a service, into its events and into
the handlers that consume them.

Two layers, with the same ids:

- **W3C Trace Context**, always on: every HTTP request and every handled event runs with a
  `traceparent` (`current_traceparent`); events carry the one they were created under (the
  CloudEvents `traceparent` extension); logs carry its trace id.
- **OpenTelemetry spans**, exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and `OTEL_SDK_DISABLED` is not `true`; otherwise
  nothing below is installed and the SDK is never imported. Each process names itself by its
  service (`service.name` resource; `OTEL_RESOURCE_ATTRIBUTES` adds to it). Spans:
    * SERVER, one per HTTP request (`instrument_app`, health and metrics excepted), the child of
      the caller's `traceparent`, or the root of a new trace that keeps the trace id the
      request's logs already carry;
    * CLIENT, one per outgoing httpx request made under a span (e.g. the gateway's webhooks),
      which sends its own `traceparent` so the callee's server span is its child; a call made
      with another client sends `outgoing_traceparent()`, the current span;
    * PRODUCER, one per event the outbox relay sends (`traced_producer`), the child of the
      event's `traceparent`, ending when the broker acknowledged it; the record also gets a
      `traceparent` header naming it;
    * CONSUMER, one per handled event (`consuming`), the child of the event's `traceparent`.
  While a span is open `current_traceparent` is that span, so an event a handler publishes
  names the span that caused it. Standard `OTEL_*` settings (sampler, exporter headers,
  timeouts, batch sizes) apply as the SDK documents them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SDK is imported only when traces are exported
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

_TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

current_traceparent: ContextVar[str | None] = ContextVar("traceparent", default=None)


# --- W3C Trace Context ----------------------------------------------------------------------------
def is_valid(traceparent: str | None) -> bool:
    if not traceparent:
        return False
    m = _TRACEPARENT_RE.match(traceparent.strip().lower())
    return bool(m) and m.group(1) != "ff" and m.group(2) != "0" * 32 and m.group(3) != "0" * 16


def child_traceparent(incoming: str | None) -> str:
    """A span under `incoming` (same trace id, new span id), or the root of a new trace."""
    if incoming and is_valid(incoming):
        _version, trace, _parent, flags = incoming.strip().lower().split("-")
        return f"00-{trace}-{_span_id()}-{flags}"
    return f"00-{_trace_id()}-{_span_id()}-01"


# Ids are random but need not be secret (as OpenTelemetry's own generator): the process's PRNG
# costs a fraction of a system call per request. Zero is not a valid id.
def _span_id() -> str:
    return f"{random.getrandbits(64) or 1:016x}"


def _trace_id() -> str:
    return f"{random.getrandbits(128) or 1:032x}"


def trace_id(traceparent: str | None) -> str | None:
    return traceparent.split("-")[1] if traceparent and is_valid(traceparent) else None


# --- OpenTelemetry: set-up ------------------------------------------------------------------------
class _State:
    exporter: SpanExporter | None = None  # set by configure(); else OTLP from the environment
    simple: bool = False  # export each span as it ends (tests) instead of in batches
    forced: bool = False
    providers: dict[str, TracerProvider] = {}
    httpx_patched: bool = False


# The tracer of the span that is current in this context (server or consumer), so an outgoing
# call made under it is recorded by the same service.
_active_tracer: ContextVar[Tracer | None] = ContextVar("otel_active_tracer", default=None)
# A root span started for a request without a traceparent takes the trace id its logs already
# carry (see _IdGenerator).
_adopt_trace_id: ContextVar[int | None] = ContextVar("otel_adopt_trace_id", default=None)


def exporting_from_environment() -> bool:
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def enabled() -> bool:
    """Whether spans are recorded and exported in this process."""
    return _State.forced or exporting_from_environment()


def configure(exporter: SpanExporter, *, simple: bool = True) -> None:
    """Export spans to `exporter` instead of OTLP (tests: InMemorySpanExporter; tools).

    Applies to the apps, relays and consumers created after the call."""
    reset()
    _State.exporter, _State.simple, _State.forced = exporter, simple, True


def reset() -> None:
    """Flush and forget every tracer provider; back to the environment's settings."""
    for provider in _State.providers.values():
        with contextlib.suppress(Exception):
            provider.shutdown()
    _State.providers = {}
    _State.exporter, _State.simple, _State.forced = None, False, False


def tracer_for(service: str) -> Tracer | None:
    """The tracer of `service` (its own provider and `service.name`), or None when off."""
    if not enabled():
        return None
    provider = _State.providers.get(service)
    if provider is None:
        provider = _State.providers[service] = _new_provider(service)
        _patch_httpx()
    return provider.get_tracer("techbridge_shared.tracing")


def _new_provider(service: str) -> TracerProvider:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class _IdGenerator(RandomIdGenerator):
        def generate_trace_id(self) -> int:
            return _adopt_trace_id.get() or super().generate_trace_id()

    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.namespace": "techbridge"}),
        id_generator=_IdGenerator(),
    )
    exporter = _State.exporter
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers, timeout from OTEL_EXPORTER_OTLP_*
    provider.add_span_processor(SimpleSpanProcessor(exporter) if _State.simple else BatchSpanProcessor(exporter))
    return provider


# --- W3C <-> OpenTelemetry ------------------------------------------------------------------------
def format_traceparent(span: Span) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def _parent_context(traceparent: str | None):
    """An OpenTelemetry context whose (remote) parent is `traceparent`; None for a new root."""
    if not is_valid(traceparent):
        return None
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    _version, tid, sid, flags = traceparent.strip().lower().split("-")
    parent = SpanContext(trace_id=int(tid, 16), span_id=int(sid, 16), is_remote=True,
                         trace_flags=TraceFlags(int(flags, 16) & 0x01))
    return trace.set_span_in_context(NonRecordingSpan(parent))


@contextlib.contextmanager
def _activated(tracer: Tracer, span: Span) -> Iterator[Span]:
    """Make `span` current for OpenTelemetry and for `current_traceparent`."""
    from opentelemetry import trace

    trace_token = current_traceparent.set(format_traceparent(span))
    tracer_token = _active_tracer.set(tracer)
    try:
        with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            yield span
    finally:
        _active_tracer.reset(tracer_token)
        current_traceparent.reset(trace_token)


def _fail(span: Span, exc: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))


# --- SERVER spans ---------------------------------------------------------------------------------
def instrument_app(app, service: str) -> None:
    """A SERVER span per HTTP request of `app`; nothing at all when traces are off.

    Added before the request-context middleware, so it runs inside it (request id and access
    log around it)."""
    if enabled():
        app.add_middleware(ServerSpanMiddleware, service=service)


_UNTRACED_PREFIXES = ("/health", "/metrics")


class ServerSpanMiddleware:
    def __init__(self, app, service: str):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(_UNTRACED_PREFIXES):
            return await self.app(scope, receive, send)
        tracer = tracer_for(self.service)
        if tracer is None:
            return await self.app(scope, receive, send)
        from opentelemetry.trace import SpanKind, Status, StatusCode

        incoming = None
        user_agent = None
        for name, value in scope.get("headers", []):
            if name == b"traceparent":
                incoming = value.decode("latin-1")
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")[:256]
        parent = _parent_context(incoming)
        adopt = None
        if parent is None:  # a new trace: keep the id the request's logs already carry
            logged = trace_id(current_traceparent.get())
            adopt = _adopt_trace_id.set(int(logged, 16) if logged else None)
        method = scope.get("method", "")
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": path,
            "url.scheme": scope.get("scheme", "http"),
        }
        if scope.get("query_string"):
            attributes["url.query"] = scope["query_string"].decode("latin-1")[:1024]
        if scope.get("client"):
            attributes["client.address"] = scope["client"][0]
        if scope.get("server"):
            attributes["server.address"], attributes["server.port"] = scope["server"][0], scope["server"][1]
        if user_agent:
            attributes["user_agent.original"] = user_agent
        try:
            span = tracer.start_span(method or "HTTP", context=parent, kind=SpanKind.SERVER, attributes=attributes)
        finally:
            if adopt is not None:
                _adopt_trace_id.reset(adopt)
        status = 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            with _activated(tracer, span):
                await self.app(scope, receive, send_status)
        except BaseException as exc:
            _fail(span, exc)
            raise
        finally:
            route = _route_template(scope)
            if route:
                span.set_attribute("http.route", route)
                span.update_name(f"{method} {route}")
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()


def _route_template(scope) -> str | None:
    route = scope.get("route")
    if route is None and scope.get("endpoint") is not None:  # a plain Starlette route
        router = getattr(scope.get("app"), "router", None)
        route = next((r for r in getattr(router, "routes", ()) if getattr(r, "endpoint", None) is scope["endpoint"]), None)
    return getattr(route, "path", None)


# --- CLIENT spans ---------------------------------------------------------------------------------
def outgoing_traceparent() -> str:
    """The traceparent to send with an outgoing call made by hand (not through httpx, whose
    calls get CLIENT spans of their own): the current span, so the callee's span is its child;
    a new span id under the current trace when spans are not exported."""
    from_span = None
    if _active_tracer.get() is not None:
        from opentelemetry import trace

        span = trace.get_current_span()
        if span.get_span_context().is_valid:
            from_span = format_traceparent(span)
    return from_span or child_traceparent(current_traceparent.get())


# --- CLIENT spans (httpx) ---------------------------------------------------------------------------
def _patch_httpx() -> None:
    """Record outgoing httpx requests made under a span, and send them their own traceparent."""
    httpx = sys.modules.get("httpx")  # only in a process that uses it (imported by then)
    if _State.httpx_patched or httpx is None:
        return
    original = httpx.AsyncHTTPTransport.handle_async_request

    async def handle_async_request(self, request):
        tracer = _active_tracer.get()
        if tracer is None or not enabled():
            return await original(self, request)
        from opentelemetry.trace import SpanKind, Status, StatusCode

        url = request.url
        span = tracer.start_span(request.method, kind=SpanKind.CLIENT, attributes={
            "http.request.method": request.method, "server.address": url.host,
            "server.port": url.port or (443 if url.scheme == "https" else 80), "url.full": str(url.copy_with(query=None)),
        })
        request.headers["traceparent"] = format_traceparent(span)
        try:
            response = await original(self, request)
        except BaseException as exc:
            _fail(span, exc)
            span.end()
            raise
        span.set_attribute("http.response.status_code", response.status_code)
        if response.status_code >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        return response

    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request
    _State.httpx_patched = True


# --- PRODUCER spans -------------------------------------------------------------------------------
def traced_producer(producer, service: str):
    """`producer` itself when traces are off; else one whose `send` records a PRODUCER span per
    event, parented to the event's traceparent and ended when the broker answers."""
    tracer = tracer_for(service)
    return producer if tracer is None else _TracedProducer(producer, tracer)


class _TracedProducer:
    def __init__(self, producer, tracer: Tracer):
        self._producer = producer
        self._tracer = tracer

    def __getattr__(self, name):
        return getattr(self._producer, name)

    async def send(self, topic, value=None, key=None, headers=None, **kwargs):
        from opentelemetry.trace import SpanKind

        event: dict[str, Any] = {}
        with contextlib.suppress(ValueError, TypeError):
            decoded = json.loads(value) if value is not None else {}
            event = decoded if isinstance(decoded, dict) else {}
        attributes: dict[str, Any] = {
            "messaging.system": "kafka", "messaging.operation.type": "send", "messaging.operation.name": "send",
            "messaging.destination.name": topic,
        }
        attributes.update(_event_attributes(event))
        if key is not None:
            attributes["messaging.kafka.message.key"] = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        traceparent = event.get("traceparent")
        span = self._tracer.start_span(f"send {topic}", context=_parent_context(traceparent if isinstance(traceparent, str) else None),
                                       kind=SpanKind.PRODUCER, attributes=attributes)
        headers = [*(headers or ()), ("traceparent", format_traceparent(span).encode())]
        try:
            future = await self._producer.send(topic, value=value, key=key, headers=headers, **kwargs)
        except BaseException as exc:
            _fail(span, exc)
            span.end()
            raise
        future.add_done_callback(lambda f: _acknowledged(span, f))
        return future


def _acknowledged(span: Span, future) -> None:
    if future.cancelled():
        span.set_attribute("messaging.send.cancelled", True)
    elif future.exception() is not None:
        _fail(span, future.exception())
    else:
        meta = future.result()
        with contextlib.suppress(AttributeError):
            span.set_attribute("messaging.destination.partition.id", str(meta.partition))
            span.set_attribute("messaging.kafka.offset", meta.offset)
    span.end()


def _event_attributes(event) -> dict[str, Any]:
    get = event.get if isinstance(event, dict) else lambda k: getattr(event, k, None)
    attributes = {}
    for attr, field in (("messaging.message.id", "id"), ("cloudevents.event_id", "id"),
                        ("cloudevents.event_type", "type"), ("cloudevents.event_source", "source"),
                        ("cloudevents.event_subject", "subject")):
        value = get(field)
        if isinstance(value, str):
            attributes[attr] = value
    return attributes


# --- CONSUMER spans -------------------------------------------------------------------------------
@contextlib.contextmanager
def consuming(service: str, group: str, event) -> Iterator[None]:
    """Run a handler of `event` inside the event's trace: a CONSUMER span when traces are on,
    else a traceparent under the event's; what the handler publishes continues that trace."""
    tracer = tracer_for(service)
    if tracer is None:
        token = current_traceparent.set(child_traceparent(event.traceparent))
        try:
            yield
        finally:
            current_traceparent.reset(token)
        return
    from opentelemetry.trace import SpanKind

    from .envelope import topic_for_type

    topic = event.type
    with contextlib.suppress(ValueError):
        topic = topic_for_type(event.type)
    attributes: dict[str, Any] = {
        "messaging.system": "kafka", "messaging.operation.type": "process", "messaging.operation.name": "process",
        "messaging.consumer.group.name": group, "messaging.destination.name": topic,
        **_event_attributes(event),
    }
    span = tracer.start_span(f"process {topic}", context=_parent_context(event.traceparent),
                             kind=SpanKind.CONSUMER, attributes=attributes)
    try:
        with _activated(tracer, span):
            yield
    except BaseException as exc:
        _fail(span, exc)
        raise
    finally:
        span.end()
