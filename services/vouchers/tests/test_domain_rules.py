"""Domain rules without I/O: eligibility, invoice share, transitions and their refusals."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from techbridge_shared.errors import Conflict, Forbidden, ValidationFailed
from techbridge_vouchers.domain import model as m

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def programme(**over) -> m.Programme:
    terms = m.ProgrammeTerms(
        name="p", currency="CNY", face_values=(10_000, 50_000), max_share_bp=5000, annual_quota=60_000,
        categories=("testing", "ip"), applications_open_at=T0 - timedelta(days=1),
        applications_close_at=T0 + timedelta(days=30), validity_days=90, unspent_policy=m.UnspentPolicy.LAPSE,
        reminder_days=10, review_levels=1,
        eligibility=m.EligibilityRules(max_headcount=300, max_annual_revenue=100_000_000, regions=("Shanghai",),
                                       min_registration_age_days=365))
    terms = replace(terms, **over)
    return m.Programme("prog", terms, m.ProgrammeState.OPEN, "gov", T0)


def org(**over) -> m.Organisation:
    base = m.Organisation("ent", "Acme", "enterprise", "Shanghai/Pudong", 120, 50_000_000, "CNY", date(2020, 1, 1))
    return replace(base, **over)


def failed(checks) -> set[str]:
    return {c.rule for c in checks if not c.passed}


def test_an_sme_in_the_region_passes_every_rule():
    checks = m.evaluate_eligibility(programme(), org(), amount=10_000, issued_this_year=0, now=T0)
    assert [c.rule for c in checks] == ["organisation_registered", "organisation_kind", "headcount", "annual_revenue",
                                        "region", "registration_age", "annual_quota"]
    assert all(c.passed for c in checks)


@pytest.mark.parametrize(("over", "rule"), [
    ({"headcount": 301}, "headcount"),
    ({"headcount": None}, "headcount"),
    ({"annual_revenue": 100_000_001}, "annual_revenue"),
    ({"revenue_currency": "USD"}, "annual_revenue"),
    ({"region": "Shanghaix/Pudong"}, "region"),
    ({"region": "Beijing"}, "region"),
    ({"registered_on": date(2025, 6, 1)}, "registration_age"),
    ({"kind": "university"}, "organisation_kind"),
])
def test_each_failing_rule_is_named(over, rule):
    checks = m.evaluate_eligibility(programme(), org(**over), amount=10_000, issued_this_year=0, now=T0)
    assert failed(checks) == {rule}


def test_unknown_organisation_and_quota():
    checks = m.evaluate_eligibility(programme(), None, amount=50_000, issued_this_year=20_000, now=T0)
    assert failed(checks) == {"organisation_registered", "annual_quota"}


def test_applications_outside_the_window_are_refused():
    p = programme()
    with pytest.raises(Conflict) as e:
        m.submit_application(p, "ent", org(), amount=10_000, purpose="", issued_this_year=0,
                             now=T0 + timedelta(days=31), actor="u")
    assert e.value.code == "applications_closed"
    with pytest.raises(ValidationFailed):
        m.submit_application(p, "ent", org(), amount=12_345, purpose="", issued_this_year=0, now=T0, actor="u")


@given(invoice=st.integers(1, 10**12), share=st.integers(1, 10_000))
def test_the_share_cap_never_exceeds_the_share(invoice, share):
    cap = programme(max_share_bp=share).share_cap(invoice)
    assert 0 <= cap <= invoice
    assert cap * 10_000 <= invoice * share < (cap + 1) * 10_000


def _voucher(p: m.Programme) -> m.Voucher:
    app = m.Application("a", p.id, "ent", 10_000, "CNY", "", m.ApplicationState.APPROVED, [], "u", T0)
    v, entry = m.issue_voucher(p, app, unissued=10_000, issued_this_year=0, now=T0, actor="gov", voucher_id="v")
    assert entry.amount == 10_000 and v.expires_at == T0 + timedelta(days=90)
    assert v.remind_at == v.expires_at - timedelta(days=10)
    return v


def test_issuance_refuses_beyond_budget_and_quota():
    p = programme()
    app = m.Application("a", p.id, "ent", 50_000, "CNY", "", m.ApplicationState.APPROVED, [], "u", T0)
    with pytest.raises(Conflict) as e:
        m.issue_voucher(p, app, unissued=49_999, issued_this_year=0, now=T0, actor="gov")
    assert e.value.code == "budget_exhausted"
    with pytest.raises(Conflict) as e:
        m.issue_voucher(p, app, unissued=10**9, issued_this_year=10_001, now=T0, actor="gov")
    assert e.value.code == "annual_quota_exceeded"


def test_redemption_lifecycle_refusals():
    p = programme()
    v = _voucher(p)
    enrol = m.Enrolment(p.id, "ag", ("testing",), m.EnrolmentState.APPROVED, T0, T0)
    req = m.RedemptionRequest("v", "ent", 1_000, "CNY", 4_000, "INV", "testing")
    r, _ = m.reserve(v, p, enrol, req, available=10_000, invoice_already_covered=0, now=T0, actor="a",
                     agency_org_id="ag")
    with pytest.raises(Conflict) as e:
        m.reserve(v, p, enrol, req, available=10_000, invoice_already_covered=1_500, now=T0, actor="a",
                  agency_org_id="ag")
    assert e.value.code == "invoice_share_exceeded"
    with pytest.raises(Conflict) as e:
        m.reserve(v, p, replace(enrol, state=m.EnrolmentState.SUSPENDED), req, available=10_000,
                  invoice_already_covered=0, now=T0, actor="a", agency_org_id="ag")
    assert e.value.code == "agency_not_approved"
    with pytest.raises(Conflict) as e:
        m.reserve(v, p, enrol, req, available=10_000, invoice_already_covered=0, now=v.expires_at, actor="a",
                  agency_org_id="ag")
    assert e.value.code == "voucher_expired"
    voided, _ = m.void(r, v, p, reason="x", now=T0, actor="a")
    with pytest.raises(Conflict) as e:
        m.settle(voided, v, p, by="e", now=T0, actor="e")
    assert e.value.code == "redemption_voided"
    settled, _ = m.settle(r, v, p, by="e", now=T0, actor="e")
    with pytest.raises(Conflict):
        m.void(settled, v, p, reason="x", now=T0, actor="a")
    paid, entry = m.payout(settled, p, reference="B", now=T0, actor="gov")
    assert entry.amount == 1_000
    clawed, entry = m.clawback(paid, p, amount=400, reason="wrong", settle_entry_id="s", now=T0, actor="gov")
    assert entry.reverses == "s" and clawed.clawed_back == 400
    with pytest.raises(Conflict) as e:
        m.clawback(clawed, p, amount=601, reason="wrong", settle_entry_id="s", now=T0, actor="gov")
    assert e.value.code == "clawback_exceeds_settled"


def test_two_levels_need_two_reviewers():
    p = programme(review_levels=2)
    a = m.submit_application(p, "ent", org(), amount=10_000, purpose="", issued_this_year=0, now=T0, actor="u")
    a = m.review_application(a, p, reviewer="r1", approve=True, reason="", now=T0)
    assert a.state is m.ApplicationState.PARTLY_APPROVED
    with pytest.raises(Forbidden):
        m.review_application(a, p, reviewer="r1", approve=True, reason="", now=T0)
    a = m.review_application(a, p, reviewer="r2", approve=True, reason="", now=T0)
    assert a.state is m.ApplicationState.APPROVED and [r.level for r in a.reviews] == [1, 2]
    with pytest.raises(Conflict):
        m.review_application(a, p, reviewer="r3", approve=False, reason="late", now=T0)


def test_agency_transitions():
    p = programme()
    e = m.apply_as_agency(p, "ag", ("testing",), None, now=T0)
    with pytest.raises(ValidationFailed):
        m.apply_as_agency(p, "ag", ("astrology",), None, now=T0)
    e = m.decide_enrolment(e, "approve", reason="", now=T0)
    e = m.decide_enrolment(e, "suspend", reason="complaint", now=T0)
    e = m.decide_enrolment(e, "approve", reason="cleared", now=T0)
    e = m.decide_enrolment(e, "remove", reason="fraud", now=T0)
    with pytest.raises(Conflict) as err:
        m.decide_enrolment(e, "approve", reason="", now=T0)
    assert err.value.code == "agency_transition_refused"


_json_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


@given(st.dictionaries(st.sampled_from(["id", "kind", "memo", "created_by", "reverses", "voucher_id"]),
                       st.none() | _json_text),
       st.lists(st.tuples(_json_text, st.integers(min_value=-(2**62), max_value=2**62)), max_size=4), _json_text)
def test_entry_hashes_cover_the_same_bytes_as_the_standard_library_wrote_them(fields, postings, prev):
    """Hashes stored before were computed over `json.dumps(..., sort_keys=True)`; the canonical
    bytes must stay exactly those, for any text (controls, quotes, CJK, astral planes)."""
    import json

    from techbridge_vouchers.domain.ledger import canonical
    body = {**fields, "postings": sorted([a, n] for a, n in postings), "prev_hash": prev}
    assert canonical(fields, postings, prev) == json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
