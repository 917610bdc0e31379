"""/api/v1/catalog/achievements: listing, drafting, review workflow, search, import, history."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from techbridge_shared.errors import FieldError, Problem, ValidationFailed, problem_responses
from techbridge_shared.identity import Identity, require_identity, require_roles
from techbridge_shared.money import Money
from techbridge_shared.pagination import Page, PageParams, decode_cursor, encode_cursor, page_params
from techbridge_shared.service import ServiceRuntime, runtime_of

from ..domain.model import IpType, Status, TransferMode
from ..domain.rules import AchievementContent, CoOwner, Inventor, IpRecord
from ..domain.search import FACETS, SearchQuery
from ..domain.text import query_tokens
from ..service import achievements as service
from ..service import imports
from ..service.achievements import AchievementView
from ..service.common import Actor
from ..store.reader import Reader
from .common import etag, if_match, reader_for, reader_of
from .organisations import HistoryEntry, history_page

router = APIRouter(prefix="/api/v1/catalog/achievements", tags=["achievements"])


# --- schemas -----------------------------------------------------------------------------------

class AchievementIn(AchievementContent):
    """A new achievement (stored as a draft of the caller's organisation)."""


# Every field optional: what is sent replaces the stored value, the rest stays.
AchievementPatch = create_model(
    "AchievementPatch",
    __config__=ConfigDict(extra="forbid"),
    **{name: (f.annotation | None, Field(default=None, description=f.description))
       for name, f in AchievementContent.model_fields.items()},
)


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=2000, description="Why (required to return or reject)")


class ValuationOut(BaseModel):
    valuation_id: str
    requested_by_org_id: str
    low: Money
    mid: Money
    high: Money
    methods: list[str]
    completed_at: datetime


class AchievementOut(BaseModel):
    achievement_id: str
    owner_org_id: str
    owner_name: str | None
    status: Status
    status_reason: str | None = Field(description="Reviewer's reason for a return or rejection, or what moved it last")
    version: int = Field(description="Also the ETag; send it as If-Match when editing")
    title_zh: str
    title_en: str
    abstract_zh: str
    abstract_en: str
    keywords: list[str]
    fields: list[str]
    ipc_codes: list[str]
    ip_type: IpType
    trl: int
    transfer_modes: list[TransferMode]
    asking_price: Money | None
    negotiable: bool
    region: str
    ip_records: list[IpRecord]
    inventors: list[Inventor]
    co_owners: list[CoOwner]
    confidential_visible: bool = Field(description="Whether the caller may read the confidential details")
    confidential_details: str | None = Field(description="Null unless the caller is the owner or a party to a signed deal")
    valuation: ValuationOut | None = Field(description="Latest valuation range: the caller's own, else the owner's")
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    published_at: datetime | None
    expires_at: datetime | None
    transferred_at: datetime | None


class SearchItem(BaseModel):
    achievement_id: str
    owner_org_id: str
    owner_name: str | None
    status: Status
    title_zh: str
    title_en: str
    abstract_zh: str = Field(description="Public teaser, shortened to 300 characters")
    abstract_en: str = Field(description="Public teaser, shortened to 600 characters")
    keywords: list[str]
    fields: list[str]
    ipc_codes: list[str]
    ip_type: IpType
    trl: int
    transfer_modes: list[TransferMode]
    asking_price: Money | None
    negotiable: bool
    region: str
    published_at: datetime | None
    expires_at: datetime | None
    score: float | None = Field(description="Relevance (higher is better) when sorted by relevance")


class FacetValue(BaseModel):
    value: str | int
    count: int
    label: str | None = None


class SearchPage(BaseModel):
    items: list[SearchItem]
    next_cursor: str | None
    total: int = Field(description="Hits across all pages")
    facets: dict[str, list[FacetValue]] = Field(
        description="Counts per value for ip_type, trl, transfer_mode, ipc_class, institution and status; "
        "each counted with every filter except its own")


class RowReportOut(BaseModel):
    row: int = Field(description="Line (JSON lines) or line of the CSV file, header = 1")
    achievement_id: str | None
    errors: list[FieldError]


