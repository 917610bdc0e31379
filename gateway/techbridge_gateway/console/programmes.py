"""Voucher pages beyond the lists: an enterprise's voucher statement and its applications, an
agency's enrolment in programmes, and the programme office's review of voucher and agency
applications. All through the vouchers API with the person's token; the money-moving review
carries the Idempotency-Key fixed when the page was shown.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import Response

from .api import Api, ApiError
from .deals import Names
from .router import PREFIX, Page, api_of, back_to, router, signed_in

def voucher_lines(voucher_id: str, lines: list[dict]) -> list[dict]:
    """Statement entries with their effect on the voucher: change of available and reserved value
    and the available value after the entry (replayed from the first entry, newest first)."""
    available_id, reserved_id = f"voucher:{voucher_id}:available", f"voucher:{voucher_id}:reserved"
    available = reserved = 0
    out = []
    for line in sorted(lines, key=lambda e: e["seq"]):
        da = sum(int(p["amount"]) for p in line["postings"] if p["account_id"] == available_id)
        dr = sum(int(p["amount"]) for p in line["postings"] if p["account_id"] == reserved_id)
        available, reserved = available + da, reserved + dr
        out.append({**line, "d_available": da, "d_reserved": dr, "available_after": available,
                    "reserved_after": reserved})
    return out[::-1]


# --- enterprise: a voucher's statement, applying for a voucher ------------------------------------

@router.get("/enterprise/vouchers/{voucher_id}")
async def voucher_statement(voucher_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "enterprise", "government")
    return await _voucher_page(page, api, voucher_id)


async def _voucher_page(page: Page, api: Api, voucher_id: str, *, error: ApiError | None = None,
                        status: int = 200) -> Response:
    voucher = await api.get(f"/api/v1/vouchers/vouchers/{voucher_id}")
    first, lines = await api.get_all(f"/api/v1/vouchers/vouchers/{voucher_id}/statement")
    programme = None
    try:
        programme = await api.get(f"/api/v1/vouchers/programmes/{voucher['programme_id']}")
    except ApiError:
        pass
    redemptions = (await api.get("/api/v1/vouchers/redemptions", voucher_id=voucher_id, limit=100))["items"]
    return page.render("voucher.html", status=status, voucher=voucher, programme=programme,
                       lines=voucher_lines(voucher_id, lines), currency=voucher["face_value"]["currency"],
                       redemptions=redemptions, error=error, key=str(uuid.uuid4()))


async def _redemption_action(request: Request, api: Api, redemption_id: str, action: str) -> Response:
    """Settle (the enterprise confirms the service was delivered) or void (either side releases the
    reservation); the answer goes back to the page the form was on."""
    page = signed_in(request, "enterprise", "agency")
    form = await request.form()
    voucher_id = str(form.get("voucher_id", ""))
    body = {"reason": str(form.get("reason", "")).strip()} if action == "void" else None
    try:
        await api.post(f"/api/v1/vouchers/redemptions/{redemption_id}/{action}", body,
                       headers={"Idempotency-Key": str(form.get("idempotency_key", "")) or str(uuid.uuid4())})
    except ApiError as exc:
        if exc.status not in (400, 403, 404, 409, 422):
            raise
        if "enterprise" in page.roles and voucher_id:
            return await _voucher_page(page, api, voucher_id, error=exc, status=exc.status)
        from .router import _agency_page
        return await _agency_page(page, api, error=exc, status=exc.status)
    done = "settled_ok" if action == "settle" else "voided_ok"
    if "enterprise" in page.roles and voucher_id:
        return back_to(f"{PREFIX}/enterprise/vouchers/{voucher_id}", done)
    return back_to(f"{PREFIX}/agency", done)


@router.post("/redemptions/{redemption_id}/settle")
async def settle_redemption(redemption_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    return await _redemption_action(request, api, redemption_id, "settle")


@router.post("/redemptions/{redemption_id}/void")
async def void_redemption(redemption_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    return await _redemption_action(request, api, redemption_id, "void")


@router.post("/enterprise/applications")
async def apply_for_voucher(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "enterprise")
    form = await request.form()
    programme_id, face = str(form.get("programme_id", "")), str(form.get("face_value", ""))
    body = {"face_value": {"amount": int(face) if face.isdigit() else 0, "currency": "CNY"},
            "purpose": str(form.get("purpose", "")).strip()}
    try:
        await api.post(f"/api/v1/vouchers/programmes/{programme_id}/applications", body)
    except ApiError as exc:
        if exc.status not in (403, 404, 409, 422):
            raise
        from .router import _enterprise_page
        return await _enterprise_page(page, api, error=exc, status=exc.status)
    return back_to(f"{PREFIX}/enterprise", "applied_ok")


# --- agency: enrolment in programmes --------------------------------------------------------------

async def enrolments(page: Page, api: Api) -> list[tuple[dict, dict | None]]:
    """Each open programme with this agency's enrolment in it (None: not applied)."""
    programmes = (await api.get("/api/v1/vouchers/programmes", limit=50))["items"]
    out = []
    for prog in programmes:
        mine = None
        try:
            mine = await api.get(f"/api/v1/vouchers/programmes/{prog['id']}/agencies/{page.org}")
        except ApiError as exc:
            if exc.status != 404:
                raise
        if prog["state"] == "open" or mine:
            out.append((prog, mine))
    return out


