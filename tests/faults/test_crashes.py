"""SIGKILL services in the middle of a running workload and restart them: nothing committed is
lost, nothing is applied twice, read models agree with their source, the ledger balances.

Each scenario is scripted and bounded: a seeded schedule of kills, a workload of a fixed size
whose clients retry (with the same Idempotency-Key where the API takes one) until a deadline,
and checks of what was delivered. Counts are printed for the README's fault table.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from e2e_platform import wait_for

pytestmark = pytest.mark.timeout(420)

V = "/api/v1/vouchers"
C = "/api/v1/catalog"
M = "/api/v1/matching"
RETRYABLE = (502, 503, 504)


class Workload:
    """Runs `step(i)` for i in range(n) in a thread; a step retries until it succeeds."""

    def __init__(self, n: int, step, deadline_s: float = 180):
        self.n, self.step, self.deadline = n, step, time.monotonic() + deadline_s
        self.done: list[int] = []
        self.attempts = 0
        self.failures: dict[str, int] = {}
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        for i in range(self.n):
            while True:
                if time.monotonic() > self.deadline:
                    self.errors.append(f"step {i} never succeeded")
                    return
                self.attempts += 1
                try:
                    if self.step(i):
                        self.done.append(i)
                        break
                    self.failures["step not finished yet"] = self.failures.get("step not finished yet", 0) + 1
                except (httpx.TransportError, Retry) as exc:
                    name = type(exc).__name__ if not isinstance(exc, Retry) else f"HTTP {exc.status}"
                    self.failures[name] = self.failures.get(name, 0) + 1
                except AssertionError as exc:
                    self.errors.append(f"step {i}: {exc}")
                    return
                time.sleep(0.3)

    def start(self):
        self.thread.start()
        return self

    def join(self):
        self.thread.join(max(1, self.deadline - time.monotonic() + 5))
        assert not self.thread.is_alive(), "the workload did not finish in time"
        assert not self.errors, self.errors
        assert len(self.done) == self.n


class Retry(Exception):
    def __init__(self, status: int):
        self.status = status


def checked(r: httpx.Response, *ok: int) -> httpx.Response:
    if r.status_code in RETRYABLE:
        assert r.headers.get("content-type", "").startswith("application/problem+json"), r.text[:300]
        raise Retry(r.status_code)
    assert r.status_code != 500, f"500: {r.text[:500]}"
    assert r.status_code in ok, f"{r.request.method} {r.request.url.path} -> {r.status_code}: {r.text[:300]}"
    return r


def kill_schedule(platform, name: str, kills: int, rnd: random.Random, workload: Workload) -> list[float]:
    """SIGKILL `name` `kills` times at random moments while the workload runs; restart each time."""
    moments = []
    for _ in range(kills):
        time.sleep(rnd.uniform(0.5, 2.5))
        moments.append(time.monotonic())
        platform.kill(name)
        time.sleep(rnd.uniform(0.2, 1.0))
        platform.processes[name].start(ready=True, timeout=120)
    return moments


def test_vouchers_killed_mid_redemptions_loses_nothing_and_applies_nothing_twice(fault_platform, enrol):
    gov = enrol("government", ["government"])
    ent = enrol("enterprise", ["enterprise"], headcount=50, registered_on="2015-01-01",
                annual_revenue={"amount": 1_000_000_00, "currency": "CNY"})
    agency = enrol("agency", ["agency"])
    now = datetime.now(UTC)
    p = gov.ok("POST", f"{V}/programmes", key=str(uuid.uuid4()), status=201, json={
        "name": "fault programme", "budget": {"amount": 10_000_000, "currency": "CNY"},
        "face_values": [{"amount": 1_000_000, "currency": "CNY"}], "max_invoice_share_bp": 5000,
        "annual_quota": {"amount": 1_000_000, "currency": "CNY"}, "categories": ["testing"],
        "eligibility": {"regions": ["Shanghai"]},
        "applications_open_at": (now - timedelta(days=1)).isoformat(),
        "applications_close_at": (now + timedelta(days=30)).isoformat(),
        "validity_days": 90, "unspent_policy": "return_to_budget", "reminder_days": 10, "review_levels": 1})
    pid = p["id"]
    agency.ok("POST", f"{V}/programmes/{pid}/agencies", json={"categories": ["testing"]}, status=201)
    gov.ok("POST", f"{V}/programmes/{pid}/agencies/{agency.org_id}/approve", json={"reason": "ok"})
    app = wait_for("an eligible application (vouchers has read the organisation)", lambda: (lambda a: a if a[
        "state"] == "submitted" else None)(ent.ok("POST", f"{V}/programmes/{pid}/applications", status=201,
                                                  json={"face_value": {"amount": 1_000_000, "currency": "CNY"},
                                                        "purpose": "testing"})), timeout=30)
    voucher_id = gov.ok("POST", f"{V}/applications/{app['id']}/reviews", key=str(uuid.uuid4()),
                        json={"decision": "approve", "reason": "ok"})["voucher_id"]

    n, amount = 40, 1_000
    keys = [str(uuid.uuid4()) for _ in range(n)]
    answers: dict[int, str] = {}

    def reserve(i: int) -> bool:
        r = checked(agency.post(f"{V}/redemptions", key=keys[i], json={
            "voucher_id": voucher_id, "enterprise_org_id": ent.org_id,
            "amount": {"amount": amount, "currency": "CNY"}, "invoice_amount": {"amount": 2 * amount, "currency": "CNY"},
            "invoice_ref": f"INV-{i}", "category": "testing"}), 201)
        rid = r.json()["id"]
        assert answers.setdefault(i, rid) == rid, "the same key answered with another redemption"
        return True

    work = Workload(n, reserve).start()
    rnd = random.Random(1126)
    kill_schedule(fault_platform, "vouchers", 3, rnd, work)
    work.join()
    print(f"\nvouchers SIGKILL x3: {n} reservations, {work.attempts} requests, failures {work.failures}")

    # Nothing lost, nothing twice: one redemption per key, the voucher moved by exactly n x amount.
    listed = gov.ok("GET", f"{V}/redemptions", params={"limit": 100})["items"]
    mine = [r for r in listed if r["voucher_id"] == voucher_id]
    assert sorted(r["invoice_ref"] for r in mine) == sorted(f"INV-{i}" for i in range(n))
    assert {r["id"] for r in mine} == set(answers.values())
    v = gov.ok("GET", f"{V}/vouchers/{voucher_id}")
    assert v["reserved"]["amount"] == n * amount and v["available"]["amount"] == 1_000_000 - n * amount
    check = gov.ok("GET", f"{V}/ledger/check")
    assert check["ok"], check["problems"]

    # The voucher's own journal lists every reservation once.
    def all_events():
        r = gov.ok("GET", f"{V}/vouchers/{voucher_id}/statement", params={"limit": 100})
        return len([x for x in r["items"] if x["kind"] == "reserve"]) == n
    wait_for("the statement listing every reservation once", all_events, timeout=30)


def test_catalog_and_matching_killed_while_publishing_keep_the_index_equal_to_the_catalog(fault_platform, enrol):
    uni = enrol("university", ["institution"], region="Shanghai/Yangpu")
    gov = enrol("government", ["government"])
    n = 15
    created: dict[int, str] = {}

    def body(i: int) -> dict:
        return {
            "title_zh": f"故障测试成果 {i} 一种锂电池隔膜", "title_en": f"Fault-test achievement {i}: battery separator",
            "abstract_zh": "用于故障测试的陶瓷隔膜。", "abstract_en": f"Ceramic separator number {i} for the crash test.",
            "keywords": ["separator"], "fields": ["energy"], "ipc_codes": ["H01M 50/449"], "ip_type": "know_how",
            "trl": 5, "transfer_modes": ["non_exclusive_licence"], "negotiable": True, "region": "Shanghai",
            "ip_records": [], "inventors": [], "co_owners": []}

    def publish(i: int) -> bool:
        # Creating is not idempotent: a create whose answer was lost may have happened, and the
        # final comparison below counts whatever the catalog holds, not what the client saw.
        if i not in created:
            created[i] = checked(uni.post(f"{C}/achievements", json=body(i)), 201).json()["achievement_id"]
        aid = created[i]
        state = checked(uni.get(f"{C}/achievements/{aid}"), 200).json()["status"]
        if state == "draft":
            checked(uni.post(f"{C}/achievements/{aid}/submit"), 200, 409)
            state = checked(uni.get(f"{C}/achievements/{aid}"), 200).json()["status"]
        if state == "submitted":
            checked(gov.post(f"{C}/achievements/{aid}/publish"), 200, 409)
            state = checked(uni.get(f"{C}/achievements/{aid}"), 200).json()["status"]
        assert state in ("draft", "submitted", "published"), state
        return state == "published"

    work = Workload(n, publish).start()
    rnd = random.Random(2611)
    killer = threading.Thread(target=kill_schedule, args=(fault_platform, "matching", 3, random.Random(77), work))
    killer.start()
    kill_schedule(fault_platform, "catalog", 3, rnd, work)
    killer.join(300)
    work.join()
    print(f"\ncatalog x3 + matching x3 SIGKILL: {n} achievements, {work.attempts} attempts, failures {work.failures}")

    # The catalog's published listings of this university are exactly what matching indexes.
    def catalog_published() -> set[str]:
        r = uni.ok("GET", f"{C}/achievements", params={"institution": uni.org_id, "status": "published",
                                                       "limit": 100, "facets": "false"})
        return {x["achievement_id"] for x in r["items"]}

    published = catalog_published()
    assert set(created.values()) <= published

    def indexed(aid: str) -> bool:
        r = uni.get(f"{M}/achievements/{aid}/matches", params={"limit": 1})
        assert r.status_code in (200, 404), r.text
        return r.status_code == 200

    wait_for("matching indexing every published achievement",
             lambda: all(indexed(a) for a in published), timeout=90, interval=1)
    # And nothing it was not given: a draft of the same university is not in the index.
    draft = uni.ok("POST", f"{C}/achievements", json=body(999), status=201)["achievement_id"]
    time.sleep(1)
    assert not indexed(draft)


def test_gateway_killed_while_delivering_webhooks_loses_and_doubles_nothing(fault_platform, fault_broker, enrol):
    import json
    import secrets

    from e2e_observers import WebhookReceiver, read_platform_records

    uni = enrol("university", ["institution"], region="Shanghai/Xuhui")
    gov = enrol("government", ["government"])
    receiver = WebhookReceiver(secret=secrets.token_urlsafe(24))
    try:
        gov.ok("POST", "/api/v1/subscriptions", status=201, json={
            "callback_url": receiver.url, "types": ["techbridge.catalog.achievement.*"], "secret": receiver.secret,
            "description": "crash test"})
        n = 12
        created: dict[int, str] = {}

        def publish(i: int) -> bool:
            if i not in created:
                created[i] = checked(uni.post(f"{C}/achievements", json={
                    "title_zh": f"网关故障测试 {i}", "title_en": f"Gateway crash test {i}",
                    "abstract_zh": "测试。", "abstract_en": "A listing published while the gateway was killed.",
                    "keywords": ["test"], "fields": ["test"], "ipc_codes": ["G06F 16/00"], "ip_type": "know_how",
                    "trl": 3, "transfer_modes": ["technical_service"], "negotiable": True, "region": "Shanghai",
                    "ip_records": [], "inventors": [], "co_owners": []}), 201).json()["achievement_id"]
            aid = created[i]
            state = checked(uni.get(f"{C}/achievements/{aid}"), 200).json()["status"]
            if state == "draft":
                checked(uni.post(f"{C}/achievements/{aid}/submit"), 200, 409)
            elif state == "submitted":
                checked(gov.post(f"{C}/achievements/{aid}/publish"), 200, 409)
            return state == "published"

        work = Workload(n, publish).start()
        kill_schedule(fault_platform, "gateway", 3, random.Random(3011), work)
        work.join()

        # Everything the catalog published for this university, as the broker holds it.
        _, records = read_platform_records(fault_broker.bootstrap)
        expected: dict[str, list[str]] = {}
        for rec in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
            e = json.loads(rec.value)
            if e["type"].startswith("techbridge.catalog.achievement.") and (e.get("data") or {}).get(
                    "owner_org_id") == uni.org_id:
                if e["id"] not in expected.get(e["subject"], []):
                    expected.setdefault(e["subject"], []).append(e["id"])
        want = {i for ids in expected.values() for i in ids}
        assert set(created.values()) <= set(expected)
        wait_for("every achievement event at the webhook after three gateway crashes",
                 lambda: want <= {e.get("id") for e in receiver.events_in_effect()}, timeout=120, interval=0.5)
        deliveries = receiver.snapshot()
        assert all(d.signed for d in deliveries)
        applied = [e for e in receiver.events_in_effect() if e["id"] in want]
        assert len(applied) == len(want)
        for subject, ids in expected.items():
            assert [e["id"] for e in applied if e["subject"] == subject] == ids, f"order of {subject}"
        dupes = len([d for d in deliveries if d.event.get("id") in want]) - len(want)
        print(f"\ngateway SIGKILL x3: {n} listings, {work.attempts} attempts, failures {work.failures}; "
              f"{len(want)} events delivered, {dupes} redelivered duplicates dropped by id, 0 lost")
    finally:
        receiver.close()
