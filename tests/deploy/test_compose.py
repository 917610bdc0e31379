"""deploy/compose/compose.yaml: valid against the Compose Specification and runnable as written.

No container engine runs here, so the file is checked for what `docker compose up` would
otherwise find out the hard way: schema errors, a missing start-order edge, a setting the
service does not know (it refuses to start), a database URL pointing at another service's
database.
"""

from __future__ import annotations

import json
from importlib import resources

import pytest

from deploy_support import (
    DEPLOY, OTEL_VARIABLES, collector_config_problems, env_prefix, interpolate, load_settings_with, need, processes,
)

COMPOSE = DEPLOY / "compose" / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "compose" / ".env.example"


def compose_schema() -> dict:
    need("check_jsonschema")
    # check-jsonschema ships the Compose Specification's schema (compose-spec.json).
    text = (resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text()
    return json.loads(text)


@pytest.fixture(scope="module")
def raw() -> dict:
    yaml = need("yaml")
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def variables() -> dict[str, str]:
    """Every variable .env.example names, filled the way an operator would (hex secrets)."""
    names = [
        line.split("=", 1)[0].strip()
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return {n: f"{i:02d}" + "ab12" * 8 for i, n in enumerate(names)}


@pytest.fixture(scope="module")
def compose(raw, variables) -> dict:
    return interpolate(raw, variables)


def test_compose_file_matches_the_compose_specification(raw, compose):
    jsonschema = need("jsonschema")
    schema = compose_schema()
    validator = jsonschema.Draft202012Validator(schema)
    for document in (raw, compose):
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_schema_check_would_catch_a_mistake(compose):
    jsonschema = need("jsonschema")
    broken = json.loads(json.dumps(compose))
    broken["services"]["kafka"]["depends_on"] = {"postgres": {"condition": "service_started_eventually"}}
    broken["services"]["catalog"]["healthcheck"] = {"interval": 10}
    errors = list(jsonschema.Draft202012Validator(compose_schema()).iter_errors(broken))
    assert len(errors) >= 2


def test_every_secret_is_required_from_the_environment(raw, variables):
    with pytest.raises(KeyError, match="INTERNAL_AUTH_SECRET"):
        interpolate(raw, {k: v for k, v in variables.items() if k != "INTERNAL_AUTH_SECRET"})
    text = COMPOSE.read_text()
    optional = {"GATEWAY_BOOTSTRAP_ADMIN_SECRET"}  # no bootstrap admin unless one is given
    for name in variables:
        if name.endswith(("_PASSWORD", "_SECRET")) and name not in optional:
            assert f"${{{name}:?" in text, f"{name} must be required (${{{name}:?...}}), not defaulted"


def test_kafka_runs_in_kraft_mode_from_the_official_image(compose):
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "zookeeper" not in json.dumps(kafka).lower()
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "kafka-data" in {v.split(":")[0] for v in kafka["volumes"]}
    assert kafka["healthcheck"]["test"]


def test_postgres_creates_one_database_per_service(compose):
    pg = compose["services"]["postgres"]
    assert any(v.endswith(":/docker-entrypoint-initdb.d:ro") for v in pg["volumes"])
    script = (DEPLOY / "compose" / "postgres-init" / "10-databases.sh").read_text()
    for name in processes():
        assert f"create {name} techbridge_{name} " in script
        assert f"{name.upper()}_DB_PASSWORD" in pg["environment"]
    assert pg["healthcheck"]["test"]


def test_each_process_migrates_then_starts_when_its_dependencies_are_healthy(compose):
    services = compose["services"]
    for name in processes():
        migrate, svc = services[f"{name}-migrate"], services[name]
        assert migrate["command"] == ["python", "/app/migrate.py"]
        assert migrate["restart"] == "no"
        assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert migrate["image"] == svc["image"]
        assert migrate["environment"] == svc["environment"]
        assert svc["depends_on"][f"{name}-migrate"]["condition"] == "service_completed_successfully"
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert svc["build"]["dockerfile"] == f"deploy/docker/{name}.Dockerfile"
        assert svc["read_only"] is True and "/tmp" in svc["tmpfs"]
    gateway_deps = services["gateway"]["depends_on"]
    for name in processes():
        if name != "gateway":
            assert gateway_deps[name]["condition"] == "service_healthy", name


def test_start_order_has_no_cycle_and_names_only_defined_services(compose):
    services = compose["services"]
    graph = {name: set(svc.get("depends_on", {})) for name, svc in services.items()}
    for name, deps in graph.items():
        assert deps <= set(services), f"{name} depends on undefined {deps - set(services)}"
    done: set[str] = set()
    while len(done) < len(graph):
        ready = {n for n, deps in graph.items() if n not in done and deps <= done}
        assert ready, f"dependency cycle among {set(graph) - done}"
        done |= ready


def test_only_the_gateway_is_published(compose):
    published = {name for name, svc in compose["services"].items() if svc.get("ports")}
    assert published == {"gateway", "jaeger"}
    # The trace viewer only on the host's loopback, and only with the tracing profile.
    assert compose["services"]["jaeger"]["ports"] == ["127.0.0.1:16686:16686"]
    assert compose["services"]["jaeger"]["profiles"] == ["tracing"]


@pytest.mark.parametrize("name", sorted(processes()))
def test_each_process_accepts_its_compose_settings_in_production(compose, name):
    env = {k: str(v) for k, v in compose["services"][name]["environment"].items() if k not in OTEL_VARIABLES}
    prefix = env_prefix(name)
    assert all(k.startswith(prefix) for k in env), f"{name} gets another process's setting"
    settings = load_settings_with(name, env)
    assert settings.environment == "production"
    assert settings.database_url.endswith(f"@postgres:5432/techbridge_{name}")
    assert settings.database_url.startswith(f"postgresql+asyncpg://{name}:")
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    # Addresses of other components must be set for the container network, not left at the
    # 127.0.0.1 defaults that suit `make run`.
    for field, default in type(settings).model_fields.items():
        if field.endswith(("_url", "_servers")) and isinstance(default.default, str) and "127.0.0.1" in default.default:
            assert prefix + field.upper() in env, f"{prefix}{field.upper()} must be set in compose.yaml"


# --- traces ---------------------------------------------------------------------------------------
def test_the_collector_receives_otlp_and_forwards_to_jaeger(compose):
    yaml = need("yaml")
    collector = compose["services"]["otel-collector"]
    assert collector["profiles"] == ["tracing"] and collector["read_only"] is True
    config_path = next(v.split(":")[0] for v in collector["volumes"] if v.endswith(":/etc/otelcol/config.yaml:ro"))
    config = yaml.safe_load((DEPLOY / "compose" / config_path).read_text())
    assert collector_config_problems(config) == []
    [exporter] = config["service"]["pipelines"]["traces"]["exporters"]
    host = config["exporters"][exporter]["endpoint"].split(":")[0]
    assert host in compose["services"] and compose["services"][host]["profiles"] == ["tracing"]
    broken = json.loads(json.dumps(config))
    broken["service"]["pipelines"]["traces"]["exporters"].append("otlp/nowhere")
    assert collector_config_problems(broken) == ["traces: exporter otlp/nowhere is not defined"]


def test_processes_export_traces_only_when_an_endpoint_is_given(raw, variables, compose, monkeypatch):
    from techbridge_shared import tracing

    with_collector = interpolate(raw, {**variables, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"})
    for name in processes():
        assert compose["services"][name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == ""
        env = with_collector["services"][name]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    # The shared library reads the standard variable as compose sets it: empty means off.
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    for value, expected in (("", False), ("http://otel-collector:4318", True)):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", value)
        assert tracing.exporting_from_environment() is expected
