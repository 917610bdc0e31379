"""Run every benchmark under tests/bench/ and put each figure next to its goal.

    make bench                                   every benchmark at its full size
    make bench ONLY=gateway,outbox QUICK=1       some of them, at a quick size
    .venv/bin/python tests/bench/run_all.py [--only NAME,...] [--quick] [--list]

Each benchmark runs as its own process through its command line (it starts the stack it needs
itself: a Kafka broker, service processes, databases on the PostgreSQL server named by
TECHBRIDGE_TEST_PG_URL). Its figures are read from what it writes: the JSON it prints, or else
its results file under tests/bench/results/ (only if written by this run). A benchmark that
fails, times out, or prints no figure is recorded as such, with why, and the others still run.
Ratios (gateway vs direct, vouchers vs pgbench) are the ones each benchmark measured in its own
run.

Writes tests/bench/results/summary.json (machine-readable), tests/bench/results/SUMMARY.md
(the same as a table, also printed) and each benchmark's output to
tests/bench/results/logs/<name>.log. Never fails on a missed goal: exit status 0 unless a
benchmark itself failed (1), so a scheduled job can tell "broken" from "slow".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import operator
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "bench"
RESULTS = BENCH / "results"

OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq,
}


# --- figures and goals ----------------------------------------------------------------------------
@dataclass
class Goal:
    op: str
    target: float
    source: str  # the issue that set it

    def met(self, value: float | None) -> bool | None:
        return None if value is None else OPS[self.op](value, self.target)


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str = ""
    goal: Goal | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "figure": self.name, "value": self.value, "unit": self.unit, "detail": self.detail,
            "goal": None if self.goal is None else {"op": self.goal.op, "value": self.goal.target, "source": self.goal.source},
            "met": None if self.goal is None else self.goal.met(self.value),
        }


@dataclass
class Output:
    """What one benchmark run left behind."""

    stdout: str
    results_file: dict | None = None  # its results JSON, if this run wrote it

    @property
    def objects(self) -> list[dict]:
        """The JSON objects it printed; else the ones in its results file."""
        printed = json_objects(self.stdout)
        if printed or self.results_file is None:
            return printed
        found = self.results_file
        if isinstance(found, dict) and isinstance(found.get("results"), list):
            found = found["results"]
        return [o for o in (found if isinstance(found, list) else [found]) if isinstance(o, dict)]


def json_objects(text: str) -> list[dict]:
    """Every JSON object printed in `text`, one-line or indented, in order."""
    decoder = json.JSONDecoder()
    found, i = [], 0
    while True:
        i = text.find("{", i)
        if i < 0:
            return found
        if i > 0 and text[i - 1] not in "\n":
            i += 1
            continue
        try:
            value, end = decoder.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        if isinstance(value, dict):
            found.append(value)
        i = end


class MissingFigure(Exception):
    """The benchmark ran but did not report a figure it should have."""


def pick(objects: list[dict], **match) -> list[dict]:
    return [o for o in objects if all(o.get(k) == v for k, v in match.items())]


def last(objects: list[dict], what: str, **match) -> dict:
    found = pick(objects, **match)
    if not found:
        raise MissingFigure(f"no {what} in its output")
    return found[-1]


def number(obj: dict, key: str) -> float:
    value = obj
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise MissingFigure(f"{key} missing from {json.dumps(obj)[:200]}")
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MissingFigure(f"{key} is not a number: {value!r}")
    return float(value)


# --- reading each benchmark -----------------------------------------------------------------------
def outbox_figures(out: Output) -> list[Figure]:
    rows = (out.results_file or {}).get("results") or [o for o in out.objects if "store" in o and "p99_ms" in o]
    if not rows:
        raise MissingFigure("no per-store result")
    figures = []
    for r in rows:
        store = r.get("store", "?")
        rate = f"{r.get('achieved_write_rate', '?')}/s written of {r.get('target_rate', '?')}/s targeted"
        figures += [
            Figure(f"event latency p99, outbox → consumer ({store})", number(r, "p99_ms"), "ms",
                   Goal("<", 500, "issue 2"), f"p50 {r.get('p50_ms')} ms; {rate}"),
            Figure(f"events lost ({store})", number(r, "lost"), "", Goal("==", 0, "issue 2"),
                   f"{r.get('written')} written"),
            Figure(f"events applied twice ({store})", number(r, "applied_twice"), "", Goal("==", 0, "issue 2")),
        ]
    return figures


def catalog_figures(out: Output) -> list[Figure]:
    rows = [o for o in out.objects if "case" in o and "store" in o]
    if not rows:
        raise MissingFigure("no search or import result")
    figures = []
    for store, size in dict.fromkeys((r["store"], r["size"]) for r in rows):
        here = [r for r in rows if r["store"] == store and r["size"] == size]
        searches = [r for r in here if r["case"] != "import" and "p95_ms" in r]
        if searches:
            worst = max(searches, key=lambda r: r["p95_ms"])
            figures.append(Figure(
                f"search p95, slowest case ({store}, {size:,} achievements)", number(worst, "p95_ms"), "ms",
                Goal("<=", 50, "issue 3"),
                f"slowest: {worst['case']}; " + ", ".join(f"{r['case']} {r['p95_ms']}" for r in searches)))
        for r in here:
            if r["case"] == "import":
                figures.append(Figure(f"bulk import ({store}, {size:,})", number(r, "rows_per_s"), "rows/s",
                                      Goal(">=", 2000, "issue 3"), f"{r.get('rows')} rows"))
    return figures


def matching_latency_figures(out: Output) -> list[Figure]:
    objects = out.objects
    top = last(objects, "top-20 matching latency", measure="top20_match_ms")
    publish = last(objects, "publish-to-matchable time", measure="publish_to_matchable_s")
    figures = [
        Figure(f"top-20 matching p95 ({int(number(top, 'docs')):,} achievements)", number(top, "p95"), "ms",
               Goal("<=", 100, "issue 4"), f"p50 {top.get('p50')} ms; query embedding p95 {top.get('query_embedding_p95')} ms apart"),
        Figure("catalog publish → matchable p99", number(publish, "p99"), "s", Goal("<=", 2, "issue 4"),
               f"p50 {publish.get('p50')} s over {publish.get('samples')} publishes"),
    ]
    build = pick(objects, measure="index_build")
    if build and "rss_growth_mb" in build[-1]:
        figures.append(Figure("index memory (resident growth)", number(build[-1], "rss_growth_mb"), "MB",
                              detail=f"{build[-1].get('docs')} documents, built in {build[-1].get('seconds')} s"))
    return figures


def matching_scifact_figures(out: Output) -> list[Figure]:
    objects = out.objects
    hybrid = last(objects, "hybrid result", mode="hybrid")
    figures = [Figure(f"SciFact nDCG@10, hybrid ({hybrid.get('split', 'train')})", number(hybrid, "ndcg@10"), "",
                      Goal(">=", 0.73, "issue 4"), f"recall@100 {hybrid.get('recall@100')}")]
    for mode in ("bm25", "dense"):
        found = pick(objects, mode=mode)
        if found:
            figures.append(Figure(f"SciFact nDCG@10, {mode} alone", number(found[-1], "ndcg@10"), "",
                                  detail=f"recall@100 {found[-1].get('recall@100')}"))
    return figures


_VALUATION_LINE = re.compile(r"^(?P<label>.+?)\s+wall median\s+(?P<wall>[\d.]+) ms .*?cpu median\s+(?P<cpu>[\d.]+) ms", re.M)


def valuation_figures(out: Output) -> list[Figure]:
    lines = {m["label"].strip(): (float(m["wall"]), float(m["cpu"])) for m in _VALUATION_LINE.finditer(out.stdout)}
    income = next((k for k in lines if k.startswith("full income valuation")), None)
    if income is None:
        raise MissingFigure("no 'full income valuation' line in its output")
    wall, cpu = lines[income]
    paths = re.search(r"([\d,]+) paths", income)
    figures = [Figure(f"Monte Carlo, full income valuation ({paths.group(1) if paths else '?'} paths), wall median",
                      wall, "ms", Goal("<=", 200, "issue 5"), f"CPU median {cpu} ms")]
    pdf = next((k for k in lines if k.startswith("PDF report (")), None)
    if pdf:
        figures.append(Figure("PDF report, wall median", lines[pdf][0], "ms", detail=f"CPU median {lines[pdf][1]} ms"))
    return figures


def vouchers_figures(out: Output) -> list[Figure]:
    r = last([o for o in out.objects if "redemptions_per_s" in o and "pgbench_tps" in o], "redemption summary")
    clients = r.get("clients")
    return [
        Figure(f"redemptions (reserve + settle) at {clients} clients, PostgreSQL", number(r, "redemptions_per_s"), "/s",
               Goal(">=", 500, "issue 6"), f"scaling by clients: {r.get('scaling')}"),
        Figure(f"redemptions as a share of pgbench TPC-B-like at {clients} clients", number(r, "fraction"), "ratio",
               Goal(">=", 0.25, "issue 6"), f"pgbench {r.get('pgbench_tps')} tps in the same run"),
        Figure("ledger check after the run", 1.0 if r.get("ledger_ok") is True else 0.0, "pass",
               Goal("==", 1, "issue 6")),
    ]


def gateway_figures(out: Output) -> list[Figure]:
    result = out.results_file or last([o for o in out.objects if "proxy" in o], "proxy result")
    proxy = result.get("proxy")
    if not isinstance(proxy, dict):
        raise MissingFigure("no proxy result")
    figures = _comparison_figures(proxy, "gateway")
    real = result.get("real_service")
    if isinstance(real, dict):
        figures += _comparison_figures(real, "gateway before the catalog")
    fan_out = result.get("webhook_fan_out")
    if isinstance(fan_out, dict) and "deliveries_per_s" in fan_out:
        figures.append(Figure(f"webhook deliveries to {fan_out.get('subscribers')} subscribers",
                              number(fan_out, "deliveries_per_s"), "/s",
                              detail=f"{fan_out.get('events')} events, {fan_out.get('deliveries')} deliveries"))
    return figures


def _comparison_figures(comparison: dict, label: str) -> list[Figure]:
    # One run per concurrency (a sweep), or a single run at one concurrency.
    runs = comparison.get("runs") if isinstance(comparison.get("runs"), list) else [comparison]
    figures = []
    for run in runs:
        direct, through = run.get("direct"), run.get("gateway")
        if not isinstance(direct, dict) or not isinstance(through, dict):
            raise MissingFigure(f"no direct and gateway figures in {json.dumps(run)[:200]}")
        added = run.get("added_p50_ms")
        if added is None:  # the same run's two p50s
            added = number(through, "p50_ms") - number(direct, "p50_ms")
        kept = run.get("throughput_kept")
        if kept is None:
            kept = number(through, "rps") / number(direct, "rps")
        at = f"concurrency {run.get('concurrency', comparison.get('concurrency', '?'))}"
        figures += [
            Figure(f"{label}: added latency at p50 ({at})", float(added), "ms", Goal("<=", 2, "issue 7"),
                   f"direct p50 {direct.get('p50_ms')} ms, through the gateway {through.get('p50_ms')} ms"),
            Figure(f"{label}: throughput kept vs direct ({at})", float(kept), "ratio", Goal(">=", 0.70, "issue 7"),
                   f"direct {direct.get('rps')} req/s, through the gateway {through.get('rps')} req/s"),
        ]
    return figures


@dataclass
class Benchmark:
    name: str
    script: str
    read: Callable[[Output], list[Figure]]
    full: list[str] = field(default_factory=list)
    quick: list[str] = field(default_factory=list)
    results_file: str | None = None  # under tests/bench/results/
    needs_postgres: bool = False
    timeout_s: float = 3 * 3600
    quick_timeout_s: float = 1200


BENCHMARKS = [
    Benchmark("outbox", "outbox_latency.py", outbox_figures, quick=["--seconds", "5", "--stores", "sqlite"],
              results_file="outbox_latency.json"),
    Benchmark("catalog", "catalog_search.py", catalog_figures,
              quick=["--stores", "sqlite", "--sizes", "2000", "--queries", "30"], results_file="catalog_search.json"),
    Benchmark("matching_latency", "matching_latency.py", matching_latency_figures,
              quick=["--docs", "10000", "--queries", "50"], results_file="matching_latency.json"),
    Benchmark("matching_scifact", "matching_scifact.py", matching_scifact_figures),
    Benchmark("valuation", "valuation_montecarlo.py", valuation_figures, quick=["--repeat", "3"]),
    Benchmark("vouchers", "vouchers_redemption.py", vouchers_figures,
              quick=["--seconds", "5", "--scaling", "", "--pgbench-scale", "8"], needs_postgres=True,
              results_file="vouchers_redemption.json"),
    Benchmark("gateway", "gateway_bench.py", gateway_figures, quick=["--requests", "1000", "--events", "50"],
              results_file="gateway_bench.json"),
]


# --- running --------------------------------------------------------------------------------------
@dataclass
class Run:
    """One benchmark's run: how it ended and what it printed."""

    name: str
    command: list[str]
    status: str  # "ran", "failed", "timed out", "skipped"
    seconds: float = 0.0
    reason: str = ""
    output: Output | None = None
    load_before: float | None = None
    load_after: float | None = None


