"""deploy/grafana: the dashboard shows every metric the processes export, and only real ones."""

from __future__ import annotations

import json

import pytest

from deploy_support import DEPLOY, LEDGER_CHECK_METRIC, platform_metrics, promql_metrics

DASHBOARD = DEPLOY / "grafana" / "techbridge-platform.json"


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def expressions(dashboard: dict) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels(dashboard) for t in p.get("targets", [])]


def test_dashboard_is_importable(dashboard):
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for p in panels(dashboard):
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", f"{p['title']}: hard-wired data source"
        assert p["targets"], f"{p['title']}: no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))


def test_panels_do_not_overlap(dashboard):
    taken: set[tuple[int, int]] = set()
    for p in panels(dashboard):
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"{p['title']} overlaps another panel"
        taken |= cells


def test_every_exported_metric_is_on_the_dashboard(dashboard):
    read = set()
    for _, expr in expressions(dashboard):
        read |= promql_metrics(expr)
    # Histograms need only one of their series to be shown.
    missing = {
        m for m in platform_metrics() - read
        if not (m.endswith(("_sum", "_count")) and m.rsplit("_", 1)[0] + "_bucket" in read)
    }
    assert not missing, f"no panel shows {sorted(missing)}"


def test_dashboard_reads_only_metrics_that_exist(dashboard):
    known = platform_metrics()
    for title, expr in expressions(dashboard):
        unknown = {m for m in promql_metrics(expr) if m not in known and not m.startswith("kafka_")}
        assert not unknown, f"{title}: {sorted(unknown)} is exported by nothing"


def test_metric_reader_sees_what_an_expression_reads():
    expr = 'sum by (service, le) (rate(techbridge_http_request_duration_seconds_bucket{service=~"$service"}[$__rate_interval])) / on(service) group_left max(up)'
    assert promql_metrics(expr) == {"techbridge_http_request_duration_seconds_bucket", "up"}


def test_ledger_check_panel_says_ok_mismatch_or_no_report(dashboard):
    [ledger] = [p for p in panels(dashboard) if any(LEDGER_CHECK_METRIC in t["expr"] for t in p.get("targets", []))]
    assert ledger["type"] == "stat"
    texts = json.dumps(ledger["fieldConfig"]["defaults"]["mappings"])
    for word in ("OK", "MISMATCH", "NO REPORT"):
        assert word in texts
