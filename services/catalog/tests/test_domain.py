"""Domain rules without I/O: workflow table, shares, content rules, text segmentation, codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from techbridge_catalog.domain.access import can_read, can_see_confidential
from techbridge_catalog.domain.achievement import Achievement
from techbridge_catalog.domain.history import diff
from techbridge_catalog.domain.model import Status, bits_to_modes, modes_to_bits
from techbridge_catalog.domain.rules import (
    AchievementContent,
    CoOwner,
    content_errors,
    credit_code_check_char,
    normalise_ipc,
    share_errors,
    submission_errors,
    valid_credit_code,
)
from techbridge_catalog.domain.text import index_tokens, query_tokens
from techbridge_catalog.domain.workflow import TRANSITIONS, IllegalTransition, transition
from techbridge_shared.errors import ValidationFailed

S = Status
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def content(**over) -> AchievementContent:
    base = dict(title_zh="锂电池隔膜", abstract_zh="陶瓷涂覆隔膜", ip_type="invention_patent", trl=6,
                transfer_modes=["assignment"], negotiable=True,
                ip_records=[{"number": "CN1", "kind": "invention_patent"}])
    base.update(over)
    return AchievementContent.model_validate(base)


def achievement(status=S.draft, **over) -> Achievement:
    return Achievement(id="a1", owner_org_id="o1", status=status, version=1, content=content(**over),
                       created_at=T0, updated_at=T0, listed_at=T0)


# --- workflow ------------------------------------------------------------------------------------

@pytest.mark.parametrize("start, actions, end", [
    (S.draft, ["submit", "publish"], S.published),
    (S.draft, ["submit", "return", "submit", "publish"], S.published),
    (S.draft, ["submit", "reject"], S.rejected),
    (S.published, ["expire", "renew"], S.published),
    (S.published, ["deal_signed", "deal_completed"], S.transferred),
    (S.published, ["deal_signed", "deal_cancelled"], S.published),
    (S.published, ["withdraw", "reopen", "submit"], S.submitted),
])
def test_paths_through_the_workflow(start, actions, end):
    state = start
    for a in actions:
        state = transition(state, a).after
    assert state == end


ALL_ACTIONS = sorted(TRANSITIONS)


@given(st.sampled_from(list(Status)), st.sampled_from(ALL_ACTIONS))
def test_every_transition_is_either_in_the_table_or_refused_with_its_name(state, action):
    allowed = TRANSITIONS[action]
    if state in allowed:
        assert transition(state, action).after == allowed[state]
    else:
        with pytest.raises(IllegalTransition) as e:
            transition(state, action)
        assert e.value.status == 409
        assert action.replace("_", " ") in e.value.detail and f"'{state.value}'" in e.value.detail


def test_final_states_have_no_way_out():
    for final in (S.rejected, S.transferred):
        assert not [a for a in TRANSITIONS if final in TRANSITIONS[a]]


def test_submission_needs_a_teaser_and_ip_records():
    a = achievement(abstract_zh="", ip_records=[])
    with pytest.raises(ValidationFailed) as e:
        a.moved("submit", T0)
    fields = {x.field for x in e.value.errors}
    assert fields == {"achievement.abstract_zh", "achievement.ip_records"}
    assert not submission_errors(content(ip_type="know_how", ip_records=[]))


def test_publish_sets_expiry_and_renew_of_expired_republishes():
    a, _ = achievement(S.submitted).moved("publish", T0, listing_ttl=timedelta(days=30))
    assert a.expires_at == T0 + timedelta(days=30) and a.published_at == T0 and a.version == 2
    b, _ = a.moved("expire", T0 + timedelta(days=31))
    c, t = b.moved("renew", T0 + timedelta(days=40), listing_ttl=timedelta(days=30))
    assert t.after == S.published and c.published_at == T0 + timedelta(days=40)
    assert c.expires_at == T0 + timedelta(days=70)


def test_cancelled_deal_after_the_listing_ran_out_leaves_it_expired():
    a = achievement(S.under_negotiation)
    a = Achievement(**{**a.__dict__, "expires_at": T0})
    after, t = a.moved("deal_cancelled", T0 + timedelta(days=1))
    assert after.status == S.expired and t.after == S.expired


# --- shares and content --------------------------------------------------------------------------

shares = st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=8)


@given(shares)
def test_shares_are_accepted_exactly_when_they_add_up_to_100_percent(bps):
    owners = [CoOwner(name=f"owner {i}", share_bp=bp) for i, bp in enumerate(bps)]
    errors = share_errors(owners)
    assert (not errors) == (sum(bps) == 10_000)
    if sum(bps) != 10_000:
        assert errors[0].field == "co_owners" and "100 %" in errors[0].message


@given(st.integers(min_value=2, max_value=8), st.data())
def test_any_split_of_100_percent_is_accepted(n, data):
    cuts = sorted(data.draw(st.lists(st.integers(1, 9_999), min_size=n - 1, max_size=n - 1, unique=True)))
    bps = [b - a for a, b in zip([0, *cuts], [*cuts, 10_000], strict=True)]
    owners = [CoOwner(name=f"owner {i}", share_bp=bp) for i, bp in enumerate(bps)]
    assert share_errors(owners) == []


def test_shares_of_90_percent_and_duplicates_are_refused():
    errors = share_errors([CoOwner(name="复旦", share_bp=6000), CoOwner(name="复旦", share_bp=3000)])
    assert "90 %" in errors[0].message
    assert errors[1].field == "co_owners.1"


def test_a_price_or_negotiable_is_required():
    errs = content_errors(content(negotiable=False, asking_price=None))
    assert [e.field for e in errs] == ["body.asking_price"]
    assert not content_errors(content(negotiable=False, asking_price={"amount": 1, "currency": "CNY"}))


@pytest.mark.parametrize("bad", [{"trl": 12}, {"trl": 0}, {"asking_price": {"amount": -1}}, {"transfer_modes": []},
                                 {"colour": "red"}, {"ipc_codes": ["Z99"]}, {"ip_type": "recipe"}])
def test_absurd_values_are_refused(bad):
    with pytest.raises(ValueError):
        content(**bad)


def test_ipc_codes_are_normalised():
    assert normalise_ipc("h01m10/052") == "H01M 10/052"
    assert normalise_ipc(" H01M  ") == "H01M"
    assert content(ipc_codes=["h01m 10/052", "H01M10/052"]).ipc_codes == ["H01M 10/052"]


def test_credit_codes_carry_a_check_character():
    assert valid_credit_code("91350100M000100Y43")
    assert not valid_credit_code("91350100M000100Y44")
    assert not valid_credit_code("short")
    body = "91310115MA1K4ABCD"
    assert valid_credit_code(body + credit_code_check_char(body))


def test_modes_round_trip_through_bits():
    assert bits_to_modes(modes_to_bits(["equity", "assignment"])) == ["assignment", "equity"]


# --- access and history ----------------------------------------------------------------------------

def test_confidential_details_are_for_owner_and_deal_parties_only():
    assert can_see_confidential(caller_org="o1", owner_org_id="o1", deal_parties=())
    assert can_see_confidential(caller_org="buyer", owner_org_id="o1", deal_parties={"o1", "buyer"})
    assert not can_see_confidential(caller_org="other", owner_org_id="o1", deal_parties={"o1", "buyer"})
    assert not can_see_confidential(caller_org=None, owner_org_id="o1", deal_parties=())
    assert can_read(S.draft, caller_org=None, roles={"government"}, owner_org_id="o1")
    assert not can_read(S.draft, caller_org="o2", roles={"institution"}, owner_org_id="o1")
    assert can_read(S.published, caller_org=None, roles=(), owner_org_id="o1")


def test_history_diff_names_fields_and_hides_confidential_text():
    changes = diff({"trl": 3, "confidential_details": "a"}, {"trl": 4, "confidential_details": "b"})
    assert changes == [{"field": "confidential_details", "old": None, "new": None, "redacted": True},
                       {"field": "trl", "old": 3, "new": 4}]


# --- text ----------------------------------------------------------------------------------------

def test_chinese_is_segmented_so_a_word_finds_longer_compounds():
    doc = set(index_tokens("一种锂电池隔膜的制备方法"))
    assert set(query_tokens("锂电池")) <= doc
    assert set(query_tokens("电池隔膜")) <= doc
    assert not set(query_tokens("锂离子")) <= doc


def test_english_is_case_folded_and_stemmed():
    assert query_tokens("Batteries") == query_tokens("battery")
    assert "separ" in index_tokens("Separators for lithium-ion cells")
    assert query_tokens("the of and") == []


# --- facet cache -----------------------------------------------------------------------------------

def test_facet_cache_shares_counts_across_pages_but_not_across_viewers_of_private_states():
    from techbridge_catalog.domain.search import SearchQuery, Viewer
    from techbridge_catalog.service.achievements import FacetCache

    cache = FacetCache(ttl_s=5)
    public = SearchQuery(text_tokens=("电池",), statuses=(S.published,), limit=20)
    page2 = SearchQuery(text_tokens=("电池",), statuses=(S.published,), limit=50, cursor={"o": 20})
    assert FacetCache.key(public, Viewer("a", False)) == FacetCache.key(page2, Viewer("b", False))
    drafts = SearchQuery(statuses=(S.draft,))
    assert FacetCache.key(drafts, Viewer("a", False)) != FacetCache.key(drafts, Viewer("b", False))
    k = FacetCache.key(public, Viewer(None, False))
    cache.put(k, 100.0, {"trl": []})
    assert cache.get(k, 104.0) == {"trl": []}
    assert cache.get(k, 106.0) is None
    off = FacetCache(ttl_s=0)
    off.put(k, 1.0, {"trl": []})
    assert off.get(k, 1.0) is None
