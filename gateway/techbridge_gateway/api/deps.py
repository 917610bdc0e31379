"""Dependencies of the gateway's own routes: the context, the caller, the admin."""

from __future__ import annotations

from fastapi import Depends, Request

from techbridge_shared.errors import Forbidden, Unauthorized
from techbridge_shared.identity import Identity

from ..proxy.forward import check_request_limits, rate_limit
from ..service.auth import BEARER_CHALLENGE, authenticate
from ..service.context import GatewayContext


async def context(request: Request) -> GatewayContext:
    return request.app.state.gateway


async def caller(request: Request, ctx: GatewayContext = Depends(context)) -> Identity:
    check_request_limits(ctx, request)
    identity = await authenticate(ctx, request.headers)
    if identity is None:
        raise Unauthorized("an access token (Authorization: Bearer ...) or an API key is required",
                           headers={"WWW-Authenticate": BEARER_CHALLENGE})
    rate_limit(ctx, identity.client_id or f"{identity.kind}:{identity.sub}")
    return identity


async def admin(identity: Identity = Depends(caller)) -> Identity:
    if not identity.is_admin:
        raise Forbidden("requires the admin role")
    return identity
