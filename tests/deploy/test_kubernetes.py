"""deploy/k8s: the base and each overlay, rendered and checked the way a cluster would take them.

Core resources are validated (strictly: unknown fields fail) against the Kubernetes OpenAPI
schemas that kubernetes-validate bundles; Strimzi and Prometheus Operator resources are checked
for the properties the platform relies on. Every process's settings are loaded from what its
pods would receive, so a setting the code does not know (the process refuses to start) or a
missing one fails here rather than in a rollout.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path

import pytest

from deploy_support import (
    K8S,
    OTEL_VARIABLES,
    collector_config_problems,
    ROOT,
    declared_topics,
    env_prefix,
    files_declaring_publishes,
    load_settings_with,
    need,
    platform_metrics,
    processes,
    promql_metrics,
    settings_class,
)

# The oldest Kubernetes minor the manifests support, and a current one.
KUBERNETES_VERSIONS = ("1.31.0", "1.35.0")
OVERLAYS = ("production", "staging")
# Topics of the cross-service event contract (each also has a <topic>.dlq).
CONTRACT_TOPICS = {
    "techbridge.catalog.organisation.v1",
    "techbridge.catalog.achievement.v1",
    "techbridge.matching.demand.v1",
    "techbridge.matching.transfer.v1",
    "techbridge.matching.match.v1",
    "techbridge.valuation.valuation.v1",
    "techbridge.vouchers.programme.v1",
    "techbridge.vouchers.voucher.v1",
    "techbridge.vouchers.redemption.v1",
    "techbridge.vouchers.agency.v1",
}
OPERATOR_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "ServiceMonitor", "PrometheusRule"}


def render(path: Path):
    need("yaml")
    import kustomize_lite

    return kustomize_lite.render(path)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    out = {"base": render(K8S / "base")}
    for overlay in OVERLAYS:
        out[overlay] = render(K8S / "overlays" / overlay)
    return out


@pytest.fixture(scope="module")
def secrets_example() -> list[dict]:
    yaml = need("yaml")
    return [d for d in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text()) if d]


def find(resources, kind, name=None) -> list[dict]:
    return [r for r in resources if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)]


def one(resources, kind, name) -> dict:
    found = find(resources, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def matches(selector: dict, labels: dict) -> bool:
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        present = labels.get(expr["key"])
        if expr["operator"] == "In" and present not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and present in expr["values"]:
            return False
        if expr["operator"] == "Exists" and expr["key"] not in labels:
            return False
    return True


# --- the renderer itself ----------------------------------------------------------------


def test_renderer_merges_named_lists_and_applies_json_patches(tmp_path):
    need("yaml")
    import kustomize_lite

    base = tmp_path / "base"
    base.mkdir()
    (base / "kustomization.yaml").write_text("resources: [d.yaml]\n")
    (base / "d.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a, labels: {x: '1'}}\n"
        "spec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n"
        "        - {name: a, image: 'techbridge/a:dev', env: [{name: A, value: '1'}, {name: B, value: '2'}]}\n"
        "        - {name: b, image: 'other/b:1.0'}\n"
    )
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "namespace: ns\nresources: [../base]\n"
        "labels: [{pairs: {team: t}, includeSelectors: false}]\n"
        "images: [{name: techbridge/a, newName: reg.example/a, newTag: '1.2'}]\n"
        "patches:\n  - path: p.yaml\n"
        "  - target: {kind: Deployment, labelSelector: 'x in (1,2)'}\n"
        "    patch: '[{op: replace, path: /spec/replicas, value: 5}]'\n"
    )
    (overlay / "p.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n"
        "spec:\n  template:\n    spec:\n      containers:\n        - {name: a, env: [{name: B, value: '3'}]}\n"
    )
    [d] = kustomize_lite.render(overlay)
    assert d["metadata"]["namespace"] == "ns" and d["metadata"]["labels"] == {"x": "1", "team": "t"}
    assert d["spec"]["replicas"] == 5
    a, b = d["spec"]["template"]["spec"]["containers"]
    assert a["image"] == "reg.example/a:1.2" and b["image"] == "other/b:1.0"
    assert a["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]

    (overlay / "kustomization.yaml").write_text("resources: [../base]\nreplicas: [{name: a, count: 1}]\n")
    with pytest.raises(kustomize_lite.KustomizeError, match="unsupported"):
        kustomize_lite.render(overlay)
    (overlay / "kustomization.yaml").write_text("resources: [../base]\npatches: [{target: {kind: Job}, patch: '[]'}]\n")
    with pytest.raises(kustomize_lite.KustomizeError, match="matches no resource"):
        kustomize_lite.render(overlay)


# --- schema validation --------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_resources_match_the_kubernetes_schemas(rendered, secrets_example, version):
    kv = need("kubernetes_validate")
    problems, checked = [], Counter()
    for variant, resources in [*rendered.items(), ("secrets.example", secrets_example)]:
        for r in resources:
            if r["kind"] in OPERATOR_KINDS:
                continue
            try:
                kv.validate(copy.deepcopy(r), version, strict=True)
                checked[r["kind"]] += 1
            except kv.ValidationError as exc:
                problems.append(f"{variant} {r['kind']}/{r['metadata']['name']}: {exc}")
            except kv.SchemaNotFoundError:
                problems.append(f"{variant} {r['kind']} {r['apiVersion']}: no such API in Kubernetes {version}")
    assert not problems, "\n".join(problems)
    for kind in ("Deployment", "Service", "ConfigMap", "Job", "HorizontalPodAutoscaler",
                 "PodDisruptionBudget", "Ingress", "Secret", "Namespace", "ServiceAccount", "NetworkPolicy"):
        assert checked[kind], f"no {kind} was validated"


def test_strict_validation_would_catch_a_mistake(rendered):
    kv = need("kubernetes_validate")
    deployment = copy.deepcopy(one(rendered["base"], "Deployment", "catalog"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_only_known_resource_kinds_are_used(rendered):
    core = {"Deployment", "Service", "ServiceAccount", "ConfigMap", "Job", "HorizontalPodAutoscaler",
            "PodDisruptionBudget", "Ingress", "Namespace", "NetworkPolicy"}
    for variant, resources in rendered.items():
        kinds = {r["kind"] for r in resources}
        assert kinds <= core | OPERATOR_KINDS, f"{variant}: unchecked kinds {kinds - core - OPERATOR_KINDS}"


# --- each process -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(processes()))
def test_every_process_has_its_full_set_of_resources(rendered, name):
    base = rendered["base"]
    for kind in ("Deployment", "Service", "ServiceAccount", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        one(base, kind, name)
    one(base, "ConfigMap", f"{name}-config")
    one(base, "Job", f"{name}-migrate")


def pod_labels(resource: dict) -> dict:
    return resource["spec"]["template"]["metadata"]["labels"]


@pytest.mark.parametrize("name", sorted(processes()))
def test_deployment_probes_resources_and_security(rendered, name):
    base = rendered["base"]
    deployment = one(base, "Deployment", name)
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    port = settings_class(name).model_fields["port"].default
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    for tier in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][tier]), f"{name}: {tier} incomplete"
    assert quantity(container["resources"]["limits"]["memory"]) >= quantity(container["resources"]["requests"]["memory"])
    assert quantity(container["resources"]["limits"]["cpu"]) >= quantity(container["resources"]["requests"]["cpu"])
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"  # restricted PSS
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["image"] == f"techbridge/{name}:dev"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == "/metrics"
    # Selectors: the Deployment owns its pods; the Service and PDB pick them, not migration pods.
    assert matches(deployment["spec"]["selector"], pod_labels(deployment))
    job = one(base, "Job", f"{name}-migrate")
    assert not matches(deployment["spec"]["selector"], pod_labels(job))
    service = one(base, "Service", name)
    assert matches({"matchLabels": service["spec"]["selector"]}, pod_labels(deployment))
    assert not matches({"matchLabels": service["spec"]["selector"]}, pod_labels(job))
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pdb = one(base, "PodDisruptionBudget", name)
    assert matches(pdb["spec"]["selector"], pod_labels(deployment))
    hpa = one(base, "HorizontalPodAutoscaler", name)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def quantity(value) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}
    m = re.fullmatch(r"([\d.]+)(m|Ki|Mi|Gi|)", str(value))
    assert m, f"unsupported quantity {value}"
    return float(m.group(1)) * units[m.group(2)]


@pytest.mark.parametrize("name", sorted(processes()))
def test_migration_job_runs_the_same_image_with_the_same_settings(rendered, name):
    for variant, resources in rendered.items():
        job = one(resources, "Job", f"{name}-migrate")
        deployment = one(resources, "Deployment", name)
        pod = job["spec"]["template"]["spec"]
        [migrate] = pod["containers"]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert migrate["command"] == ["python", "/app/migrate.py", name]
        assert pod["restartPolicy"] == "Never"
        assert migrate["image"] == container["image"], variant
        assert migrate["env"] == container["env"] and migrate["envFrom"] == container["envFrom"]
        assert pod["securityContext"]["runAsNonRoot"] is True


# --- settings the pods receive --------------------------------------------------------------


def secret_values(secrets: list[dict]) -> dict[tuple[str, str], str]:
    return {(s["metadata"]["name"], k): v for s in secrets for k, v in s["stringData"].items()}


def realistic(secret: str, key: str, name: str) -> str:
    if secret.endswith("-database"):
        return f"postgresql+asyncpg://{name}:{'ab12' * 8}@postgres-{name}.internal:5432/techbridge_{name}"
    return "c0ffee" * 8


def pod_environment(resources, deployment, values) -> dict[str, str]:
    """The environment Kubernetes would give the container; `values` answers secretKeyRefs."""
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        cm = one(resources, "ConfigMap", source["configMapRef"]["name"])
        env.update({k: str(v) for k, v in cm["data"].items()})
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        value = values(ref["name"], ref["key"])
        if value is None:
            assert ref.get("optional"), f"secret {ref['name']}/{ref['key']} is required"
            continue
        env[item["name"]] = value
    return env


@pytest.mark.parametrize("variant", ["base", *OVERLAYS])
@pytest.mark.parametrize("name", sorted(processes()))
def test_each_process_accepts_what_its_pods_receive_in_production(rendered, variant, name):
    resources = rendered[variant]
    deployment = one(resources, "Deployment", name)
    env = pod_environment(resources, deployment, lambda s, k: realistic(s, k, name))
    otel = {k: env.pop(k) for k in OTEL_VARIABLES & set(env)}
    assert otel == {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"}
    prefix = env_prefix(name)
    assert all(k.startswith(prefix) for k in env), f"{name} gets another process's setting"
    settings = load_settings_with(name, env)
    assert settings.environment == "production"
    assert settings.host == "0.0.0.0"
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert settings.port == container["ports"][0]["containerPort"]
    kafka = one(resources, "Kafka", "techbridge")
    assert settings.kafka_bootstrap_servers == f"{kafka['metadata']['name']}-kafka-bootstrap:9092"
    assert settings.kafka_topic_replication_factor == 3
    assert settings.database_url.endswith(f"/techbridge_{name}")
    for field, info in type(settings).model_fields.items():
        default = info.default
        if field.endswith(("_url", "_servers")) and isinstance(default, str) and "127.0.0.1" in default:
            assert prefix + field.upper() in env, f"{prefix}{field.upper()} must be set for the cluster"
    if name == "gateway":
        services = {s["metadata"]["name"]: s for s in find(resources, "Service")}
        for upstream, url in settings.upstreams().items():
            host, port = re.fullmatch(r"http://([\w-]+):(\d+)", url).groups()
            assert host == upstream and int(port) == services[host]["spec"]["ports"][0]["port"]


def test_secret_references_exist_and_placeholders_are_refused(rendered, secrets_example):
    from techbridge_shared.settings import ConfigurationError

    examples = secret_values(secrets_example)
    base = rendered["base"]
    for name in processes():
        deployment = one(base, "Deployment", name)
        for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert (ref["name"], ref["key"]) in examples, f"secrets.example.yaml lacks {ref}"
        env = pod_environment(base, deployment, lambda s, k: examples.get((s, k)))
        with pytest.raises(ConfigurationError, match="development default"):
            load_settings_with(name, env)
    assert not find(base, "Secret"), "Secrets stay out of Kustomize (secrets.example.yaml)"


# --- Kafka ----------------------------------------------------------------------------------


def test_kafka_cluster_has_three_brokers_in_kraft_mode(rendered):
    for variant, resources in rendered.items():
        [kafka] = find(resources, "Kafka")
        name = kafka["metadata"]["name"]
        assert kafka["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
        assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
        assert "zookeeper" not in kafka["spec"]
        config = kafka["spec"]["kafka"]["config"]
        assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
        assert config["offsets.topic.replication.factor"] == 3
        assert config["transaction.state.log.replication.factor"] == 3
        assert config["transaction.state.log.min.isr"] == 2
        assert config["auto.create.topics.enable"] is False
        assert any(listener["port"] == 9092 and listener["tls"] is False for listener in kafka["spec"]["kafka"]["listeners"])
        pools = find(resources, "KafkaNodePool")
        assert all(p["metadata"]["labels"]["strimzi.io/cluster"] == name for p in pools)
        brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
        controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
        assert brokers == 3, f"{variant}: {brokers} brokers"
        assert controllers >= 3 and controllers % 2 == 1, f"{variant}: a KRaft quorum needs an odd count >= 3"
        for pool in pools:
            volumes = pool["spec"]["storage"]["volumes"]
            assert all(v["type"] == "persistent-claim" for v in volumes)
            assert sum(v.get("kraftMetadata") == "shared" for v in volumes) == 1


def kafka_topics(resources) -> dict[str, dict]:
    topics = {}
    for t in find(resources, "KafkaTopic"):
        assert t["spec"].get("topicName", t["metadata"]["name"]) == t["metadata"]["name"]
        topics[t["metadata"]["name"]] = t
    return topics


TOPIC_LITERAL = re.compile(r"[\"']techbridge\.([a-z0-9-]+)\.([a-z0-9-]+)(?:\.([a-z0-9-]+))?\.v(\d+)(\.dlq)?[\"']")


def topics_named_in_source() -> set[str]:
    """Topic and event-type string literals in the processes' code, as topic names."""
    found = set()
    for directory in processes().values():
        for path in directory.rglob("*.py"):
            if "tests" in path.relative_to(directory).parts:
                continue
            for service, aggregate, _verb, version, _dlq in TOPIC_LITERAL.findall(path.read_text(errors="replace")):
                found.add(f"techbridge.{service}.{aggregate}.v{version}")
    return found


