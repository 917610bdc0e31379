"""Transfer deal use cases: each loads the deal, applies one domain transition, saves it with
an optimistic check, and publishes the fact, in one unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from techbridge_shared.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from techbridge_shared.identity import Identity
from techbridge_shared.uow import UnitOfWork

from ..domain import transfers as rules
from ..domain.transfers import Offer, Transfer, TransferStatus
from ..events.published import transfer_event
from ..store import repository as repo

READ_ALL_ROLES = ("admin", "government")


async def deal_facts(uow: UnitOfWork, t: Transfer) -> dict:
    """What a registration record needs from the achievements (the read model's copy)."""
    rows = await repo.achievements_by_ids(uow.session, list(t.achievement_ids))
    titles, ipc, fields, trls = [], [], [], []
    for a in t.achievement_ids:
        r = rows.get(a)
        if r is None:
            titles.append("")
            continue
        titles.append(r.title_zh or r.title_en)
        ipc += [c for c in r.ipc_codes if c not in ipc]
        fields += [f for f in r.fields if f not in fields]
        if r.trl is not None:
            trls.append(r.trl)
    return {"achievement_titles": titles, "ipc_codes": ipc, "fields": fields, "trl": min(trls) if trls else None}


async def load_visible(uow: UnitOfWork, identity: Identity, transfer_id: str, *, for_update: bool = False) -> tuple[Transfer, int]:
    found = await repo.get_transfer(uow.session, transfer_id, for_update=for_update)
    if found is None:
        raise NotFound(f"transfer {transfer_id} not found")
    t, _ = found
    if t.party(identity.org) is None and not identity.has_any(*READ_ALL_ROLES):
        raise NotFound(f"transfer {transfer_id} not found")
    return found


async def propose(uow: UnitOfWork, identity: Identity, *, seller_org_id: str, buyer_org_id: str,
                  achievement_ids: list[str], demand_id: str | None, offer: Offer, now: datetime,
                  proposal_id: str | None = None) -> Transfer:
    rows = await repo.achievements_by_ids(uow.session, achievement_ids)
    errors = []
    for i, a in enumerate(achievement_ids):
        if a not in rows or rows[a].status != "published":
            errors.append(FieldError(field=f"body.achievement_ids.{i}", message="no published achievement with this id"))
        elif rows[a].owner_org_id != seller_org_id:
            errors.append(FieldError(field=f"body.achievement_ids.{i}", message="not owned by the seller"))
    if len(set(achievement_ids)) != len(achievement_ids):
        errors.append(FieldError(field="body.achievement_ids", message="listed twice"))
    if errors:
        raise ValidationFailed("the achievements do not fit this deal", errors=errors)
    if not identity.org:
        raise Forbidden("a deal is proposed by an organisation; the caller has none")
    t = rules.propose(transfer_id=str(uuid.uuid4()), by_org_id=identity.org, seller_org_id=seller_org_id,
                      buyer_org_id=buyer_org_id, achievement_ids=tuple(achievement_ids), offer=offer, now=now,
                      demand_id=demand_id, proposal_id=proposal_id)
    await repo.add_transfer(uow.session, t)
    uow.publish(transfer_event(t, "proposed", await deal_facts(uow, t)))
    return t


async def _change(uow: UnitOfWork, identity: Identity, transfer_id: str,
                  step: Callable[[Transfer], Transfer], verbs: Callable[[Transfer, Transfer], list[str]]) -> Transfer:
    before, row_version = await load_visible(uow, identity, transfer_id, for_update=True)
    after = step(before)
    try:
        await repo.save_transfer(uow.session, before, after, row_version)
    except repo.StaleWrite:
        raise Conflict(f"transfer {transfer_id} changed meanwhile; read it again", code="concurrent_change") from None
    facts = await deal_facts(uow, after)
    for verb in verbs(before, after):
        uow.publish(transfer_event(after, verb, facts))
    return after


async def make_offer(uow, identity, transfer_id: str, offer: Offer, based_on_version: int, now: datetime) -> Transfer:
    return await _change(uow, identity, transfer_id,
                         lambda t: rules.make_offer(t, by_org_id=identity.org, offer=offer, based_on_version=based_on_version, now=now),
                         lambda b, a: ["offer-made"])


async def sign(uow, identity, transfer_id: str, offer_version: int, now: datetime, notice_days: int) -> Transfer:
    def verbs(before: Transfer, after: Transfer) -> list[str]:
        out = []
        if after.signed_at and not before.signed_at:
            out.append("signed")
            if after.status == TransferStatus.in_notice:
                out.append("notice-published")
        return out

    return await _change(uow, identity, transfer_id,
                         lambda t: rules.sign(t, by_org_id=identity.org, offer_version=offer_version, now=now, notice_days=notice_days),
                         verbs)


async def complete(uow, identity, transfer_id: str, now: datetime) -> Transfer:
    return await _change(uow, identity, transfer_id,
                         lambda t: rules.complete(t, by_org_id=identity.org, is_admin=identity.is_admin, now=now),
                         lambda b, a: ["completed"])


async def cancel(uow, identity, transfer_id: str, reason: str, now: datetime) -> Transfer:
    return await _change(uow, identity, transfer_id,
                         lambda t: rules.cancel(t, by_org_id=identity.org, is_admin=identity.is_admin, reason=reason, now=now),
                         lambda b, a: ["cancelled"])


async def notices(uow: UnitOfWork) -> list[tuple[Transfer, dict]]:
    return [(t, await deal_facts(uow, t)) for t in await repo.transfers_in_notice(uow.session)]
