"""The whole journey through the gateway only, as partners would, on the real platform.

A university lists a bilingual achievement, a reviewer publishes it, an enterprise's demand
finds it, the university has it valued, a licence is negotiated, signed, publicly noticed and
completed, and a voucher redeemed against the deal settles on completion; a government system
watches every transfer and voucher event through a signed webhook and a Server-Sent Events
stream, and every record the platform left on the broker is a valid structured CloudEvent.

The steps run in file order and share one world; each step checks what it promises.
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest
from e2e_observers import SseReader, WebhookReceiver, read_platform_records
from e2e_platform import Partner, wait_for

from techbridge_catalog.domain.rules import credit_code_check_char

pytestmark = pytest.mark.timeout(600)

CATALOG, MATCHING, VALUATION, VOUCHERS = (f"/api/v1/{s}" for s in ("catalog", "matching", "valuation", "vouchers"))
WATCHED = ["techbridge.matching.transfer.*", "techbridge.vouchers.*"]
CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def credit_code(rnd: random.Random) -> str:
    body = "91" + "310115" + "".join(rnd.choice(CODE_ALPHABET) for _ in range(9))
    return body + credit_code_check_char(body)


ORGS = {
    "university": dict(name="上海理工材料大学", name_en="Shanghai University of Materials Engineering",
                       kind="university", region="Shanghai/Yangpu", headcount=4200, roles=["institution"]),
    "enterprise": dict(name="浦东储能科技有限公司", name_en="Pudong Energy Storage Technology Co., Ltd.",
                       kind="enterprise", region="Shanghai/Pudong", headcount=120,
                       annual_revenue={"amount": 30_000_000_00, "currency": "CNY"}, registered_on="2016-05-10",
                       roles=["enterprise"]),
    "rival": dict(name="闵行电池材料有限公司", name_en="Minhang Battery Materials Co., Ltd.", kind="enterprise",
                  region="Shanghai/Minhang", headcount=80, annual_revenue={"amount": 9_000_000_00, "currency": "CNY"},
                  registered_on="2018-03-01", roles=["enterprise"]),
    "agency": dict(name="上海技术转移服务中心", name_en="Shanghai Technology Transfer Service Centre", kind="agency",
                   region="Shanghai/Xuhui", headcount=35, roles=["agency"]),
    "government": dict(name="浦东新区科技和经济委员会", name_en="Pudong Science, Technology and Economy Commission",
                       kind="government", region="Shanghai/Pudong", roles=["government"]),
}

ACHIEVEMENT = {
    "title_zh": "一种高温不收缩的陶瓷涂覆锂电池隔膜及其制备方法",
    "title_en": "Ceramic-coated lithium-ion battery separator that does not shrink at high temperature",
    "abstract_zh": "本发明公开了一种勃姆石陶瓷涂覆聚烯烃隔膜，在180摄氏度下热收缩率低于2%，防止锂电池内部短路。",
    "abstract_en": "A boehmite ceramic-coated polyolefin separator whose thermal shrinkage stays below 2% at "
                   "180 °C, preventing internal short circuits in lithium-ion battery cells.",
    "confidential_details": "Slurry: 40% boehmite, 2 µm coating, 60 °C cure for 4 h; supplier list attached.",
    "keywords": ["隔膜", "separator", "lithium battery", "ceramic coating"],
    "fields": ["新能源", "energy storage"],
    "ipc_codes": ["H01M 50/449"],
    "ip_type": "invention_patent",
    "trl": 6,
    "transfer_modes": ["exclusive_licence", "non_exclusive_licence", "assignment"],
    "asking_price": {"amount": 50_000_000, "currency": "CNY"},
    "negotiable": True,
    "region": "Shanghai/Yangpu",
    "ip_records": [{"number": "CN202310123456.7", "kind": "invention_patent", "filing_date": "2023-02-01",
                    "grant_date": "2024-06-01", "legal_status": "granted", "ipc_codes": ["H01M 50/449"]}],
    "inventors": [{"name": "张伟", "role": "lead inventor"}],
    "co_owners": [],
}

DEMAND = {
    "title": "Separators that keep our lithium-ion packs safe at high temperature",
    "problem": "Our lithium-ion battery cells short-circuit when the polyolefin separator shrinks at high "
               "temperature. We need a ceramic-coated separator technology that we can license for production.",
    "ipc_codes": ["H01M 50/40"],
    "keywords": ["separator", "ceramic coating"],
    "budget_min": {"amount": 10_000_000, "currency": "CNY"},
    "budget_max": {"amount": 80_000_000, "currency": "CNY"},
    "deadline": (date.today() + timedelta(days=300)).isoformat(),
    "transfer_modes": ["exclusive_licence", "assignment"],
    "min_trl": 5,
    "region": "Shanghai",
}


def offer(price_fen: int, **over) -> dict:
    body = {"mode": "exclusive_licence", "exclusive": True, "territory": "CN", "term_months": 60,
            "price": {"amount": price_fen, "currency": "CNY"},
            "royalty": {"rate_bp": 300, "base": "net sales"}, "pricing": "private_agreement"}
    body.update(over)
    return body


def key() -> str:
    return str(uuid.uuid4())


class World:
    """Everything the journey creates, shared by its steps."""

    def __init__(self):
        self.org: dict[str, str] = {}
        self.partner: dict[str, Partner] = {}
        self.receiver: WebhookReceiver | None = None
        self.sse: SseReader | None = None
        self.ids: dict[str, str] = {}
        self.failed = False


@pytest.fixture(scope="module")
def world(platform, admin):
    w = World()
    yield w
    for p in w.partner.values():
        p.close()
    if w.sse:
        w.sse.close()
    if w.receiver:
        w.receiver.close()


@pytest.fixture(autouse=True)
def _in_order(request, world):
    """A step after a failed one cannot mean anything: skip it, naming why."""
    if world.failed:
        pytest.skip("an earlier journey step failed")
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:
        world.failed = True


def test_admin_registers_organisations_and_api_clients(platform, admin, world):
    rnd = random.Random(20261126)
    for role, spec in ORGS.items():
        org_id = str(uuid.uuid4())
        body = {k: v for k, v in spec.items() if k != "roles"}
        body.update(organisation_id=org_id, credit_code=credit_code(rnd))
        created = admin.ok("POST", f"{CATALOG}/organisations", json=body, status=201)
        assert created["organisation_id"] == org_id and created["name"] == spec["name"]
        assert created["name_en"] == spec["name_en"]
        client = admin.ok("POST", "/api/v1/clients", status=201,
                          json={"name": spec["name_en"], "org_id": org_id, "roles": spec["roles"]})
        assert client["org_id"] == org_id and client["roles"] == spec["roles"] and client["client_secret"]
        world.org[role] = org_id
        world.partner[role] = Partner(platform.url, client["client_id"], client["client_secret"], org_id)

    # Only an admin administers clients; the token carries the organisation and roles.
    r = world.partner["enterprise"].post("/api/v1/clients", json={"name": "x", "roles": ["admin"]})
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    names = {o["organisation_id"]: o["name"]
             for o in admin.ok("GET", f"{CATALOG}/organisations", params={"limit": 100})["items"]}
    assert all(names.get(world.org[r]) == ORGS[r]["name"] for r in ORGS)

    # The government system subscribes before anything happens, by webhook and by SSE.
    gov = world.partner["government"]
    world.receiver = WebhookReceiver(secret=secrets.token_urlsafe(24))
    sub = gov.ok("POST", "/api/v1/subscriptions", status=201, json={
        "callback_url": world.receiver.url, "types": WATCHED, "secret": world.receiver.secret,
        "description": "Pudong commission: deals and vouchers"})
    world.ids["subscription"] = sub["id"] if "id" in sub else sub["subscription_id"]
    world.sse = SseReader(platform.url, gov.token(), ",".join(WATCHED))
    assert world.sse.connected.wait(30) and world.sse.error is None, world.sse.error


def test_university_lists_a_bilingual_achievement_and_a_reviewer_publishes_it(world):
    uni, gov, rival = world.partner["university"], world.partner["government"], world.partner["rival"]
    draft = uni.ok("POST", f"{CATALOG}/achievements", json=ACHIEVEMENT, status=201)
    aid = draft["achievement_id"]
    world.ids["achievement"] = aid
    assert draft["status"] == "draft" and draft["owner_org_id"] == world.org["university"]
    assert (draft["title_zh"], draft["title_en"]) == (ACHIEVEMENT["title_zh"], ACHIEVEMENT["title_en"])
    # A draft is the owner's alone; publishing before review is refused naming the transition.
    assert rival.get(f"{CATALOG}/achievements/{aid}").status_code == 404
    r = gov.post(f"{CATALOG}/achievements/{aid}/publish")
    assert r.status_code == 409 and "draft" in r.json()["detail"]

    assert uni.ok("POST", f"{CATALOG}/achievements/{aid}/submit")["status"] == "submitted"
    published = gov.ok("POST", f"{CATALOG}/achievements/{aid}/publish")
    assert published["status"] == "published"

    # Anyone sees the public teaser, in both languages, but not the confidential details.
    seen = rival.ok("GET", f"{CATALOG}/achievements/{aid}")
    assert seen["title_en"] == ACHIEVEMENT["title_en"] and seen["abstract_zh"] == ACHIEVEMENT["abstract_zh"]
    assert seen["confidential_details"] is None and seen["confidential_visible"] is False
    for q in ("陶瓷涂覆隔膜", "ceramic separators"):
        hits = rival.ok("GET", f"{CATALOG}/achievements", params={"q": q, "limit": 50})
        assert aid in [h["achievement_id"] for h in hits["items"]], q


def test_enterprise_demand_finds_the_achievement_and_the_rival_cannot_see_it(world):
    ent, rival = world.partner["enterprise"], world.partner["rival"]
    aid = world.ids["achievement"]
    draft = ent.ok("POST", f"{MATCHING}/demands", json=DEMAND, status=201)
    did = draft["id"]
    world.ids["demand"] = did
    # A draft demand is invisible to another enterprise, and only its owner may act on it.
    assert rival.get(f"{MATCHING}/demands/{did}").status_code == 404
    assert rival.post(f"{MATCHING}/demands/{did}/publish").status_code in (403, 404)
    assert did not in [d["id"] for d in rival.ok("GET", f"{MATCHING}/demands", params={"limit": 100})["items"]]
    assert ent.ok("POST", f"{MATCHING}/demands/{did}/publish")["status"] == "published"

    # Matching learns of the achievement from the catalog's event; the match explains itself.
    def my_match():
        items = ent.ok("GET", f"{MATCHING}/demands/{did}/matches", params={"limit": 50})["items"]
        return next((m for m in items if m["achievement_id"] == aid), None)

    match = wait_for("the published achievement among the demand's matches", my_match, timeout=90)
    expl = match["explanation"]
    assert match["owner_org_id"] == world.org["university"] and 0 < match["relevance"] <= 1
    assert expl["summary"]
    assert any(t.lower() in ("separator", "ceramic", "coating", "隔膜") or "separ" in t.lower()
               for t in expl["matched_terms"]), expl
    # The ranked matches of a demand are its owner's business alone.
    r = rival.get(f"{MATCHING}/demands/{did}/matches")
    assert r.status_code in (403, 404), r.text
    assert rival.get(f"{MATCHING}/demands/{did}/declines").status_code in (403, 404)
    r = rival.request("PUT", f"{MATCHING}/demands/{did}", json={**DEMAND, "title": "hijacked"})
    assert r.status_code in (403, 404, 409)
    assert ent.ok("GET", f"{MATCHING}/demands/{did}")["title"] == DEMAND["title"]


def test_university_has_it_valued_and_the_catalog_shows_the_range(world):
    uni = world.partner["university"]
    aid = world.ids["achievement"]
    request = {"achievement_id": aid, "methods": ["income", "cost"],
               "income": {"revenues": [100_000_000, 120_000_000, 140_000_000, 150_000_000, 150_000_000],
                          "royalty_rate": {"dist": "triangular", "low": 0.03, "mode": 0.05, "high": 0.08},
                          "discount_rate": 0.14},
               "cost": {"basis": "replacement", "items": [{"label": "research staff", "amount": 30_000_000}]},
               "simulation": {"seed": 20261126, "paths": 2000}}

    def valued():  # valuation knows the achievement once it has read the catalog's event
        r = uni.post(f"{VALUATION}/valuations", json=request)
        assert r.status_code in (201, 404), r.text
        return r.json() if r.status_code == 201 else None

    v = wait_for("valuation of the published achievement", valued, timeout=60, interval=0.5)
    low, mid, high = (v[k]["amount"] for k in ("low", "mid", "high")) if "low" in v else (
        v["result"][k]["amount"] for k in ("low", "mid", "high"))
    assert 0 < low <= mid <= high
    vid = v.get("valuation_id") or v.get("id")
    world.ids["valuation"] = vid

    def shown():
        a = uni.ok("GET", f"{CATALOG}/achievements/{aid}")
        return a["valuation"] if a["valuation"] and a["valuation"]["valuation_id"] == vid else None

    shown_range = wait_for("the catalog showing the valuation range", shown, timeout=60)
    assert [shown_range[k]["amount"] for k in ("low", "mid", "high")] == [low, mid, high]
    assert shown_range["requested_by_org_id"] == world.org["university"]


def test_government_opens_a_programme_the_enterprise_gets_a_voucher_the_agency_is_approved(world):
    gov, ent, agency = world.partner["government"], world.partner["enterprise"], world.partner["agency"]
    now = datetime.now(UTC)
    programme = gov.ok("POST", f"{VOUCHERS}/programmes", key=key(), status=201, json={
        "name": "浦东科技创新券 2026 / Pudong innovation vouchers 2026",
        "budget": {"amount": 5_000_000_00, "currency": "CNY"},
        "face_values": [{"amount": 50_000_00, "currency": "CNY"}, {"amount": 200_000_00, "currency": "CNY"}],
        "max_invoice_share_bp": 5000,
        "annual_quota": {"amount": 200_000_00, "currency": "CNY"},
        "categories": ["testing", "technology-transfer"],
        "eligibility": {"max_headcount": 300, "max_annual_revenue": {"amount": 40_000_000_00, "currency": "CNY"},
                        "regions": ["Shanghai"], "min_registration_age_days": 365},
        "applications_open_at": (now - timedelta(days=1)).isoformat(),
        "applications_close_at": (now + timedelta(days=60)).isoformat(),
        "validity_days": 180, "unspent_policy": "return_to_budget", "reminder_days": 30, "review_levels": 1,
    })
    pid = programme["id"]
    world.ids["programme"] = pid

    agency.ok("POST", f"{VOUCHERS}/programmes/{pid}/agencies", json={"categories": ["technology-transfer"]},
              status=201)
    gov.ok("POST", f"{VOUCHERS}/programmes/{pid}/agencies/{world.org['agency']}/approve",
           json={"reason": "accredited technology-transfer service"})

    application = ent.ok("POST", f"{VOUCHERS}/programmes/{pid}/applications", status=201,
                         json={"face_value": {"amount": 200_000_00, "currency": "CNY"},
                               "purpose": "licence and transfer services for a separator technology"})
    assert application["state"] == "submitted", application["checks"]
    assert all(c["passed"] for c in application["checks"]), application["checks"]
    reviewed = gov.ok("POST", f"{VOUCHERS}/applications/{application['id']}/reviews", key=key(),
                      json={"decision": "approve", "reason": "eligible, budget available"})
    assert reviewed["state"] == "approved" and reviewed["voucher_id"]
    voucher = ent.ok("GET", f"{VOUCHERS}/vouchers/{reviewed['voucher_id']}")
    assert voucher["available"] == {"amount": 200_000_00, "currency": "CNY"}
    assert voucher["enterprise_org_id"] == world.org["enterprise"]
    world.ids["voucher"] = voucher["id"]
    # Another enterprise cannot see it.
    assert world.partner["rival"].get(f"{VOUCHERS}/vouchers/{voucher['id']}").status_code == 404


def test_licence_deal_is_negotiated_signed_noticed_and_completed_settling_the_voucher(platform, world):
    uni, ent, agency, gov = (world.partner[r] for r in ("university", "enterprise", "agency", "government"))
    aid = world.ids["achievement"]

    deal = ent.ok("POST", f"{MATCHING}/transfers", key=key(), status=201, json={
        "seller_org_id": world.org["university"], "buyer_org_id": world.org["enterprise"],
        "achievement_ids": [aid], "demand_id": world.ids["demand"], "offer": offer(30_000_000)})
    tid = deal["id"]
    world.ids["transfer"] = tid
    assert deal["status"] == "proposed"
    assert world.partner["rival"].get(f"{MATCHING}/transfers/{tid}").status_code == 404

    deal = uni.ok("POST", f"{MATCHING}/transfers/{tid}/offers", key=key(), status=201,
                  json={"based_on_version": 1, "offer": offer(45_000_000)})
    assert deal["status"] == "negotiating" and deal["current_offer"]["version"] == 2
    deal = ent.ok("POST", f"{MATCHING}/transfers/{tid}/offers", key=key(), status=201,
                  json={"based_on_version": 2, "offer": offer(40_000_000)})
    v = deal["current_offer"]["version"]
    assert v == 3 and [o["price"]["amount"] for o in deal["offers"]] == [30_000_000, 45_000_000, 40_000_000]

    # The agency's technology-transfer service for this deal, paid partly by the voucher.
    redemption = agency.ok("POST", f"{VOUCHERS}/redemptions", key=key(), status=201, json={
        "voucher_id": world.ids["voucher"], "enterprise_org_id": world.org["enterprise"],
        "amount": {"amount": 60_000_00, "currency": "CNY"},
        "invoice_amount": {"amount": 150_000_00, "currency": "CNY"},
        "invoice_ref": f"TT-2026-{tid[:8]}", "category": "technology-transfer", "transfer_id": tid})
    assert redemption["state"] == "reserved"
    world.ids["redemption"] = redemption["id"]
    v_now = ent.ok("GET", f"{VOUCHERS}/vouchers/{world.ids['voucher']}")
    assert (v_now["available"]["amount"], v_now["reserved"]["amount"]) == (140_000_00, 60_000_00)

    assert uni.ok("POST", f"{MATCHING}/transfers/{tid}/sign", key=key(), json={"offer_version": v})["status"] \
        == "negotiating"
    deal = ent.ok("POST", f"{MATCHING}/transfers/{tid}/sign", key=key(), json={"offer_version": v})
    assert deal["status"] == "in_notice" and deal["notice_ends_at"]
    notices = world.partner["rival"].ok("GET", f"{MATCHING}/notices")
    notice = next(n for n in (notices["items"] if isinstance(notices, dict) else notices) if n["transfer_id"] == tid)
    assert notice["price"] == {"amount": 40_000_000, "currency": "CNY"}

    # Signed: the buyer may now read the confidential details; the listing is under negotiation.
    def opened():
        a = ent.ok("GET", f"{CATALOG}/achievements/{aid}")
        return a if a["confidential_visible"] and a["status"] == "under_negotiation" else None

    a = wait_for("the signed buyer reading the confidential details", opened, timeout=60)
    assert a["confidential_details"] == ACHIEVEMENT["confidential_details"]

    # The notice must run its course before completion; then the clock moves past it.
    r = ent.post(f"{MATCHING}/transfers/{tid}/complete", headers={"Idempotency-Key": key()})
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json"), r.text
    ends = datetime.fromisoformat(deal["notice_ends_at"])
    platform.advance_clock((ends - datetime.now(UTC)).total_seconds() + 3600)
    done = ent.ok("POST", f"{MATCHING}/transfers/{tid}/complete", key=key())
    assert done["status"] == "completed" and done["completed_at"]

    def transferred():
        x = world.partner["rival"].ok("GET", f"{CATALOG}/achievements/{aid}")
        return x if x["status"] == "transferred" else None

    wait_for("the catalog showing the achievement as transferred", transferred, timeout=60)

    def settled():
        red = ent.ok("GET", f"{VOUCHERS}/redemptions/{world.ids['redemption']}")
        return red if red["state"] == "settled" else None

    red = wait_for("the linked redemption settling when the deal completed", settled, timeout=60)
    assert red["settled_by"] == f"transfer:{tid}"
    v_now = ent.ok("GET", f"{VOUCHERS}/vouchers/{world.ids['voucher']}")
    assert (v_now["available"]["amount"], v_now["reserved"]["amount"]) == (140_000_00, 0)

    check = gov.ok("GET", f"{VOUCHERS}/ledger/check")
    assert check["ok"], check["problems"]
    dash = gov.ok("GET", f"{VOUCHERS}/programmes/{world.ids['programme']}/dashboard")
    assert dash["ledger_ok"], dash["problems"]
    assert dash["budget"]["amount"] == 5_000_000_00 and dash["settled"]["amount"] + dash["paid"]["amount"] >= 0
    assert dash["payable"]["amount"] == 60_000_00 and dash["reserved"]["amount"] == 0
    assert dash["unissued"]["amount"] == 5_000_000_00 - 200_000_00

    # The registration record of the completed deal is there for the parties and government.
    record = gov.ok("GET", f"{MATCHING}/transfers/{tid}/registration")
    assert record["price"] == {"amount": 40_000_000, "currency": "CNY"}


def _journey_events(records, world) -> dict[str, list[dict]]:
    """The journey's transfer and voucher events on the broker, per subject, in log order."""
    import json

    tid, pid = world.ids["transfer"], world.ids["programme"]
    per_subject: dict[str, list[dict]] = defaultdict(list)
    for rec in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        e = json.loads(rec.value)
        data = e.get("data") or {}
        ours = (e["type"].startswith("techbridge.matching.transfer.") and e["subject"] == tid) or (
            e["type"].startswith("techbridge.vouchers.") and data.get("programme_id") == pid)
        if ours:
            per_subject[e["subject"]].append(e)
    return per_subject


