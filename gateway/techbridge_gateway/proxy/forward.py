"""Reverse proxy to the services: pooled connections, streamed bodies, verified identity.

Each request is authenticated and rate-limited here, stripped of hop-by-hop headers and of any
identity headers a caller may have tried to add, signed with the gateway's identity headers,
and streamed to the service; the response streams back. A service that cannot be reached
gives 503 and one that does not answer in time gives 504, both as problem+json.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import StreamingResponse

from techbridge_shared import tracing
from techbridge_shared.errors import FieldError, Problem, Unauthorized, ValidationFailed, problem_response
from techbridge_shared.http import RequestContextMiddleware
from techbridge_shared.identity import IDENTITY_HEADER, SIGNATURE_HEADER, identity_headers
from techbridge_shared.logs import request_id_var
from techbridge_shared.tracing import outgoing_traceparent

from ..domain.ratelimit import retry_after_header
from ..service.auth import BEARER_CHALLENGE, authenticate
from ..service.context import GatewayContext
from .upstream import ReadTimeout, Upstream, UpstreamError, UpstreamResponse

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "proxy-connection",
})
# Never passed on to a service: credentials are replaced by the signed identity, and identity
# headers only ever come from the gateway itself.
REQUEST_DROP = frozenset(h.encode() for h in HOP_BY_HOP | {
    "host", "authorization", "x-api-key", IDENTITY_HEADER.lower(), SIGNATURE_HEADER.lower(),
    "x-request-id", "traceparent", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded",
    # Framing is the gateway's own on the way to the service; a 100-continue was the gateway's
    # to answer (the server did, by reading the body).
    "content-length", "expect",
})
RESPONSE_DROP = frozenset(h.encode() for h in HOP_BY_HOP | {"server", "date", "x-request-id"})


class BodyTooLarge(Exception):
    pass


class PayloadTooLarge(Problem):
    status, code = 413, "payload_too_large"


class UpstreamUnavailable(Problem):
    status, code = 503, "upstream_unavailable"


class UpstreamTimeout(Problem):
    status, code = 504, "upstream_timeout"


class TooManyRequests(Problem):
    status, code = 429, "rate_limited"


class UriTooLong(Problem):
    status, code = 414, "uri_too_long"


class _CallerHeaders:
    """What forwarding needs from the caller's headers, found in one pass over them: the ones
    passed on, the credentials, and the few the gateway reads itself."""

    __slots__ = ("passed_on", "credentials", "forwarded_for", "host", "content_length", "has_body")

    def __init__(self, raw: list[tuple[bytes, bytes]]):
        passed_on = []
        credentials = []
        connection_tokens: set[bytes] = set()
        forwarded_for: list[bytes] = []
        self.host = b""
        self.content_length: bytes | None = None
        self.has_body = False
        for name, value in raw:
            if name not in REQUEST_DROP:
                passed_on.append((name, value))
            elif name == b"authorization" or name == b"x-api-key":
                credentials.append((name, value))
            elif name == b"connection":  # names further hop-by-hop headers
                connection_tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
            elif name == b"x-forwarded-for":
                forwarded_for.append(value)
            elif name == b"host":
                self.host = value
            elif name == b"content-length":
                self.content_length = value
                self.has_body = True
            elif name == b"transfer-encoding":
                self.has_body = True
        if connection_tokens:
            passed_on = [(n, v) for n, v in passed_on if n not in connection_tokens]
        self.passed_on = passed_on
        self.credentials = Headers(raw=credentials)
        self.forwarded_for = b", ".join(forwarded_for)


def check_request_limits(ctx: GatewayContext, request: Request) -> None:
    s = ctx.settings
    query = request.scope.get("query_string", b"")
    if len(query) > s.max_query_length or len(request.scope.get("raw_path", b"")) > s.max_query_length:
        raise UriTooLong(f"the request target is longer than {s.max_query_length} characters")
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if b"limit" in query else ():
        if name == "limit" and value.isdigit() and int(value) > s.max_page_size:
            raise ValidationFailed(f"query.limit: at most {s.max_page_size}", errors=[
                FieldError(field="query.limit", message=f"at most {s.max_page_size} items per page")])
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ValidationFailed("invalid Content-Length")
        if int(length) > s.max_body_bytes:
            raise PayloadTooLarge(f"request body is larger than {s.max_body_bytes} bytes")


def rate_limit(ctx: GatewayContext, key: str, anonymous: bool = False) -> None:
    limiter = ctx.anonymous_limiter if anonymous else ctx.client_limiter
    wait = limiter.take(key)
    if wait > 0:
        raise TooManyRequests(
            "too many requests for this client; slow down", headers={"Retry-After": retry_after_header(wait)}
        )


class _Upload:
    """The caller's body on its way to the service, counted against the size limit."""

    def __init__(self, request: Request, limit: int):
        self.request = request
        self.limit = limit
        self.too_large = False

    async def chunks(self):
        seen = 0
        async for chunk in self.request.stream():
            seen += len(chunk)
            if seen > self.limit:
                self.too_large = True
                raise BodyTooLarge()
            if chunk:
                yield chunk