@router.post("/agency/enrolments")
async def enrol(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "agency")
    form = await request.form()
    programme_id = str(form.get("programme_id", ""))
    try:
        await api.post(f"/api/v1/vouchers/programmes/{programme_id}/agencies",
                       {"categories": [str(c) for c in form.getlist("categories")]})
    except ApiError as exc:
        if exc.status not in (403, 404, 409, 422):
            raise
        from .router import _agency_page
        return await _agency_page(page, api, error=exc, status=exc.status)
    return back_to(f"{PREFIX}/agency", "enrolled_ok")


# --- government: reviews --------------------------------------------------------------------------

@router.get("/government/reviews")
async def reviews(request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "government")
    return await _reviews_page(page, api)


async def _reviews_page(page: Page, api: Api, *, error: ApiError | None = None, status: int = 200) -> Response:
    names = Names(page, api)
    programmes = {p["id"]: p for p in (await api.get("/api/v1/vouchers/programmes", limit=50))["items"]}
    applications = []
    for state in ("submitted", "partly_approved"):
        _, found = await api.get_all("/api/v1/vouchers/applications", state=state)
        applications += found
    applications.sort(key=lambda a: a["submitted_at"])
    for a in applications:
        a["applicant"] = await names.org(a["enterprise_org_id"])
        a["programme_name"] = programmes.get(a["programme_id"], {}).get("name", a["programme_id"][:8])
    agencies = []
    for pid, prog in programmes.items():
        for e in (await api.get(f"/api/v1/vouchers/programmes/{pid}/agencies"))["items"]:
            if e["state"] == "applied":
                agencies.append({**e, "name": await names.org(e["agency_org_id"]), "programme_name": prog["name"]})
    return page.render("reviews.html", status=status, applications=applications, agencies=agencies, error=error,
                       key=str(uuid.uuid4()))


@router.post("/government/applications/{application_id}/reviews")
async def review_application(application_id: str, request: Request, api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "government")
    form = await request.form()
    body = {"decision": str(form.get("decision", "")), "reason": str(form.get("reason", "")).strip()}
    try:
        await api.post(f"/api/v1/vouchers/applications/{application_id}/reviews", body,
                       headers={"Idempotency-Key": str(form.get("idempotency_key", "")) or str(uuid.uuid4())})
    except ApiError as exc:
        if exc.status not in (400, 403, 404, 409, 422):
            raise
        return await _reviews_page(page, api, error=exc, status=exc.status)
    return back_to(f"{PREFIX}/government/reviews", "decided_ok")


@router.post("/government/programmes/{programme_id}/agencies/{agency_org_id}/{decision}")
async def review_agency(programme_id: str, agency_org_id: str, decision: str, request: Request,
                        api: Api = Depends(api_of)) -> Response:
    page = signed_in(request, "government")
    form = await request.form()
    if decision not in ("approve", "reject"):
        raise ApiError(404, {"detail": decision})
    try:
        await api.post(f"/api/v1/vouchers/programmes/{programme_id}/agencies/{agency_org_id}/{decision}",
                       {"reason": str(form.get("reason", "")).strip()})
    except ApiError as exc:
        if exc.status not in (403, 404, 409, 422):
            raise
        return await _reviews_page(page, api, error=exc, status=exc.status)
    return back_to(f"{PREFIX}/government/reviews", "decided_ok")
