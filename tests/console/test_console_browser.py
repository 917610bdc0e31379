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
    # A second programme the agency has not applied to yet (enrolment through the console).
    p.programme2 = open_programme(p, name="2027 检验检测券", budget_yuan=500_000,
                                  categories=("testing", "technology_transfer"))["id"]


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
    page.wait_for_load_state()
    alert = page.locator("#problem")
    assert "平台拒绝了该操作 (401" in alert.inner_text()
    assert page.locator("h1").inner_text() == "登录"
    shot(page, "sign-in-refused")

    page.click("#lang-switch")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Sign in"
    assert page.locator("html").get_attribute("lang") == "en"
    page.context.close()


def test_institution_lists_edits_with_field_errors_submits_and_sees_matching_demands(platform, browser):
    page = new_page(browser)
    sign_in(page, platform, "institution")
    assert page.locator("#achievements li").count() >= 3

    page.click("#new-achievement")
    page.wait_for_load_state()
    page.fill("input[name=title_zh]", "钠离子电池正极材料")
    page.fill("input[name=title_en]", "Sodium-ion battery cathode material")
    page.fill("textarea[name=abstract_zh]", "低成本钠离子电池层状氧化物正极材料。")
    page.fill("input[name=keywords]", "钠离子电池, 正极")
    page.fill("input[name=ipc_codes]", "not-an-ipc")
    page.fill("input[name=trl]", "12")
    page.click("#save")
    page.wait_for_load_state()
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


def test_institution_requests_a_valuation_and_reads_its_report_with_the_distribution(platform, browser):
    # The valuation service learns achievements from catalog events: wait until it knows this one.
    platform.until("valuation knows the listing", lambda: platform.call(
        "institution", "POST", "/api/v1/valuation/valuations", ok=(201, 404),
        json={"achievement_id": platform.battery, "methods": ["cost"], "simulation": {"paths": 1000},
              "cost": {"items": [{"label": "earlier estimate", "amount": 100_000_000}]}}).get("valuation_id"))
    page = new_page(browser)
    sign_in(page, platform, "institution")
    page.goto(f"{platform.url}/console/institution/a/{platform.battery}")
    page.click("#valuation-link")
    page.wait_for_url(re.compile(r"/console/valuations\?achievement="))
    assert page.locator("#valuations li").count() == 1  # the earlier estimate
    page.fill("input[name=first_year_revenue]", "5,000,000")
    page.fill("input[name=growth_rate]", "10")
    page.fill("input[name=life_years]", "40")  # beyond the patent's term: the service refuses it
    page.fill("input[name=royalty_low]", "3")
    page.fill("input[name=royalty_mode]", "5")
    page.fill("input[name=royalty_high]", "8")
    page.fill("input[name=development_cost]", "2000000")
    page.select_option("select[name=paths]", "2000")
    page.click("#request-valuation")
    page.wait_for_load_state()
    assert page.locator("#problem").is_visible()
    assert "patent" in field_error(page, "life_years")
    assert page.locator("input[name=first_year_revenue]").input_value() == "5,000,000"
    shot(page, "institution-valuation-refused")

    page.fill("input[name=life_years]", "8")
    page.click("#request-valuation")
    page.wait_for_url(re.compile(r"/console/valuations/[0-9a-f-]+\?done=valuation_done"))
    low, mid, high = (page.locator(f"#v-{k}").inner_text() for k in ("low", "mid", "high"))
    as_number = lambda text: float(text.replace("¥", "").replace(",", ""))  # noqa: E731
    assert 0 < as_number(low) <= as_number(mid) <= as_number(high)
    assert page.locator("#methods tbody tr").count() == 2
    assert page.locator("#methods tr[data-method=income]").count() == 1
    assert page.locator("#chart-distribution svg rect.bin").count() >= 5
    assert page.locator("#chart-distribution svg line.marker").count() == 3
    assert page.locator("#inputs tbody tr").count() >= 3
    shot(page, "institution-valuation-report")
    pdf = page.request.get(platform.url + page.locator("#pdf").get_attribute("href"))
    assert pdf.status == 200 and pdf.body()[:4] == b"%PDF"
    page.set_viewport_size(PHONE)
    shot(page, "institution-valuation-report-phone")
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
    page.wait_for_load_state()
    assert field_error(page, "budget_max")
    page.fill("input[name=budget_max]", "1500000")
    page.click("#publish-demand")
    page.wait_for_load_state()
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
    page.wait_for_load_state()
    page.fill("input[name=q]", "电池")
    page.click("#search")
    page.wait_for_load_state()
    results = page.locator("#results li")
    assert results.count() == 2
    assert "固态锂电池" in page.locator("#results").inner_text()
    page.locator("a.facet[data-facet=transfer_mode][data-value=assignment]").click()
    page.wait_for_load_state()
    assert page.locator("#results li").count() == 1
    assert "电池隔膜陶瓷涂层工艺" in page.locator("#results").inner_text()
    assert page.locator("a.facet.on").count() == 1
    shot(page, "enterprise-catalogue-zh")

    page.click("#lang-switch")
    page.wait_for_load_state()
    page.click("a[href='/console/enterprise/catalogue']")
    page.wait_for_load_state()
    page.fill("input[name=q]", "sensor")
    page.click("#search")
    page.wait_for_load_state()
    assert page.locator("#results li").count() == 1
    assert "Flexible pressure sensor" in page.locator("#results").inner_text()
    assert page.locator("#facets h2").inner_text() == "Filters"
    page.set_viewport_size(PHONE)
    shot(page, "enterprise-catalogue-en-phone")
    page.context.close()


