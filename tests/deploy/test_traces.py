"""One request through the gateway into a service that publishes an event, consumed by another
service over a real Kafka broker: OpenTelemetry spans of one trace with the right parents.

Everything runs in this process (so the spans land in one InMemorySpanExporter) but talks as in
production: the gateway forwards over real HTTP to the publishing service, which commits the
event to its outbox; the relay sends it to the session's broker; the consuming service's
consumer group applies it. The two services are built from the shared library only (the probe
service's store, a route and event of this test's own).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, Depends
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import insert, select

from techbridge_shared import tracing
from techbridge_shared.consumer import Subscription
from techbridge_shared.envelope import CloudEvent, event_type, new_event, topic_name
from techbridge_shared.service import ServiceRuntime, ServiceSpec, create_app, runtime_of
from techbridge_shared.testing.asgi import serve
from techbridge_shared.testing.kafka_broker import free_port
from techbridge_shared.uow import UnitOfWork

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "platform"))
from techbridge_probe import app as probe  # noqa: E402

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

# A service and topic of this test's own, so other suites' records on the shared broker are
# never replayed into it.
SERVICE = f"tracedemo{uuid.uuid4().hex[:6]}"
RECORDED = event_type(SERVICE, "note", "recorded")
TOPIC = topic_name(SERVICE, "note")
INTERNAL_SECRET = "test-internal-secret-shared-by-gateway-and-services"
CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


router = APIRouter(prefix="/api/v1/catalog")


@router.post("/notes", status_code=201)
async def record_note(body: probe.NoteIn, runtime: ServiceRuntime = Depends(runtime_of)) -> dict:
    note_id = str(uuid.uuid4())
    async with runtime.unit_of_work() as uow:
        await uow.session.execute(insert(probe.notes).values(id=note_id, text=body.text))
        uow.publish(new_event(service=SERVICE, aggregate="note", verb="recorded", subject=note_id,
                              data={"note_id": note_id, "text": body.text}))
        await uow.commit()
    return {"id": note_id}


def probe_settings(tmp_path: Path, name: str, kafka: str) -> probe.ProbeSettings:
    return probe.ProbeSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / name}.db", kafka_bootstrap_servers=kafka,
        data_dir=str(tmp_path / name), internal_auth_secret=INTERNAL_SECRET,
    )


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.configure(exporter)
    yield exporter
    tracing.reset()


async def test_one_request_is_one_trace_from_the_gateway_to_the_consumer(tmp_path, kafka_bootstrap, spans):
    from techbridge_gateway.config import Settings as GatewaySettings
    from techbridge_gateway.main import create_app as create_gateway

    handled: list[CloudEvent] = []

    async def on_recorded(uow: UnitOfWork, event: CloudEvent) -> None:
        handled.append(event)
        await probe.on_note_recorded(uow, event)

    publisher = create_app(ServiceSpec(
        name=f"{SERVICE}-notes", settings=probe_settings(tmp_path, "notes", kafka_bootstrap),
        metadata=probe.metadata, migrations_dir=Path(probe.__file__).parent / "migrations",
        routers=[router], publishes=[TOPIC],
    ))
    consumer = create_app(ServiceSpec(
        name=f"{SERVICE}-tally", settings=probe_settings(tmp_path, "tally", kafka_bootstrap),
        metadata=probe.metadata, migrations_dir=Path(probe.__file__).parent / "migrations",
        subscriptions=[Subscription(group=f"{SERVICE}.tally", handlers={RECORDED: on_recorded})],
    ))
    async with contextlib.AsyncExitStack() as stack:
        publisher_url = await stack.enter_async_context(serve(publisher, lifespan="on"))
        await stack.enter_async_context(consumer.router.lifespan_context(consumer))
        nowhere = f"http://127.0.0.1:{free_port()}"
        gateway = create_gateway(GatewaySettings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
            kafka_bootstrap_servers="127.0.0.1:1",  # its event log is not what is traced here
            data_dir=str(tmp_path / "gateway"), internal_auth_secret=INTERNAL_SECRET,
            password_time_cost=1, password_memory_kib=1024, openapi_refresh_s=3600,
            catalog_url=publisher_url, matching_url=nowhere, valuation_url=nowhere, vouchers_url=nowhere,
        ))
        await stack.enter_async_context(gateway.router.lifespan_context(gateway))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gateway"))
        secrets = json.loads((tmp_path / "gateway" / "dev-clients.json").read_text())
        r = await client.post("/auth/token", data={"grant_type": "client_credentials"},
                              auth=("dev-institution", secrets["dev-institution"]))
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]

        r = await client.post("/api/v1/catalog/notes", json={"text": "traced"},
                              headers={"Authorization": f"Bearer {token}", "traceparent": CALLER})
        assert r.status_code == 201, r.text
        note_id = r.json()["id"]

        deadline = time.monotonic() + 90
        while not any(s.kind is SpanKind.CONSUMER for s in spans.get_finished_spans()):
            assert time.monotonic() < deadline, "the event was never consumed"
            await asyncio.sleep(0.1)
        async with consumer.state.runtime.db.engine.connect() as conn:
            applied = (await conn.execute(select(probe.applied.c.note_id))).scalars().all()
        assert applied == [note_id]

    trace = f"{int(CALLER.split('-')[1], 16):032x}"
    ours = [s for s in spans.get_finished_spans() if f"{s.context.trace_id:032x}" == trace]

    def one(kind: SpanKind, service: str):
        found = [s for s in ours if s.kind is kind and s.resource.attributes["service.name"] == service]
        assert len(found) == 1, f"{kind} spans of {service}: {[s.name for s in found]}; all: {[s.name for s in ours]}"
        return found[0]

    def attempts(kind: SpanKind, service: str):
        """Each attempt is a span of its own (a send the broker refused and retried, a batch
        rolled back and applied one by one); the last one succeeded."""
        found = sorted((s for s in ours if s.kind is kind and s.resource.attributes["service.name"] == service),
                       key=lambda s: s.start_time)
        assert found, f"no {kind} span of {service}; all: {[s.name for s in ours]}"
        assert found[-1].status.status_code is not StatusCode.ERROR, found[-1].status
        return found

    gateway_server = one(SpanKind.SERVER, "gateway")
    notes_server = one(SpanKind.SERVER, f"{SERVICE}-notes")
    sends = attempts(SpanKind.PRODUCER, f"{SERVICE}-notes")
    processes = attempts(SpanKind.CONSUMER, f"{SERVICE}-tally")
    send, process = sends[-1], processes[-1]
    # A CLIENT span between the gateway and the service when its client is recorded (httpx).
    clients = [s for s in ours if s.kind is SpanKind.CLIENT]
    assert len(ours) == 2 + len(sends) + len(processes) + len(clients) and len(clients) <= 1, [s.name for s in ours]

    assert gateway_server.name == "POST /api/v1/catalog/{path:path}"
    assert gateway_server.parent.span_id == int(CALLER.split("-")[2], 16)
    assert notes_server.name == "POST /api/v1/catalog/notes"
    if clients:
        assert clients[0].resource.attributes["service.name"] == "gateway"
        assert clients[0].parent.span_id == gateway_server.context.span_id
        assert notes_server.parent.span_id == clients[0].context.span_id
    else:
        assert notes_server.parent.span_id == gateway_server.context.span_id
    assert notes_server.start_time >= gateway_server.start_time
    for send in sends:
        assert send.name == f"send {TOPIC}" and send.parent.span_id == notes_server.context.span_id
    for process in processes:
        assert process.name == f"process {TOPIC}" and process.parent.span_id == notes_server.context.span_id
    assert sends[-1].attributes["messaging.message.id"] == processes[-1].attributes["messaging.message.id"] == handled[0].id
    # Our own propagation names the same spans: the event carries the request's span.
    assert handled[0].traceparent == tracing.format_traceparent(notes_server)
