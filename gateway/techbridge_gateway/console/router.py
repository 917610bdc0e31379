"""The web console under /console: pages for institutions, enterprises, agencies and government.

Why server-rendered pages that call the API server-side: every page is one Jinja2 template fed
by the same public API a partner uses, called in-process through the gateway's own routing with
the signed-in person's token (see `api.py`), so
- there is one language to maintain (Python + templates), no front-end build, and the pages work
  without JavaScript; the only script is the dashboard's live feed;
- refusals are handled in one place: a problem+json becomes a message at the top of the page and
  its `errors[].field` entries become messages next to the form fields they name;
- the token lives in an HttpOnly, SameSite=Strict cookie scoped to /console, out of reach of any
  script on the page, and each API call is authorised by the gateway and the services exactly as
  a direct call would be: the console adds no privilege and no back door;
- tests drive the pages with a real browser and need nothing but the running platform.
The roles read from the token only choose which pages to offer; the API decides what is allowed.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from . import charts, i18n
from . import figures as figures_of
from .api import Api, ApiError, stream

HERE = Path(__file__).resolve().parent
log = logging.getLogger(__name__)
TOKEN_COOKIE = "tb_console"
LANG_COOKIE = "tb_lang"
PREFIX = "/console"
STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
ROLE_HOME = {"institution": "/console/institution", "enterprise": "/console/enterprise",
             "agency": "/console/agency", "government": "/console/government", "admin": "/console/government"}
ACHIEVEMENT_STATES = ["draft", "submitted", "returned", "rejected", "published", "under_negotiation",
                      "transferred", "withdrawn", "expired"]
IP_TYPES = list(i18n.LABELS["ip_type"])
MODES = list(i18n.LABELS["transfer_mode"])
DECLINE_REASONS = ["not_relevant", "trl_too_low", "price", "ip_status", "timing", "already_solved", "region", "other"]
FEED_TYPES = ["proposed", "offer-made", "signed", "completed", "cancelled"]

env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                  trim_blocks=True, lstrip_blocks=True)


# --- the person and their page ------------------------------------------------------------------

def claims_of(token: str | None) -> dict[str, Any]:
    """The token's claims, for choosing pages only (the gateway verifies the token on every call)."""
    if not token or token.count(".") != 2:
        return {}
    try:
        part = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, UnicodeDecodeError):
        return {}


def home_for(roles: list[str]) -> str | None:
    for role in ("institution", "enterprise", "agency", "government", "admin"):
        if role in roles:
            return ROLE_HOME[role]
    return None


def money(m: dict | None, lang: str = "zh") -> str:
    if not m:
        return "—"
    amount = Decimal(int(m.get("amount", 0))) / 100
    symbol = "¥" if m.get("currency", "CNY") == "CNY" else m.get("currency", "") + " "
    return f"{'-' if amount < 0 else ''}{symbol}{abs(amount):,.2f}"


def yuan_to_fen(text: str) -> int | None:
    """'12,345.6' -> 1234560; '' -> None; ValueError when it is not an amount in yuan."""
    text = (text or "").strip().replace(",", "").replace("，", "")
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(text) from None
    if value < 0 or value != value.quantize(Decimal("0.01")):
        raise ValueError(text)
    return int(value * 100)


def split_list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").replace("，", ",").replace("、", ",").split(",") if p.strip()]