def test_deal_room_proposal_counter_offer_stale_signature_and_both_signing(platform, browser):
    buyer = new_page(browser)
    sign_in(buyer, platform, "enterprise")
    buyer.goto(f"{platform.url}/console/enterprise/demands/{platform.demand}")
    buyer.locator(f"#matches li[data-achievement='{platform.battery}'] a.propose").click()
    buyer.wait_for_url(re.compile(r"/console/deals/new\?"))
    assert "高安全固态锂电池电解质" in buyer.locator("main").inner_text()
    buyer.select_option("select[name=mode]", "assignment")
    buyer.uncheck("input[name=exclusive]")
    buyer.fill("input[name=price]", "700,000")
    buyer.click("#propose")
    buyer.wait_for_load_state()
    assert buyer.locator("#problem").is_visible()
    assert "exclusive" in field_error(buyer, "exclusive")  # an assignment is exclusive by nature
    buyer.select_option("select[name=mode]", "exclusive_licence")
    buyer.check("input[name=exclusive]")
    buyer.fill("input[name=term_months]", "60")
    buyer.click("#propose")
    buyer.wait_for_url(re.compile(r"/console/deals/[0-9a-f-]+\?done=deal_proposed"))
    deal_url = buyer.url.split("?")[0]
    assert buyer.locator("#deal-status").inner_text() == "已发起"
    assert buyer.locator("#history li.offer").count() == 1
    assert "¥700,000.00" in buyer.locator("#current-offer").inner_text()

    seller = new_page(browser)
    sign_in(seller, platform, "institution")
    seller.click("#nav-deals")
    seller.wait_for_url(re.compile(r"/console/deals$"))
    card = seller.locator("#deals li").first
    assert card.locator(".waiting").count() == 1
    card.locator("a").first.click()
    seller.wait_for_url(re.compile(r"/console/deals/[0-9a-f-]+$"))
    seller.fill("input[name=price]", "780000")
    seller.fill("input[name=royalty_rate]", "2")
    seller.fill("input[name=royalty_base]", "净销售额")
    seller.fill("textarea[name=note]", "含两年技术支持")
    seller.click("#counter")
    seller.wait_for_url(re.compile(r"done=counter_offered"))
    offers = seller.locator("#history li.offer")
    assert offers.count() == 2
    assert offers.first.get_attribute("data-version") == "2" and "current" in offers.first.get_attribute("class")
    assert "¥780,000.00" in offers.first.inner_text() and "2%" in offers.first.inner_text()
    assert "¥700,000.00" in offers.nth(1).inner_text()  # the first offer stays as it was
    changed = offers.first.locator(".tag").all_inner_texts()
    assert "价格" in changed and "提成" in changed
    seller.click("#sign")
    seller.wait_for_url(re.compile(r"done=signed_ok"))
    assert "未签署" in seller.locator("#signatures").inner_text()  # the buyer has not signed yet
    shot(seller, "deal-room-counter-offer")

    # The buyer's page still shows the first offer: signing it is refused, with the reason.
    buyer.click("#sign")
    buyer.wait_for_load_state()
    assert "stale_offer" in buyer.locator("#problem").inner_text()
    shot(buyer, "deal-room-stale-signature-refused")
    buyer.goto(deal_url)
    buyer.click("#sign")
    buyer.wait_for_url(re.compile(r"done=signed_ok"))
    assert buyer.locator("#deal-status").inner_text() == "公示中"  # a private-agreement price is noticed first
    assert buyer.locator("#sign").count() == 0 and buyer.locator("#counter").count() == 0
    buyer.click("#lang-switch")
    buyer.wait_for_load_state()
    buyer.set_viewport_size(PHONE)
    assert buyer.locator("#deal-status").inner_text() == "In public notice"
    shot(buyer, "deal-room-signed-en-phone")
    buyer.context.close()
    seller.context.close()


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
    page.wait_for_load_state()
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

    # Enrolment: already approved in the first programme, applies to serve the second one.
    assert page.locator(f"#enrolments li[data-programme='{platform.programme}']").get_attribute("data-state") == \
        "approved"
    other = page.locator(f"#enrolments li[data-programme='{platform.programme2}']")
    assert other.get_attribute("data-state") == "none"
    other.locator("button[type=submit]").click()  # no category chosen: the service refuses
    page.wait_for_load_state()
    assert page.locator("#problem").is_visible()
    other = page.locator(f"#enrolments li[data-programme='{platform.programme2}']")
    other.locator("input[name=categories][value=testing]").check()
    other.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"done=enrolled_ok"))
    assert page.locator(f"#enrolments li[data-programme='{platform.programme2}']").get_attribute("data-state") == \
        "applied"
    shot(page, "agency-enrolment")
    page.context.close()


