"""What the Envoy config is made of: names, edge limits, upstreams, and the options.

:class:`EnvoyOptions` is the one description of a gateway (ports, upstreams, TLS, routes to
open); :func:`chat_devstack.envoy_config.build_config` turns it into the bootstrap dict.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

SERVICE = "chat.ChatService"
BACKEND_SERVICE = "chat.ChatBackend"  # routed only with `backend_api`
# Streaming RPCs: routed to the sticky ring-hash cluster, never timed out, never retried.
STREAMING_METHODS: tuple[str, ...] = ("Subscribe", "StreamMessages")
UNARY_CLUSTER = "chat_unary"
STREAMS_CLUSTER = "chat_streams"
STATIC_CLUSTER = "web_static"
ADMIN_CLUSTER = "envoy_admin"
STATS_LISTENER = "envoy_stats"
BACKEND_LISTENER = "chat_backend"  # only with `backend_port`
# File transfers are streams too (client / server streaming) but need no stickiness: they go
# to chat_unary with no route timeout, an idle timeout, and no retries.
TRANSFER_METHODS: tuple[str, ...] = ("UploadFile", "DownloadFile")
UNARY_TIMEOUT = "30s"

# Edge limits (deploy/envoy/README.md explains each; the Helm chart uses the same values).
LIMITS: dict[str, Any] = {
    # Slowloris: a request whose headers are not complete after this is answered 408 and its
    # connection closed.
    "request_headers_timeout": "10s",
    # A downstream connection with no active stream is closed after this.
    "connection_idle_timeout": "300s",
    # Default stream idle timeout (no bytes either way); routes below override it.
    "stream_idle_timeout": "300s",
    # Unary calls: no byte either way for this long ends the call (the route timeout is 30 s).
    "unary_idle_timeout": "30s",
    # Subscribe and file transfers: longer than the server's heartbeat (HEARTBEAT_SECONDS,
    # 25 s) on Subscribe, and than any pause between chunks.
    "stream_route_idle_timeout": "120s",
    # StreamMessages (the original wire protocol) has no heartbeat: a stream with no message
    # either way for an hour is ended; the client reconnects.
    "legacy_stream_idle_timeout": "3600s",
    # HTTP/2 per downstream connection: extra streams wait in the client until one ends.
    "max_concurrent_streams": 100,
    # Per connection to a pod (below the pods' GRPC_MAX_CONCURRENT_STREAMS of 1024).
    "upstream_max_concurrent_streams": 1000,
    "initial_stream_window_size": 65536,
    "initial_connection_window_size": 1048576,
    # Read buffer per connection (downstream and upstream); above it Envoy stops reading
    # (flow control) instead of buffering. gRPC messages up to 4 MiB still pass (streamed).
    "per_connection_buffer_limit_bytes": 1048576,
    "max_request_headers_kb": 16,  # = the pods' grpc.max_metadata_size
    "max_headers_count": 64,
    "max_downstream_connections": 20000,
    # Calls without an `authorization` header (clients of the original proto put the token in
    # the request; floods of header-only calls carry none): a token bucket per downstream
    # connection, refused by Envoy itself (RESOURCE_EXHAUSTED) beyond it. A browser tab makes
    # a few such calls a second at most; calls with the header are not limited here.
    "tokenless_calls_per_second": 20,
    "tokenless_burst": 50,
}
# 80 % of the chart's default Envoy memory limit (256 Mi): the overload manager acts before the
# kernel's OOM killer does.
DEFAULT_MAX_HEAP_BYTES = 256 * 1024 * 1024 * 80 // 100

ALLOW_HEADERS: tuple[str, ...] = (
    "content-type",
    "authorization",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "keep-alive",
    "user-agent",
    "cache-control",
    "content-transfer-encoding",
    "x-accept-content-transfer-encoding",
    "x-accept-response-streaming",
)
EXPOSE_HEADERS: tuple[str, ...] = ("grpc-status", "grpc-message", "grpc-status-details-bin")

TYPE = "type.googleapis.com/"
HCM_TYPE = TYPE + "envoy.extensions.filters.network.http_connection_manager.v3"
HCM_TYPE += ".HttpConnectionManager"
HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
TLS_TYPE = TYPE + "envoy.extensions.transport_sockets.tls.v3."


@dataclass(frozen=True)
class Upstream:
    """One gRPC server (pod/process) the gateway forwards to."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Upstream:
        """Parse ``host:port`` (IPv6 as ``[::1]:50051``)."""
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(host=host, port=int(port))


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def socket_address(host: str, port: int) -> JSON:
    return {"socket_address": {"address": host, "port_value": port}}