def test_every_topic_and_its_dead_letter_topic_exists(rendered):
    topics = kafka_topics(rendered["base"])
    declared = declared_topics()
    required = set(CONTRACT_TOPICS) | topics_named_in_source()
    for _name, spec_topics in declared.items():
        required |= spec_topics["publishes"] | spec_topics["consumes"]
    missing = sorted(t for topic in required for t in (topic, topic + ".dlq") if t not in topics)
    sources = ", ".join(str(p.relative_to(ROOT)) for p in files_declaring_publishes()) or "the event contract"
    assert not missing, f"no KafkaTopic in deploy/k8s/base/kafka/topics.yaml for {missing} (declared in {sources})"
    assert {t for t in topics if not t.endswith(".dlq")} == {t[:-4] for t in topics if t.endswith(".dlq")}


def test_topics_are_replicated_and_partitioned_for_the_consumers(rendered):
    for _variant, resources in rendered.items():
        [kafka] = find(resources, "Kafka")
        topics = kafka_topics(resources)
        for name, topic in topics.items():
            spec = topic["spec"]
            assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
            assert spec["partitions"] >= 3, name
            assert spec["replicas"] == 3, name
            assert spec["config"]["min.insync.replicas"] == 2, name
        partitions = min(t["spec"]["partitions"] for t in topics.values())
        for name in processes():
            if name == "gateway":
                continue
            # More replicas of one consumer group than partitions would sit idle.
            assert one(resources, "HorizontalPodAutoscaler", name)["spec"]["maxReplicas"] <= partitions
            cm = one(resources, "ConfigMap", f"{name}-config")["data"]
            assert int(cm[f"{env_prefix(name)}KAFKA_TOPIC_PARTITIONS"]) == partitions


