"""Proposal rules without I/O: every (state, action, party) combination has one answer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from techbridge_matching.domain import proposals as P
from techbridge_matching.domain.common import DeclineReason, TransferMode
from techbridge_matching.domain.demands import Budget, Demand, DemandStatus
from techbridge_shared.errors import Conflict, Forbidden, ValidationFailed

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DEMAND = Demand(id="d1", owner_org_id="sme", title="separator", problem="lithium separator shrinks", ipc_codes=(),
                keywords=(), budget=Budget(None, None), deadline=date(2026, 12, 31),
                transfer_modes=(TransferMode.assignment,), min_trl=None, region=None, status=DemandStatus.published)


def proposal(status: P.ProposalStatus = P.ProposalStatus.submitted, ids=("a1",)) -> P.Proposal:
    return P.Proposal(id="p1", demand_id="d1", proposer_org_id="broker", achievement_ids=ids, message="m", status=status,
                      created_at=NOW)


def act(action: str, p: P.Proposal, org: str, demand: Demand = DEMAND):
    if action == "accept":
        return P.accept(p, demand, org=org, by="u", is_admin=False, now=NOW)
    if action == "reject":
        return P.reject(p, demand, org=org, by="u", is_admin=False, reason=DeclineReason.price, note=None, now=NOW)
    return P.withdraw(p, org=org, now=NOW)


# The state each action leads to, from each state, when the right party takes it (None: 409).
TABLE = {
    ("accept", "submitted"): "accepted", ("accept", "accepted"): None, ("accept", "rejected"): None,
    ("accept", "withdrawn"): None, ("accept", "in_deal"): None,
    ("reject", "submitted"): "rejected", ("reject", "accepted"): "rejected", ("reject", "rejected"): None,
    ("reject", "withdrawn"): None, ("reject", "in_deal"): None,
    ("withdraw", "submitted"): "withdrawn", ("withdraw", "accepted"): "withdrawn", ("withdraw", "rejected"): None,
    ("withdraw", "withdrawn"): None, ("withdraw", "in_deal"): None,
}
RIGHT_PARTY = {"accept": "sme", "reject": "sme", "withdraw": "broker"}


@pytest.mark.parametrize(("action", "state"), sorted(TABLE))
def test_each_transition_from_each_state(action, state):
    p = proposal(P.ProposalStatus(state))
    expected = TABLE[(action, state)]
    if expected is None:
        with pytest.raises(Conflict, match=f"{state} -> "):
            act(action, p, RIGHT_PARTY[action])
    else:
        assert act(action, p, RIGHT_PARTY[action]).status.value == expected
    # The wrong party is refused whatever the state; the proposal is unchanged.
    for org in {"sme", "broker", "univ"} - {RIGHT_PARTY[action]}:
        with pytest.raises(Forbidden):
            act(action, p, org)


def test_rejection_keeps_its_reason_and_acceptance_needs_a_published_demand():
    r = P.reject(proposal(), DEMAND, org="sme", by="u", is_admin=False, reason=DeclineReason.timing, note="next year", now=NOW)
    assert (r.reject_reason, r.reject_note, r.decided_at) == (DeclineReason.timing, "next year", NOW)
    with pytest.raises(Conflict, match="closed"):
        act("accept", proposal(), "sme", replace(DEMAND, status=DemandStatus.closed))
    assert P.accept(proposal(), DEMAND, org=None, by="admin", is_admin=True, now=NOW).status == P.ProposalStatus.accepted


def test_submission_refuses_closed_demands_own_demands_and_repeats():
    kw = dict(proposal_id="p2", proposer_org_id="univ", achievement_ids=("a1",), message="m", now=NOW)
    with pytest.raises(Conflict):
        P.submit(demand=replace(DEMAND, status=DemandStatus.expired), open_by_proposer=[], **kw)
    with pytest.raises(Forbidden):
        P.submit(demand=DEMAND, open_by_proposer=[], **{**kw, "proposer_org_id": "sme"})
    with pytest.raises(Conflict) as e:
        P.submit(demand=DEMAND, open_by_proposer=[proposal(ids=("a0", "a1"))], **kw)
    assert e.value.code == "already_proposed" and e.value.errors[0].field == "body.achievement_ids.0"
    with pytest.raises(ValidationFailed):
        P.submit(demand=DEMAND, open_by_proposer=[], **{**kw, "achievement_ids": ("a1", "a1")})
    assert P.submit(demand=DEMAND, open_by_proposer=[], **kw).status == P.ProposalStatus.submitted


def test_a_deal_has_the_demand_owner_as_buyer_and_one_seller():
    p = proposal(P.ProposalStatus.accepted, ids=("a1", "a2"))
    owners = {"a1": "univ", "a2": "lab"}
    with pytest.raises(ValidationFailed):
        P.deal_parties(p, DEMAND, org="sme", achievement_owners=owners, chosen=None)
    assert P.deal_parties(p, DEMAND, org="sme", achievement_owners=owners, chosen=("a2",)) == ("lab", "sme", ("a2",))
    assert P.deal_parties(p, DEMAND, org="univ", achievement_owners=owners, chosen=("a1",)) == ("univ", "sme", ("a1",))
    with pytest.raises(Forbidden):  # the broker is no party; nor is the other owner
        P.deal_parties(p, DEMAND, org="broker", achievement_owners=owners, chosen=("a1",))
    with pytest.raises(Forbidden):
        P.deal_parties(p, DEMAND, org="lab", achievement_owners=owners, chosen=("a1",))
    with pytest.raises(Conflict, match="no longer published"):
        P.deal_parties(p, DEMAND, org="sme", achievement_owners={"a1": "univ"}, chosen=("a2",))
    with pytest.raises(Conflict, match="accept it first"):
        P.deal_parties(proposal(), DEMAND, org="sme", achievement_owners=owners, chosen=("a1",))
    assert P.into_deal(p, "t1").status == P.ProposalStatus.in_deal
