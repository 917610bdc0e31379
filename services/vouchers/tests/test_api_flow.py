"""A programme's whole life through the REST API, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from techbridge_shared.identity import Identity

pytestmark = pytest.mark.postgres

# Sweeping as of a future time (a test clock) is an administrator's call.
ADMIN = Identity(sub="admin-1", org=None, roles=frozenset({"admin"}), client_id="ops")


async def test_only_an_administrator_sweeps_as_of_a_future_time(api):
    future = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    r = await api.call("POST", "/maintenance/expiry-sweep", api.gov, json={"as_of": future}, key=None)
    assert r.status_code == 403 and r.json()["code"] == "future_sweep_admin_only"
    assert (await api.ok("POST", "/maintenance/expiry-sweep", api.gov, json={}, key=None)).keys() == {"expired", "reminded"}
    assert (await api.ok("POST", "/maintenance/expiry-sweep", ADMIN, json={"as_of": future}, key=None)).keys() == \
        {"expired", "reminded"}


async def test_programme_to_payout_and_clawback(api):
    # Government opens a programme; the key makes the opening idempotent.
    key = str(uuid.uuid4())
    body = api.programme_body()
    r1 = await api.call("POST", "/programmes", api.gov, json=body, key=key)
    assert r1.status_code == 201, r1.text
    r2 = await api.call("POST", "/programmes", api.gov, json=body, key=key)
    assert r2.status_code == 201 and r2.json() == r1.json()
    assert r2.headers.get("Idempotent-Replayed") == "true"
    other = await api.call("POST", "/programmes", api.gov, json={**body, "name": "another"}, key=key)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    missing = await api.call("POST", "/programmes", api.gov, json=body)
    assert missing.status_code == 400 and missing.json()["code"] == "idempotency_key_required"
    p = r1.json()
    pid = p["id"]
    assert p["budget"] == {"amount": 1_000_000, "currency": "CNY"} and p["unissued"]["amount"] == 1_000_000
    listed = await api.ok("GET", "/programmes", api.gov, key=None)
    assert [x["id"] for x in listed["items"]] == [pid]

    # Top-up; its key cannot be reused on another endpoint.
    top_key = str(uuid.uuid4())
    p = await api.ok("POST", f"/programmes/{pid}/top-ups", api.gov, key=top_key,
                     json={"amount": {"amount": 500_000, "currency": "CNY"}})
    assert p["budget"]["amount"] == 1_500_000
    r = await api.call("POST", "/programmes", api.gov, json=body, key=top_key)
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"

    # Eligibility: one rule failing is named, and the application is refused automatically.
    await api.register_org("ent-sme")
    await api.register_org("ent-big", headcount=5000, region="Beijing/Haidian")
    big = await api.ok("POST", f"/programmes/{pid}/applications", api.enterprise("ent-big"),
                       json={"face_value": {"amount": 10_000, "currency": "CNY"}}, key=None, status=201)
    assert big["state"] == "ineligible" and not big["eligible"]
    failed = {c["rule"] for c in big["checks"] if not c["passed"]}
    assert failed == {"headcount", "region"}
    unknown = await api.ok("POST", f"/programmes/{pid}/applications", api.enterprise("ent-unknown"),
                           json={"face_value": {"amount": 10_000, "currency": "CNY"}}, key=None, status=201)
    assert unknown["checks"][0] == {"rule": "organisation_registered", "passed": False,
                                    "detail": unknown["checks"][0]["detail"]}

    # Agency registry.
    agency = await api.approved_agency(pid, "agency-a")
    outsider = api.agency("agency-b")
    await api.ok("POST", f"/programmes/{pid}/agencies", outsider, json={"categories": ["testing"]}, key=None,
                  status=201)  # applied, never approved

    # Issue a voucher of 100 000 to the SME.
    v = await api.issued_voucher(pid, "ent-sme", 100_000)
    vid = v["id"]
    assert v["available"]["amount"] == 100_000 and v["state"] == "active"
    # Another enterprise cannot see it.
    r = await api.call("GET", f"/vouchers/{vid}", api.enterprise("ent-big"))
    assert r.status_code == 404

    # Refusals, each naming its reason and changing nothing.
    async def refused(who, body, code):
        r = await api.call("POST", "/redemptions", who, json=body, key=str(uuid.uuid4()))
        assert r.status_code == 409, r.text
        assert r.json()["code"] == code, r.json()

    await refused(agency, api.redemption_body(v, 60_000, 100_000), "invoice_share_exceeded")
    await refused(agency, api.redemption_body(v, 100_001, 300_000), "insufficient_balance")
    await refused(agency, api.redemption_body(v, 10, 100, enterprise_org_id="ent-big"), "voucher_of_another_enterprise")
    await refused(agency, api.redemption_body(v, 10, 100, category="technology-transfer"),
                  "agency_not_approved_for_category")
    await refused(outsider, api.redemption_body(v, 10, 100), "agency_not_approved")
    v_now = await api.ok("GET", f"/vouchers/{vid}", api.gov, key=None)
    assert v_now["available"]["amount"] == 100_000 and v_now["reserved"]["amount"] == 0

    # Reserve, then settle by the enterprise, then pay out.
    red = await api.ok("POST", "/redemptions", agency, json=api.redemption_body(v, 40_000, 80_000), status=201)
    assert red["state"] == "reserved"
    v_now = await api.ok("GET", f"/vouchers/{vid}", api.gov, key=None)
    assert (v_now["available"]["amount"], v_now["reserved"]["amount"]) == (60_000, 40_000)
    r = await api.call("POST", f"/redemptions/{red['id']}/settle", agency, key=str(uuid.uuid4()))
    assert r.status_code == 403  # the agency cannot confirm its own delivery
    settled = await api.ok("POST", f"/redemptions/{red['id']}/settle", api.enterprise("ent-sme"))
    assert settled["state"] == "settled" and settled["settled_by"] == "enterprise:ent-sme"
    r = await api.call("POST", f"/redemptions/{red['id']}/void", agency, json={"reason": "x"}, key=str(uuid.uuid4()))
    assert r.status_code == 409 and r.json()["code"] == "redemption_settled"

    # A second reservation, voided; settling it afterwards is refused.
    red2 = await api.ok("POST", "/redemptions", agency, json=api.redemption_body(v, 5_000, 10_000), status=201)
    voided = await api.ok("POST", f"/redemptions/{red2['id']}/void", agency, json={"reason": "service cancelled"})
    assert voided["state"] == "voided"
    r = await api.call("POST", f"/redemptions/{red2['id']}/settle", api.gov, key=str(uuid.uuid4()))
    assert r.status_code == 409 and r.json()["code"] == "redemption_voided"

    paid = await api.ok("POST", f"/redemptions/{red['id']}/payout", api.gov, json={"reference": "BANK-1"})
    assert paid["state"] == "paid"
    clawed = await api.ok("POST", f"/redemptions/{red['id']}/clawback", api.gov,
                          json={"amount": {"amount": 10_000, "currency": "CNY"}, "reason": "invoice overstated"})
    assert clawed["clawed_back"]["amount"] == 10_000
    r = await api.call("POST", f"/redemptions/{red['id']}/clawback", api.gov, key=str(uuid.uuid4()),
                       json={"amount": {"amount": 30_001, "currency": "CNY"}, "reason": "again"})
    assert r.status_code == 409 and r.json()["code"] == "clawback_exceeds_settled"

    # Freeze blocks redemption; unfreeze allows it again.
    await api.ok("POST", f"/vouchers/{vid}/freeze", api.gov, json={"reason": "audit"}, key=None)
    await refused(agency, api.redemption_body(v, 10, 100), "voucher_frozen")
    await api.ok("POST", f"/vouchers/{vid}/unfreeze", api.gov, key=None)

    # An open reservation is released when the voucher expires; value returns to the budget.
    await api.ok("POST", "/redemptions", agency, json=api.redemption_body(v, 1_000, 10_000), status=201)
    far = (datetime.now(UTC) + timedelta(days=200)).isoformat()
    sweep = await api.ok("POST", "/maintenance/expiry-sweep", ADMIN, json={"as_of": far}, key=None)
    assert sweep == {"expired": 1, "reminded": 0}
    v_now = await api.ok("GET", f"/vouchers/{vid}", api.gov, key=None)
    assert v_now["state"] == "expired" and v_now["available"]["amount"] == 0 and v_now["reserved"]["amount"] == 0
    await refused(agency, api.redemption_body(v, 10, 100), "voucher_expired")

    # Every fen accounted for, from the journal alone.
    dash = await api.ok("GET", f"/programmes/{pid}/dashboard", api.gov, key=None)
    assert dash["ledger_ok"], dash["problems"]
    assert dash["budget"]["amount"] == 1_500_000
    assert dash["paid"]["amount"] == 30_000  # 40 000 settled, 10 000 clawed back
    assert dash["unissued"]["amount"] == 1_500_000 - 30_000
    assert dash["reserved"]["amount"] == 0 and dash["expired"]["amount"] == 0
    check = await api.check()
    assert check["ok"], check["problems"]
    statement = await api.ok("GET", f"/vouchers/{vid}/statement", api.gov, key=None)
    kinds = [line["kind"] for line in statement["items"]]
    assert kinds == ["issue", "reserve", "settle", "reserve", "void", "reserve", "void", "expire"]
    agency_statement = await api.ok("GET", "/agencies/agency-a/statement", agency, key=None)
    assert agency_statement["balances"][f"agency:{pid}:agency-a:paid"] == 30_000
    csv = await api.client.get(f"/api/v1/vouchers/programmes/{pid}/journal.csv", headers=__import__(
        "techbridge_shared.identity", fromlist=["x"]).identity_headers(
        api.gov, api.secret, "GET", f"/api/v1/vouchers/programmes/{pid}/journal.csv"))
    assert csv.status_code == 200 and csv.text.splitlines()[0].startswith("seq,entry_id,kind")

    types = await api.outbox_types()
    for t in ("programme.opened", "programme.topped-up", "application.submitted", "application.rejected",
              "application.approved", "agency.approved", "voucher.issued", "voucher.frozen", "voucher.unfrozen",
              "voucher.expired", "redemption.reserved", "redemption.settled", "redemption.voided", "redemption.paid",
              "redemption.clawed-back"):
        assert f"techbridge.vouchers.{t}.v1" in types, t


async def test_two_level_review_needs_two_reviewers_and_respects_the_quota(api):
    p = await api.open_programme(review_levels=2, annual_quota={"amount": 100_000, "currency": "CNY"})
    pid = p["id"]
    await api.register_org("ent-1")
    ent = api.enterprise("ent-1")
    app = await api.ok("POST", f"/programmes/{pid}/applications", ent,
                       json={"face_value": {"amount": 100_000, "currency": "CNY"}}, key=None, status=201)
    first = await api.ok("POST", f"/applications/{app['id']}/reviews", api.gov, json={"decision": "approve"})
    assert first["state"] == "partly_approved" and first["voucher_id"] is None
    r = await api.call("POST", f"/applications/{app['id']}/reviews", api.gov, json={"decision": "approve"},
                       key=str(uuid.uuid4()))
    assert r.status_code == 403 and r.json()["code"] == "same_reviewer"
    second = await api.ok("POST", f"/applications/{app['id']}/reviews", api.gov2, json={"decision": "approve"})
    assert second["state"] == "approved" and second["voucher_id"]
    # The quota is used up for this year: the next application lists the failing rule.
    again = await api.ok("POST", f"/programmes/{pid}/applications", ent,
                         json={"face_value": {"amount": 10_000, "currency": "CNY"}}, key=None, status=201)
    assert again["state"] == "ineligible"
    assert [c["rule"] for c in again["checks"] if not c["passed"]] == ["annual_quota"]
    # A rejection needs a reason.
    await api.register_org("ent-2")
    app2 = await api.ok("POST", f"/programmes/{pid}/applications", api.enterprise("ent-2"),
                        json={"face_value": {"amount": 10_000, "currency": "CNY"}}, key=None, status=201)
    r = await api.call("POST", f"/applications/{app2['id']}/reviews", api.gov, json={"decision": "reject"},
                       key=str(uuid.uuid4()))
    assert r.status_code == 422
    rejected = await api.ok("POST", f"/applications/{app2['id']}/reviews", api.gov,
                            json={"decision": "reject", "reason": "duplicate funding"})
    assert rejected["state"] == "rejected"
    assert (await api.check())["ok"]


async def test_reminder_then_lapse_and_revocation(api):
    p = await api.open_programme(unspent_policy="lapse", validity_days=60, reminder_days=10)
    pid = p["id"]
    await api.register_org("ent-r")
    v1 = await api.issued_voucher(pid, "ent-r", 10_000)
    v2 = await api.issued_voucher(pid, "ent-r", 10_000)
    soon = (datetime.now(UTC) + timedelta(days=55)).isoformat()
    assert await api.ok("POST", "/maintenance/expiry-sweep", ADMIN, json={"as_of": soon}, key=None) == \
        {"expired": 0, "reminded": 2}
    # Reminders go out once.
    assert await api.ok("POST", "/maintenance/expiry-sweep", ADMIN, json={"as_of": soon}, key=None) == \
        {"expired": 0, "reminded": 0}
    revoked = await api.ok("POST", f"/vouchers/{v2['id']}/revoke", api.gov, json={"reason": "false declaration"})
    assert revoked["state"] == "revoked" and revoked["available"]["amount"] == 0
    later = (datetime.now(UTC) + timedelta(days=61)).isoformat()
    assert await api.ok("POST", "/maintenance/expiry-sweep", ADMIN, json={"as_of": later}, key=None) == \
        {"expired": 1, "reminded": 0}
    dash = await api.ok("GET", f"/programmes/{pid}/dashboard", api.gov, key=None)
    assert dash["expired"]["amount"] == 10_000 and dash["revoked"]["amount"] == 10_000
    assert dash["unissued"]["amount"] == 1_000_000 - 20_000 and dash["ledger_ok"]
    types = await api.outbox_types()
    assert types.count("techbridge.vouchers.voucher.expiring.v1") == 2
    assert "techbridge.vouchers.voucher.revoked.v1" in types
    assert v1["id"] != v2["id"]


async def test_the_journal_is_append_only_and_tampering_is_detected(api):
    p = await api.open_programme()
    await api.register_org("ent-t")
    await api.issued_voucher(p["id"], "ent-t", 10_000)
    assert (await api.check())["ok"]
    assert 'techbridge_ledger_check_ok{service="vouchers"} 1.0' in (await api.client.get("/metrics")).text
    engine = api.runtime.db.engine
    # The database itself refuses edits of the journal.
    with pytest.raises(Exception, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE postings SET amount = amount * 2"))
    # Someone with the rights to disable that guard edits a posting: the check notices.
    async with engine.begin() as conn:
        if api.runtime.db.is_sqlite:
            await conn.execute(text("DROP TRIGGER postings_no_update"))
        else:
            await conn.execute(text("ALTER TABLE postings DISABLE TRIGGER postings_append_only"))
        await conn.execute(text("UPDATE postings SET amount = amount + 1 WHERE amount > 0 AND id = "
                                "(SELECT MIN(id) FROM postings WHERE amount > 0)"))
    check = await api.check()
    assert not check["ok"]
    assert any("altered" in p for p in check["problems"])
    # Monitoring sees it too (the alert fires on 0).
    metrics = (await api.client.get("/metrics")).text
    assert 'techbridge_ledger_check_ok{service="vouchers"} 0.0' in metrics


async def test_lists_page_with_cursors(api):
    ids = [(await api.open_programme(name=f"p{i}"))["id"] for i in range(3)]
    await api.register_org("ent-p")
    agency = await api.approved_agency(ids[0], "agency-p")
    v = await api.issued_voucher(ids[0], "ent-p", 10_000)
    for _ in range(3):
        await api.ok("POST", "/redemptions", agency, json=api.redemption_body(v, 100, 1_000), status=201)
    pages = {}
    for path, expected in (("/programmes", 3), ("/redemptions", 3)):
        seen, cursor = pages.setdefault(path, []), None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = await api.ok("GET", path, api.gov, key=None, params=params)
            seen += [x["id"] for x in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == expected == len(set(seen)), (path, seen)
    assert set(pages["/programmes"]) == set(ids)
    r = await api.call("GET", "/redemptions", api.gov, params={"cursor": "not-a-cursor"})
    assert r.status_code == 422
