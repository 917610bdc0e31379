"""Reverse proxy to the services: pooled connections, streamed bodies, verified identity.

Each request is authenticated and rate-limited here, stripped of hop-by-hop headers and of any
identity headers a caller may have tried to add, signed with the gateway's identity headers,
and streamed to the service; the response streams back. A service that cannot be reached
gives 503 and one that does not answer in time gives 504, both as problem+json.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse

from techbridge_shared.errors import FieldError, Problem, Unauthorized, ValidationFailed
from techbridge_shared.identity import IDENTITY_HEADER, SIGNATURE_HEADER, identity_headers
from techbridge_shared.logs import request_id_var

from ..domain.ratelimit import retry_after_header
from ..domain.tracing import child_traceparent
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
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
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


class Forwarder:
    def __init__(self, ctx: GatewayContext):
        self.ctx = ctx
        s = ctx.settings
        limits = httpx.Limits(max_connections=s.upstream_max_connections,
                              max_keepalive_connections=s.upstream_max_keepalive)
        timeout = httpx.Timeout(s.upstream_timeout_s, connect=s.upstream_connect_timeout_s,
                                pool=s.upstream_connect_timeout_s)
        self.clients = {
            name: httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout, follow_redirects=False)
            for name, url in s.upstreams().items()
        }

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def forward(self, service: str, request: Request) -> StreamingResponse:
        ctx = self.ctx
        path = request.url.path
        if "/../" in path + "/" or "/./" in path + "/" or "//" in path:
            raise ValidationFailed("the path must not contain empty, '.' or '..' segments")
        check_request_limits(ctx, request)
        identity = await authenticate(ctx, request.headers)
        if identity is None:
            raise Unauthorized("an access token (Authorization: Bearer ...) or an API key is required",
                               headers={"WWW-Authenticate": BEARER_CHALLENGE})
        rate_limit(ctx, identity.client_id or f"{identity.kind}:{identity.sub}")

        drop = REQUEST_DROP | _connection_tokens(request.headers)
        headers = [(k, v) for k, v in request.headers.items() if k not in drop]
        client_host = request.client.host if request.client else ""
        prior = request.headers.get("x-forwarded-for")
        headers += [
            ("x-forwarded-for", f"{prior}, {client_host}" if prior else client_host),
            ("x-forwarded-proto", request.url.scheme),
            ("x-forwarded-host", request.headers.get("host", "")),
            ("x-request-id", request_id_var.get() or ""),
            ("traceparent", child_traceparent(request.headers.get("traceparent"))),
        ]
        headers += list(identity_headers(identity, ctx.settings.internal_auth_secret, request.method, path).items())

        has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
        content = self._limited_body(request) if has_body else None
        raw_path = request.scope.get("raw_path") or path.encode()
        target = raw_path.decode("latin-1")
        if request.scope.get("query_string"):
            target += "?" + request.scope["query_string"].decode("latin-1")
        client = self.clients[service]
        upstream_request = client.build_request(request.method, target, headers=headers, content=content)
        try:
            upstream = await client.send(upstream_request, stream=True)
        except BodyTooLarge:
            raise PayloadTooLarge(f"request body is larger than {ctx.settings.max_body_bytes} bytes") from None
        except (httpx.ConnectTimeout, httpx.PoolTimeout):
            raise UpstreamUnavailable(f"{service} is not reachable at the moment; retry later",
                                      headers={"Retry-After": "5"}) from None
        except httpx.TimeoutException:
            raise UpstreamTimeout(f"{service} did not answer within {ctx.settings.upstream_timeout_s:g}s") from None
        except httpx.HTTPError as exc:
            log.warning("upstream %s failed: %s", service, exc)
            raise UpstreamUnavailable(f"{service} is not reachable at the moment; retry later",
                                      headers={"Retry-After": "5"}) from None

        drop_back = RESPONSE_DROP | _connection_tokens(upstream.headers)
        response_headers = [(k, v) for k, v in upstream.headers.multi_items() if k.lower() not in drop_back]
        response = StreamingResponse(
            upstream.aiter_raw(), status_code=upstream.status_code, background=BackgroundTask(upstream.aclose)
        )
        response.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response_headers]
        return response

    async def _limited_body(self, request: Request):
        limit = self.ctx.settings.max_body_bytes
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise BodyTooLarge()
            if chunk:
                yield chunk
