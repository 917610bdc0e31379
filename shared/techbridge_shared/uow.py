"""Unit of work: one database transaction holding the domain change and its events.

    async with runtime.unit_of_work() as uow:
        ...change rows through uow.session...
        uow.publish(event)
        await uow.commit()

Events become outbox rows in the same transaction, so either both the change and its events
are stored or neither is. Only the unit of work commits; leaving the block without commit
rolls back. After a commit the outbox relay is woken so delivery does not wait for a poll.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from .envelope import CloudEvent

if TYPE_CHECKING:
    from .db import Database


class UnitOfWork:
    def __init__(self, db: Database, outbox: Table, on_commit: Callable[[], None] | None = None):
        self._db = db
        self._outbox = outbox
        self._on_commit = on_commit
        self._events: list[CloudEvent] = []
        self.session: AsyncSession

    async def __aenter__(self) -> UnitOfWork:
        await self._db.acquire_writer()
        try:
            self.session = self._db.sessionmaker()
            await self.session.begin()
        except BaseException:
            self._db.release_writer()
            raise
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        try:
            if self.session.in_transaction():
                await self.session.rollback()
        finally:
            try:
                await self.session.close()
            finally:
                self._db.release_writer()

    def publish(self, event: CloudEvent) -> None:
        """Record a fact to be published if, and only if, this unit of work commits."""
        self._events.append(event)

    async def commit(self) -> None:
        if self._events:
            await self.session.execute(insert(self._outbox), [outbox_row(e) for e in self._events])
        await self.session.commit()
        published, self._events = self._events, []
        if published and self._on_commit:
            self._on_commit()

    async def rollback(self) -> None:
        self._events.clear()
        await self.session.rollback()


def outbox_row(event: CloudEvent) -> dict:
    return {
        "event_id": event.id,
        "topic": event.topic,
        "key": event.subject,
        "type": event.type,
        "payload": event.to_json().decode(),
        "created_at": event.time,
    }
