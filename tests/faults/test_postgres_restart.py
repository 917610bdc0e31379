"""Restart the PostgreSQL server under a running workload: requests that meet the outage get a
retryable 503 problem+json (never a 500, never a traceback); a client retrying with the same
Idempotency-Key gets exactly one effect; afterwards the ledger balances, every outbox drains and
every event reaches its consumers once in effect.

The fault suite's platform runs on a PostgreSQL cluster of its own (see conftest.py), so the
restart disturbs nothing else. Scripted and bounded: two restarts (fast shutdown, a few seconds
down, start) at seeded moments while three clients run fixed workloads with deadlines.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest
from e2e_platform import wait_for
from fault_db import SERVICES_WITH_OUTBOX, gateway_log_counts, outbox_since, query
from fault_kafka import lost_to_database_outage
from fault_world import enterprise, issue_voucher, open_programme

pytestmark = pytest.mark.timeout(420)

V, C, M = "/api/v1/vouchers", "/api/v1/catalog", "/api/v1/matching"


class Outcomes:
    """Every answer the clients saw, for the checks and the README's counts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.statuses: Counter = Counter()
        self.transport_errors: Counter = Counter()
        self.bad: list[str] = []
        self.retry_after = 0

    def record(self, r: httpx.Response) -> httpx.Response:
        with self.lock:
            self.statuses[r.status_code] += 1
            if r.status_code >= 500:
                ctype = r.headers.get("content-type", "")
                if (r.status_code != 503 or not ctype.startswith("application/problem+json")
                        or "Traceback" in r.text or "asyncpg" in r.text or "sqlalchemy" in r.text):
                    self.bad.append(f"{r.request.method} {r.request.url.path} -> {r.status_code} {ctype}: "
                                    f"{r.text[:300]}")
                if r.headers.get("retry-after"):
                    self.retry_after += 1
        return r

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.transport_errors.values())

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)


class Again(Exception):
    pass


def run_steps(name: str, n: int, step, outcomes: Outcomes, errors: list[str], deadline: float) -> None:
    """Run step(i) for i in range(n); a step raising Again (a 503 or a lost connection) is retried."""
    for i in range(n):
        while True:
            if time.monotonic() > deadline:
                errors.append(f"{name}: step {i} never succeeded")
                return
            try:
                step(i)
                break
            except Again:
                pass
            except httpx.TransportError as exc:
                with outcomes.lock:
                    outcomes.transport_errors[type(exc).__name__] += 1
            except AssertionError as exc:
                errors.append(f"{name} step {i}: {exc}")
                return
            time.sleep(0.2)


def expect(outcomes: Outcomes, r: httpx.Response, *ok: int) -> httpx.Response:
    outcomes.record(r)
    if r.status_code == 503:
        raise Again()
    assert r.status_code in ok, f"{r.request.method} {r.request.url.path} -> {r.status_code}: {r.text[:300]}"
    return r


def open_programme_with_voucher(enrol, face: int):
    gov, ent, agency = enrol("government", ["government"]), enterprise(enrol), enrol("agency", ["agency"])
    pid = open_programme(gov, face, "database restart programme")
    _, voucher_id = issue_voucher(gov, ent, agency, pid, face)
    return gov, ent, agency, voucher_id


def achievement(i: int) -> dict:
    return {
        "title_zh": f"数据库重启测试成果 {i}", "title_en": f"Database restart test achievement {i}",
        "abstract_zh": "数据库重启期间发布。", "abstract_en": f"Listing {i}, published while PostgreSQL restarted.",
        "keywords": ["restart"], "fields": ["energy"], "ipc_codes": ["H01M 50/449"], "ip_type": "know_how",
        "trl": 4, "transfer_modes": ["non_exclusive_licence"], "negotiable": True, "region": "Shanghai",
        "ip_records": [], "inventors": [], "co_owners": []}


