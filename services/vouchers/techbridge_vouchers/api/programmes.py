from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, Field

from techbridge_shared.identity import Identity, require_identity, require_roles
from techbridge_shared.money import Money
from techbridge_shared.pagination import Page, PageParams, page_params
from techbridge_shared.service import ServiceRuntime, runtime_of

from ..domain import model as m
from ..domain.errors import invalid
from ..service_layer import ledger as ledger_cases
from ..service_layer import programmes as cases
from ..store.transact import read
from .common import (
    MONEY_ERRORS, PREFIX, READ_ERRORS, Schema, after_key, command, money_command, money_of, page_of,
    required_idempotency_key,
)

router = APIRouter(prefix=PREFIX + "/programmes", tags=["programmes"])
officials = require_roles("government")


class EligibilityIn(Schema):
    org_kinds: list[str] = Field(default=["enterprise"], description="Organisation kinds that may apply")
    max_headcount: int | None = Field(default=None, ge=0, description="SME rule: at most this many employees")
    max_annual_revenue: Money | None = Field(default=None, description="SME rule: at most this annual revenue")
    regions: list[str] = Field(default=[], description='Regions admitted; "Shanghai" admits "Shanghai/Pudong"')
    min_registration_age_days: int | None = Field(default=None, ge=0, description="Registered at least this long")


class ProgrammeIn(Schema):
    name: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=10_000)
    budget: Money = Field(description="Initial budget; its currency is the programme's currency")
    face_values: list[Money] = Field(min_length=1, max_length=20, description="Voucher face values offered")
    max_invoice_share_bp: int = Field(ge=1, le=10_000, description="Largest share of an invoice a voucher pays, "
                                      "in basis points (5000 = 50 %)")
    annual_quota: Money = Field(description="Face value one enterprise may receive per calendar year")
    categories: list[str] = Field(min_length=1, description="Eligible service categories")
    eligibility: EligibilityIn = Field(default_factory=EligibilityIn)
    applications_open_at: AwareDatetime
    applications_close_at: AwareDatetime
    validity_days: int = Field(ge=1, le=3660, description="A voucher is valid this many days from issue")
    unspent_policy: Literal["return_to_budget", "lapse"] = Field(
        description="At expiry, unspent value returns to the programme budget or lapses")
    reminder_days: int = Field(default=30, ge=0, description="Send the expiring-soon event this many days before")
    review_levels: Literal[1, 2] = Field(default=1, description="1, or 2 for district then city review")
    reviewer_org_ids: list[str] = Field(default=[], max_length=100, description=(
        "Two-level review only: government organisations (e.g. district offices) that may make the first "
        "review; the final review is the owner's"))
    owner_org_id: str | None = Field(default=None, max_length=64, description=(
        "Admins only: the government organisation that will own the programme. Otherwise the caller's "
        "organisation owns it"))

    def terms(self) -> m.ProgrammeTerms:
        cur = self.budget.currency
        for name, value in (("annual_quota", self.annual_quota), ("eligibility.max_annual_revenue",
                                                                  self.eligibility.max_annual_revenue),
                            *((f"face_values.{i}", v) for i, v in enumerate(self.face_values))):
            if value is not None and value.currency != cur:
                raise invalid(f"body.{name}.currency", f"all amounts are in the budget's currency {cur}")
        e = self.eligibility
        return m.ProgrammeTerms(
            name=self.name, description=self.description, currency=cur,
            face_values=tuple(sorted({v.amount for v in self.face_values})), max_share_bp=self.max_invoice_share_bp,
            annual_quota=self.annual_quota.amount, categories=tuple(sorted(set(self.categories))),
            eligibility=m.EligibilityRules(
                org_kinds=tuple(e.org_kinds), max_headcount=e.max_headcount,
                max_annual_revenue=e.max_annual_revenue.amount if e.max_annual_revenue else None,
                regions=tuple(e.regions), min_registration_age_days=e.min_registration_age_days),
            applications_open_at=self.applications_open_at, applications_close_at=self.applications_close_at,
            validity_days=self.validity_days, unspent_policy=m.UnspentPolicy(self.unspent_policy),
            reminder_days=self.reminder_days, review_levels=self.review_levels,
        )