def test_topic_check_reads_declarations_from_the_code(monkeypatch):
    """The check is only as good as its reading of the code: prove it sees publishes= topics."""
    import deploy_support

    monkeypatch.setattr(
        deploy_support, "declared_topics",
        lambda: {"catalog": {"publishes": {"techbridge.catalog.unlisted.v1"}, "consumes": set()}},
    )
    import test_kubernetes as me

    monkeypatch.setattr(me, "declared_topics", deploy_support.declared_topics)
    with pytest.raises(AssertionError, match="techbridge.catalog.unlisted.v1"):
        me.test_every_topic_and_its_dead_letter_topic_exists({"base": render(K8S / "base")})
    assert TOPIC_LITERAL.search('"techbridge.matching.transfer.signed.v1"')


# --- the edge and monitoring -------------------------------------------------------------------


def test_only_the_gateway_is_exposed_through_an_ingress_with_tls(rendered):
    for variant, resources in rendered.items():
        [ingress] = find(resources, "Ingress")
        rules = ingress["spec"]["rules"]
        backends = {p["backend"]["service"]["name"] for r in rules for p in r["http"]["paths"]}
        assert backends == {"gateway"}
        port_names = {p["name"] for p in one(resources, "Service", "gateway")["spec"]["ports"]}
        assert all(p["backend"]["service"]["port"]["name"] in port_names for r in rules for p in r["http"]["paths"])
        hosts = {r["host"] for r in rules}
        assert hosts <= {h for t in ingress["spec"]["tls"] for h in t["hosts"]}, f"{variant}: a host without TLS"
        public = one(resources, "ConfigMap", "gateway-config")["data"]["GATEWAY_PUBLIC_URL"]
        assert public in {f"https://{h}" for h in hosts}, f"{variant}: GATEWAY_PUBLIC_URL is not the Ingress host"


