"""Admin registry of API clients, their secrets and API keys, and user accounts."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from techbridge_shared.errors import problem_responses
from techbridge_shared.identity import Identity, Role
from techbridge_shared.pagination import Page, PageParams, encode_cursor, page_params

from ..service import auth
from ..service.context import GatewayContext
from .deps import admin, context

router = APIRouter(prefix="/api/v1", tags=["clients"])


class ClientIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="Who this client is, e.g. 'Shanghai S&T Commission'")
    org_id: str | None = Field(default=None, max_length=64, description="Organisation id from the catalog registry")
    roles: list[Role] = Field(min_length=1, description="Roles the client's tokens carry")

    model_config = {"json_schema_extra": {"examples": [
        {"name": "Pudong technology office", "org_id": "5b0c3f0e-0d8e-4f4b-9e3c-6f1d1f0a9a11", "roles": ["government"]}]}}


class ClientOut(BaseModel):
    client_id: str
    name: str
    org_id: str | None
    roles: list[str]
    disabled: bool
    created_at: datetime
    updated_at: datetime


class ClientWithSecret(ClientOut):
    client_secret: str = Field(description="Shown once; only its hash is kept")
    previous_secret_valid_until: datetime | None = Field(default=None, description="After a rotation: until when the old secret still works")


class ApiKeyOut(BaseModel):
    key_id: str
    api_key: str = Field(description="Send as the X-API-Key header; shown once")


class UserIn(BaseModel):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320, description="Sign-in name")
    name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=12, max_length=256, description="At least 12 characters")
    org_id: str | None = Field(default=None, max_length=64)
    roles: list[Role] = Field(min_length=1)


class UserOut(BaseModel):
    user_id: str
    email: str
    name: str
    org_id: str | None
    roles: list[str]
    disabled: bool
    locked_until: datetime | None
    created_at: datetime


def _client(row: dict) -> ClientOut:
    return ClientOut.model_validate({k: row[k] for k in ClientOut.model_fields})


@router.post("/clients", status_code=201, response_model=ClientWithSecret, name="register",
             summary="Register an API client (admin)", responses=problem_responses(401, 403, 409, 422))
async def register_client(body: ClientIn, _: Identity = Depends(admin), ctx: GatewayContext = Depends(context)):
    row, secret = await auth.register_client(ctx, name=body.name, org_id=body.org_id, roles=list(body.roles))
    return ClientWithSecret(**_client(row).model_dump(), client_secret=secret)


@router.get("/clients", response_model=Page[ClientOut], name="list", summary="List API clients (admin)",
            responses=problem_responses(401, 403))
async def list_clients(page: PageParams = Depends(page_params), _: Identity = Depends(admin),
                       ctx: GatewayContext = Depends(context)):
    limit = page.limit
    after = str(page.cursor.get("id")) if page.cursor else None
    rows = await auth.list_clients(ctx, after, limit + 1)
    nxt = encode_cursor({"id": rows[limit - 1]["client_id"]}) if len(rows) > limit else None
    return Page[ClientOut](items=[_client(r) for r in rows[:limit]], next_cursor=nxt)


@router.get("/clients/{client_id}", response_model=ClientOut, name="get", summary="One API client (admin)",
            responses=problem_responses(401, 403, 404))
async def get_client(client_id: str, _: Identity = Depends(admin), ctx: GatewayContext = Depends(context)):
    return _client(await auth.get_client(ctx, client_id))


@router.post("/clients/{client_id}/secret", response_model=ClientWithSecret, name="rotate-secret",
             summary="Rotate a client's secret (admin)",
             description="Issues a new secret; the old one keeps working for the configured grace period "
                         "(to get new tokens), and every token issued before the rotation is refused at once.",
             responses=problem_responses(401, 403, 404))
async def rotate_secret(client_id: str, _: Identity = Depends(admin), ctx: GatewayContext = Depends(context)):
    row, secret, until = await auth.rotate_secret(ctx, client_id)
    return ClientWithSecret(**_client(row).model_dump(), client_secret=secret, previous_secret_valid_until=until)


@router.post("/clients/{client_id}/disable", response_model=ClientOut, name="disable",
             summary="Disable a client: its tokens and API keys stop working at once, no new tokens (admin)",
             responses=problem_responses(401, 403, 404))
async def disable_client(client_id: str, _: Identity = Depends(admin), ctx: GatewayContext = Depends(context)):
    return _client(await auth.set_client_disabled(ctx, client_id, True))


@router.post("/clients/{client_id}/enable", response_model=ClientOut, name="enable",
             summary="Enable a disabled client (admin)", responses=problem_responses(401, 403, 404))
async def enable_client(client_id: str, _: Identity = Depends(admin), ctx: GatewayContext = Depends(context)):
    return _client(await auth.set_client_disabled(ctx, client_id, False))


@router.post("/clients/{client_id}/api-keys", status_code=201, response_model=ApiKeyOut, name="create-api-key",
             summary="Issue an API key for a client (admin)", responses=problem_responses(401, 403, 404))
async def create_api_key(client_id: str, _: Identity = Depends(admin), ctx: GatewayContext = Depends(context)):
    key_id, token = await auth.create_api_key(ctx, client_id)
    return ApiKeyOut(key_id=key_id, api_key=token)


@router.delete("/clients/{client_id}/api-keys/{key_id}", status_code=204, name="revoke-api-key",
               summary="Revoke an API key (admin)", responses=problem_responses(401, 403, 404))
async def revoke_api_key(client_id: str, key_id: str, _: Identity = Depends(admin),
                         ctx: GatewayContext = Depends(context)) -> None:
    await auth.revoke_api_key(ctx, client_id, key_id)


users_router = APIRouter(prefix="/api/v1", tags=["users"])


def _user(row: dict) -> UserOut:
    return UserOut.model_validate({k: row[k] for k in UserOut.model_fields})


@users_router.post("/users", status_code=201, response_model=UserOut, name="create",
                   summary="Create a user account (admin)", responses=problem_responses(401, 403, 409, 422))
async def create_user(body: UserIn, _: Identity = Depends(admin), ctx: GatewayContext = Depends(context)):
    return _user(await auth.create_user(ctx, email=body.email, name=body.name, password=body.password,
                                        org_id=body.org_id, roles=list(body.roles)))


@users_router.post("/users/{user_id}/unlock", response_model=UserOut, name="unlock",
                   summary="Lift a sign-in lock-out (admin)", responses=problem_responses(401, 403, 404))
async def unlock_user(user_id: str, _: Identity = Depends(admin), ctx: GatewayContext = Depends(context)):
    return _user(await auth.unlock_user(ctx, user_id))


@users_router.post("/users/{user_id}/disable", response_model=UserOut, name="disable",
                   summary="Disable a user: sign-in refused, every token the user holds stops working at once (admin)",
                   responses=problem_responses(401, 403, 404))
async def disable_user(user_id: str, _: Identity = Depends(admin), ctx: GatewayContext = Depends(context)):
    return _user(await auth.set_user_disabled(ctx, user_id, True))


@users_router.post("/users/{user_id}/enable", response_model=UserOut, name="enable",
                   summary="Enable a disabled user (admin)", responses=problem_responses(401, 403, 404))
async def enable_user(user_id: str, _: Identity = Depends(admin), ctx: GatewayContext = Depends(context)):
    return _user(await auth.set_user_disabled(ctx, user_id, False))