def check_port(name: str, port: int) -> None:
    if not 0 <= port <= 65535:
        raise ValueError(f"{name} out of range: {port}")

@dataclass(frozen=True)
class EnvoyOptions:
    """Everything a rendered gateway config depends on (validated on construction).

    Exactly one of ``upstreams`` (static ``host:port`` list, e.g. several local processes) or
    ``dns_name`` (resolved with STRICT_DNS on ``dns_port``; every address is an endpoint) must
    be given. ``allowed_origins`` holds exact origins or ``"*"``. ``tls_cert_file`` and
    ``tls_key_file`` enable downstream TLS (ALPN h2, http/1.1); ``upstream_tls`` makes Envoy
    speak h2 over TLS to the pods, verified against ``upstream_ca_file`` when given.
    ``static_upstream`` (HTTP/1.1) receives every request that is not gRPC (e.g. the web demo).
    ``public_health`` / ``public_reflection`` route ``grpc.health.v1.Health/Check`` / server
    reflection on the public listener (off by default). ``backend_api`` routes the app
    backend's ``chat.ChatBackend`` on this listener (off by default: only for a listener that
    the app's backend alone can reach). ``backend_port`` adds a second listener
    ``chat_backend`` on that port that routes only ``chat.ChatBackend`` (for a port only the
    app's backend reaches; the Helm chart's ``backendApi.gateway``). The admin interface
    listens on
    ``127.0.0.1:admin_port``; ``probes_port`` (on ``listen_host``) serves only ``/ready`` and
    ``/stats/prometheus``.
    """

    listen_host: str = "0.0.0.0"
    listen_port: int = 8080
    admin_port: int = 9901
    probes_port: int = 9902
    upstreams: Sequence[Upstream] | None = None
    dns_name: str | None = None
    dns_port: int = 50051
    allowed_origins: Sequence[str] = ("*",)
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    upstream_tls: bool = False
    upstream_ca_file: str | None = None
    static_upstream: Upstream | None = None
    public_health: bool = False
    public_reflection: bool = False
    backend_api: bool = False
    backend_port: int | None = None
    max_heap_bytes: int = DEFAULT_MAX_HEAP_BYTES
    max_connections: int = LIMITS["max_downstream_connections"]
    max_concurrent_streams: int = LIMITS["max_concurrent_streams"]

    def __post_init__(self) -> None:
        # Sequences are stored as tuples so that options are immutable and hashable.
        if self.upstreams is not None:
            object.__setattr__(self, "upstreams", tuple(self.upstreams))
        object.__setattr__(self, "allowed_origins", tuple(self.allowed_origins))
        self._validate()

    def _validate(self) -> None:
        if (self.upstreams is None) == (self.dns_name is None):
            raise ValueError("give exactly one of upstreams or dns_name")
        if self.upstreams is not None and not self.upstreams:
            raise ValueError("upstreams must not be empty")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.upstream_ca_file is not None and not self.upstream_tls:
            raise ValueError("upstream_ca_file needs upstream_tls")
        check_port("listen_port", self.listen_port)
        check_port("admin_port", self.admin_port)
        check_port("probes_port", self.probes_port)
        check_port("dns_port", self.dns_port)
        if self.admin_port == 0:
            raise ValueError("admin_port must be fixed: the probes listener forwards to it")
        if self.probes_port in (self.admin_port, self.listen_port) and self.probes_port != 0:
            raise ValueError("probes_port must differ from admin_port and listen_port")
        if self.backend_port is not None:
            check_port("backend_port", self.backend_port)
            taken = (self.admin_port, self.listen_port, self.probes_port)
            if self.backend_port in taken and self.backend_port != 0:
                raise ValueError("backend_port must differ from the other ports")
        if self.max_heap_bytes < 16 * 1024 * 1024:
            raise ValueError(f"max_heap_bytes too small: {self.max_heap_bytes}")
        if self.max_connections < 1 or self.max_concurrent_streams < 1:
            raise ValueError("max_connections and max_concurrent_streams must be positive")
        for u in self.upstreams or ():
            check_port(f"port of {u.host}", u.port)
        if self.static_upstream is not None:
            check_port("static upstream port", self.static_upstream.port)
        if not self.allowed_origins:
            raise ValueError("allowed_origins must not be empty (use '*' to allow any origin)")

    @property
    def with_static(self) -> bool:
        """Whether non-gRPC requests go to a static (HTTP/1.1) upstream."""
        return self.static_upstream is not None
