"""`make bench`'s summary (tests/bench/run_all.py): each figure read from what its benchmark
prints or writes, compared with its goal, and a failing or silent benchmark recorded as failed
without stopping the others. The benchmarks themselves are not run here (they take minutes to
hours); stand-in scripts print what they print.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "bench"))
import run_all  # noqa: E402
from run_all import BENCHMARKS, Benchmark, Figure, Goal, Output, Run  # noqa: E402

STARTED = "2026-11-26T17:00:00+00:00"

# What each benchmark prints (or writes) today, shortened.
OUTBOX_FILE = {"results": [
    {"store": "sqlite", "target_rate": 500, "written": 8590, "achieved_write_rate": 428.9, "lost": 0,
     "applied_twice": 0, "p50_ms": 270.4, "p99_ms": 482.9},
    {"store": "postgresql", "target_rate": 500, "written": 9110, "achieved_write_rate": 455.4, "lost": 0,
     "applied_twice": 0, "p50_ms": 396.4, "p99_ms": 634.0},
]}
CATALOG_OUT = "\n".join(json.dumps(o) for o in [
    {"store": "sqlite", "size": 10000, "case": "text", "p50_ms": 12.0, "p95_ms": 31.5},
    {"store": "sqlite", "size": 10000, "case": "filters only", "p50_ms": 20.0, "p95_ms": 64.2},
    {"store": "sqlite", "size": 10000, "case": "import", "rows_per_s": 2400, "rows": 10000},
    {"store": "postgresql", "size": 10000, "case": "text", "p50_ms": 9.0, "p95_ms": 22.0},
    {"store": "postgresql", "size": 10000, "case": "import", "rows_per_s": 1500, "rows": 10000},
]) + "\npostgresql: done\n"
MATCHING_OUT = "\n".join(json.dumps(o) for o in [
    {"measure": "index_build", "docs": 100000, "seconds": 40.1, "rss_growth_mb": 512.3, "real_vectors": True},
    {"measure": "top20_match_ms", "docs": 100000, "queries": 200, "p50": 41.0, "p95": 88.0, "max": 130.0,
     "query_embedding_p50": 9.0, "query_embedding_p95": 14.0},
    {"measure": "publish_to_matchable_s", "samples": 30, "p50": 0.4, "p99": 2.6},
])
SCIFACT_OUT = "\n".join(json.dumps(o) for o in [
    {"mode": "bm25", "split": "train", "ndcg@10": 0.692, "recall@100": 0.91, "queries": 809, "seconds": 3.0},
    {"mode": "dense", "split": "train", "ndcg@10": 0.661, "recall@100": 0.93, "queries": 809, "seconds": 9.0},
    {"mode": "hybrid", "split": "train", "ndcg@10": 0.738, "recall@100": 0.95, "queries": 809, "seconds": 12.0},
])
VALUATION_OUT = textwrap.dedent("""\
    load average 2.1 on 2 cores
    full income valuation, 100,000 paths (goal <= 200 ms)      wall median   148.2 ms (min   140.0)   cpu median    74.0 ms (min    70.0)   n=7
    HTML report with three inline SVG charts                   wall median    12.0 ms (min    11.0)   cpu median    11.5 ms (min    11.0)   n=7
    PDF report (fpdf2, same charts)                            wall median   550.0 ms (min   540.0)   cpu median   530.0 ms (min   520.0)   n=3
    """)
VOUCHERS_OUT = "setup: 1 programme\nclients= 64 processes=2:   610.0 redemptions/s\n" + json.dumps(
    {"clients": 64, "redemptions_per_s": 610.0, "pgbench_tps": 2900.0, "fraction": 0.21, "ledger_ok": True,
     "scaling": {"1": 80.0, "64": 610.0}})
GATEWAY_FILE = {"proxy": {"concurrency": 16, "direct": {"rps": 360.0, "p50_ms": 24.9},
                          "gateway": {"rps": 230.7, "p50_ms": 50.3}, "added_p50_ms": 25.4, "throughput_kept": 0.641},
                "webhook_fan_out": {"events": 300, "subscribers": 10, "deliveries": 3000, "deliveries_per_s": 219.3}}


def bench(name: str) -> Benchmark:
    return next(b for b in BENCHMARKS if b.name == name)


def ran(name: str, stdout: str = "", results: dict | None = None) -> tuple[Benchmark, Run]:
    return bench(name), Run(name, ["python", f"tests/bench/{bench(name).script}"], "ran", 12.0,
                            output=Output(stdout, results), load_before=1.5, load_after=2.0)


def figures(entry: dict) -> dict[str, dict]:
    return {f["figure"]: f for f in entry["figures"]}


# --- goals ----------------------------------------------------------------------------------------
def test_goals_compare_each_way_and_a_missing_value_is_unknown():
    assert Goal("<=", 50, "i").met(50) is True and Goal("<=", 50, "i").met(50.1) is False
    assert Goal("<", 500, "i").met(499.9) is True and Goal("<", 500, "i").met(500) is False
    assert Goal(">=", 0.25, "i").met(0.25) is True and Goal(">=", 0.25, "i").met(0.2499) is False
    assert Goal("==", 0, "i").met(0) is True and Goal("==", 0, "i").met(1) is False
    assert Goal("<=", 2, "i").met(None) is None
    info = Figure("memory", 512.0, "MB").as_dict()
    assert info["goal"] is None and info["met"] is None


def test_json_objects_finds_one_line_and_indented_objects_among_text():
    text = 'load 2.0\n{"a": 1}\nnot {json}\n{\n  "b": {"c": 2}\n}\n{"broken": \n{"d": 3}\n'
    assert run_all.json_objects(text) == [{"a": 1}, {"b": {"c": 2}}, {"d": 3}]


# --- each benchmark's figures against its goals ---------------------------------------------------
def test_each_benchmark_is_read_and_compared_with_the_goals_of_its_issue():
    summary = run_all.build_summary([
        ran("outbox", results=OUTBOX_FILE),
        ran("catalog", CATALOG_OUT),
        ran("matching_latency", MATCHING_OUT),
        ran("matching_scifact", SCIFACT_OUT),
        ran("valuation", VALUATION_OUT),
        ran("vouchers", VOUCHERS_OUT),
        ran("gateway", results=GATEWAY_FILE),
    ], quick=False, started_at=STARTED)
    by_name = {e["benchmark"]: e for e in summary["benchmarks"]}
    assert all(e["status"] == "ran" for e in by_name.values())

    outbox = figures(by_name["outbox"])
    assert outbox["event latency p99, outbox → consumer (sqlite)"]["met"] is True
    assert outbox["event latency p99, outbox → consumer (postgresql)"]["met"] is False
    assert outbox["events lost (postgresql)"]["met"] is True

    catalog = figures(by_name["catalog"])
    worst = catalog["search p95, slowest case (sqlite, 10,000 achievements)"]
    assert worst["value"] == 64.2 and worst["met"] is False and "filters only" in worst["detail"]
    assert catalog["search p95, slowest case (postgresql, 10,000 achievements)"]["met"] is True
    assert catalog["bulk import (sqlite, 10,000)"]["met"] is True
    assert catalog["bulk import (postgresql, 10,000)"]["met"] is False

    matching = figures(by_name["matching_latency"])
    assert matching["top-20 matching p95 (100,000 achievements)"] | {"detail": ""} == {
        "figure": "top-20 matching p95 (100,000 achievements)", "value": 88.0, "unit": "ms", "detail": "",
        "goal": {"op": "<=", "value": 100, "source": "issue 4"}, "met": True}
    assert matching["catalog publish → matchable p99"]["met"] is False
    assert matching["index memory (resident growth)"]["goal"] is None

    scifact = figures(by_name["matching_scifact"])
    assert scifact["SciFact nDCG@10, hybrid (train)"]["met"] is True
    assert scifact["SciFact nDCG@10, bm25 alone"]["value"] == 0.692

    valuation = figures(by_name["valuation"])
    mc = valuation["Monte Carlo, full income valuation (100,000 paths), wall median"]
    assert mc["value"] == 148.2 and mc["met"] is True and "74.0" in mc["detail"]
    assert valuation["PDF report, wall median"]["value"] == 550.0

    vouchers = figures(by_name["vouchers"])
    assert vouchers["redemptions (reserve + settle) at 64 clients, PostgreSQL"]["met"] is True
    share = vouchers["redemptions as a share of pgbench TPC-B-like at 64 clients"]
    assert share["met"] is False and "2900.0 tps" in share["detail"]
    assert vouchers["ledger check after the run"]["met"] is True

    gateway = figures(by_name["gateway"])
    assert gateway["gateway: added latency at p50 (concurrency 16)"]["value"] == 25.4
    assert gateway["gateway: added latency at p50 (concurrency 16)"]["met"] is False
    assert gateway["gateway: throughput kept vs direct (concurrency 16)"]["met"] is False
    assert gateway["webhook deliveries to 10 subscribers"]["value"] == 219.3

    totals = summary["totals"]
    assert totals["failed"] == 0 and totals["goals"] == totals["met"] + totals["missed"]
    assert totals["missed"] == 7  # outbox pg p99, catalog sqlite p95 + pg import, publish p99, pgbench share, gateway x2


def test_a_results_file_of_this_run_stands_in_for_printed_figures():
    catalog = [json.loads(line) for line in CATALOG_OUT.splitlines() if line.startswith("{")]
    entry = run_all.summarise(*ran("catalog", "store size case (a table only)\n", {"results": catalog}))
    assert entry["status"] == "ran" and len(entry["figures"]) == 4
    vouchers = json.loads(VOUCHERS_OUT.splitlines()[-1])
    entry = run_all.summarise(*ran("vouchers", "clients= 64: 610.0 redemptions/s\n", vouchers))
    assert figures(entry)["redemptions (reserve + settle) at 64 clients, PostgreSQL"]["value"] == 610.0


def test_gateway_ratios_come_from_the_same_runs_figures_when_not_printed():
    result = json.loads(json.dumps(GATEWAY_FILE))
    del result["proxy"]["added_p50_ms"], result["proxy"]["throughput_kept"]
    gateway = figures(run_all.summarise(*ran("gateway", json.dumps(result, indent=2))))
    assert gateway["gateway: added latency at p50 (concurrency 16)"]["value"] == pytest.approx(50.3 - 24.9)
    assert gateway["gateway: throughput kept vs direct (concurrency 16)"]["value"] == pytest.approx(230.7 / 360.0)


def test_a_gateway_sweep_over_concurrencies_gives_each_level_its_goals():
    sweep = {"proxy": {"requests_per_run": 1000, "runs": [
        {"concurrency": 1, "direct": {"rps": 392.9, "p50_ms": 1.153}, "gateway": {"rps": 148.8, "p50_ms": 4.907},
         "added_p50_ms": 3.754, "throughput_kept": 0.379},
        {"concurrency": 64, "direct": {"rps": 688.5, "p50_ms": 61.0}, "gateway": {"rps": 600.0, "p50_ms": 62.5}},
    ]}, "webhook_fan_out": GATEWAY_FILE["webhook_fan_out"]}
    gateway = figures(run_all.summarise(*ran("gateway", results=sweep)))
    assert gateway["gateway: added latency at p50 (concurrency 1)"]["met"] is False
    assert gateway["gateway: throughput kept vs direct (concurrency 1)"]["value"] == 0.379
    assert gateway["gateway: added latency at p50 (concurrency 64)"]["value"] == pytest.approx(1.5)
    assert gateway["gateway: added latency at p50 (concurrency 64)"]["met"] is True
    assert gateway["gateway: throughput kept vs direct (concurrency 64)"]["met"] is True
    broken = run_all.summarise(*ran("gateway", results={"proxy": {"runs": [{"concurrency": 1, "direct": {}}]}}))
    assert broken["status"] == "failed" and "no direct and gateway figures" in broken["reason"]


# --- missing results and failures -----------------------------------------------------------------
def test_missing_figures_fail_that_benchmark_only():
    summary = run_all.build_summary([
        ran("valuation", "load average 2.0 on 2 cores\nTraceback? no, just nothing\n"),
        ran("matching_latency", json.dumps({"measure": "top20_match_ms", "docs": 10, "p50": 1.0}) + "\n"
            + json.dumps({"measure": "publish_to_matchable_s", "samples": 3, "p50": 0.1, "p99": 0.2})),
        ran("vouchers", json.dumps({"clients": 64, "redemptions_per_s": 610.0, "pgbench_tps": 2900.0})),
        ran("outbox", results=OUTBOX_FILE),
    ], quick=True, started_at=STARTED)
    valuation, matching, vouchers, outbox = summary["benchmarks"]
    assert valuation["status"] == "failed" and "full income valuation" in valuation["reason"]
    assert matching["status"] == "failed" and "p95 missing" in matching["reason"]
    assert vouchers["status"] == "failed" and "fraction missing" in vouchers["reason"]
    assert outbox["status"] == "ran" and outbox["figures"]
    assert summary["totals"]["failed"] == 3 and summary["size"] == "quick"
    markdown = run_all.render_markdown(summary)
    assert "| valuation | — | **failed** |" in markdown
    assert "event latency p99, outbox → consumer (sqlite) | 483 ms | < 500 ms | yes |" in markdown


def test_a_failed_or_skipped_run_is_recorded_with_its_reason():
    failed = Run("gateway", ["python", "tests/bench/gateway_bench.py"], "failed", 3.0, "exit 1: KafkaError: no broker",
                 Output(""), 1.0, 1.0)
    skipped = Run("vouchers", ["python", "tests/bench/vouchers_redemption.py"], "skipped",
                  reason="TECHBRIDGE_TEST_PG_URL is not set")
    summary = run_all.build_summary([(bench("gateway"), failed), (bench("vouchers"), skipped)],
                                    quick=False, started_at=STARTED)
    gateway, vouchers = summary["benchmarks"]
    assert gateway == gateway | {"status": "failed", "reason": "exit 1: KafkaError: no broker", "figures": []}
    assert vouchers["status"] == "skipped" and vouchers["figures"] == []
    assert summary["totals"] == {"benchmarks": 2, "failed": 1, "skipped": 1, "goals": 0, "met": 0, "missed": 0}


def test_results_files_of_an_earlier_run_are_not_taken_for_this_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(run_all, "RESULTS", tmp_path)
    (tmp_path / "old.json").write_text(json.dumps(GATEWAY_FILE))
    script = tmp_path / "silent.py"
    script.write_text("print('nothing measured')\n")
    stale = Benchmark("gateway", str(script), run_all.gateway_figures, results_file="old.json")
    run = run_all.run_benchmark(stale, quick=False, logs=tmp_path / "logs")
    assert run.status == "ran" and run.output.results_file is None
    entry = run_all.summarise(stale, run)
    assert entry["status"] == "failed" and "no proxy result" in entry["reason"]


# --- the runner, end to end with stand-in benchmarks ------------------------------------------------
def test_the_runner_keeps_going_past_failures_and_writes_both_summaries(tmp_path, monkeypatch, capsys):
    scripts = {
        "good": "import json\nprint('load average 1.0 on 2 cores')\n"
                "print('full income valuation, 100,000 paths (goal <= 200 ms)   wall median   250.0 ms (min 1.0)   "
                "cpu median   90.0 ms (min 1.0)   n=3')\n",
        "broken": "import sys\nprint('starting')\nsys.stderr.write('Traceback\\nRuntimeError: broker did not start\\n')\n"
                  "sys.exit(3)\n",
        "slow": "import time\ntime.sleep(60)\n",
    }
    for name, body in scripts.items():
        (tmp_path / f"{name}.py").write_text(body)
    stand_ins = [
        Benchmark("broken", str(tmp_path / "broken.py"), run_all.valuation_figures),
        Benchmark("slow", str(tmp_path / "slow.py"), run_all.valuation_figures, quick_timeout_s=1),
        Benchmark("good", str(tmp_path / "good.py"), run_all.valuation_figures, quick=["--repeat", "3"]),
    ]
    monkeypatch.setattr(run_all, "BENCHMARKS", stand_ins)
    out = tmp_path / "results"
    status = run_all.main(["--quick", "--out", str(out)])
    assert status == 1  # a benchmark failed; missed goals alone would not make it fail
    summary = json.loads((out / "summary.json").read_text())
    broken, slow, good = summary["benchmarks"]
    assert broken["status"] == "failed" and broken["reason"] == "exit 3: Traceback | RuntimeError: broker did not start"
    assert slow["status"] == "timed out" and "1 s" in slow["reason"]
    assert good["status"] == "ran" and good["command"].endswith("good.py --repeat 3")
    [mc] = good["figures"]
    assert mc["value"] == 250.0 and mc["met"] is False
    markdown = (out / "SUMMARY.md").read_text()
    assert "| broken | — | **failed** |" in markdown and "| slow | — | **timed out** |" in markdown
    assert "| 250 ms | ≤ 200 ms | **no** |" in markdown
    assert markdown in capsys.readouterr().out
    assert "RuntimeError: broker did not start" in (out / "logs" / "broken.log").read_text()

    monkeypatch.setattr(run_all, "BENCHMARKS", [stand_ins[2]])
    assert run_all.main(["--out", str(out)]) == 0  # the goal is missed, nothing failed


def test_only_selects_by_name_prefix_or_script_and_refuses_unknown_names():
    assert [b.name for b in run_all.select("gateway")] == ["gateway"]
    assert [b.name for b in run_all.select("matching")] == ["matching_latency", "matching_scifact"]
    assert [b.name for b in run_all.select("outbox_latency,valuation")] == ["outbox", "valuation"]
    assert len(run_all.select(None)) == len(BENCHMARKS)
    with pytest.raises(SystemExit, match="unknown benchmark 'gatway'"):
        run_all.select("gatway")


def test_every_benchmark_script_is_run_by_make_bench():
    scripts = {p.name for p in (ROOT / "tests" / "bench").glob("*.py")} - {"run_all.py", "http_load.py"}
    assert scripts == {b.script for b in BENCHMARKS}
    makefile = (ROOT / "Makefile").read_text()
    assert "tests/bench/run_all.py" in makefile and "--only $(ONLY)" in makefile and "--quick" in makefile
