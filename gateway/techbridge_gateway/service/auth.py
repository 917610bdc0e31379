"""Who is calling: token issuance (client credentials, password), request authentication,
and the admin's registry of clients, API keys and users."""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from techbridge_shared.errors import Conflict, FieldError, NotFound, Problem, Unauthorized, ValidationFailed
from techbridge_shared.identity import ROLES, Identity

from ..domain import accounts
from ..domain.tokens import InvalidToken, account_key
from ..store import repositories as repo
from .context import GatewayContext

BEARER_CHALLENGE = 'Bearer realm="techbridge", error="invalid_token"'


def now_utc() -> datetime:
    return datetime.now(UTC)


class InvalidClient(Problem):
    status, code = 401, "invalid_client"


class InvalidGrant(Problem):
    status, code = 400, "invalid_grant"


def unauthorized(detail: str) -> Unauthorized:
    return Unauthorized(detail, headers={"WWW-Authenticate": BEARER_CHALLENGE})


# --- request authentication -------------------------------------------------------------------
async def authenticate(ctx: GatewayContext, headers) -> Identity | None:
    """The caller's identity from exactly one credential, None without any, 401 when bad.

    Accepted: `Authorization: Bearer <access token>` or `X-API-Key: <key>` (also as a Bearer).
    More than one credential (two Authorization headers, or a token and a key) is refused, so
    a proxy in front cannot be tricked into checking one and forwarding the other.
    """
    authz = headers.getlist("authorization")
    keys = headers.getlist("x-api-key")
    if len(authz) + len(keys) > 1:
        raise unauthorized("more than one credential was sent; send exactly one")
    if keys:
        return await _api_key_identity(ctx, keys[0])
    if not authz:
        return None
    scheme, _, value = authz[0].strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise unauthorized("use the Bearer scheme with an access token from /auth/token")
    if value.startswith(accounts.API_KEY_PREFIX + "_"):
        return await _api_key_identity(ctx, value)
    try:
        identity, generation = ctx.tokens.verify_with_generation(value)
    except InvalidToken as exc:
        raise unauthorized(str(exc)) from None
    if not ctx.generations.accepts(identity, generation):
        raise unauthorized("token revoked: the account was disabled or its secret rotated since it was issued")
    return identity


async def _api_key_identity(ctx: GatewayContext, raw: str) -> Identity:
    key = accounts.parse_api_key(raw)
    if key is None:
        raise unauthorized("malformed API key")
    async with ctx.uow() as uow:
        row = await repo.get_api_key(uow.session, key.key_id)
        client = await repo.get_client(uow.session, row["client_id"]) if row else None
    if (
        row is None or client is None or row["revoked_at"] is not None or client["disabled"]
        or not accounts.digests_match(row["digest"], accounts.api_key_digest(key.secret))
    ):
        raise unauthorized("unknown or revoked API key")
    return Identity(sub=client["client_id"], org=client["org_id"], roles=frozenset(client["roles"]),
                    client_id=client["client_id"], kind="api_key")


# --- token endpoint ---------------------------------------------------------------------------
def client_credentials_from(headers, form: Mapping[str, str]) -> tuple[str, str]:
    """client_id and secret from HTTP Basic or the form body, never both (RFC 6749 2.3)."""
    authz = headers.getlist("authorization")
    in_form = "client_secret" in form
    if len(authz) > 1 or (authz and in_form):
        raise InvalidClient("more than one client authentication method was used")
    if authz:
        scheme, _, value = authz[0].strip().partition(" ")
        if scheme.lower() != "basic":
            raise InvalidClient("client authentication uses HTTP Basic or client_id/client_secret in the form")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidClient("malformed Basic credentials") from None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise InvalidClient("malformed Basic credentials")
        if form.get("client_id") and form["client_id"] != client_id:
            raise InvalidClient("client_id in the form differs from the authenticated client")
        return client_id, secret
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not client_id or not secret:
        raise InvalidClient("client authentication is required")
    return client_id, secret


async def token_for_client(ctx: GatewayContext, client_id: str, secret: str) -> tuple[str, int, Identity]:
    async with ctx.uow() as uow:
        client = await repo.get_client(uow.session, client_id)
    # The slow hash runs in a worker thread so other requests are not held up meanwhile.
    ok = await asyncio.to_thread(
        accounts.secret_accepted,
        hasher=ctx.hasher, secret=secret,
        current_hash=client["secret_hash"] if client else "",
        previous_hash=client["previous_secret_hash"] if client else None,
        previous_valid_until=client["previous_valid_until"] if client else None,
        now=now_utc(),
    )
    if not ok or client is None or client["disabled"]:
        raise InvalidClient("unknown client or wrong secret")
    identity = Identity(sub=client_id, org=client["org_id"], roles=frozenset(client["roles"]),
                        client_id=client_id, kind="client")
    ctx.generations.raise_to(account_key(identity), client["token_generation"])
    token, ttl = ctx.issuer.issue(identity, generation=client["token_generation"])
    return token, ttl, identity