def run_benchmark(bench: Benchmark, quick: bool, logs: Path) -> Run:
    command = [sys.executable, str(BENCH / bench.script), *(bench.quick if quick else bench.full)]
    if bench.needs_postgres and not os.environ.get("TECHBRIDGE_TEST_PG_URL"):
        return Run(bench.name, command, "skipped", reason="TECHBRIDGE_TEST_PG_URL is not set (make bench sets it)")
    logs.mkdir(parents=True, exist_ok=True)
    (logs / ".gitignore").write_text("# each benchmark's output of the last make bench; not kept in git\n*\n")
    log_path = logs / f"{bench.name}.log"
    results_path = RESULTS / bench.results_file if bench.results_file else None
    started_wall = time.time()
    load_before = round(os.getloadavg()[0], 2)
    started = time.perf_counter()
    print(f"== {bench.name}: {shlex.join(command[1:])}", flush=True)
    # A session of its own, so a timeout also ends the brokers and services it started.
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=bench.quick_timeout_s if quick else bench.timeout_s)
        code = proc.returncode
        status = "ran" if code == 0 else "failed"
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        code, status = None, "timed out"
    seconds = time.perf_counter() - started
    log_path.write_text(f"$ {shlex.join(command)}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    results = None
    if results_path and results_path.exists() and results_path.stat().st_mtime >= started_wall:
        try:
            results = json.loads(results_path.read_text())
        except ValueError:
            results = None
    reason = ""
    if status == "failed":
        reason = f"exit {code}: " + tail(stderr or stdout)
    elif status == "timed out":
        reason = f"no result within {bench.quick_timeout_s if quick else bench.timeout_s:.0f} s"
    return Run(bench.name, command, status, seconds, reason, Output(stdout, results), load_before, round(os.getloadavg()[0], 2))


def tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[:600]


# --- the summary ----------------------------------------------------------------------------------
def summarise(bench: Benchmark, run: Run) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "benchmark": bench.name, "script": f"tests/bench/{bench.script}",
        "command": shlex.join([".venv/bin/python", f"tests/bench/{bench.script}", *run.command[2:]]),
        "status": run.status, "seconds": round(run.seconds, 1), "reason": run.reason,
        "load_average": {"before": run.load_before, "after": run.load_after}, "figures": [],
    }
    if run.status != "ran" or run.output is None:
        return entry
    try:
        figures = bench.read(run.output)
    except MissingFigure as exc:
        entry.update(status="failed", reason=f"ran, but {exc}")
        return entry
    if not figures:
        entry.update(status="failed", reason="ran, but printed no figure")
    entry["figures"] = [f.as_dict() for f in figures]
    return entry


