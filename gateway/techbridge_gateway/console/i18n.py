"""Every word the console shows, in Chinese and English. Pure data and lookups, no I/O.

A missing key shows the key itself (so a gap is visible, never a blank); `tests/console` checks
that both languages have the same keys.
"""

from __future__ import annotations

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"

TEXT: dict[str, tuple[str, str]] = {
    # frame
    "app": ("科技成果转化平台", "Techbridge"),
    "console": ("工作台", "Console"),
    "switch_lang": ("English", "中文"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "email": ("邮箱", "E-mail"),
    "password": ("密码", "Password"),
    "signed_in_as": ("当前角色", "Signed in as"),
    "session_expired": ("登录已过期，请重新登录。", "Your session has ended; please sign in again."),
    "refused": ("平台拒绝了该操作", "The platform refused this"),
    "not_allowed": ("您的角色不能使用此页面。", "Your role cannot use this page."),
    "no_role_page": ("此账户没有对应的工作台页面。", "There is no console page for this account's roles."),
    "saved": ("已保存。", "Saved."),
    "nothing_yet": ("暂无内容。", "Nothing here yet."),
    "back": ("返回", "Back"),
    "details": ("详情", "Details"),
    "status": ("状态", "Status"),
    "save": ("保存", "Save"),
    "search": ("搜索", "Search"),
    "created": ("创建时间", "Created"),
    "all": ("全部", "All"),
    "fix_fields": ("请更正标出的字段。", "Please correct the marked fields."),
    # roles
    "role_institution": ("高校院所", "Institution"),
    "role_enterprise": ("企业", "Enterprise"),
    "role_agency": ("服务机构", "Agency"),
    "role_government": ("政府主管部门", "Government"),
    "role_admin": ("管理员", "Administrator"),
    "role_partner": ("合作方", "Partner"),
    # institution
    "my_achievements": ("我的科技成果", "My achievements"),
    "new_achievement": ("新建成果", "New achievement"),
    "edit_achievement": ("编辑成果", "Edit achievement"),
    "title_zh": ("中文名称", "Chinese title"),
    "title_en": ("英文名称", "English title"),
    "abstract_zh": ("中文简介", "Chinese abstract"),
    "abstract_en": ("英文简介", "English abstract"),
    "keywords": ("关键词（逗号分隔）", "Keywords (comma-separated)"),
    "fields": ("技术领域（逗号分隔）", "Fields (comma-separated)"),
    "ipc_codes": ("IPC 分类号（逗号分隔）", "IPC codes (comma-separated)"),
    "ip_type": ("成果类型", "Kind"),
    "ip_record": ("专利/登记号", "Patent or registration number"),
    "trl": ("技术成熟度（1-9）", "Readiness level (TRL 1-9)"),
    "transfer_modes": ("转化方式", "Transfer modes"),
    "asking_price": ("挂牌价（元）", "Asking price (CNY)"),
    "negotiable": ("价格面议", "Price negotiable"),
    "region": ("地区", "Region"),
    "submit_review": ("提交审核", "Submit for review"),
    "submitted_ok": ("已提交审核。", "Submitted for review."),
    "matching_demands": ("匹配的企业需求", "Matching demands"),
    "score": ("匹配度", "Fit"),
    "why": ("匹配理由", "Why it matches"),
    "matched_terms": ("命中词", "Matched words"),
    "shared_ipc": ("共同 IPC", "Shared IPC"),
    "constraints_met": ("满足条件", "Conditions met"),
    "constraints_missed": ("未满足条件", "Conditions missed"),
    "matches_after_publish": ("成果发布后才会匹配需求。", "Demands are matched once the achievement is published."),
    "reason": ("原因", "Reason"),
    # enterprise
    "my_demands": ("我的技术需求", "My demands"),
    "post_demand": ("发布技术需求", "Post a demand"),
    "demand_title": ("需求名称", "Title"),
    "problem": ("技术问题描述", "The technical problem"),
    "budget_max": ("预算上限（元）", "Budget up to (CNY)"),
    "deadline": ("截止日期", "Deadline"),
    "min_trl": ("最低成熟度", "Lowest TRL"),
    "publish": ("发布", "Publish"),
    "demand_posted": ("需求已发布。", "Demand published."),
    "matches": ("匹配成果", "Matching achievements"),
    "decline": ("不感兴趣", "Decline"),
    "declined": ("已拒绝", "Declined"),
    "declined_ok": ("已记录拒绝原因，之后的推荐会参考它。", "Declined; later suggestions take the reason into account."),
    "note": ("备注", "Note"),
    "catalogue": ("成果库", "Catalogue"),
    "query": ("关键词（中文或英文）", "Words (Chinese or English)"),
    "trl_min": ("成熟度不低于", "TRL at least"),
    "price_max": ("价格不高于（元）", "Price at most (CNY)"),
    "results": ("条结果", "results"),
    "facets": ("筛选", "Filters"),
    "clear_filters": ("清除筛选", "Clear filters"),
    "institution": ("机构", "Institution"),
    "ipc_class": ("IPC 大类", "IPC class"),
    "transfer_mode": ("转化方式", "Transfer mode"),
    "wallet": ("创新券钱包", "Voucher wallet"),
    "face_value": ("面额", "Face value"),
    "available": ("可用", "Available"),
    "reserved": ("冻结中", "Reserved"),
    "expires": ("到期", "Expires"),
    "more": ("下一页", "Next page"),
    "price": ("价格", "Price"),
    "negotiable_short": ("面议", "negotiable"),
    "owner": ("持有机构", "Owner"),
    # agency
    "redemptions": ("兑付申请", "Redemption requests"),
    "new_redemption": ("申请兑付", "Request a redemption"),
    "voucher_id": ("创新券编号", "Voucher id"),
    "enterprise_org_id": ("企业编号", "Enterprise id"),
    "amount": ("兑付金额（元）", "Amount covered (CNY)"),
    "invoice_amount": ("合同/发票金额（元）", "Invoice total (CNY)"),
    "invoice_ref": ("合同/发票号", "Invoice or contract number"),
    "category": ("服务类别", "Service category"),
    "redemption_requested": ("兑付申请已提交。", "Redemption requested."),
    # government
    "dashboard": ("政策执行看板", "Programme dashboard"),
    "programmes": ("创新券计划", "Voucher programmes"),
    "budget": ("预算", "Budget"),
    "issued": ("已发放", "Issued"),
    "settled": ("已兑付", "Settled"),
    "remaining": ("剩余", "Remaining"),
    "ledger_ok": ("账本校验通过", "Ledger checks out"),
    "ledger_bad": ("账本校验发现问题", "Ledger check found problems"),
    "budget_chart": ("预算、发放与兑付", "Budget, issued and settled"),
    "transfers_by_mode": ("按转化方式统计的交易", "Transfers by mode"),
    "transfers_by_month": ("按月份统计的交易", "Transfers by month"),
    "transfers_by_field": ("按技术领域统计的交易", "Transfers by field"),
    "transfers": ("成果转化交易", "Transfers"),
    "live_feed": ("实时交易动态", "Live transfer feed"),
    "feed_waiting": ("等待新的交易事件…", "Waiting for transfer events…"),
    "feed_ended": ("实时动态已断开，请刷新页面。", "The live feed stopped; reload the page."),
    "no_data": ("暂无数据", "No data yet"),
}

LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "ip_type": {
        "invention_patent": ("发明专利", "Invention patent"), "utility_model": ("实用新型", "Utility model"),
        "software_copyright": ("软件著作权", "Software copyright"), "ic_layout": ("集成电路布图", "IC layout"),
        "plant_variety": ("植物新品种", "Plant variety"), "know_how": ("技术秘密", "Know-how"),
        "prototype": ("样机", "Prototype"),
    },
    "transfer_mode": {
        "assignment": ("转让", "Assignment"), "exclusive_licence": ("独占许可", "Exclusive licence"),
        "non_exclusive_licence": ("普通许可", "Non-exclusive licence"), "equity": ("作价入股", "Equity"),
        "co_development": ("合作开发", "Co-development"), "technical_service": ("技术服务", "Technical service"),
    },
    "status": {
        "draft": ("草稿", "Draft"), "submitted": ("审核中", "Under review"), "returned": ("已退回", "Returned"),
        "rejected": ("未通过", "Rejected"), "published": ("已发布", "Published"),
        "under_negotiation": ("洽谈中", "Under negotiation"), "transferred": ("已转化", "Transferred"),
        "withdrawn": ("已撤回", "Withdrawn"), "expired": ("已过期", "Expired"), "closed": ("已关闭", "Closed"),
        "fulfilled": ("已满足", "Fulfilled"), "reserved": ("待兑付", "Reserved"), "settled": ("已结算", "Settled"),
        "paid": ("已支付", "Paid"), "voided": ("已撤销", "Voided"), "active": ("有效", "Active"),
        "frozen": ("已冻结", "Frozen"), "revoked": ("已收回", "Revoked"), "open": ("进行中", "Open"),
        "proposed": ("已发起", "Proposed"), "negotiating": ("谈判中", "Negotiating"), "signed": ("已签约", "Signed"),
        "in_notice": ("公示中", "In public notice"), "completed": ("已完成", "Completed"),
        "cancelled": ("已取消", "Cancelled"),
    },
}
LABELS["decline_reason"] = {
    "not_relevant": ("不相关", "Not relevant"), "trl_too_low": ("成熟度不够", "Readiness too low"),
    "price": ("价格不合适", "Price"), "ip_status": ("知识产权状态", "IP status"), "timing": ("时机不合适", "Timing"),
    "already_solved": ("问题已解决", "Already solved"), "region": ("地区不合适", "Region"), "other": ("其他", "Other"),
}


def t(lang: str, key: str) -> str:
    pair = TEXT.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "zh" else pair[1]


def label(lang: str, kind: str, value: object) -> str:
    pair = LABELS.get(kind, {}).get(str(value))
    if pair is None:
        return str(value)
    return pair[0] if lang == "zh" else pair[1]


def pick_lang(query: str | None, cookie: str | None, accept: str | None) -> str:
    for candidate in (query, cookie):
        if candidate in LANGS:
            return candidate
    if accept and accept.lower().startswith("en"):
        return "en"
    return DEFAULT_LANG
