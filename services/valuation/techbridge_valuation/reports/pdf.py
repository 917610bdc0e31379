"""The valuation report as PDF: the same content and charts as the HTML report, drawn by fpdf2.

No browser and no external program: fpdf2 lays out the text and draws the same SVG charts.
Fonts: a TrueType font is embedded. Chinese text needs a font with CJK glyphs (set
VALUATION_PDF_FONT_PATH, e.g. to NotoSansCJK or Source Han Sans); with a font lacking a
character, that character prints as '?', and the report says the HTML version has the full text.
"""

from __future__ import annotations

import io
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from ..domain.defaults import table as defaults_table
from ..domain.scorecard import CATEGORIES
from . import svg
from .html import asking_price_note, value_text

DEFAULT_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FAMILY = "ReportSans"


@lru_cache(maxsize=4)
def _codepoints(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True) as f:
        return frozenset(f.getBestCmap())


class _Pdf(FPDF):
    def __init__(self, font_path: str | None):
        super().__init__(format="A4")
        self.set_auto_page_break(True, margin=15)
        self.set_margins(15, 15, 15)
        path = font_path if font_path and Path(font_path).is_file() else (DEFAULT_FONT if Path(DEFAULT_FONT).is_file() else None)
        self.glyphs: frozenset[int] | None = None
        self.missing = False
        if path:
            self.add_font(FAMILY, "", path)
            self.family_name = FAMILY
            self.glyphs = _codepoints(path)
        else:  # the core font: Latin-1 only
            self.family_name = "Helvetica"
        self.set_font(self.family_name, size=10)
        self.footer_text = ""

    def t(self, text: Any) -> str:
        """Text the embedded font can draw; anything else becomes '?'."""
        s = str(text)
        if self.glyphs is None:
            out = s.encode("latin-1", "replace").decode("latin-1")
        else:
            out = "".join(ch if ord(ch) in self.glyphs or ch in "\n\t" else "?" for ch in s)
        if out != s:
            self.missing = True
        return out

    def footer(self):
        self.set_y(-12)
        self.set_font(self.family_name, size=8)
        self.cell(0, 6, self.t(f"{self.footer_text}   page {self.page_no()}"), align="C")

    def h1(self, text: str):
        self.set_font(self.family_name, size=16)
        self.multi_cell(0, 8, self.t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(self.family_name, size=10)

    def h2(self, text: str, need: float = 40):
        """A section heading, on a new page unless `need` mm of its content fit below it."""
        if self.get_y() + need > self.h - self.b_margin:
            self.add_page()
        self.ln(3)
        self.set_font(self.family_name, size=13)
        self.set_text_color(40, 80, 140)
        self.cell(0, 8, self.t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(74, 120, 181)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.set_text_color(0, 0, 0)
        self.set_font(self.family_name, size=10)
        self.ln(2)

    def para(self, text: str, size: float = 10):
        self.set_font(self.family_name, size=size)
        self.multi_cell(0, size * 0.5, self.t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(self.family_name, size=10)

    def grid(self, header: list[str], rows: list[list[Any]], widths: tuple[int, ...] | None = None, size: float = 8.5):
        self.set_font(self.family_name, size=size)
        with self.table(col_widths=widths, text_align="LEFT", line_height=size * 0.55,
                        headings_style=FontFace(fill_color=(238, 243, 250)), first_row_as_headings=True) as table:
            row = table.row()
            for h in header:
                row.cell(self.t(h))
            for r in rows:
                row = table.row()
                for v in r:
                    row.cell(self.t("-" if v is None else v))
        self.set_font(self.family_name, size=10)
        self.ln(2)

    def chart(self, svg_text: str, width_mm: float):
        m = re.search(r'width="(\d+)" height="(\d+)"', svg_text)
        height = width_mm * int(m.group(2)) / int(m.group(1)) if m else 80
        if self.get_y() + height > self.h - self.b_margin:
            self.add_page()
        self.image(io.BytesIO(svg_text.encode()), x=self.l_margin, w=width_mm)
        self.ln(2)


def _m(amount: int | None, currency: str) -> str:
    return "-" if amount is None else svg.fmt_amount(amount, currency)


def render(record: dict[str, Any], font_path: str | None = None) -> bytes:
    r = record["result"]
    cur = r["currency"]
    s = r["subject"]
    c = r["conclusion"]
    sim = r["simulation"]
    pdf = _Pdf(font_path)
    pdf.footer_text = f"Techbridge valuation {record['valuation_id']}"
    pdf.set_title(f"Valuation report {record['valuation_id']}")
    pdf.add_page()
    pdf.h1("Valuation report: " + (s["title_zh"] or s["title_en"] or s["achievement_id"]))
    if s["title_en"] and s["title_zh"]:
        pdf.para(s["title_en"], 11)
    pdf.para(f"Valuation {record['valuation_id']} | valuation date {r['valuation_date']} | requested "
             f"{record['created_at'][:19]} UTC by {record.get('requester_role', '')} | defaults table "
             f"{r['table_version']} | seed {sim['seed']}, {sim['paths']:,} paths (numpy {sim['numpy_version']})", 8)

    pdf.h2("Conclusion")
    pdf.set_font(pdf.family_name, size=14)
    pdf.cell(0, 9, pdf.t(f"{_m(c['low']['amount'], cur)}  -  {_m(c['mid']['amount'], cur)}  -  "
                         f"{_m(c['high']['amount'], cur)}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.para(c["basis"] + ". Low / mid / high are P10 / P50 / P90.", 8.5)
    pdf.grid(["Method", "Base case", "P10", "P50", "P90", "Weight", "Why this weight"],
             [[m["label"], _m(m["value"], cur), _m((m.get("range") or {}).get("p10"), cur),
               _m((m.get("range") or {}).get("p50"), cur), _m((m.get("range") or {}).get("p90"), cur),
               f"{m['weight']:.0%}", m["weight_reason"]] for m in r["methods"]],
             widths=(34, 20, 20, 20, 20, 12, 54))
    if r["warnings"]:
        pdf.para("Warnings:", 10)
        for w in r["warnings"]:
            pdf.para("- " + w, 8.5)
    for reason in c["reasons"][len(r["methods"]):]:
        pdf.para(reason, 8.5)
    ask = asking_price_note(r)
    if ask:
        pdf.para(ask, 9)

    pdf.h2("The achievement")
    pdf.grid(["", ""], [
        ["Achievement", f"{s['achievement_id']} (version {s['version']})"], ["IP type", s["ip_type"]],
        ["TRL", s["trl"]], ["IPC", ", ".join(s["ipc_codes"]) or "-"], ["Fields", ", ".join(s["fields"]) or "-"],
        ["Industry", s["industry"]], ["Protection ends", s["protection_ends_on"] or "-"],
        ["Basis", s["protection_basis"]],
    ], widths=(45, 135))

    pdf.h2("Distribution of values", need=105)
    pdf.chart(svg.histogram(sim["histogram"]["edges"], sim["histogram"]["counts"], p10=sim["percentiles"]["p10"],
                            p50=sim["percentiles"]["p50"], p90=sim["percentiles"]["p90"], currency=cur,
                            font=pdf.family_name), 170)
    pdf.para(f"Uncertain inputs: {', '.join(sim['uncertain_inputs']) or 'none (every input fixed)'}.", 8.5)

    pdf.h2("Sensitivity", need=30 + 7 * len(r["tornado"]))
    bars = [{**b, "label": pdf.t(b["label"])} for b in r["tornado"]]
    pdf.chart(svg.tornado(bars, base=c["base_case"], currency=cur, font=pdf.family_name), 170)
    pdf.para("Each bar moves one input to its P10 and P90 (fixed inputs -/+10 %), the others at their base values.", 8.5)

    pdf.h2("Assumptions")
    pdf.grid(["Input", "Value", "Base", "Source"], [
        [f"{i['label']} ({i['name']})", value_text(i["value"], i["unit"], cur),
         _m(i["base"], cur) if i["unit"] == "minor units" else f"{i['base']:.4g}", i["source"]]
        for i in r["inputs"]
    ], widths=(45, 40, 25, 70), size=7.5)

    pdf.h2("Methods")
    for m in r["methods"]:
        pdf.para(m["label"], 10)
        for k, v in m["details"].items():
            shown = _m(v, cur) if isinstance(v, int) and k not in ("years", "amortisation_years", "comparables") else v
            pdf.para(f"  {k.replace('_', ' ')}: {shown}", 8.5)
        for n in m["notes"]:
            pdf.para("  " + n, 8.5)

    pdf.h2("Comparable completed deals")
    if r["comparables"]:
        pdf.grid(["Deal", "Completed", "Match", "Mode / territory / TRL", "Price", "Factors", "Adjusted"], [
            [cp["transfer_id"], (cp["completed_at"] or "")[:10], cp["match"],
             f"{cp['mode']} / {cp['territory']} / {cp['trl'] if cp['trl'] is not None else '-'}",
             _m(cp["price"]["amount"], cp["price"]["currency"]),
             f"{cp['trl_factor']:.3f} x {cp['exclusivity_factor']:.3f} x {cp['territory_factor']:.3f}",
             _m(cp["adjusted_price"]["amount"], cp["adjusted_price"]["currency"])]
            for cp in r["comparables"]
        ], widths=(28, 18, 28, 30, 24, 28, 24), size=7.5)
    else:
        pdf.para("No completed deal on the platform shares an IPC subclass or field with this achievement.")

    sc = r["scorecard"]
    pdf.h2("Scorecard", need=100)
    pdf.chart(svg.radar([(CATEGORIES[k], v) for k, v in sc["categories"].items()], font=pdf.family_name), 95)
    overall = "not rated" if sc["overall"] is None else f"{sc['overall']:.2f} of 5 ({sc['verdict']})"
    pdf.para(f"Overall {overall}; indicators rated 1-5 in the style of EPO IPscore.", 8.5)
    pdf.grid(["Indicator", "Category", "Rating", "Source"],
             [[i["label"], CATEGORIES[i["category"]], i["rating"], i["source"]] for i in sc["indicators"]],
             widths=(70, 35, 15, 60), size=7.5)

    pdf.h2("Method notes")
    for n in defaults_table(r["table_version"]).notes:
        pdf.para("- " + n, 8.5)
    if pdf.missing:
        pdf.para("Some characters are not in the embedded font and print as '?'; the HTML report has the full text.", 8)
    return bytes(pdf.output())