async def token_for_user(ctx: GatewayContext, email: str, password: str) -> tuple[str, int, Identity]:
    """Password grant for people (console, officers, SME staff), with lock-out."""
    now = now_utc()
    async with ctx.uow() as uow:
        user = await repo.get_user_by_email(uow.session, email)
        if user is None:
            await asyncio.to_thread(ctx.hasher.verify, None, password)
            raise InvalidGrant("wrong e-mail or password", status=401)
        if ctx.lockout.is_locked(user["locked_until"], now):
            raise InvalidGrant("account locked after repeated failed sign-ins; try again later", status=401,
                               code="account_locked")
        if user["disabled"] or not await asyncio.to_thread(ctx.hasher.verify, user["password_hash"], password):
            failures, locked_until = ctx.lockout.after_failure(user["failed_logins"], now)
            await repo.update_user(uow.session, user["user_id"], failed_logins=failures,
                                   locked_until=locked_until or user["locked_until"])
            await uow.commit()
            raise InvalidGrant("wrong e-mail or password", status=401)
        if user["failed_logins"] or user["locked_until"]:
            await repo.update_user(uow.session, user["user_id"], failed_logins=0, locked_until=None)
            await uow.commit()
    identity = Identity(sub=user["user_id"], org=user["org_id"], roles=frozenset(user["roles"]), kind="user")
    ctx.generations.raise_to(account_key(identity), user["token_generation"])
    token, ttl = ctx.issuer.issue(identity, generation=user["token_generation"])
    return token, ttl, identity


# --- administration ---------------------------------------------------------------------------
def _check_roles(roles: list[str]) -> list[str]:
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise ValidationFailed("unknown or missing roles", errors=[FieldError(
            field="body.roles", message=f"each role is one of {', '.join(ROLES)}")])
    return sorted(set(roles))


async def register_client(
    ctx: GatewayContext, *, name: str, org_id: str | None, roles: list[str], client_id: str | None = None,
    secret: str | None = None,
) -> tuple[dict, str]:
    """A new client and its secret (shown once; only its hash is kept)."""
    roles = _check_roles(roles)
    client_id = client_id or accounts.new_client_id()
    secret = secret or accounts.new_secret()
    now = now_utc()
    async with ctx.uow() as uow:
        if await repo.get_client(uow.session, client_id):
            raise Conflict(f"client {client_id} already exists")
        await repo.insert_client(
            uow.session, client_id=client_id, name=name, org_id=org_id, roles=roles,
            secret_hash=ctx.hasher.hash(secret), created_at=now, updated_at=now, disabled=False,
        )
        await uow.commit()
        client = await repo.get_client(uow.session, client_id)
    return client, secret


async def get_client(ctx: GatewayContext, client_id: str) -> dict:
    async with ctx.uow() as uow:
        client = await repo.get_client(uow.session, client_id)
    if client is None:
        raise NotFound(f"client {client_id} not found")
    return client


async def list_clients(ctx: GatewayContext, after: str | None, limit: int) -> list[dict]:
    async with ctx.uow() as uow:
        return await repo.list_clients(uow.session, after, limit)


async def rotate_secret(ctx: GatewayContext, client_id: str) -> tuple[dict, str, datetime | None]:
    """A new secret; the old one keeps working for the grace period (0: not at all)."""
    now = now_utc()
    secret = accounts.new_secret()
    grace = ctx.settings.secret_rotation_grace_s
    async with ctx.uow() as uow:
        client = await repo.get_client(uow.session, client_id)
        if client is None:
            raise NotFound(f"client {client_id} not found")
        until = now + timedelta(seconds=grace) if grace else None
        await repo.update_client(
            uow.session, client_id, secret_hash=ctx.hasher.hash(secret),
            previous_secret_hash=client["secret_hash"] if grace else None, previous_valid_until=until,
            updated_at=now,
        )
        # Tokens issued before the rotation stop working (the old secret, within its grace
        # period, still gets new ones).
        await repo.next_client_generation(uow.session, client_id)
        await uow.commit()
        client = await repo.get_client(uow.session, client_id)
    ctx.generations.raise_to(f"client:{client_id}", client["token_generation"])
    return client, secret, until


async def set_client_disabled(ctx: GatewayContext, client_id: str, disabled: bool) -> dict:
    """Disabling refuses new tokens, the client's API keys and, at once, every token it holds."""
    async with ctx.uow() as uow:
        if await repo.get_client(uow.session, client_id) is None:
            raise NotFound(f"client {client_id} not found")
        await repo.update_client(uow.session, client_id, disabled=disabled, updated_at=now_utc())
        if disabled:
            await repo.next_client_generation(uow.session, client_id)
        await uow.commit()
        client = await repo.get_client(uow.session, client_id)
    ctx.generations.raise_to(f"client:{client_id}", client["token_generation"])
    return client


async def create_api_key(ctx: GatewayContext, client_id: str) -> tuple[str, str]:
    key = accounts.new_api_key()
    async with ctx.uow() as uow:
        if await repo.get_client(uow.session, client_id) is None:
            raise NotFound(f"client {client_id} not found")
        await repo.insert_api_key(uow.session, key_id=key.key_id, client_id=client_id,
                                  digest=accounts.api_key_digest(key.secret), created_at=now_utc())
        await uow.commit()
    return key.key_id, key.token


