from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, Field

from techbridge_shared.errors import Forbidden
from techbridge_shared.identity import Identity, require_roles
from techbridge_shared.service import ServiceRuntime, runtime_of

from ..service_layer import expiry
from ..service_layer import ledger as cases
from ..store.transact import read
from .common import PREFIX, READ_ERRORS, Schema

router = APIRouter(prefix=PREFIX, tags=["ledger"])
officials = require_roles("government")
# Clock skew tolerated before an `as_of` counts as the future.
SWEEP_CLOCK_TOLERANCE = timedelta(minutes=1)


class ProgrammeTotals(Schema):
    programme_id: str
    currency: str
    budget: int
    unissued: int
    issued: int
    available: int
    reserved: int
    settled: int
    paid: int
    expired: int
    revoked: int


class CheckOut(Schema):
    ok: bool = Field(description="Every invariant holds and no entry was altered, added or removed")
    entries_checked: int
    accounts_checked: int
    problems: list[str]
    programmes: list[ProgrammeTotals] = Field(description="Figures recomputed from the journal, minor units")


class SweepIn(Schema):
    as_of: AwareDatetime | None = Field(
        default=None, description="Defaults to now; a time in the future (a test clock) is for administrators only")


class SweepOut(Schema):
    expired: int
    reminded: int


@router.get("/ledger/check", responses=READ_ERRORS,
            summary="Recompute every balance from the journal and verify conservation and the hash chains")
async def check(programme_id: str | None = None, identity: Identity = Depends(officials),
                runtime: ServiceRuntime = Depends(runtime_of)) -> CheckOut:
    r = await read(runtime, lambda repo: cases.check(repo, programme_id))
    return CheckOut(ok=r.ok, entries_checked=r.entries_checked, accounts_checked=r.accounts_checked,
                    problems=r.problems[:200], programmes=[ProgrammeTotals(
                        programme_id=f.programme_id, currency=f.currency, budget=f.budget, unissued=f.unissued,
                        issued=f.issued, available=f.available, reserved=f.reserved, settled=f.settled, paid=f.paid,
                        expired=f.expired, revoked=f.revoked) for f in r.programmes])


@router.post("/maintenance/expiry-sweep", responses=READ_ERRORS,
             summary="Expire vouchers past validity and send due reminders now (also runs periodically)")
async def sweep(body: SweepIn | None = None, identity: Identity = Depends(officials),
                runtime: ServiceRuntime = Depends(runtime_of)) -> SweepOut:
    if body and body.as_of and body.as_of > datetime.now(UTC) + SWEEP_CLOCK_TOLERANCE and not identity.has_any("admin"):
        # Sweeping as of a future time expires every programme's vouchers early: no official's call.
        raise Forbidden("only an administrator may sweep as of a future time; officials sweep as of now",
                        code="future_sweep_admin_only")
    result = await expiry.sweep(runtime, as_of=body.as_of if body else None)
    return SweepOut(**result)
