"""Calls to the public API on behalf of the signed-in person, through the gateway's own routing.

The console holds no privileges of its own: every call carries the person's token and goes
through the same ASGI app a partner reaches over the network (authentication, rate limits,
identity signing, forwarding to the service), only without a socket. A refusal comes back as
`ApiError` carrying the problem+json, so pages can show its detail and per-field errors.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI

INTERNAL_BASE = "http://gateway.internal"
# Leading segments of a problem's field path that name where the value was, not which value.
ENVELOPES = {"body", "query", "path", "header", "achievement", "demand", "offer", "redemption"}


class ApiError(Exception):
    """The API refused a request (or could not be reached): the problem+json as received."""

    def __init__(self, status: int, problem: dict[str, Any] | None = None):
        self.status = status
        self.problem = problem or {}
        super().__init__(self.detail)

    @property
    def code(self) -> str:
        return str(self.problem.get("code") or "")

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or self.problem.get("title") or f"HTTP {self.status}")

    def field_errors(self) -> dict[str, str]:
        """`body.asking_price.amount` -> `asking_price`: the form field a message belongs next to."""
        out: dict[str, str] = {}
        for e in self.problem.get("errors") or []:
            path = [p for p in str(e.get("field", "")).split(".") if p]
            while len(path) > 1 and path[0] in ENVELOPES:
                path = path[1:]
            name = path[0] if path else "_"
            out.setdefault(name, str(e.get("message", "")))
        return out


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
        return body if isinstance(body, dict) else {"detail": str(body)}
    except ValueError:
        return {"detail": response.text[:300] or response.reason_phrase}


class Api:
    """One person's view of the public API for the duration of one page request."""

    def __init__(self, app: FastAPI, token: str | None):
        self.app = app
        self.token = token
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 0)), base_url=INTERNAL_BASE, timeout=30)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return {**headers, **(extra or {})}

    async def request(self, method: str, path: str, *, params: Any = None, json_body: Any = None,
                      data: dict | None = None, headers: dict[str, str] | None = None,
                      idempotent: bool = False) -> httpx.Response:
        extra = dict(headers or {})
        if idempotent:
            extra.setdefault("Idempotency-Key", str(uuid.uuid4()))
        try:
            r = await self._client.request(method, path, params=params, json=json_body, data=data,
                                           headers=self._headers(extra))
        except httpx.HTTPError as exc:  # pragma: no cover - in-process calls rarely fail this way
            raise ApiError(503, {"detail": f"the platform could not be reached ({exc.__class__.__name__})"}) from None
        if r.status_code >= 400:
            raise ApiError(r.status_code, _problem(r))
        return r

    async def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v not in (None, "", [])}
        return (await self.request("GET", path, params=clean)).json()

    async def get_all(self, path: str, *, pages: int = 20, **params: Any) -> tuple[dict, list[dict]]:
        """Every item of a cursor-paginated list, at most `pages` pages of 100; the first answer's
        other keys (balances, ...) beside them."""
        first: dict | None = None
        items: list[dict] = []
        cursor = None
        for _ in range(pages):
            answer = await self.get(path, limit=100, cursor=cursor, **params)
            first = first or answer
            items += answer["items"]
            cursor = answer.get("next_cursor")
            if not cursor:
                break
        return first or {}, items

    async def post(self, path: str, body: Any = None, *, idempotent: bool = False,
                   headers: dict[str, str] | None = None) -> Any:
        r = await self.request("POST", path, json_body=body, idempotent=idempotent, headers=headers)
        return r.json() if r.content else None

    async def patch(self, path: str, body: Any, *, headers: dict[str, str] | None = None) -> Any:
        return (await self.request("PATCH", path, json_body=body, headers=headers)).json()

    async def sign_in(self, email: str, password: str) -> dict[str, Any]:
        r = await self.request("POST", "/auth/token",
                               data={"grant_type": "password", "username": email, "password": password})
        return r.json()


async def stream(app: FastAPI, path: str, query: str, headers: dict[str, str]) -> AsyncIterator[bytes]:
    """GET a streaming route of the app in-process, yielding its body as it is produced.

    httpx's ASGI transport waits for the whole body, which never comes from an event stream, so
    this speaks ASGI directly. Raises ApiError (before the first chunk) when the route refuses.
    """
    messages: asyncio.Queue[dict] = asyncio.Queue()
    gone = asyncio.Event()
    asked = False

    async def receive() -> dict:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        await messages.put(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 0), "server": ("gateway.internal", 80),
    }

    async def run() -> None:
        try:
            await app(scope, receive, send)
        finally:
            await messages.put({"type": "console.done"})

    task = asyncio.create_task(run())
    try:
        start = await messages.get()
        if start.get("type") != "http.response.start":
            raise ApiError(502, {"detail": "the event stream ended before it started"})
        status = start["status"]
        if status >= 400:
            body = b""
            while True:
                m = await messages.get()
                if m.get("type") != "http.response.body":
                    break
                body += m.get("body", b"")
                if not m.get("more_body"):
                    break
            try:
                problem = json.loads(body)
            except ValueError:
                problem = {"detail": body.decode(errors="replace")[:300]}
            raise ApiError(status, problem if isinstance(problem, dict) else {})
        while True:
            m = await messages.get()
            if m.get("type") != "http.response.body":
                return
            if m.get("body"):
                yield m["body"]
            if not m.get("more_body"):
                return
    finally:
        gone.set()
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
