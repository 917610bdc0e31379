"""What the deploy tests share: where things are, which processes exist, and their settings."""

from __future__ import annotations

import importlib
import os
import re
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
# The validation tools are test dependencies of the workspace's dev group.
TOOLS_MISSING = "needs the deploy test tools (pyyaml, kubernetes-validate, check-jsonschema)"


def need(module: str):
    """Import a test tool, or skip the test naming the missing package."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.skip(f"{TOOLS_MISSING}: {module} is not installed")


def processes() -> dict[str, Path]:
    """Every deployable process (workspace member with a techbridge_<name> package) -> its dir."""
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    out = {}
    for member in members:
        name = Path(member).name
        if name != "shared" and (ROOT / member / f"techbridge_{name}" / "main.py").exists():
            out[name] = ROOT / member
    return out


def settings_class(name: str):
    return importlib.import_module(f"techbridge_{name}.config").Settings


def env_prefix(name: str) -> str:
    return settings_class(name).model_config["env_prefix"]


def setting_fields(name: str) -> set[str]:
    cls = settings_class(name)
    prefix = env_prefix(name)
    return {prefix + field.upper() for field in cls.model_fields}


@contextmanager
def environment(env: dict[str, str]):
    """Exactly `env` for the process's own prefixes, whatever the test runner exported."""
    prefixes = tuple(env_prefix(n) for n in processes())
    saved = dict(os.environ)
    try:
        for k in list(os.environ):
            if k.upper().startswith(prefixes):
                del os.environ[k]
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def load_settings_with(name: str, env: dict[str, str]):
    """The service's settings as its process would load them from `env` (or ConfigurationError)."""
    from techbridge_shared.settings import load_settings

    with environment(env):
        return load_settings(settings_class(name))


def declared_topics() -> dict[str, dict[str, set[str]]]:
    """Per process: the topics its ServiceSpec publishes and the topics it consumes."""
    out = {}
    for name in processes():
        with environment({}):
            spec = importlib.import_module(f"techbridge_{name}.main").build_spec()
        consumed = set()
        for sub in spec.subscriptions:
            consumed.update(sub.topics)
        out[name] = {"publishes": set(spec.publishes), "consumes": consumed}
    return out


PUBLISHES_RE = re.compile(r"publishes\s*=")


def files_declaring_publishes() -> list[Path]:
    """Source files that set ServiceSpec.publishes (the topics' source of truth)."""
    found = []
    for directory in processes().values():
        for path in directory.rglob("*.py"):
            if "tests" in path.relative_to(directory).parts:
                continue
            if PUBLISHES_RE.search(path.read_text(errors="replace")):
                found.append(path)
    return found


def interpolate(value: Any, variables: dict[str, str]) -> Any:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR:?error} interpolation of a loaded file."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        current = variables.get(name, "")
        if op == ":?" and not current:
            raise KeyError(f"{name}: {arg}")
        if op == ":-" and not current:
            return arg
        return current

    return re.sub(r"\$\{(\w+)(?:(:\?|:-)([^}]*))?\}", sub, value.replace("$$", "\0")).replace("\0", "$")


# The vouchers service exports this gauge from its ledger check (1 = balances add up).
LEDGER_CHECK_METRIC = "techbridge_ledger_check_ok"


def platform_metrics() -> set[str]:
    """Series names the processes export: techbridge_shared.metrics plus the ledger check."""
    from prometheus_client.metrics import MetricWrapperBase

    from techbridge_shared import metrics

    names = {LEDGER_CHECK_METRIC}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        base = value._name
        kind = value._type
        if kind == "counter":
            names.add(base + "_total")
        elif kind == "histogram":
            names.update({base + "_bucket", base + "_sum", base + "_count"})
        else:
            names.add(base)
    return names


PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "by", "without", "rate", "irate", "increase", "delta",
    "histogram_quantile", "absent", "time", "on", "ignoring", "group_left", "group_right", "and",
    "or", "unless", "topk", "bottomk", "clamp_min", "clamp_max", "vector", "scalar", "offset",
    "le", "bool", "label_replace", "sort_desc", "sort", "max_over_time", "min_over_time",
    "avg_over_time", "last_over_time", "changes", "resets", "round", "abs", "timestamp",
}


def promql_metrics(expr: str) -> set[str]:
    """Metric names an expression reads (identifiers that are neither functions nor labels)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\w+|\$\{[^}]*\}", "", expr)  # dashboard variables
    names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr))
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]?|e", n)}


# Standard OpenTelemetry variables the processes receive: read by techbridge_shared.tracing
# (and the SDK), not by the settings classes.
OTEL_VARIABLES = {"OTEL_EXPORTER_OTLP_ENDPOINT"}


def collector_config_problems(config: dict) -> list[str]:
    """What an OpenTelemetry Collector would refuse at start: a pipeline naming an undefined
    component, an unused-but-required piece missing, a traces pipeline without OTLP in."""
    problems = []
    service = config.get("service", {})
    for ext in service.get("extensions", []):
        if ext not in config.get("extensions", {}):
            problems.append(f"extension {ext} is not defined")
    pipelines = service.get("pipelines", {})
    if "traces" not in pipelines:
        problems.append("no traces pipeline")
    for pname, pipeline in pipelines.items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                if component not in (config.get(section) or {}):
                    problems.append(f"{pname}: {section[:-1]} {component} is not defined")
        if not pipeline.get("receivers") or not pipeline.get("exporters"):
            problems.append(f"{pname}: needs receivers and exporters")
        processors = pipeline.get("processors", [])
        if processors and processors[0] != "memory_limiter":
            problems.append(f"{pname}: memory_limiter must come first")
    protocols = (config.get("receivers") or {}).get("otlp", {}).get("protocols", {})
    if protocols.get("http", {}).get("endpoint", "").rsplit(":", 1)[-1] != "4318":
        problems.append("the OTLP/HTTP receiver must listen on 4318 (the processes' exporter)")
    return problems
