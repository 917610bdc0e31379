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

import aiohttp
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from yarl import URL

from techbridge_shared.errors import FieldError, Problem, Unauthorized, ValidationFailed, problem_response
from techbridge_shared.identity import IDENTITY_HEADER, SIGNATURE_HEADER, identity_headers
from techbridge_shared.logs import request_id_var
from techbridge_shared.tracing import outgoing_traceparent

from ..domain.ratelimit import retry_after_header
from ..service.auth import BEARER_CHALLENGE, authenticate
from ..service.context import GatewayContext

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "proxy-connection",
})
# Never passed on to a service: credentials are replaced by the signed identity, and identity
# headers only ever come from the gateway itself.
REQUEST_DROP = HOP_BY_HOP | {
    "host", "authorization", "x-api-key", IDENTITY_HEADER.lower(), SIGNATURE_HEADER.lower(),
    "x-request-id", "traceparent", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded",
}
RESPONSE_DROP = HOP_BY_HOP | {"server", "date", "x-request-id"}
SKIP_AUTO_HEADERS = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})


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


def _connection_tokens(headers) -> set[str]:
    tokens = set()
    values = headers.getlist("connection") if hasattr(headers, "getlist") else headers.get_list("connection")
    for value in values:
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


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
        self._ended = asyncio.Event()

    async def chunks(self):
        seen = 0
        try:
            async for chunk in self.request.stream():
                seen += len(chunk)
                if seen > self.limit:
                    self.too_large = True
                    raise BodyTooLarge()
                if chunk:
                    yield chunk
        finally:
            self._ended.set()

    async def ended(self, timeout: float) -> None:
        """Wait until the body has been sent or cut off. The client session hands back the
        service's answer as soon as it starts, while the body may still be on its way; an
        answer to a body cut at the limit is not the caller's answer."""
        try:
            await asyncio.wait_for(self._ended.wait(), timeout)
        except TimeoutError:
            pass


