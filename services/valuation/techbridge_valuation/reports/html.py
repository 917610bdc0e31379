"""The valuation report a person reads: one self-contained HTML page with inline SVG charts."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from ..domain.defaults import table as defaults_table
from ..domain.scorecard import CATEGORIES
from . import svg

CSS = """
body{font-family:'Noto Sans','Helvetica Neue',Arial,'PingFang SC','Microsoft YaHei',sans-serif;margin:2em auto;
max-width:60em;color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #4a78b5;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;width:100%;margin:.6em 0}th,td{border:1px solid #ccc;padding:.3em .5em;
text-align:left;vertical-align:top;font-size:.92em}th{background:#eef3fa}td.n{text-align:right;white-space:nowrap}
.range{font-size:1.4em;background:#eef3fa;padding:.6em 1em;border-left:5px solid #4a78b5}
.warn{background:#fff4e0;border-left:5px solid #e69500;padding:.4em 1em}.muted{color:#666;font-size:.9em}
figure{margin:1em 0}figcaption{font-size:.9em;color:#555}
@media print{h2{page-break-after:avoid}figure,table{page-break-inside:avoid}}
"""


def _m(amount: int | None, currency: str) -> str:
    return "-" if amount is None else svg.fmt_amount(amount, currency)


def value_text(v: Any, unit: str, currency: str) -> str:
    """An input as recorded: a number or a distribution, amounts shown in major units."""
    def num(x: float) -> str:
        return svg.fmt_amount(x, currency) if unit == "minor units" else f"{x:g}"

    if isinstance(v, dict):
        if v.get("dist") == "empirical":
            return f"empirical ({len(v.get('values', []))} comparables)"
        parts = [f"{k} {v[k]:g}" if k == "sigma" else f"{k} {num(v[k])}" for k in v if k != "dist"]
        return f"{v.get('dist', '')}({', '.join(parts)})"
    return num(v) if isinstance(v, (int, float)) else str(v)


def asking_price_note(r: dict[str, Any]) -> str | None:
    ask = r["subject"].get("asking_price")
    if not ask or not ask.get("amount") or ask.get("currency") != r["currency"]:
        return None
    mid = r["conclusion"]["mid"]["amount"]
    return (f"The owner asks {svg.fmt_amount(ask['amount'], ask['currency'])}: the mid value is "
            f"{mid / ask['amount']:.0%} of the asking price.")


def render(record: dict[str, Any]) -> str:
    r = record["result"]
    cur = r["currency"]
    s = r["subject"]
    c = r["conclusion"]
    sim = r["simulation"]
    title = s["title_zh"] or s["title_en"] or s["achievement_id"]
    out: list[str] = [
        "<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'>",
        f"<title>Valuation report - {escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>Valuation report: {escape(title)}</h1>",
    ]
    if s["title_en"] and s["title_zh"]:
        out.append(f"<p>{escape(s['title_en'])}</p>")
    out.append(
        f"<p class='muted'>Valuation {escape(record['valuation_id'])} &middot; valuation date {escape(r['valuation_date'])}"
        f" &middot; requested {escape(record['created_at'][:19])} UTC by {escape(record.get('requester_role', ''))}"
        f" &middot; defaults table {escape(r['table_version'])} &middot; seed {sim['seed']}, {sim['paths']:,} paths"
        f" (numpy {escape(sim['numpy_version'])})</p>")

    out.append("<h2>Conclusion</h2>")
    out.append(f"<p class='range'>{_m(c['low']['amount'], cur)} &ndash; <b>{_m(c['mid']['amount'], cur)}</b> "
               f"&ndash; {_m(c['high']['amount'], cur)}</p>")
    out.append(f"<p class='muted'>{escape(c['basis'])}. Low / mid / high are P10 / P50 / P90.</p>")
    out.append("<table><tr><th>Method</th><th>Base case</th><th>P10</th><th>P50</th><th>P90</th><th>Weight</th>"
               "<th>Why this weight</th></tr>")
    for m in r["methods"]:
        rg = m.get("range") or {}
        out.append(f"<tr><td>{escape(m['label'])}</td><td class='n'>{_m(m['value'], cur)}</td>"
                   f"<td class='n'>{_m(rg.get('p10'), cur)}</td><td class='n'>{_m(rg.get('p50'), cur)}</td>"
                   f"<td class='n'>{_m(rg.get('p90'), cur)}</td><td class='n'>{m['weight']:.0%}</td>"
                   f"<td>{escape(m['weight_reason'])}</td></tr>")
    out.append("</table>")
    if r["warnings"]:
        out.append("<div class='warn'><b>Warnings</b><ul>" + "".join(f"<li>{escape(w)}</li>" for w in r["warnings"])
                   + "</ul></div>")
    for reason in c["reasons"][len(r["methods"]):]:
        out.append(f"<p class='muted'>{escape(reason)}</p>")
    ask = asking_price_note(r)
    if ask:
        out.append(f"<p>{escape(ask)}</p>")

    out.append("<h2>The achievement</h2><table>")
    for label, v in (
        ("Achievement", s["achievement_id"] + f" (version {s['version']})"),
        ("IP type", s["ip_type"]), ("TRL", str(s["trl"])), ("IPC", ", ".join(s["ipc_codes"]) or "-"),
        ("Fields", ", ".join(s["fields"]) or "-"), ("Industry (for default royalty rates)", s["industry"]),
        ("Protection ends", s["protection_ends_on"] or "-"),
        ("Remaining protection", "-" if s["remaining_protection_years"] is None else f"{s['remaining_protection_years']:.1f} years"),
        ("Basis", s["protection_basis"]),
    ):
        out.append(f"<tr><th>{escape(label)}</th><td>{escape(str(v))}</td></tr>")
    out.append("</table>")

    out.append("<h2>Distribution of values</h2><figure>")
    out.append(svg.histogram(sim["histogram"]["edges"], sim["histogram"]["counts"], p10=sim["percentiles"]["p10"],
                             p50=sim["percentiles"]["p50"], p90=sim["percentiles"]["p90"], currency=cur))
    unc = ", ".join(sim["uncertain_inputs"]) or "none (every input fixed)"
    out.append(f"<figcaption>{sim['paths']:,} Monte Carlo paths, seed {sim['seed']}. Uncertain inputs: "
               f"{escape(unc)}.</figcaption></figure>")

    out.append("<h2>Sensitivity</h2><figure>")
    out.append(svg.tornado(r["tornado"], base=c["base_case"], currency=cur))
    out.append("<figcaption>Each bar moves one input to its P10 and P90 (fixed inputs -/+10 %), the others at "
               "their base values.</figcaption></figure>")

    out.append("<h2>Assumptions</h2><table><tr><th>Input</th><th>Value</th><th>Base</th><th>Source</th></tr>")
    for i in r["inputs"]:
        base_txt = _m(i["base"], cur) if i["unit"] == "minor units" else f"{i['base']:.4g}"
        out.append(f"<tr><td>{escape(i['label'])}<br><span class='muted'>{escape(i['name'])}</span></td>"
                   f"<td>{escape(value_text(i['value'], i['unit'], cur))}</td><td class='n'>{escape(base_txt)}</td><td>{escape(i['source'])}</td></tr>")
    out.append("</table><p class='muted'>Amounts are in minor units (fen) inside the model and shown here in "
               f"{escape(cur)}; every amount is rounded once, half away from zero, when it leaves the model.</p>")

    out.append("<h2>Methods</h2>")
    for m in r["methods"]:
        out.append(f"<h3>{escape(m['label'])}</h3><ul>")
        for k, v in m["details"].items():
            shown = _m(v, cur) if isinstance(v, int) and k not in ("years", "amortisation_years", "comparables") else v
            out.append(f"<li>{escape(k.replace('_', ' '))}: {escape(str(shown))}</li>")
        out.extend(f"<li>{escape(n)}</li>" for n in m["notes"])
        out.append("</ul>")

    out.append("<h2>Comparable completed deals</h2>")
    if r["comparables"]:
        out.append("<table><tr><th>Deal</th><th>Completed</th><th>Match</th><th>Mode / territory / TRL</th>"
                   "<th>Price</th><th>Factors (TRL x exclusivity x territory)</th><th>Adjusted</th></tr>")
        for cp in r["comparables"]:
            out.append(
                f"<tr><td>{escape(cp['transfer_id'])}</td><td>{escape((cp['completed_at'] or '')[:10])}</td>"
                f"<td>{escape(cp['match'])}</td><td>{escape(str(cp['mode']))} / {escape(str(cp['territory']))} / "
                f"{cp['trl'] if cp['trl'] is not None else '-'}</td>"
                f"<td class='n'>{_m(cp['price']['amount'], cp['price']['currency'])}</td>"
                f"<td>{cp['trl_factor']:.3f} x {cp['exclusivity_factor']:.3f} x {cp['territory_factor']:.3f}</td>"
                f"<td class='n'>{_m(cp['adjusted_price']['amount'], cp['adjusted_price']['currency'])}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>No completed deal on the platform shares an IPC subclass or field with this achievement.</p>")
    if r["royalty_evidence"]:
        out.append("<p>Royalty-only deals (evidence for the royalty rate): " + ", ".join(
            f"{escape(e['transfer_id'])} {e['royalty_rate_bp'] / 100:.2f} %" for e in r["royalty_evidence"]) + "</p>")

    sc = r["scorecard"]
    out.append("<h2>Scorecard</h2><figure>")
    out.append(svg.radar([(CATEGORIES[k], v) for k, v in sc["categories"].items()]))
    overall = "not rated" if sc["overall"] is None else f"{sc['overall']:.2f} of 5 ({sc['verdict']})"
    out.append(f"<figcaption>Overall {escape(overall)}; indicators rated 1-5 in the style of EPO IPscore."
               "</figcaption></figure>")
    out.append("<table><tr><th>Indicator</th><th>Category</th><th>Rating</th><th>Source</th></tr>")
    for ind in sc["indicators"]:
        out.append(f"<tr><td>{escape(ind['label'])}</td><td>{escape(CATEGORIES[ind['category']])}</td>"
                   f"<td class='n'>{ind['rating']}</td><td>{escape(ind['source'])}</td></tr>")
    out.append("</table>")

    t = defaults_table(r["table_version"])
    out.append("<h2>Method notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in t.notes) + "</ul>")
    out.append("<p class='muted'>Reproduce: POST the recorded request (JSON report, <code>request</code>) with the same "
               "seed against defaults table " + escape(r["table_version"]) + ", or call "
               "<code>POST /api/v1/valuation/valuations/{id}/reproduce</code>.</p>")
    out.append("<script type='application/json' id='valuation-request'>"
               + escape(json.dumps(record.get("request", {}), ensure_ascii=False)) + "</script>")
    out.append("</body></html>")
    return "".join(out)

