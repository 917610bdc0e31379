"""problem+json, request ids and pagination, through a real FastAPI app in-process."""

import logging

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field

from techbridge_shared.errors import Conflict, install_problem_handlers
from techbridge_shared.http import RequestContextMiddleware
from techbridge_shared.pagination import PageParams, decode_cursor, encode_cursor, page_params, paginate


class Offer(BaseModel):
    price: int = Field(ge=0)
    currency: str = Field(pattern="^[A-Z]{3}$")


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, service="demo")

    @app.post("/offers")
    async def offer(body: Offer):
        raise Conflict("cannot make an offer on a signed deal (signed -> negotiating)", code="illegal_transition")

    @app.get("/numbers")
    async def numbers(params: PageParams = Depends(page_params)):
        start = params.cursor["after"] if params.cursor else 0
        rows = list(range(start + 1, min(start + 1 + params.limit + 1, 26)))
        return paginate(rows, params.limit, key=lambda n: {"after": n})

    @app.get("/offers/{offer_id}")
    async def one_offer(offer_id: str):
        return {"id": offer_id}

    @app.get("/deadlock")
    async def deadlock():
        import asyncpg
        from sqlalchemy.exc import DBAPIError

        try:
            raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
        except asyncpg.PostgresError as exc:
            raise DBAPIError("UPDATE deliveries ...", {}, exc) from exc

    @app.get("/boom")
    async def boom():
        raise RuntimeError("secret internals")

    @app.get("/unreachable")
    async def unreachable(how: str):
        import asyncpg
        from sqlalchemy.exc import DBAPIError

        if how == "refused":  # the server is down: no connection can be made
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        if how == "closed":  # a statement on a connection the server has since closed
            raise asyncpg.InterfaceError("connection is closed")
        if how == "shutting-down":  # through SQLAlchemy, as the general path sees it
            try:
                raise asyncpg.CannotConnectNowError("the database system is shutting down")
            except asyncpg.PostgresError as exc:
                raise DBAPIError("SELECT 1", {}, exc) from exc
        raise asyncpg.InterfaceError("cannot perform operation: another operation is in progress")

    return app


@pytest.fixture
async def client():
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_validation_errors_name_each_field(client):
    r = await client.post("/offers", json={"price": -1, "currency": "yuan"})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "validation_failed" and body["instance"] == "/offers"
    assert {e["field"] for e in body["errors"]} == {"body.price", "body.currency"}


async def test_domain_problems_keep_their_status_and_code(client):
    r = await client.post("/offers", json={"price": 1, "currency": "CNY"})
    assert r.status_code == 409
    assert r.json()["code"] == "illegal_transition"
    assert "signed -> negotiating" in r.json()["detail"]


async def test_unexpected_errors_do_not_leak_internals(client):
    r = await client.get("/boom")
    assert r.status_code == 500
    assert "secret internals" not in r.text and r.json()["code"] == "internal_error"


async def test_a_body_that_is_not_utf8_is_a_422_naming_the_body(client):
    r = await client.post("/offers", content=b'{"price": 1, "currency": "\xff\xfe"}',
                          headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == ["body"]


@pytest.mark.parametrize("target", ["/offers/a%00b", "/offers/a%0Ab", "/offers/a%7Fb", "/numbers?limit=5&cursor=%00"])
async def test_control_characters_in_the_path_or_nul_in_the_query_are_refused(client, target):
    r = await client.get(target)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] in ("path", "query")
    assert r.headers["x-request-id"]


async def test_ordinary_percent_encoded_paths_still_reach_their_route(client):
    r = await client.get("/offers/%E9%94%82%20x")
    assert r.status_code == 200 and r.json() == {"id": "锂 x"}


async def test_a_transaction_lost_to_a_concurrent_one_is_a_retryable_503(client):
    r = await client.get("/deadlock")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["code"] == "concurrent_update" and "UPDATE" not in r.text


@pytest.mark.parametrize("how", ["refused", "closed", "shutting-down"])
async def test_a_database_out_of_reach_is_a_retryable_503_with_its_request_id(client, caplog, how):
    with caplog.at_level(logging.INFO, logger="techbridge.access"):
        r = await client.get("/unreachable", params={"how": how}, headers={"X-Request-ID": f"down-{how}"})
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "database_unavailable" and r.headers["retry-after"]
    assert "5432" not in r.text and "asyncpg" not in r.text
    # Answered inside the app's middleware: the caller's request id comes back, and the access
    # log (and so the metrics) record the 503 the caller saw.
    assert r.headers["x-request-id"] == f"down-{how}"
    assert [rec.status for rec in caplog.records if rec.name == "techbridge.access"] == [503]


async def test_a_driver_error_that_is_not_a_lost_connection_stays_a_500(client):
    r = await client.get("/unreachable", params={"how": "misuse"})
    assert r.status_code == 500 and r.json()["code"] == "internal_error"
    assert "another operation" not in r.text


async def test_request_id_is_passed_on_or_created(client):
    r = await client.get("/numbers", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert len((await client.get("/numbers")).headers["x-request-id"]) == 32


async def test_cursor_pagination_walks_every_item_once(client):
    seen, cursor = [], None
    while True:
        r = await client.get("/numbers", params={"limit": 7, **({"cursor": cursor} if cursor else {})})
        page = r.json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(range(1, 26))
    assert (await client.get("/numbers", params={"limit": 101})).status_code == 422
    bad = await client.get("/numbers", params={"cursor": "not-a-cursor!"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.cursor"


def test_cursor_round_trip():
    assert decode_cursor(encode_cursor({"after": "2026-01-01", "id": 7})) == {"after": "2026-01-01", "id": 7}