class ProgrammeOut(Schema):
    id: str
    name: str
    description: str
    state: str
    currency: str
    budget: Money = Field(description="Total budget so far (initial + top-ups)")
    unissued: Money = Field(description="Budget not yet issued as vouchers")
    face_values: list[Money]
    max_invoice_share_bp: int
    annual_quota: Money
    categories: list[str]
    eligibility: EligibilityIn
    applications_open_at: datetime
    applications_close_at: datetime
    validity_days: int
    unspent_policy: str
    reminder_days: int
    review_levels: int
    owner_org_id: str | None = Field(description="The government organisation that governs the programme: only it "
                                     "(and admins) may change it or its vouchers and redemptions. None: opened before "
                                     "owners were recorded; every official governs it")
    reviewer_org_ids: list[str] = Field(description="Organisations that may make the first review of a two-level "
                                        "review")
    created_by: str
    created_at: datetime
    closed_at: datetime | None


def present(v: cases.ProgrammeView) -> ProgrammeOut:
    p, t = v.programme, v.programme.terms
    c = t.currency
    e = t.eligibility
    return ProgrammeOut(
        id=p.id, name=t.name, description=t.description, state=p.state, currency=c,
        budget=money_of(v.budget, c), unissued=money_of(v.unissued, c),
        face_values=[money_of(x, c) for x in t.face_values], max_invoice_share_bp=t.max_share_bp,
        annual_quota=money_of(t.annual_quota, c), categories=list(t.categories),
        eligibility=EligibilityIn(org_kinds=list(e.org_kinds), max_headcount=e.max_headcount,
                                  max_annual_revenue=money_of(e.max_annual_revenue, c)
                                  if e.max_annual_revenue is not None else None,
                                  regions=list(e.regions), min_registration_age_days=e.min_registration_age_days),
        applications_open_at=t.applications_open_at, applications_close_at=t.applications_close_at,
        validity_days=t.validity_days, unspent_policy=t.unspent_policy, reminder_days=t.reminder_days,
        review_levels=t.review_levels, owner_org_id=p.owner_org_id, reviewer_org_ids=list(p.reviewer_org_ids),
        created_by=p.created_by, created_at=p.created_at, closed_at=p.closed_at,
    )


class TopUpIn(Schema):
    amount: Money
    memo: str = Field(default="", max_length=2000, description="e.g. the appropriation reference")


class FiguresOut(Schema):
    programme_id: str
    budget: Money
    unissued: Money
    issued: Money = Field(description="available + reserved + settled + expired + revoked")
    available: Money
    reserved: Money
    settled: Money = Field(description="payable + paid")
    payable: Money
    paid: Money
    expired: Money
    revoked: Money
    remaining: Money = Field(description="unissued: what can still be issued")
    ledger_ok: bool = Field(description="The programme's journal replays to its stored balances and chain heads")
    problems: list[str]


class StatementLine(Schema):
    seq: int
    entry_id: str
    kind: str
    created_at: datetime
    created_by: str
    memo: str
    voucher_id: str | None
    redemption_id: str | None
    reverses: str | None
    hash: str
    currency: str
    postings: list[dict]


class StatementOut(Schema):
    balances: dict[str, int] = Field(description="Current balance per account, minor units")
    items: list[StatementLine]
    next_cursor: str | None


def statement_page(balances: dict[str, int], lines: list[dict], limit: int) -> StatementOut:
    from techbridge_shared.pagination import encode_cursor
    more = len(lines) > limit
    lines = lines[:limit]
    return StatementOut(balances=balances, items=[StatementLine(**x) for x in lines],
                        next_cursor=encode_cursor({"seq": lines[-1]["seq"]}) if more and lines else None)


@router.post("", status_code=201, summary="Open a programme with its budget and rules", responses=MONEY_ERRORS)
async def open_programme(request: Request, body: ProgrammeIn, identity: Identity = Depends(officials),
                         key: str = Depends(required_idempotency_key),
                         runtime: ServiceRuntime = Depends(runtime_of)) -> ProgrammeOut:
    terms = body.terms()
    return await money_command(request, runtime, identity, key, body,
                               lambda repo, uow, actor: cases.open_programme(
                                   repo, uow, actor, terms, body.budget.amount, owner_org_id=body.owner_org_id,
                                   reviewer_org_ids=tuple(body.reviewer_org_ids)),
                               present, status=201)


