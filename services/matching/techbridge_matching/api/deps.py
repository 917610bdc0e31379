"""Dependencies the routes share: the engine, the clock, and idempotent writes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from techbridge_shared.identity import Identity
from techbridge_shared.idempotency import IdempotencyStore, fingerprint
from techbridge_shared.service import ServiceRuntime
from techbridge_shared.uow import UnitOfWork

from ..store.tables import idempotency_keys
from ..usecases.engine import MatchingEngine

IDEMPOTENCY = IdempotencyStore(idempotency_keys)


async def engine_of(request: Request) -> MatchingEngine:
    return request.app.state.engine


async def now_of(request: Request) -> datetime:
    """The app's clock (tests replace `app.state.clock` to move through notice periods)."""
    return request.app.state.clock().astimezone(UTC)


async def notice_days_of(request: Request) -> int:
    return request.app.state.runtime.settings.public_notice_days


async def idempotent_write(
    request: Request,
    runtime: ServiceRuntime,
    identity: Identity,
    key: str | None,
    payload: Any,
    action: Callable[[UnitOfWork], Awaitable[dict]],
    status: int = 200,
) -> JSONResponse:
    """Run `action` (which must not commit) once per Idempotency-Key; replay its response."""
    scope = f"{identity.client_id or identity.sub}"
    fp = fingerprint({"method": request.method, "path": request.url.path, "body": payload})
    async with runtime.unit_of_work() as uow:
        if key and (stored := await IDEMPOTENCY.lookup(uow.session, scope=scope, key=key, fingerprint=fp)):
            return stored.as_response()
        body = await action(uow)
        if key:
            await IDEMPOTENCY.remember(uow.session, scope=scope, key=key, fingerprint=fp, status=status, body=body)
        await uow.commit()
    return JSONResponse(body, status_code=status)
