"""Keeps each service's OpenAPI document (fetched, cached in memory and in the store, refreshed)
and serves the merged one; a service that is down keeps its last known document."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ..domain.openapi import merge
from ..service.auth import now_utc
from ..service.context import GatewayContext
from ..store import repositories as repo

log = logging.getLogger(__name__)


class OpenApiAggregator:
    def __init__(self, ctx: GatewayContext, app: FastAPI, clients: dict[str, httpx.AsyncClient]):
        self.ctx = ctx
        self.app = app
        self.clients = clients
        self.documents: dict[str, dict[str, Any] | None] = {name: None for name in clients}
        self.unavailable: set[str] = set(clients)
        self._merged: dict[str, Any] | None = None
        self._gateway_doc: dict[str, Any] | None = None
        self._task: asyncio.Task | None = None
        self._reported: set[str] = set()

    def gateway_document(self) -> dict[str, Any]:
        if self._gateway_doc is None:
            self._gateway_doc = get_openapi(
                title=self.app.title, version=self.app.version, routes=self.app.routes,
                description=self.app.description,
            )
        return self._gateway_doc

    def merged(self) -> dict[str, Any]:
        if self._merged is None:
            self._merged = merge(
                self.gateway_document(), self.documents, server_url=self.ctx.settings.public_url,
                unavailable=sorted(self.unavailable),
            )
        return self._merged

    async def load_cached(self) -> None:
        try:
            async with self.ctx.uow() as uow:
                cached = await repo.cached_documents(uow.session)
        except Exception:
            log.warning("could not read cached OpenAPI documents", exc_info=True)
            return
        for name, text in cached.items():
            if name in self.documents and self.documents[name] is None:
                self.documents[name] = json.loads(text)
        self._merged = None

    async def refresh(self) -> None:
        results = await asyncio.gather(*(self._fetch(n, c) for n, c in self.clients.items()))
        changed = []
        for name, doc in results:
            if doc is None:
                self.unavailable.add(name)
                continue
            self.unavailable.discard(name)
            self._reported.discard(name)
            if doc != self.documents.get(name):
                self.documents[name] = doc
                changed.append(name)
        self._merged = None
        if changed:
            try:
                async with self.ctx.uow() as uow:
                    for name in changed:
                        await repo.store_document(uow.session, name, json.dumps(self.documents[name]), now_utc())
                    await uow.commit()
            except Exception:
                log.warning("could not cache OpenAPI documents", exc_info=True)

    async def _fetch(self, name: str, client: httpx.AsyncClient) -> tuple[str, dict | None]:
        try:
            r = await client.get("/openapi.json", timeout=5)
            r.raise_for_status()
            doc = r.json()
            return name, doc if isinstance(doc, dict) and "paths" in doc else None
        except Exception as exc:
            if name not in self._reported:  # once per outage, not on every refresh
                self._reported.add(name)
                log.info("OpenAPI of %s not available: %s", name, exc)
            return name, None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="gateway-openapi")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        await self.load_cached()
        while True:
            await self.refresh()
            # Refresh quickly while a service is missing, then at the configured pace.
            await asyncio.sleep(min(5.0, self.ctx.settings.openapi_refresh_s) if self.unavailable
                                else self.ctx.settings.openapi_refresh_s)
