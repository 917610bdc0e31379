"""POST /auth/token: OAuth2 client credentials (partners, government systems) and the password
grant for people signing in to the console."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from pydantic import BaseModel, Field

from techbridge_shared.errors import Problem, problem_responses

from ..proxy.forward import check_request_limits, rate_limit
from ..service import auth
from ..service.context import GatewayContext
from .deps import context

router = APIRouter(tags=["auth"])


class TokenResponse(BaseModel):
    access_token: str = Field(description="A signed JWT (HS256) to send as `Authorization: Bearer <token>`")
    token_type: str = Field(default="Bearer", description="Always Bearer")
    expires_in: int = Field(description="Seconds until the token expires")
    scope: str = Field(description="The roles the token carries, space-separated")

    model_config = {"json_schema_extra": {"examples": [{
        "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkZXYtZ292ZXJubWVudCJ9.c2ln",
        "token_type": "Bearer", "expires_in": 900, "scope": "government"}]}}


class UnsupportedGrant(Problem):
    status, code = 400, "unsupported_grant_type"


@router.post(
    "/auth/token", response_model=TokenResponse, name="token",
    summary="Get an access token (client credentials or password)",
    description=(
        "OAuth2 token endpoint (form-encoded). `grant_type=client_credentials` with the client id and "
        "secret as HTTP Basic or as `client_id`/`client_secret` fields (not both); "
        "`grant_type=password` with `username` (e-mail) and `password` for people. "
        "Accounts are locked for a while after repeated failed sign-ins."
    ),
    responses=problem_responses(400, 401, 429),
)
async def token(
    request: Request,
    response: Response,
    grant_type: Annotated[str, Form(description="client_credentials or password", examples=["client_credentials"])],
    client_id: Annotated[str | None, Form(examples=["dev-government"])] = None,
    client_secret: Annotated[str | None, Form()] = None,
    username: Annotated[str | None, Form(description="E-mail address, for the password grant")] = None,
    password: Annotated[str | None, Form()] = None,
    ctx: GatewayContext = Depends(context),
) -> TokenResponse:
    check_request_limits(ctx, request)
    rate_limit(ctx, request.client.host if request.client else "unknown", anonymous=True)
    if grant_type == "client_credentials":
        form = {k: v for k, v in (("client_id", client_id), ("client_secret", client_secret)) if v is not None}
        cid, secret = auth.client_credentials_from(request.headers, form)
        access, ttl, identity = await auth.token_for_client(ctx, cid, secret)
    elif grant_type == "password":
        if not username or not password:
            raise auth.InvalidGrant("username and password are required for the password grant")
        access, ttl, identity = await auth.token_for_user(ctx, username, password)
    else:
        raise UnsupportedGrant(f"grant_type {grant_type!r} is not supported; use client_credentials or password")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return TokenResponse(access_token=access, expires_in=ttl, scope=" ".join(sorted(identity.roles)))
