"""GET /api/v1/events/stream: platform events as Server-Sent Events, resumable by Last-Event-ID."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from techbridge_shared.errors import FieldError, Problem, ValidationFailed, problem_responses
from techbridge_shared.identity import Identity

from ..domain import events as ev
from ..service.auth import authenticate
from ..service.context import GatewayContext
from ..store import repositories as repo
from .deps import caller, context

router = APIRouter(prefix="/api/v1/events", tags=["events"])


@router.get(
    "/stream", name="stream", summary="Stream events (Server-Sent Events)",
    description=(
        "One SSE message per event the caller may see: `id` is the event's position (send it back as "
        "`Last-Event-ID` to resume after it), `event` its type, `data` the CloudEvent as JSON. Without "
        "Last-Event-ID the stream starts with the next event. Comment lines keep the connection alive. "
        "When the access token expires the stream sends `event: end` and closes; reconnect with a new "
        "token and Last-Event-ID."),
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                     "description": "An endless event stream"}, **problem_responses(401, 422, 429)},
    response_class=StreamingResponse,
)
async def stream(
    request: Request,
    types: str = Query(default="*", max_length=2000, description="Comma-separated event type patterns"),
    last_event_id: str | None = Header(default=None, alias="Last-Event-ID"),
    identity: Identity = Depends(caller),
    ctx: GatewayContext = Depends(context),
):
    patterns = [t.strip() for t in types.split(",") if t.strip()]
    if not patterns or not all(ev.valid_pattern(p) for p in patterns):
        raise ValidationFailed("query.types: event type patterns", errors=[
            FieldError(field="query.types", message="comma-separated patterns like techbridge.vouchers.*")])
    position: int | None = None
    if last_event_id:
        if not last_event_id.isdigit():
            raise ValidationFailed("Last-Event-ID is not an id this stream sent", errors=[
                FieldError(field="header.Last-Event-ID", message="an id this stream sent")])
        position = int(last_event_id)
    if position is None:
        async with ctx.uow() as uow:
            position = await repo.last_event_seq(uow.session)

    async def messages():
        nonlocal position
        yield "retry: 2000\n\n"
        while True:
            async with ctx.uow() as uow:
                rows = await repo.events_after(uow.session, position, 200)
            for row in rows:
                position = row["seq"]
                if ev.type_matches(patterns, row["type"]) and ev.may_see(
                        roles=identity.roles, org=identity.org, type_=row["type"], orgs=row["orgs"]):
                    data = json.dumps(json.loads(row["payload"]), ensure_ascii=False, separators=(",", ":"))
                    yield f"id: {row['seq']}\nevent: {row['type']}\ndata: {data}\n\n"
            if not rows:
                if await request.is_disconnected():
                    return
                try:  # a stream lives no longer than the credential that opened it
                    await authenticate(ctx, request.headers)
                except Problem as exc:
                    yield f"event: end\ndata: {json.dumps({'reason': exc.detail})}\n\n"
                    return
                if not await ctx.wait_events(ctx.settings.stream_heartbeat_s):
                    yield ": keep-alive\n\n"

    return StreamingResponse(messages(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
