"""Proposals: an institution or agency answers a published demand with achievements.

    submitted -> accepted (the demand's owner shortlists it) -> in_deal (a deal was proposed from it)
    submitted | accepted -> rejected (by the demand's owner, with a coded reason)
    submitted | accepted -> withdrawn (by the proposer)

Who may take each step and from which state is decided here; a wrong party is Forbidden
(403), a wrong state a Conflict (409) naming the refused transition. A proposal in a deal is
settled by the deal: it can no longer be withdrawn or rejected (cancel the deal instead).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from techbridge_shared.errors import Conflict, FieldError, Forbidden, ValidationFailed

from .common import DeclineReason
from .demands import Demand, DemandStatus


class ProposalStatus(StrEnum):
    submitted = "submitted"
    accepted = "accepted"  # shortlisted by the demand's owner
    rejected = "rejected"
    withdrawn = "withdrawn"
    in_deal = "in_deal"


OPEN = {ProposalStatus.submitted, ProposalStatus.accepted}


@dataclass(frozen=True)
class Proposal:
    id: str
    demand_id: str
    proposer_org_id: str
    achievement_ids: tuple[str, ...]
    message: str
    status: ProposalStatus = ProposalStatus.submitted
    created_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    reject_reason: DeclineReason | None = None
    reject_note: str | None = None
    withdrawn_at: datetime | None = None
    transfer_id: str | None = None


def _refuse(p: Proposal, target: str, why: str = "") -> Conflict:
    return Conflict(f"proposal {p.id} is {p.status.value}; {p.status.value} -> {target} is not allowed" + (f": {why}" if why else ""),
                    code="invalid_transition")


def _require_owner(demand: Demand, org: str | None, is_admin: bool, action: str) -> None:
    if not is_admin and org != demand.owner_org_id:
        raise Forbidden(f"only the owner of demand {demand.id} can {action} its proposals")


def submit(*, proposal_id: str, demand: Demand, proposer_org_id: str, achievement_ids: tuple[str, ...], message: str,
           now: datetime, open_by_proposer: list[Proposal]) -> Proposal:
    """A new proposal. `open_by_proposer`: the proposer's open proposals on this demand; one
    achievement is put forward once at a time (withdraw the earlier proposal to re-propose)."""
    if demand.status != DemandStatus.published:
        raise Conflict(f"demand {demand.id} is {demand.status.value}; only published demands take proposals", code="invalid_transition")
    if proposer_org_id == demand.owner_org_id:
        raise Forbidden("an organisation cannot answer its own demand")
    if len(set(achievement_ids)) != len(achievement_ids):
        raise ValidationFailed("an achievement is named twice",
                               errors=[FieldError(field="body.achievement_ids", message="listed twice")])
    already = {a: p.id for p in open_by_proposer for a in p.achievement_ids}
    errors = [FieldError(field=f"body.achievement_ids.{i}", message=f"already proposed in open proposal {already[a]}")
              for i, a in enumerate(achievement_ids) if a in already]
    if errors:
        raise Conflict("these achievements are already proposed for this demand", code="already_proposed", errors=errors)
    return Proposal(id=proposal_id, demand_id=demand.id, proposer_org_id=proposer_org_id, achievement_ids=achievement_ids,
                    message=message, status=ProposalStatus.submitted, created_at=now)


def accept(p: Proposal, demand: Demand, *, org: str | None, by: str, is_admin: bool, now: datetime) -> Proposal:
    """The demand's owner shortlists the proposal (the demand must still be published)."""
    _require_owner(demand, org, is_admin, "accept")
    if p.status != ProposalStatus.submitted:
        raise _refuse(p, "accepted")
    if demand.status != DemandStatus.published:
        raise _refuse(p, "accepted", f"demand {demand.id} is {demand.status.value}")
    return replace(p, status=ProposalStatus.accepted, decided_at=now, decided_by=by)


def reject(p: Proposal, demand: Demand, *, org: str | None, by: str, is_admin: bool, reason: DeclineReason,
           note: str | None, now: datetime) -> Proposal:
    """The demand's owner turns the proposal down, saying why (the same codes as declined matches)."""
    _require_owner(demand, org, is_admin, "reject")
    if p.status not in OPEN:
        raise _refuse(p, "rejected", "a deal was proposed from it; cancel the deal instead" if p.status == ProposalStatus.in_deal else "")
    return replace(p, status=ProposalStatus.rejected, decided_at=now, decided_by=by, reject_reason=reason, reject_note=note)


def withdraw(p: Proposal, *, org: str | None, now: datetime) -> Proposal:
    """The proposer takes its proposal back."""
    if org != p.proposer_org_id:
        raise Forbidden(f"only the proposer of proposal {p.id} can withdraw it")
    if p.status not in OPEN:
        raise _refuse(p, "withdrawn", "a deal was proposed from it; cancel the deal instead" if p.status == ProposalStatus.in_deal else "")
    return replace(p, status=ProposalStatus.withdrawn, withdrawn_at=now)


def deal_parties(p: Proposal, demand: Demand, *, org: str | None, achievement_owners: dict[str, str],
                 chosen: tuple[str, ...] | None) -> tuple[str, str, tuple[str, ...]]:
    """(seller, buyer, achievements) of the deal an accepted proposal leads to.

    The buyer is the demand's owner; the seller owns the chosen achievements (all of the
    proposal's by default; an agency's proposal may name several owners, then one owner's
    subset must be chosen). Either the buyer or the seller proposes the deal; an agency that
    brokered the proposal is not a party to it.
    """
    if p.status != ProposalStatus.accepted:
        raise _refuse(p, "in_deal", "the demand's owner must accept it first" if p.status == ProposalStatus.submitted else "")
    ids = chosen or p.achievement_ids
    errors = [FieldError(field=f"body.achievement_ids.{i}", message="not part of this proposal")
              for i, a in enumerate(ids) if a not in p.achievement_ids]
    if len(set(ids)) != len(ids):
        errors.append(FieldError(field="body.achievement_ids", message="listed twice"))
    if errors:
        raise ValidationFailed("the achievements do not fit this proposal", errors=errors)
    owners = {achievement_owners.get(a) for a in ids}
    if None in owners:
        raise Conflict("an achievement of this proposal is no longer published", code="achievement_unavailable")
    if len(owners) != 1:
        raise ValidationFailed("a deal has one seller; these achievements belong to several organisations",
                               errors=[FieldError(field="body.achievement_ids", message="choose achievements of one owner")])
    seller = owners.pop()
    if org not in (seller, demand.owner_org_id):
        raise Forbidden("only the demand's owner or the achievements' owner can propose a deal from this proposal")
    return seller, demand.owner_org_id, tuple(ids)


def into_deal(p: Proposal, transfer_id: str) -> Proposal:
    return replace(p, status=ProposalStatus.in_deal, transfer_id=transfer_id)
