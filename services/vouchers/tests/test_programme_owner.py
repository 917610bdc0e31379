"""Who governs a programme: the government organisation that opened it (and admins). Another
government organisation may read everything but change nothing: each programme-scoped write is
refused with 403 before any state-machine decision, and leaves the journal, the outbox and the
objects as they were. A two-level review may name reviewer organisations for its first level.
On SQLite and PostgreSQL (there settle, void and payout run on the hot path)."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select, update

from techbridge_shared.identity import Identity

from techbridge_vouchers.domain import model as m

pytestmark = pytest.mark.postgres

OTHER_GOV = Identity(sub="officer-9", org="gov-2", roles=frozenset({"government"}), client_id="gov2-portal")
DISTRICT = Identity(sub="district-1", org="gov-district", roles=frozenset({"government"}), client_id="district")
DISTRICT_2 = Identity(sub="district-2", org="gov-district", roles=frozenset({"government"}), client_id="district")
ADMIN = Identity(sub="root", org=None, roles=frozenset({"admin"}), client_id="admin-console")


async def _outbox(api) -> list[tuple[str, dict]]:
    outbox = api.runtime.spec.outbox
    async with api.runtime.db.engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.type, outbox.c.payload).order_by(outbox.c.seq))).all()
    return [(r.type, json.loads(r.payload)) for r in rows]


async def _snapshot(api, *paths: str) -> tuple:
    """What a refused write must leave as it was: the journal, the outbox and the objects."""
    check = await api.check()
    assert check["ok"], check["problems"]
    return (check["entries_checked"], check["programmes"], len(await _outbox(api)),
            [await api.ok("GET", p, api.gov, key=None) for p in paths])


async def _refused(api, method: str, path: str, who: Identity = OTHER_GOV, *, json=None, money: bool = True,
                   code: str = "not_programme_owner") -> None:
    r = await api.call(method, path, who, json=json, key=str(uuid.uuid4()) if money else None)
    assert r.status_code == 403, (path, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code, r.json()


async def test_opened_programme_names_its_owner_in_the_response_and_the_event(api):
    p = await api.open_programme(review_levels=2, reviewer_org_ids=["gov-district", "gov-district", "gov-1"])
    assert p["owner_org_id"] == "gov-1"
    assert p["reviewer_org_ids"] == ["gov-district"]  # deduplicated; the owner reviews anyway
    opened = [d for t, d in await _outbox(api) if t == "techbridge.vouchers.programme.opened.v1"]
    assert opened[-1]["data"]["owner_org_id"] == "gov-1"
    assert opened[-1]["data"]["reviewer_org_ids"] == ["gov-district"]
    # Every official reads it (government audits all programmes).
    assert (await api.ok("GET", f"/programmes/{p['id']}", OTHER_GOV, key=None))["owner_org_id"] == "gov-1"
    await api.ok("GET", f"/programmes/{p['id']}/dashboard", OTHER_GOV, key=None)


async def test_reviewer_organisations_need_a_two_level_review(api):
    r = await api.call("POST", "/programmes", api.gov, json=api.programme_body(reviewer_org_ids=["gov-district"]),
                       key="k")
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "body.reviewer_org_ids"


async def test_only_an_admin_opens_a_programme_for_another_organisation(api):
    r = await api.call("POST", "/programmes", OTHER_GOV, json=api.programme_body(owner_org_id="gov-1"), key="k1")
    assert r.status_code == 403 and r.json()["code"] == "owner_not_caller", r.text
    r = await api.call("POST", "/programmes", ADMIN, json=api.programme_body(), key="k2")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.owner_org_id", r.text
    p = await api.ok("POST", "/programmes", ADMIN, json=api.programme_body(owner_org_id="gov-2"), status=201)
    assert p["owner_org_id"] == "gov-2"
    await _refused(api, "POST", f"/programmes/{p['id']}/close", api.gov, money=False)
    await api.ok("POST", f"/programmes/{p['id']}/close", OTHER_GOV, key=None)


async def test_another_government_changes_nothing_in_a_programme_it_does_not_own(api):
    p = await api.open_programme()
    pid = p["id"]
    await api.register_org("ent-1")
    agency = await api.approved_agency(pid, "agency-a")
    await api.ok("POST", f"/programmes/{pid}/agencies", api.agency("agency-b"), json={"categories": ["testing"]},
                 key=None, status=201)
    voucher = await api.issued_voucher(pid, "ent-1", 100_000)
    vid = voucher["id"]
    app = await api.ok("POST", f"/programmes/{pid}/applications", api.enterprise("ent-1"),
                       json={"face_value": {"amount": 10_000, "currency": "CNY"}, "purpose": "second"},
                       key=None, status=201)
    reserved = await api.ok("POST", "/redemptions", agency, json=api.redemption_body(voucher, 1_000, 10_000),
                            status=201)
    settled = await api.ok("POST", "/redemptions", agency, json=api.redemption_body(voucher, 2_000, 10_000),
                           status=201)
    settled = await api.ok("POST", f"/redemptions/{settled['id']}/settle", api.gov)
    paid = await api.ok("POST", "/redemptions", agency, json=api.redemption_body(voucher, 500, 10_000), status=201)
    await api.ok("POST", f"/redemptions/{paid['id']}/settle", api.gov)
    paid = await api.ok("POST", f"/redemptions/{paid['id']}/payout", api.gov, json={"reference": "PAY-1"})

    watched = [f"/programmes/{pid}", f"/programmes/{pid}/agencies/agency-a", f"/programmes/{pid}/agencies/agency-b",
               f"/applications/{app['id']}", f"/vouchers/{vid}", f"/redemptions/{reserved['id']}",
               f"/redemptions/{settled['id']}", f"/redemptions/{paid['id']}"]
    before = await _snapshot(api, *watched)

    money = {"amount": {"amount": 100, "currency": "CNY"}}
    await _refused(api, "POST", f"/programmes/{pid}/top-ups", json=money)
    await _refused(api, "POST", f"/programmes/{pid}/close", money=False)
    for action in ("approve", "reject"):
        await _refused(api, "POST", f"/programmes/{pid}/agencies/agency-b/{action}", json={"reason": "x"},
                       money=False)
    for action in ("suspend", "remove", "approve"):  # approve of an approved agency would be a 409
        await _refused(api, "POST", f"/programmes/{pid}/agencies/agency-a/{action}", json={"reason": "x"},
                       money=False)
    await _refused(api, "POST", f"/applications/{app['id']}/reviews", json={"decision": "approve", "reason": ""})
    await _refused(api, "POST", f"/applications/{app['id']}/reviews", json={"decision": "reject", "reason": "no"})
    await _refused(api, "POST", f"/vouchers/{vid}/freeze", json={"reason": "x"}, money=False)
    await _refused(api, "POST", f"/vouchers/{vid}/unfreeze", money=False)  # not frozen: would be a 409
    await _refused(api, "POST", f"/vouchers/{vid}/revoke", json={"reason": "x"})
    await _refused(api, "POST", f"/redemptions/{reserved['id']}/settle")
    await _refused(api, "POST", f"/redemptions/{reserved['id']}/void", json={"reason": "x"})
    await _refused(api, "POST", f"/redemptions/{settled['id']}/settle")  # already settled: would be a 409
    await _refused(api, "POST", f"/redemptions/{settled['id']}/payout", json={"reference": "PAY-X"})
    await _refused(api, "POST", f"/redemptions/{paid['id']}/payout", json={"reference": "PAY-X"})  # 409 else
    await _refused(api, "POST", f"/redemptions/{reserved['id']}/payout", json={"reference": "PAY-X"})
    await _refused(api, "POST", f"/redemptions/{settled['id']}/clawback", json={**money, "reason": "x"})
    await _refused(api, "POST", f"/redemptions/{paid['id']}/clawback", json={**money, "reason": "x"})
    await _refused(api, "POST", "/agencies/agency-a/payouts", json={"reference": "PAY-X", "programme_id": pid})
    await _refused(api, "POST", "/agencies/agency-a/payouts", json={"reference": "PAY-X"})

    assert await _snapshot(api, *watched) == before

    # The parties keep their own rights: the enterprise confirms delivery, the agency voids its own.
    await api.ok("POST", f"/redemptions/{reserved['id']}/void", agency, json={"reason": "duplicate"})

    # The owner does each of them.
    await api.ok("POST", f"/programmes/{pid}/top-ups", api.gov, json=money)
    await api.ok("POST", f"/programmes/{pid}/agencies/agency-b/approve", api.gov, json={"reason": "ok"}, key=None)
    await api.ok("POST", f"/programmes/{pid}/agencies/agency-b/suspend", api.gov, json={"reason": "audit"}, key=None)
    assert (await api.ok("POST", f"/applications/{app['id']}/reviews", api.gov,
                         json={"decision": "approve", "reason": ""}))["state"] == "approved"
    await api.ok("POST", f"/redemptions/{settled['id']}/clawback", api.gov, json={**money, "reason": "overstated"})
    batch = await api.ok("POST", "/agencies/agency-a/payouts", api.gov, json={"reference": "PAY-2",
                                                                              "programme_id": pid}, status=201)
    assert batch["count"] == 1
    await api.ok("POST", f"/vouchers/{vid}/freeze", api.gov, json={"reason": "audit"}, key=None)
    await api.ok("POST", f"/vouchers/{vid}/unfreeze", api.gov, key=None)
    assert (await api.ok("POST", f"/vouchers/{vid}/revoke", api.gov, json={"reason": "fraud"}))["state"] == "revoked"
    assert (await api.ok("POST", f"/programmes/{pid}/close", api.gov, key=None))["state"] == "closed"
    assert (await api.check())["ok"]


async def test_settle_and_void_by_another_government_on_a_fresh_reservation(api):
    """The hot path's commands (on PostgreSQL) refuse an official of another organisation too."""
    p = await api.open_programme()
    pid = p["id"]
    await api.register_org("ent-2")
    agency = await api.approved_agency(pid, "agency-c")
    voucher = await api.issued_voucher(pid, "ent-2", 10_000)
    red = await api.ok("POST", "/redemptions", agency, json=api.redemption_body(voucher, 1_000, 10_000), status=201)
    before = await _snapshot(api, f"/redemptions/{red['id']}", f"/vouchers/{voucher['id']}")
    await _refused(api, "POST", f"/redemptions/{red['id']}/settle")
    await _refused(api, "POST", f"/redemptions/{red['id']}/void", json={"reason": "x"})
    assert await _snapshot(api, f"/redemptions/{red['id']}", f"/vouchers/{voucher['id']}") == before
    assert (await api.ok("POST", f"/redemptions/{red['id']}/settle", api.gov))["state"] == "settled"