def test_prometheus_scrapes_every_process_and_alerts_read_real_metrics(rendered):
    base = rendered["base"]
    [monitor] = find(base, "ServiceMonitor")
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["honorLabels"] is True
    for name in processes():
        service = one(base, "Service", name)
        assert matches(monitor["spec"]["selector"], service["metadata"]["labels"]), f"{name} is not scraped"
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    known = platform_metrics()
    [rules] = find(base, "PrometheusRule")
    alerts = [r for g in rules["spec"]["groups"] for r in g["rules"]]
    read = set()
    for alert in alerts:
        names = promql_metrics(alert["expr"])
        read |= names
        assert all(n in known or n.startswith("kafka_") for n in names), f"{alert['alert']}: unknown {names - known}"
    for wanted in ("techbridge_outbox_oldest_age_seconds", "techbridge_dlq_records_total",
                   "techbridge_consumer_lag", "techbridge_ledger_check_ok", "techbridge_http_requests_total"):
        assert wanted in read, f"no alert reads {wanted}"


# --- overlays -------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_sets_namespace_images_and_replicas(rendered, overlay):
    resources = rendered[overlay]
    [namespace] = find(resources, "Namespace")
    for r in resources:
        if r["kind"] != "Namespace":
            assert r["metadata"]["namespace"] == namespace["metadata"]["name"], f"{r['kind']}/{r['metadata']['name']}"
        assert r["metadata"]["labels"]["app.kubernetes.io/part-of"] == "techbridge"
    for r in find(resources, "Deployment") + find(resources, "Job"):
        for c in r["spec"]["template"]["spec"]["containers"]:
            assert not c["image"].startswith("techbridge/") and not c["image"].endswith(":dev"), c["image"]
            assert c["image"].split(":")[-1] not in ("", "latest")
    floor = 3 if overlay == "production" else 1
    for hpa in find(resources, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["minReplicas"] == floor
        assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]
    for deployment in find(resources, "Deployment"):
        assert deployment["spec"]["replicas"] == floor
    for pdb in find(resources, "PodDisruptionBudget"):
        # With one replica, minAvailable: 1 would block every node drain.
        assert "maxUnavailable" in pdb["spec"] or pdb["spec"]["minAvailable"] < floor