@router.get("", summary="List programmes", responses=READ_ERRORS)
async def list_programmes(params: PageParams = Depends(page_params), identity: Identity = Depends(require_identity),
                          runtime: ServiceRuntime = Depends(runtime_of)) -> Page[ProgrammeOut]:
    async def work(repo):
        ps = await repo.list_programmes(limit=params.limit, after=after_key(params.cursor))
        return [await cases.view(repo, p.id) for p in ps]
    views = await read(runtime, work)
    return page_of(views, params.limit, lambda v: v.programme.created_at, present, id_of=lambda v: v.programme.id)


@router.get("/{programme_id}", summary="One programme", responses=READ_ERRORS)
async def get_programme(programme_id: str, identity: Identity = Depends(require_identity),
                        runtime: ServiceRuntime = Depends(runtime_of)) -> ProgrammeOut:
    return present(await read(runtime, lambda repo: cases.view(repo, programme_id)))


@router.post("/{programme_id}/top-ups", summary="Add budget to a programme", responses=MONEY_ERRORS)
async def top_up(request: Request, programme_id: str, body: TopUpIn, identity: Identity = Depends(officials),
                 key: str = Depends(required_idempotency_key),
                 runtime: ServiceRuntime = Depends(runtime_of)) -> ProgrammeOut:
    return await money_command(request, runtime, identity, key, body, lambda repo, uow, actor: cases.top_up(
        repo, uow, actor, programme_id, body.amount.amount, body.amount.currency, body.memo), present)


@router.post("/{programme_id}/close", summary="Close a programme: no more applications or issuance",
             responses=MONEY_ERRORS)
async def close_programme(programme_id: str, identity: Identity = Depends(officials),
                          runtime: ServiceRuntime = Depends(runtime_of)) -> ProgrammeOut:
    return await command(runtime, identity, lambda repo, uow, actor: cases.close(repo, uow, actor, programme_id),
                         present)


@router.get("/{programme_id}/dashboard", summary="Budget, issued, reserved, settled, expired, remaining",
            responses=READ_ERRORS)
async def dashboard(programme_id: str, identity: Identity = Depends(officials),
                    runtime: ServiceRuntime = Depends(runtime_of)) -> FiguresOut:
    d = await read(runtime, lambda repo: cases.dashboard(repo, programme_id))
    p, f = d["programme"], d["figures"]
    c = p.currency

    def mo(x: int) -> Money:
        return money_of(x, c)
    return FiguresOut(programme_id=p.id, budget=mo(f.budget), unissued=mo(f.unissued), issued=mo(f.issued),
                      available=mo(f.available), reserved=mo(f.reserved), settled=mo(f.settled),
                      payable=mo(f.payable), paid=mo(f.paid), expired=mo(f.expired), revoked=mo(f.revoked),
                      remaining=mo(f.unissued), ledger_ok=d["ok"], problems=d["problems"])


@router.get("/{programme_id}/statement", summary="The programme's journal, entry by entry", responses=READ_ERRORS)
async def programme_statement(programme_id: str, params: PageParams = Depends(page_params),
                              identity: Identity = Depends(officials),
                              runtime: ServiceRuntime = Depends(runtime_of)) -> StatementOut:
    async def work(repo):
        await cases.get(repo, programme_id)
        ids = [a.id for a in await repo.stored_accounts(programme_id=programme_id)
               if a.owner_id == programme_id]
        return await ledger_cases.statement(repo, account_ids=ids, programme_id=programme_id, limit=params.limit,
                                            after_seq=(params.cursor or {}).get("seq"))
    balances, lines = await read(runtime, work)
    return statement_page(balances, lines, params.limit)


@router.get("/{programme_id}/journal.csv", summary="CSV export of the programme's journal, one row per posting",
            responses=READ_ERRORS, response_class=StreamingResponse)
async def journal_csv(programme_id: str, identity: Identity = Depends(officials),
                      runtime: ServiceRuntime = Depends(runtime_of)):
    async def work(repo):
        await cases.get(repo, programme_id)
        return [chunk async for chunk in ledger_cases.journal_csv(repo, programme_id)]
    chunks = await read(runtime, work)
    return StreamingResponse(iter(chunks), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="programme-{programme_id}-journal.csv"'})


