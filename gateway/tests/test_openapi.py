"""The merged OpenAPI document: valid, complete, usable to generate a client, kept when a service is down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import keyword
import re
import time

import httpx
import pytest
from gateway_helpers import free_port, gateway_settings, serve, upstream_app
from openapi_spec_validator import validate

from techbridge_gateway.main import create_app

pytestmark = pytest.mark.timeout(120)


@contextlib.asynccontextmanager
async def gateway_app(settings):
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        yield app, client


async def wait_available(app, services: set[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while services & app.state.parts.openapi.unavailable:
        assert time.monotonic() < deadline, f"OpenAPI of {services} never fetched"
        await asyncio.sleep(0.1)


def generate_client(spec: dict) -> str:
    """Python source of a client with one method per operation (operationId in snake case)."""
    lines = ["import httpx", "", "class Client:",
             "    def __init__(self, base_url, token, transport=None):",
             "        self._http = httpx.AsyncClient(base_url=base_url, transport=transport,",
             "                                       headers={'Authorization': 'Bearer ' + token})", ""]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            name = re.sub(r"[^0-9a-zA-Z]+", "_", op["operationId"]).strip("_").lower()
            params = [p["name"] for p in op.get("parameters", []) if p["in"] in ("path", "query")]
            args = ", ".join(["self"] + [p + ("_" if keyword.iskeyword(p) else "") + "=None" for p in params]
                             + (["body=None"] if "requestBody" in op else []))
            path_params = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
            query = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
            lines += [
                f"    async def {name}({args}):",
                f"        path = {path!r}" + "".join(f".replace('{{{p}}}', str({p}))" for p in path_params),
                "        params = {k: v for k, v in {" + ", ".join(f"{q!r}: {q}" for q in query)
                + "}.items() if v is not None}",
                f"        r = await self._http.request({method.upper()!r}, path, params=params"
                + (", json=body" if "requestBody" in op else "") + ")",
                "        r.raise_for_status()",
                "        return r.json() if r.content else None", "",
            ]
    return "\n".join(lines)


async def test_merged_document_validates_and_a_generated_client_works(tmp_path):
    async with contextlib.AsyncExitStack() as stack:
        urls = {n: await stack.enter_async_context(serve(upstream_app(n))) for n in ("catalog", "vouchers")}
        urls["matching"] = urls["valuation"] = f"http://127.0.0.1:{free_port()}"
        app, client = await stack.enter_async_context(gateway_app(gateway_settings(tmp_path, urls)))
        await wait_available(app, {"catalog", "vouchers"})
        r = await client.get("/openapi.json")
        spec = r.json()
        validate(spec)
        assert "/api/v1/catalog/things/{thing_id}" in spec["paths"]
        assert "/api/v1/vouchers/things/{thing_id}" in spec["paths"]
        assert "/auth/token" in spec["paths"] and "/api/v1/subscriptions" in spec["paths"]
        assert not any(p.startswith("/health") for p in spec["paths"])
        assert set(spec["components"]["securitySchemes"]) == {"oauth2", "bearer", "apiKey"}
        op = spec["paths"]["/api/v1/catalog/things/{thing_id}"]["get"]
        assert op["operationId"] == "catalog-things-get" and "401" in op["responses"] and "503" in op["responses"]
        assert spec["paths"]["/auth/token"]["post"]["security"] == []
        ids = [o["operationId"] for item in spec["paths"].values() for o in item.values() if isinstance(o, dict)]
        assert len(ids) == len(set(ids))
        assert sorted(spec["info"]["x-techbridge-unavailable"]) == ["matching", "valuation"]
        r = await client.get("/docs")
        assert r.status_code == 200 and "/openapi.json" in r.text

        namespace: dict = {}
        exec(compile(generate_client(spec), "generated_client.py", "exec"), namespace)
        secrets = json.loads((tmp_path / "dev-clients.json").read_text())
        tok = (await client.post("/auth/token", data={"grant_type": "client_credentials"},
                                 auth=("dev-partner", secrets["dev-partner"]))).json()["access_token"]
        generated = namespace["Client"]("http://gateway", tok, transport=httpx.ASGITransport(app=app))
        thing = await generated.catalog_things_get(thing_id="t-1")
        assert thing == {"thing_id": "t-1", "name": "catalog thing for dev-partner"}
        subs = await generated.subscriptions_list()
        assert subs == {"items": [], "next_cursor": None}


async def test_document_survives_a_service_going_down_and_a_gateway_restart(tmp_path):
    port = free_port()
    urls = {"catalog": f"http://127.0.0.1:{port}", "matching": f"http://127.0.0.1:{free_port()}",
            "valuation": f"http://127.0.0.1:{free_port()}", "vouchers": f"http://127.0.0.1:{free_port()}"}
    settings = gateway_settings(tmp_path, urls)
    async with serve(upstream_app("catalog"), port=port):
        async with gateway_app(settings) as (app, client):
            await wait_available(app, {"catalog"})
            assert "/api/v1/catalog/things/{thing_id}" in (await client.get("/openapi.json")).json()["paths"]
    # catalog is down now, and the gateway starts afresh: the stored copy is served.
    async with gateway_app(settings) as (app, client):
        deadline = time.monotonic() + 10
        while app.state.parts.openapi.documents["catalog"] is None:
            assert time.monotonic() < deadline, "the stored document was never loaded"
            await asyncio.sleep(0.05)
        r = await client.get("/openapi.json")
        assert r.status_code == 200
        validate(r.json())
        assert "/api/v1/catalog/things/{thing_id}" in r.json()["paths"]
        assert "catalog" in r.json()["info"]["x-techbridge-unavailable"]


async def test_asyncapi_document_names_every_topic_and_is_served(tmp_path):
    import yaml

    from techbridge_gateway.events.consumer import KNOWN_TOPICS

    settings = gateway_settings(tmp_path)
    async with gateway_app(settings) as (_app, client):
        r = await client.get("/asyncapi.yaml")
    assert r.status_code == 200
    doc = yaml.safe_load(r.text)
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == set(KNOWN_TOPICS)
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert "techbridge.matching.transfer.offer-made.v1" in names
    assert "techbridge.catalog.achievement.published.v1" in names
    data = doc["components"]["schemas"]["MatchingTransferSignedData"]["properties"]
    assert {"seller_org_id", "buyer_org_id", "price", "royalty_rate_bp"} <= set(data)


async def test_old_events_and_finished_deliveries_are_pruned_but_pending_ones_stay(tmp_path):
    from datetime import UTC, datetime, timedelta

    from techbridge_gateway.service.auth import now_utc
    from techbridge_gateway.store import repositories as repo

    async with gateway_app(gateway_settings(tmp_path)) as (app, _client):
        ctx = app.state.gateway
        old = now_utc() - timedelta(days=40)
        async with ctx.uow() as uow:
            s = uow.session
            await repo.insert_subscription(s, subscription_id="s1", owner_sub="x", owner_kind="client", owner_org=None,
                                           owner_roles=["government"], callback_url="https://example.com/",
                                           types=["*"], secret="x" * 16, description="", active=True, created_at=old)
            seqs = []
            for i, received in enumerate([old, old, now_utc()]):
                seqs.append(await repo.insert_event(
                    s, event_id=f"e{i}", source="/techbridge/t", type="techbridge.t.a.done.v1", subject="a",
                    time=received, orgs=[], payload="{}", received_at=received))
            for i, (seq, status) in enumerate(zip(seqs, ["delivered", "pending", "delivered"])):
                await repo.insert_deliveries(s, [{
                    "delivery_id": f"d{i}", "subscription_id": "s1", "event_seq": seq, "event_id": f"e{i}",
                    "event_type": "techbridge.t.a.done.v1", "subject": "a", "status": status, "attempts": 1,
                    "next_attempt_at": datetime.now(UTC) + timedelta(days=1), "created_at": old}])
            await repo.insert_attempt(s, delivery_id="d0", attempt=1, at=old, status_code=204, error=None, duration_ms=1)
            await uow.commit()
        await app.state.parts.webhooks.prune()
        async with ctx.uow() as uow:
            left = [e["event_id"] for e in await repo.events_after(uow.session, 0, 10)]
            assert left == ["e1", "e2"], "the old delivered event goes; the pending one and the recent one stay"
            assert await repo.get_delivery(uow.session, "d0") is None
            assert (await repo.get_delivery(uow.session, "d1"))["status"] == "pending"
