"""Disabling a client or a user, or rotating a client's secret, refuses the tokens issued before
at once (not when they expire), on this replica immediately and on the others after their next
refresh from the store."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest
from test_routing_and_auth import bearer, running_gateway, token

from techbridge_gateway.main import create_app

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
async def gw(tmp_path_factory):
    async with running_gateway(tmp_path_factory.mktemp("revocation"), token_generations_refresh_s=0.2) as value:
        yield value


async def new_client(gw, roles=("partner",), **body) -> tuple[str, str, dict]:
    client, _, _ = gw
    admin = await bearer(gw, "admin")
    r = await client.post("/api/v1/clients", headers=admin, json={"name": "revocable", "roles": list(roles), **body})
    assert r.status_code == 201, r.text
    return r.json()["client_id"], r.json()["client_secret"], admin


async def test_disabling_a_client_refuses_its_tokens_at_once(gw):
    client, _, _ = gw
    cid, secret, admin = await new_client(gw)
    held = {"Authorization": "Bearer " + await token(client, cid, secret)}
    assert (await client.get("/api/v1/catalog/echo/x", headers=held)).status_code == 200
    assert (await client.get("/api/v1/subscriptions", headers=held)).status_code == 200

    r = await client.post(f"/api/v1/clients/{cid}/disable", headers=admin)
    assert r.status_code == 200 and r.json()["disabled"] is True
    for path in ("/api/v1/catalog/echo/x", "/api/v1/subscriptions"):
        r = await client.get(path, headers=held)
        assert r.status_code == 401, path
        assert "revoked" in r.json()["detail"] and r.headers["www-authenticate"].startswith("Bearer")
    r = await client.post("/auth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
    assert r.status_code == 401

    # Enabled again: the token held from before stays refused, a new one works.
    await client.post(f"/api/v1/clients/{cid}/enable", headers=admin)
    assert (await client.get("/api/v1/catalog/echo/x", headers=held)).status_code == 401
    fresh = {"Authorization": "Bearer " + await token(client, cid, secret)}
    assert (await client.get("/api/v1/catalog/echo/x", headers=fresh)).status_code == 200


async def test_other_clients_keep_working_when_one_is_disabled(gw):
    client, _, _ = gw
    cid, secret, admin = await new_client(gw)
    other, other_secret, _ = await new_client(gw)
    others = {"Authorization": "Bearer " + await token(client, other, other_secret)}
    await client.post(f"/api/v1/clients/{cid}/disable", headers=admin)
    assert (await client.get("/api/v1/catalog/echo/x", headers=others)).status_code == 200


async def test_rotating_a_secret_refuses_tokens_issued_before(gw):
    client, _, _ = gw
    cid, first, admin = await new_client(gw)
    held = {"Authorization": "Bearer " + await token(client, cid, first)}
    r = await client.post(f"/api/v1/clients/{cid}/secret", headers=admin)
    second = r.json()["client_secret"]
    assert r.json()["previous_secret_valid_until"], "this gateway has a grace period"
    assert (await client.get("/api/v1/catalog/echo/x", headers=held)).status_code == 401
    # Within the grace period the old secret still gets a (new) token; the new secret does too.
    for secret in (first, second):
        fresh = {"Authorization": "Bearer " + await token(client, cid, secret)}
        assert (await client.get("/api/v1/catalog/echo/x", headers=fresh)).status_code == 200


async def test_disabling_a_user_refuses_sign_in_and_tokens_at_once(gw):
    client, _, _ = gw
    admin = await bearer(gw, "admin")
    r = await client.post("/api/v1/users", headers=admin, json={
        "email": "clerk@sme.example", "name": "Clerk", "password": "a long enough password",
        "org_id": "org-sme", "roles": ["enterprise"]})
    user_id = r.json()["user_id"]
    login = {"grant_type": "password", "username": "clerk@sme.example", "password": "a long enough password"}
    r = await client.post("/auth/token", data=login)
    held = {"Authorization": "Bearer " + r.json()["access_token"]}
    assert (await client.get("/api/v1/vouchers/echo/v", headers=held)).status_code == 200

    r = await client.post(f"/api/v1/users/{user_id}/disable", headers=admin)
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert (await client.get("/api/v1/vouchers/echo/v", headers=held)).status_code == 401
    assert (await client.post("/auth/token", data=login)).status_code == 401

    r = await client.post(f"/api/v1/users/{user_id}/enable", headers=admin)
    assert r.json()["disabled"] is False
    assert (await client.get("/api/v1/vouchers/echo/v", headers=held)).status_code == 401
    r = await client.post("/auth/token", data=login)
    fresh = {"Authorization": "Bearer " + r.json()["access_token"]}
    assert (await client.get("/api/v1/vouchers/echo/v", headers=fresh)).status_code == 200


async def test_user_disable_is_admin_only_and_names_unknown_users(gw):
    client, _, _ = gw
    partner = await bearer(gw, "partner")
    admin = await bearer(gw, "admin")
    assert (await client.post("/api/v1/users/nobody/disable", headers=partner)).status_code == 403
    assert (await client.post("/api/v1/users/nobody/disable", headers=admin)).status_code == 404


async def test_another_replica_refuses_after_its_refresh(gw):
    client, secrets, settings = gw
    cid, secret, admin = await new_client(gw)
    held = {"Authorization": "Bearer " + await token(client, cid, secret)}
    # A second gateway process on the same store, like a second replica.
    other_app = create_app(settings)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(other_app.router.lifespan_context(other_app))
        other = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=other_app), base_url="http://gateway-2"))
        assert (await other.get("/api/v1/catalog/echo/x", headers=held)).status_code == 200
        await client.post(f"/api/v1/clients/{cid}/disable", headers=admin)
        # The replica that disabled it refuses at once; the other one within its refresh interval
        # (0.2 s here): wait for it, but not forever.
        assert (await client.get("/api/v1/catalog/echo/x", headers=held)).status_code == 401
        status = 200
        for _ in range(100):
            status = (await other.get("/api/v1/catalog/echo/x", headers=held)).status_code
            if status == 401:
                break
            await asyncio.sleep(0.1)
        assert status == 401, "the other replica never learned that the client was disabled"
