"""The gateway in front of real HTTP upstreams: routing, forwarded identity, limits, 401 cases."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time

import httpx
import jwt
import pytest
from gateway_helpers import ALL_ROLES, INTERNAL_SECRET, free_port, gateway_settings, serve, upstream_app

from techbridge_shared.identity import IDENTITY_HEADER, SIGNATURE_HEADER, Identity, identity_headers
from techbridge_gateway.main import create_app

pytestmark = pytest.mark.timeout(120)


@contextlib.asynccontextmanager
async def running_gateway(tmp_path, **overrides):
    async with contextlib.AsyncExitStack() as stack:
        upstreams = {}
        for name in ("catalog", "matching", "vouchers"):
            upstreams[name] = await stack.enter_async_context(serve(upstream_app(name)))
        upstreams["valuation"] = f"http://127.0.0.1:{free_port()}"  # nothing listens: down
        settings = gateway_settings(tmp_path, upstreams, **overrides)
        app = create_app(settings)
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway"))
        secrets = json.loads((tmp_path / "dev-clients.json").read_text())
        yield client, secrets, settings


@pytest.fixture(scope="module")
async def gw(tmp_path_factory):
    async with running_gateway(tmp_path_factory.mktemp("gw")) as value:
        yield value


async def token(client: httpx.AsyncClient, client_id: str, secret: str) -> str:
    r = await client.post("/auth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


async def bearer(gw, role: str) -> dict[str, str]:
    client, secrets, _ = gw
    return {"Authorization": "Bearer " + await token(client, f"dev-{role}", secrets[f"dev-{role}"])}


# --- routing ----------------------------------------------------------------------------------
async def test_request_reaches_the_service_with_an_identity_it_verifies(gw):
    client, _, _ = gw
    headers = await bearer(gw, "enterprise")
    r = await client.get("/api/v1/catalog/echo/a/b?x=1&y=%E4%B8%AD", headers=headers)
    assert r.status_code == 200
    body = r.json()
    assert body["service"] == "catalog" and body["path"] == "/api/v1/catalog/echo/a/b"
    assert body["query"] == "x=1&y=%E4%B8%AD"
    assert body["identity"]["sub"] == "dev-enterprise"
    assert body["identity"]["roles"] == ["enterprise"] and body["identity"]["org"]
    assert "authorization" not in body["headers"], "the caller's token is not passed on"
    assert r.headers["x-upstream"] == "catalog"


async def test_identity_headers_from_outside_are_replaced(gw):
    client, _, _ = gw
    forged = identity_headers(Identity(sub="mallory", roles=frozenset({"admin"})), INTERNAL_SECRET, "GET",
                              "/api/v1/vouchers/echo/x")
    headers = {**await bearer(gw, "enterprise"), **forged}
    r = await client.get("/api/v1/vouchers/echo/x", headers=headers)
    assert r.json()["identity"]["sub"] == "dev-enterprise"
    # Without a credential the forged headers get nowhere at all.
    r = await client.get("/api/v1/vouchers/echo/x", headers=forged)
    assert r.status_code == 401


async def test_hop_by_hop_headers_are_dropped_both_ways(gw):
    client, _, _ = gw
    headers = {**await bearer(gw, "partner"), "Connection": "x-private", "X-Private": "1", "TE": "trailers",
               "Proxy-Authorization": "Basic abc", "X-Custom": "kept"}
    r = await client.get("/api/v1/matching/echo/h", headers=headers)
    seen = r.json()["headers"]
    assert "x-private" not in seen and "te" not in seen and "proxy-authorization" not in seen
    assert seen["x-custom"] == "kept"
    assert "x-secret-hop" not in r.headers, "a header the upstream named in Connection stays behind"


async def test_only_the_callers_headers_reach_the_service(gw):
    client, _, _ = gw
    headers = {**await bearer(gw, "partner"), "User-Agent": "partner-portal/2.1"}
    r = await client.get("/api/v1/catalog/echo/plain", headers=headers)
    seen = r.json()["headers"]
    assert seen["user-agent"] == "partner-portal/2.1"
    # A caller that sends no Accept, Accept-Encoding or User-Agent: the gateway adds none either
    # (an added Accept-Encoding would get it a compressed body it never asked for).
    async with httpx.AsyncClient(transport=client._transport, base_url="http://gateway") as bare:
        for name in ("accept", "accept-encoding", "user-agent"):
            bare.headers.pop(name, None)
        r = await bare.get("/api/v1/catalog/echo/plain", headers=await bearer(gw, "partner"))
    seen = r.json()["headers"]
    assert not {"accept", "accept-encoding", "user-agent"} & set(seen), seen
    r = await client.request("HEAD", "/api/v1/catalog/echo/head", headers=headers)
    assert r.status_code in (200, 405) and r.content == b""


async def test_proxied_requests_are_measured_per_service(gw):
    client, _, _ = gw
    headers = await bearer(gw, "partner")
    await client.get("/api/v1/matching/echo/measured", headers=headers)
    metrics = (await client.get("/metrics")).text
    assert 'route="/api/v1/matching/{path:path}"' in metrics


async def test_request_id_and_traceparent_are_passed_on_or_created(gw):
    client, _, _ = gw
    headers = await bearer(gw, "partner")
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = await client.get("/api/v1/catalog/echo/t", headers={**headers, "X-Request-ID": "req-42", "traceparent": trace})
    seen = r.json()["headers"]
    assert seen["x-request-id"] == "req-42" and r.headers["x-request-id"] == "req-42"
    parts = seen["traceparent"].split("-")
    assert parts[1] == "4bf92f3577b34da6a3ce929d0e0e4736" and parts[2] != "00f067aa0ba902b7"
    r = await client.get("/api/v1/catalog/echo/t", headers={**headers, "traceparent": "garbage"})
    seen = r.json()["headers"]
    assert len(seen["x-request-id"]) >= 16 and seen["x-request-id"] == r.headers["x-request-id"]
    assert len(seen["traceparent"].split("-")[1]) == 32


async def test_bodies_stream_through_unchanged(gw):
    client, _, _ = gw
    headers = await bearer(gw, "institution")
    payload = bytes(range(256)) * 4096  # 1 MiB

    async def chunks():
        for i in range(0, len(payload), 65536):
            yield payload[i:i + 65536]

    import hashlib
    r = await client.post("/api/v1/catalog/echo/upload", headers=headers, content=chunks())
    assert r.status_code == 200
    assert r.json()["body_length"] == len(payload)
    assert r.json()["body_sha"] == hashlib.sha256(payload).hexdigest()
    # Of known length: small bodies are passed in one piece, larger ones streamed; both arrive whole.
    for size in (10, 200_000):
        r = await client.post("/api/v1/catalog/echo/upload", headers=headers, content=payload[:size])
        assert r.status_code == 200 and r.json()["body_length"] == size
        assert r.json()["headers"]["content-length"] == str(size)
        assert r.json()["body_sha"] == hashlib.sha256(payload[:size]).hexdigest()
    r = await client.get("/api/v1/catalog/big", headers=headers)
    assert r.status_code == 200 and len(r.content) == 64 * 16384


async def test_body_over_the_limit_is_refused_with_413(gw):
    client, _, settings = gw
    headers = await bearer(gw, "institution")
    r = await client.post("/api/v1/catalog/echo/x", headers=headers, content=b"x" * (settings.max_body_bytes + 1))
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"

    async def endless():  # no Content-Length: counted while streaming
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"y" * 65536

    r = await client.post("/api/v1/catalog/echo/x", headers=headers, content=endless())
    assert r.status_code == 413

    async def endless_json():  # cut off at the limit, what reaches the service is malformed JSON
        yield b'{"padding": "'
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"z" * 65536

    # The service answers a cut-off body with 400; the caller still gets 413. (Here the service
    # runs in the test's event loop, so its answer never overtakes the cut; with the service in
    # its own process it can, which tests/faults/test_hostile_input.py exercises.)
    for _ in range(3):
        r = await client.post("/api/v1/catalog/json", headers={**headers, "Content-Type": "application/json"},
                              content=endless_json())
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json", r.text


async def test_upstream_down_gives_503_and_slow_gives_504(gw):
    client, _, _ = gw
    headers = await bearer(gw, "government")
    r = await client.get("/api/v1/valuation/anything", headers=headers)
    assert r.status_code == 503 and r.json()["code"] == "upstream_unavailable"
    assert r.headers["content-type"] == "application/problem+json"
    started = time.monotonic()
    r = await client.get("/api/v1/catalog/slow", headers=headers)
    assert r.status_code == 504 and r.json()["code"] == "upstream_timeout"
    assert time.monotonic() - started < 4.5, "the gateway gave up before the upstream answered"


async def test_page_size_and_query_length_limits(gw):
    client, _, settings = gw
    headers = await bearer(gw, "partner")
    r = await client.get(f"/api/v1/catalog/echo/x?limit={settings.max_page_size + 1}", headers=headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.limit"
    r = await client.get("/api/v1/catalog/echo/x?q=" + "a" * settings.max_query_length, headers=headers)
    assert r.status_code == 414


# --- credentials ------------------------------------------------------------------------------
def _forge(claims: dict, key: str, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def _claims(settings, **changes) -> dict:
    now = int(time.time())
    claims = {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": "dev-admin", "iat": now,
              "nbf": now, "exp": now + 300, "jti": "j", "roles": ["admin"], "org": None, "kind": "client",
              "client_id": "dev-admin"}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not ...}


def _alg_none(claims: dict) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
    return f"{enc({'alg': 'none', 'typ': 'JWT'})}.{enc(claims)}."


@pytest.mark.parametrize("case", [
    "alg_none", "wrong_audience", "wrong_issuer", "expired", "not_yet_valid", "wrong_signature", "no_exp",
    "hs512", "garbage", "basic_scheme", "token_and_api_key", "two_authorization_headers",
])
async def test_bad_credentials_give_401(gw, case):
    client, _, settings = gw
    key = settings.jwt_secret
    now = int(time.time())
    good = (await bearer(gw, "admin"))["Authorization"]
    headers: list[tuple[str, str]] = {
        "alg_none": [("Authorization", "Bearer " + _alg_none(_claims(settings)))],
        "wrong_audience": [("Authorization", "Bearer " + _forge(_claims(settings, aud="other-api"), key))],
        "wrong_issuer": [("Authorization", "Bearer " + _forge(_claims(settings, iss="https://evil"), key))],
        "expired": [("Authorization", "Bearer " + _forge(_claims(settings, iat=now - 4000, nbf=now - 4000,
                                                                   exp=now - 3000), key))],
        "not_yet_valid": [("Authorization", "Bearer " + _forge(_claims(settings, nbf=now + 3000), key))],
        "wrong_signature": [("Authorization", "Bearer " + _forge(_claims(settings), "another-key-" + "k" * 32))],
        "no_exp": [("Authorization", "Bearer " + _forge(_claims(settings, exp=...), key))],
        "hs512": [("Authorization", "Bearer " + _forge(_claims(settings), key, "HS512"))],
        "garbage": [("Authorization", "Bearer not.a.token")],
        "basic_scheme": [("Authorization", "Basic ZGV2LWFkbWluOng=")],
        "token_and_api_key": [("Authorization", good), ("X-API-Key", "tbk_0123456789abcdef_" + "a" * 43)],
        "two_authorization_headers": [("Authorization", good), ("Authorization", good)],
    }[case]
    for path in ("/api/v1/catalog/echo/x", "/api/v1/clients"):
        r = await client.get(path, headers=headers)
        assert r.status_code == 401, (case, path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"].startswith("Bearer")


async def test_token_endpoint_refuses_wrong_secrets_and_two_client_authentications(gw):
    client, secrets, _ = gw
    r = await client.post("/auth/token", data={"grant_type": "client_credentials"}, auth=("dev-admin", "wrong"))
    assert r.status_code == 401 and r.json()["code"] == "invalid_client"
    r = await client.post("/auth/token", data={"grant_type": "client_credentials", "client_id": "dev-admin",
                                               "client_secret": secrets["dev-admin"]},
                          auth=("dev-admin", secrets["dev-admin"]))
    assert r.status_code == 401
    r = await client.post("/auth/token", data={"grant_type": "client_credentials", "client_id": "dev-admin",
                                               "client_secret": secrets["dev-admin"]})
    assert r.status_code == 200
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["roles"] == ["admin"] and claims["exp"] - claims["iat"] == r.json()["expires_in"]
    r = await client.post("/auth/token", data={"grant_type": "authorization_code"})
    assert r.status_code == 400


async def test_registered_client_secret_rotation_and_api_keys(tmp_path):
    async with running_gateway(tmp_path, secret_rotation_grace_s=0) as (client, secrets, _):
        admin = {"Authorization": "Bearer " + await token(client, "dev-admin", secrets["dev-admin"])}
        r = await client.post("/api/v1/clients", headers=admin,
                              json={"name": "Pudong office", "org_id": "org-pudong", "roles": ["government"]})
        assert r.status_code == 201
        cid, first = r.json()["client_id"], r.json()["client_secret"]
        await token(client, cid, first)
        r = await client.post(f"/api/v1/clients/{cid}/secret", headers=admin)
        second = r.json()["client_secret"]
        assert second != first
        r = await client.post("/auth/token", data={"grant_type": "client_credentials"}, auth=(cid, first))
        assert r.status_code == 401, "the rotated secret no longer works (no grace period)"
        gov = {"Authorization": "Bearer " + await token(client, cid, second)}
        r = await client.get("/api/v1/vouchers/echo/k", headers=gov)
        assert r.json()["identity"]["org"] == "org-pudong"

        r = await client.post(f"/api/v1/clients/{cid}/api-keys", headers=admin)
        key_id, api_key = r.json()["key_id"], r.json()["api_key"]
        r = await client.get("/api/v1/vouchers/echo/k", headers={"X-API-Key": api_key})
        assert r.status_code == 200
        assert r.json()["identity"] | {"kind": "client"} == {
            "sub": cid, "org": "org-pudong", "roles": ["government"], "client_id": cid, "kind": "client"}
        assert r.json()["identity"]["kind"] == "api_key"
        r = await client.get("/api/v1/vouchers/echo/k", headers={"X-API-Key": api_key[:-2] + "zz"})
        assert r.status_code == 401
        await client.delete(f"/api/v1/clients/{cid}/api-keys/{key_id}", headers=admin)
        r = await client.get("/api/v1/vouchers/echo/k", headers={"X-API-Key": api_key})
        assert r.status_code == 401

        await client.post(f"/api/v1/clients/{cid}/disable", headers=admin)
        r = await client.post("/auth/token", data={"grant_type": "client_credentials"}, auth=(cid, second))
        assert r.status_code == 401


async def test_rotation_grace_keeps_the_old_secret_working_for_a_while(gw):
    client, secrets, _ = gw
    admin = await bearer(gw, "admin")
    r = await client.post("/api/v1/clients", headers=admin, json={"name": "p", "roles": ["partner"]})
    cid, first = r.json()["client_id"], r.json()["client_secret"]
    r = await client.post(f"/api/v1/clients/{cid}/secret", headers=admin)
    assert r.json()["previous_secret_valid_until"]
    await token(client, cid, first)
    await token(client, cid, r.json()["client_secret"])


async def test_user_password_login_and_lockout(gw):
    client, _, settings = gw
    admin = await bearer(gw, "admin")
    r = await client.post("/api/v1/users", headers=admin, json={
        "email": "Officer@Pudong.gov.cn", "name": "Officer", "password": "correct horse battery",
        "org_id": "org-pudong", "roles": ["government"]})
    assert r.status_code == 201, r.text
    user_id = r.json()["user_id"]
    r = await client.post("/auth/token", data={"grant_type": "password", "username": "officer@pudong.gov.cn",
                                               "password": "correct horse battery"})
    assert r.status_code == 200
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["sub"] == user_id and claims["kind"] == "user" and claims["org"] == "org-pudong"
    for _ in range(settings.login_max_failures):
        r = await client.post("/auth/token", data={"grant_type": "password", "username": "officer@pudong.gov.cn",
                                                   "password": "wrong"})
        assert r.status_code == 401
    r = await client.post("/auth/token", data={"grant_type": "password", "username": "officer@pudong.gov.cn",
                                               "password": "correct horse battery"})
    assert r.status_code == 401 and r.json()["code"] == "account_locked"
    await client.post(f"/api/v1/users/{user_id}/unlock", headers=admin)
    r = await client.post("/auth/token", data={"grant_type": "password", "username": "officer@pudong.gov.cn",
                                               "password": "correct horse battery"})
    assert r.status_code == 200


# --- the auth matrix --------------------------------------------------------------------------
ROUTE_FAMILIES = {
    # family: (method, path, roles allowed at the gateway)
    "catalog": ("GET", "/api/v1/catalog/echo/m", set(ALL_ROLES)),
    "matching": ("GET", "/api/v1/matching/echo/m", set(ALL_ROLES)),
    "vouchers": ("POST", "/api/v1/vouchers/echo/m", set(ALL_ROLES)),
    "clients": ("GET", "/api/v1/clients", {"admin"}),
    "users": ("POST", "/api/v1/users/nobody/unlock", {"admin"}),
    "subscriptions": ("GET", "/api/v1/subscriptions", set(ALL_ROLES)),
}


@pytest.mark.parametrize("family", sorted(ROUTE_FAMILIES))
async def test_auth_matrix(gw, family):
    client, _, _ = gw
    method, path, allowed = ROUTE_FAMILIES[family]
    r = await client.request(method, path)
    assert r.status_code == 401, (family, "anonymous")
    for role in ALL_ROLES:
        r = await client.request(method, path, headers=await bearer(gw, role))
        if role in allowed:
            assert r.status_code in (200, 404), (family, role, r.status_code, r.text)
            if family in ("catalog", "matching", "vouchers"):
                assert r.json()["identity"]["roles"] == [role], "the service sees the caller's verified role"
        else:
            assert r.status_code == 403, (family, role, r.status_code)


async def test_rate_limits_are_per_client(tmp_path):
    async with running_gateway(tmp_path, rate_limit_per_s=0.5, rate_limit_burst=5) as (client, secrets, _):
        noisy = {"Authorization": "Bearer " + await token(client, "dev-partner", secrets["dev-partner"])}
        quiet = {"Authorization": "Bearer " + await token(client, "dev-government", secrets["dev-government"])}
        codes = [(await client.get("/api/v1/catalog/echo/r", headers=noisy)).status_code for _ in range(8)]
        assert codes[:5] == [200] * 5 and codes[5:] == [429] * 3
        r = await client.get("/api/v1/catalog/echo/r", headers=noisy)
        assert int(r.headers["retry-after"]) >= 1 and r.json()["code"] == "rate_limited"
        r = await client.get("/api/v1/catalog/echo/r", headers=quiet)
        assert r.status_code == 200, "another client is not starved by the noisy one"


async def test_token_endpoint_is_rate_limited_per_address(tmp_path):
    async with running_gateway(tmp_path, anonymous_rate_limit_per_s=0.1, anonymous_rate_limit_burst=3) as (
            client, _, _):
        codes = [(await client.post("/auth/token", data={"grant_type": "client_credentials"},
                                    auth=("dev-admin", "guess"))).status_code for _ in range(5)]
        assert codes == [401, 401, 401, 429, 429], "guessing secrets is slowed down"