def build_summary(runs: list[tuple[Benchmark, Run]], *, quick: bool, started_at: str) -> dict[str, Any]:
    entries = [summarise(bench, run) for bench, run in runs]
    goals = [f for e in entries for f in e["figures"] if f["goal"] is not None]
    return {
        "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "size": "quick" if quick else "full",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "totals": {
            "benchmarks": len(entries),
            "failed": sum(e["status"] in ("failed", "timed out") for e in entries),
            "skipped": sum(e["status"] == "skipped" for e in entries),
            "goals": len(goals), "met": sum(f["met"] is True for f in goals),
            "missed": sum(f["met"] is False for f in goals),
        },
        "benchmarks": entries,
    }


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{value:.1%}"
    if unit == "pass":
        return "passed" if value == 1 else "FAILED"
    if abs(value) >= 100 or value == int(value):
        text = f"{value:,.0f}"
    elif abs(value) >= 1:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text}{unit}" if unit.startswith("/") else f"{text} {unit}".strip()


def fmt_goal(goal: dict | None, unit: str) -> str:
    if goal is None:
        return ""
    op = {"<=": "≤", ">=": "≥", "==": "="}.get(goal["op"], goal["op"])
    return f"{op} {fmt(goal['value'], unit)}"


def render_markdown(summary: dict[str, Any]) -> str:
    t = summary["totals"]
    out = [
        "# Benchmark summary",
        "",
        f"{summary['size']} size, {summary['started_at']} → {summary['finished_at']}, "
        f"{summary['machine']['cpus']} cores, Python {summary['machine']['python']}. "
        f"Goals met {t['met']} of {t['goals']}; benchmarks failed {t['failed']}, skipped {t['skipped']}. "
        "Written by `make bench` (tests/bench/run_all.py); the figures depend on what else ran on the machine, "
        "see the load averages.",
        "",
        "| benchmark | figure | measured | goal | met | notes |",
        "|---|---|---|---|---|---|",
    ]
    for e in summary["benchmarks"]:
        load = e["load_average"]
        load_note = f"load {load['before']:.1f}→{load['after']:.1f}" if load.get("before") is not None else ""
        if e["status"] != "ran" and not e["figures"]:
            out.append(f"| {e['benchmark']} | — | **{e['status']}** | | | {e['reason'].replace('|', '/')} |")
            continue
        for i, f in enumerate(e["figures"]):
            met = {True: "yes", False: "**no**", None: ""}[f["met"]]
            notes = "; ".join(x for x in (f["detail"], load_note if i == 0 else "") if x).replace("|", "/")
            out.append(f"| {e['benchmark'] if i == 0 else ''} | {f['figure']} | {fmt(f['value'], f['unit'])} | "
                       f"{fmt_goal(f['goal'], f['unit'])} | {met} | {notes} |")
    out += ["", "Commands (each benchmark starts the stack it needs):", ""]
    out += [f"- {e['benchmark']}: `{e['command']}` ({e['status']}, {e['seconds']} s)" for e in summary["benchmarks"]]
    return "\n".join(out) + "\n"


