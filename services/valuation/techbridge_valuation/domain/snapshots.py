"""Subjects and deals as plain JSON, for the read model and for valuation snapshots.

The dictionaries follow the cross-service event contract (catalog achievement, matching
transfer data), so a stored snapshot can be read back years later without the events.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from .subject import IpRecord, Subject, Transfer


def _date(v: Any) -> date | None:
    if not v:
        return None
    if isinstance(v, date):
        return v
    try:
        return date.fromisoformat(str(v)[:10])
    except ValueError:
        return None


def _money_amount(v: Any) -> tuple[int | None, str]:
    if isinstance(v, dict) and isinstance(v.get("amount"), int):
        return v["amount"], v.get("currency") or "CNY"
    return None, "CNY"


def subject_from_data(data: dict[str, Any], status: str = "published") -> Subject:
    trl = data.get("trl")
    trl = int(trl) if isinstance(trl, int) and 1 <= trl <= 9 else 1
    price, currency = _money_amount(data.get("asking_price"))
    return Subject(
        achievement_id=str(data["achievement_id"]),
        owner_org_id=str(data.get("owner_org_id") or ""),
        version=int(data.get("version") or 1),
        title_zh=data.get("title_zh") or "",
        title_en=data.get("title_en") or "",
        ipc_codes=tuple(str(c) for c in data.get("ipc_codes") or ()),
        fields=tuple(str(f) for f in data.get("fields") or ()),
        ip_type=data.get("ip_type") or "know_how",
        trl=trl,
        transfer_modes=tuple(data.get("transfer_modes") or ()),
        asking_price=price,
        currency=currency,
        ip_records=tuple(
            IpRecord(
                number=str(r.get("number") or ""), kind=r.get("kind"),
                filing_date=_date(r.get("filing_date")), grant_date=_date(r.get("grant_date")),
                legal_status=r.get("legal_status"), expiry_date=_date(r.get("expiry_date")),
            )
            for r in data.get("ip_records") or () if isinstance(r, dict)
        ),
        status=status,
    )


def subject_to_data(s: Subject) -> dict[str, Any]:
    return {
        "achievement_id": s.achievement_id, "owner_org_id": s.owner_org_id, "version": s.version,
        "title_zh": s.title_zh, "title_en": s.title_en, "ipc_codes": list(s.ipc_codes), "fields": list(s.fields),
        "ip_type": s.ip_type, "trl": s.trl, "transfer_modes": list(s.transfer_modes),
        "asking_price": None if s.asking_price is None else {"amount": s.asking_price, "currency": s.currency},
        "ip_records": [
            {"number": r.number, "kind": r.kind,
             "filing_date": r.filing_date.isoformat() if r.filing_date else None,
             "grant_date": r.grant_date.isoformat() if r.grant_date else None,
             "legal_status": r.legal_status,
             "expiry_date": r.expiry_date.isoformat() if r.expiry_date else None}
            for r in s.ip_records
        ],
        "status": s.status,
    }


def transfer_from_data(data: dict[str, Any]) -> Transfer:
    price, currency = _money_amount(data.get("price"))
    trl = data.get("trl")
    bp = data.get("royalty_rate_bp")
    return Transfer(
        transfer_id=str(data["transfer_id"]),
        achievement_ids=tuple(str(a) for a in data.get("achievement_ids") or ()),
        seller_org_id=str(data.get("seller_org_id") or ""),
        buyer_org_id=str(data.get("buyer_org_id") or ""),
        mode=data.get("mode"),
        exclusive=data.get("exclusive"),
        territory=data.get("territory"),
        term_months=data.get("term_months"),
        price=price,
        currency=currency,
        royalty_rate_bp=bp if isinstance(bp, int) else None,
        ipc_codes=tuple(str(c) for c in data.get("ipc_codes") or ()),
        fields=tuple(str(f) for f in data.get("fields") or ()),
        trl=trl if isinstance(trl, int) and 1 <= trl <= 9 else None,
        completed_at=data.get("completed_at"),
    )


def transfer_to_data(t: Transfer) -> dict[str, Any]:
    return {
        "transfer_id": t.transfer_id, "achievement_ids": list(t.achievement_ids),
        "seller_org_id": t.seller_org_id, "buyer_org_id": t.buyer_org_id, "mode": t.mode,
        "exclusive": t.exclusive, "territory": t.territory, "term_months": t.term_months,
        "price": None if t.price is None else {"amount": t.price, "currency": t.currency},
        "royalty_rate_bp": t.royalty_rate_bp, "ipc_codes": list(t.ipc_codes), "fields": list(t.fields),
        "trl": t.trl, "completed_at": t.completed_at,
    }
