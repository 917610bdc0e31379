"""What every vouchers route shares: money on the wire, Idempotency-Key handling, responses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from techbridge_shared.errors import Problem, problem_responses
from techbridge_shared.identity import Identity
from techbridge_shared.idempotency import fingerprint, idempotency_key
from techbridge_shared.money import Money
from techbridge_shared.pagination import encode_cursor
from techbridge_shared.service import ServiceRuntime, runtime_of

from ..service_layer.common import Actor
from ..store.transact import IdempotencyRequest, transact

PREFIX = "/api/v1/vouchers"

MONEY_ERRORS = problem_responses(400, 401, 403, 404, 409, 422)
READ_ERRORS = problem_responses(401, 403, 404, 422)


class Schema(BaseModel):
    model_config = ConfigDict(frozen=True)


class IdempotencyKeyRequired(Problem):
    status, code = 400, "idempotency_key_required"


async def required_idempotency_key(key: str | None = Depends(idempotency_key)) -> str:
    """Money-moving writes must carry an Idempotency-Key header (400 otherwise)."""
    if key is None:
        raise IdempotencyKeyRequired("this request moves money: send an Idempotency-Key header so a retry "
                                     "cannot apply it twice")
    return key


def idempotency_for(request: Request, identity: Identity, key: str, body: BaseModel | dict | None
                    ) -> IdempotencyRequest:
    """Keys belong to the calling client; the fingerprint covers the operation and the body, so
    the same key on another endpoint or with another body is refused (422)."""
    scope = identity.client_id or identity.sub
    payload = body.model_dump(mode="json") if isinstance(body, BaseModel) else (body or {})
    return IdempotencyRequest(scope=scope, key=key, fingerprint=fingerprint(
        {"method": request.method, "path": request.url.path, "body": payload}))


async def money_command(
    request: Request,
    runtime: ServiceRuntime,
    identity: Identity,
    key: str,
    body: BaseModel | dict | None,
    work: Callable[..., Awaitable[Any]],
    present: Callable[[Any], BaseModel],
    status: int = 200,
    hot_path: bool = False,
) -> JSONResponse:
    outcome = await transact(
        runtime, lambda repo, uow: work(repo, uow, Actor.of(identity)),
        present=lambda result: present(result).model_dump(mode="json"), status=status,
        idempotency=idempotency_for(request, identity, key, body), hot_path=hot_path,
    )
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return JSONResponse(outcome.body, status_code=outcome.status, headers=headers)


async def command(runtime: ServiceRuntime, identity: Identity, work, present, status: int = 200) -> JSONResponse:
    outcome = await transact(runtime, lambda repo, uow: work(repo, uow, Actor.of(identity)),
                             present=lambda result: present(result).model_dump(mode="json"), status=status)
    return JSONResponse(outcome.body, status_code=outcome.status)


def after_key(cursor: dict | None) -> tuple[str, str] | None:
    if not cursor:
        return None
    try:
        return str(cursor["t"]), str(cursor["id"])
    except KeyError:
        from techbridge_shared.errors import FieldError, ValidationFailed
        raise ValidationFailed("cursor is not one this API issued",
                               errors=[FieldError(field="query.cursor", message="foreign cursor")]) from None


def page_of(items: list, limit: int, time_of: Callable[[Any], datetime], convert: Callable[[Any], Any],
            id_of: Callable[[Any], str] = lambda item: item.id) -> dict:
    has_more = len(items) > limit
    items = items[:limit]
    cursor = (encode_cursor({"t": time_of(items[-1]).isoformat(), "id": id_of(items[-1])})
              if has_more and items else None)
    return {"items": [convert(i) for i in items], "next_cursor": cursor}


def money_of(amount: int, currency: str) -> Money:
    return Money(amount=amount, currency=currency)


MoneyIn = Money
ReasonField = Field(default="", max_length=2000, description="Why; kept in the journal and the events")

__all__ = [
    "PREFIX", "MONEY_ERRORS", "READ_ERRORS", "Schema", "required_idempotency_key", "money_command", "command",
    "after_key", "page_of", "money_of", "MoneyIn", "ReasonField", "runtime_of",
]
