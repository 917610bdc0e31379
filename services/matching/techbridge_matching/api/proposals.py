"""Proposals answering a demand: /api/v1/matching/demands/{id}/proposals/... and /proposals."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request

from techbridge_shared.errors import problem_responses
from techbridge_shared.identity import Identity, require_identity, require_roles
from techbridge_shared.idempotency import idempotency_key
from techbridge_shared.service import ServiceRuntime, runtime_of

from ..usecases import proposals as uc
from .convert import offer_from, proposal_out, transfer_out
from .deps import idempotent_write, now_of
from .schemas import ProposalDealIn, ProposalIn, ProposalOut, ProposalRejectIn, TransferOut

router = APIRouter(prefix="/api/v1/matching", tags=["proposals"])
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)
STATUS = Query(None, pattern="^(submitted|accepted|rejected|withdrawn|in_deal)$", description="Only proposals in this state")


def _json(p) -> dict:
    return proposal_out(p).model_dump(mode="json")


@router.post("/demands/{demand_id}/proposals", status_code=201, response_model=ProposalOut, responses=WRITE_ERRORS)
async def submit_proposal(demand_id: str, body: ProposalIn, request: Request,
                          identity: Identity = Depends(require_roles("institution", "agency")),
                          key: str | None = Depends(idempotency_key), runtime: ServiceRuntime = Depends(runtime_of),
                          now: datetime = Depends(now_of)):
    """Answer a published demand with one or more achievements (`Idempotency-Key` accepted)."""
    async def action(uow):
        return _json(await uc.submit(uow, identity, demand_id, body.achievement_ids, body.message, now))
    return await idempotent_write(request, runtime, identity, key, body.model_dump(mode="json"), action, 201)


@router.get("/demands/{demand_id}/proposals", response_model=list[ProposalOut], responses=problem_responses(401, 404, 422))
async def list_proposals(demand_id: str, status: str | None = STATUS, identity: Identity = Depends(require_identity),
                         runtime: ServiceRuntime = Depends(runtime_of)) -> list[ProposalOut]:
    """The demand's owner sees all proposals, oldest first; a proposer sees its own."""
    async with runtime.unit_of_work() as uow:
        return [proposal_out(p) for p in await uc.list_for_demand(uow, identity, demand_id, status)]


@router.get("/proposals", response_model=list[ProposalOut], responses=problem_responses(401, 422))
async def my_proposals(status: str | None = STATUS, identity: Identity = Depends(require_identity),
                       runtime: ServiceRuntime = Depends(runtime_of)) -> list[ProposalOut]:
    """The proposals my organisation made, on any demand, oldest first."""
    async with runtime.unit_of_work() as uow:
        return [proposal_out(p) for p in await uc.list_mine(uow, identity, status)]


@router.get("/demands/{demand_id}/proposals/{proposal_id}", response_model=ProposalOut, responses=problem_responses(401, 404))
async def get_proposal(demand_id: str, proposal_id: str, identity: Identity = Depends(require_identity),
                       runtime: ServiceRuntime = Depends(runtime_of)) -> ProposalOut:
    async with runtime.unit_of_work() as uow:
        _, p = await uc.load_visible(uow, identity, demand_id, proposal_id)
    return proposal_out(p)


@router.post("/demands/{demand_id}/proposals/{proposal_id}/accept", response_model=ProposalOut, responses=WRITE_ERRORS)
async def accept_proposal(demand_id: str, proposal_id: str, request: Request, identity: Identity = Depends(require_identity),
                          key: str | None = Depends(idempotency_key), runtime: ServiceRuntime = Depends(runtime_of),
                          now: datetime = Depends(now_of)):
    """The demand's owner shortlists a submitted proposal (the demand must still be published)."""
    async def action(uow):
        return _json(await uc.accept(uow, identity, demand_id, proposal_id, now))
    return await idempotent_write(request, runtime, identity, key, {}, action, 200)


@router.post("/demands/{demand_id}/proposals/{proposal_id}/reject", response_model=ProposalOut, responses=WRITE_ERRORS)
async def reject_proposal(demand_id: str, proposal_id: str, body: ProposalRejectIn, request: Request,
                          identity: Identity = Depends(require_identity), key: str | None = Depends(idempotency_key),
                          runtime: ServiceRuntime = Depends(runtime_of), now: datetime = Depends(now_of)):
    """The demand's owner rejects a submitted or accepted proposal with a coded reason; its
    achievements are declined for the demand with that reason (unless declined already)."""
    async def action(uow):
        return _json(await uc.reject(uow, identity, demand_id, proposal_id, body.reason, body.note, now))
    return await idempotent_write(request, runtime, identity, key, body.model_dump(mode="json"), action, 200)


@router.post("/demands/{demand_id}/proposals/{proposal_id}/withdraw", response_model=ProposalOut, responses=WRITE_ERRORS)
async def withdraw_proposal(demand_id: str, proposal_id: str, request: Request, identity: Identity = Depends(require_identity),
                            key: str | None = Depends(idempotency_key), runtime: ServiceRuntime = Depends(runtime_of),
                            now: datetime = Depends(now_of)):
    """The proposer takes back a submitted or accepted proposal."""
    async def action(uow):
        return _json(await uc.withdraw(uow, identity, demand_id, proposal_id, now))
    return await idempotent_write(request, runtime, identity, key, {}, action, 200)


@router.post("/demands/{demand_id}/proposals/{proposal_id}/transfer", status_code=201, response_model=TransferOut,
             responses=WRITE_ERRORS)
async def propose_deal_from_proposal(demand_id: str, proposal_id: str, body: ProposalDealIn, request: Request,
                                     identity: Identity = Depends(require_roles("institution", "enterprise", "agency")),
                                     key: str | None = Depends(idempotency_key),
                                     runtime: ServiceRuntime = Depends(runtime_of), now: datetime = Depends(now_of)):
    """Propose a deal from an accepted proposal, with its first offer: the demand's owner buys,
    the achievements' owner sells; either of them may propose it. The proposal becomes
    `in_deal` and the deal carries `demand_id` and `proposal_id`."""
    async def action(uow):
        _, t = await uc.propose_deal(uow, identity, demand_id, proposal_id, body.achievement_ids, offer_from(body.offer), now)
        return transfer_out(t).model_dump(mode="json")
    return await idempotent_write(request, runtime, identity, key, body.model_dump(mode="json"), action, 201)