async def test_bulk_payout_across_programmes_needs_every_programme_governed(api):
    mine = (await api.open_programme(name="mine"))["id"]
    theirs = (await api.ok("POST", "/programmes", OTHER_GOV, json=api.programme_body(name="theirs"),
                           status=201))["id"]
    await api.register_org("ent-3")
    agency = await api.approved_agency(mine, "agency-d")
    await api.ok("POST", f"/programmes/{theirs}/agencies", agency, json={"categories": ["testing"]}, key=None,
                 status=201)
    await _refused(api, "POST", f"/programmes/{theirs}/agencies/agency-d/approve", api.gov, json={"reason": "x"},
                   money=False)
    await api.ok("POST", f"/programmes/{theirs}/agencies/agency-d/approve", OTHER_GOV, json={"reason": "ok"},
                 key=None)
    v_mine = await api.issued_voucher(mine, "ent-3", 10_000)
    app = await api.ok("POST", f"/programmes/{theirs}/applications", api.enterprise("ent-3"),
                       json={"face_value": {"amount": 10_000, "currency": "CNY"}, "purpose": "x"}, key=None,
                       status=201)
    v_theirs = (await api.ok("POST", f"/applications/{app['id']}/reviews", OTHER_GOV,
                             json={"decision": "approve", "reason": ""}))["voucher_id"]
    v_theirs = await api.ok("GET", f"/vouchers/{v_theirs}", api.gov, key=None)
    for v, owner in ((v_mine, api.gov), (v_theirs, OTHER_GOV)):
        red = await api.ok("POST", "/redemptions", agency, json=api.redemption_body(v, 1_000, 10_000), status=201)
        await api.ok("POST", f"/redemptions/{red['id']}/settle", owner)
    await _refused(api, "POST", "/agencies/agency-d/payouts", api.gov, json={"reference": "ALL"})
    batch = await api.ok("POST", "/agencies/agency-d/payouts", api.gov, json={"reference": "MINE",
                                                                              "programme_id": mine}, status=201)
    assert [t["programme_id"] for t in batch["totals"]] == [mine]
    # An admin governs every programme.
    batch = await api.ok("POST", "/agencies/agency-d/payouts", ADMIN, json={"reference": "REST"}, status=201)
    assert [t["programme_id"] for t in batch["totals"]] == [theirs]


