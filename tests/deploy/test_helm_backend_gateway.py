"""The chart's internal gateway for the backend API (`backendApi.gateway`): a second Envoy
listener that routes only chat.ChatBackend (gRPC-Web for clients/php, and native gRPC), in
its own ClusterIP Service, reachable only from labelled client pods when network policies are
on; the public Service never carries it. Rendered with the option off and on, validated as the
chart's other tests do (kubernetes-validate, envoy --mode validate), and run: the rendered
Envoy config in front of a real chat pod, with ChatBackend calls through the internal port."""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from chat_devstack.cluster import Cluster
from chat_devstack.ports import free_port
from chat_devstack.tokens import mint, mint_backend
from chat_service.gen import chat_backend_pb2 as bpb
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc
from tests.clients.test_php_backend_client import check_scenario, run_scenario
from tests.deploy.test_envoy_config import (
    _grpc_web_frame,
    _http,
    _parse_grpc_web,
    _poll,
    _spawn_envoy,
    _stop,
)
from tests.deploy.test_helm_chart import (
    CRD_API_VERSIONS,
    JWT,
    K8S_VERSION,
    Obj,
    documents,
    find,
    names,
    pod_spec,
    render_raw,
    tool,
)
from tests.support.backend import BackendClient
from tests.support.chat_client import expect_status

GATEWAY_ON = {**JWT, "backendApi": {"secret": "b" * 40, "gateway": {"enabled": True}}}
WITH_POLICIES = {**GATEWAY_ON, "networkPolicy": {"enabled": True}}
CLIENT_LABEL = "chat-client"  # chat.clientLabel for the release "chat"


def render(values: dict[str, Any]) -> list[Obj]:
    return documents(render_raw(values))


def envoy_yaml(docs: list[Obj]) -> str:
    text: str = find(docs, "ConfigMap", "chat-envoy")["data"]["envoy.yaml"]
    return text


def listeners(docs: list[Obj]) -> dict[str, Obj]:
    config = yaml.safe_load(envoy_yaml(docs))
    return {item["name"]: item for item in config["static_resources"]["listeners"]}


def routes_of(listener: Obj) -> dict[str, Obj]:
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (vhost,) = hcm["route_config"]["virtual_hosts"]
    return {r["match"].get("path", r["match"].get("prefix")): r["route"] for r in vhost["routes"]}


# ---------------------------------------------------------------------------------------------
# Rendered objects
# ---------------------------------------------------------------------------------------------


def test_off_by_default_nothing_routes_or_exposes_the_backend_api() -> None:
    docs = render({**JWT, "backendApi": {"secret": "b" * 40}, "networkPolicy": {"enabled": True}})
    assert set(listeners(docs)) == {"chat_gateway", "envoy_stats"}
    assert "chat.ChatBackend" not in envoy_yaml(docs)
    assert not [d for d in docs if d["metadata"]["name"] == "chat-envoy-backend"]
    (container,) = pod_spec(find(docs, "Deployment", "chat-envoy"))["containers"]
    assert "backend" not in {p["name"] for p in container["ports"]}
    policy = find(docs, "NetworkPolicy", "chat-envoy")
    assert "backend" not in {p["port"] for rule in policy["spec"]["ingress"]
                             for p in rule["ports"]}


