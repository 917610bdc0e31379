"""Idempotency-Key for writes that move money or create deals (IETF httpapi draft semantics).

Same key + same body -> the stored response, effect applied once. Same key + another body ->
422. The response is stored in the same unit of work as the effect, so a crash leaves either
both or neither. Two concurrent requests with one key: the second's insert hits the primary
key, its whole transaction rolls back, and it answers 409 (retry gets the stored response).

    key: str | None = Depends(idempotency_key)
    async with runtime.unit_of_work() as uow:
        if key and (stored := await store.lookup(uow.session, scope=..., key=key, fingerprint=fp)):
            return stored.as_response()
        ...the effect...
        if key:
            await store.remember(uow.session, scope=..., key=key, fingerprint=fp, status=201, body=body)
        await uow.commit()
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, and_, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .envelope import utcnow
from .errors import Conflict, FieldError, ValidationFailed

MAX_KEY_LENGTH = 255


def add_idempotency_table(metadata: MetaData) -> Table:
    return Table(
        "idempotency_keys",
        metadata,
        Column("scope", String(200), primary_key=True),  # the client or user the key belongs to
        Column("key", String(MAX_KEY_LENGTH), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("status", Integer, nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )


def create_idempotency_table() -> None:
    """Alembic operation for a service's migration."""
    from alembic import op

    metadata = MetaData()
    table = add_idempotency_table(metadata)
    metadata.create_all(op.get_bind(), tables=[table])


async def idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="Client-chosen key; a repeat returns the first response"),
    ] = None,
) -> str | None:
    if idempotency_key is None:
        return None
    if not idempotency_key or len(idempotency_key) > MAX_KEY_LENGTH or not idempotency_key.isprintable():
        raise ValidationFailed(
            "Idempotency-Key must be 1-255 printable characters",
            errors=[FieldError(field="header.Idempotency-Key", message="1-255 printable characters")],
        )
    return idempotency_key


def fingerprint(payload: BaseModel | dict[str, Any] | bytes | str) -> str:
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json")
    if isinstance(payload, dict):
        payload = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    if isinstance(payload, str):
        payload = payload.encode()
    return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any

    def as_response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers={"Idempotent-Replayed": "true"})


class IdempotencyStore:
    def __init__(self, table: Table):
        self.table = table

    async def lookup(self, session: AsyncSession, *, scope: str, key: str, fingerprint: str) -> StoredResponse | None:
        t = self.table
        row = (
            await session.execute(
                select(t.c.fingerprint, t.c.status, t.c.body).where(and_(t.c.scope == scope, t.c.key == key))
            )
        ).first()
        if row is None:
            return None
        if row.fingerprint != fingerprint:
            raise ValidationFailed(
                "this Idempotency-Key was already used with a different request body",
                code="idempotency_key_reused",
                errors=[FieldError(field="header.Idempotency-Key", message="reused with a different body")],
            )
        return StoredResponse(status=row.status, body=json.loads(row.body))

    async def remember(
        self, session: AsyncSession, *, scope: str, key: str, fingerprint: str, status: int, body: Any
    ) -> None:
        try:
            await session.execute(
                insert(self.table).values(
                    scope=scope, key=key, fingerprint=fingerprint, status=status,
                    body=json.dumps(body, default=str, ensure_ascii=False), created_at=utcnow(),
                )
            )
        except IntegrityError:
            raise Conflict(
                "another request with this Idempotency-Key is in progress or just finished; retry it",
                code="idempotency_key_in_progress",
            ) from None
