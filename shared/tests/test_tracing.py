"""OpenTelemetry spans and W3C traceparent, without a broker: in-process apps, a stand-in producer.

The whole chain on a real broker through the gateway is tests/deploy/test_traces.py.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from techbridge_shared import tracing
from techbridge_shared.envelope import new_event
from techbridge_shared.errors import install_problem_handlers
from techbridge_shared.http import RequestContextMiddleware
from techbridge_shared.tracing import (
    ServerSpanMiddleware, consuming, current_traceparent, instrument_app, trace_id, traced_producer,
)

INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTEL_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED",
            "OTEL_TRACES_EXPORTER")


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch):
    for name in OTEL_ENV:
        monkeypatch.delenv(name, raising=False)
    tracing.reset()
    yield
    tracing.reset()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    tracing.configure(exporter)
    return exporter


def make_app(service: str = "demo") -> tuple[FastAPI, list[str | None]]:
    """The same middleware order as techbridge_shared.service.create_app."""
    seen: list[str | None] = []
    app = FastAPI()
    install_problem_handlers(app)
    instrument_app(app, service)
    app.add_middleware(RequestContextMiddleware, service=service)

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str):
        seen.append(current_traceparent.get())
        return {"id": thing_id}

    @app.get("/boom")
    async def boom():
        raise RuntimeError("internals")

    @app.get("/health/live")
    async def live():
        return {"status": "ok"}

    return app, seen


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t")


# --- off ------------------------------------------------------------------------------------------
def test_off_unless_an_otlp_endpoint_is_set(monkeypatch):
    assert not tracing.enabled()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert tracing.enabled()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.enabled()
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not tracing.enabled()
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")
    assert tracing.enabled()


async def test_off_installs_nothing_and_keeps_the_w3c_traceparent():
    app, seen = make_app()
    assert not any(m.cls is ServerSpanMiddleware for m in app.user_middleware)
    producer = object()
    assert traced_producer(producer, "demo") is producer
    assert tracing.tracer_for("demo") is None
    async with client_for(app) as c:
        r = await c.get("/things/1", headers={"traceparent": INCOMING})
    assert r.status_code == 200
    assert trace_id(seen[0]) == trace_id(INCOMING) and seen[0] != INCOMING
    event = new_event(service="demo", aggregate="thing", verb="seen", subject="1", data={}, traceparent=INCOMING)
    with consuming("demo", "demo.g", event):
        inside = current_traceparent.get()
    assert trace_id(inside) == trace_id(INCOMING) and inside != INCOMING
    assert current_traceparent.get() is None


def test_the_endpoint_from_the_environment_builds_an_otlp_exporter(monkeypatch):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    tracer = tracing.tracer_for("catalog")
    assert tracer is not None
    provider = tracing._State.providers["catalog"]
    assert provider.resource.attributes["service.name"] == "catalog"
    (processor,) = provider._active_span_processor._span_processors
    assert isinstance(processor, BatchSpanProcessor)
    assert isinstance(processor._batch_processor._exporter, OTLPSpanExporter)


# --- SERVER spans ---------------------------------------------------------------------------------
async def test_a_request_is_a_server_span_under_the_callers_traceparent(spans):
    app, seen = make_app("catalog")
    async with client_for(app) as c:
        r = await c.get("/things/42?x=1", headers={"traceparent": INCOMING})
    assert r.status_code == 200
    (span,) = spans.get_finished_spans()
    ctx = span.get_span_context()
    assert span.kind is SpanKind.SERVER and span.name == "GET /things/{thing_id}"
    assert f"{ctx.trace_id:032x}" == trace_id(INCOMING)
    assert span.parent is not None and f"{span.parent.span_id:016x}" == INCOMING.split("-")[2]
    assert span.attributes["http.route"] == "/things/{thing_id}"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["url.query"] == "x=1"
    assert span.resource.attributes["service.name"] == "catalog"
    # The handler runs with the span's own traceparent: what it publishes names this span.
    assert seen == [f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"]


async def test_a_request_without_traceparent_roots_a_trace_with_the_id_its_logs_carry(spans):
    app, seen = make_app()
    logged: list[str | None] = []

    class Capture(logging.Handler):
        def emit(self, record):
            logged.append(trace_id(current_traceparent.get()))

    handler = Capture()
    access = logging.getLogger("techbridge.access")
    access.addHandler(handler)
    old_level = access.level
    access.setLevel(logging.INFO)
    try:
        async with client_for(app) as c:
            await c.get("/things/1")
            await c.get("/things/2")
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)
    first, second = spans.get_finished_spans()
    assert first.parent is None and second.parent is None
    assert logged == [f"{first.context.trace_id:032x}", f"{second.context.trace_id:032x}"]
    assert first.context.trace_id != second.context.trace_id
    assert trace_id(seen[0]) == logged[0]


async def test_server_errors_mark_the_span_and_probes_are_not_traced(spans):
    app, _ = make_app()
    async with client_for(app) as c:
        assert (await c.get("/boom")).status_code == 500
        assert (await c.get("/health/live")).status_code == 200
        assert (await c.get("/nowhere")).status_code == 404
    boom, missing = spans.get_finished_spans()
    assert boom.name == "GET /boom" and boom.status.status_code is StatusCode.ERROR
    assert boom.attributes["http.response.status_code"] == 500
    assert missing.name == "GET" and missing.status.status_code is StatusCode.UNSET


# --- PRODUCER spans -------------------------------------------------------------------------------
class StandInProducer:
    """Answers `send` with a future the test resolves, like aiokafka's."""

    def __init__(self):
        self.sent: list[dict] = []
        self.client_id = "stand-in"

    async def send(self, topic, value=None, key=None, headers=None):
        future = asyncio.get_running_loop().create_future()
        self.sent.append({"topic": topic, "headers": headers, "future": future})
        return future


