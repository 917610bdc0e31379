"""Load a demo world into a running platform through its public API (`make up` first).

    python deploy/local/seed.py                      # http://127.0.0.1:8000, dev-admin from .data/dev-clients.json
    python deploy/local/seed.py --if-empty           # only when no organisation is registered yet
    python deploy/local/seed.py --achievements 60    # a smaller world

What it creates, all in Chinese and English: universities and institutes, enterprises, an agency
and a government office (each an organisation in the catalog and an API client at the gateway);
a few hundred achievements across ten fields generated from templates, submitted and published;
demands from the enterprises; an innovation-voucher programme with an approved agency and an
issued voucher; and a few completed licence deals.

Running it again changes nothing: organisations have fixed ids, achievements and demands are
looked up by title before they are created, money-moving calls carry fixed Idempotency-Keys,
and the API clients it made are remembered in <data dir>/seed-clients.json (mode 600).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("TECHBRIDGE_DATA_DIR", ROOT / ".data"))
NS = uuid.UUID("0b7e4c1a-5d1e-4c55-9a57-1f0c7d9e2a31")  # seed ids: uuid5(NS, name)
CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CODE_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def sid(name: str) -> str:
    return str(uuid.uuid5(NS, name))


def credit_code(name: str) -> str:
    """A unified social credit code with a valid check character (GB 32100-2015)."""
    digest = uuid.uuid5(NS, "code:" + name).int
    body = "91310" + "".join(CODE_ALPHABET[(digest >> (5 * i)) % 31] for i in range(12))
    total = sum(CODE_ALPHABET.index(c) * w for c, w in zip(body, CODE_WEIGHTS, strict=True))
    return body + CODE_ALPHABET[(31 - total % 31) % 31]


def cny(yuan: int) -> dict:
    return {"amount": yuan * 100, "currency": "CNY"}


# --- the world ------------------------------------------------------------------------------

INSTITUTIONS = [
    ("沪东理工大学", "Hudong University of Technology", "university", "Shanghai/Yangpu"),
    ("浦江交通大学", "Pujiang Jiaotong University", "university", "Shanghai/Minhang"),
    ("申城师范大学", "Shencheng Normal University", "university", "Shanghai/Xuhui"),
    ("长三角材料研究院", "Yangtze Delta Institute of Materials", "institute", "Shanghai/Jiading"),
    ("东海海洋大学", "East Sea Ocean University", "university", "Shanghai/Pudong"),
    ("临港智能制造研究所", "Lingang Institute of Intelligent Manufacturing", "institute", "Shanghai/Pudong"),
    ("崇明农业科学院", "Chongming Academy of Agricultural Sciences", "institute", "Shanghai/Chongming"),
    ("松江医学院", "Songjiang Medical College", "university", "Shanghai/Songjiang"),
]
ENTERPRISES = [
    ("浦东储能科技有限公司", "Pudong Energy Storage Technology Co., Ltd.", "Shanghai/Pudong", 120, 30_000_000),
    ("张江生物医药有限公司", "Zhangjiang Biopharma Co., Ltd.", "Shanghai/Pudong", 260, 38_000_000),
    ("嘉定汽车电子有限公司", "Jiading Automotive Electronics Co., Ltd.", "Shanghai/Jiading", 90, 12_000_000),
    ("金山新材料有限公司", "Jinshan New Materials Co., Ltd.", "Shanghai/Jinshan", 45, 6_000_000),
    ("闵行机器人有限公司", "Minhang Robotics Co., Ltd.", "Shanghai/Minhang", 150, 22_000_000),
    ("青浦环保工程有限公司", "Qingpu Environmental Engineering Co., Ltd.", "Shanghai/Qingpu", 70, 9_000_000),
]
AGENCY = ("上海技术转移服务中心", "Shanghai Technology Transfer Service Centre", "agency", "Shanghai/Xuhui")
GOVERNMENT = ("浦东新区科技和经济委员会", "Pudong Science, Technology and Economy Commission", "government",
              "Shanghai/Pudong")

# field: (zh, en, IPC, [(topic zh, topic en, keyword)...])
FIELDS = [
    ("新能源", "new energy", "H01M 10/052", [("锂电池隔膜", "lithium battery separator", "separator"),
                                          ("固态电解质", "solid-state electrolyte", "solid electrolyte"),
                                          ("钠离子电池正极", "sodium-ion battery cathode", "sodium-ion"),
                                          ("钙钛矿太阳能电池", "perovskite solar cell", "perovskite")]),
    ("生物医药", "biomedicine", "A61K 39/395", [("单克隆抗体", "monoclonal antibody", "antibody"),
                                            ("mRNA递送载体", "mRNA delivery vehicle", "lipid nanoparticle"),
                                            ("细胞培养基", "cell culture medium", "cell culture"),
                                            ("快速核酸检测", "rapid nucleic acid test", "diagnostics")]),
    ("智能制造", "intelligent manufacturing", "B25J 9/16", [("工业机器人视觉定位", "robot vision positioning", "machine vision"),
                                                       ("数控机床误差补偿", "CNC machine error compensation", "CNC"),
                                                       ("协作机器人力控", "collaborative robot force control", "cobot"),
                                                       ("增材制造路径规划", "additive manufacturing path planning", "3D printing")]),
    ("新材料", "advanced materials", "C08L 63/00", [("碳纤维复合材料", "carbon fibre composite", "carbon fibre"),
                                                ("石墨烯导热膜", "graphene thermal film", "graphene"),
                                                ("可降解塑料", "biodegradable plastic", "PLA"),
                                                ("高温合金涂层", "superalloy coating", "thermal barrier")]),
    ("电子信息", "electronics and information", "H01L 29/78", [("氮化镓功率器件", "GaN power device", "GaN"),
                                                          ("毫米波天线阵列", "millimetre-wave antenna array", "antenna"),
                                                          ("低功耗物联网芯片", "low-power IoT chip", "IoT"),
                                                          ("存算一体芯片", "compute-in-memory chip", "in-memory computing")]),
    ("环境保护", "environmental protection", "C02F 3/30", [("污水脱氮工艺", "wastewater nitrogen removal", "denitrification"),
                                                      ("VOCs催化燃烧", "VOC catalytic combustion", "VOC"),
                                                      ("土壤重金属修复", "heavy-metal soil remediation", "remediation"),
                                                      ("污泥资源化", "sludge valorisation", "sludge")]),
    ("现代农业", "modern agriculture", "A01H 6/46", [("抗倒伏水稻品种", "lodging-resistant rice variety", "rice"),
                                               ("设施农业环境控制", "greenhouse climate control", "greenhouse"),
                                               ("生物农药", "biopesticide", "biopesticide"),
                                               ("水产养殖水质监测", "aquaculture water monitoring", "aquaculture")]),
    ("海洋工程", "marine engineering", "B63B 35/44", [("海上风电基础防腐", "offshore wind foundation anticorrosion", "corrosion"),
                                                ("水下机器人导航", "underwater robot navigation", "AUV"),
                                                ("海水淡化膜", "seawater desalination membrane", "desalination"),
                                                ("船舶减阻涂层", "ship drag-reduction coating", "antifouling")]),
    ("人工智能", "artificial intelligence", "G06N 3/08", [("医学影像分割", "medical image segmentation", "segmentation"),
                                                     ("工业缺陷检测", "industrial defect detection", "defect detection"),
                                                     ("中文文本纠错", "Chinese text error correction", "NLP"),
                                                     ("交通流量预测", "traffic flow forecasting", "forecasting")]),
    ("节能建筑", "energy-efficient buildings", "E04B 1/76", [("相变储能墙体", "phase-change storage wall", "phase change"),
                                                        ("光伏建筑一体化", "building-integrated photovoltaics", "BIPV"),
                                                        ("智能照明控制", "smart lighting control", "lighting"),
                                                        ("低碳混凝土", "low-carbon concrete", "concrete")]),
]
VARIANTS = [
    ("一种{t}及其制备方法", "{T} and its preparation method", "invention_patent", 6),
    ("高可靠性{t}装置", "High-reliability {t} device", "utility_model", 5),
    ("{t}控制软件", "{T} control software", "software_copyright", 7),
    ("{t}中试工艺包", "{T} pilot-scale process package", "know_how", 4),
    ("{t}工程样机", "{T} engineering prototype", "prototype", 6),
    ("低成本{t}技术", "Low-cost {t} technology", "invention_patent", 5),
    ("{t}在线监测系统", "Online monitoring system for {t}", "invention_patent", 7),
    ("面向量产的{t}方案", "{T} for volume production", "invention_patent", 8),
]
MODES = {"invention_patent": ["assignment", "exclusive_licence", "non_exclusive_licence"],
         "utility_model": ["assignment", "non_exclusive_licence"],
         "software_copyright": ["non_exclusive_licence", "technical_service"],
         "know_how": ["technical_service", "co_development"],
         "prototype": ["co_development", "equity", "technical_service"]}


def achievements(total: int) -> list[tuple[int, dict]]:
    """(institution index, achievement body) for `total` distinct achievements."""
    combos = [(f, t, v) for v in VARIANTS for f in FIELDS for t in f[3]]
    out = []
    for n, ((fzh, fen, ipc, _), (tzh, ten, kw), (vzh, ven, ip_type, trl)) in enumerate(itertools.islice(
            itertools.cycle(combos), total)):
        round_ = n // len(combos)
        suffix_zh, suffix_en = ("", "") if round_ == 0 else (f"（第{round_ + 1}代）", f" (generation {round_ + 1})")
        title_en = ven.format(t=ten, T=ten[0].upper() + ten[1:]) + suffix_en
        price = 200_000 + (n * 7919) % 40 * 100_000
        patented = ip_type in ("invention_patent", "utility_model")
        year = 2019 + n % 6
        body = {
            "title_zh": vzh.format(t=tzh) + suffix_zh,
            "title_en": title_en,
            "abstract_zh": f"本成果属于{fzh}领域，围绕{tzh}提出了新的技术方案，已完成技术成熟度{trl}级验证，可用于产业化推广。",
            "abstract_en": f"A {fen} result on {ten}: a new technical approach validated to technology readiness "
                           f"level {trl}, ready for industrial uptake.",
            "confidential_details": f"Process parameters and test data for {ten}, available to signed partners.",
            "keywords": [kw, tzh, ten],
            "fields": [fzh, fen],
            "ipc_codes": [ipc],
            "ip_type": ip_type,
            "trl": trl,
            "transfer_modes": MODES[ip_type],
            "asking_price": cny(price),
            "negotiable": n % 3 != 0,
            "region": INSTITUTIONS[n % len(INSTITUTIONS)][3],
            "ip_records": [{
                "number": f"CN{year}{10_000_000 + n:08d}.{n % 10}", "kind": ip_type,
                "filing_date": f"{year}-0{1 + n % 9}-15", "grant_date": f"{year + 1}-0{1 + n % 9}-20" if patented else None,
                "legal_status": "granted" if patented else "registered", "ipc_codes": [ipc]}]
            if ip_type in ("invention_patent", "utility_model", "software_copyright") else [],
            "inventors": [{"name": ["张伟", "王芳", "李娜", "刘洋", "陈静"][n % 5], "role": "lead inventor"}],
            "co_owners": [],
        }
        if ip_type == "software_copyright":
            body["ip_records"][0].update(grant_date=None, legal_status="registered")
        out.append((n % len(INSTITUTIONS), body))
    return out


DEMANDS = [
    (0, "锂电池高温安全隔膜需求 / Safer battery separators", "Our lithium-ion cells short-circuit when the separator "
     "shrinks at high temperature; we look for a ceramic-coated separator we can license.", ["H01M 50/40"], 5),
    (0, "固态电池电解质 / Solid electrolyte for our next cells", "We need a sulfide or oxide solid-state electrolyte "
     "with high ionic conductivity for all-solid-state lithium batteries.", ["H01M 10/0562"], 4),
    (1, "抗体药物工艺开发 / Antibody process development", "We want a monoclonal antibody expression and purification "
     "process with higher titre for a biosimilar programme.", ["A61K 39/395"], 5),
    (2, "车规级氮化镓器件 / Automotive GaN power devices", "We look for GaN power transistors and packaging for "
     "on-board chargers in electric vehicles.", ["H01L 29/78"], 6),
    (3, "轻量化碳纤维部件 / Lightweight carbon fibre parts", "We need a low-cost carbon fibre composite process for "
     "lightweight automotive structural parts.", ["C08L 63/00"], 5),
    (4, "机器人视觉抓取 / Vision-guided robot picking", "Our assembly lines need machine vision that locates parts for "
     "robot arms to pick, robust to reflections.", ["B25J 9/16", "G06T 7/73"], 6),
    (5, "工业园区污水脱氮 / Nitrogen removal for an industrial park", "We operate a wastewater plant and need a "
     "low-energy denitrification process for high-nitrogen effluent.", ["C02F 3/30"], 5),
    (5, "VOCs 治理 / VOC abatement", "We need catalytic combustion technology to treat volatile organic compounds "
     "from coating workshops.", [], 6),
]
DEALS = 3  # completed licence deals between enterprises and institutions


# --- the client ---------------------------------------------------------------------------------

class Api:
    def __init__(self, base: str, client_id: str, secret: str):
        self.http = httpx.Client(base_url=base, timeout=120)
        self.client_id, self.secret = client_id, secret
        self._token, self._until = "", 0.0

    def token(self) -> str:
        if time.monotonic() > self._until - 60:
            r = self.http.post("/auth/token", data={"grant_type": "client_credentials"},
                               auth=(self.client_id, self.secret))
            if r.status_code != 200:
                raise PermissionError(f"{self.client_id}: {r.status_code} {r.text}")
            self._token, self._until = r.json()["access_token"], time.monotonic() + r.json()["expires_in"]
        return self._token

    def call(self, method: str, path: str, *, ok=(200, 201), key: str | None = None, retry_s: float = 0,
             **kw) -> httpx.Response:
        deadline = time.monotonic() + retry_s
        busy_until = time.monotonic() + 120  # a service restarting or a rate limit: wait, but not forever
        while True:
            headers = {"Authorization": f"Bearer {self.token()}", **kw.pop("headers", {})}
            if key:
                headers["Idempotency-Key"] = key
            r = self.http.request(method, path, headers=headers, **kw)
            if r.status_code == 429 or r.status_code >= 500 or (retry_s and r.status_code not in ok):
                if time.monotonic() < deadline or (r.status_code in (429, 503) and time.monotonic() < busy_until):
                    time.sleep(float(r.headers.get("Retry-After", "0.5") or 0.5))
                    continue
            if r.status_code not in ok:
                raise RuntimeError(f"{method} {path} -> {r.status_code}: {r.text[:500]}")
            return r

    def get(self, path: str, **kw) -> dict:
        return self.call("GET", path, **kw).json()

    def post(self, path: str, **kw) -> dict:
        return self.call("POST", path, **kw).json()

    def pages(self, path: str, params: dict) -> list[dict]:
        items, cursor = [], None
        while True:
            page = self.get(path, params={**params, "limit": 100, **({"cursor": cursor} if cursor else {})})
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items


class Seeder:
    def __init__(self, base: str, admin: Api, clients_file: Path, say=print):
        self.base, self.admin, self.clients_file, self.say = base, admin, clients_file, say
        self.clients = json.loads(clients_file.read_text()) if clients_file.exists() else {}
        self.counts: dict[str, int] = {}

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def org(self, name: str, name_en: str, kind: str, region: str, roles: list[str], **extra) -> tuple[str, Api]:
        org_id = sid("org:" + name_en)
        r = self.admin.call("GET", f"/api/v1/catalog/organisations/{org_id}", ok=(200, 404))
        if r.status_code == 404:
            self.admin.post("/api/v1/catalog/organisations", json={
                "organisation_id": org_id, "name": name, "name_en": name_en, "kind": kind, "region": region,
                "credit_code": credit_code(name_en), **extra})
            self.count("organisations")
        return org_id, self.client_for(org_id, name_en, roles)

    def client_for(self, org_id: str, name: str, roles: list[str]) -> Api:
        saved = self.clients.get(org_id)
        if saved:
            api = Api(self.base, saved["client_id"], saved["client_secret"])
            try:
                api.token()
                return api
            except PermissionError:
                pass  # the platform's data was reset; make a new client
        c = self.admin.post("/api/v1/clients", json={"name": name[:200], "org_id": org_id, "roles": roles})
        self.clients[org_id] = {"client_id": c["client_id"], "client_secret": c["client_secret"], "name": name}
        self.clients_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.clients_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.clients, indent=1, ensure_ascii=False))
        os.chmod(tmp, 0o600)
        tmp.replace(self.clients_file)
        self.count("api clients")
        return Api(self.base, c["client_id"], c["client_secret"])

    def run(self, total_achievements: int) -> dict[str, int]:
        # Organisations and their clients.
        gov_id, gov = self.org(*GOVERNMENT, roles=["government"])
        agency_id, agency = self.org(*AGENCY, roles=["agency"], headcount=35)
        insts = [self.org(*i, roles=["institution"], headcount=3000) for i in INSTITUTIONS]
        ents = [self.org(zh, en, "enterprise", region, roles=["enterprise"], headcount=hc,
                         annual_revenue=cny(rev), registered_on="2015-06-01")
                for zh, en, region, hc, rev in ENTERPRISES]
        self.say(f"organisations: {2 + len(insts) + len(ents)}")

        # Achievements: import what each institution lacks, submitted; a reviewer publishes.
        by_inst: dict[int, list[dict]] = {}
        for i, body in achievements(total_achievements):
            by_inst.setdefault(i, []).append(body)
        published: dict[str, dict] = {}
        for i, bodies in by_inst.items():
            org_id, api = insts[i]
            mine = api.pages("/api/v1/catalog/achievements", {
                "institution": org_id, "status": ["draft", "submitted", "published", "under_negotiation",
                                                  "transferred"], "facets": "false", "sort": "recency"})
            have = {a["title_en"]: a for a in mine}
            missing = [b for b in bodies if b["title_en"] not in have]
            if missing:
                lines = "\n".join(json.dumps(b, ensure_ascii=False) for b in missing).encode()
                report = api.post("/api/v1/catalog/achievements/import", params={"mode": "best_effort", "submit": "true"},
                                  content=lines, headers={"Content-Type": "application/x-ndjson"})
                bad = [r for r in report["rows"] if r.get("errors")]
                if bad:
                    raise RuntimeError(f"import refused rows: {bad[:3]}")
                self.count("achievements", report["imported"])
                mine = api.pages("/api/v1/catalog/achievements", {
                    "institution": org_id, "status": ["draft", "submitted", "published", "under_negotiation",
                                                      "transferred"], "facets": "false", "sort": "recency"})
            for a in mine:
                if a["status"] == "draft":
                    api.call("POST", f"/api/v1/catalog/achievements/{a['achievement_id']}/submit", ok=(200, 409))
                    a["status"] = "submitted"
                if a["status"] == "submitted":
                    gov.call("POST", f"/api/v1/catalog/achievements/{a['achievement_id']}/publish", ok=(200, 409))
                    self.count("published")
                a["_inst"] = i
                published[a["title_en"]] = a
        self.say(f"achievements: {len(published)} listed")

        # Demands.
        for e, title, problem, ipc, trl in DEMANDS:
            _, api = ents[e]
            mine = {d["title"]: d for d in api.pages("/api/v1/matching/demands", {"mine": "true"})}
            d = mine.get(title)
            if d is None:
                d = api.post("/api/v1/matching/demands", json={
                    "title": title, "problem": problem, "ipc_codes": ipc, "min_trl": trl, "region": "Shanghai",
                    "budget_min": cny(100_000), "budget_max": cny(3_000_000),
                    "deadline": (datetime.now(UTC) + timedelta(days=365)).date().isoformat()})
                self.count("demands")
            if d["status"] == "draft":
                api.post(f"/api/v1/matching/demands/{d['id']}/publish")

        # A voucher programme, an approved agency and a voucher for the first enterprise.
        programmes = {p["name"]: p for p in gov.pages("/api/v1/vouchers/programmes", {})}
        name = "浦东科技创新券（示范） / Pudong innovation vouchers (demo)"
        p = programmes.get(name)
        if p is None:
            now = datetime.now(UTC)
            p = gov.post("/api/v1/vouchers/programmes", key=sid("seed-programme"), json={
                "name": name, "budget": cny(20_000_000),
                "face_values": [cny(50_000), cny(100_000), cny(200_000)], "max_invoice_share_bp": 5000,
                "annual_quota": cny(200_000), "categories": ["testing", "ip-services", "technology-transfer"],
                "eligibility": {"max_headcount": 300, "max_annual_revenue": cny(40_000_000), "regions": ["Shanghai"],
                                "min_registration_age_days": 365},
                "applications_open_at": now.isoformat(), "applications_close_at": (now + timedelta(days=365)).isoformat(),
                "validity_days": 365, "unspent_policy": "return_to_budget", "reminder_days": 30, "review_levels": 1})
            self.count("programmes")
        pid = p["id"]
        enrolment = agency.call("GET", f"/api/v1/vouchers/programmes/{pid}/agencies/{agency_id}", ok=(200, 404))
        if enrolment.status_code == 404:
            agency.post(f"/api/v1/vouchers/programmes/{pid}/agencies", json={"categories": ["technology-transfer",
                                                                                           "ip-services"]})
            enrolment = agency.call("GET", f"/api/v1/vouchers/programmes/{pid}/agencies/{agency_id}")
        if enrolment.json().get("state") != "approved":
            gov.post(f"/api/v1/vouchers/programmes/{pid}/agencies/{agency_id}/approve",
                     json={"reason": "accredited technology-transfer service"})
        ent0_id, ent0 = ents[0]
        apps = [a for a in ent0.pages("/api/v1/vouchers/applications", {}) if a["programme_id"] == pid]
        if not any(a["state"] in ("submitted", "approved") for a in apps):
            # Vouchers learns of the enterprise from the catalog's event; wait for it.
            a = ent0.post(f"/api/v1/vouchers/programmes/{pid}/applications", retry_s=60,
                          json={"face_value": cny(200_000), "purpose": "technology-transfer services"})
            apps = [a]
        for a in apps:
            if a["state"] == "submitted":
                gov.post(f"/api/v1/vouchers/applications/{a['id']}/reviews",
                         key=sid("seed-review:" + a["id"]), json={"decision": "approve", "reason": "eligible"})
                self.count("vouchers")

        # A few completed licence deals, listed prices, no notice needed.
        candidates = sorted((a for a in published.values() if "non_exclusive_licence" in a.get("transfer_modes", [
            "non_exclusive_licence"])), key=lambda a: a["title_en"])
        for k, a in enumerate(candidates[:DEALS]):
            buyer_id, buyer = ents[k % len(ents)]
            seller_id, seller = insts[a["_inst"]]
            full = seller.get(f"/api/v1/catalog/achievements/{a['achievement_id']}")
            if full["status"] == "transferred" or "non_exclusive_licence" not in full["transfer_modes"]:
                continue
            body = {"seller_org_id": seller_id, "buyer_org_id": buyer_id, "achievement_ids": [a["achievement_id"]],
                    "offer": {"mode": "non_exclusive_licence", "exclusive": False, "territory": "CN",
                              "term_months": 36, "price": full["asking_price"], "pricing": "public_listing"}}
            deal = buyer.post("/api/v1/matching/transfers", key=sid(f"seed-deal:{a['achievement_id']}"), json=body,
                              retry_s=60)  # matching indexes the listing from the catalog's event
            if deal["status"] != "completed":
                v = deal["current_offer"]["version"]
                for who in (seller, buyer):
                    who.call("POST", f"/api/v1/matching/transfers/{deal['id']}/sign", ok=(200, 409),
                             key=sid(f"seed-sign:{deal['id']}:{who.client_id}"), json={"offer_version": v})
                buyer.call("POST", f"/api/v1/matching/transfers/{deal['id']}/complete", ok=(200, 409),
                           key=sid(f"seed-complete:{deal['id']}"))
                self.count("completed deals")
        return self.counts


def wait_ready(url: str, timeout: float, need_dev_clients: bool) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health/ready", timeout=3).status_code == 200 and (
                    not need_dev_clients or (DATA / "dev-clients.json").exists()):
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"seed: the platform at {url} was not ready within {timeout:.0f}s")


def admin_from(args) -> tuple[str, str]:
    if args.admin_id and args.admin_secret:
        return args.admin_id, args.admin_secret
    if os.environ.get("SEED_ADMIN_CLIENT_ID"):
        return os.environ["SEED_ADMIN_CLIENT_ID"], os.environ["SEED_ADMIN_SECRET"]
    dev = DATA / "dev-clients.json"
    if not dev.exists():
        raise SystemExit(f"seed: no admin credentials: {dev} is missing (is the platform up? make up), "
                         "or pass --admin-id/--admin-secret")
    return "dev-admin", json.loads(dev.read_text())["dev-admin"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("TECHBRIDGE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--admin-id")
    parser.add_argument("--admin-secret")
    parser.add_argument("--achievements", type=int, default=320)
    parser.add_argument("--clients-file", type=Path, default=DATA / "seed-clients.json")
    parser.add_argument("--if-empty", action="store_true", help="do nothing if any organisation is registered")
    parser.add_argument("--wait", type=float, default=0, metavar="S",
                        help="wait up to S seconds for the platform to be ready (for `make run`)")
    args = parser.parse_args()
    if args.wait:
        wait_ready(args.url, args.wait, need_dev_clients=not (args.admin_id or os.environ.get("SEED_ADMIN_CLIENT_ID")))
    admin = Api(args.url, *admin_from(args))
    if args.if_empty and admin.get("/api/v1/catalog/organisations", params={"limit": 1})["items"]:
        print("seed: the platform already has data; nothing to do")
        return 0
    started = time.monotonic()
    counts = Seeder(args.url, admin, args.clients_file).run(args.achievements)
    made = ", ".join(f"{n} {what}" for what, n in counts.items()) or "nothing new"
    print(f"seed: done in {time.monotonic() - started:.0f}s: {made}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