def test_the_internal_listener_routes_only_the_backend_api() -> None:
    found = listeners(render(GATEWAY_ON))
    assert set(found) == {"chat_gateway", "chat_backend", "envoy_stats"}
    backend = found["chat_backend"]
    assert backend["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 8081}
    assert "transport_socket" not in backend["filter_chains"][0]
    hcm = backend["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["codec_type"] == "AUTO"  # gRPC-Web over HTTP/1.1 and native gRPC (h2c)
    assert [f["name"].rsplit(".", 1)[-1] for f in hcm["http_filters"]] == ["grpc_web", "router"]
    routes = routes_of(backend)
    assert set(routes) == {"/chat.ChatBackend/ExportUser", "/chat.ChatBackend/"}
    export = routes["/chat.ChatBackend/ExportUser"]
    assert (export["timeout"], export["max_stream_duration"]) == (
        "0s", {"grpc_timeout_header_max": "0s"})
    assert "retry_policy" not in export  # a stream is never replayed
    unary = routes["/chat.ChatBackend/"]
    assert unary["cluster"] == "chat_unary" and unary["timeout"] == "30s"
    # The public listener is unchanged: the chat API only.
    public = routes_of(found["chat_gateway"])
    assert not [path for path in public if "ChatBackend" in path]
    assert "/chat.ChatService/" in public


def test_its_own_cluster_ip_service_and_the_public_one_never_carries_it() -> None:
    for values in (GATEWAY_ON,
                   {**GATEWAY_ON, "envoy": {"service": {"type": "LoadBalancer"}}},
                   {**GATEWAY_ON, "envoy": {"service": {"type": "NodePort"}}}):
        docs = render(values)
        svc = find(docs, "Service", "chat-envoy-backend")
        assert svc["spec"]["type"] == "ClusterIP"
        assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
            ("backend", 8081, "backend")]
        envoy = find(docs, "Deployment", "chat-envoy")
        assert svc["spec"]["selector"] == envoy["spec"]["selector"]["matchLabels"]
        (container,) = pod_spec(envoy)["containers"]
        assert ("backend", 8081) in {(p["name"], p["containerPort"]) for p in container["ports"]}
        for other in (d for d in docs if d["kind"] == "Service" and d is not svc):
            for port in other["spec"]["ports"]:
                assert 8081 not in (port["port"], port.get("targetPort")), names(other)
                assert port.get("targetPort") != "backend", names(other)


def test_the_port_can_be_moved() -> None:
    docs = render({**GATEWAY_ON, "backendApi": {"gateway": {"enabled": True, "port": 9443}}})
    port = listeners(docs)["chat_backend"]["address"]["socket_address"]["port_value"]
    assert port == 9443
    assert find(docs, "Service", "chat-envoy-backend")["spec"]["ports"][0]["port"] == 9443


def test_with_network_policies_only_labelled_clients_reach_it() -> None:
    docs = render(WITH_POLICIES)
    policy = find(docs, "NetworkPolicy", "chat-envoy")
    rules = {tuple(p["port"] for p in rule["ports"]): rule for rule in policy["spec"]["ingress"]}
    assert rules[("backend",)]["from"] == [
        {"podSelector": {"matchLabels": {CLIENT_LABEL: "true"}}}]
    assert "from" not in rules[("http",)]  # the public port stays open to anyone
    # The chart's own client pod carries that label (the policy selects something real).
    test_pod = find(docs, "Pod", "chat-test-connection")
    assert test_pod["metadata"]["labels"][CLIENT_LABEL] == "true"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({**GATEWAY_ON, "envoy": {"enabled": False}}, "backendApi.gateway.enabled needs envoy"),
        ({**GATEWAY_ON, "backendApi": {"gateway": {"enabled": True, "port": 8080}}},
         "backendApi.gateway.port 8080 is taken"),
    ],
)
def test_contradictory_values_fail_with_a_message(values: dict[str, Any], message: str) -> None:
    helm = importlib.import_module("helm_python")
    with pytest.raises(helm.HelmRenderError, match=message):
        render_raw(values)


def test_the_schema_rejects_unknown_gateway_keys() -> None:
    helm = importlib.import_module("helm_python")
    with pytest.raises(helm.HelmValuesError, match="additional properties 'public'"):
        render_raw({**JWT, "backendApi": {"gateway": {"enabled": True, "public": True}}})


def test_rendered_objects_pass_kubernetes_validate(tmp_path: Path) -> None:
    files = []
    for i, doc in enumerate(render(WITH_POLICIES)):
        if doc["apiVersion"] in CRD_API_VERSIONS:
            continue
        path = tmp_path / f"{i:02d}-{doc['kind']}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        files.append(str(path))
    cmd = [str(tool("kubernetes-validate")), "-k", K8S_VERSION, "--strict", "--quiet", *files]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout and "WARN" not in result.stdout, result.stdout