def test_enterprise_reads_a_voucher_statement_and_applies_for_another_voucher(platform, browser):
    page = new_page(browser)
    sign_in(page, platform, "enterprise")
    page.click(f"#wallet a[href='/console/enterprise/vouchers/{platform.voucher}']")
    page.wait_for_url(re.compile(r"/console/enterprise/vouchers/"))
    assert page.locator("#available").inner_text() == "¥30,000.00"
    assert page.locator("#reserved").inner_text() == "¥20,000.00"
    rows = page.locator("#statement tbody tr")
    assert [rows.nth(i).get_attribute("data-kind") for i in range(rows.count())] == ["reserve", "issue"]
    assert "¥50,000.00" in rows.nth(1).inner_text() and "-¥20,000.00" in rows.first.inner_text()
    # The agency's request waits for the enterprise to confirm the service was delivered.
    request = page.locator("#voucher-redemptions li[data-state=reserved]")
    assert request.count() == 1 and "HT-2026-001" in request.inner_text()
    request.locator("button.settle").click()
    page.wait_for_url(re.compile(r"done=settled_ok"))
    assert page.locator("#reserved").inner_text() == "¥0.00"
    assert page.locator("#voucher-redemptions li[data-state=settled]").count() == 1
    assert page.locator("#statement tbody tr").first.get_attribute("data-kind") == "settle"
    shot(page, "enterprise-voucher-statement")

    page.goto(platform.url + "/console/enterprise")
    form = page.locator(f"form.apply-voucher[data-programme='{platform.programme}']")
    form.locator("input[name=purpose]").fill("电池隔膜涂层工艺的技术服务")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"done=applied_ok"))
    assert page.locator("#applications li[data-state=submitted]").count() == 1
    page.context.close()