def select(only: str | None) -> list[Benchmark]:
    if not only:
        return list(BENCHMARKS)
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    known = {b.name: b for b in BENCHMARKS}
    chosen = []
    for w in wanted:
        matches = [b for n, b in known.items() if n == w or n.startswith(w) or b.script.removesuffix(".py") == w]
        if not matches:
            raise SystemExit(f"unknown benchmark {w!r}; known: {', '.join(known)}")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the benchmarks and summarise their figures against the goals.")
    ap.add_argument("--only",
                    help="comma-separated names (or prefixes): " + ", ".join(b.name for b in BENCHMARKS))
    ap.add_argument("--quick", action="store_true",
                    help="small sizes: minutes instead of hours, figures only indicative")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and their commands")
    ap.add_argument("--out", default=str(RESULTS), help="where summary.json, SUMMARY.md and logs/ go")
    args = ap.parse_args(argv)
    chosen = select(args.only)
    if args.list:
        for b in chosen:
            print(f"{b.name:<17} tests/bench/{b.script} {' '.join(b.quick if args.quick else b.full)}")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    runs = []
    for bench in chosen:
        run = run_benchmark(bench, args.quick, out / "logs")
        runs.append((bench, run))
        print(f"   {run.status} in {run.seconds:.0f} s{': ' + run.reason if run.reason else ''}", flush=True)
    summary = build_summary(runs, quick=args.quick, started_at=started_at)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    markdown = render_markdown(summary)
    (out / "SUMMARY.md").write_text(markdown)
    print()
    print(markdown)
    return 1 if summary["totals"]["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