async def revoke_api_key(ctx: GatewayContext, client_id: str, key_id: str) -> None:
    async with ctx.uow() as uow:
        row = await repo.get_api_key(uow.session, key_id)
        if row is None or row["client_id"] != client_id:
            raise NotFound(f"API key {key_id} not found")
        await repo.revoke_api_key(uow.session, key_id, now_utc())
        await uow.commit()


async def create_user(
    ctx: GatewayContext, *, email: str, name: str, password: str, org_id: str | None, roles: list[str],
) -> dict:
    roles = _check_roles(roles)
    if len(password) < 12:
        raise ValidationFailed("password too short", errors=[FieldError(
            field="body.password", message="at least 12 characters")])
    user_id = str(uuid.uuid4())
    async with ctx.uow() as uow:
        if await repo.get_user_by_email(uow.session, email):
            raise Conflict(f"a user with e-mail {email} already exists")
        await repo.insert_user(
            uow.session, user_id=user_id, email=email.lower(), name=name, org_id=org_id, roles=roles,
            password_hash=ctx.hasher.hash(password), failed_logins=0, disabled=False, created_at=now_utc(),
        )
        await uow.commit()
        return await repo.get_user(uow.session, user_id)


async def set_user_disabled(ctx: GatewayContext, user_id: str, disabled: bool) -> dict:
    """Disabling refuses sign-in and, at once, every token the user holds."""
    async with ctx.uow() as uow:
        if await repo.get_user(uow.session, user_id) is None:
            raise NotFound(f"user {user_id} not found")
        await repo.update_user(uow.session, user_id, disabled=disabled)
        if disabled:
            await repo.next_user_generation(uow.session, user_id)
        await uow.commit()
        user = await repo.get_user(uow.session, user_id)
    ctx.generations.raise_to(f"user:{user_id}", user["token_generation"])
    return user


async def refresh_generations(ctx: GatewayContext) -> None:
    """Learn what other replicas disabled or rotated (this one knows its own changes at once)."""
    async with ctx.uow() as uow:
        ctx.generations.merge(await repo.token_generations(uow.session))


async def unlock_user(ctx: GatewayContext, user_id: str) -> dict:
    async with ctx.uow() as uow:
        if await repo.get_user(uow.session, user_id) is None:
            raise NotFound(f"user {user_id} not found")
        await repo.update_user(uow.session, user_id, failed_logins=0, locked_until=None)
        await uow.commit()
        return await repo.get_user(uow.session, user_id)


# --- accounts that exist from the start -------------------------------------------------------
DEV_ORG_NAMESPACE = uuid.UUID("6f1c3c2e-2d2b-4d6e-9a59-0c6d1f3b7a10")


def dev_org_id(role: str) -> str:
    """The demo organisation each dev-<role> client belongs to (stable across restarts)."""
    return str(uuid.uuid5(DEV_ORG_NAMESPACE, f"demo-{role}"))


async def ensure_bootstrap_admin(ctx: GatewayContext) -> None:
    s = ctx.settings
    if not s.bootstrap_admin_client_id:
        return
    async with ctx.uow() as uow:
        client = await repo.get_client(uow.session, s.bootstrap_admin_client_id)
        if client is None:
            now = now_utc()
            await repo.insert_client(
                uow.session, client_id=s.bootstrap_admin_client_id, name="bootstrap admin", org_id=None,
                roles=["admin"], secret_hash=ctx.hasher.hash(s.bootstrap_admin_secret), created_at=now,
                updated_at=now, disabled=False,
            )
        elif not ctx.hasher.verify(client["secret_hash"], s.bootstrap_admin_secret):
            await repo.update_client(uow.session, s.bootstrap_admin_client_id,
                                     secret_hash=ctx.hasher.hash(s.bootstrap_admin_secret), updated_at=now_utc())
            await repo.next_client_generation(uow.session, s.bootstrap_admin_client_id)
        await uow.commit()


async def ensure_dev_clients(ctx: GatewayContext, known: dict[str, str]) -> dict[str, str]:
    """dev-<role> clients for development; keeps the secrets in `known` that still match."""
    out: dict[str, str] = {}
    now = now_utc()
    async with ctx.uow() as uow:
        for role in ROLES:
            client_id = f"dev-{role}"
            client = await repo.get_client(uow.session, client_id)
            secret = known.get(client_id)
            if client is not None and secret and ctx.hasher.verify(client["secret_hash"], secret):
                out[client_id] = secret
                continue
            secret = secrets.token_urlsafe(24)
            if client is None:
                await repo.insert_client(
                    uow.session, client_id=client_id, name=f"development {role}", org_id=dev_org_id(role),
                    roles=[role], secret_hash=ctx.hasher.hash(secret), created_at=now, updated_at=now,
                    disabled=False,
                )
            else:
                await repo.update_client(uow.session, client_id, secret_hash=ctx.hasher.hash(secret), updated_at=now)
                await repo.next_client_generation(uow.session, client_id)
            out[client_id] = secret
        await uow.commit()
    return out
