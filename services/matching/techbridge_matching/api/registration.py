"""Technology-contract registration record of a completed deal, as JSON and as a printable PDF."""

from __future__ import annotations

import io

from ..domain.transfers import Transfer


def registration_record(t: Transfer, facts: dict) -> dict:
    o = t.current
    return {
        "record_type": "technology_contract_registration",
        "transfer_id": t.id,
        "contract_type": {"assignment": "technology transfer (assignment)", "exclusive_licence": "technology licence (exclusive)",
                          "non_exclusive_licence": "technology licence (non-exclusive)", "equity": "equity contribution",
                          "co_development": "technology development (co-development)",
                          "technical_service": "technical service"}[o.mode.value],
        "seller_org_id": t.seller_org_id,
        "buyer_org_id": t.buyer_org_id,
        "achievements": [{"achievement_id": a, "title": title} for a, title in zip(t.achievement_ids, facts["achievement_titles"], strict=False)],
        "ipc_codes": facts["ipc_codes"],
        "fields": facts["fields"],
        "trl": facts["trl"],
        "mode": o.mode.value,
        "exclusive": o.exclusive,
        "territory": o.territory,
        "term_months": o.term_months,
        "price": None if o.price is None else {"amount": o.price, "currency": o.currency},
        "royalty": None if o.royalty is None else {
            "rate_bp": o.royalty.rate_bp, "base": o.royalty.base,
            "minimum_annual": None if o.royalty.minimum_annual is None else {"amount": o.royalty.minimum_annual, "currency": o.currency}},
        "pricing": o.pricing.value,
        "milestones": list(o.milestones),
        "final_offer_version": o.version,
        "signed_at": t.signed_at.isoformat() if t.signed_at else None,
        "notice_starts_at": t.notice_starts_at.isoformat() if t.notice_starts_at else None,
        "notice_ends_at": t.notice_ends_at.isoformat() if t.notice_ends_at else None,
        "completed_at": t.completed_at.isoformat() if t.completed_at else None,
    }


def _amount(m: dict | None) -> str:
    if not m:
        return "-"
    return f"{m['currency']} {m['amount'] // 100:,}.{m['amount'] % 100:02d}"


def registration_pdf(record: dict) -> bytes:
    """One A4 page; Chinese titles use reportlab's built-in STSong-Light CID font (no font files)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    if "STSong-Light" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    c.setTitle(f"Technology contract registration {record['transfer_id']}")
    width, height = A4
    y = height - 60
    c.setFont("Helvetica-Bold", 15)
    c.drawString(50, y, "Technology contract registration record")
    y -= 28
    royalty = record["royalty"]
    rows = [
        ("Transfer", record["transfer_id"]),
        ("Contract type", record["contract_type"]),
        ("Seller", record["seller_org_id"]),
        ("Buyer", record["buyer_org_id"]),
        *[(f"Achievement {i + 1}", f"{a['title']} ({a['achievement_id']})") for i, a in enumerate(record["achievements"])],
        ("IPC", ", ".join(record["ipc_codes"]) or "-"),
        ("Mode", f"{record['mode']} ({'exclusive' if record['exclusive'] else 'non-exclusive'})"),
        ("Territory / term", f"{record['territory']} / {record['term_months'] or '-'} months"),
        ("Price", _amount(record["price"])),
        ("Royalty", "-" if not royalty else f"{royalty['rate_bp'] / 100:.2f}% of {royalty['base']}, minimum {_amount(royalty['minimum_annual'])}"),
        ("Pricing", record["pricing"]),
        ("Signed", record["signed_at"] or "-"),
        ("Public notice", f"{record['notice_starts_at'] or '-'} to {record['notice_ends_at'] or '-'}"),
        ("Completed", record["completed_at"] or "-"),
    ]
    for label, value in rows:
        c.setFont("Helvetica-Bold", 10)
        c.drawString(50, y, label)
        c.setFont("STSong-Light", 10)
        c.drawString(170, y, str(value)[:90])
        y -= 18
    c.showPage()
    c.save()
    return buf.getvalue()
