"""Real HTTP servers inside the test's event loop: upstream services, webhook receivers, the gateway."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from techbridge_shared.identity import ROLES, Identity, identity_of, verify_identity
from techbridge_shared.testing.asgi import serve
from techbridge_shared.testing.kafka_broker import free_port
from techbridge_gateway.config import Settings

INTERNAL_SECRET = "test-internal-secret-shared-by-gateway-and-services"


class _Runtime:
    def __init__(self, secret: str):
        self.settings = type("S", (), {"internal_auth_secret": secret})()


def upstream_app(service: str, secret: str = INTERNAL_SECRET) -> FastAPI:
    """A stand-in service: verifies the forwarded identity like a real one and echoes the request."""
    app = FastAPI(title=f"Techbridge {service}", generate_unique_id_function=lambda r: f"{r.tags[0] if r.tags else service}-{r.name}")
    app.state.runtime = _Runtime(secret)
    tag = f"{service}-things"

    @app.api_route(f"/api/v1/{service}/echo/{{rest:path}}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
                   include_in_schema=False)
    async def echo(request: Request, rest: str):
        body = await request.body()
        try:
            identity = verify_identity(request.headers, secret, request.method, request.url.path)
            who = identity.model_dump(mode="json")
        except Exception as exc:
            who = {"error": str(exc)}
        return JSONResponse({
            "service": service, "method": request.method, "path": request.url.path,
            "query": request.url.query, "headers": dict(request.headers), "identity": who,
            "body_length": len(body), "body_sha": __import__("hashlib").sha256(body).hexdigest(),
        }, headers={"x-upstream": service, "connection": "keep-alive, x-secret-hop", "x-secret-hop": "1"})

    @app.post(f"/api/v1/{service}/json", include_in_schema=False)
    async def parse_json(body: dict):  # a short body is a 400 here, as in the real services
        return {"keys": len(body)}

    @app.get(f"/api/v1/{service}/slow", include_in_schema=False)
    async def slow():
        await asyncio.sleep(5)
        return {"slow": True}

    @app.get(f"/api/v1/{service}/big", include_in_schema=False)
    async def big():
        async def chunks():
            for _ in range(64):
                yield b"x" * 16384
        return StreamingResponse(chunks(), media_type="application/octet-stream")

    from pydantic import BaseModel

    class Thing(BaseModel):
        thing_id: str
        name: str

    @app.get(f"/api/v1/{service}/things/{{thing_id}}", response_model=Thing, tags=[tag], name="get")
    async def get_thing(thing_id: str, request: Request) -> Thing:
        identity: Identity = identity_of(request)
        return Thing(thing_id=thing_id, name=f"{service} thing for {identity.sub}")

    @app.get("/health/live", include_in_schema=False)
    async def live():
        return {"status": "ok"}

    return app


def gateway_settings(tmp_path, upstreams: dict[str, str] | None = None, **overrides) -> Settings:
    values = dict(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
        kafka_bootstrap_servers="127.0.0.1:1",
        data_dir=str(tmp_path),
        internal_auth_secret=INTERNAL_SECRET,
        password_time_cost=1,
        password_memory_kib=1024,
        upstream_timeout_s=1.0,
        upstream_connect_timeout_s=1.0,
        openapi_refresh_s=0.5,
        anonymous_rate_limit_burst=1000,
    )
    for name, url in (upstreams or {}).items():
        values[f"{name}_url"] = url
    values.update(overrides)
    return Settings(**values)


ALL_ROLES = ROLES
