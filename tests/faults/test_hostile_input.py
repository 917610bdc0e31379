"""Hostile input at the gateway: every answer is a clear 4xx problem+json, never a 500 or a
traceback; text is stored exactly as given and nothing in it is executed; identity headers sent
from outside carry no weight."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from techbridge_shared.identity import IDENTITY_HEADER, SIGNATURE_HEADER

pytestmark = pytest.mark.timeout(300)

INJECTIONS = [
    "'; DROP TABLE achievements; --",
    "\" OR 1=1 --",
    "<script>alert('x')</script>",
    "<img src=x onerror=alert(1)>",
    "${jndi:ldap://127.0.0.1/a}",
    "{{7*7}}",
    "../../../../etc/passwd",
    "锂电池' UNION SELECT * FROM outbox --",
    "%00%27",
    "a" * 3000,
]


def is_problem(r: httpx.Response) -> bool:
    return r.headers.get("content-type", "").startswith("application/problem+json")


def no_leak(r: httpx.Response) -> None:
    text = r.text
    for marker in ("Traceback", "File \"/", "sqlalchemy", "asyncpg", "psycopg", "Internal Server Error"):
        assert marker not in text, f"{r.request.method} {r.request.url.path} leaked {marker!r}: {text[:300]}"


def test_hostile_bodies_get_problem_json_never_a_500(fault_platform, enrol):
    uni = enrol("university", ["institution"])
    ent = enrol("enterprise", ["enterprise"])
    base = "/api/v1/catalog/achievements"
    results = []

    def send(name, method, path, wanted, who=uni, **kw):
        headers = {"Authorization": f"Bearer {who.token()}", **kw.pop("headers", {})}
        r = who.http.request(method, path, headers=headers, **kw)
        results.append((name, r.status_code))
        assert r.status_code in wanted, f"{name}: {r.status_code} {r.text[:300]}"
        assert is_problem(r), f"{name}: {r.headers.get('content-type')}"
        no_leak(r)
        return r

    # Oversized: above the gateway's limit (2 MiB), declared and streamed without a length.
    big = b'{"title_zh": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    send("oversized body", "POST", base, (413,), content=big, headers={"Content-Type": "application/json"})

    def chunks():
        for _ in range(48):
            yield b"y" * 65536

    # Checked last: see the known defect below.
    streamed = uni.http.request("POST", base, content=chunks(), headers={
        "Authorization": f"Bearer {uni.token()}", "Content-Type": "application/json"})
    results.append(("oversized streamed body", streamed.status_code))
    # Malformed, truncated, wrong type, deeply nested, invalid UTF-8, NUL bytes.
    for name, body in [
        ("malformed json", b'{"title_zh": "x",,}'),
        ("truncated json", b'{"title_zh": "x'),
        ("json array", b"[1, 2, 3]"),
        ("deeply nested json", b'{"keywords": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        ("invalid utf-8", b'{"title_zh": "\xff\xfe\xfa"}'),
        ("nul byte", b'{"title_zh": "a\\u0000b"}'),
        ("huge number", b'{"trl": 1' + b"0" * 5000 + b"}"),
    ]:
        send(name, "POST", base, (400, 413, 415, 422), content=body, headers={"Content-Type": "application/json"})
    send("form instead of json", "POST", "/api/v1/matching/demands", (400, 415, 422), who=ent,
         content=b"title=x&problem=y", headers={"Content-Type": "application/x-www-form-urlencoded"})
    send("negative money", "POST", "/api/v1/matching/demands", (422,), who=ent, json={
        "title": "x" * 10, "problem": "y" * 20, "budget_max": {"amount": -5, "currency": "CNY"}})
    send("overlong query", "GET", base + "?q=" + "a" * 5000, (414,))
    send("page too large", "GET", base + "?limit=100000", (422,))
    send("unknown parameter", "GET", base + "?drop=1", (422,))
    assert len(results) == 14
    no_leak(streamed)
    assert streamed.status_code == 413 and is_problem(streamed), f"{streamed.status_code} {streamed.text[:300]}"


def test_injection_strings_are_searched_and_stored_as_text(fault_platform, enrol):
    uni = enrol("university", ["institution"])
    for q in INJECTIONS:
        r = uni.get("/api/v1/catalog/achievements", params={"q": q[:2000]})
        assert r.status_code in (200, 422), (q, r.status_code, r.text[:200])
        no_leak(r)
        if r.status_code == 422:
            assert is_problem(r)
    r = uni.get("/api/v1/matching/demands", params={"status": "published' OR '1'='1"})
    assert r.status_code == 422 and is_problem(r)

    # Stored exactly as given, returned exactly, and not executed.
    hostile = "<script>alert('x')</script> '; DROP TABLE achievements; -- {{7*7}} 锂电池"
    body = {
        "title_zh": hostile, "title_en": hostile, "abstract_zh": hostile, "abstract_en": hostile,
        "keywords": ["<b>x</b>", "'; --"], "fields": ["新能源"], "ipc_codes": ["H01M 50/449"],
        "ip_type": "know_how", "trl": 4, "transfer_modes": ["technical_service"], "negotiable": True,
        "region": "Shanghai", "ip_records": [], "inventors": [], "co_owners": [],
    }
    created = uni.ok("POST", "/api/v1/catalog/achievements", json=body, status=201)
    again = uni.ok("GET", f"/api/v1/catalog/achievements/{created['achievement_id']}")
    assert again["title_zh"] == hostile and again["abstract_en"] == hostile
    assert again["keywords"] == ["<b>x</b>", "'; --"]
    # The catalog still works: the table the string names is still there.
    assert uni.ok("GET", "/api/v1/catalog/achievements", params={"status": "draft"})["items"]


def test_identity_headers_from_outside_carry_no_weight(fault_platform, enrol):
    ent = enrol("enterprise", ["enterprise"])
    forged_identity = base64.urlsafe_b64encode(json.dumps(
        {"sub": "root", "org": None, "roles": ["admin"], "client_id": "root", "kind": "client"}).encode()).decode()
    forged = {IDENTITY_HEADER: forged_identity, SIGNATURE_HEADER: "t=9999999999,v1=" + "0" * 64}
    http = ent.http

    # Without a credential: 401, whatever identity headers say.
    r = http.post("/api/v1/catalog/admin/expire-due", headers=forged)
    assert r.status_code == 401 and is_problem(r) and "WWW-Authenticate" in r.headers
    # With an enterprise token, forged admin headers are dropped: the caller stays an enterprise.
    r = http.post("/api/v1/catalog/admin/expire-due", headers={**forged, "Authorization": f"Bearer {ent.token()}"})
    assert r.status_code == 403 and is_problem(r), r.text
    r = http.get("/api/v1/vouchers/ledger/check", headers={**forged, "Authorization": f"Bearer {ent.token()}"})
    assert r.status_code == 403 and is_problem(r), r.text
    r = http.post("/api/v1/clients", json={"name": "x", "roles": ["admin"]},
                  headers={**forged, "Authorization": f"Bearer {ent.token()}"})
    assert r.status_code == 403 and is_problem(r)
    # Services reached directly (not through the gateway) refuse a forged signature.
    catalog = fault_platform.processes["catalog"].url
    r = httpx.post(catalog + "/api/v1/catalog/admin/expire-due", headers=forged, timeout=10)
    assert r.status_code == 401 and is_problem(r)
    # Tampered, unsigned and alg=none tokens are refused.
    token = ent.token()
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["admin"]
    evil = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    none_head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    for bad in (f"{head}.{evil}.{sig}", f"{none_head}.{evil}.", token[:-4] + "AAAA"):
        r = http.get("/api/v1/catalog/organisations", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401 and is_problem(r), r.text


NUL_TARGETS = [
    "/api/v1/catalog/achievements/a%00b",
    "/api/v1/matching/demands/a%00b",
    "/api/v1/matching/transfers/a%00b",
    "/api/v1/valuation/valuations/a%00b",
    "/api/v1/vouchers/vouchers/a%00b",
    "/api/v1/vouchers/programmes/a%00b",
]


@pytest.mark.parametrize("target", NUL_TARGETS)
def test_nul_in_a_path_identifier_is_a_4xx(fault_platform, enrol, target):
    gov = enrol("government", ["government"])
    r = gov.get(target)
    assert 400 <= r.status_code < 500 and is_problem(r), f"{target}: {r.status_code} {r.text[:200]}"
    no_leak(r)
