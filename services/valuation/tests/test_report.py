"""The HTML report: self-contained, charts inline, the figures a reader needs."""

import re
import xml.etree.ElementTree as ET

from techbridge_valuation.domain.assumptions import Assumptions
from techbridge_valuation.domain.engine import value
from techbridge_valuation.reports import html, pdf, svg

from valuation_helpers import TEXTBOOK_REVENUES, TODAY, subject, transfer


def record():
    body = {
        "income": {"revenues": TEXTBOOK_REVENUES, "royalty_rate": {"dist": "triangular", "low": 0.03, "mode": 0.05, "high": 0.08},
                   "discount_rate": 0.12, "tax_amortisation_benefit": True},
        "cost": {"items": [{"label": "研发人员 <staff>", "amount": 20_000_000}]},
        "scorecard": {"ratings": {"legal.scope": 4, "market.size": 5}},
        "simulation": {"paths": 2000, "seed": 7},
    }
    a = Assumptions.model_validate(body)
    r = value(subject(asking_price=50_000_000), [transfer(1, 30_000_000), transfer(2, 50_000_000),
                                                 transfer(3, None, bp=450)], a, TODAY)
    return {"valuation_id": "v-1", "created_at": "2026-11-26T10:00:00+00:00", "requester_role": "owner",
            "request": a.model_dump(mode="json"), "result": r.model_dump(mode="json")}


def test_report_has_three_inline_svg_charts_that_parse_as_xml():
    page = html.render(record())
    charts = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert len(charts) == 3
    labels = [ET.fromstring(c).get("aria-label") for c in charts]
    assert labels == ["Histogram of simulated values", "Tornado chart of input sensitivities", "Scorecard radar chart"]
    assert "<script src" not in page and "<link" not in page  # nothing to fetch


def test_report_shows_range_assumptions_comparables_and_escapes_user_text():
    rec = record()
    page = html.render(rec)
    c = rec["result"]["conclusion"]
    assert svg.fmt_amount(c["mid"]["amount"]) in page
    assert "高能量密度锂电池隔膜" in page
    assert "tr-1" in page and "tr-2" in page
    assert "研发人员 &lt;staff&gt;" in page and "<staff>" not in page
    assert "Enterprise Income Tax Law" in page  # a defaulted input shows its source
    assert "triangular(low 0.03, mode 0.05, high 0.08)" in page
    assert "2026.1" in page
    assert "The owner asks CNY 500,000.00" in page
    assert "Platform evidence: 1 comparable royalty deal(s), median 4.50 %" in page


def test_amounts_read_in_major_units():
    assert svg.fmt_amount(15_916_792) == "CNY 159,167.92"
    assert svg.fmt_amount(250_000_000) == "CNY 2.50 m"


def test_pdf_report_renders_without_a_browser_and_marks_missing_glyphs():
    body = pdf.render(record())
    assert body.startswith(b"%PDF-") and body.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page\b", body)) >= 3  # conclusion, charts, tables, scorecard
    # DejaVu Sans has no CJK glyphs: the title degrades to '?' and the report says so
    doc = pdf._Pdf(None)
    assert doc.t("锂电池 separator") == "??? separator" and doc.missing


def test_pdf_uses_a_configured_font_when_given_one_that_exists():
    doc = pdf._Pdf("/nonexistent/font.ttf")  # falls back rather than failing the report
    assert doc.t("abc") == "abc"
