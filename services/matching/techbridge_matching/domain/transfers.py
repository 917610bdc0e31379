"""Transfer deals: proposed -> negotiating (immutable, versioned offers) -> signed by both ->
public notice (for prices set by private agreement) -> completed | cancelled.

Every transition names who may take it; a wrong party or a wrong state is refused with a
Conflict/Forbidden naming the refused transition. Time comes in as an argument, so the notice
period is tested with any clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from techbridge_shared.errors import Conflict, FieldError, Forbidden, ValidationFailed

from .common import MAX_AMOUNT, TransferMode


class TransferStatus(StrEnum):
    proposed = "proposed"
    negotiating = "negotiating"
    signed = "signed"
    in_notice = "in_notice"
    completed = "completed"
    cancelled = "cancelled"


class Pricing(StrEnum):
    private_agreement = "private_agreement"  # needs a public notice before completion
    public_listing = "public_listing"  # listed and traded on an exchange
    auction = "auction"


EXCLUSIVE_MODES = {TransferMode.assignment, TransferMode.exclusive_licence}
FINAL = {TransferStatus.completed, TransferStatus.cancelled}


@dataclass(frozen=True)
class Royalty:
    rate_bp: int  # basis points of the base
    base: str  # e.g. "net sales"
    minimum_annual: int | None = None  # minor units


@dataclass(frozen=True)
class Offer:
    version: int
    made_by_org_id: str
    mode: TransferMode
    exclusive: bool
    territory: str
    term_months: int | None
    price: int | None  # minor units
    currency: str
    royalty: Royalty | None
    pricing: Pricing
    milestones: tuple[dict, ...] = ()
    note: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class Transfer:
    id: str
    seller_org_id: str
    buyer_org_id: str
    achievement_ids: tuple[str, ...]
    proposed_by_org_id: str
    status: TransferStatus
    offers: tuple[Offer, ...]
    demand_id: str | None = None
    proposal_id: str | None = None  # the accepted proposal the deal came from, if any
    seller_signed_at: datetime | None = None
    buyer_signed_at: datetime | None = None
    signed_at: datetime | None = None
    notice_starts_at: datetime | None = None
    notice_ends_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancelled_reason: str | None = None
    cancelled_by_org_id: str | None = None
    created_at: datetime | None = None
    extra: dict = field(default_factory=dict)

    @property
    def current(self) -> Offer:
        return self.offers[-1]

    def party(self, org_id: str | None) -> str | None:
        if org_id == self.seller_org_id:
            return "seller"
        if org_id == self.buyer_org_id:
            return "buyer"
        return None


def validate_offer(offer: Offer) -> None:
    errors = []
    if offer.price is None and offer.royalty is None:
        errors.append(FieldError(field="body.price", message="an offer needs a price, royalty terms, or both"))
    if offer.price is not None and not (0 <= offer.price <= MAX_AMOUNT):
        errors.append(FieldError(field="body.price.amount", message=f"must be between 0 and {MAX_AMOUNT} minor units"))
    if offer.royalty is not None and not (0 < offer.royalty.rate_bp <= 10_000):
        errors.append(FieldError(field="body.royalty.rate_bp", message="must be between 1 and 10000 basis points"))
    if offer.mode in EXCLUSIVE_MODES and not offer.exclusive:
        errors.append(FieldError(field="body.exclusive", message=f"{offer.mode.value} is exclusive by nature"))
    if offer.mode == TransferMode.non_exclusive_licence and offer.exclusive:
        errors.append(FieldError(field="body.exclusive", message="a non-exclusive licence cannot be exclusive"))
    if errors:
        raise ValidationFailed("the offer's terms are not consistent", errors=errors)


def propose(
    *, transfer_id: str, by_org_id: str, seller_org_id: str, buyer_org_id: str,
    achievement_ids: tuple[str, ...], offer: Offer, now: datetime, demand_id: str | None = None,
    proposal_id: str | None = None,
) -> Transfer:
    if seller_org_id == buyer_org_id:
        raise ValidationFailed("seller and buyer must differ",
                               errors=[FieldError(field="body.buyer_org_id", message="same as the seller")])
    if by_org_id not in (seller_org_id, buyer_org_id):
        raise Forbidden("only the seller or the buyer can propose a transfer between them")
    if not achievement_ids:
        raise ValidationFailed("name at least one achievement",
                               errors=[FieldError(field="body.achievement_ids", message="empty")])
    validate_offer(offer)
    first = replace(offer, version=1, made_by_org_id=by_org_id, created_at=now)
    return Transfer(
        id=transfer_id, seller_org_id=seller_org_id, buyer_org_id=buyer_org_id,
        achievement_ids=achievement_ids, proposed_by_org_id=by_org_id,
        status=TransferStatus.proposed, offers=(first,), demand_id=demand_id, proposal_id=proposal_id, created_at=now,
    )


def _require_party(t: Transfer, org_id: str | None, action: str) -> str:
    role = t.party(org_id)
    if role is None:
        raise Forbidden(f"only the parties to transfer {t.id} can {action}")
    return role


def _refuse(t: Transfer, target: str, why: str = "") -> Conflict:
    return Conflict(f"transfer {t.id} is {t.status.value}; {t.status.value} -> {target} is not allowed" + (f": {why}" if why else ""),
                    code="invalid_transition")


def make_offer(t: Transfer, *, by_org_id: str, offer: Offer, based_on_version: int, now: datetime) -> Transfer:
    """A counter-offer (or revised offer) by either party; earlier offers stay as they were."""
    _require_party(t, by_org_id, "make offers")
    if t.status not in (TransferStatus.proposed, TransferStatus.negotiating):
        raise _refuse(t, "negotiating")
    if based_on_version != t.current.version:
        raise Conflict(f"offer {based_on_version} is not the current one (current: {t.current.version}); read the deal again",
                       code="stale_offer")
    validate_offer(offer)
    new = replace(offer, version=t.current.version + 1, made_by_org_id=by_org_id, created_at=now)
    return replace(t, status=TransferStatus.negotiating, offers=t.offers + (new,),
                   seller_signed_at=None, buyer_signed_at=None)


def needs_notice(offer: Offer) -> bool:
    return offer.pricing == Pricing.private_agreement and offer.price is not None


def sign(t: Transfer, *, by_org_id: str, offer_version: int, now: datetime, notice_days: int) -> Transfer:
    """Sign the current offer. When both have signed it, the deal is signed; a price set by
    private agreement then goes into public notice for `notice_days`."""
    role = _require_party(t, by_org_id, "sign")
    if t.status not in (TransferStatus.proposed, TransferStatus.negotiating):
        raise _refuse(t, "signed")
    if offer_version != t.current.version:
        raise Conflict(f"offer {offer_version} is not the current one (current: {t.current.version})", code="stale_offer")
    if (role == "seller" and t.seller_signed_at) or (role == "buyer" and t.buyer_signed_at):
        raise Conflict(f"the {role} has already signed offer {offer_version}", code="already_signed")
    t = replace(t, **({"seller_signed_at": now} if role == "seller" else {"buyer_signed_at": now}))
    if t.seller_signed_at and t.buyer_signed_at:
        t = replace(t, status=TransferStatus.signed, signed_at=now)
        if needs_notice(t.current) and notice_days > 0:
            t = replace(t, status=TransferStatus.in_notice, notice_starts_at=now,
                        notice_ends_at=now + timedelta(days=notice_days))
    return t


def complete(t: Transfer, *, by_org_id: str | None, is_admin: bool, now: datetime) -> Transfer:
    if not is_admin:
        _require_party(t, by_org_id, "complete it")
    if t.status == TransferStatus.in_notice:
        if t.notice_ends_at and now < t.notice_ends_at:
            raise _refuse(t, "completed", f"the public notice runs until {t.notice_ends_at.isoformat()}")
    elif t.status != TransferStatus.signed:
        raise _refuse(t, "completed", "both parties must sign first" if t.status not in FINAL else "")
    return replace(t, status=TransferStatus.completed, completed_at=now)


def cancel(t: Transfer, *, by_org_id: str | None, is_admin: bool, reason: str, now: datetime) -> Transfer:
    if not is_admin:
        _require_party(t, by_org_id, "cancel it")
    if t.status in FINAL:
        raise _refuse(t, "cancelled")
    if not reason.strip():
        raise ValidationFailed("say why the deal is cancelled", errors=[FieldError(field="body.reason", message="empty")])
    return replace(t, status=TransferStatus.cancelled, cancelled_at=now, cancelled_reason=reason, cancelled_by_org_id=by_org_id)