def test_government_receives_every_event_signed_in_order_once_and_the_stream_agrees(platform, world):
    _, records = read_platform_records(platform.kafka)
    expected = _journey_events(records, world)
    want_ids = {e["id"] for evs in expected.values() for e in evs}
    transfer_types = [e["type"].split(".")[-2] for e in expected[world.ids["transfer"]]]
    assert transfer_types == ["proposed", "offer-made", "offer-made", "signed", "notice-published", "completed"]
    voucher_types = sorted({e["type"] for evs in expected.values() for e in evs if ".vouchers." in e["type"]})
    for t in ("programme.opened", "agency.approved", "voucher.issued", "redemption.reserved", "redemption.settled"):
        assert f"techbridge.vouchers.{t}.v1" in voucher_types, voucher_types

    receiver = world.receiver
    wait_for("every journey event at the webhook",
             lambda: want_ids <= {e.get("id") for e in receiver.events_in_effect()}, timeout=90)
    deliveries = receiver.snapshot()
    assert deliveries and all(d.signed for d in deliveries), "a delivery failed the signature check"
    assert all(d.headers.get("content-type", "").startswith("application/cloudevents+json") for d in deliveries)
    # A redelivery carries the same event: deduplicating by id leaves each one once, unchanged.
    by_id: dict[str, bytes] = {}
    for d in deliveries:
        assert by_id.setdefault(d.event["id"], d.body) == d.body or \
            __import__("json").loads(by_id[d.event["id"]]) == d.event
    applied = [e for e in receiver.events_in_effect() if e["id"] in want_ids]
    assert len(applied) == len(want_ids)
    # In order per aggregate: what the receiver applied is the broker's order for each subject.
    for subject, events in expected.items():
        got = [e["id"] for e in applied if e["subject"] == subject]
        assert got == [e["id"] for e in events], f"order of {subject}"

    # The stream saw the same events in the same per-subject order.
    sse = world.sse
    wait_for("every journey event on the SSE stream",
             lambda: want_ids <= {e["id"] for e in sse.events}, timeout=60)
    assert sse.error is None, sse.error
    assert sse.ids == sorted(sse.ids) and len(set(sse.ids)) == len(sse.ids)
    streamed = [e for e in sse.events if e["id"] in want_ids]
    assert len(streamed) == len(want_ids)
    for subject, events in expected.items():
        assert [e["id"] for e in streamed if e["subject"] == subject] == [e["id"] for e in events]

    # The delivery log agrees: nothing parked or still failing for this subscription.
    gov = world.partner["government"]
    log = gov.ok("GET", f"/api/v1/subscriptions/{world.ids['subscription']}/deliveries", params={"status": "parked"})
    assert log["items"] == []


