"""Valuations: request one, read it (JSON or HTML report), list them, reproduce one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from techbridge_shared.errors import problem_responses
from techbridge_shared.identity import Identity, require_identity
from techbridge_shared.money import Money
from techbridge_shared.pagination import Page, PageParams, page_params
from techbridge_shared.service import ServiceRuntime, runtime_of

from .. import service
from ..domain.assumptions import Assumptions
from ..domain.result import Conclusion, ValuationResult
from ..reports import html

router = APIRouter(prefix="/api/v1/valuation/valuations", tags=["valuations"])

# Identifiers are printable ASCII (the catalog's are UUIDs): refused here rather than sent to
# the database, which cannot store some characters (NUL) and would fail with a 500.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"


class ValuationRequest(Assumptions):
    """An achievement and the requester's assumptions; anything not given comes from the defaults table."""

    achievement_id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN,
                                description="The achievement to value")


class Links(BaseModel):
    self: str
    report_html: str
    report_json: str
    report_pdf: str


class ValuationSummary(BaseModel):
    valuation_id: str
    achievement_id: str
    requested_by_org_id: str | None
    requester_role: str = Field(description="owner | buyer | agency | government | admin")
    created_at: str
    low: Money
    mid: Money
    high: Money
    methods: list[str]
    table_version: str
    links: Links


class Valuation(ValuationSummary):
    request: dict[str, Any] = Field(description="The exact request recorded, with the seed and valuation date")
    result: ValuationResult


class Reproduction(BaseModel):
    valuation_id: str
    identical: bool = Field(description="The recomputed result equals the stored one, to the fen")
    differences: list[str] = Field(description="Top-level parts of the result that differ")
    conclusion: Conclusion


def _links(vid: str) -> Links:
    base = f"{router.prefix}/{vid}"
    return Links(self=base, report_html=base + "/report.html", report_json=base + "/report.json",
                 report_pdf=base + "/report.pdf")


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return dict(
        valuation_id=row["valuation_id"], achievement_id=row["achievement_id"],
        requested_by_org_id=row["requested_by_org_id"], requester_role=row["requester_role"],
        created_at=row["created_at"], low=service.money(row, "low"), mid=service.money(row, "mid"),
        high=service.money(row, "high"), methods=row["methods"], table_version=row["table_version"],
        links=_links(row["valuation_id"]),
    )


def _full(row: dict[str, Any]) -> Valuation:
    return Valuation(**_summary(row), request=row["request"], result=ValuationResult.model_validate(row["result"]))


Runtime = Annotated[ServiceRuntime, Depends(runtime_of)]
Caller = Annotated[Identity, Depends(require_identity)]


@router.post("", status_code=201, summary="Value an achievement", response_model=Valuation,
             responses=problem_responses(401, 403, 404, 422))
async def request(body: ValuationRequest, runtime: Runtime, identity: Caller) -> Valuation:
    """Runs the chosen methods (default: every method whose section is given, plus market), a seeded
    Monte Carlo and a sensitivity analysis, and returns the documented result. The owner organisation,
    a buyer in a signed deal, an agency or government may ask."""
    assumptions = Assumptions.model_validate(body.model_dump(exclude={"achievement_id"}, exclude_unset=True))
    row = await service.request_valuation(runtime, identity, body.achievement_id, assumptions)
    return _full(row)


@router.get("", name="list", summary="List valuations visible to the caller", response_model=Page[ValuationSummary],
            responses=problem_responses(401, 422))
async def list_valuations(runtime: Runtime, identity: Caller, params: Annotated[PageParams, Depends(page_params)],
                achievement_id: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN,
                                                                    description="Only this achievement")] = None,
                ) -> Page[ValuationSummary]:
    rows, nxt = await service.list_valuations(runtime, identity, achievement_id=achievement_id,
                                              limit=params.limit, cursor=params.cursor)
    return Page[ValuationSummary](items=[ValuationSummary(**_summary(r)) for r in rows], next_cursor=nxt)


@router.get("/{valuation_id}", summary="One valuation with its full result", response_model=Valuation,
            responses=problem_responses(401, 404))
async def get(valuation_id: str, runtime: Runtime, identity: Caller) -> Valuation:
    return _full(await service.get_valuation(runtime, identity, valuation_id))


@router.get("/{valuation_id}/report.json", summary="The report as a JSON download", response_model=Valuation,
            responses=problem_responses(401, 404))
async def report_json(valuation_id: str, runtime: Runtime, identity: Caller) -> JSONResponse:
    v = _full(await service.get_valuation(runtime, identity, valuation_id))
    return JSONResponse(v.model_dump(mode="json"), headers={
        "Content-Disposition": f'attachment; filename="valuation-{valuation_id}.json"'})


@router.get("/{valuation_id}/report.html", summary="The report a person reads (HTML, inline SVG charts)",
            response_class=HTMLResponse, responses=problem_responses(401, 404))
async def report_html(valuation_id: str, runtime: Runtime, identity: Caller) -> HTMLResponse:
    return HTMLResponse(html.render(await service.get_valuation(runtime, identity, valuation_id)))


@router.get("/{valuation_id}/report.pdf", summary="The report as PDF (same content and charts as the HTML)",
            response_class=Response, responses={200: {"content": {"application/pdf": {}}}, **problem_responses(401, 404)})
async def report_pdf(valuation_id: str, runtime: Runtime, identity: Caller) -> Response:
    body = await service.render_pdf(runtime, identity, valuation_id)
    return Response(body, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="valuation-{valuation_id}.pdf"'})


@router.post("/{valuation_id}/reproduce", summary="Recompute a stored valuation from its recorded inputs",
             response_model=Reproduction, responses=problem_responses(401, 404))
async def reproduce(valuation_id: str, runtime: Runtime, identity: Caller) -> Reproduction:
    return Reproduction(**await service.reproduce_valuation(runtime, identity, valuation_id))