async def test_two_level_review_with_a_district_reviewer_organisation(api):
    p = await api.open_programme(review_levels=2, reviewer_org_ids=["gov-district"],
                                 annual_quota={"amount": 200_000, "currency": "CNY"})
    pid = p["id"]
    await api.register_org("ent-4")
    ent = api.enterprise("ent-4")

    async def submitted() -> str:
        a = await api.ok("POST", f"/programmes/{pid}/applications", ent,
                         json={"face_value": {"amount": 10_000, "currency": "CNY"}, "purpose": "x"}, key=None,
                         status=201)
        return a["id"]

    approve = {"decision": "approve", "reason": ""}
    first = await submitted()
    # Another government organisation reviews no level.
    await _refused(api, "POST", f"/applications/{first}/reviews", json=approve)
    # The district makes the first review; the final one is the owner's, not another district officer's.
    assert (await api.ok("POST", f"/applications/{first}/reviews", DISTRICT, json=approve))["state"] == \
        "partly_approved"
    await _refused(api, "POST", f"/applications/{first}/reviews", DISTRICT_2, json=approve,
                   code="not_programme_reviewer")
    await _refused(api, "POST", f"/applications/{first}/reviews", DISTRICT_2,
                   json={"decision": "reject", "reason": "no"}, code="not_programme_reviewer")
    done = await api.ok("POST", f"/applications/{first}/reviews", api.gov, json=approve)
    assert done["state"] == "approved" and done["voucher_id"]
    assert [r["reviewer"] for r in done["reviews"]] == ["district-1", "officer-1"]
    # After the decision the district is still refused for what it may not do (not a 409).
    await _refused(api, "POST", f"/applications/{first}/reviews", DISTRICT_2, json=approve,
                   code="not_programme_reviewer")

    # The owner may also make the first review; the district may reject at the first level.
    second = await submitted()
    assert (await api.ok("POST", f"/applications/{second}/reviews", api.gov, json=approve))["state"] == \
        "partly_approved"
    await _refused(api, "POST", f"/applications/{second}/reviews", DISTRICT, json=approve,
                   code="not_programme_reviewer")
    third = await submitted()
    rejected = await api.ok("POST", f"/applications/{third}/reviews", DISTRICT,
                            json={"decision": "reject", "reason": "incomplete"})
    assert rejected["state"] == "rejected"

    # Reviewing is all a reviewer organisation does.
    await _refused(api, "POST", f"/programmes/{pid}/top-ups", DISTRICT,
                   json={"amount": {"amount": 100, "currency": "CNY"}})
    await _refused(api, "POST", f"/vouchers/{done['voucher_id']}/freeze", DISTRICT, json={"reason": "x"},
                   money=False)