def admitted(policies: list[dict], target_labels: dict, source_labels: dict, source_namespace: str | None) -> bool:
    """Whether some policy selecting the target lets a pod with these labels in (same namespace
    when source_namespace is None). A pod no policy selects admits everyone."""
    selecting = [p for p in policies if matches(p["spec"]["podSelector"], target_labels)]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if "namespaceSelector" in peer:
                    ns_labels = {"kubernetes.io/metadata.name": source_namespace} if source_namespace else {}
                    if source_namespace and matches(peer["namespaceSelector"], ns_labels):
                        return True
                elif source_namespace is None and matches(peer["podSelector"], source_labels):
                    return True
    return False


def test_network_policies_let_only_the_gateway_call_the_services(rendered):
    resources = rendered["production"]
    policies = find(resources, "NetworkPolicy")
    gateway = pod_labels(one(resources, "Deployment", "gateway"))
    for name in processes():
        labels = pod_labels(one(resources, "Deployment", name))
        assert admitted(policies, labels, {}, "monitoring"), f"Prometheus cannot scrape {name}"
        assert not admitted(policies, labels, {}, "somewhere-else"), f"{name} is open to any namespace"
        if name == "gateway":
            assert admitted(policies, labels, {}, "ingress-nginx")
            continue
        assert admitted(policies, labels, gateway, None), f"the gateway cannot call {name}"
        other = pod_labels(one(resources, "Deployment", "catalog" if name != "catalog" else "vouchers"))
        assert not admitted(policies, labels, other, None), f"another service can call {name}"
        for rule in (r for p in policies if matches(p["spec"]["podSelector"], labels) for r in p["spec"]["ingress"]):
            for port in rule["ports"]:
                assert port["port"] == "http"


