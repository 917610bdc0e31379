"""Demands, matches and declines: /api/v1/matching/demands/... (proposals: api/proposals.py)"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request

from techbridge_shared.errors import problem_responses
from techbridge_shared.identity import Identity, require_identity, require_roles
from techbridge_shared.idempotency import idempotency_key
from techbridge_shared.pagination import Page, PageParams, encode_cursor, page_params
from techbridge_shared.service import ServiceRuntime, runtime_of

from ..domain.demands import Budget
from ..domain.matching import Hit
from ..usecases import demands as uc
from ..usecases.engine import MatchingEngine
from .convert import demand_out, money
from .deps import engine_of, idempotent_write, now_of
from .schemas import (
    AchievementMatch, AchievementMatches, CloseIn, DeclineIn, DeclineOut, DemandFields, DemandMatch, DemandMatches,
    DemandOut, Explanation,
)

router = APIRouter(prefix="/api/v1/matching", tags=["demands"])
ENTERPRISE = require_roles("enterprise")


def _fields(body: DemandFields) -> dict:
    currency = (body.budget_max or body.budget_min).currency if (body.budget_max or body.budget_min) else "CNY"
    return dict(
        title=body.title, problem=body.problem, ipc_codes=tuple(body.ipc_codes), keywords=tuple(body.keywords),
        budget=Budget(body.budget_min.amount if body.budget_min else None, body.budget_max.amount if body.budget_max else None, currency),
        deadline=body.deadline, transfer_modes=tuple(body.transfer_modes), min_trl=body.min_trl, region=body.region,
    )


@router.post("/demands", status_code=201, response_model=DemandOut, responses=problem_responses(401, 403, 409, 422))
async def create_demand(body: DemandFields, request: Request, identity: Identity = Depends(ENTERPRISE),
                        key: str | None = Depends(idempotency_key), runtime: ServiceRuntime = Depends(runtime_of),
                        now: datetime = Depends(now_of)):
    """Post a technology demand as a draft (`Idempotency-Key` makes a retry return the same draft)."""
    async def action(uow):
        return demand_out(await uc.create(uow, identity, _fields(body), now)).model_dump(mode="json")
    return await idempotent_write(request, runtime, identity, key, body.model_dump(mode="json"), action, 201)


@router.get("/demands", response_model=Page[DemandOut], responses=problem_responses(401, 422))
async def list_demands(
    identity: Identity = Depends(require_identity), runtime: ServiceRuntime = Depends(runtime_of),
    page: PageParams = Depends(page_params),
    mine: bool = Query(False, description="Only my organisation's demands (drafts included)"),
    status: str | None = Query(None, pattern="^(draft|published|closed|fulfilled|expired)$"),
) -> Page[DemandOut]:
    """Published demands (and my own drafts), newest first."""
    async with runtime.unit_of_work() as uow:
        rows = await uc.repo.list_demands(uow.session, owner=identity.org if mine else None, status=status,
                                          visible_to=None if identity.is_admin else identity.org,
                                          limit=page.limit, after=page.cursor)
    items = rows[: page.limit]
    cursor = encode_cursor({"t": items[-1].created_at.isoformat(), "id": items[-1].id}) if len(rows) > page.limit else None
    return Page[DemandOut](items=[demand_out(d) for d in items], next_cursor=cursor)


@router.get("/demands/{demand_id}", response_model=DemandOut, responses=problem_responses(401, 404))
async def get_demand(demand_id: str, identity: Identity = Depends(require_identity),
                     runtime: ServiceRuntime = Depends(runtime_of)) -> DemandOut:
    async with runtime.unit_of_work() as uow:
        return demand_out(await uc.load_visible(uow, identity, demand_id))


@router.put("/demands/{demand_id}", response_model=DemandOut, responses=problem_responses(401, 403, 404, 409, 422))
async def update_demand(demand_id: str, body: DemandFields, identity: Identity = Depends(ENTERPRISE),
                        runtime: ServiceRuntime = Depends(runtime_of), now: datetime = Depends(now_of)) -> DemandOut:
    """Edit a draft."""
    async with runtime.unit_of_work() as uow:
        return demand_out(await uc.update(uow, identity, demand_id, _fields(body), now))


def _transition(action: str):
    async def endpoint(demand_id: str, body: CloseIn | None = None, identity: Identity = Depends(ENTERPRISE),
                       runtime: ServiceRuntime = Depends(runtime_of), engine: MatchingEngine = Depends(engine_of),
                       now: datetime = Depends(now_of)) -> DemandOut:
        async with runtime.unit_of_work() as uow:
            return demand_out(await uc.transition(uow, engine, identity, demand_id, action, now, body.reason if body else None))
    return endpoint


for _action, _summary in (("publish", "Publish a draft: it becomes visible and matchable"),
                          ("close", "Close the demand (no longer wanted)"),
                          ("fulfil", "Mark the demand fulfilled")):
    router.add_api_route(f"/demands/{{demand_id}}/{_action}", _transition(_action), methods=["POST"],
                         response_model=DemandOut, name=f"{_action}_demand", summary=_summary,
                         responses=problem_responses(401, 403, 404, 409, 422))


def _achievement_match(hit: Hit, facts, expl: dict) -> AchievementMatch:
    return AchievementMatch(
        achievement_id=facts.achievement_id, version=facts.version, owner_org_id=facts.owner_org_id, title=facts.title,
        trl=facts.trl, asking_price=money(facts.asking_price, facts.currency), region=facts.region, score=hit.score,
        relevance=hit.relevance, explanation=Explanation(summary=hit.summary, **expl),
    )


@router.get("/demands/{demand_id}/matches", response_model=DemandMatches, responses=problem_responses(401, 404, 422))
async def demand_matches(demand_id: str, limit: int = Query(20, ge=1, le=100),
                         identity: Identity = Depends(require_identity), runtime: ServiceRuntime = Depends(runtime_of),
                         engine: MatchingEngine = Depends(engine_of)) -> DemandMatches:
    """Ranked achievements for my demand, each with its explanation."""
    async with runtime.unit_of_work() as uow:
        d, hits = await uc.matches_for_demand(uow, engine, identity, demand_id, limit)
    return DemandMatches(demand_id=d.id, items=[_achievement_match(h, f, e) for h, f, e in hits])


@router.get("/achievements/{achievement_id}/matches", response_model=AchievementMatches, tags=["matches"],
            responses=problem_responses(401, 404, 422))
async def achievement_matches(achievement_id: str, limit: int = Query(20, ge=1, le=100),
                              identity: Identity = Depends(require_identity), runtime: ServiceRuntime = Depends(runtime_of),
                              engine: MatchingEngine = Depends(engine_of)) -> AchievementMatches:
    """Ranked published demands for my achievement."""
    async with runtime.unit_of_work() as uow:
        found = await uc.matches_for_achievement(uow, engine, identity, achievement_id, limit)
    items = []
    for d, cand, checks, expl in found:
        summary = Hit(d.id, cand.score, cand.relevance, checks, expl["matched_terms"], list(cand.ipc.shared), cand.dense,
                      cand.lexical_rank, cand.dense_rank).summary
        items.append(DemandMatch(demand_id=d.id, owner_org_id=d.owner_org_id, title=d.title, deadline=d.deadline,
                                 score=cand.score, relevance=cand.relevance, explanation=Explanation(summary=summary, **expl)))
    return AchievementMatches(achievement_id=achievement_id, items=items)


@router.post("/demands/{demand_id}/declines", status_code=201, response_model=DeclineOut,
             responses=problem_responses(401, 403, 404, 422))
async def decline_match(demand_id: str, body: DeclineIn, identity: Identity = Depends(ENTERPRISE),
                        runtime: ServiceRuntime = Depends(runtime_of), now: datetime = Depends(now_of)) -> DeclineOut:
    """Decline a suggested achievement with a coded reason; later rankings for this demand use it."""
    async with runtime.unit_of_work() as uow:
        return DeclineOut(**await uc.decline(uow, identity, demand_id, body.achievement_id, body.reason, body.note, now))


@router.get("/demands/{demand_id}/declines", response_model=list[DeclineOut], responses=problem_responses(401, 404))
async def list_declines(demand_id: str, identity: Identity = Depends(require_identity),
                        runtime: ServiceRuntime = Depends(runtime_of)) -> list[DeclineOut]:
    async with runtime.unit_of_work() as uow:
        return [DeclineOut(**r._mapping) for r in await uc.declines(uow, identity, demand_id)]


@router.get("/reports/declines", response_model=dict[str, int], tags=["reports"], responses=problem_responses(401))
async def decline_report(identity: Identity = Depends(require_identity),
                         runtime: ServiceRuntime = Depends(runtime_of)) -> dict[str, int]:
    """Declines by reason: platform-wide for admin and government, else my organisation's demands."""
    async with runtime.unit_of_work() as uow:
        return await uc.decline_report(uow, identity)


@router.post("/maintenance/expire-demands", tags=["maintenance"], responses=problem_responses(401, 403))
async def expire_demands(identity: Identity = Depends(require_roles("admin")), runtime: ServiceRuntime = Depends(runtime_of),
                         now: datetime = Depends(now_of)) -> dict[str, int]:
    """Expire published demands whose deadline has passed (also runs periodically)."""
    async with runtime.unit_of_work() as uow:
        return {"expired": await uc.expire_due(uow, now)}
