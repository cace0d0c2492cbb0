"""Dockerfile, compose.yaml, the kind cluster files and the Tiltfile.

No container engine, kind or Tilt runs here, so these tests check what can be checked
offline: the files parse, follow the image rules, and agree with each other and with the
chart (names, ports, environment variables).
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from chat_service.config import Settings
from chat_service.envconfig import variables

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "chat"
KIND = ROOT / "deploy" / "kind"

# Environment variables the service reads (the deployment contract).
CONTRACT_ENV = {
    "GRPC_PORT",
    "METRICS_PORT",
    "DB_HOST",
    "DB_PORT",
    "DB_DATABASE",
    "DB_USERNAME",
    "DB_PASSWORD",
    "DB_POOL_MAX",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "JWT_SECRET",
    "JWT_PUBLIC_KEY_FILE",
    "JWT_ALGORITHMS",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "BACKEND_JWT_SECRET",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "MIGRATE_ON_START",
    "SHUTDOWN_GRACE_SECONDS",
    "POD_NAME",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "EXPOSE_MEMBER_EMAILS",
    "RATE_LIMIT_EDITS",
    "RATE_LIMIT_DELETES",
    "RATE_LIMIT_REACTIONS",
    "RATE_LIMIT_MARK_READ",
    "RATE_LIMIT_READS",
}
# Read by the OpenTelemetry SDK rather than chat_service's own settings.
SDK_ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"}

Obj = dict[str, Any]


def read(path: Path) -> str:
    assert path.exists(), f"{path.relative_to(ROOT)} is missing"
    return path.read_text(encoding="utf-8")


def render(values: Obj) -> list[Obj]:
    try:
        helm = importlib.import_module("helm_python")
    except ImportError:
        pytest.fail("helm-python-sdk is not installed: pip install helm-python-sdk")
    with helm.Chart.load(str(CHART)) as chart:
        manifests: dict[str, str] = chart.render(values, name="chat", namespace="chat")
    docs: list[Obj] = []
    for path, text in manifests.items():
        if not path.endswith("NOTES.txt"):
            docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def find(docs: list[Obj], kind: str, name: str) -> Obj:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"{kind}/{name} is not rendered")


def container_ports(workload: Obj) -> set[int]:
    spec = workload["spec"]["template"]["spec"]
    return {p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])}


# ---------------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------------


def dockerfile_lines() -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", read(ROOT / "Dockerfile"))
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def stages() -> list[list[str]]:
    result: list[list[str]] = []
    for line in dockerfile_lines():
        if line.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


def test_dockerfile_base_image_arg_and_stages() -> None:
    lines = dockerfile_lines()
    first_from = next(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM "))
    assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in lines[:first_from]
    all_stages = stages()
    assert len(all_stages) >= 2, "multi-stage build expected"
    for stage in all_stages:
        assert stage[0].split()[1] == "${BASE_IMAGE}", stage[0]


def test_dockerfile_final_stage_is_minimal_and_unprivileged() -> None:
    final = stages()[-1]
    text = "\n".join(final)
    for forbidden in ("pip install", "apt-get", "apk add", "gcc", "build-essential", "make "):
        assert forbidden not in text, f"final stage contains {forbidden!r}"
    assert re.search(r"^COPY --from=\w+ /opt/venv /opt/venv$", text, re.M)
    users = [ln.split()[1] for ln in final if ln.upper().startswith("USER ")]
    assert users, "final stage needs USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"} and user.isdigit(), "numeric non-root USER expected"
    assert 'ENTRYPOINT ["python", "-m", "chat_service"]' in final
    exposed = {p for ln in final if ln.startswith("EXPOSE") for p in ln.split()[1:]}
    assert exposed == {"50051", "9464"}


def test_dockerfile_generates_stubs_like_make_proto() -> None:
    builder = "\n".join(stages()[0])
    match = re.search(r"-m grpc_tools\.protoc (.+?proto/\*\.proto)", builder)
    assert match, "builder must generate the stubs from every proto/*.proto"
    ours = set(shlex.split(match.group(1)))
    assert {"-Ichat_service/gen=proto", "--python_out=service", "--grpc_python_out=service"} <= (
        ours
    )
    makefile = ROOT / "Makefile"
    if makefile.exists():
        recipe = re.sub(r"\\\n", " ", read(makefile))
        make = re.search(r"-m grpc_tools\.protoc (.+?proto/\*\.proto)", recipe)
        assert make, "Makefile proto target not found"
        assert ours == set(shlex.split(make.group(1))), "Dockerfile and `make proto` differ"
    # The generator pins come from pyproject's dev extra.
    dev = tomllib.loads(read(ROOT / "pyproject.toml"))["project"]["optional-dependencies"]["dev"]
    pinned = {d.split("=")[0].strip() for d in dev}
    assert {"grpcio-tools", "mypy-protobuf"} <= pinned


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [ln.strip() for ln in read(ROOT / ".dockerignore").splitlines()]
    rules = [ln for ln in lines if ln and not ln.startswith("#")]
    assert rules[0] == "*", "start from an empty context"
    for needed in ("!pyproject.toml", "!README.md", "!proto/", "!service/"):
        assert needed in rules
    assert "**/__pycache__" in rules


# ---------------------------------------------------------------------------------------------
# compose.yaml
# ---------------------------------------------------------------------------------------------


def compose() -> Obj:
    data = yaml.safe_load(read(ROOT / "compose.yaml"))
    assert isinstance(data, dict)
    return data


def test_compose_services() -> None:
    services = compose()["services"]
    assert set(services) >= {"chat", "migrate", "envoy", "postgres", "redis"}
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    assert services["envoy"]["image"].startswith("envoyproxy/envoy:")
    assert "./deploy/envoy/envoy.yaml:/etc/envoy/envoy.yaml:ro" in services["envoy"]["volumes"]
    assert (ROOT / "deploy" / "envoy" / "envoy.yaml").exists()
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    chat = services["chat"]
    assert chat["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert chat["deploy"]["replicas"] >= 1
    assert "ports" not in chat, "published ports would stop `--scale chat=N`"
    grace = float(chat["environment"]["SHUTDOWN_GRACE_SECONDS"])
    assert float(chat["stop_grace_period"].rstrip("s")) > grace
    check = chat["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"]
    compile(check[3], "compose-healthcheck", "exec")
    assert "chat.ChatService" in check[3]


def test_compose_env_matches_the_contract() -> None:
    services = compose()["services"]
    for name in ("chat", "migrate"):
        env = services[name]["environment"]
        assert set(env) <= CONTRACT_ENV, set(env) - CONTRACT_ENV
        assert {"DB_HOST", "DB_PASSWORD", "REDIS_HOST", "JWT_SECRET", "GRPC_PORT"} <= set(env)
        assert env["DB_HOST"] == "postgres" and env["REDIS_HOST"] == "redis"
    assert services["chat"]["environment"]["MIGRATE_ON_START"] == "false"


def test_compose_envoy_points_at_the_chat_service() -> None:
    config = yaml.safe_load(read(ROOT / "deploy" / "envoy" / "envoy.yaml"))
    port = int(compose()["services"]["chat"]["environment"]["GRPC_PORT"])
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] == "envoy_admin":  # Envoy's own admin, on loopback
            continue
        for endpoint in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]:
            address = endpoint["endpoint"]["address"]["socket_address"]
            assert address == {"address": "chat", "port_value": port}
    listeners = {item["name"]: item for item in config["static_resources"]["listeners"]}
    published = compose()["services"]["envoy"]["ports"]
    gateway_port = listeners["chat_gateway"]["address"]["socket_address"]["port_value"]
    assert published == [f"127.0.0.1:{gateway_port}:8080"], (
        "only the gRPC / gRPC-Web port is published, and on loopback only"
    )


def test_chart_env_matches_the_contract_and_the_code() -> None:
    values = yaml.safe_load(read(CHART / "ci" / "ha-values.yaml"))
    docs = render(values)
    env = set(find(docs, "ConfigMap", "chat")["data"])
    deployment = find(docs, "Deployment", "chat")
    env |= {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env <= CONTRACT_ENV, env - CONTRACT_ENV
    read_by_service = {v.name for v in variables(Settings)}
    unread = env - SDK_ENV - read_by_service
    assert not unread, f"set by the chart but not read by load_settings: {unread}"


# ---------------------------------------------------------------------------------------------
# kind and Tilt
# ---------------------------------------------------------------------------------------------


def kind_values() -> Obj:
    data = yaml.safe_load(read(KIND / "values-kind.yaml"))
    assert isinstance(data, dict)
    return data


def test_kind_config_maps_the_envoy_node_ports() -> None:
    config = yaml.safe_load(read(KIND / "kind-config.yaml"))
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    (node,) = config["nodes"]
    assert node["role"] == "control-plane"
    mappings = {m["hostPort"]: m["containerPort"] for m in node["extraPortMappings"]}
    svc = find(render(kind_values()), "Service", "chat-envoy")
    assert svc["spec"]["type"] == "NodePort"
    node_ports = {p["name"]: p["nodePort"] for p in svc["spec"]["ports"]}
    # Only the gRPC / gRPC-Web port: Envoy's admin is never published.
    assert mappings == {8080: node_ports["http"]}
    assert node_ports == kind_values()["envoy"]["service"]["nodePorts"]


def test_up_script() -> None:
    script = read(KIND / "up.sh")
    result = subprocess.run(["bash", "-n", str(KIND / "up.sh")], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    for needed in (
        "kind create cluster",
        "deploy/kind/kind-config.yaml",
        "docker build",
        "kind load docker-image",
        "helm upgrade --install",
        "deploy/kind/values-kind.yaml",
        "deploy/helm/chat",
        "helm test",
    ):
        assert needed in script, needed


def tiltfile() -> str:
    return read(ROOT / "Tiltfile")


def tilt_sets() -> list[str]:
    match = re.search(r"set=\[(.*?)\]", tiltfile(), re.S)
    assert match, "Tiltfile passes no set= to helm()"
    return re.findall(r"'([^']+=[^']*)'", match.group(1))


def test_tiltfile_matches_the_chart() -> None:
    text = tiltfile()
    assert "helm(\n    'deploy/helm/chat'" in text or "helm('deploy/helm/chat'" in text
    assert "values=['deploy/kind/values-kind.yaml']" in text
    image = re.search(r"docker_build\w*\(\s*'([^']+)'", text)
    assert image and image.group(1) == kind_values()["image"]["repository"]

    values = kind_values()
    for expr in tilt_sets():  # --set a.b=c
        key, _, raw = expr.partition("=")
        target = values
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = yaml.safe_load(raw)
    docs = render(values)  # the schema accepts the Tiltfile's overrides
    workloads = {
        d["metadata"]["name"]: d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}
    }
    resources = re.findall(r"k8s_resource\(\s*'([^']+)'(.*?)\)\n", text, re.S)
    assert {name for name, _ in resources} == set(workloads)
    for name, args in resources:
        for forward in re.findall(r"'(\d+):(\d+)'", args):
            assert int(forward[1]) in container_ports(workloads[name]), (name, forward)
        for dep in re.findall(r"resource_deps=\[([^\]]*)\]", args):
            assert set(re.findall(r"'([^']+)'", dep)) <= set(workloads)
    forwarded = {int(c) for _, a in resources for _, c in re.findall(r"'(\d+):(\d+)'", a)}
    assert {8080, 9464, 5432} <= forwarded


def test_tiltfile_syncs_into_the_installed_package() -> None:
    text = tiltfile()
    match = re.search(r"SITE_PACKAGES = '/opt/venv/lib/python(\d+\.\d+)/site-packages'", text)
    assert match, "SITE_PACKAGES not found"
    base = re.search(r"ARG BASE_IMAGE=python:(\d+\.\d+)-", read(ROOT / "Dockerfile"))
    assert base and base.group(1) == match.group(1)
    assert "sync('service/chat_service', SITE_PACKAGES + '/chat_service')" in text
    assert "entrypoint=['python', '-m', 'chat_service']" in text
    assert "writableRootFilesystem=true" in tilt_sets()
    # The restart marker must not live under /tmp, where the chart mounts an emptyDir.
    assert "restart_file='/var/tmp/.restart-proc'" in text


# ---------------------------------------------------------------------------------------------
# One development JWT secret: compose, kind and Tilt use the one `make dev` and `chat token` use,
# and each prints or documents a mint command that works against it
# ---------------------------------------------------------------------------------------------


def dev_jwt_secret() -> str:
    tokens = importlib.import_module("chat_devstack.tokens")
    secret: str = tokens.DEV_JWT_SECRET
    return secret


def mint_with(command: str) -> str:
    """Run a printed `.../chat token ...` command with this venv's `chat`; the token."""
    words = shlex.split(command)
    assert words[0].endswith(".venv/bin/chat") and words[1] == "token", command
    chat = Path(sys.executable).parent / "chat"
    assert chat.exists(), "the `chat` CLI is not installed in the venv (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
    result = subprocess.run(
        [str(chat), *words[1:]], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "development secret" not in result.stderr, "the command must name its secret"
    return result.stdout.strip()


def assert_accepted(token: str, secret: str) -> None:
    jwt = importlib.import_module("jwt")
    claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    assert claims["sub"] == "1"


def test_launchers_use_the_dev_jwt_secret_of_make_dev() -> None:
    secret = dev_jwt_secret()
    env = compose()["services"]["chat"]["environment"]
    assert env["JWT_SECRET"] == f"${{JWT_SECRET:-{secret}}}"
    assert compose()["services"]["migrate"]["environment"]["JWT_SECRET"] == env["JWT_SECRET"]
    assert kind_values()["jwt"]["secret"] == secret
    assert f'DEV_JWT_SECRET="{secret}"' in read(KIND / "up.sh")
    # Tilt deploys with values-kind.yaml and mints with its secret.
    assert "read_yaml('deploy/kind/values-kind.yaml')['jwt']['secret']" in tiltfile()
    launchers = [ROOT / "compose.yaml", ROOT / "Tiltfile", KIND / "values-kind.yaml"]
    launchers.append(KIND / "up.sh")
    for path in launchers:
        assert "local-dev-jwt-secret" not in read(path), path.name


def test_compose_documents_a_mint_command_that_works_against_it() -> None:
    text = read(ROOT / "compose.yaml")
    (command,) = re.findall(r"TOKEN=\$\((\.venv/bin/chat token [^)]*)\)", text)
    configured = compose()["services"]["chat"]["environment"]["JWT_SECRET"]
    default = re.fullmatch(r"\$\{JWT_SECRET:-(.+)\}", configured)
    assert default
    assert_accepted(mint_with(command), default.group(1))


def test_tilt_prints_a_mint_command_that_works_against_it() -> None:
    pattern = r"print\('  TOKEN=\$\((\.venv/bin/chat token [^)]*)\)' % DEV_JWT_SECRET\)"
    (template,) = re.findall(pattern, tiltfile())
    secret = kind_values()["jwt"]["secret"]
    assert_accepted(mint_with(template % secret), secret)


STUB = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$STUB_LOG"
if [ "$(basename "$0")" = kind ] && [ "$1" = get ]; then echo chat; fi
"""


def run_up_script(tmp_path: Path, **env: str) -> tuple[str, str]:
    """up.sh with docker/kind/kubectl/helm stubbed: (its output, the commands it ran)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "kind", "kubectl", "helm"):
        (bin_dir / name).write_text(STUB, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    base = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
    run_env = {**base, **env, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_LOG": str(log)}
    result = subprocess.run(
        ["bash", str(KIND / "up.sh")], capture_output=True, text=True, timeout=60, env=run_env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, log.read_text(encoding="utf-8")


def printed_mint(output: str) -> str:
    command: str
    (command,) = re.findall(r"TOKEN=\$\((\S+/\.venv/bin/chat token [^)]*)\)", output)
    assert command.startswith(f"{ROOT}/.venv/bin/chat token "), command
    return command


def test_up_script_prints_a_mint_command_that_works_against_the_release(tmp_path: Path) -> None:
    secret = dev_jwt_secret()
    output, calls = run_up_script(tmp_path)
    (install,) = [c for c in calls.splitlines() if c.startswith("helm upgrade --install")]
    assert f"--set-string jwt.secret={secret}" in install
    assert_accepted(mint_with(printed_mint(output)), secret)
    assert "--server localhost:8080" in output


def test_up_script_with_jwt_secret_installs_and_prints_that_secret(tmp_path: Path) -> None:
    secret = "my laravel secret; with $pecial chars"
    output, calls = run_up_script(tmp_path, JWT_SECRET=secret)
    (install,) = [c for c in calls.splitlines() if c.startswith("helm upgrade --install")]
    assert f"--set-string jwt.secret={secret}" in install
    assert_accepted(mint_with(printed_mint(output)), secret)
