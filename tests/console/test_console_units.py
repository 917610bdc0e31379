"""The console's pure parts: words in both languages, money input, problem field mapping, charts."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st

from techbridge_gateway.console import charts, i18n
from techbridge_gateway.console.api import ApiError
from techbridge_gateway.console.router import claims_of, home_for, money, split_list, yuan_to_fen

TEMPLATES = Path(i18n.__file__).resolve().parent / "templates"


def test_every_word_exists_in_both_languages_and_every_template_key_is_known():
    for key, (zh, en) in i18n.TEXT.items():
        assert zh.strip() and en.strip(), key
        assert zh != en or key == "app", f"{key} is not translated"
    used = set()
    for f in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"\bt\('([a-z_]+)'\)", f.read_text()))
    assert used - set(i18n.TEXT) == set()


def test_language_comes_from_the_query_then_the_cookie_then_the_browser():
    assert i18n.pick_lang("en", "zh", "zh-CN") == "en"
    assert i18n.pick_lang(None, "en", "zh-CN") == "en"
    assert i18n.pick_lang(None, None, "en-GB,en;q=0.9") == "en"
    assert i18n.pick_lang("fr", None, None) == "zh"
    assert i18n.label("en", "transfer_mode", "equity") == "Equity"
    assert i18n.label("zh", "status", "published") == "已发布"
    assert i18n.label("zh", "status", "something-new") == "something-new"


@given(st.integers(min_value=0, max_value=10**14))
def test_yuan_input_round_trips_to_fen(fen):
    assert yuan_to_fen(f"{fen // 100}.{fen % 100:02d}") == fen
    assert yuan_to_fen(f"{fen // 100:,}.{fen % 100:02d}") == fen


@pytest.mark.parametrize("text", ["二十万", "1.234", "-5", "1e3x", "abc"])
def test_yuan_input_that_is_not_an_amount_is_refused(text):
    with pytest.raises(ValueError):
        yuan_to_fen(text)


def test_empty_amount_is_none_and_money_is_shown_in_yuan():
    assert yuan_to_fen("  ") is None
    assert money({"amount": 123456789, "currency": "CNY"}) == "¥1,234,567.89"
    assert money(None) == "—"
    assert split_list("电池，隔膜、 coating ,,") == ["电池", "隔膜", "coating"]


def test_problem_fields_map_to_the_form_field_they_belong_next_to():
    exc = ApiError(422, {"detail": "x", "errors": [
        {"field": "body.asking_price.amount", "message": "too large"},
        {"field": "achievement.ip_records", "message": "needs a record"},
        {"field": "body.trl", "message": "at most 9"},
        {"field": "body.trl", "message": "second message for the same field"},
        {"field": "co_owners", "message": "shares"}]})
    assert exc.field_errors() == {"asking_price": "too large", "ip_records": "needs a record", "trl": "at most 9",
                                  "co_owners": "shares"}
    assert ApiError(503).detail == "HTTP 503"


def test_roles_are_read_from_the_token_only_to_choose_pages():
    payload = base64.urlsafe_b64encode(json.dumps({"roles": ["agency"], "org": "o1"}).encode()).decode().rstrip("=")
    assert claims_of(f"h.{payload}.s") == {"roles": ["agency"], "org": "o1"}
    assert claims_of("garbage") == {} and claims_of("a.!!!.c") == {}
    assert home_for(["agency"]) == "/console/agency"
    assert home_for(["admin"]) == "/console/government"
    assert home_for(["partner"]) is None


def test_bar_chart_is_valid_svg_with_bars_proportional_to_values():
    svg = charts.bar_chart("预算 <b>", [("P1", [100.0, 50.0, 0.0]), ("P2", [20.0, 10.0, 5.0])], ["a", "b", "c"])
    root = ElementTree.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    bars = [r for r in root.iter(ns + "rect") if r.find(ns + "title") is not None]
    widths = [float(r.get("width")) for r in bars]
    assert len(bars) == 6
    assert widths[0] == max(widths) and widths[1] == pytest.approx(widths[0] / 2) and widths[2] == 0
    assert root.find(ns + "title").text == "预算 <b>"  # escaped in the markup, intact as text


def test_empty_chart_says_so_and_counts_are_ordered():
    assert "chart-empty" in charts.bar_chart("t", [], ["x"], empty="No data yet")
    assert charts.count_by(["b", "a", "b", "c"]) == [("b", [2.0]), ("a", [1.0]), ("c", [1.0])]
    assert charts.by_month(["2026-03-01T00:00:00Z", None, "2026-01-05T00:00:00Z", "2026-03-09T00:00:00Z"]) == [
        ("2026-01", [1.0]), ("2026-03", [2.0])]


def test_pages_without_a_session_and_odd_links_answer_sensibly():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from techbridge_gateway.console import router

    app = FastAPI()
    app.include_router(router)
    client = TestClient(app)
    for path in ("/console/institution", "/console/deals", "/console/deals/d1", "/console/deals/new?achievement=a",
                 "/console/valuations?achievement=a", "/console/valuations/v1", "/console/enterprise/vouchers/v1",
                 "/console/government/reviews"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/console/login", path
    page = client.get("/console/login?done=Your+account+was+closed&lang=en").text
    assert "Your account was closed" not in page and "Sign in" in page
    r = client.get("/console/lang/en?next=//evil.example/", follow_redirects=False)
    assert r.headers["location"] == "/console" and "tb_lang=en" in r.headers["set-cookie"]
    assert client.get("/console/static/../router.py").status_code == 404
    assert client.get("/console/static/console.css").headers["content-type"].startswith("text/css")


# --- the deal room, valuations, vouchers and the dashboard's figures --------------------------------

def _line(seq, ts, *postings, kind="x"):
    return {"seq": seq, "kind": kind, "created_at": ts, "postings": [{"account_id": a, "amount": n} for a, n in postings]}


def test_programme_timeline_replays_the_journal_with_the_dashboards_definitions():
    from techbridge_gateway.console.figures import programme_timeline

    p = "P"
    lines = [
        _line(3, "2026-03-01T10:00:00+00:00", ("programme:P:unissued", -5000), ("voucher:v:available", 5000)),
        _line(1, "2026-01-01T00:00:00+00:00", ("programme:P:funding", -100000), ("programme:P:unissued", 100000)),
        _line(4, "2026-03-02T00:00:00+00:00", ("voucher:v:available", -2000), ("voucher:v:reserved", 2000)),
        _line(5, "2026-03-03T00:00:00+00:00", ("voucher:v:reserved", -2000), ("agency:P:a1:payable", 2000)),
        _line(6, "2026-03-04T00:00:00+00:00", ("agency:P:a1:payable", -2000), ("agency:P:a1:paid", 2000)),
        _line(2, "2026-02-01T00:00:00Z", ("programme:P:funding", -50000), ("programme:P:unissued", 50000)),
    ]
    points = programme_timeline(lines, p)
    assert [v for _, v in points] == [[100000, 0, 0], [150000, 0, 0], [150000, 5000, 0], [150000, 5000, 2000]]
    assert [ts for ts, _ in points] == sorted(ts for ts, _ in points)  # a reservation and a payout change none
    assert programme_timeline([], p) == []


def test_top_institutions_count_live_deals_and_break_ties_by_value():
    from techbridge_gateway.console.figures import top_institutions

    def deal(seller, status, fen):
        return {"seller_org_id": seller, "status": status, "current_offer": {"price": {"amount": fen} if fen else None}}
    ranked = top_institutions([deal("a", "completed", 100), deal("b", "signed", 500), deal("a", "proposed", None),
                               deal("b", "cancelled", 10**9), deal("c", "in_notice", 900)])
    assert ranked == [("a", 2, 100), ("c", 1, 900), ("b", 1, 500)]


def test_offer_history_names_the_terms_each_version_changed():
    from techbridge_gateway.console.figures import offer_changes

    v1 = {"version": 1, "mode": "exclusive_licence", "exclusive": True, "territory": "CN", "term_months": 60,
          "price": {"amount": 1, "currency": "CNY"}, "royalty": None, "pricing": "private_agreement"}
    v2 = {**v1, "version": 2, "price": {"amount": 2, "currency": "CNY"}, "royalty": {"rate_bp": 200, "base": "x"}}
    v3 = {**v2, "version": 3, "note": "only the note"}
    assert offer_changes([v3, v1, v2]) == {1: [], 2: ["price", "royalty"], 3: []}


class _Form(dict):
    def getlist(self, key):
        v = self.get(key)
        return v if isinstance(v, list) else ([] if v is None else [v])


def test_offer_form_becomes_the_api_offer_and_unreadable_numbers_stay_on_the_form():
    from techbridge_gateway.console.deals import offer_body, offer_errors, offer_values, percent_to_bp

    assert percent_to_bp("3.5") == 350 and percent_to_bp(" 2 % ") == 200 and percent_to_bp("") is None
    for bad in ("3.456", "-1", "abc"):
        with pytest.raises(ValueError):
            percent_to_bp(bad)
    errors: dict = {}
    body = offer_body(_Form(mode="exclusive_licence", exclusive="on", territory=" CN ", term_months="60",
                            price="780,000", royalty_rate="2", royalty_base=""), errors)
    assert errors == {}
    assert body["price"] == {"amount": 78_000_000, "currency": "CNY"} and body["exclusive"] is True
    assert body["royalty"] == {"rate_bp": 200, "base": "net sales"} and body["territory"] == "CN"
    assert body["pricing"] == "private_agreement" and body["term_months"] == 60
    errors = {}
    body = offer_body(_Form(mode="assignment", price="七十万", royalty_rate="x", term_months="five"), errors)
    assert set(errors) == {"price", "royalty_rate", "term_months"} and body["exclusive"] is False
    # The form shown for a counter-offer starts from the current terms.
    values = offer_values({"mode": "equity", "exclusive": False, "territory": "CN", "term_months": None,
                           "price": {"amount": 12345, "currency": "CNY"}, "royalty": {"rate_bp": 250, "base": "b"},
                           "pricing": "auction"})
    assert values["price"] == "123.45" and values["royalty_rate"] == "2.5" and values["pricing"] == "auction"
    refused = ApiError(422, {"errors": [{"field": "body.offer.royalty.rate_bp", "message": "1-10000"},
                                        {"field": "body.exclusive", "message": "exclusive by nature"}]})
    assert offer_errors(refused) == {"royalty_rate": "1-10000", "exclusive": "exclusive by nature"}


def test_valuation_form_becomes_the_request_and_refusals_find_their_field():
    from techbridge_gateway.console.valuations import valuation_body, valuation_errors

    errors: dict = {}
    body = valuation_body("A1", _Form(methods=["income", "cost", "bogus"], first_year_revenue="5,000,000",
                                      growth_rate="10", life_years="8", royalty_low="3", royalty_mode="5",
                                      royalty_high="8", discount_rate="", development_cost="2000000",
                                      paths="2000"), errors)
    assert errors == {}
    assert body["methods"] == ["income", "cost"] and body["simulation"] == {"paths": 2000}
    assert body["income"]["first_year_revenue"] == 500_000_000 and body["income"]["life_years"] == 8
    assert body["income"]["growth_rate"] == pytest.approx(0.10)
    assert body["income"]["royalty_rate"] == {"dist": "triangular", "low": 0.03, "mode": 0.05, "high": 0.08}
    assert "discount_rate" not in body["income"] and "rnpv" not in body
    assert body["cost"]["items"][0]["amount"] == 200_000_000
    errors = {}
    valuation_body("A1", _Form(methods=["income"], first_year_revenue="lots", growth_rate="ten"), errors)
    assert set(errors) == {"first_year_revenue", "growth_rate"}
    refused = ApiError(422, {"errors": [
        {"field": "body.income.life_years", "message": "beyond the patent term"},
        {"field": "body.cost.items.0.amount", "message": "negative"},
        {"field": "body.income.revenues", "message": "give either"},
        {"field": "body.achievement_id", "message": "unknown"}]})
    assert valuation_errors(refused) == {"life_years": "beyond the patent term", "development_cost": "negative",
                                         "first_year_revenue": "give either", "_": "unknown"}


def test_voucher_statement_shows_each_entrys_effect_and_the_balance_after_it():
    from techbridge_gateway.console.programmes import voucher_lines

    lines = [_line(7, "t", ("voucher:v:available", -2000), ("voucher:v:reserved", 2000), kind="reserve"),
             _line(2, "t", ("programme:P:unissued", -5000), ("voucher:v:available", 5000), kind="issue"),
             _line(9, "t", ("voucher:v:reserved", -2000), ("agency:P:a:payable", 2000), kind="settle")]
    shown = voucher_lines("v", lines)
    assert [(x["kind"], x["d_available"], x["d_reserved"], x["available_after"]) for x in shown] == [
        ("settle", 0, -2000, 3000), ("reserve", -2000, 2000, 3000), ("issue", 5000, 0, 5000)]


def test_timeline_and_histogram_charts_are_valid_svg():
    ns = "{http://www.w3.org/2000/svg}"
    svg = charts.timeline_chart("预算 & 发放", [(0.0, [100.0, 0.0]), (86400.0 * 30, [100.0, 40.0])], ["a", "b"])
    root = ElementTree.fromstring(svg)
    paths = [p for p in root.iter(ns + "path")]
    assert len(paths) == 2 and paths[1].find(ns + "title").text == "b: 40"
    assert "2026" not in svg and "1970-01-01" in svg  # dates on the axis when the span is long
    assert "chart-empty" in charts.timeline_chart("t", [], ["a"])
    # The last values hold until the page's time; a single point still spans a minute from itself.
    root = ElementTree.fromstring(charts.timeline_chart("t", [(0.0, [1.0]), (10.0, [2.0])], ["a"], until=100.0,
                                                        width=108))
    d = next(root.iter(ns + "path")).get("d")
    assert d.startswith("M8.0,") and "H17.2V" in d and d.endswith("H100.0")
    hist = charts.histogram("分布", [0, 10, 20, 30], [1, 4, 2], [("P10", 5), ("P50", 15), ("P90", 99)])
    root = ElementTree.fromstring(hist)
    bins = [r for r in root.iter(ns + "rect") if r.get("class") == "bin"]
    heights = [float(r.get("height")) for r in bins]
    assert len(bins) == 3 and heights[1] == max(heights) and heights[0] == pytest.approx(heights[1] / 4)
    assert len([m for m in root.iter(ns + "line") if m.get("class") == "marker"]) == 2  # P90 lies outside
    assert "chart-empty" in charts.histogram("t", [0, 1], [], [])


def test_a_deal_in_public_notice_completes_only_once_the_notice_has_run():
    from datetime import UTC, datetime

    from techbridge_gateway.console.deals import notice_over, waiting_for

    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert not notice_over("2026-12-11T00:00:00Z", now) and notice_over("2026-11-30T23:59:59+00:00", now)
    assert notice_over(None, now)
    deal = {"status": "negotiating", "seller_org_id": "S", "buyer_org_id": "B", "seller_signed_at": "x",
            "buyer_signed_at": None}
    assert waiting_for(deal, "B") and not waiting_for(deal, "S") and not waiting_for(deal, "other")
    assert not waiting_for({**deal, "status": "signed"}, "B")


def test_valuation_inputs_are_named_in_chinese_keeping_what_the_service_adds():
    from techbridge_gateway.console.valuations import input_label

    royalty = {"name": "income.royalty_rate", "label": "Royalty rate (Energy storage and power)"}
    assert input_label("zh", royalty) == "提成率 (Energy storage and power)"
    assert input_label("en", royalty) == royalty["label"]
    assert input_label("zh", {"name": "cost.items[0]", "label": "Cost: research and development"}) == \
        "成本：research and development"
    assert input_label("zh", {"name": "something.new", "label": "Something new"}) == "Something new"
    assert input_label("zh", {"name": "tax_rate", "label": "Income tax rate"}) == "所得税率"
