"""The deal room: an organisation's transfer deals, one deal's offers and counter-offers, signing.

Pages for institutions and enterprises (agencies too: the API lets them be a party). Every action
is one call of matching's transfer API with the person's token; the forms carry their own
Idempotency-Key (fixed when the form was shown), so a form sent twice acts once. Earlier offers
are never edited: a counter-offer is a new version based on the one shown (a stale one is
refused with 409 `stale_offer`, shown as a message), and the history lists every version with
the terms it changed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import Response

from . import figures
from .api import Api, ApiError
from .router import MODES, PREFIX, Page, api_of, back_to, router, signed_in, yuan_to_fen

PARTIES = ("institution", "enterprise", "agency")
PRICING = ["private_agreement", "public_listing", "auction"]
EXCLUSIVE_MODES = {"assignment", "exclusive_licence"}
OFFER_FIELDS = ("mode", "territory", "term_months", "price", "royalty_rate", "royalty_base", "pricing", "note")
# Where the API's field names belong on the offer form.
OFFER_ERROR_FIELDS = {"royalty": "royalty_rate", "rate_bp": "royalty_rate", "minimum_annual": "royalty_rate",
                      "achievement_ids": "_achievements", "buyer_org_id": "_parties", "seller_org_id": "_parties"}


def percent_to_bp(text: str) -> int | None:
    """'3.5' (per cent) -> 350 basis points; '' -> None; ValueError when it is not a percentage."""
    text = (text or "").strip().rstrip("%").strip()
    if not text:
        return None
    try:
        value = Decimal(text) * 100
    except InvalidOperation:
        raise ValueError(text) from None
    if value != value.to_integral_value() or value < 0:
        raise ValueError(text)
    return int(value)


def offer_body(form: Any, errors: dict[str, str]) -> dict[str, Any]:
    """The API's offer from the form; unreadable numbers are marked in `errors`, the rest is left
    to the API to judge (its refusals come back next to the fields)."""
    mode = str(form.get("mode", "")).strip()
    body: dict[str, Any] = {"mode": mode, "territory": str(form.get("territory", "")).strip(),
                            "pricing": str(form.get("pricing", "")) or "private_agreement",
                            "exclusive": form.get("exclusive") == "on",
                            "note": str(form.get("note", "")).strip() or None}
    term = str(form.get("term_months", "")).strip()
    if term and not term.isdigit():
        errors["term_months"] = "1-600"
    body["term_months"] = int(term) if term.isdigit() else None
    try:
        fen = yuan_to_fen(str(form.get("price", "")))
        body["price"] = {"amount": fen, "currency": "CNY"} if fen is not None else None
    except ValueError:
        errors["price"] = "¥ 0.00"
    try:
        bp = percent_to_bp(str(form.get("royalty_rate", "")))
        if bp is not None:
            body["royalty"] = {"rate_bp": bp, "base": str(form.get("royalty_base", "")).strip() or "net sales"}
    except ValueError:
        errors["royalty_rate"] = "0.01-100 %"
    return body


def offer_values(offer: dict | None) -> dict[str, Any]:
    """The form prefilled with an offer's terms (a counter-offer starts from the current one)."""
    if not offer:
        return {"mode": "", "exclusive": False, "territory": "CN", "pricing": "private_agreement"}
    price, royalty = offer.get("price"), offer.get("royalty") or {}
    return {"mode": offer["mode"], "exclusive": offer["exclusive"], "territory": offer["territory"],
            "term_months": offer.get("term_months") or "",
            "price": f"{Decimal(price['amount']) / 100:.2f}" if price else "",
            "royalty_rate": f"{Decimal(royalty['rate_bp']) / 100:g}" if royalty.get("rate_bp") else "",
            "royalty_base": royalty.get("base", ""), "pricing": offer.get("pricing", "private_agreement"),
            "note": ""}


def form_offer_values(form: Any) -> dict[str, Any]:
    values = {k: str(form.get(k, "")) for k in OFFER_FIELDS}
    values["exclusive"] = form.get("exclusive") == "on"
    return values


def offer_errors(exc: ApiError) -> dict[str, str]:
    return {OFFER_ERROR_FIELDS.get(k, k): v for k, v in exc.field_errors().items()}


