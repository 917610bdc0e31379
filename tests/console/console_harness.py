"""The whole platform as real processes (four services and the gateway) on the session's Kafka
broker and PostgreSQL, people with passwords, and a headless Chromium to drive the console."""

from __future__ import annotations

import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from techbridge_shared.testing.kafka_broker import free_port
from techbridge_shared.testing.processes import ServiceProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
SERVICES = {"catalog": "techbridge_catalog", "matching": "techbridge_matching",
            "valuation": "techbridge_valuation", "vouchers": "techbridge_vouchers"}
PASSWORD = "console-test-password-1"
DEV_ORG_NAMESPACE = uuid.UUID("6f1c3c2e-2d2b-4d6e-9a59-0c6d1f3b7a10")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"Debian's chromium is not installed ({CHROMIUM} missing; apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed"
    return None


def credit_code(seed: int) -> str:
    from techbridge_catalog.domain.rules import credit_code_check_char

    body = f"91310000MA{seed:07d}"[:17]
    return body + credit_code_check_char(body)


@dataclass
class Person:
    role: str
    email: str
    org_id: str


@dataclass
class Platform:
    gateway: ServiceProcess
    services: dict[str, ServiceProcess]
    admin_token: str
    people: dict[str, Person] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.gateway.url

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def token_of(self, role: str) -> str:
        r = httpx.post(self.url + "/auth/token", data={"grant_type": "password", "username": self.people[role].email,
                                                        "password": PASSWORD}, timeout=30)
        r.raise_for_status()
        return r.json()["access_token"]

    def call(self, role: str | None, method: str, path: str, *, ok=(200, 201), **kw) -> dict:
        with self.client(self.token_of(role) if role else None) as c:
            if method == "POST" and "/vouchers/" in path:
                kw.setdefault("headers", {})["Idempotency-Key"] = str(uuid.uuid4())
            r = c.request(method, path, **kw)
        assert r.status_code in ok, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else {}

    def until(self, what: str, probe, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not happen within {timeout}s")
            time.sleep(0.3)


def create_topics(kafka: str) -> None:
    """Every platform topic before any service starts, so each consumer group is assigned its
    partitions when it first joins (services start together and consume each other's topics)."""
    import asyncio

    from techbridge_catalog.events.models import PUBLISHES as CATALOG
    from techbridge_matching.events.published import TOPICS as MATCHING
    from techbridge_shared.kafka import ensure_topics
    from techbridge_shared.settings import KafkaSettings
    from techbridge_valuation.events.published import VALUATION_TOPIC
    from techbridge_vouchers.events.published import TOPICS as VOUCHERS

    topics = [*CATALOG, *MATCHING, VALUATION_TOPIC, *VOUCHERS]
    asyncio.run(ensure_topics(KafkaSettings(kafka_bootstrap_servers=kafka), "console-tests", topics))


def start_platform(tmp: Path, kafka: str, pg_url_factory) -> Platform:
    tag = uuid.uuid4().hex[:6]
    create_topics(kafka)
    ports = {name: free_port() for name in [*SERVICES, "gateway"]}
    procs: dict[str, ServiceProcess] = {}
    for name, module in SERVICES.items():
        p = name.upper() + "_"
        env = {p + "PORT": str(ports[name]), p + "DATABASE_URL": pg_url_factory(f"console_{name}"),
               p + "KAFKA_BOOTSTRAP_SERVERS": kafka, p + "DATA_DIR": str(tmp / name), p + "LOG_LEVEL": "INFO"}
        if name == "matching":
            env["MATCHING_ACHIEVEMENT_CONSUMER_GROUP"] = f"matching-console-{tag}.achievement-index"
        else:  # groups of their own: offsets left by other tests on the same broker do not apply
            env[p + "CONSUMER_GROUP_PREFIX"] = f"{name}-console-{tag}"
        procs[name] = ServiceProcess(module, env, ports[name], tmp / f"{name}.log")
    gw_env = {
        "GATEWAY_PORT": str(ports["gateway"]), "GATEWAY_DATABASE_URL": pg_url_factory("console_gateway"),
        "GATEWAY_KAFKA_BOOTSTRAP_SERVERS": kafka, "GATEWAY_DATA_DIR": str(tmp / "gateway"),
        "GATEWAY_EVENTS_CONSUMER_GROUP": f"gateway.subscriptions-console-{tag}",
        "GATEWAY_PASSWORD_TIME_COST": "1", "GATEWAY_PASSWORD_MEMORY_KIB": "8192",
        "GATEWAY_STREAM_HEARTBEAT_S": "2", "GATEWAY_OPENAPI_REFRESH_S": "600",
        **{f"GATEWAY_{n.upper()}_URL": f"http://127.0.0.1:{ports[n]}" for n in SERVICES},
    }
    gateway = ServiceProcess("techbridge_gateway", gw_env, ports["gateway"], tmp / "gateway.log")
    with ThreadPoolExecutor(max_workers=5) as pool:
        for f in [pool.submit(p.start, True, 180) for p in [*procs.values(), gateway]]:
            f.result()
    secrets = __import__("json").loads((tmp / "gateway" / "dev-clients.json").read_text())
    r = httpx.post(gateway.url + "/auth/token", data={"grant_type": "client_credentials", "client_id": "dev-admin",
                                                       "client_secret": secrets["dev-admin"]}, timeout=30)
    r.raise_for_status()
    return Platform(gateway=gateway, services=procs, admin_token=r.json()["access_token"])


def stop_platform(platform: Platform) -> None:
    for p in [platform.gateway, *platform.services.values()]:
        p.terminate()


def seed_people(platform: Platform) -> None:
    """One registered organisation and one person with a password per role."""
    orgs = {"institution": ("示范大学", "Demo University", "university", None),
            "enterprise": ("示范科技有限公司", "Demo Tech Co.", "enterprise", 80),
            "agency": ("示范技术转移中心", "Demo Transfer Agency", "agency", None),
            "government": ("示范市科学技术局", "Demo Science Bureau", "government", None)}
    for i, (role, (name, name_en, kind, headcount)) in enumerate(orgs.items()):
        org_id = str(uuid.uuid5(DEV_ORG_NAMESPACE, f"demo-{role}"))
        platform.call(None, "POST", "/api/v1/catalog/organisations", ok=(201, 409), json={
            "organisation_id": org_id, "name": name, "name_en": name_en, "kind": kind, "region": "Shanghai/Pudong",
            "credit_code": credit_code(1000 + i), "headcount": headcount,
            "annual_revenue": {"amount": 5_000_000_00, "currency": "CNY"} if kind == "enterprise" else None,
            "registered_on": "2015-03-01"})
        email = f"{role}@console.example"
        platform.call(None, "POST", "/api/v1/users", ok=(201, 409), json={
            "email": email, "name": f"{name_en} officer", "password": PASSWORD, "org_id": org_id, "roles": [role]})
        platform.people[role] = Person(role, email, org_id)


def achievement(title_zh: str, title_en: str, keywords: list[str], fields: list[str], ipc: str, mode: str,
                price_yuan: int, trl: int = 6, abstract: str = "") -> dict:
    return {"title_zh": title_zh, "title_en": title_en, "abstract_zh": abstract or title_zh + "的技术成果。",
            "abstract_en": (abstract or title_en) + " ready for industrial use.", "keywords": keywords,
            "fields": fields, "ipc_codes": [ipc], "ip_type": "invention_patent", "trl": trl,
            "transfer_modes": [mode], "asking_price": {"amount": price_yuan * 100, "currency": "CNY"},
            "region": "Shanghai/Pudong",
            "ip_records": [{"number": f"CN2023{abs(hash(title_en)) % 10**7:07d}.1", "kind": "invention_patent",
                            "filing_date": "2023-02-01", "legal_status": "pending"}]}


def publish_achievement(platform: Platform, body: dict) -> str:
    a = platform.call("institution", "POST", "/api/v1/catalog/achievements", json=body)
    aid = a["achievement_id"]
    platform.call("institution", "POST", f"/api/v1/catalog/achievements/{aid}/submit")
    platform.call("government", "POST", f"/api/v1/catalog/achievements/{aid}/publish")
    return aid


def open_programme(platform: Platform, name: str = "2026 科技创新券", budget_yuan: int = 1_000_000,
                   categories: tuple[str, ...] = ("technology_transfer",)) -> dict:
    now = datetime.now(UTC)
    return platform.call("government", "POST", "/api/v1/vouchers/programmes", json={
        "name": name, "description": "Demo programme", "budget": {"amount": budget_yuan * 100, "currency": "CNY"},
        "face_values": [{"amount": 50_000_00, "currency": "CNY"}], "max_invoice_share_bp": 5000,
        "annual_quota": {"amount": 100_000_00, "currency": "CNY"}, "categories": list(categories),
        "eligibility": {"org_kinds": ["enterprise"]},
        "applications_open_at": (now - timedelta(days=1)).isoformat(),
        "applications_close_at": (now + timedelta(days=60)).isoformat(), "validity_days": 365,
        "unspent_policy": "return_to_budget", "reminder_days": 30, "review_levels": 1})


def clean_screenshots() -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for f in SCREENSHOTS.glob("*.png"):
        f.unlink()