class Forwarder:
    """Forwards to the services over pooled keep-alive connections (`Upstream`, one per service).

    Small answers (with a Content-Length up to `BUFFER_LIMIT`) are read whole and sent as one
    message; anything else streams back chunk by chunk, and bodies sent to the service stream
    too unless they are small and of known length.
    """

    BUFFER_LIMIT = 64 * 1024

    def __init__(self, ctx: GatewayContext):
        self.ctx = ctx
        s = ctx.settings
        self.upstreams = {
            name: Upstream(url, max_connections=s.upstream_max_connections, keepalive_s=s.upstream_keepalive_s,
                           connect_timeout_s=s.upstream_connect_timeout_s, read_timeout_s=s.upstream_timeout_s)
            for name, url in s.upstreams().items()
        }

    async def aclose(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.aclose()

    async def forward(self, service: str, request: Request) -> _Answer | StreamingResponse:
        ctx = self.ctx
        scope = request.scope
        path = scope["path"]
        if "/../" in path + "/" or "/./" in path + "/" or "//" in path:
            raise ValidationFailed("the path must not contain empty, '.' or '..' segments")
        check_request_limits(ctx, request)
        caller = _CallerHeaders(scope["headers"])
        identity = await authenticate(ctx, caller.credentials)
        if identity is None:
            raise Unauthorized("an access token (Authorization: Bearer ...) or an API key is required",
                               headers={"WWW-Authenticate": BEARER_CHALLENGE})
        rate_limit(ctx, identity.client_id or f"{identity.kind}:{identity.sub}")

        method = scope["method"]
        client = scope.get("client")
        client_host = client[0].encode() if client else b""
        headers = caller.passed_on
        headers += [
            (b"x-forwarded-for", caller.forwarded_for + b", " + client_host if caller.forwarded_for else client_host),
            (b"x-forwarded-proto", scope.get("scheme", "http").encode()),
            (b"x-forwarded-host", caller.host),
            (b"x-request-id", (request_id_var.get() or "").encode()),
            (b"traceparent", outgoing_traceparent().encode()),
        ]
        headers += [(name.encode(), value.encode()) for name, value in
                    identity_headers(identity, ctx.settings.internal_auth_secret, method, path).items()]

        length = caller.content_length
        upload: _Upload | None = None
        body: bytes | object | None = None
        if length is not None and int(length) <= self.BUFFER_LIMIT:
            body = await request.body() if length != b"0" else b""
        elif caller.has_body:
            upload = _Upload(request, ctx.settings.max_body_bytes)
            body = upload.chunks()
        target = scope.get("raw_path") or path.encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        try:
            upstream = await self.upstreams[service].request(
                method, target, headers, body, body_length=int(length) if upload and length is not None else None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._failure(service, exc, upload) from None
        self._check_upload(upstream, upload)

        drop_back = RESPONSE_DROP
        for k, v in upstream.raw_headers:
            if k.lower() == b"connection":
                drop_back = drop_back | {t.strip().lower() for t in v.split(b",") if t.strip()}
        response_headers = [(k.lower(), v) for k, v in upstream.raw_headers if k.lower() not in drop_back]
        size = upstream.content_length
        if size is not None and size <= self.BUFFER_LIMIT or method == "HEAD":
            try:
                answer = await upstream.read()
            except Exception as exc:
                upstream.close()
                raise self._failure(service, exc, upload) from None
            return _Answer(upstream.status, response_headers, answer)
        response = StreamingResponse(_stream(upstream), status_code=upstream.status)
        response.raw_headers = response_headers
        return response

    def _check_upload(self, upstream: UpstreamResponse, upload: _Upload | None) -> None:
        """A body cut off at the size limit is not what the service's answer is about: the
        caller is told what really happened, 413."""
        if upload is not None and upload.too_large:
            upstream.close()
            raise PayloadTooLarge(f"request body is larger than {self.ctx.settings.max_body_bytes} bytes")

    def _failure(self, service: str, exc: Exception, upload: _Upload | None) -> Problem:
        s = self.ctx.settings
        if upload is not None and upload.too_large:
            return PayloadTooLarge(f"request body is larger than {s.max_body_bytes} bytes")
        if isinstance(exc, ReadTimeout):
            return UpstreamTimeout(f"{service} did not answer within {s.upstream_timeout_s:g}s")
        if isinstance(exc, (UpstreamError, OSError)):
            log.warning("upstream %s failed: %s", service, exc)
        else:
            log.error("forwarding to %s failed", service, exc_info=exc)
        return UpstreamUnavailable(f"{service} is not reachable at the moment; retry later",
                                   headers={"Retry-After": "5"})


class _Answer:
    """A whole answer as the service gave it (status, headers as received, body), sent as two
    ASGI messages without a framework response's header building."""

    __slots__ = ("status_code", "raw_headers", "body")

    def __init__(self, status_code: int, raw_headers: list[tuple[bytes, bytes]], body: bytes):
        self.status_code, self.raw_headers, self.body = status_code, raw_headers, body

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


async def _stream(upstream: UpstreamResponse):
    """The service's answer as it arrives; the connection goes back to the pool at the end."""
    try:
        async for chunk in upstream.iter_chunks():
            yield chunk
    finally:
        upstream.close()  # no-op after a complete answer (already released)


class ProxyRoutes:
    """Answers `/api/v1/<service>/...` with the forwarder inside the shared request context
    (request id, trace context, metrics, access log; a server span when traces are exported),
    ahead of the framework (see `GatewayApp`).

    A proxied request thus skips the framework's error, telemetry and body-limit middleware,
    its routing over every gateway route and its dependency machinery, which together cost as
    much as the forwarding itself. Problems are rendered here as the app renders them, and any
    other error goes to the app's own handler for unexpected errors (`unexpected`)."""

    def __init__(self, forwarder: Forwarder, routes: dict[str, object], service: str, unexpected):
        self.forwarder = forwarder
        self.unexpected = unexpected
        # prefix "/api/v1/<service>/" -> (service, the route object metrics label it by)
        self.prefixes = {f"/api/v1/{name}/": (name, route) for name, route in routes.items()}
        handler = self._forward
        if tracing.enabled():
            handler = tracing.ServerSpanMiddleware(handler, service)
        self.handle = RequestContextMiddleware(handler, service)

    def claim(self, scope) -> bool:
        """Whether this HTTP request is one to forward (noted in its scope)."""
        path: str = scope["path"]
        if not path.startswith("/api/v1/"):
            return False
        end = path.find("/", 8)
        hit = self.prefixes.get(path[:end + 1]) if end > 0 else None
        if hit is None:
            return False
        scope["gateway.service"], scope["route"] = hit
        return True

    async def _forward(self, scope, receive, send):
        request = Request(scope, receive)
        try:
            response = await self.forwarder.forward(scope["gateway.service"], request)
        except Problem as exc:
            response = problem_response(request, exc.status, code=exc.code, detail=exc.detail,
                                        title=exc.title, errors=exc.errors, headers=exc.headers)
        except Exception as exc:
            response = await self.unexpected(request, exc)
        # A streamed answer that breaks off propagates: the server ends the connection, as the
        # caller cannot be told anything else once the answer has started.
        await response(scope, receive, send)