class Names:
    """Organisation and achievement names for a page, each looked up once through the API."""

    def __init__(self, page: Page, api: Api):
        self.page, self.api = page, api
        self.orgs: dict[str, str] = {}
        self.achievements: dict[str, str] = {}

    async def org(self, org_id: str) -> str:
        if org_id not in self.orgs:
            try:
                o = await self.api.get(f"/api/v1/catalog/organisations/{org_id}")
                zh, en = o.get("name") or "", o.get("name_en") or ""
                self.orgs[org_id] = (zh or en) if self.page.lang == "zh" else (en or zh)
            except ApiError:
                self.orgs[org_id] = org_id[:8]
        return self.orgs[org_id]

    async def achievement(self, achievement_id: str) -> str:
        if achievement_id not in self.achievements:
            try:
                self.achievements[achievement_id] = self.page.title_of(
                    await self.api.get(f"/api/v1/catalog/achievements/{achievement_id}"))
            except ApiError:
                self.achievements[achievement_id] = achievement_id[:8]
        return self.achievements[achievement_id]

    async def deal(self, t: dict) -> dict:
        """The deal with the names a person reads beside the ids."""
        return {**t, "seller_name": await self.org(t["seller_org_id"]), "buyer_name": await self.org(t["buyer_org_id"]),
                "titles": [await self.achievement(a) for a in t["achievement_ids"][:5]]}


def waiting_for(t: dict, org: str | None) -> bool:
    """Whether the deal waits for this organisation: its signature on the current offer, or an
    answer to the other side's latest offer."""
    if t["status"] not in ("proposed", "negotiating"):
        return False
    side = "seller" if org == t["seller_org_id"] else "buyer" if org == t["buyer_org_id"] else None
    return side is not None and not t.get(f"{side}_signed_at")


def notice_over(ends_at: str | None, now: datetime | None = None) -> bool:
    """Whether a public notice ending at `ends_at` (ISO time) has run, so the deal can complete."""
    if not ends_at:
        return True
    return datetime.fromisoformat(ends_at.replace("Z", "+00:00")) <= (now or datetime.now(UTC))


# --- the list -----------------------------------------------------------------------------------

@router.get("/deals")
async def deals(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, *PARTIES)
    status = request.query_params.get("status") or None
    found = await api.get("/api/v1/matching/transfers", status=status, limit=50)
    names = Names(page, api)
    items = [await names.deal(t) for t in found["items"]]
    return page.render("deals.html", items=items, chosen=status, waiting=lambda t: waiting_for(t, page.org),
                       statuses=["proposed", "negotiating", "signed", "in_notice", "completed", "cancelled"])


# --- proposing a deal ---------------------------------------------------------------------------

async def _proposal_context(page: Page, api: Api, achievement_id: str, demand_id: str | None) -> dict[str, Any]:
    """Who sells and who buys: an enterprise buys the achievement from its owner; an institution
    offers its achievement to the enterprise that posted the demand."""
    item = await api.get(f"/api/v1/catalog/achievements/{achievement_id}")
    demand = await api.get(f"/api/v1/matching/demands/{demand_id}") if demand_id else None
    seller = item["owner_org_id"]
    if page.org == seller:
        if not demand:
            raise ApiError(422, {"detail": page.t("propose_needs_demand"), "code": "demand_required"})
        buyer = demand["owner_org_id"]
    else:
        buyer = page.org
    names = Names(page, api)
    return {"item": item, "demand": demand, "seller": seller, "buyer": buyer,
            "seller_name": await names.org(seller), "buyer_name": await names.org(buyer or "")}


def _new_offer_values(item: dict) -> dict[str, Any]:
    modes = item.get("transfer_modes") or []
    mode = modes[0] if modes else "exclusive_licence"
    price = item.get("asking_price")
    return {**offer_values(None), "mode": mode, "exclusive": mode in EXCLUSIVE_MODES, "term_months": 60,
            "price": f"{Decimal(price['amount']) / 100:.2f}" if price else ""}


@router.get("/deals/new")
async def new_deal(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, *PARTIES)
    qp = request.query_params
    ctx = await _proposal_context(page, api, qp.get("achievement", ""), qp.get("demand") or None)
    values = {**_new_offer_values(ctx["item"]), "idempotency_key": str(uuid.uuid4())}
    return page.render("deal_new.html", **ctx, values=values, errors={}, error=None, modes=MODES, pricing=PRICING)