class Meta:
    partition, offset = 2, 17


async def test_the_relay_sends_each_event_in_a_producer_span_under_the_events_traceparent(spans):
    event = new_event(service="catalog", aggregate="thing", verb="made", subject="t1", data={}, traceparent=INCOMING)
    inner = StandInProducer()
    producer = traced_producer(inner, "catalog")
    assert producer.client_id == "stand-in"  # everything else is the real producer's
    future = await producer.send(event.topic, value=event.to_json(), key=b"t1", headers=[("content-type", b"x")])
    assert spans.get_finished_spans() == ()  # open until the broker answers
    future.set_result(Meta())
    await asyncio.sleep(0)
    (span,) = spans.get_finished_spans()
    assert span.kind is SpanKind.PRODUCER and span.name == f"send {event.topic}"
    assert f"{span.context.trace_id:032x}" == trace_id(INCOMING)
    assert f"{span.parent.span_id:016x}" == INCOMING.split("-")[2]
    assert span.attributes["messaging.message.id"] == event.id
    assert span.attributes["messaging.destination.name"] == event.topic
    assert span.attributes["messaging.kafka.offset"] == 17
    headers = dict(inner.sent[0]["headers"])
    assert headers["content-type"] == b"x"
    assert headers["traceparent"].decode() == tracing.format_traceparent(span)

    failing = await producer.send(event.topic, value=event.to_json(), key=b"t1")
    failing.set_exception(RuntimeError("broker said no"))
    await asyncio.sleep(0)
    assert spans.get_finished_spans()[-1].status.status_code is StatusCode.ERROR


async def test_an_event_without_traceparent_is_sent_in_a_new_trace(spans):
    event = new_event(service="catalog", aggregate="thing", verb="made", subject="t1", data={})
    assert event.traceparent is None
    future = await traced_producer(StandInProducer(), "catalog").send(event.topic, value=event.to_json())
    future.set_result(Meta())
    await asyncio.sleep(0)
    (span,) = spans.get_finished_spans()
    assert span.parent is None


# --- CONSUMER spans -------------------------------------------------------------------------------
async def test_a_handled_event_is_a_consumer_span_under_the_events_traceparent(spans):
    event = new_event(service="catalog", aggregate="thing", verb="made", subject="t1", data={}, traceparent=INCOMING)
    with consuming("matching", "matching.catalog", event):
        inside = current_traceparent.get()
        follow_up = new_event(service="matching", aggregate="match", verb="found", subject="m1", data={})
    (span,) = spans.get_finished_spans()
    assert span.kind is SpanKind.CONSUMER and span.name == f"process {event.topic}"
    assert span.resource.attributes["service.name"] == "matching"
    assert f"{span.parent.span_id:016x}" == INCOMING.split("-")[2]
    assert span.attributes["messaging.consumer.group.name"] == "matching.catalog"
    assert span.attributes["cloudevents.event_type"] == event.type
    assert inside == tracing.format_traceparent(span) == follow_up.traceparent
    assert current_traceparent.get() is None

    with pytest.raises(ValueError), consuming("matching", "matching.catalog", event):
        raise ValueError("handler failed")
    failed = spans.get_finished_spans()[-1]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.events[0].name == "exception"


# --- CLIENT spans and outgoing calls ------------------------------------------------------------
async def test_an_httpx_call_under_a_span_is_a_client_span_and_the_callee_its_child(spans):
    import socket

    import uvicorn

    callee, _ = make_app("valuation")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(callee, host="127.0.0.1", port=port, lifespan="off", log_config=None))
    server.config.setup_event_loop = lambda: None
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)

    caller = FastAPI()
    instrument_app(caller, "gateway")
    sent: list[str] = []

    @caller.get("/relay")
    async def relay():
        sent.append(tracing.outgoing_traceparent())
        async with httpx.AsyncClient() as http:
            return (await http.get(f"http://127.0.0.1:{port}/things/7")).json()

    try:
        async with client_for(caller) as c:
            assert (await c.get("/relay", headers={"traceparent": INCOMING})).json() == {"id": "7"}
    finally:
        server.should_exit = True
        await task
    by_kind = {s.kind: s for s in spans.get_finished_spans()}
    client_a = by_kind[SpanKind.CLIENT]
    server_a, server_b = sorted((s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER),
                                key=lambda s: s.resource.attributes["service.name"])
    assert server_a.resource.attributes["service.name"] == "gateway"
    assert client_a.resource.attributes["service.name"] == "gateway"
    assert client_a.parent.span_id == server_a.context.span_id
    assert client_a.attributes["http.response.status_code"] == 200
    assert server_b.parent.span_id == client_a.context.span_id
    assert {s.context.trace_id for s in spans.get_finished_spans()} == {int(trace_id(INCOMING), 16)}
    # A call made by hand names the request's span.
    assert sent == [tracing.format_traceparent(server_a)]


def test_outgoing_traceparent_without_spans_continues_the_current_trace():
    token = current_traceparent.set(INCOMING)
    try:
        out = tracing.outgoing_traceparent()
    finally:
        current_traceparent.reset(token)
    assert trace_id(out) == trace_id(INCOMING) and out != INCOMING
    assert tracing.is_valid(tracing.outgoing_traceparent())  # no trace at all: a new one