class ImportReportOut(BaseModel):
    mode: Literal["atomic", "best_effort"]
    total: int
    imported: int
    rejected: int
    rows: list[RowReportOut]


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def view_out(v: AchievementView) -> AchievementOut:
    a, c = v.achievement, v.achievement.content
    valuation = None
    if v.valuation:
        cur = v.valuation["currency"]
        valuation = ValuationOut(
            valuation_id=v.valuation["valuation_id"], requested_by_org_id=v.valuation["requested_by_org_id"],
            low=Money(amount=v.valuation["low_amount"], currency=cur), mid=Money(amount=v.valuation["mid_amount"], currency=cur),
            high=Money(amount=v.valuation["high_amount"], currency=cur), methods=v.valuation["methods"],
            completed_at=v.valuation["completed_at"],
        )
    body = c.model_dump(exclude={"confidential_details", "ipc_codes"})
    return AchievementOut(
        achievement_id=a.id, owner_org_id=a.owner_org_id, owner_name=v.owner_name, status=a.status,
        status_reason=a.status_reason, version=a.version, **body, ipc_codes=c.all_ipc_codes(),
        confidential_visible=v.confidential_visible,
        confidential_details=c.confidential_details if v.confidential_visible else None,
        valuation=valuation, created_at=a.created_at, updated_at=a.updated_at, submitted_at=a.submitted_at,
        published_at=a.published_at, expires_at=a.expires_at, transferred_at=a.transferred_at,
    )


def _item(row: dict, score: float | None, names: dict[str, str]) -> SearchItem:
    c = row["content"]
    return SearchItem(
        achievement_id=row["id"], owner_org_id=row["owner_org_id"], owner_name=names.get(row["owner_org_id"]),
        status=row["status"], title_zh=c["title_zh"], title_en=c["title_en"],
        abstract_zh=_short(c["abstract_zh"], 300), abstract_en=_short(c["abstract_en"], 600),
        keywords=c["keywords"], fields=c["fields"],
        ipc_codes=list(dict.fromkeys(c["ipc_codes"] + [x for r in c["ip_records"] for x in r.get("ipc_codes", [])])),
        ip_type=c["ip_type"], trl=c["trl"], transfer_modes=c["transfer_modes"], asking_price=c["asking_price"],
        negotiable=c["negotiable"], region=c["region"], published_at=row["published_at"],
        expires_at=row["expires_at"], score=round(score, 6) if score is not None else None,
    )


def facet_cache(request: Request) -> service.FacetCache:
    state = request.app.state
    if getattr(state, "facet_cache", None) is None:
        state.facet_cache = service.FacetCache(state.runtime.settings.facet_cache_s)
    return state.facet_cache


def _with_etag(response: Response, v: int) -> None:
    response.headers["ETag"] = etag(v)


# --- search ------------------------------------------------------------------------------------

_IPC_PREFIX_RE = re.compile(r"^[A-H](\d{1,2}([A-Z](\d{1,4}(/\d{0,6})?)?)?)?$")
SEARCH_PARAMS = {"q", "ipc", "trl_min", "trl_max", "ip_type", "transfer_mode", "institution", "price_min",
                 "price_max", "currency", "region", "status", "sort", "limit", "cursor", "facets"}


