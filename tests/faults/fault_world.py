"""Small worlds the fault and hostile-input tests build through the gateway."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from e2e_platform import wait_for

V, C, M, VAL = "/api/v1/vouchers", "/api/v1/catalog", "/api/v1/matching", "/api/v1/valuation"


def achievement_body(title: str, **over) -> dict:
    body = {
        "title_zh": f"{title} 成果", "title_en": title,
        "abstract_zh": "用于测试。", "abstract_en": f"{title}, a listing made by a test.",
        "keywords": ["separator"], "fields": ["energy"], "ipc_codes": ["H01M 50/449"], "ip_type": "know_how",
        "trl": 4, "transfer_modes": ["exclusive_licence", "non_exclusive_licence"], "negotiable": True,
        "region": "Shanghai", "ip_records": [], "inventors": [], "co_owners": []}
    body.update(over)
    return body


def offer(price: int) -> dict:
    return {"mode": "exclusive_licence", "exclusive": True, "territory": "CN", "term_months": 12,
            "price": {"amount": price, "currency": "CNY"}, "royalty": {"rate_bp": 300, "base": "net sales"},
            "pricing": "private_agreement"}


def open_programme(gov, face: int, name: str = "fault programme") -> str:
    now = datetime.now(UTC)
    return gov.ok("POST", f"{V}/programmes", key=str(uuid.uuid4()), status=201, json={
        "name": name, "budget": {"amount": 10 * face, "currency": "CNY"},
        "face_values": [{"amount": face, "currency": "CNY"}], "max_invoice_share_bp": 5000,
        "annual_quota": {"amount": face, "currency": "CNY"}, "categories": ["testing"],
        "eligibility": {"regions": ["Shanghai"]},
        "applications_open_at": (now - timedelta(days=1)).isoformat(),
        "applications_close_at": (now + timedelta(days=30)).isoformat(),
        "validity_days": 90, "unspent_policy": "return_to_budget", "reminder_days": 10, "review_levels": 1})["id"]


def issue_voucher(gov, ent, agency, pid: str, face: int) -> tuple[str, str]:
    """Enrol the agency, have the enterprise apply and the government approve; (application, voucher)."""
    agency.ok("POST", f"{V}/programmes/{pid}/agencies", json={"categories": ["testing"]}, status=201)
    gov.ok("POST", f"{V}/programmes/{pid}/agencies/{agency.org_id}/approve", json={"reason": "ok"})
    app = wait_for("an eligible application (vouchers has read the organisation)", lambda: (lambda a: a if a[
        "state"] == "submitted" else None)(ent.ok("POST", f"{V}/programmes/{pid}/applications", status=201,
                                                  json={"face_value": {"amount": face, "currency": "CNY"},
                                                        "purpose": "testing"})), timeout=30)
    voucher_id = gov.ok("POST", f"{V}/applications/{app['id']}/reviews", key=str(uuid.uuid4()),
                        json={"decision": "approve", "reason": "ok"})["voucher_id"]
    return app["id"], voucher_id


def enterprise(enrol, region: str = "Shanghai/Pudong"):
    return enrol("enterprise", ["enterprise"], region=region, headcount=50, registered_on="2015-01-01",
                 annual_revenue={"amount": 1_000_000_00, "currency": "CNY"})
