"""Use cases: request a valuation, read one, list them. Endpoints call exactly one of these."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from techbridge_shared.errors import FieldError, Forbidden, NotFound, ValidationFailed
from techbridge_shared.identity import Identity
from techbridge_shared.money import Money
from techbridge_shared.pagination import encode_cursor
from techbridge_shared.service import ServiceRuntime

from .domain import access, engine
from .domain.assumptions import Assumptions
from .domain.result import ValuationResult
from .domain.snapshots import subject_to_data, transfer_to_data
from .events.published import ValuationCompleted, valuation_completed
from .store.repository import Repository

API = "/api/v1/valuation"


def report_path(valuation_id: str) -> str:
    return f"{API}/valuations/{valuation_id}/report.html"


async def request_valuation(runtime: ServiceRuntime, identity: Identity, achievement_id: str,
                            assumptions: Assumptions) -> dict[str, Any]:
    # 1. What we know, read in one short transaction.
    async with runtime.unit_of_work() as uow:
        repo = Repository(uow.session)
        subject = await repo.subject(achievement_id)
        if subject is None:
            raise NotFound(f"achievement {achievement_id} is not known to the valuation service "
                           "(not published, or its publication has not arrived yet)")
        role = access.requester_role(identity, subject.owner_org_id, await repo.buyer_orgs(achievement_id))
        if role is None:
            raise Forbidden("only the owner organisation, a buyer in a signed deal for this achievement, "
                            "an agency or government may request its valuation")
        transfers = await repo.comparable_transfers(subject)
    settings = runtime.settings
    if "paths" not in assumptions.simulation.model_fields_set:
        assumptions = assumptions.model_copy(update={
            "simulation": assumptions.simulation.model_copy(update={"paths": settings.default_paths})})
    today = datetime.now(UTC).date()
    if assumptions.valuation_date is None:
        assumptions = assumptions.model_copy(update={"valuation_date": today})
    # 2. The numbers, off the event loop (numpy releases the GIL for the heavy parts).
    try:
        result: ValuationResult = await asyncio.to_thread(engine.value, subject, transfers, assumptions, today)
    except engine.AssumptionsRefused as exc:
        raise ValidationFailed(
            "the assumptions cannot be valued: " + "; ".join(f"body.{f}: {m}" for f, m in exc.errors[:3]),
            errors=[FieldError(field=f"body.{f}", message=m) for f, m in exc.errors],
        ) from None
    # 3. The record and its event, in one transaction.
    valuation_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    c = result.conclusion
    row = dict(
        valuation_id=valuation_id, achievement_id=achievement_id, owner_org_id=subject.owner_org_id,
        requested_by_org_id=identity.org, requested_by_sub=identity.sub, requester_role=role,
        created_at=now.isoformat(), currency=result.currency, low=c.low.amount, mid=c.mid.amount,
        high=c.high.amount, methods=[m.method for m in result.methods], table_version=result.table_version,
        seed=assumptions.simulation.seed, request=assumptions.model_dump(mode="json"),
        subject_snapshot=subject_to_data(subject), transfers_snapshot=[transfer_to_data(t) for t in transfers],
        result=result.model_dump(mode="json"),
    )
    async with runtime.unit_of_work() as uow:
        await Repository(uow.session).add_valuation(row)
        uow.publish(valuation_completed(ValuationCompleted(
            valuation_id=valuation_id, achievement_id=achievement_id, requested_by_org_id=identity.org,
            requester_role=role, low=c.low, mid=c.mid, high=c.high, methods=row["methods"],
            table_version=result.table_version, report_path=report_path(valuation_id), completed_at=now,
        )))
        await uow.commit()
    return row


async def get_valuation(runtime: ServiceRuntime, identity: Identity, valuation_id: str) -> dict[str, Any]:
    async with runtime.unit_of_work() as uow:
        row = await Repository(uow.session).valuation(valuation_id)
    if row is None or not access.may_see(identity, owner_org_id=row["owner_org_id"],
                                         requested_by_org_id=row["requested_by_org_id"],
                                         requester_role=row["requester_role"]):
        # The same answer for "missing" and "not yours": one enterprise learns nothing of another's.
        raise NotFound(f"valuation {valuation_id} not found")
    return row


async def reproduce_valuation(runtime: ServiceRuntime, identity: Identity, valuation_id: str) -> dict[str, Any]:
    """Recompute a stored valuation from its snapshots and recorded assumptions; report differences."""
    from .domain.snapshots import subject_from_data, transfer_from_data

    row = await get_valuation(runtime, identity, valuation_id)
    assumptions = Assumptions.model_validate(row["request"])
    subject = subject_from_data(row["subject_snapshot"], row["subject_snapshot"].get("status", "published"))
    transfers = [transfer_from_data(t) for t in row["transfers_snapshot"]]
    again = await asyncio.to_thread(engine.value, subject, transfers, assumptions, assumptions.valuation_date)
    fresh = again.model_dump(mode="json")
    stored = row["result"]
    differences = [k for k in stored if k != "simulation" and stored[k] != fresh.get(k)]
    if stored["simulation"]["percentiles"] != fresh["simulation"]["percentiles"]:
        differences.append("simulation.percentiles")
    return {"valuation_id": valuation_id, "identical": not differences, "differences": differences,
            "conclusion": again.conclusion.model_dump(mode="json")}


async def list_valuations(runtime: ServiceRuntime, identity: Identity, *, achievement_id: str | None,
                          limit: int, cursor: dict[str, Any] | None) -> tuple[list[dict[str, Any]], str | None]:
    if cursor is not None and not ({"c", "v"} <= set(cursor)):
        raise ValidationFailed("cursor is not one this API issued",
                               errors=[FieldError(field="query.cursor", message="malformed or foreign cursor")])
    after = (str(cursor["c"]), str(cursor["v"])) if cursor else None
    async with runtime.unit_of_work() as uow:
        rows = await Repository(uow.session).list_valuations(
            org=identity.org, everything=identity.has_any(*access.OVERSIGHT_ROLES),
            achievement_id=achievement_id, after=after, limit=limit,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor({"c": rows[-1]["created_at"], "v": rows[-1]["valuation_id"]}) if more and rows else None
    return rows, nxt


async def render_pdf(runtime: ServiceRuntime, identity: Identity, valuation_id: str) -> bytes:
    from .reports import pdf

    row = await get_valuation(runtime, identity, valuation_id)
    return await asyncio.to_thread(pdf.render, row, runtime.settings.pdf_font_path or None)


def money(row: dict[str, Any], key: str) -> Money:
    return Money(amount=row[key], currency=row["currency"])