class Page:
    """What every template gets: language, words, the person, helpers."""

    def __init__(self, request: Request):
        self.request = request
        self.lang = i18n.pick_lang(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE),
                                   request.headers.get("accept-language"))
        self.token = request.cookies.get(TOKEN_COOKIE)
        self.claims = claims_of(self.token)
        self.roles: list[str] = list(self.claims.get("roles") or [])
        self.org: str | None = self.claims.get("org")

    def t(self, key: str) -> str:
        return i18n.t(self.lang, key)

    def label(self, kind: str, value: Any) -> str:
        return i18n.label(self.lang, kind, value)

    def money(self, m: dict | None) -> str:
        return money(m, self.lang)

    def title_of(self, item: dict) -> str:
        zh, en = item.get("title_zh") or "", item.get("title_en") or ""
        return (zh or en) if self.lang == "zh" else (en or zh)

    def abstract_of(self, item: dict) -> str:
        zh, en = item.get("abstract_zh") or "", item.get("abstract_en") or ""
        return (zh or en) if self.lang == "zh" else (en or zh)

    def _done(self) -> str | None:
        """The confirmation named in ?done=, only if it is one of ours (no text injected by a link)."""
        done = self.request.query_params.get("done")
        return done if done in i18n.TEXT else None

    def render(self, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        html = env.get_template(template).render(
            p=self, t=self.t, label=self.label, money=self.money, path=self.request.url.path,
            here=str(self.request.url.path) + (("?" + self.request.url.query) if self.request.url.query else ""),
            home=home_for(self.roles), done=self._done(), **ctx)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def sign_in_redirect(expired: bool) -> RedirectResponse:
    r = RedirectResponse(PREFIX + "/login" + ("?expired=1" if expired else ""), status_code=303)
    r.delete_cookie(TOKEN_COOKIE, path=PREFIX)
    return r


class ConsoleRoute(APIRoute):
    """Turns an API refusal into a page that says what happened, never a blank or a stack trace."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                if exc.status == 401:
                    return sign_in_redirect(expired=exc.code != "not_signed_in")
                return Page(request).render("error.html", status=exc.status, error=exc)
            except (HTTPException, RequestValidationError):
                raise
            except Exception:  # an answer the page did not expect: say so, keep the details in the log
                log.exception("console page %s failed", request.url.path)
                return Page(request).render("error.html", status=500, error=ApiError(500, {
                    "detail": "unexpected answer; the details are in the gateway's log", "code": "console_error"}))
        return route


router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ConsoleRoute)


async def api_of(request: Request) -> AsyncIterator[Api]:
    api = Api(request.app, request.cookies.get(TOKEN_COOKIE))
    try:
        yield api
    finally:
        await api.aclose()


def signed_in(request: Request, *roles: str) -> Page:
    page = Page(request)
    if not page.token:
        raise ApiError(401, {"detail": "not signed in", "code": "not_signed_in"})
    if roles and not set(roles + ("admin",)) & set(page.roles):
        raise ApiError(403, {"detail": page.t("not_allowed")})
    return page


def back_to(path: str, done: str | None = None) -> RedirectResponse:
    return RedirectResponse(path + (f"?done={done}" if done else ""), status_code=303)


# --- frame: static files, language, sign-in ---------------------------------------------------

@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        return Response(status_code=404)
    return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                    headers={"Cache-Control": "public, max-age=300"})


@router.get("/lang/{lang}")
async def switch_language(lang: str, next: str = PREFIX) -> Response:
    target = next if next.startswith(PREFIX) and not next.startswith("//") else PREFIX
    r = RedirectResponse(target, status_code=303)
    if lang in i18n.LANGS:
        r.set_cookie(LANG_COOKIE, lang, path=PREFIX, max_age=365 * 86400, samesite="lax")
    return r


@router.get("")
@router.get("/")
async def index(request: Request) -> Response:
    page = Page(request)
    if not page.token:
        return RedirectResponse(PREFIX + "/login", status_code=303)
    home = home_for(page.roles)
    if home is None:
        return page.render("error.html", status=403, error=ApiError(403, {"detail": page.t("no_role_page")}))
    return RedirectResponse(home, status_code=303)


@router.get("/login")
async def login_form(request: Request) -> Response:
    page = Page(request)
    return page.render("login.html", expired=request.query_params.get("expired") == "1", error=None, email="")


@router.post("/login")
async def login(request: Request, api: Api = Depends(api_of)) -> Response:
    page = Page(request)
    form = await request.form()
    email, password = str(form.get("email", "")).strip(), str(form.get("password", ""))
    try:
        token = await api.sign_in(email, password)
    except ApiError as exc:
        return page.render("login.html", status=exc.status, expired=False, error=exc, email=email)
    roles = claims_of(token["access_token"]).get("roles") or []
    r = RedirectResponse(home_for(roles) or PREFIX, status_code=303)
    r.set_cookie(TOKEN_COOKIE, token["access_token"], path=PREFIX, max_age=int(token.get("expires_in", 900)),
                 httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return r


@router.post("/logout")
async def logout() -> Response:
    r = RedirectResponse(PREFIX + "/login", status_code=303)
    r.delete_cookie(TOKEN_COOKIE, path=PREFIX)
    return r


# --- institution ----------------------------------------------------------------------------------

ACHIEVEMENT_FORM = ["title_zh", "title_en", "abstract_zh", "abstract_en", "keywords", "fields", "ipc_codes",
                    "ip_type", "trl", "asking_price", "region", "ip_records"]


def achievement_body(form, errors: dict[str, str], records: list[dict] | None = None) -> dict[str, Any]:
    """The API body from the form. The form edits the first IP record's number; further records
    (imported or added through the API) are kept as they are."""
    body: dict[str, Any] = {k: str(form.get(k, "")).strip() for k in ("title_zh", "title_en", "abstract_zh",
                                                                     "abstract_en", "region")}
    for k in ("keywords", "fields", "ipc_codes"):
        body[k] = split_list(form.get(k))
    body["ip_type"] = str(form.get("ip_type", "")) or None
    trl = str(form.get("trl", "")).strip()
    body["trl"] = int(trl) if trl.isdigit() else trl or None
    body["transfer_modes"] = [str(m) for m in form.getlist("transfer_modes")]
    body["negotiable"] = form.get("negotiable") == "on"
    try:
        fen = yuan_to_fen(str(form.get("asking_price", "")))
        body["asking_price"] = {"amount": fen, "currency": "CNY"} if fen is not None else None
    except ValueError:
        errors["asking_price"] = "¥ 0.00"
    number = str(form.get("ip_records", "")).strip()
    records = list(records or [])
    if number and (not records or records[0].get("number") != number):
        first = {"number": number, "kind": body["ip_type"], "legal_status": "pending"}
        records = [first, *records[1:]]
    elif not number and records:
        records = records[1:]
    body["ip_records"] = records
    return body


def form_values(form) -> dict[str, Any]:
    values: dict[str, Any] = {k: str(form.get(k, "")) for k in ACHIEVEMENT_FORM}
    values["transfer_modes"] = [str(m) for m in form.getlist("transfer_modes")]
    values["negotiable"] = form.get("negotiable") == "on"
    return values


def achievement_values(a: dict) -> dict[str, Any]:
    price = a.get("asking_price")
    return {
        **{k: a.get(k) or "" for k in ("title_zh", "title_en", "abstract_zh", "abstract_en", "ip_type", "region")},
        "keywords": ", ".join(a.get("keywords") or []), "fields": ", ".join(a.get("fields") or []),
        "ipc_codes": ", ".join(a.get("ipc_codes") or []), "trl": a.get("trl", ""),
        "asking_price": f"{Decimal(price['amount']) / 100:.2f}" if price else "",
        "transfer_modes": a.get("transfer_modes") or [], "negotiable": a.get("negotiable", False),
        "ip_records": (a.get("ip_records") or [{}])[0].get("number", ""),
    }


@router.get("/institution")
async def institution(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "institution")
    found = await api.get("/api/v1/catalog/achievements", institution=page.org, status=ACHIEVEMENT_STATES,
                          facets="false", sort="recency", limit=100)
    return page.render("institution.html", items=found["items"])


@router.get("/institution/new")
async def new_achievement(request: Request) -> Response:
    page = signed_in(request, "institution")
    return page.render("achievement_form.html", item=None, values={"trl": 5, "transfer_modes": []}, errors={},
                       error=None)


@router.post("/institution/new")
async def create_achievement(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "institution")
    form = await request.form()
    errors: dict[str, str] = {}
    body = achievement_body(form, errors)
    if not errors:
        try:
            created = await api.post("/api/v1/catalog/achievements", body)
            return back_to(f"{PREFIX}/institution/a/{created['achievement_id']}", "saved")
        except ApiError as exc:
            if exc.status != 422:
                raise
            errors, error = exc.field_errors(), exc
    else:
        error = ApiError(422, {"detail": page.t("fix_fields")})
    return page.render("achievement_form.html", status=422, item=None, values=form_values(form), errors=errors,
                       error=error)


async def _achievement_page(page: Page, api: Api, achievement_id: str, *, values=None, errors=None,
                            error=None, status: int = 200) -> Response:
    item = await api.get(f"/api/v1/catalog/achievements/{achievement_id}")
    matches, matches_error = [], None
    if item["status"] in ("published", "under_negotiation"):
        try:
            matches = (await api.get(f"/api/v1/matching/achievements/{achievement_id}/matches", limit=10))["items"]
        except ApiError as exc:
            matches_error = exc
    return page.render("achievement_form.html", status=status, item=item, values=values or achievement_values(item),
                       errors=errors or {}, error=error, matches=matches, matches_error=matches_error)


@router.get("/institution/a/{achievement_id}")
async def achievement(achievement_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "institution")
    return await _achievement_page(page, api, achievement_id)


@router.post("/institution/a/{achievement_id}")
async def edit_achievement(achievement_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "institution")
    form = await request.form()
    errors: dict[str, str] = {}
    current = await api.get(f"/api/v1/catalog/achievements/{achievement_id}")
    body = achievement_body(form, errors, current.get("ip_records"))
    if not errors:
        try:
            await api.patch(f"/api/v1/catalog/achievements/{achievement_id}", body,
                            headers={"If-Match": f'"{form.get("version", "")}"'})
            return back_to(f"{PREFIX}/institution/a/{achievement_id}", "saved")
        except ApiError as exc:
            if exc.status not in (409, 412, 422):
                raise
            errors, error = exc.field_errors(), exc
    else:
        error = ApiError(422, {"detail": page.t("fix_fields")})
    return await _achievement_page(page, api, achievement_id, values=form_values(form), errors=errors,
                                   error=error, status=422)


@router.post("/institution/a/{achievement_id}/submit")
async def submit_achievement(achievement_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "institution")
    form = await request.form()
    try:
        await api.post(f"/api/v1/catalog/achievements/{achievement_id}/submit", None,
                       headers={"If-Match": f'"{form.get("version", "")}"'})
    except ApiError as exc:
        if exc.status not in (409, 412, 422):
            raise
        return await _achievement_page(page, api, achievement_id, error=exc, status=exc.status)
    return back_to(f"{PREFIX}/institution/a/{achievement_id}", "submitted_ok")


# --- enterprise -----------------------------------------------------------------------------------

async def _enterprise_page(page: Page, api: Api, *, values=None, errors=None, error=None,
                           status: int = 200) -> Response:
    demands = (await api.get("/api/v1/matching/demands", mine="true", limit=50))["items"]
    wallet, wallet_error = [], None
    try:
        wallet = (await api.get("/api/v1/vouchers/vouchers", limit=50))["items"]
    except ApiError as exc:
        wallet_error = exc
    applications, programmes = [], []
    try:
        applications = (await api.get("/api/v1/vouchers/applications", limit=20))["items"]
        programmes = [p for p in (await api.get("/api/v1/vouchers/programmes", limit=50))["items"]
                      if p["state"] == "open"]
    except ApiError as exc:
        wallet_error = wallet_error or exc
    names = {p["id"]: p["name"] for p in programmes}
    values = values or {"transfer_modes": []}
    values.setdefault("idempotency_key", str(uuid.uuid4()))
    return page.render("enterprise.html", status=status, demands=demands, wallet=wallet, wallet_error=wallet_error,
                       applications=applications, programmes=programmes, programme_names=names,
                       values=values, errors=errors or {}, error=error)


@router.get("/enterprise")
async def enterprise(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "enterprise")
    return await _enterprise_page(page, api)


@router.post("/enterprise/demands")
async def post_demand(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "enterprise")
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in ("title", "problem", "keywords", "ipc_codes", "budget_max",
                                                 "deadline", "min_trl", "region")}
    values["transfer_modes"] = [str(m) for m in form.getlist("transfer_modes")]
    values["idempotency_key"] = str(form.get("idempotency_key", "")) or str(uuid.uuid4())
    errors: dict[str, str] = {}
    body: dict[str, Any] = {"title": values["title"].strip(), "problem": values["problem"].strip(),
                            "keywords": split_list(values["keywords"]), "ipc_codes": split_list(values["ipc_codes"]),
                            "transfer_modes": values["transfer_modes"],
                            "deadline": values["deadline"] or None, "region": values["region"].strip() or None,
                            "min_trl": int(values["min_trl"]) if values["min_trl"].isdigit() else None}
    try:
        fen = yuan_to_fen(values["budget_max"])
        body["budget_max"] = {"amount": fen, "currency": "CNY"} if fen is not None else None
    except ValueError:
        errors["budget_max"] = "¥ 0.00"
    if errors:
        return await _enterprise_page(page, api, values=values, errors=errors, status=422,
                                      error=ApiError(422, {"detail": page.t("fix_fields")}))
    try:
        # The key was fixed when the form was shown: sending the form twice makes one demand.
        demand = await api.post("/api/v1/matching/demands", body,
                                headers={"Idempotency-Key": values["idempotency_key"]})
        if demand["status"] == "draft":
            await api.post(f"/api/v1/matching/demands/{demand['id']}/publish", None)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        values.pop("idempotency_key")
        return await _enterprise_page(page, api, values=values, errors=exc.field_errors(), error=exc,
                                      status=exc.status)
    return back_to(f"{PREFIX}/enterprise/demands/{demand['id']}", "demand_posted")


async def _demand_page(page: Page, api: Api, demand_id: str, *, error=None, status: int = 200) -> Response:
    item = await api.get(f"/api/v1/matching/demands/{demand_id}")
    matches, matches_error, declined = [], None, {}
    try:
        matches = (await api.get(f"/api/v1/matching/demands/{demand_id}/matches", limit=10))["items"]
        declined = {d["achievement_id"]: d for d in await api.get(f"/api/v1/matching/demands/{demand_id}/declines")}
    except ApiError as exc:
        matches_error = exc
    for aid, d in list(declined.items())[:20]:  # declined ones leave the ranking; name them from the catalogue
        try:
            d["title"] = page.title_of(await api.get(f"/api/v1/catalog/achievements/{aid}"))
        except ApiError:
            d["title"] = aid[:8]
    return page.render("demand.html", status=status, item=item, matches=matches, matches_error=matches_error,
                       declined=declined, reasons=DECLINE_REASONS, error=error)


@router.get("/enterprise/demands/{demand_id}")
async def demand(demand_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "enterprise")
    return await _demand_page(page, api, demand_id)


@router.post("/enterprise/demands/{demand_id}/declines")
async def decline_match(demand_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "enterprise")
    form = await request.form()
    body = {"achievement_id": str(form.get("achievement_id", "")), "reason": str(form.get("reason", "")),
            "note": str(form.get("note", "")).strip() or None}
    try:
        await api.post(f"/api/v1/matching/demands/{demand_id}/declines", body)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _demand_page(page, api, demand_id, error=exc, status=exc.status)
    return back_to(f"{PREFIX}/enterprise/demands/{demand_id}", "declined_ok")


SEARCH_KEYS = ("q", "trl_min", "price_max", "region")
SEARCH_LISTS = ("ip_type", "transfer_mode", "institution", "ipc")


@router.get("/enterprise/catalogue")
async def catalogue(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "enterprise", "institution", "agency", "government")
    qp = request.query_params
    chosen: dict[str, Any] = {k: qp.get(k, "") for k in SEARCH_KEYS}
    chosen.update({k: qp.getlist(k) for k in SEARCH_LISTS})
    params: dict[str, Any] = {k: v for k, v in chosen.items() if k != "price_max"}
    errors: dict[str, str] = {}
    try:
        fen = yuan_to_fen(chosen["price_max"])
        params["price_max"] = fen
    except ValueError:
        errors["price_max"] = "¥ 0.00"
    params["cursor"] = qp.get("cursor")
    result, error = {"items": [], "facets": {}, "total": 0, "next_cursor": None}, None
    if not errors:
        try:
            result = await api.get("/api/v1/catalog/achievements", limit=20, **params)
        except ApiError as exc:
            if exc.status != 422:
                raise
            error, errors = exc, exc.field_errors()

    def toggle(key: str, value: str) -> str:
        pairs = [(k, v) for k in SEARCH_KEYS if (v := chosen[k])]
        for k in SEARCH_LISTS:
            values = list(chosen[k])
            if k == key:
                values = [v for v in values if v != value] if value in values else values + [value]
            pairs += [(k, v) for v in values]
        return "?" + urlencode(pairs)

    next_link = None
    if result.get("next_cursor"):
        pairs = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        next_link = "?" + urlencode(pairs + [("cursor", result["next_cursor"])])
    return page.render("catalogue.html", result=result, chosen=chosen, toggle=toggle, errors=errors, error=error,
                       next_link=next_link, ip_types=IP_TYPES, modes=MODES)


# --- agency ---------------------------------------------------------------------------------------

REDEMPTION_FORM = ("voucher_id", "enterprise_org_id", "amount", "invoice_amount", "invoice_ref", "category",
                   "transfer_id")


async def _agency_page(page: Page, api: Api, *, values=None, errors=None, error=None, status: int = 200) -> Response:
    from .programmes import enrolments

    items = (await api.get("/api/v1/vouchers/redemptions", limit=100))["items"]
    values = values or {}
    values.setdefault("idempotency_key", str(uuid.uuid4()))
    owed = paid = None
    try:  # what the programmes owe the agency for settled services, and what they have paid
        balances = (await api.get(f"/api/v1/vouchers/agencies/{page.org}/statement", limit=1)).get("balances") or {}
        owed = sum(v for k, v in balances.items() if k.endswith(":payable"))
        paid = sum(v for k, v in balances.items() if k.endswith(":paid"))
    except ApiError:
        pass
    return page.render("agency.html", status=status, items=items, values=values, errors=errors or {}, error=error,
                       enrolments=await enrolments(page, api), owed=owed, paid=paid)


@router.get("/agency")
async def agency(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "agency")
    return await _agency_page(page, api)


@router.post("/agency/redemptions")
async def request_redemption(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "agency")
    form = await request.form()
    values = {k: str(form.get(k, "")).strip() for k in (*REDEMPTION_FORM, "idempotency_key")}
    errors: dict[str, str] = {}
    body: dict[str, Any] = {k: values[k] for k in ("voucher_id", "enterprise_org_id", "invoice_ref", "category")}
    if values["transfer_id"]:  # a service for a deal: the deal's completion settles it
        body["transfer_id"] = values["transfer_id"]
    for k in ("amount", "invoice_amount"):
        try:
            fen = yuan_to_fen(values[k])
            if fen is None:
                errors[k] = "¥ 0.00"
            body[k] = {"amount": fen, "currency": "CNY"}
        except ValueError:
            errors[k] = "¥ 0.00"
    if errors:
        return await _agency_page(page, api, values=values, errors=errors, status=422,
                                  error=ApiError(422, {"detail": page.t("fix_fields")}))
    try:
        # The key was fixed when the form was shown: sending the form twice reserves once.
        await api.post("/api/v1/vouchers/redemptions", body, headers={"Idempotency-Key": values["idempotency_key"]})
    except ApiError as exc:
        if exc.status not in (400, 404, 409, 422):
            raise
        values.pop("idempotency_key")
        return await _agency_page(page, api, values=values, errors=exc.field_errors(), error=exc, status=exc.status)
    return back_to(f"{PREFIX}/agency", "redemption_requested")


# --- government -----------------------------------------------------------------------------------

@router.get("/government")
async def government(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "government")
    programmes = (await api.get("/api/v1/vouchers/programmes", limit=50))["items"]
    figures, rows = [], []
    for prog in programmes:
        try:
            f = await api.get(f"/api/v1/vouchers/programmes/{prog['id']}/dashboard")
        except ApiError:
            continue
        figures.append((prog, f))
        rows.append((prog["name"], [f["budget"]["amount"] / 100, f["issued"]["amount"] / 100,
                                    f["settled"]["amount"] / 100]))
    yuan = lambda v: f"¥{v:,.0f}"  # noqa: E731
    budget_svg = charts.bar_chart(page.t("budget_chart"), rows,
                                  [page.t("budget"), page.t("issued"), page.t("settled")], fmt=yuan,
                                  empty=page.t("no_data"), width=480)
    over_time = []
    now = time.time()
    for prog, _ in figures[:3]:  # the programmes' journals replayed: budget, issued, settled after each entry
        _, lines = await api.get_all(f"/api/v1/vouchers/programmes/{prog['id']}/statement")
        points = [(ts, [v / 100 for v in values]) for ts, values in figures_of.programme_timeline(lines, prog["id"])]
        over_time.append((prog, Markup(charts.timeline_chart(
            f"{page.t('budget_over_time')} · {prog['name']}", points,
            [page.t("budget"), page.t("issued"), page.t("settled")], fmt=yuan, empty=page.t("no_data"),
            until=now))))
    _, transfers = await api.get_all("/api/v1/matching/transfers", pages=10)
    live = [x for x in transfers if x["status"] != "cancelled"]
    from .deals import Names

    names = Names(page, api)
    top = [(await names.org(org), n, value) for org, n, value in figures_of.top_institutions(transfers)]
    modes = charts.count_by(page.label("transfer_mode", x["current_offer"]["mode"]) for x in live)
    months = charts.by_month(x.get("signed_at") or x.get("created_at") for x in live)
    fields: list[str] = []
    seen: dict[str, list[str]] = {}
    for x in live[:40]:
        for aid in x["achievement_ids"][:3]:
            if aid not in seen:
                try:
                    seen[aid] = (await api.get(f"/api/v1/catalog/achievements/{aid}"))["fields"]
                except ApiError:
                    seen[aid] = []
            fields += seen[aid]
    count_fmt = lambda v: f"{v:g}"  # noqa: E731
    return page.render(
        "government.html", figures=figures, budget_svg=Markup(budget_svg), transfers=transfers[:20],
        mode_svg=Markup(charts.bar_chart(page.t("transfers_by_mode"), modes, [page.t("transfers")], count_fmt,
                                         page.t("no_data"))),
        month_svg=Markup(charts.bar_chart(page.t("transfers_by_month"), months, [page.t("transfers")], count_fmt,
                                          page.t("no_data"))),
        field_svg=Markup(charts.bar_chart(page.t("transfers_by_field"), charts.count_by(fields),
                                          [page.t("transfers")], count_fmt, page.t("no_data"))),
        top_svg=Markup(charts.bar_chart(page.t("top_institutions"), [(name, [float(n)]) for name, n, _ in top],
                                        [page.t("deals_count")], count_fmt, page.t("no_data"))),
        top=top, over_time=over_time,
        feed_types=FEED_TYPES, modes={m: page.label("transfer_mode", m) for m in MODES})


@router.get("/government/feed")
async def government_feed(request: Request) -> Response:
    """The gateway's event stream of transfer events, relayed with the person's token."""
    page = signed_in(request, "government")
    headers = {"authorization": f"Bearer {page.token}", "accept": "text/event-stream"}
    if request.headers.get("last-event-id"):
        headers["last-event-id"] = request.headers["last-event-id"]
    chunks = stream(request.app, "/api/v1/events/stream", urlencode({"types": "techbridge.matching.transfer.*"}),
                    headers)
    first = await anext(chunks)  # a refusal raises here, before the response starts

    async def relay() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    return StreamingResponse(relay(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# The pages kept in their own modules register on the same router.
from . import deals, programmes, valuations  # noqa: E402,F401