def test_every_record_on_the_platform_topics_is_a_valid_structured_cloudevent(platform, world):
    from cloudevents.core.bindings.kafka import KafkaMessage, from_structured
    from cloudevents.core.formats.json import JSONFormat

    topics, records = read_platform_records(platform.kafka)
    journey_topics = {"techbridge.catalog.organisation.v1", "techbridge.catalog.achievement.v1",
                      "techbridge.matching.demand.v1", "techbridge.matching.transfer.v1",
                      "techbridge.valuation.valuation.v1", "techbridge.vouchers.programme.v1",
                      "techbridge.vouchers.voucher.v1", "techbridge.vouchers.redemption.v1"}
    assert journey_topics <= set(topics), sorted(journey_topics - set(topics))
    fmt, bad = JSONFormat(), []
    for rec in records:
        headers = {k: v for k, v in rec.headers}
        try:
            event = from_structured(KafkaMessage(headers=headers, key=rec.key, value=rec.value), fmt)
            attrs = event.get_attributes()
            assert attrs["specversion"] == "1.0" and attrs["id"] and attrs["source"] and attrs["type"]
            assert rec.topic.rsplit(".", 1)[0] in attrs["type"], (rec.topic, attrs["type"])
            assert headers.get("content-type", b"").startswith(b"application/cloudevents+json")
        except Exception as exc:  # noqa: BLE001 - collected and reported together
            bad.append(f"{rec.topic}[{rec.partition}]@{rec.offset}: {type(exc).__name__}: {exc}")
    assert not bad, f"{len(bad)} of {len(records)} records are not valid structured CloudEvents:\n" + "\n".join(bad[:20])
    ours = [r for r in records if world.ids["transfer"].encode() == r.key]
    assert len(ours) == 6
