"""Vouchers test support: the app in-process on a real store, callers with signed identities."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from techbridge_shared.envelope import new_event
from techbridge_shared.identity import Identity, identity_headers

from techbridge_vouchers.config import Settings
from techbridge_vouchers.events.consumed import on_organisation
from techbridge_vouchers.main import create_app



class Api:
    def __init__(self, client: httpx.AsyncClient, app):
        self.client = client
        self.app = app
        self.runtime = app.state.runtime
        self.secret = self.runtime.settings.internal_auth_secret
        self.gov = Identity(sub="officer-1", org="gov-1", roles=frozenset({"government"}), client_id="gov-portal")
        self.gov2 = Identity(sub="officer-2", org="gov-1", roles=frozenset({"government"}), client_id="gov-portal")

    @staticmethod
    def enterprise(org: str) -> Identity:
        return Identity(sub=f"user-{org}", org=org, roles=frozenset({"enterprise"}), client_id=f"client-{org}")

    @staticmethod
    def agency(org: str) -> Identity:
        return Identity(sub=f"user-{org}", org=org, roles=frozenset({"agency"}), client_id=f"client-{org}")

    async def call(self, method: str, path: str, who: Identity | None, *, json: Any = None, key: str | None = None,
                   params: dict | None = None) -> httpx.Response:
        path = "/api/v1/vouchers" + path
        headers = identity_headers(who, self.secret, method, path) if who else {}
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.client.request(method, path, json=json, headers=headers, params=params)

    async def ok(self, method: str, path: str, who: Identity, *, json: Any = None, key: str | bool | None = True,
                 status: int | None = None, params: dict | None = None) -> Any:
        if key is True:
            key = str(uuid.uuid4())
        r = await self.call(method, path, who, json=json, key=key or None, params=params)
        assert r.status_code == (status or (201 if method == "POST" and r.status_code == 201 else 200)), r.text
        return r.json()

    async def register_org(self, org_id: str, *, headcount: int | None = 50, revenue: int | None = 10_000_000_00,
                           region: str = "Shanghai/Pudong", kind: str = "enterprise",
                           registered_on: date | None = date(2020, 1, 1)) -> None:
        event = new_event(service="catalog", aggregate="organisation", verb="registered", subject=org_id, data={
            "organisation_id": org_id, "name": f"Org {org_id}", "name_en": f"Org {org_id}", "kind": kind,
            "region": region, "credit_code": "91310000XXXXXXXXXX", "headcount": headcount,
            "annual_revenue": {"amount": revenue, "currency": "CNY"} if revenue is not None else None,
            "registered_on": registered_on.isoformat() if registered_on else None,
        })
        async with self.runtime.unit_of_work() as uow:
            await on_organisation(uow, event)
            await uow.commit()

    def programme_body(self, **over) -> dict:
        now = datetime.now(UTC)
        body = {
            "name": "Pudong innovation vouchers 2026",
            "budget": {"amount": 1_000_000, "currency": "CNY"},
            "face_values": [{"amount": 50, "currency": "CNY"}, {"amount": 10_000, "currency": "CNY"},
                            {"amount": 100_000, "currency": "CNY"}],
            "max_invoice_share_bp": 5000,
            "annual_quota": {"amount": 200_000, "currency": "CNY"},
            "categories": ["testing", "ip-services", "technology-transfer"],
            "eligibility": {"max_headcount": 300, "max_annual_revenue": {"amount": 40_000_000_00, "currency": "CNY"},
                            "regions": ["Shanghai"], "min_registration_age_days": 365},
            "applications_open_at": (now - timedelta(days=1)).isoformat(),
            "applications_close_at": (now + timedelta(days=60)).isoformat(),
            "validity_days": 180,
            "unspent_policy": "return_to_budget",
            "reminder_days": 30,
            "review_levels": 1,
        }
        body.update(over)
        return body

    async def open_programme(self, **over) -> dict:
        return await self.ok("POST", "/programmes", self.gov, json=self.programme_body(**over), status=201)

    async def approved_agency(self, programme_id: str, org: str, categories=("testing", "ip-services")) -> Identity:
        who = self.agency(org)
        await self.ok("POST", f"/programmes/{programme_id}/agencies", who, json={"categories": list(categories)},
                      key=None, status=201)
        await self.ok("POST", f"/programmes/{programme_id}/agencies/{org}/approve", self.gov, json={"reason": "ok"},
                      key=None)
        return who

    async def issued_voucher(self, programme_id: str, org: str, amount: int) -> dict:
        ent = self.enterprise(org)
        app = await self.ok("POST", f"/programmes/{programme_id}/applications", ent,
                            json={"face_value": {"amount": amount, "currency": "CNY"}, "purpose": "testing"},
                            key=None, status=201)
        assert app["state"] == "submitted", app
        reviewed = await self.ok("POST", f"/applications/{app['id']}/reviews", self.gov,
                                 json={"decision": "approve", "reason": ""})
        assert reviewed["state"] == "approved", reviewed
        return await self.ok("GET", f"/vouchers/{reviewed['voucher_id']}", ent, key=None)

    def redemption_body(self, voucher: dict, amount: int, invoice: int, **over) -> dict:
        body = {"voucher_id": voucher["id"], "enterprise_org_id": voucher["enterprise_org_id"],
                "amount": {"amount": amount, "currency": "CNY"}, "invoice_amount": {"amount": invoice, "currency": "CNY"},
                "invoice_ref": f"INV-{uuid.uuid4().hex[:8]}", "category": "testing"}
        body.update(over)
        return body

    async def check(self) -> dict:
        return await self.ok("GET", "/ledger/check", self.gov, key=None)

    async def outbox_types(self) -> list[str]:
        from sqlalchemy import select
        outbox = self.runtime.spec.outbox
        async with self.runtime.db.engine.connect() as conn:
            return list((await conn.execute(select(outbox.c.type).order_by(outbox.c.seq))).scalars())


def settings_for(url: str, kafka: str, **over) -> Settings:
    # A consumer group prefix per app, so offsets of one test never hide events from another.
    values = dict(database_url=url, kafka_bootstrap_servers=kafka, expiry_sweep_interval_s=0, ledger_check_interval_s=0,
                  environment="test", database_pool_size=20,
                  consumer_group_prefix=f"vouchers-test-{uuid.uuid4().hex[:8]}")
    values.update(over)
    return Settings(**values)


async def _api(url: str, kafka: str, **over) -> AsyncIterator[Api]:
    app = create_app(settings_for(url, kafka, **over))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://vouchers", timeout=120) as client:
            yield Api(client, app)


@pytest.fixture
async def api(store_url, kafka_bootstrap) -> AsyncIterator[Api]:
    async for a in _api(store_url, kafka_bootstrap):
        yield a


@pytest.fixture
async def api_factory(kafka_bootstrap):
    """Build an Api on a given URL with extra settings (async context manager)."""
    import contextlib

    @contextlib.asynccontextmanager
    async def make(url: str, **over):
        gen = _api(url, kafka_bootstrap, **over)
        a = await gen.__anext__()
        try:
            yield a
        finally:
            await gen.aclose()
    return make
