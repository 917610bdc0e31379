"""Access matrix, driven by the gateway's merged OpenAPI: every operation whose path names an
object is called by callers of *other* organisations (an enterprise, a university, an agency, and
for programme and subscription objects a government) on objects of one organisation's world; each
must be refused with 403 or 404 and nothing may change. A route added later is covered by
construction: its path parameters are filled from the world, and a parameter the world cannot
name fails the test until it is taught here.

Then the fields a caller may not set (status, state, owner, organisation, amounts it does not
own, ids, versions): sent on creation and update, they are refused (422) or ignored, which is
checked on the stored object.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime

import pytest
from e2e_platform import wait_for
from fault_world import (C, M, V, VAL, achievement_body, enterprise, issue_voucher, offer, open_programme)

pytestmark = pytest.mark.timeout(300)

READ = ("GET",)
# Objects every signed-in caller may read by design (public market facts): the organisation
# directory, valuation defaults, a programme's terms and its approved agencies.
PUBLIC = {
    ("GET", "/api/v1/catalog/organisations/{organisation_id}"),
    ("GET", "/api/v1/valuation/defaults/{version}"),
    ("GET", "/api/v1/vouchers/programmes/{programme_id}"),
    ("GET", "/api/v1/vouchers/programmes/{programme_id}/agencies"),
    ("GET", "/api/v1/vouchers/programmes/{programme_id}/agencies/{agency_org_id}"),
    # Open to every caller of the role by design: any agency may ask to join a programme, any
    # enterprise may apply to one.
    ("POST", "/api/v1/vouchers/programmes/{programme_id}/agencies"),
    ("POST", "/api/v1/vouchers/programmes/{programme_id}/applications"),
}
# Roles that act across organisations by design, per path prefix: not "another organisation" there.
ALL_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
ACROSS = {
    # valuation/README.md "Who may request and see": agencies, government and admins see every valuation.
    "/api/v1/valuation/": {"agency": ALL_METHODS, "government": ALL_METHODS},
    # vouchers/README.md: every government organisation may read (audit) every programme; only the
    # programme's owner changes it or anything in it.
    "/api/v1/vouchers/": {"government": {"GET"}},
}
# Answers that change nothing and disclose only what that role may read anyway.
HARMLESS = {
    # A bulk payout for an agency with nothing settled: government reads every programme's
    # redemptions, and a batch with something to pay is refused unless the caller governs it.
    ("POST", "/api/v1/vouchers/agencies/{agency_org_id}/payouts", "government"): 409,
}


def resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].split("/")[-1]]
    return schema


def instance(doc: dict, schema: dict, name: str = ""):
    """A small valid value for a JSON schema (required properties only), so a request reaches the
    object's access check instead of stopping at validation."""
    schema = resolve(doc, schema)
    if name == "offer":
        return offer(1_000_000)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if resolve(doc, s).get("type") != "null"]
            return instance(doc, options[0], name)
    if "allOf" in schema:
        return instance(doc, schema["allOf"][0], name)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: instance(doc, props[k], k) for k in schema.get("required", []) if k in props}
    if kind == "array":
        return [instance(doc, schema.get("items", {}), name) for _ in range(schema.get("minItems", 0))]
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), int(schema.get("exclusiveMinimum", 0)) + 1)
    if kind == "number":
        return float(schema.get("minimum", 1))
    if kind == "boolean":
        return True
    fmt = schema.get("format")
    if fmt == "date-time":
        return datetime.now(UTC).isoformat()
    if fmt == "date":
        return date.today().isoformat()
    candidates = ["testing", "CNY", str(uuid.uuid4()), "reference-1", "a test reason", "A1"]
    n = max(int(schema.get("minLength", 1)), 1)
    candidates.append("x" * n)
    for c in candidates:
        if len(c) >= n and len(c) <= schema.get("maxLength", 10_000) and (
                "pattern" not in schema or re.search(schema["pattern"], c)):
            return c
    return "x" * n


def operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete") and "{" in path:
                yield method.upper(), path, op


def body_for(doc: dict, op: dict):
    body = op.get("requestBody")
    if not body:
        return None
    content = body.get("content", {})
    if "application/json" not in content:
        return None
    return instance(doc, content["application/json"]["schema"])


@pytest.fixture(scope="module")
def world(fault_platform, enrol):
    """One organisation of each kind with one object of every kind the API names by id."""
    face = 100_000
    uni, gov, agency = (enrol("university", ["institution"]), enrol("government", ["government"]),
                        enrol("agency", ["agency"]))
    ent = enterprise(enrol)
    draft = uni.ok("POST", f"{C}/achievements", status=201, json=achievement_body("Access matrix draft"))[
        "achievement_id"]
    listed = uni.ok("POST", f"{C}/achievements", status=201, json=achievement_body("Access matrix listing"))[
        "achievement_id"]
    uni.ok("POST", f"{C}/achievements/{listed}/submit")
    gov.ok("POST", f"{C}/achievements/{listed}/publish")
    wait_for("matching indexing the listing", lambda: uni.get(f"{M}/achievements/{listed}/matches").status_code
             == 200, timeout=60, interval=0.5)
    demand = ent.ok("POST", f"{M}/demands", key=str(uuid.uuid4()), status=201, json={
        "title": "Access matrix demand", "problem": "Separator material for lithium cells, private for now.",
        "ipc_codes": ["H01M 50/449"], "min_trl": 3})["id"]
    valuation = wait_for("a valuation of the listing", lambda: (lambda r: r.json() if r.status_code == 201 else None)(
        uni.post(f"{VAL}/valuations", json={
            "achievement_id": listed, "methods": ["cost"],
            "cost": {"basis": "replacement", "items": [{"label": "staff", "amount": 10_000_000}]},
            "simulation": {"seed": 3, "paths": 1000}})), timeout=60, interval=0.5)
    transfer = ent.ok("POST", f"{M}/transfers", key=str(uuid.uuid4()), status=201, json={
        "seller_org_id": uni.org_id, "buyer_org_id": ent.org_id, "achievement_ids": [listed],
        "offer": offer(2_000_000)})["id"]
    pid = open_programme(gov, face, "access matrix programme")
    application, voucher = issue_voucher(gov, ent, agency, pid, face)
    redemption = agency.ok("POST", f"{V}/redemptions", key=str(uuid.uuid4()), status=201, json={
        "voucher_id": voucher, "enterprise_org_id": ent.org_id, "amount": {"amount": 1_000, "currency": "CNY"},
        "invoice_amount": {"amount": 2_000, "currency": "CNY"}, "invoice_ref": "ACCESS-1",
        "category": "testing"})["id"]
    subscription = gov.ok("POST", "/api/v1/subscriptions", status=201, json={
        "callback_url": "http://127.0.0.1:9/none", "types": ["techbridge.vouchers.*"], "secret": "s" * 24,
        "description": "access matrix"})
    subscription_id = subscription.get("subscription_id") or subscription.get("id")
    ids = {
        "achievement_id": draft, "organisation_id": ent.org_id, "org_id": ent.org_id, "demand_id": demand,
        "transfer_id": transfer, "valuation_id": valuation.get("valuation_id") or valuation.get("id"),
        "programme_id": pid, "application_id": application, "voucher_id": voucher, "redemption_id": redemption,
        "agency_org_id": agency.org_id, "subscription_id": subscription_id, "client_id": ent.client_id,
        "action": "approve", "version": "1",
        # Objects of kinds the world does not create (an unknown id must be refused all the same).
        "proposal_id": str(uuid.uuid4()), "delivery_id": str(uuid.uuid4()), "key_id": str(uuid.uuid4()),
        "batch_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4()),
    }
    owners = {"uni": uni, "gov": gov, "agency": agency, "ent": ent}
    return {"ids": ids, "owners": owners, "listed": listed, "placeholders": {
        "proposal_id", "delivery_id", "key_id", "batch_id", "user_id"}}


def snapshot(world) -> dict:
    """What the owners see of their objects, to show that nothing the others tried was applied."""
    ids, o = world["ids"], world["owners"]
    volatile = {"updated_at", "expires_at", "last_seen_at", "notice"}

    def clean(d):
        return {k: v for k, v in d.items() if k not in volatile} if isinstance(d, dict) else d

    return {
        "achievement": clean(o["uni"].ok("GET", f"{C}/achievements/{ids['achievement_id']}")),
        "demand": clean(o["ent"].ok("GET", f"{M}/demands/{ids['demand_id']}")),
        "transfer": clean(o["ent"].ok("GET", f"{M}/transfers/{ids['transfer_id']}")),
        "voucher": clean(o["gov"].ok("GET", f"{V}/vouchers/{ids['voucher_id']}")),
        "redemption": clean(o["agency"].ok("GET", f"{V}/redemptions/{ids['redemption_id']}")),
        "programme": clean(o["gov"].ok("GET", f"{V}/programmes/{ids['programme_id']}")),
        "organisation": clean(o["ent"].ok("GET", f"{C}/organisations/{ids['organisation_id']}")),
    }


def test_callers_of_other_organisations_are_refused_on_every_object_route(fault_platform, fault_admin, enrol, world):
    doc = fault_admin.http.get("/openapi.json").json()
    others = {"enterprise": enterprise(enrol, "Beijing/Haidian"),
              "university": enrol("university", ["institution"], region="Beijing/Haidian"),
              "agency": enrol("agency", ["agency"], region="Beijing/Haidian"),
              "government": enrol("government", ["government"], region="Beijing/Haidian")}
    before = snapshot(world)
    ids = world["ids"]
    results, leaks, unknown_params, covered = [], [], set(), 0
    for method, path, op in operations(doc):
        names = re.findall(r"{([^}]+)}", path)
        missing = [n for n in names if n not in ids]
        if missing:
            unknown_params.update(missing)
            continue
        target = path.format(**ids)
        body = body_for(doc, op)
        real = not (set(names) & world["placeholders"])
        covered += real
        callers = ["enterprise", "university", "agency"]
        if re.match(r"^/api/v1/(vouchers/|subscriptions|clients)", path):
            callers.append("government")
        across = next(({role for role, methods in roles.items() if method in methods}
                       for prefix, roles in ACROSS.items() if path.startswith(prefix)), set())
        callers = [c for c in callers if c not in across]
        for who in callers:
            kw = {"json": body} if body is not None else {}
            r = others[who].request(method, target, key=str(uuid.uuid4()) if method != "GET" else None, **kw)
            results.append((method, path, who, r.status_code))
            if (method, path) in PUBLIC and r.status_code in (200, 201, 409, 422):
                continue
            if HARMLESS.get((method, path, who)) == r.status_code:
                continue
            if r.status_code not in (401, 403, 404):
                leaks.append(f"{method} {path} as another {who}: {r.status_code} {r.text[:160]}")
    after = snapshot(world)
    refused = sum(1 for *_, s in results if s in (401, 403, 404))
    print(f"\naccess matrix: {len({(m, p) for m, p, *_ in results})} object routes, {covered} on real objects of "
          f"another organisation, {len(results)} requests, {refused} refused 401/403/404, {len(leaks)} not refused")
    assert not unknown_params, f"path parameters the world cannot fill (teach the world): {sorted(unknown_params)}"
    assert not leaks, "\n".join(leaks)
    assert after == before, "a refused request changed an object"


def test_fields_a_caller_may_not_set_are_refused_or_ignored(fault_platform, enrol, world):
    uni, ent = world["owners"]["uni"], world["owners"]["ent"]
    foreign = str(uuid.uuid4())
    forged = {"status": "published", "owner_org_id": foreign, "org_id": foreign, "tenant_id": foreign,
              "version": 99, "achievement_id": str(uuid.uuid4()), "created_at": "2000-01-01T00:00:00Z"}
    checked = []

    # A new listing: published status, another owner, a version of one's choosing.
    r = uni.post(f"{C}/achievements", json={**achievement_body("Forged fields"), **forged})
    assert r.status_code in (201, 422), r.text
    if r.status_code == 201:
        a = uni.ok("GET", f"{C}/achievements/{r.json()['achievement_id']}")
        assert a["status"] == "draft" and a.get("owner_org_id") in (None, uni.org_id) and a["version"] != 99
        assert a["achievement_id"] != forged["achievement_id"]
    checked.append(("POST /catalog/achievements", r.status_code))
    # Updating one's own listing with the same fields.
    aid = world["ids"]["achievement_id"]
    r = uni.request("PATCH", f"{C}/achievements/{aid}", json={"title_en": "Renamed", **forged},
                    headers={"If-Match": str(uni.ok("GET", f"{C}/achievements/{aid}").get("version", 1))})
    assert r.status_code in (200, 412, 422, 428), r.text
    a = uni.ok("GET", f"{C}/achievements/{aid}")
    assert a["status"] == "draft" and a.get("owner_org_id") in (None, uni.org_id)
    checked.append(("PATCH /catalog/achievements/{id}", r.status_code))
    # A demand posted as published for another organisation.
    r = ent.post(f"{M}/demands", key=str(uuid.uuid4()), json={
        "title": "Forged demand", "problem": "A demand trying to set what only the platform sets.", **forged})
    assert r.status_code in (201, 422), r.text
    if r.status_code == 201:
        d = ent.ok("GET", f"{M}/demands/{r.json()['id']}")
        assert d["status"] == "draft" and d.get("owner_org_id", ent.org_id) == ent.org_id
    checked.append(("POST /matching/demands", r.status_code))
    # A deal proposed as completed, with a price already agreed and someone else as the buyer.
    r = ent.post(f"{M}/transfers", key=str(uuid.uuid4()), json={
        "seller_org_id": uni.org_id, "buyer_org_id": foreign, "achievement_ids": [world["listed"]],
        "offer": offer(1_000), "status": "completed"})
    assert r.status_code in (403, 409, 422), f"a deal for another buyer or in a forged state: {r.status_code} {r.text}"
    checked.append(("POST /matching/transfers (other buyer, status)", r.status_code))
    # A redemption reserving more than the invoice allows, pre-settled, for someone else's voucher.
    agency = world["owners"]["agency"]
    voucher = world["ids"]["voucher_id"]
    before = world["owners"]["gov"].ok("GET", f"{V}/vouchers/{voucher}")
    r = agency.post(f"{V}/redemptions", key=str(uuid.uuid4()), json={
        "voucher_id": voucher, "enterprise_org_id": foreign, "amount": {"amount": 1_000, "currency": "CNY"},
        "invoice_amount": {"amount": 2_000, "currency": "CNY"}, "invoice_ref": "FORGED-1", "category": "testing",
        "state": "settled"})
    assert r.status_code in (403, 404, 409, 422), f"a redemption for another enterprise: {r.status_code} {r.text}"
    after = world["owners"]["gov"].ok("GET", f"{V}/vouchers/{voucher}")
    assert after["reserved"] == before["reserved"] and after["available"] == before["available"]
    checked.append(("POST /vouchers/redemptions (other enterprise, state)", r.status_code))
    # An enterprise approving its own application.
    r = ent.post(f"{V}/applications/{world['ids']['application_id']}/reviews", key=str(uuid.uuid4()),
                 json={"decision": "approve", "reason": "self-approval"})
    assert r.status_code in (403, 404, 409), r.text
    checked.append(("POST /vouchers/applications/{id}/reviews (self)", r.status_code))
    print(f"\nforged fields: {checked}")
