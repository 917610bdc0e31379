from __future__ import annotations

import asyncio

import uuid
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, update
from sqlalchemy.exc import DisconnectionError

from techbridge_shared.consumer import Subscription
from techbridge_shared.envelope import CloudEvent, new_event, topic_name, utcnow
from techbridge_shared.service import ServiceRuntime, ServiceSpec, Settings, create_app, runtime_of
from techbridge_shared.settings import load_settings
from techbridge_shared.tables import add_messaging_tables
from techbridge_shared.uow import UnitOfWork

NOTE_RECORDED = "techbridge.probe.note.recorded.v1"
NOTE_TOPIC = topic_name("probe", "note")

metadata = MetaData()
add_messaging_tables(metadata)
notes = Table("notes", metadata, Column("id", String(36), primary_key=True), Column("text", String(500)))
tally = Table("tally", metadata, Column("id", Integer, primary_key=True), Column("count", Integer, nullable=False))
applied = Table(
    "applied", metadata,
    Column("n", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),  # no unique constraint on purpose
    Column("note_id", String(36), nullable=False),
    Column("sent_at", String(40), nullable=False),
    Column("applied_at", String(40), nullable=False),
)


class ProbeSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="PROBE_", extra="forbid", frozen=True)

    consume: bool = Field(default=False, description="Run the tally consumer in this process")
    consumer_group: str = "probe.tally"


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=500)
    id: str | None = None


router = APIRouter(tags=["notes"])


@router.post("/notes", status_code=201)
async def record_note(body: NoteIn, runtime: ServiceRuntime = Depends(runtime_of)) -> dict:
    note_id = body.id or str(uuid.uuid4())
    async with runtime.unit_of_work() as uow:
        await uow.session.execute(insert(notes).values(id=note_id, text=body.text))
        uow.publish(new_event(service="probe", aggregate="note", verb="recorded", subject=note_id,
                              data={"note_id": note_id, "text": body.text}))
        await uow.commit()
    return {"id": note_id}


@router.post("/notes/batch", status_code=201)
async def record_notes(count: int, concurrency: int = 1, runtime: ServiceRuntime = Depends(runtime_of)) -> dict:
    """Record `count` notes, each in its own transaction, `concurrency` at a time (load generation)."""
    remaining = count
    while remaining:
        n = min(concurrency, remaining)
        await asyncio.gather(*(record_note(NoteIn(text="batch"), runtime) for _ in range(n)))
        remaining -= n
    return {"recorded": count}


@router.get("/tally")
async def read_tally(runtime: ServiceRuntime = Depends(runtime_of)) -> dict:
    async with runtime.db.engine.connect() as conn:
        count = (await conn.execute(select(tally.c.count).where(tally.c.id == 1))).scalar() or 0
        rows = (await conn.execute(select(applied.c.event_id, applied.c.note_id))).all()
    per_note: dict[str, int] = {}
    for r in rows:
        per_note[r.note_id] = per_note.get(r.note_id, 0) + 1
    return {"count": count, "applications": len(rows),
            "distinct_events": len({r.event_id for r in rows}), "per_note": per_note}


@router.get("/notes")
async def list_note_ids(runtime: ServiceRuntime = Depends(runtime_of)) -> list[str]:
    async with runtime.db.engine.connect() as conn:
        return list((await conn.execute(select(notes.c.id))).scalars())


@router.get("/outbox")
async def read_outbox(runtime: ServiceRuntime = Depends(runtime_of)) -> dict:
    outbox = runtime.spec.outbox
    async with runtime.db.engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(outbox))).scalar()
        unpublished = (
            await conn.execute(select(func.count()).where(outbox.c.published_at.is_(None)))
        ).scalar()
    return {"total": total, "unpublished": unpublished}


# Event id -> how many times its handler has seen the store "down" (note text "store-down-N").
_store_down_seen: dict[str, int] = {}


async def on_note_recorded(uow: UnitOfWork, event: CloudEvent) -> None:
    text = event.data.get("text", "")
    if text == "fail-always":
        raise ValueError("this note is poison for the tally")
    if text.startswith("store-down-"):
        seen = _store_down_seen.get(event.id, 0)
        if seen < int(text.removeprefix("store-down-")):
            _store_down_seen[event.id] = seen + 1
            raise DisconnectionError("the store dropped the connection")
    s = uow.session
    updated = await s.execute(update(tally).where(tally.c.id == 1).values(count=tally.c.count + 1))
    if updated.rowcount == 0:
        await s.execute(insert(tally).values(id=1, count=1))
    await s.execute(insert(applied).values(
        event_id=event.id, note_id=event.data["note_id"],
        sent_at=event.time.isoformat(), applied_at=utcnow().isoformat(),
    ))


def build_spec(settings: ProbeSettings | None = None) -> ServiceSpec:
    settings = settings or load_settings(ProbeSettings)
    subscriptions = []
    if settings.consume:
        subscriptions.append(Subscription(group=settings.consumer_group, handlers={NOTE_RECORDED: on_note_recorded}))
    return ServiceSpec(
        name="probe",
        settings=settings,
        metadata=metadata,
        migrations_dir=Path(__file__).parent / "migrations",
        routers=[router],
        publishes=[NOTE_TOPIC],
        subscriptions=subscriptions,
    )


def app() -> FastAPI:
    return create_app(build_spec())


@router.get("/latencies")
async def read_latencies(runtime: ServiceRuntime = Depends(runtime_of)) -> list[float]:
    """Milliseconds from each applied event's creation (in the publisher's outbox) to its application."""
    from datetime import datetime

    async with runtime.db.engine.connect() as conn:
        rows = (await conn.execute(select(applied.c.sent_at, applied.c.applied_at))).all()
    return [
        (datetime.fromisoformat(a) - datetime.fromisoformat(s)).total_seconds() * 1000 for s, a in rows
    ]