@router.post("/deals/new")
async def propose_deal(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, *PARTIES)
    form = await request.form()
    achievement_id, demand_id = str(form.get("achievement_id", "")), str(form.get("demand_id", "")) or None
    ctx = await _proposal_context(page, api, achievement_id, demand_id)
    errors: dict[str, str] = {}
    offer = offer_body(form, errors)
    values = {**form_offer_values(form), "idempotency_key": str(form.get("idempotency_key", "")) or str(uuid.uuid4())}
    error: ApiError | None = None
    if not errors:
        try:
            t = await api.post("/api/v1/matching/transfers", {
                "seller_org_id": ctx["seller"], "buyer_org_id": ctx["buyer"], "achievement_ids": [achievement_id],
                "demand_id": demand_id, "offer": offer}, headers={"Idempotency-Key": values["idempotency_key"]})
            return back_to(f"{PREFIX}/deals/{t['id']}", "deal_proposed")
        except ApiError as exc:
            if exc.status not in (403, 404, 409, 422):
                raise
            errors, error = offer_errors(exc), exc
            values["idempotency_key"] = str(uuid.uuid4())  # a corrected form is another request
    else:
        error = ApiError(422, {"detail": page.t("fix_fields")})
    return page.render("deal_new.html", status=error.status, **ctx, values=values, errors=errors, error=error,
                       modes=MODES, pricing=PRICING)


# --- one deal -----------------------------------------------------------------------------------

async def _deal_page(page: Page, api: Api, transfer_id: str, *, values=None, errors=None, error=None,
                     status: int = 200) -> Response:
    t = await api.get(f"/api/v1/matching/transfers/{transfer_id}")
    names = Names(page, api)
    deal = await names.deal(t)
    side = "seller" if page.org == t["seller_org_id"] else "buyer" if page.org == t["buyer_org_id"] else None
    offers = sorted(t["offers"], key=lambda o: -o["version"])
    for o in offers:
        o["made_by_name"] = await names.org(o["made_by_org_id"])
    open_deal = t["status"] in ("proposed", "negotiating")
    return page.render(
        "deal.html", status=status, deal=deal, side=side, offers=offers, changes=figures.offer_changes(t["offers"]),
        can_offer=open_deal and side is not None,
        can_sign=open_deal and side is not None and not t.get(f"{side}_signed_at"),
        can_complete=side is not None and (t["status"] == "signed" or (
            t["status"] == "in_notice" and notice_over(t.get("notice_ends_at")))),
        can_cancel=t["status"] not in ("completed", "cancelled") and side is not None,
        values=values or offer_values(t["current_offer"]), errors=errors or {}, error=error, modes=MODES,
        pricing=PRICING, key=str(uuid.uuid4()))


@router.get("/deals/{transfer_id}")
async def deal(transfer_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, *PARTIES)
    return await _deal_page(page, api, transfer_id)


@router.post("/deals/{transfer_id}/offers")
async def counter_offer(transfer_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, *PARTIES)
    form = await request.form()
    errors: dict[str, str] = {}
    offer = offer_body(form, errors)
    values = form_offer_values(form)
    if errors:
        return await _deal_page(page, api, transfer_id, values=values, errors=errors, status=422,
                                error=ApiError(422, {"detail": page.t("fix_fields")}))
    based_on = str(form.get("based_on_version", ""))
    try:
        await api.post(f"/api/v1/matching/transfers/{transfer_id}/offers",
                       {"based_on_version": int(based_on) if based_on.isdigit() else 0, "offer": offer},
                       headers={"Idempotency-Key": str(form.get("idempotency_key", "")) or str(uuid.uuid4())})
    except ApiError as exc:
        if exc.status not in (403, 409, 422):
            raise
        return await _deal_page(page, api, transfer_id, values=values, errors=offer_errors(exc), error=exc,
                                status=exc.status)
    return back_to(f"{PREFIX}/deals/{transfer_id}", "counter_offered")


async def _deal_action(request: Request, api: Api, transfer_id: str, action: str, body: Any, done: str) -> Response:
    page = signed_in(request, *PARTIES)
    form = await request.form()
    if callable(body):
        body = body(form)
    try:
        await api.post(f"/api/v1/matching/transfers/{transfer_id}/{action}", body,
                       headers={"Idempotency-Key": str(form.get("idempotency_key", "")) or str(uuid.uuid4())})
    except ApiError as exc:
        if exc.status not in (403, 409, 422):
            raise
        return await _deal_page(page, api, transfer_id, error=exc, status=exc.status)
    return back_to(f"{PREFIX}/deals/{transfer_id}", done)


@router.post("/deals/{transfer_id}/sign")
async def sign_deal(transfer_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    def body(form) -> dict:
        version = str(form.get("offer_version", ""))
        return {"offer_version": int(version) if version.isdigit() else 0}
    return await _deal_action(request, api, transfer_id, "sign", body, "signed_ok")


@router.post("/deals/{transfer_id}/complete")
async def complete_deal(transfer_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    return await _deal_action(request, api, transfer_id, "complete", None, "completed_ok")


@router.post("/deals/{transfer_id}/cancel")
async def cancel_deal(transfer_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    return await _deal_action(request, api, transfer_id, "cancel",
                              lambda form: {"reason": str(form.get("reason", "")).strip()}, "cancelled_ok")