def test_government_reviews_voucher_and_agency_applications(platform, browser):
    page = new_page(browser)
    sign_in(page, platform, "government")
    page.click("#nav-reviews")
    page.wait_for_url(re.compile(r"/console/government/reviews$"))
    apps = page.locator("#voucher-applications li[data-application]")
    assert apps.count() == 1
    assert "示范科技有限公司" in apps.first.inner_text() and "¥50,000.00" in apps.first.inner_text()
    agencies = page.locator("#agency-applications li[data-agency]")
    assert agencies.count() == 1 and "testing" in agencies.first.inner_text()
    shot(page, "government-reviews")
    apps.first.locator("button.reject").click()  # rejecting needs a reason: the service says so
    page.wait_for_load_state()
    assert page.locator("#problem").is_visible()
    page.locator("#voucher-applications li[data-application] button.approve").first.click()
    page.wait_for_url(re.compile(r"done=decided_ok"))
    page.locator("#agency-applications li[data-agency] input[name=reason]").fill("资质齐全")
    page.locator("#agency-applications li[data-agency] button.approve").click()
    page.wait_for_url(re.compile(r"done=decided_ok"))
    assert page.locator("#voucher-applications li[data-application]").count() == 0
    assert page.locator("#agency-applications li[data-agency]").count() == 0
    assert platform.call("enterprise", "GET", "/api/v1/vouchers/vouchers")["items"].__len__() == 2
    page.context.close()


def test_government_dashboard_charts_and_live_transfer_feed(platform, browser):
    # Another service delivered and confirmed: with the ¥20,000 confirmed in the console, ¥30,000 is settled.
    r = platform.call("agency", "POST", "/api/v1/vouchers/redemptions", json={
        "voucher_id": platform.voucher, "enterprise_org_id": platform.people["enterprise"].org_id,
        "amount": {"amount": 10_000_00, "currency": "CNY"}, "invoice_amount": {"amount": 40_000_00, "currency": "CNY"},
        "invoice_ref": "HT-2026-GOV", "category": "technology_transfer"})
    platform.call("enterprise", "POST", f"/api/v1/vouchers/redemptions/{r['id']}/settle")
    page = new_page(browser)
    sign_in(page, platform, "government")
    assert page.locator("#programmes .kpi-group").count() == 2
    group = page.locator("#programmes .kpi-group", has_text="2026 科技创新券")
    kpis = group.locator("dl.kpi dd").all_inner_texts()
    assert kpis == ["¥1,000,000.00", "¥100,000.00", "¥30,000.00", "¥900,000.00"]  # budget, issued, settled, remaining
    assert page.locator("#chart-budget svg rect").count() >= 3
    over_time = page.locator(f"figure.chart-over-time[data-programme='{platform.programme}'] svg path")
    assert over_time.count() == 3  # budget, issued and settled, each a step line over time
    assert "¥30,000" in over_time.nth(2).locator("title").text_content()  # settled ends where the dashboard says
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
    assert page.locator("#transfers tbody tr").count() == 2  # the deal-room one and this one
    assert page.locator("#chart-mode svg rect").count() == 1
    assert "新能源" in page.locator("#chart-field").inner_text()
    top = page.locator("#top-institutions tbody tr")
    assert top.count() == 1
    assert top.first.locator("td").all_inner_texts()[:2] == ["示范大学", "2"]  # both deals sold by the university
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
    page.goto(platform.url + "/console/government/reviews")
    assert "403" in page.locator("#problem").inner_text()
    # A deal that does not exist (or is not ours): the API's 404, said on the page.
    page.goto(platform.url + "/console/deals/00000000-0000-0000-0000-000000000000")
    assert "404" in page.locator("#problem").inner_text()
    assert page.locator("main a[href='/console/agency']").count() == 1  # and the way back
    # A token the gateway no longer accepts (here: one whose signature does not verify).
    cookie = next(c for c in page.context.cookies() if c["name"] == "tb_console")
    page.context.add_cookies([{**cookie, "value": cookie["value"][:-4] + "AAAA"}])
    page.goto(platform.url + "/console/agency")
    assert page.url.endswith("/console/login?expired=1")
    assert page.locator(".flash.warn").inner_text() == "登录已过期，请重新登录。"
    page.context.close()