def test_the_envoy_config_passes_envoy_validate(tmp_path: Path) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(envoy_yaml(render(GATEWAY_ON)), encoding="utf-8")
    cmd = [str(tool("envoy")), "--mode", "validate", "--disable-hot-restart", "-c", str(path),
           "--log-level", "warning"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Deprecated field" not in output, output


# ---------------------------------------------------------------------------------------------
# The rendered config, run: Envoy in front of a real chat pod
# ---------------------------------------------------------------------------------------------


class RunningGateway:
    def __init__(self, public_port: int, backend_port: int) -> None:
        self.public = f"127.0.0.1:{public_port}"
        self.backend = f"127.0.0.1:{backend_port}"
        self.backend_port = backend_port


@pytest.fixture(scope="module")
async def chart_envoy(stack: Cluster, tmp_path_factory: pytest.TempPathFactory
                      ) -> AsyncIterator[RunningGateway]:
    """The chart's envoy.yaml (gateway on), pointed at the test stack's pod on loopback."""
    workdir = tmp_path_factory.mktemp("chart-envoy")
    pod_host, _, pod_port = stack.gateway.rpartition(":")
    public, backend, stats, admin = free_port(), free_port(), free_port(), free_port()
    values = {**GATEWAY_ON, "ports": {"grpc": int(pod_port)},
              "backendApi": {"gateway": {"enabled": True, "port": backend}},
              "envoy": {"service": {"httpPort": public}, "statsPort": stats, "adminPort": admin}}
    text = envoy_yaml(render(values))
    text = text.replace("chat-headless.chat.svc.cluster.local", pod_host)
    text = text.replace("address: 0.0.0.0", "address: 127.0.0.1")
    config, log = workdir / "envoy.yaml", workdir / "envoy.log"
    config.write_text(text, encoding="utf-8")
    proc = await asyncio.to_thread(
        _spawn_envoy, str(tool("envoy")), config, workdir / "admin_address", log)
    try:
        healthy = f"chat_unary::{pod_host}:{pod_port}::health_flags::healthy"

        def ready() -> bool | None:
            try:
                status, _, body = _http(admin, "GET", "/clusters")
            except OSError:
                return None
            return True if status == 200 and healthy in body.decode().splitlines() else None

        await _poll("the chat pod healthy behind the chart's Envoy", ready, proc, log)
        yield RunningGateway(public, backend)
    finally:
        await asyncio.to_thread(_stop, proc)


async def test_native_grpc_reaches_the_backend_api_through_the_internal_port(
    stack: Cluster, chart_envoy: RunningGateway
) -> None:
    user_id = 9_300_000 + free_port()
    async with grpc.aio.insecure_channel(chart_envoy.backend) as channel:
        backend = BackendClient(channel, mint_backend(stack.backend_jwt_secret))
        assert await backend.upsert(bpb.BackendUser(id=user_id, name="Through the gateway")) == [
            user_id]
        # ExportUser streams through its own (untimed) route.
        lines: list[dict[str, Any]] = []
        call: Any = backend.stub.ExportUser(bpb.BackendUserRef(user_id=user_id),
                                            metadata=backend.metadata, timeout=20)
        async for chunk in call:
            lines.extend(json.loads(line) for line in chunk.json_lines.splitlines())
        assert [r["name"] for r in lines if r["type"] == "profile"] == ["Through the gateway"]
        # The pods still check the credential: a user token gets nothing.
        as_user = BackendClient(channel, mint(stack.jwt_secret, user_id))
        await expect_status(grpc.StatusCode.UNAUTHENTICATED, as_user.upsert(
            bpb.BackendUser(id=user_id, name="Mallory")))
        # Only the backend API: the chat API is not routed on this port.
        chat = pb_grpc.ChatServiceStub(channel)
        await expect_status(grpc.StatusCode.UNIMPLEMENTED, chat.ListMyGroups(
            pb.ListMyGroupsRequest(), metadata=as_user.metadata, timeout=10))


async def test_grpc_web_reaches_the_backend_api_through_the_internal_port(
    stack: Cluster, chart_envoy: RunningGateway
) -> None:
    """What clients/php's ChatBackendClient sends: gRPC-Web over HTTP/1.1."""
    user_id = 9_400_000 + free_port()
    request = bpb.UpsertUsersRequest(users=[bpb.BackendUser(id=user_id, name="From PHP")])
    headers = {"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1",
               "Authorization": f"Bearer {mint_backend(stack.backend_jwt_secret)}"}
    status, _, body = await asyncio.to_thread(
        _http, chart_envoy.backend_port, "POST", "/chat.ChatBackend/UpsertUsers",
        _grpc_web_frame(request.SerializeToString()), headers)
    assert status == 200
    messages, trailers = _parse_grpc_web(body)
    assert trailers["grpc-status"] == "0", trailers
    assert list(bpb.UpsertUsersResponse.FromString(messages[0]).changed_ids) == [user_id]


async def test_the_public_port_never_routes_the_backend_api(
    stack: Cluster, chart_envoy: RunningGateway
) -> None:
    async with grpc.aio.insecure_channel(chart_envoy.public) as channel:
        backend = BackendClient(channel, mint_backend(stack.backend_jwt_secret))
        await expect_status(grpc.StatusCode.UNIMPLEMENTED, backend.upsert(
            bpb.BackendUser(id=9_500_000, name="Nope")))


def test_the_php_backend_client_works_through_the_internal_listener(
    stack: Cluster, chart_envoy: RunningGateway
) -> None:
    """clients/php's whole backend scenario (tests/clients/test_php_backend_client.py, with
    Debian's PHP): users through the chart's public listener, ChatBackendClient through the
    internal one, as a Laravel pod on a chart deployment does."""
    out, ids = run_scenario(stack, gateway=chart_envoy.public,
                            backend_url=f"http://{chart_envoy.backend}")
    check_scenario(out, ids)


def test_the_notes_say_where_the_backend_reaches_it() -> None:
    text = render_raw(WITH_POLICIES)["chat/templates/NOTES.txt"]
    assert "CHAT_BACKEND_URL=http://chat-envoy-backend.chat.svc.cluster.local:8081" in text
    assert 'chat-client: "true"' in text
    off = render_raw({**JWT, "backendApi": {"secret": "b" * 40}})["chat/templates/NOTES.txt"]
    assert "CHAT_BACKEND_URL" not in off
