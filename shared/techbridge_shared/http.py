"""ASGI middleware: request id, structured access log, and request metrics."""

from __future__ import annotations

import logging
import random
import re
import time

from starlette.requests import Request

from .errors import FieldError, problem_response
from .logs import request_id_var
from .metrics import HTTP_LATENCY, HTTP_REQUESTS
from .tracing import child_traceparent, current_traceparent

log = logging.getLogger("techbridge.access")

REQUEST_ID_HEADER = b"x-request-id"
TRACEPARENT_HEADER = b"traceparent"
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Labelled metric children by (service, method, route, status): looking a child up through
# `labels()` takes a lock and builds keys on every request. Bounded, because the method is
# whatever the caller sent.
_MEASURES: dict[tuple[str, str, str, str], tuple] = {}
_MEASURES_MAX = 2_000


def _measures(service: str, method: str, route: str, status: str) -> tuple:
    key = (service, method, route, status)
    found = _MEASURES.get(key)
    if found is None:
        found = (HTTP_REQUESTS.labels(service, method, route, status), HTTP_LATENCY.labels(service, method, route))
        if len(_MEASURES) < _MEASURES_MAX:
            _MEASURES[key] = found
    return found


class RequestContextMiddleware:
    """Takes X-Request-ID from the caller (or makes one) and echoes it; continues the caller's
    trace (W3C traceparent) in a span of this process; measures the request."""

    def __init__(self, app, service: str):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = incoming_trace = None
        for name, value in scope.get("headers", []):
            if name == REQUEST_ID_HEADER:
                candidate = value.decode("latin-1")[:128]
                if candidate.isprintable():
                    request_id = candidate
            elif name == TRACEPARENT_HEADER:
                incoming_trace = value.decode("latin-1")
        # Unique, not secret: the process's PRNG instead of a system call per request.
        request_id = request_id or f"{random.getrandbits(128):032x}"
        token = request_id_var.set(request_id)
        trace_token = current_traceparent.set(child_traceparent(incoming_trace))
        status = 500
        started = time.perf_counter()

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        try:
            refusal = control_character_refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            requests, latency = _measures(self.service, method, template, str(status))
            requests.inc()
            latency.observe(elapsed)
            if not template.startswith(("/health", "/metrics")):
                log.info(
                    "%s %s %d", method, scope.get("path", ""), status,
                    extra={"status": status, "duration_ms": round(elapsed * 1000, 2), "route": template},
                )
            request_id_var.reset(token)
            current_traceparent.reset(trace_token)


def control_character_refusal(scope):
    """A 422 for a request whose path holds a control character or whose query holds a NUL, or
    None. No store can keep a NUL in text (PostgreSQL refuses it), and no identifier or route
    has control characters, so these are refused before any handler sees them."""
    field = None
    query = scope.get("query_string", b"")
    if _CONTROL_RE.search(scope.get("path", "")):
        field, message = "path", "must not contain control characters"
    elif b"\0" in query or b"%00" in query:  # a NUL as sent or percent-encoded
        field, message = "query", "must not contain NUL characters"
    if field is None:
        return None
    return problem_response(Request(scope), 422, code="validation_failed", title="Request validation failed",
                            detail=f"{field}: {message}", errors=[FieldError(field=field, message=message)])
