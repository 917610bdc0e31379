"""Gateway rules without I/O: tokens, patterns and visibility, buckets, signatures, callbacks, merge."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from techbridge_shared.identity import Identity
from techbridge_gateway.domain import events as ev
from techbridge_gateway.domain.accounts import Hasher, LockoutPolicy, new_api_key, parse_api_key, secret_accepted
from techbridge_gateway.domain.openapi import merge
from techbridge_gateway.domain.ratelimit import RateLimiter
from techbridge_gateway.domain.tokens import InvalidToken, TokenIssuer
from techbridge_gateway.domain.webhooks import (
    CallbackRefused, backoff_s, check_addresses, check_callback_url, sign, verify,
)

ISSUER = TokenIssuer("k" * 40, "https://issuer", "api", ttl_s=300, leeway_s=5)
WHO = Identity(sub="c1", org="o1", roles=frozenset({"enterprise"}), client_id="c1")


def test_token_round_trip_and_time_window():
    tok, ttl = ISSUER.issue(WHO, now=1_000_000)
    assert ttl == 300
    assert ISSUER.verify(tok, now=1_000_100) == WHO
    with pytest.raises(InvalidToken, match="expired"):
        ISSUER.verify(tok, now=1_000_000 + 300 + 5)
    with pytest.raises(InvalidToken, match="not yet valid"):
        ISSUER.verify(tok, now=1_000_000 - 6)


@pytest.mark.parametrize("mutate, reason", [
    (lambda c: {**c, "aud": "other"}, "audience"),
    (lambda c: {**c, "iss": "https://evil"}, "issuer"),
    (lambda c: {k: v for k, v in c.items() if k != "exp"}, "exp"),
    (lambda c: {**c, "roles": ["superuser"]}, "role"),
])
def test_tampered_claims_are_refused(mutate, reason):
    tok, _ = ISSUER.issue(WHO)
    claims = jwt.decode(tok, options={"verify_signature": False})
    with pytest.raises(InvalidToken, match=reason):
        ISSUER.verify(jwt.encode(mutate(claims), ISSUER.secret, algorithm="HS256"))


def test_only_the_pinned_algorithm_is_accepted():
    tok, _ = ISSUER.issue(WHO)
    claims = jwt.decode(tok, options={"verify_signature": False})
    with pytest.raises(InvalidToken, match="algorithm"):
        ISSUER.verify(jwt.encode(claims, None, algorithm="none"))
    with pytest.raises(InvalidToken, match="algorithm"):
        ISSUER.verify(jwt.encode(claims, ISSUER.secret * 2, algorithm="HS512"))
    with pytest.raises(InvalidToken, match="signature"):
        ISSUER.verify(jwt.encode(claims, "x" * 40, algorithm="HS256"))


@pytest.mark.parametrize("pattern, type_, expected", [
    ("techbridge.matching.transfer.*", "techbridge.matching.transfer.signed.v1", True),
    ("techbridge.matching.transfer.*", "techbridge.matching.demand.published.v1", False),
    ("techbridge.vouchers.*", "techbridge.vouchers.voucher.issued.v1", True),
    ("techbridge.*.voucher.issued.v1", "techbridge.vouchers.redemption.settled.v1", False),
    ("techbridge.*.voucher.issued.v1", "techbridge.vouchers.voucher.issued.v1", True),
    ("techbridge.catalog.achievement.published.v1", "techbridge.catalog.achievement.published.v1", True),
    ("techbridge.catalog.achievement.published.v1", "techbridge.catalog.achievement.published.v12", False),
    ("*", "techbridge.valuation.valuation.completed.v1", True),
])
def test_type_patterns(pattern, type_, expected):
    assert ev.valid_pattern(pattern)
    assert ev.type_matches([pattern], type_) is expected


@pytest.mark.parametrize("bad", ["", "matching.*", "techbridge..x", "techbridge.(a|b)", "techbridge.a b"])
def test_invalid_patterns(bad):
    assert not ev.valid_pattern(bad)


names = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)


@settings(max_examples=200)
@given(service=names, aggregate=names, verb=names, v=st.integers(1, 20))
def test_every_type_matches_its_service_and_aggregate_wildcards(service, aggregate, verb, v):
    t = f"techbridge.{service}.{aggregate}.{verb}.v{v}"
    assert ev.type_matches([f"techbridge.{service}.*"], t)
    assert ev.type_matches([f"techbridge.{service}.{aggregate}.*"], t)
    assert ev.type_matches(["techbridge.*"], t)
    assert not ev.type_matches([f"techbridge.{service}.{aggregate}x.*"], t)


@settings(max_examples=200)
@given(org=names, others=st.lists(names, max_size=4), role=st.sampled_from(
    ["institution", "enterprise", "agency", "partner"]))
def test_an_organisation_sees_a_private_event_only_when_the_event_names_it(org, others, role):
    data = {f"party{i}_org_id": o for i, o in enumerate(others)}
    visible = ev.may_see(roles={role}, org=org, type_="techbridge.vouchers.voucher.issued.v1",
                         orgs=ev.org_ids_in(data))
    assert visible == (org in others)
    assert ev.may_see(roles={"government"}, org=None, type_="techbridge.vouchers.voucher.issued.v1", orgs=set())


def test_org_ids_in_reads_org_fields_and_lists():
    data = {"seller_org_id": "a", "buyer_org_id": "b", "holder_org_ids": ["c", 1], "org": "x", "title": "t"}
    assert ev.org_ids_in(data) == {"a", "b", "c"}


def test_public_market_facts_are_visible_to_all():
    assert ev.may_see(roles={"partner"}, org="p", type_="techbridge.catalog.achievement.published.v1", orgs={"u"})
    assert not ev.may_see(roles={"partner"}, org="p", type_="techbridge.catalog.achievement.submitted.v1",
                          orgs={"u"})


def test_token_bucket_isolates_clients_and_refills():
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    wait = limiter.take("a")
    assert wait == pytest.approx(0.5)
    assert limiter.take("b") == 0
    now[0] += 0.5
    assert limiter.take("a") == 0


@settings(max_examples=100)
@given(st.lists(st.floats(0, 2), max_size=60))
def test_token_bucket_never_admits_more_than_burst_plus_refill(gaps):
    now = [0.0]
    limiter = RateLimiter(rate=5.0, burst=4, clock=lambda: now[0])
    admitted = 0
    for gap in gaps:
        now[0] += gap
        admitted += limiter.take("k") == 0
    assert admitted <= 4 + 5.0 * now[0] + 1e-9


def test_webhook_signature():
    body = b'{"id":"1"}'
    header = sign("s3cret", 1_700_000_000, body)
    assert verify("s3cret", header, body, now=1_700_000_010)
    assert not verify("other", header, body, now=1_700_000_010)
    assert not verify("s3cret", header, body + b" ", now=1_700_000_010)
    assert not verify("s3cret", header, body, now=1_700_000_000 + 301), "old signatures are replays"


def test_backoff_grows_and_is_capped():
    import random
    rng = random.Random(1)
    delays = [backoff_s(a, 1.0, 60.0, rng) for a in range(1, 12)]
    assert delays[0] <= 1.2 and delays[3] >= 8 * 0.8
    assert max(delays) <= 60.0


@pytest.mark.parametrize("url, allow_http, ok", [
    ("https://gov.example.cn/hook", False, True),
    ("http://gov.example.cn/hook", False, False),
    ("http://127.0.0.1:8080/hook", True, True),
    ("https://u:p@gov.example.cn/", False, False),
    ("https:///nohost", False, False),
])
def test_callback_url_rules(url, allow_http, ok):
    if ok:
        check_callback_url(url, allow_http=allow_http)
    else:
        with pytest.raises(CallbackRefused):
            check_callback_url(url, allow_http=allow_http)


@pytest.mark.parametrize("addresses, loopback, private, ok", [
    (["93.184.216.34"], False, False, True),
    (["127.0.0.1"], False, False, False),
    (["127.0.0.1"], True, False, True),
    (["10.0.0.5"], True, False, False),
    (["10.0.0.5"], False, True, True),
    (["169.254.169.254"], True, True, False),
    (["::ffff:127.0.0.1"], False, False, False),
    (["93.184.216.34", "192.168.1.1"], False, False, False),
    ([], True, True, False),
])
def test_callback_address_rules(addresses, loopback, private, ok):
    if ok:
        check_addresses(addresses, allow_loopback=loopback, allow_private=private)
    else:
        with pytest.raises(CallbackRefused):
            check_addresses(addresses, allow_loopback=loopback, allow_private=private)


def test_lockout_and_rotation_grace():
    policy = LockoutPolicy(3, timedelta(minutes=15))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert policy.after_failure(0, now) == (1, None)
    failures, until = policy.after_failure(2, now)
    assert failures == 0 and until == now + timedelta(minutes=15)
    assert policy.is_locked(until, now + timedelta(minutes=14)) and not policy.is_locked(until, until)
    h = Hasher(time_cost=1, memory_kib=1024)
    old, new = h.hash("old-secret"), h.hash("new-secret")
    kw = dict(hasher=h, current_hash=new, previous_hash=old, now=now)
    assert secret_accepted(secret="old-secret", previous_valid_until=now + timedelta(seconds=1), **kw)
    assert not secret_accepted(secret="old-secret", previous_valid_until=now, **kw)
    assert secret_accepted(secret="new-secret", previous_valid_until=None, **kw)


def test_api_key_format():
    key = new_api_key()
    assert parse_api_key(key.token) == key
    assert parse_api_key("tbk_short_x") is None


def test_merge_renames_colliding_schemas_and_rewrites_refs():
    def doc(service, props):
        return {"openapi": "3.1.0", "info": {"title": service, "version": "1"}, "paths": {
            f"/api/v1/{service}/x": {"get": {"operationId": "x-get", "responses": {"200": {
                "description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}}}}},
            "/health/live": {"get": {"operationId": "health-live", "responses": {"200": {"description": "ok"}}}},
        }, "components": {"schemas": {"Item": {"type": "object", "properties": props}}}}

    merged = merge({"openapi": "3.1.0", "paths": {}}, {
        "catalog": doc("catalog", {"a": {"type": "string"}}),
        "vouchers": doc("vouchers", {"b": {"type": "integer"}}),
    })
    schemas = merged["components"]["schemas"]
    assert schemas["Item"]["properties"] == {"a": {"type": "string"}}
    assert schemas["VouchersItem"]["properties"] == {"b": {"type": "integer"}}
    ref = merged["paths"]["/api/v1/vouchers/x"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ref == {"$ref": "#/components/schemas/VouchersItem"}
    assert "/health/live" not in merged["paths"]
    ops = {merged["paths"][p]["get"]["operationId"] for p in merged["paths"]}
    assert ops == {"x-get", "vouchers-x-get"}


def test_verified_token_cache_still_expires_tokens():
    from techbridge_gateway.domain.tokens import VerifiedTokens

    cache = VerifiedTokens(ISSUER, max_entries=2)
    tok, _ = ISSUER.issue(WHO, now=1_000_000)
    assert cache.verify(tok, now=1_000_010) == WHO
    assert cache.verify(tok, now=1_000_200) == WHO
    with pytest.raises(InvalidToken, match="expired"):
        cache.verify(tok, now=1_000_000 + 300 + 5)
    forged = tok[:-2] + ("AA" if not tok.endswith("AA") else "BB")
    with pytest.raises(InvalidToken):
        cache.verify(forged, now=1_000_010)


def test_token_generation_is_carried_and_checked():
    from techbridge_gateway.domain.tokens import TokenGenerations, VerifiedTokens, account_key

    tok, _ = ISSUER.issue(WHO, now=1_000_000, generation=3)
    identity, _, generation = ISSUER.verify_full(tok, now=1_000_001)
    assert identity == WHO and generation == 3
    old, _ = ISSUER.issue(WHO, now=1_000_000)
    assert ISSUER.verify_full(old, now=1_000_001)[2] == 0
    assert VerifiedTokens(ISSUER).verify_with_generation(tok, now=1_000_001) == (WHO, 3)

    gens = TokenGenerations()
    assert gens.accepts(WHO, 0), "an account never disabled or rotated accepts every token"
    gens.raise_to(account_key(WHO), 3)
    assert gens.accepts(WHO, 3) and gens.accepts(WHO, 4) and not gens.accepts(WHO, 2)
    gens.merge({account_key(WHO): 1})  # a store read older than what this replica did itself
    assert gens.current(account_key(WHO)) == 3
    user = Identity(sub=WHO.sub, kind="user", roles=frozenset({"enterprise"}))
    assert account_key(user) != account_key(WHO), "a user and a client of the same id are different accounts"
    assert gens.accepts(user, 0)
