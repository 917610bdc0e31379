"""`make seed` on the running platform: a demo world through the public API, loaded twice with
the same result (the second run creates nothing)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from e2e_platform import ROOT

pytestmark = pytest.mark.timeout(600)


def run_seed(platform, tmp_path, *extra: str) -> str:
    r = subprocess.run(
        [sys.executable, str(ROOT / "deploy/local/seed.py"), "--url", platform.url, "--admin-id", platform.admin_id,
         "--admin-secret", platform.admin_secret, "--clients-file", str(tmp_path / "seed-clients.json"), *extra],
        capture_output=True, text=True, timeout=540, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_seed_loads_a_demo_world_once(platform, admin, tmp_path):
    first = run_seed(platform, tmp_path, "--achievements", "48")
    assert "48 achievements" in first and "completed deals" in first, first

    # Every publicly visible state: a seeded deal's achievement is under negotiation until the
    # catalog has consumed the deal's completion and marked it transferred.
    listed = admin.ok("GET", "/api/v1/catalog/achievements", params={
        "q": "technology readiness", "limit": 100, "status": ["published", "under_negotiation", "transferred"]})
    assert listed["total"] >= 48
    langs = [(a["title_zh"], a["title_en"]) for a in listed["items"]]
    assert all(zh and en and zh != en for zh, en in langs)
    fields = {f for a in listed["items"] for f in a.get("fields", [])}
    assert len(fields) >= 10, fields
    demands = admin.ok("GET", "/api/v1/matching/demands", params={"limit": 100})["items"]
    assert sum(1 for d in demands if "/" in d["title"]) >= 8
    programmes = admin.ok("GET", "/api/v1/vouchers/programmes", params={"limit": 100})["items"]
    assert [p["name"] for p in programmes].count("浦东科技创新券（示范） / Pudong innovation vouchers (demo)") == 1
    deals = admin.ok("GET", "/api/v1/matching/transfers", params={"limit": 100})
    deals = deals["items"] if isinstance(deals, dict) else deals
    assert sum(1 for d in deals if d["status"] == "completed") >= 3

    again = run_seed(platform, tmp_path, "--achievements", "48")
    assert "nothing new" in again, again
    assert admin.ok("GET", "/api/v1/catalog/achievements", params={
        "q": "technology readiness", "limit": 100,
        "status": ["published", "under_negotiation", "transferred"]})["total"] == listed["total"]
    skipped = run_seed(platform, tmp_path, "--if-empty")
    assert "already has data" in skipped
