"""Demand, matching and feedback use cases (proposals: usecases/proposals.py)."""

from __future__ import annotations

import uuid
from datetime import datetime

from techbridge_shared.errors import Forbidden, NotFound
from techbridge_shared.identity import Identity
from techbridge_shared.uow import UnitOfWork

from ..domain import demands as rules
from ..domain.common import DeclineReason
from ..domain.demands import Demand, DemandStatus
from ..domain.matching import Hit, check_constraints, passes_hard
from ..events.published import demand_event
from ..retrieval.embedder import to_bytes
from ..store import repository as repo
from .engine import MatchingEngine, achievement_text
from .explain import explanation


def _owner_or_admin(identity: Identity, demand: Demand) -> None:
    if not identity.is_admin and identity.org != demand.owner_org_id:
        raise NotFound(f"demand {demand.id} not found")


async def load_visible(uow: UnitOfWork, identity: Identity, demand_id: str, *, for_update: bool = False) -> Demand:
    d = await repo.get_demand(uow.session, demand_id, for_update=for_update)
    if d is None or (d.status == DemandStatus.draft and not identity.is_admin and identity.org != d.owner_org_id):
        raise NotFound(f"demand {demand_id} not found")
    return d


async def create(uow: UnitOfWork, identity: Identity, fields: dict, now: datetime) -> Demand:
    if not identity.org:
        raise Forbidden("a demand belongs to an organisation; the caller has none")
    d = Demand(id=str(uuid.uuid4()), owner_org_id=identity.org, status=DemandStatus.draft, created_at=now, **fields)
    rules.check_budget(d.budget)
    rules.check_deadline(d.deadline, now.date())
    await repo.add_demand(uow.session, d)
    return d  # the caller commits (with its idempotency record)


async def update(uow: UnitOfWork, identity: Identity, demand_id: str, fields: dict, now: datetime) -> Demand:
    d = await load_visible(uow, identity, demand_id, for_update=True)
    _owner_or_admin(identity, d)
    d = rules.edit(d, **fields)
    rules.check_budget(d.budget)
    rules.check_deadline(d.deadline, now.date())
    await repo.save_demand(uow.session, d)
    await uow.commit()
    return d


async def transition(uow: UnitOfWork, engine: MatchingEngine, identity: Identity, demand_id: str, action: str,
                     now: datetime, reason: str | None = None) -> Demand:
    d = await load_visible(uow, identity, demand_id, for_update=True)
    _owner_or_admin(identity, d)
    embedding = None
    if action == "publish":
        d = rules.publish(d, now)
        vector = await engine.embed(d.query_text)
        embedding = to_bytes(vector) if vector is not None else None
        verb = "published"
    elif action == "close":
        d, verb = rules.close(d, now, reason), "closed"
    elif action == "fulfil":
        d, verb = rules.fulfil(d, now, reason), "fulfilled"
    else:  # pragma: no cover - routes only pass the actions above
        raise ValueError(action)
    await repo.save_demand(uow.session, d, embedding)
    await repo.record_change(uow.session, "demand", d.id, now)
    if verb != "closed" or d.published_at is not None:  # a draft closed was never public
        uow.publish(demand_event(d, verb))
    await uow.commit()
    return d


async def expire_due(uow: UnitOfWork, now: datetime) -> int:
    due = await repo.due_demands(uow.session, now.date())
    for d in due:
        d = rules.expire(d, now)
        await repo.save_demand(uow.session, d)
        await repo.record_change(uow.session, "demand", d.id, now)
        uow.publish(demand_event(d, "expired"))
    await uow.commit()
    return len(due)


# --- matching --------------------------------------------------------------------------

async def matches_for_demand(uow: UnitOfWork, engine: MatchingEngine, identity: Identity, demand_id: str,
                             limit: int) -> tuple[Demand, list[tuple[Hit, object, dict]]]:
    d = await load_visible(uow, identity, demand_id)
    _owner_or_admin(identity, d)
    await engine.sync(uow.session)
    vector, terms = await engine.query_features(d.query_text, engine.demands.vector(d.id))
    declines = await repo.decline_objects(uow.session, d.id)
    return d, engine.match_demand(d, vector, terms, declines, limit)


async def matches_for_achievement(uow: UnitOfWork, engine: MatchingEngine, identity: Identity, achievement_id: str,
                                  limit: int) -> list[tuple[Demand, object, list, dict]]:
    row = await repo.get_achievement(uow.session, achievement_id)
    if row is None or row.status != "published":
        raise NotFound(f"achievement {achievement_id} is not published")
    if not identity.is_admin and identity.org != row.owner_org_id and "agency" not in identity.roles:
        raise NotFound(f"achievement {achievement_id} is not published")
    await engine.sync(uow.session)
    text = achievement_text(row)
    vector = engine.achievements.vector(achievement_id)
    candidates = engine.demands.search(text, vector, list(row.ipc_codes or []), k=max(100, limit * 5))
    demands = await repo.demands_by_ids(uow.session, [c.doc_id for c in candidates])
    facts = repo.facts_from_row(row)
    out = []
    for c in candidates:
        d = demands.get(c.doc_id)
        if d is None or d.status != DemandStatus.published:
            continue
        checks = check_constraints(d, facts)
        if not passes_hard(checks):
            continue
        out.append((d, c, checks, explanation(c, checks, query_text=text)))
        if len(out) >= limit:
            break
    return out


async def decline(uow: UnitOfWork, identity: Identity, demand_id: str, achievement_id: str, reason: DeclineReason,
                  note: str | None, now: datetime) -> dict:
    d = await load_visible(uow, identity, demand_id)
    _owner_or_admin(identity, d)
    if await repo.get_achievement(uow.session, achievement_id) is None:
        raise NotFound(f"achievement {achievement_id} not found")
    values = dict(demand_id=d.id, achievement_id=achievement_id, reason=reason.value, note=note,
                  declined_by=identity.sub, created_at=now)
    await repo.add_decline(uow.session, values)
    await uow.commit()
    return values


async def declines(uow: UnitOfWork, identity: Identity, demand_id: str) -> list:
    d = await load_visible(uow, identity, demand_id)
    _owner_or_admin(identity, d)
    return await repo.declines_for(uow.session, d.id)


async def decline_report(uow: UnitOfWork, identity: Identity) -> dict[str, int]:
    owner = None if identity.has_any("admin", "government") else identity.org
    rows = await repo.decline_report(uow.session, owner)
    counts = {r.value: 0 for r in DeclineReason}
    counts.update({r.reason: r.n for r in rows})
    return counts