async def test_a_programme_without_a_recorded_owner_keeps_the_former_rule(api):
    """Programmes opened before migration 0004 have no owner: every official governs them."""
    p = await api.open_programme()
    from techbridge_vouchers.store.tables import programmes
    async with api.runtime.db.engine.begin() as conn:
        await conn.execute(update(programmes).where(programmes.c.id == p["id"]).values(owner_org_id=None))
    assert (await api.ok("GET", f"/programmes/{p['id']}", OTHER_GOV, key=None))["owner_org_id"] is None
    await api.ok("POST", f"/programmes/{p['id']}/top-ups", OTHER_GOV,
                 json={"amount": {"amount": 100, "currency": "CNY"}})
    assert (await api.ok("POST", f"/programmes/{p['id']}/close", OTHER_GOV, key=None))["state"] == "closed"


# --- the rule itself, as the domain states it -----------------------------------------------

def _programme(owner: str | None, reviewers: tuple[str, ...] = (), levels: int = 2) -> m.Programme:
    from datetime import UTC, datetime
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    terms = m.ProgrammeTerms(
        name="p", currency="CNY", face_values=(100,), max_share_bp=5000, annual_quota=100, categories=("testing",),
        eligibility=m.EligibilityRules(), applications_open_at=t0, applications_close_at=t0.replace(year=2027),
        validity_days=30, unspent_policy=m.UnspentPolicy.LAPSE, reminder_days=1, review_levels=levels)
    return m.Programme("p1", terms, m.ProgrammeState.OPEN, "someone", t0, owner_org_id=owner,
                       reviewer_org_ids=reviewers)


@pytest.mark.parametrize(("org", "admin", "action", "level", "allowed"), [
    ("gov-1", False, m.Governing.MANAGE, None, True),
    ("gov-1", False, m.Governing.REVIEW, 2, True),
    ("gov-2", False, m.Governing.MANAGE, None, False),
    ("gov-2", False, m.Governing.REVIEW, 1, False),
    ("district", False, m.Governing.REVIEW, 1, True),
    ("district", False, m.Governing.REVIEW, 2, False),
    ("district", False, m.Governing.REVIEW, None, False),
    ("district", False, m.Governing.MANAGE, None, False),
    (None, False, m.Governing.MANAGE, None, False),
    (None, True, m.Governing.MANAGE, None, True),
    ("gov-2", True, m.Governing.REVIEW, 2, True),
])
def test_authorise_governing(org, admin, action, level, allowed):
    p = _programme("gov-1", ("district",))
    if allowed:
        m.authorise_governing(p, org=org, admin=admin, action=action, review_level=level)
    else:
        with pytest.raises(m.Forbidden):
            m.authorise_governing(p, org=org, admin=admin, action=action, review_level=level)


def test_authorise_governing_without_an_owner_admits_every_official():
    m.authorise_governing(_programme(None), org="gov-9", admin=False, action=m.Governing.MANAGE)


def test_reviewers_do_nothing_in_a_single_level_programme():
    p = _programme("gov-1", ("district",), levels=1)
    with pytest.raises(m.Forbidden):
        m.authorise_governing(p, org="district", admin=False, action=m.Governing.REVIEW, review_level=1)
