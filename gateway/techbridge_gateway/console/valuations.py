"""Valuation pages: request a valuation of an achievement, then read its report.

The form asks what a transfer officer knows (a revenue forecast, a royalty range, costs spent);
everything left empty comes from the valuation service's defaults table, which the report names
as the source. The report page draws the Monte Carlo histogram with the P10 / P50 / P90 markers
and the value of each method as inline SVG; the PDF is the service's own, relayed with the
person's token (the cookie never leaves /console).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import Response
from markupsafe import Markup

from . import charts, i18n
from .api import Api, ApiError
from .router import PREFIX, Page, api_of, back_to, router, signed_in, yuan_to_fen

ROLES = ("institution", "enterprise", "agency", "government")
METHODS = ["income", "rnpv", "cost", "market"]
PATHS = ["2000", "10000", "50000"]
FORM = ("first_year_revenue", "growth_rate", "life_years", "royalty_low", "royalty_mode", "royalty_high",
        "discount_rate", "margin", "development_cost", "paths")
# The API's field path (after `body.`) -> the form field its message belongs next to; the longest
# matching prefix wins.
ERROR_FIELDS = {
    "income": "first_year_revenue", "income.revenues": "first_year_revenue",
    "income.first_year_revenue": "first_year_revenue", "income.growth_rate": "growth_rate",
    "income.life_years": "life_years", "income.royalty_rate": "royalty_mode", "income.discount_rate": "discount_rate",
    "rnpv": "margin", "cost": "development_cost", "methods": "methods", "market": "methods",
    "simulation": "paths", "real_option": "methods", "weights": "methods",
}


def percent(text: str) -> float | None:
    """'12.5' (per cent) -> 0.125; '' -> None; ValueError otherwise."""
    text = (text or "").strip().rstrip("%").strip()
    if not text:
        return None
    try:
        return float(Decimal(text) / 100)
    except InvalidOperation:
        raise ValueError(text) from None


def valuation_body(achievement_id: str, form: Any, errors: dict[str, str]) -> dict[str, Any]:
    """The valuation request from the form. Numbers that do not read are marked in `errors`."""
    methods = [m for m in form.getlist("methods") if m in METHODS]
    body: dict[str, Any] = {"achievement_id": achievement_id, "methods": methods or None}

    def read(name: str, conv):
        try:
            return conv(str(form.get(name, "")))
        except ValueError:
            errors[name] = "?"
            return None

    revenue = read("first_year_revenue", yuan_to_fen)
    growth = read("growth_rate", percent)
    life = read("life_years", lambda s: int(s) if s.strip() else None)
    low, mode, high = (read(k, percent) for k in ("royalty_low", "royalty_mode", "royalty_high"))
    discount = read("discount_rate", percent)
    margin = read("margin", percent)
    cost = read("development_cost", yuan_to_fen)
    if "income" in methods or "rnpv" in methods:
        income: dict[str, Any] = {"first_year_revenue": revenue, "growth_rate": growth or 0.0}
        if life is not None:
            income["life_years"] = life
        if low is not None and mode is not None and high is not None:
            income["royalty_rate"] = {"dist": "triangular", "low": low, "mode": mode, "high": high}
        elif mode is not None:
            income["royalty_rate"] = mode
        if discount is not None:
            income["discount_rate"] = discount
        body["income"] = income
    if "rnpv" in methods:
        body["rnpv"] = {"margin": margin}
    if "cost" in methods:
        body["cost"] = {"basis": "replacement", "items": [{"label": "research and development", "amount": cost}]}
    paths = str(form.get("paths", "10000"))
    body["simulation"] = {"paths": int(paths) if paths.isdigit() else 10000}
    return body


def valuation_errors(exc: ApiError) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in exc.problem.get("errors") or []:
        path = [p for p in str(e.get("field", "")).split(".") if p]
        if path and path[0] == "body":
            path = path[1:]
        name = "_"
        for n in range(len(path), 0, -1):
            if ".".join(path[:n]) in ERROR_FIELDS:
                name = ERROR_FIELDS[".".join(path[:n])]
                break
        out.setdefault(name, str(e.get("message", "")))
    return out


def input_label(lang: str, item: dict) -> str:
    """The valuation service's label of an input, in Chinese when the console knows its name; what
    the service adds in brackets (the industry, the TRL) is kept."""
    name, label = str(item.get("name", "")), str(item.get("label", ""))
    if lang != "zh":
        return label
    if name.startswith("cost.items[") and ":" in label:
        return "成本：" + label.split(":", 1)[1].strip()
    known = i18n.label("zh", "input", name)
    if known == name:
        return label
    extra = label[label.index("("):] if "(" in label else ""
    return f"{known} {extra}".strip()


async def _valuations_page(page: Page, api: Api, achievement_id: str, *, values=None, errors=None, error=None,
                           status: int = 200) -> Response:
    item = await api.get(f"/api/v1/catalog/achievements/{achievement_id}")
    found = await api.get("/api/v1/valuation/valuations", achievement_id=achievement_id, limit=20)
    values = values or {"methods": ["income", "cost"], "first_year_revenue": "", "growth_rate": "10",
                        "life_years": "", "paths": "10000"}
    return page.render("valuations.html", status=status, item=item, items=found["items"], values=values,
                       errors=errors or {}, error=error, methods=METHODS, paths=PATHS)


@router.get("/valuations")
async def valuations(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, *ROLES)
    return await _valuations_page(page, api, request.query_params.get("achievement", ""))


@router.post("/valuations")
async def request_valuation(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, *ROLES)
    form = await request.form()
    achievement_id = str(form.get("achievement_id", ""))
    values: dict[str, Any] = {k: str(form.get(k, "")) for k in FORM}
    values["methods"] = [str(m) for m in form.getlist("methods")]
    errors: dict[str, str] = {}
    body = valuation_body(achievement_id, form, errors)
    if errors:
        return await _valuations_page(page, api, achievement_id, values=values, errors=errors, status=422,
                                      error=ApiError(422, {"detail": page.t("fix_fields")}))
    try:
        done = await api.post("/api/v1/valuation/valuations", body)
    except ApiError as exc:
        if exc.status not in (403, 404, 409, 422):
            raise
        return await _valuations_page(page, api, achievement_id, values=values, errors=valuation_errors(exc),
                                      error=exc, status=exc.status)
    return back_to(f"{PREFIX}/valuations/{done['valuation_id']}", "valuation_done")


@router.get("/valuations/{valuation_id}")
async def valuation_report(valuation_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, *ROLES)
    v = await api.get(f"/api/v1/valuation/valuations/{valuation_id}")
    result = v["result"]
    sim = result["simulation"]
    pct = sim["percentiles"]
    yuan = lambda fen: f"¥{fen / 100:,.0f}"  # noqa: E731
    hist = charts.histogram(page.t("distribution"), sim["histogram"]["edges"], sim["histogram"]["counts"],
                            [("P10", pct["p10"]), ("P50", pct["p50"]), ("P90", pct["p90"])], fmt=yuan,
                            empty=page.t("no_data"))
    rows = [(page.label("method", m["method"]), [max(0, m["value"]) / 100]) for m in result["methods"]]
    bars = charts.bar_chart(page.t("method_values"), rows, [page.t("value")], fmt=lambda y: f"¥{y:,.0f}",
                            empty=page.t("no_data"), width=480)
    return page.render("valuation.html", v=v, result=result, histogram_svg=Markup(hist), methods_svg=Markup(bars),
                       input_label=lambda item: input_label(page.lang, item))


@router.get("/valuations/{valuation_id}/report.pdf")
async def valuation_pdf(valuation_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    signed_in(request, *ROLES)
    r = await api.request("GET", f"/api/v1/valuation/valuations/{valuation_id}/report.pdf",
                          headers={"Accept": "application/pdf"})
    return Response(r.content, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="valuation-{valuation_id}.pdf"', "Cache-Control": "no-store"})
