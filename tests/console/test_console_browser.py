"""The console in a real headless Chromium against the whole platform running as processes.

Each test is one role's main flow, done the way a person does it (sign in, read, fill in forms,
make mistakes, follow links); screenshots go to tests/console/screenshots/ for review.
"""

from __future__ import annotations

import re
import time

import pytest

from console_harness import (
    CHROMIUM, CHROMIUM_ARGS, PASSWORD, SCREENSHOTS, Platform, achievement, browser_missing, clean_screenshots,
    open_programme, publish_achievement, seed_people, start_platform, stop_platform,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres,
              pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def platform(tmp_path_factory, kafka_bootstrap, pg_url_factory):
    p = start_platform(tmp_path_factory.mktemp("console"), kafka_bootstrap, pg_url_factory)
    try:
        seed_people(p)
        seed_market(p)
        yield p
    finally:
        stop_platform(p)


def seed_market(p: Platform) -> None:
    """What the other parties did before today: listings, a demand, a programme, a voucher."""
    p.battery = publish_achievement(p, achievement(
        "高安全固态锂电池电解质", "Solid-state lithium battery electrolyte", ["固态电池", "电解质", "lithium battery"],
        ["新能源"], "H01M 10/0562", "exclusive_licence", 800_000, trl=6,
        abstract="一种用于固态锂电池的硫化物电解质，提高电池安全性"))
    p.sensor = publish_achievement(p, achievement(
        "柔性压力传感器", "Flexible pressure sensor", ["传感器", "sensor", "wearable"], ["智能制造"],
        "G01L 1/18", "non_exclusive_licence", 300_000, trl=5))
    p.coating = publish_achievement(p, achievement(
        "电池隔膜陶瓷涂层工艺", "Ceramic coating for battery separators", ["隔膜", "battery separator", "涂层"],
        ["新能源", "新材料"], "H01M 50/449", "assignment", 1_200_000, trl=7))
    demand = p.call("enterprise", "POST", "/api/v1/matching/demands", json={
        "title": "动力电池安全性提升技术", "problem": "寻求提高固态锂电池安全性的电解质技术，用于电动汽车动力电池。",
        "keywords": ["固态电池", "电解质", "lithium battery"], "ipc_codes": ["H01M 10/0562"],
        "budget_max": {"amount": 1_000_000_00, "currency": "CNY"}, "transfer_modes": [], "min_trl": 5})
    p.call("enterprise", "POST", f"/api/v1/matching/demands/{demand['id']}/publish")
    p.demand = demand["id"]
    p.until("matching indexes the listings", lambda: p.call(
        "enterprise", "GET", f"/api/v1/matching/demands/{p.demand}/matches")["items"], timeout=90)
    programme = open_programme(p)
    p.programme = programme["id"]
    p.call("agency", "POST", f"/api/v1/vouchers/programmes/{p.programme}/agencies",
           json={"categories": ["technology_transfer"]})
    p.call("government", "POST",
           f"/api/v1/vouchers/programmes/{p.programme}/agencies/{p.people['agency'].org_id}/approve",
           json={"reason": "qualified"})

    def apply():
        a = p.call("enterprise", "POST", f"/api/v1/vouchers/programmes/{p.programme}/applications",
                   json={"face_value": {"amount": 50_000_00, "currency": "CNY"}, "purpose": "licence a battery patent"})
        return a if a["state"] != "ineligible" else None

    application = p.until("vouchers knows the enterprise", apply, timeout=60)
    decided = p.call("government", "POST", f"/api/v1/vouchers/applications/{application['id']}/reviews",
                     json={"decision": "approve", "reason": ""})
    p.voucher = decided["voucher_id"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    clean_screenshots()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def new_page(browser, viewport=DESKTOP):
    context = browser.new_context(viewport=viewport, locale="zh-CN", device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page


def sign_in(page, platform: Platform, role: str) -> None:
    page.goto(platform.url + "/console")
    assert page.url.endswith("/console/login")
    page.fill("input[name=email]", platform.people[role].email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/console/login'] button[type=submit]")
    page.wait_for_url(re.compile(r"/console/(institution|enterprise|agency|government)$"))


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def field_error(page, name: str) -> str:
    return page.locator(f"#f-{name} .field-error").inner_text()


def test_sign_in_refuses_a_wrong_password_with_a_message_and_switches_language(platform, browser):
    page = new_page(browser)
    page.goto(platform.url + "/console/login")
    page.fill("input[name=email]", platform.people["enterprise"].email)
    page.fill("input[name=password]", "not the password at all")
    page.click("form[action='/console/login'] button[type=submit]")
    alert = page.locator("#problem")
    assert "平台拒绝了该操作 (401" in alert.inner_text()
    assert page.locator("h1").inner_text() == "登录"
    shot(page, "sign-in-refused")

    page.click("#lang-switch")
    assert page.locator("h1").inner_text() == "Sign in"
    assert page.locator("html").get_attribute("lang") == "en"
    page.context.close()


def test_institution_lists_edits_with_field_errors_submits_and_sees_matching_demands(platform, browser):
    page = new_page(browser)
    sign_in(page, platform, "institution")
    assert page.locator("#achievements li").count() >= 3

    page.click("#new-achievement")
    page.fill("input[name=title_zh]", "钠离子电池正极材料")
    page.fill("input[name=title_en]", "Sodium-ion battery cathode material")
    page.fill("textarea[name=abstract_zh]", "低成本钠离子电池层状氧化物正极材料。")
    page.fill("input[name=keywords]", "钠离子电池, 正极")
    page.fill("input[name=ipc_codes]", "not-an-ipc")
    page.fill("input[name=trl]", "12")
    page.click("#save")
    # The service's problem+json names the fields; each message stands next to its field.
    assert page.locator("#problem").is_visible()
    assert page.locator(".field-error").count() >= 2
    assert field_error(page, "trl")
    assert field_error(page, "transfer_modes")
    assert page.locator("input[name=title_zh]").input_value() == "钠离子电池正极材料"  # nothing typed is lost
    shot(page, "institution-field-errors")

    page.fill("input[name=ipc_codes]", "H01M 4/505")
    page.fill("input[name=trl]", "4")
    page.fill("input[name=ip_records]", "CN202410555666.1")
    page.check("input[name=transfer_modes][value=exclusive_licence]")
    page.fill("input[name=asking_price]", "500,000")
    page.click("#save")
    page.wait_for_url(re.compile(r"/console/institution/a/[0-9a-f-]+\?done=saved"))
    assert page.locator("#status").inner_text() == "草稿"
    page.click("#submit-review")
    page.wait_for_url(re.compile(r"done=submitted_ok"))
    assert page.locator("#status").inner_text() == "审核中"

    # A published listing shows the demands it matches, each with why.
    page.goto(f"{platform.url}/console/institution/a/{platform.battery}")
    matches = page.locator("#matches li")
    assert matches.count() >= 1
    assert "动力电池安全性提升技术" in matches.first.inner_text()
    matches.first.locator("summary").click()
    assert matches.first.locator("details.why p").first.inner_text().strip()
    shot(page, "institution-matching-demands")
    page.context.close()


def test_enterprise_posts_a_demand_searches_in_both_languages_and_sees_its_wallet(platform, browser):
    page = new_page(browser)
    sign_in(page, platform, "enterprise")
    assert page.locator("#wallet tbody tr").count() == 1
    assert "¥50,000.00" in page.locator("#wallet").inner_text()

    page.fill("input[name=title]", "电池隔膜涂层")
    page.fill("textarea[name=problem]", "太短")
    page.fill("input[name=budget_max]", "二十万")
    page.click("#publish-demand")
    assert field_error(page, "budget_max")
    page.fill("input[name=budget_max]", "1500000")
    page.click("#publish-demand")
    assert field_error(page, "problem")  # from the matching service's validation
    page.fill("textarea[name=problem]", "需要锂电池隔膜陶瓷涂层工艺，提高隔膜耐热性和电池安全。")
    page.fill("input[name=keywords]", "隔膜, 涂层, battery separator")
    page.click("#publish-demand")
    page.wait_for_url(re.compile(r"/console/enterprise/demands/[0-9a-f-]+\?done=demand_posted"))
    platform.until("the new demand has matches", lambda: page.reload() and page.locator("#matches li").count() > 0)
    assert "Ceramic coating for battery separators" in page.locator("#matches li").first.inner_text()
    # Turning a suggestion down, with a reason, is remembered on the page.
    sensor = page.locator(f"#matches li[data-achievement='{platform.sensor}']")
    sensor.locator("select[name=reason]").select_option("not_relevant")
    sensor.locator("input[name=note]").fill("我们不做传感器")
    sensor.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"done=declined_ok"))
    declined = page.locator(f"#declined li[data-achievement='{platform.sensor}']")
    text = declined.inner_text()
    assert "柔性压力传感器" in text and "不相关" in text and "我们不做传感器" in text
    shot(page, "enterprise-demand-matches")

    page.click("a[href='/console/enterprise/catalogue']")
    page.fill("input[name=q]", "电池")
    page.click("#search")
    results = page.locator("#results li")
    assert results.count() == 2
    assert "固态锂电池" in page.locator("#results").inner_text()
    page.locator("a.facet[data-facet=transfer_mode][data-value=assignment]").click()
    assert page.locator("#results li").count() == 1
    assert "电池隔膜陶瓷涂层工艺" in page.locator("#results").inner_text()
    assert page.locator("a.facet.on").count() == 1
    shot(page, "enterprise-catalogue-zh")

    page.click("#lang-switch")
    page.click("a[href='/console/enterprise/catalogue']")
    page.fill("input[name=q]", "sensor")
    page.click("#search")
    assert page.locator("#results li").count() == 1
    assert "Flexible pressure sensor" in page.locator("#results").inner_text()
    assert page.locator("#facets h2").inner_text() == "Filters"
    page.set_viewport_size(PHONE)
    shot(page, "enterprise-catalogue-en-phone")
    page.context.close()


def test_agency_requests_a_redemption_and_a_refusal_is_explained(platform, browser):
    page = new_page(browser)
    sign_in(page, platform, "agency")
    form = {"voucher_id": platform.voucher, "enterprise_org_id": platform.people["enterprise"].org_id,
            "invoice_ref": "HT-2026-001", "category": "technology_transfer"}
    for k, v in form.items():
        page.fill(f"input[name={k}]", v)
    page.fill("input[name=amount]", "40000")
    page.fill("input[name=invoice_amount]", "50000")  # the voucher pays at most 50 % of the invoice
    page.click("#request-redemption")
    problem = page.locator("#problem")
    assert problem.is_visible()
    assert "invoice_share_exceeded" in problem.inner_text()
    assert page.locator("#redemptions").count() == 0
    shot(page, "agency-refused")

    page.fill("input[name=amount]", "20000")
    page.fill("input[name=invoice_amount]", "80000")
    page.click("#request-redemption")
    page.wait_for_url(re.compile(r"/console/agency\?done=redemption_requested"))
    rows = page.locator("#redemptions tbody tr")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-state") == "reserved"
    assert "¥20,000.00" in rows.first.inner_text()
    shot(page, "agency-redemptions")
    page.context.close()


def test_government_dashboard_charts_and_live_transfer_feed(platform, browser):
    # A service delivered and confirmed: ¥10,000 of the voucher is settled.
    r = platform.call("agency", "POST", "/api/v1/vouchers/redemptions", json={
        "voucher_id": platform.voucher, "enterprise_org_id": platform.people["enterprise"].org_id,
        "amount": {"amount": 10_000_00, "currency": "CNY"}, "invoice_amount": {"amount": 40_000_00, "currency": "CNY"},
        "invoice_ref": "HT-2026-GOV", "category": "technology_transfer"})
    platform.call("enterprise", "POST", f"/api/v1/vouchers/redemptions/{r['id']}/settle")
    page = new_page(browser)
    sign_in(page, platform, "government")
    assert page.locator("#programmes .kpi-group").count() == 1
    kpis = page.locator("#programmes dl.kpi dd").all_inner_texts()
    assert kpis == ["¥1,000,000.00", "¥50,000.00", "¥10,000.00", "¥950,000.00"]  # budget, issued, settled, remaining
    assert page.locator("#chart-budget svg rect").count() >= 3
    page.wait_for_function("document.getElementById('feed-state').className.includes('on')")

    transfer = platform.call("enterprise", "POST", "/api/v1/matching/transfers", json={
        "seller_org_id": platform.people["institution"].org_id, "buyer_org_id": platform.people["enterprise"].org_id,
        "achievement_ids": [platform.battery], "demand_id": platform.demand,
        "offer": {"mode": "exclusive_licence", "exclusive": True, "territory": "CN", "term_months": 60,
                  "price": {"amount": 750_000_00, "currency": "CNY"}}},
        headers={"Idempotency-Key": f"console-{time.time_ns()}"})
    item = page.locator("#feed li.feed-item").first
    item.wait_for(timeout=30_000)
    assert item.get_attribute("data-type") == "techbridge.matching.transfer.proposed.v1"
    assert transfer["id"][:8] in item.inner_text()
    assert "已发起" in item.inner_text() and "独占许可" in item.inner_text()
    shot(page, "government-live-feed")

    page.reload()
    assert page.locator("#transfers tbody tr").count() == 1
    assert page.locator("#chart-mode svg rect").count() == 1
    assert "新能源" in page.locator("#chart-field").inner_text()
    shot(page, "government-dashboard")
    page.set_viewport_size(PHONE)
    shot(page, "government-dashboard-phone")
    page.context.close()


def test_pages_of_another_role_and_an_ended_session_say_so(platform, browser):
    page = new_page(browser)
    sign_in(page, platform, "agency")
    page.goto(platform.url + "/console/government")
    assert page.locator("#problem").is_visible()
    assert "403" in page.locator("#problem").inner_text()
    # A token the gateway no longer accepts (here: one whose signature does not verify).
    cookie = next(c for c in page.context.cookies() if c["name"] == "tb_console")
    page.context.add_cookies([{**cookie, "value": cookie["value"][:-4] + "AAAA"}])
    page.goto(platform.url + "/console/agency")
    assert page.url.endswith("/console/login?expired=1")
    assert page.locator(".flash.warn").inner_text() == "登录已过期，请重新登录。"
    page.context.close()