class Forwarder:
    """Forwards to the services over one pooled aiohttp session (keep-alive connections).

    aiohttp's client costs a fraction of httpx's per request, which on a busy gateway is most of
    its own CPU time. Small answers (with a Content-Length up to `BUFFER_LIMIT`) are read whole
    and sent as one message; anything else streams back chunk by chunk, and bodies sent to the
    service stream too unless they are small and of known length.
    """

    BUFFER_LIMIT = 64 * 1024

    def __init__(self, ctx: GatewayContext):
        self.ctx = ctx
        s = ctx.settings
        self.bases = s.upstreams()
        # connect covers waiting for a pooled connection and opening one; sock_read is the time
        # allowed between two reads of the answer (as httpx's read timeout was).
        self.timeout = aiohttp.ClientTimeout(total=None, connect=s.upstream_connect_timeout_s,
                                             sock_connect=s.upstream_connect_timeout_s,
                                             sock_read=s.upstream_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            s = self.ctx.settings
            connector = aiohttp.TCPConnector(limit=s.upstream_max_connections, limit_per_host=0,
                                             keepalive_timeout=s.upstream_keepalive_s, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, auto_decompress=False,
                # Nothing the caller did not send: no default Accept, Accept-Encoding, User-Agent.
                skip_auto_headers=SKIP_AUTO_HEADERS, cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def forward(self, service: str, request: Request) -> Response:
        ctx = self.ctx
        scope = request.scope
        path = scope["path"]
        if "/../" in path + "/" or "/./" in path + "/" or "//" in path:
            raise ValidationFailed("the path must not contain empty, '.' or '..' segments")
        check_request_limits(ctx, request)
        req_headers = request.headers
        identity = await authenticate(ctx, req_headers)
        if identity is None:
            raise Unauthorized("an access token (Authorization: Bearer ...) or an API key is required",
                               headers={"WWW-Authenticate": BEARER_CHALLENGE})
        rate_limit(ctx, identity.client_id or f"{identity.kind}:{identity.sub}")

        method = scope["method"]
        drop = REQUEST_DROP | _connection_tokens(req_headers) if "connection" in req_headers else REQUEST_DROP
        headers = [(k, v) for k, v in req_headers.items() if k not in drop]
        client = scope.get("client")
        client_host = client[0] if client else ""
        prior = req_headers.get("x-forwarded-for")
        headers += [
            ("x-forwarded-for", f"{prior}, {client_host}" if prior else client_host),
            ("x-forwarded-proto", scope.get("scheme", "http")),
            ("x-forwarded-host", req_headers.get("host", "")),
            ("x-request-id", request_id_var.get() or ""),
            ("traceparent", outgoing_traceparent()),
        ]
        headers += identity_headers(identity, ctx.settings.internal_auth_secret, method, path).items()

        length = req_headers.get("content-length")
        upload: _Upload | None = None
        data: bytes | object | None = None
        if length is not None and int(length) <= self.BUFFER_LIMIT:
            data = await request.body() if length != "0" else None
        elif length is not None or "transfer-encoding" in req_headers:
            upload = _Upload(request, ctx.settings.max_body_bytes)
            data = upload.chunks()
        raw_path = scope.get("raw_path") or path.encode()
        target = self.bases[service] + raw_path.decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        try:
            upstream = await self.session().request(
                method, URL(target, encoded=True), headers=headers, data=data, allow_redirects=False,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._failure(service, exc, upload) from None
        if upload is not None:
            await upload.ended(ctx.settings.upstream_timeout_s)
        self._check_upload(upstream, upload)

        raw = upstream.raw_headers
        drop_back = RESPONSE_DROP
        for k, v in raw:
            if k.lower() == b"connection":
                drop_back = drop_back | {t.strip().lower() for t in v.decode("latin-1").split(",") if t.strip()}
        response_headers = [(k.lower(), v) for k, v in raw if k.lower().decode("latin-1") not in drop_back]
        size = upstream.content_length
        if size is not None and size <= self.BUFFER_LIMIT or method == "HEAD":
            try:
                body = await upstream.read()
            except Exception as exc:
                upstream.release()
                raise self._failure(service, exc, upload) from None
            self._check_upload(upstream, upload)
            response = Response(body, status_code=upstream.status)
        else:
            response = StreamingResponse(_stream(upstream), status_code=upstream.status)
        response.raw_headers = response_headers
        return response

    def _check_upload(self, upstream: aiohttp.ClientResponse, upload: _Upload | None) -> None:
        """A body cut off at the size limit may reach the service as a short, malformed one, and
        the service may answer that (400) before the client session reports the cut: the
        caller is told what really happened, 413."""
        if upload is not None and upload.too_large:
            upstream.close()
            raise PayloadTooLarge(f"request body is larger than {self.ctx.settings.max_body_bytes} bytes")

    def _failure(self, service: str, exc: Exception, upload: _Upload | None) -> Problem:
        s = self.ctx.settings
        if upload is not None and upload.too_large:
            return PayloadTooLarge(f"request body is larger than {s.max_body_bytes} bytes")
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return UpstreamUnavailable(f"{service} is not reachable at the moment; retry later",
                                       headers={"Retry-After": "5"})
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            return UpstreamTimeout(f"{service} did not answer within {s.upstream_timeout_s:g}s")
        if not isinstance(exc, (aiohttp.ClientError, OSError)):
            log.error("forwarding to %s failed", service, exc_info=exc)
        else:
            log.warning("upstream %s failed: %r", service, exc)
        return UpstreamUnavailable(f"{service} is not reachable at the moment; retry later",
                                   headers={"Retry-After": "5"})


async def _stream(upstream: aiohttp.ClientResponse):
    """The service's answer as it arrives; the connection goes back to the pool at the end."""
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
    finally:
        upstream.release()


class ProxyRoutes:
    """Pure ASGI middleware answering `/api/v1/<service>/...` with the forwarder, innermost of
    the user middleware: request id, trace context, metrics and access log still apply, but the
    request skips the framework's routing over every gateway route, its dependency machinery and
    its exception middleware (problems are rendered here the same way). Anything else goes on to
    the app."""

    def __init__(self, app, forwarder: Forwarder, routes: dict[str, object]):
        self.app = app
        self.forwarder = forwarder
        # prefix "/api/v1/<service>/" -> (service, the route object metrics label it by)
        self.prefixes = {f"/api/v1/{name}/": (name, route) for name, route in routes.items()}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/api/v1/"):
                end = path.find("/", 8)
                hit = self.prefixes.get(path[:end + 1]) if end > 0 else None
                if hit is not None:
                    service, route = hit
                    scope["route"] = route
                    request = Request(scope, receive)
                    try:
                        response = await self.forwarder.forward(service, request)
                    except Problem as exc:
                        response = problem_response(request, exc.status, code=exc.code, detail=exc.detail,
                                                    title=exc.title, errors=exc.errors, headers=exc.headers)
                    # Anything else propagates to the app's error handler, as from a route.
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