def test_postgres_restarted_mid_workload_answers_503_and_applies_each_key_once(fault_platform, fault_postgres,
                                                                             fault_broker, enrol):
    face, amount = 1_000_000, 1_000
    t0 = datetime.now(UTC)
    gov, ent, agency, voucher_id = open_programme_with_voucher(enrol, face)
    uni = enrol("university", ["institution"], region="Shanghai/Minhang")
    outcomes = Outcomes()
    errors: list[str] = []

    # --- the workload: reservations (money, keyed), demands (keyed), listings (state machine) ---
    n_res, n_dem, n_ach = 30, 12, 8
    res_keys = [str(uuid.uuid4()) for _ in range(n_res)]
    dem_keys = [str(uuid.uuid4()) for _ in range(n_dem)]
    res_answers: dict[int, set[str]] = {}
    dem_answers: dict[int, set[str]] = {}
    listings: dict[int, str] = {}

    def reserve(i: int) -> None:
        r = expect(outcomes, agency.post(f"{V}/redemptions", key=res_keys[i], json={
            "voucher_id": voucher_id, "enterprise_org_id": ent.org_id,
            "amount": {"amount": amount, "currency": "CNY"}, "invoice_amount": {"amount": 2 * amount, "currency": "CNY"},
            "invoice_ref": f"PG-{i}", "category": "testing"}), 201)
        res_answers.setdefault(i, set()).add(r.json()["id"])

    def demand(i: int) -> None:
        r = expect(outcomes, ent.post(f"{M}/demands", key=dem_keys[i], json={
            "title": f"Database restart demand {i}", "problem": f"We need separator material number {i} "
            "for lithium cells, posted while the database restarted.", "ipc_codes": ["H01M 50/449"], "min_trl": 3}),
            201)
        dem_answers.setdefault(i, set()).add(r.json()["id"])

    def publish(i: int) -> None:
        if i not in listings:
            listings[i] = expect(outcomes, uni.post(f"{C}/achievements", json=achievement(i)), 201).json()[
                "achievement_id"]
        aid = listings[i]
        state = expect(outcomes, uni.get(f"{C}/achievements/{aid}"), 200).json()["status"]
        if state == "draft":
            expect(outcomes, uni.post(f"{C}/achievements/{aid}/submit"), 200, 409)
        if state in ("draft", "submitted"):
            expect(outcomes, gov.post(f"{C}/achievements/{aid}/publish"), 200, 409)
            state = expect(outcomes, uni.get(f"{C}/achievements/{aid}"), 200).json()["status"]
        if state != "published":
            raise Again()

    deadline = time.monotonic() + 240
    clients = [threading.Thread(target=run_steps, args=(name, n, step, outcomes, errors, deadline), daemon=True)
               for name, n, step in (("reservations", n_res, reserve), ("demands", n_dem, demand),
                                     ("listings", n_ach, publish))]
    for t in clients:
        t.start()

    # --- the fault: two restarts at seeded moments; during each, a scripted keyed request ------
    rnd = random.Random(2026)
    probes = []
    for restart in range(2):
        time.sleep(rnd.uniform(1.0, 3.0))
        fault_postgres.stop()
        down = time.monotonic()
        key = str(uuid.uuid4())
        body = {"voucher_id": voucher_id, "enterprise_org_id": ent.org_id,
                "amount": {"amount": amount, "currency": "CNY"},
                "invoice_amount": {"amount": 2 * amount, "currency": "CNY"},
                "invoice_ref": f"PG-PROBE-{restart}", "category": "testing"}
        during = outcomes.record(agency.post(f"{V}/redemptions", key=key, json=body))
        assert during.status_code == 503, f"a reservation while the database is down: {during.status_code} {during.text}"
        assert during.headers["content-type"].startswith("application/problem+json")
        assert during.headers.get("retry-after"), "a 503 while the database is down says when to retry"
        time.sleep(max(0.0, rnd.uniform(3.0, 6.0) - (time.monotonic() - down)))
        fault_postgres.start()
        probes.append((key, body))

    for t in clients:
        t.join(max(1, deadline - time.monotonic() + 5))
    assert not any(t.is_alive() for t in clients), "the workload did not finish in time"
    assert not errors, errors
    assert not outcomes.bad, outcomes.bad[:5]

    # The probes, retried with the same key after the restart: one effect, the same answer twice.
    probe_ids = []
    for key, body in probes:
        first = wait_for("the probe reservation once the database is back", lambda k=key, b=body: (
            lambda r: r if r.status_code == 201 else None)(outcomes.record(agency.post(f"{V}/redemptions", key=k,
                                                                                        json=b))), timeout=60)
        again = outcomes.record(agency.post(f"{V}/redemptions", key=key, json=body))
        assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
        probe_ids.append(first.json()["id"])
    assert not outcomes.bad, outcomes.bad[:5]

    # Exactly one effect per key: each key answered with one id; the voucher moved by exactly that.
    assert all(len(ids) == 1 for ids in res_answers.values()) and len(res_answers) == n_res
    assert all(len(ids) == 1 for ids in dem_answers.values()) and len(dem_answers) == n_dem
    stored = query(fault_platform, "vouchers", "SELECT id FROM redemptions WHERE voucher_id = $1", voucher_id)
    want = {next(iter(ids)) for ids in res_answers.values()} | set(probe_ids)
    assert {r["id"] for r in stored} == want
    v = gov.ok("GET", f"{V}/vouchers/{voucher_id}")
    assert v["reserved"]["amount"] == (n_res + len(probes)) * amount
    assert v["available"]["amount"] == face - (n_res + len(probes)) * amount
    check = gov.ok("GET", f"{V}/ledger/check")
    assert check["ok"], check["problems"]
    mine = [d for d in ent.ok("GET", f"{M}/demands", params={"limit": 100, "mine": "true"})["items"]
            if d["title"].startswith("Database restart demand ")]
    assert sorted(d["id"] for d in mine) == sorted(next(iter(ids)) for ids in dem_answers.values())

    # Every outbox drains; every event of the test reaches the gateway's event log once, and the
    # read model built from them (matching indexes every listing published meanwhile).
    def drained():
        rows = {name: outbox_since(fault_platform, name, t0) for name in SERVICES_WITH_OUTBOX}
        return rows if all(r["published_at"] for rs in rows.values() for r in rs) else None

    rows = wait_for("every outbox drained after the restarts", drained, timeout=90, interval=1)
    sent = [r["event_id"] for rs in rows.values() for r in rs]
    counts: dict[str, int] = {}
    failure = None
    try:
        counts = wait_for("every event in the gateway's event log", lambda: (
            lambda c: c if set(c) >= set(sent) else None)(gateway_log_counts(fault_platform, sent)),
            timeout=60, interval=1)
        wait_for("matching indexing every listing", lambda: all(
            uni.get(f"{M}/achievements/{a}/matches", params={"limit": 1}).status_code == 200
            for a in listings.values()), timeout=60, interval=1)
    except AssertionError as exc:
        failure = exc
        counts = gateway_log_counts(fault_platform, sent)
    dead = lost_to_database_outage(fault_broker.bootstrap, t0.isoformat())
    duplicated = sum(n - 1 for n in counts.values())
    print(f"\nPostgreSQL restarted x2: {outcomes.requests} requests, statuses {dict(outcomes.statuses)}, "
          f"transport errors {dict(outcomes.transport_errors)}, 5xx {outcomes.server_errors} (all 503 problem+json, "
          f"{outcomes.retry_after} with Retry-After); events sent {len(sent)} / delivered {len(counts)} / "
          f"duplicated {duplicated} / lost {len(set(sent) - set(counts))}; dead-lettered while the database was "
          f"down: {len(dead)}")
    # A consumer whose own database is down waits for it; it must never dead-letter a good record.
    assert not dead, (f"{len(dead)} records dead-lettered while the database was down "
                      f"(groups {sorted({d['consumer-group'] for d in dead})})")
    if failure:
        raise failure
    assert duplicated == 0