# --- traces -------------------------------------------------------------------------------


def test_the_collector_receives_every_process_and_forwards_to_a_backend(rendered):
    yaml = need("yaml")
    for variant, resources in rendered.items():
        config = yaml.safe_load(one(resources, "ConfigMap", "otel-collector-config")["data"]["config.yaml"])
        assert collector_config_problems(config) == [], variant
        deployment = one(resources, "Deployment", "otel-collector")
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["image"].startswith("otel/opentelemetry-collector-contrib:")
        assert container["image"].split(":")[-1] not in ("", "latest")
        assert container["args"] == ["--config=/conf/config.yaml"]
        [volume] = pod["volumes"]
        assert volume["configMap"]["name"] == "otel-collector-config"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["readinessProbe"]["httpGet"]["port"] == "health"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert {p["containerPort"] for p in container["ports"]} == {4317, 4318, 13133}
        assert config["extensions"]["health_check"]["endpoint"].endswith(":13133")
        service = one(resources, "Service", "otel-collector")
        assert matches({"matchLabels": service["spec"]["selector"]}, pod_labels(deployment))
        http_port = next(p["port"] for p in service["spec"]["ports"] if p["targetPort"] == "otlp-http")
        # Every process exports to that Service and port, and the policy lets its pods in.
        policies = find(resources, "NetworkPolicy")
        for name in processes():
            process = one(resources, "Deployment", name)
            env = pod_environment(resources, process, lambda s, k: realistic(s, k, name))
            assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://otel-collector:{http_port}", (variant, name)
            assert admitted(policies, pod_labels(deployment), pod_labels(process), None), f"{name} cannot send spans"
        assert not admitted(policies, pod_labels(deployment), {"app": "other"}, None)
        one(resources, "PodDisruptionBudget", "otel-collector")
