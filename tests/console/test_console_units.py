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
    r = client.get("/console/institution", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    page = client.get("/console/login?done=Your+account+was+closed&lang=en").text
    assert "Your account was closed" not in page and "Sign in" in page
    r = client.get("/console/lang/en?next=//evil.example/", follow_redirects=False)
    assert r.headers["location"] == "/console" and "tb_lang=en" in r.headers["set-cookie"]
    assert client.get("/console/static/../router.py").status_code == 404
    assert client.get("/console/static/console.css").headers["content-type"].startswith("text/css")