@router.get("", summary="Search achievements", responses=problem_responses(422))
async def search_achievements(
    request: Request,
    q: Annotated[str | None, Query(max_length=200, description="Words in Chinese or English; all must match")] = None,
    ipc: Annotated[list[str], Query(description="IPC prefix such as H01M or 'H01M 10/05' (repeat for any of)")] = [],  # noqa: B006
    trl_min: Annotated[int | None, Query(ge=1, le=9)] = None,
    trl_max: Annotated[int | None, Query(ge=1, le=9)] = None,
    ip_type: Annotated[list[IpType], Query(description="Any of these kinds")] = [],  # noqa: B006
    transfer_mode: Annotated[list[TransferMode], Query(description="Offering any of these modes")] = [],  # noqa: B006
    institution: Annotated[list[str], Query(description="Owner organisation ids (any of)")] = [],  # noqa: B006
    price_min: Annotated[int | None, Query(ge=0, description="Asking price at least (minor units)")] = None,
    price_max: Annotated[int | None, Query(ge=0, description="Asking price at most (minor units)")] = None,
    currency: Annotated[str, Query(pattern="^[A-Z]{3}$")] = "CNY",
    region: Annotated[str | None, Query(max_length=100, description="Region prefix, e.g. Shanghai")] = None,
    status: Annotated[list[Status], Query(description="Default: published and under_negotiation; "
                                          "non-public states show only the caller's own (all for reviewers)")] = [],  # noqa: B006
    sort: Annotated[Literal["relevance", "recency"] | None, Query(description="Default: relevance with q, else recency")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(description="Opaque cursor from a previous page")] = None,
    facets: Annotated[bool, Query(description="Compute facet counts")] = True,
    identity: Identity = Depends(require_identity),
    reader: Reader = Depends(reader_of),
) -> SearchPage:
    unknown = sorted(set(request.query_params) - SEARCH_PARAMS)
    if unknown:
        raise ValidationFailed(f"unknown query parameter {unknown[0]}",
                               errors=[FieldError(field=f"query.{u}", message="unknown parameter") for u in unknown])
    errors = []
    prefixes = []
    for i, p in enumerate(ipc):
        key = p.replace(" ", "").upper()
        if not _IPC_PREFIX_RE.match(key):
            errors.append(FieldError(field=f"query.ipc.{i}", message=f"{p!r} is not an IPC prefix such as H01M or H01M10/05"))
        prefixes.append(key)
    if trl_min is not None and trl_max is not None and trl_min > trl_max:
        errors.append(FieldError(field="query.trl_min", message="trl_min is above trl_max"))
    if price_min is not None and price_max is not None and price_min > price_max:
        errors.append(FieldError(field="query.price_min", message="price_min is above price_max"))
    tokens = tuple(query_tokens(q or ""))
    sort = sort or ("relevance" if tokens else "recency")
    position = decode_cursor(cursor)
    if position is not None and position.get("s") != (sort if tokens else "recency"):
        errors.append(FieldError(field="query.cursor", message="cursor belongs to a search with another sort"))
    if errors:
        raise ValidationFailed("; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)
    query = SearchQuery(
        text_tokens=tokens, ipc_prefixes=tuple(prefixes), trl_min=trl_min, trl_max=trl_max, ip_types=tuple(ip_type),
        transfer_modes=tuple(transfer_mode), owner_org_ids=tuple(institution), price_min=price_min,
        price_max=price_max, currency=currency, region=region,
        statuses=tuple(status) or (Status.published, Status.under_negotiation),
        sort=sort, limit=limit, cursor=position, facets=facets,
    )
    async with reader.session() as session:
        result, names = await service.search(session, Actor.of(identity), query, facet_cache(request))
    return SearchPage(
        items=[_item(h.row, h.score, names) for h in result.hits],
        next_cursor=encode_cursor(result.next_cursor) if result.next_cursor else None,
        total=result.total,
        facets={k: [FacetValue(**f) for f in v] for k, v in result.facets.items() if k in FACETS},
    )


# --- one achievement ---------------------------------------------------------------------------

@router.post("", status_code=201, summary="Create an achievement as a draft",
             responses=problem_responses(403, 409, 413, 422))
async def create_achievement(request: Request, body: AchievementIn, response: Response,
                             identity: Identity = Depends(require_roles("institution", "enterprise")),
                             runtime: ServiceRuntime = Depends(runtime_of)) -> AchievementOut:
    actor = Actor.of(identity)
    async with runtime.unit_of_work() as uow:
        a = await service.create(uow, actor, AchievementContent.model_validate(body.model_dump()))
        await uow.commit()
    async with reader_for(request).session() as session:
        v = await service.view(session, actor, a.id)
    _with_etag(response, a.version)
    response.headers["Location"] = f"{router.prefix}/{a.id}"
    return view_out(v)


@router.post("/import", summary="Bulk import achievements from JSON lines or CSV",
             responses=problem_responses(403, 409, 413, 415, 422))
async def import_achievements(
    request: Request,
    mode: Annotated[Literal["atomic", "best_effort"], Query(description="atomic: all rows or none")] = "atomic",
    submit: Annotated[bool, Query(description="Submit the imported achievements for review at once")] = False,
    identity: Identity = Depends(require_roles("institution", "enterprise")),
    runtime: ServiceRuntime = Depends(runtime_of),
    _body: Annotated[str | None, Body(media_type="application/x-ndjson",
                                      description="JSON lines (one achievement per line) or CSV (text/csv)")] = None,
) -> ImportReportOut:
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    raw = (await request.body()).decode("utf-8-sig", errors="replace")
    if ctype in ("application/x-ndjson", "application/jsonl", "application/json-lines", "application/x-jsonlines"):
        parse = imports.parse_jsonl
    elif ctype in ("text/csv", "application/csv"):
        parse = imports.parse_csv
    else:
        raise Problem("send JSON lines (application/x-ndjson) or CSV (text/csv)", status=415,
                      code="unsupported_media_type")
    rows = await asyncio.to_thread(parse, raw)
    if not rows:
        raise ValidationFailed("the file holds no rows", errors=[FieldError(field="body", message="empty")])
    if len(rows) > imports.MAX_ROWS:
        raise ValidationFailed(f"at most {imports.MAX_ROWS} rows per import",
                               errors=[FieldError(field="body", message=f"{len(rows)} rows")])
    actor = Actor.of(identity)
    async with reader_for(request).session() as session:
        org = await imports.owner_of(session, actor)
    prepared = await imports.prepare(org, rows, best_effort=mode == "best_effort", submit=submit)
    report = prepared.report
    if report.rejected and mode == "atomic":
        errors = [FieldError(field=f"rows.{r.row}.{e.field}", message=e.message) for r in report.rows for e in r.errors]
        raise ValidationFailed(
            f"{report.rejected} of {report.total} rows were refused; nothing was imported "
            "(fix them, or import with mode=best_effort)",
            errors=errors,
        )
    # The collector stays paused through the writes, the commit (the outbox rows) and the
    # per-row report, where most of an import's collections ran.
    with imports.collector_paused():
        async with runtime.unit_of_work() as uow:
            report = await imports.store(uow, actor, prepared)
            await uow.commit()
        return ImportReportOut(
            mode=report.mode, total=report.total, imported=report.imported, rejected=report.rejected,
            rows=[RowReportOut(row=r.row, achievement_id=r.achievement_id, errors=r.errors) for r in report.rows])


@router.get("/{achievement_id}", summary="Read an achievement (confidential details only for owner and deal parties)",
            responses=problem_responses(404))
async def get_achievement(achievement_id: str, response: Response, identity: Identity = Depends(require_identity),
                          reader: Reader = Depends(reader_of)) -> AchievementOut:
    async with reader.session() as session:
        v = await service.view(session, Actor.of(identity), achievement_id)
    _with_etag(response, v.achievement.version)
    return view_out(v)


@router.patch("/{achievement_id}", summary="Edit an achievement (If-Match required)",
              responses=problem_responses(403, 404, 409, 412, 413, 422, 428))
async def edit_achievement(achievement_id: str, body: AchievementPatch, response: Response,  # type: ignore[valid-type]
                           expected: int | None = Depends(if_match),
                           identity: Identity = Depends(require_identity),
                           runtime: ServiceRuntime = Depends(runtime_of),
                           reader: Reader = Depends(reader_of)) -> AchievementOut:
    actor = Actor.of(identity)
    patch = body.model_dump(mode="json", exclude_unset=True)
    async with runtime.unit_of_work() as uow:
        await service.edit(uow, actor, achievement_id, patch, expected)
        await uow.commit()
    async with reader.session() as session:
        v = await service.view(session, actor, achievement_id)
    _with_etag(response, v.achievement.version)
    return view_out(v)


@router.get("/{achievement_id}/history", summary="Who changed the achievement, when, and what",
            responses=problem_responses(403, 404, 422))
async def achievement_history(achievement_id: str, params: PageParams = Depends(page_params),
                              identity: Identity = Depends(require_identity),
                              reader: Reader = Depends(reader_of)) -> Page[HistoryEntry]:
    async with reader.session() as session:
        rows = await service.history_page(session, Actor.of(identity), achievement_id, limit=params.limit,
                                          after_seq=(params.cursor or {}).get("s"))
    return history_page(rows, params.limit)


ACTION_DOCS = {
    "submit": "Submit a draft (or a returned achievement) for review",
    "publish": "Publish a submitted achievement (reviewer)",
    "return": "Return a submitted achievement to its owner for correction, with a reason (reviewer)",
    "reject": "Reject a submitted achievement, with a reason (reviewer)",
    "withdraw": "Withdraw an achievement from review or from the market (owner)",
    "reopen": "Reopen a withdrawn achievement as a draft (owner)",
    "renew": "Renew a listing for another listing period; an expired one is published again (owner)",
}


def _action_route(action: str):
    async def route(achievement_id: str, response: Response,
                    body: Annotated[ActionIn | None, Body()] = None,
                    expected: int | None = Depends(if_match),
                    identity: Identity = Depends(require_identity),
                    runtime: ServiceRuntime = Depends(runtime_of),
                    reader: Reader = Depends(reader_of)) -> AchievementOut:
        actor = Actor.of(identity)
        ttl = timedelta(days=runtime.settings.listing_ttl_days)
        async with runtime.unit_of_work() as uow:
            await service.act(uow, actor, achievement_id, action, reason=body.reason if body else None,
                              expected_version=expected, listing_ttl=ttl)
            await uow.commit()
        async with reader.session() as session:
            v = await service.view(session, actor, achievement_id)
        _with_etag(response, v.achievement.version)
        return view_out(v)

    route.__name__ = action
    return route


for _action, _doc in ACTION_DOCS.items():
    router.add_api_route(
        f"/{{achievement_id}}/{_action}", _action_route(_action), methods=["POST"], summary=_doc, name=_action,
        responses=problem_responses(403, 404, 409, 412, 422),
    )


# --- operations ----------------------------------------------------------------------------------

admin_router = APIRouter(prefix="/api/v1/catalog/admin", tags=["admin"])


class ExpiryOut(BaseModel):
    expired: list[str]


@admin_router.post("/expire-due", summary="Expire every listing whose period ended (also runs periodically)",
                   responses=problem_responses(403))
async def expire_due(identity: Identity = Depends(require_roles("admin")),
                     runtime: ServiceRuntime = Depends(runtime_of)) -> ExpiryOut:
    from ..service.common import now
    async with runtime.unit_of_work() as uow:
        ids = await service.expire_due(uow, now())
        await uow.commit()
    return ExpiryOut(expired=ids)

