"""Envoy gateway configuration for ``chat.ChatService``.

Renders a complete, static Envoy (v3 API, checked against Envoy 1.40) bootstrap as JSON text.
Envoy's config loader parses YAML, and JSON is YAML, so the output can be saved as
``envoy.yaml`` and started with ``envoy -c envoy.yaml``.

What the gateway does:

* one listener, HTTP codec ``AUTO``: browsers speak gRPC-Web over HTTP/1.1 (or HTTP/2 over
  TLS) and native gRPC clients speak HTTP/2 on the same port;
* http filters ``grpc_web`` -> ``cors`` -> ``router``; the CORS policy is configured per virtual
  host through ``typed_per_filter_config`` (the deprecated ``VirtualHost.cors`` field is not used);
* two clusters with the same endpoints: ``chat_unary`` (LEAST_REQUEST) for unary calls and
  ``chat_streams`` (RING_HASH) for the long-lived ``Subscribe`` / ``StreamMessages`` streams,
  which hash on the ``authorization`` header (fallback: the client's IP) so that a user's
  streams stick to one pod;
* HTTP/2 (h2c, or h2 over TLS) to the pods, active gRPC health checks, outlier detection,
  circuit breakers raised for many concurrent streams;
* the admin interface on ``127.0.0.1:admin_port`` only (it can stop or drain Envoy), and a
  small second listener ``envoy_stats`` on ``probes_port`` that routes exactly ``/ready`` and
  ``/stats/prometheus`` to it (kubelet probes, Prometheus); it is never published;
* the public listener routes only ``/chat.ChatService/*``; gRPC health (``public_health``) and
  server reflection (``public_reflection``) are opt-in; anything else gets 404 (gRPC:
  UNIMPLEMENTED) from Envoy itself;
* edge limits against slow or greedy clients (see ``deploy/envoy/README.md``): request-header
  timeout, connection and stream idle timeouts, HTTP/2 stream and window limits, buffer limits,
  a global connection limit and the overload manager on a fixed heap budget;
* optionally (``static_upstream``) a plain HTTP/1.1 upstream for everything that is not gRPC
  (requests without an ``application/grpc*`` content type), e.g. the web demo's static files,
  so the page and its gRPC-Web calls share one origin. gRPC routes are unchanged.

Regenerate the compose config with::

    python -m chat_devstack.envoy_config --dns-name chat --dns-port 50051 \\
        --out deploy/envoy/envoy.yaml
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ADMIN_CLUSTER",
    "ALLOW_HEADERS",
    "DEFAULT_MAX_HEAP_BYTES",
    "EXPOSE_HEADERS",
    "LIMITS",
    "STATIC_CLUSTER",
    "STATS_LISTENER",
    "STREAMING_METHODS",
    "STREAMS_CLUSTER",
    "TRANSFER_METHODS",
    "UNARY_CLUSTER",
    "Upstream",
    "build_config",
    "header",
    "main",
    "render",
]

JSON = dict[str, Any]

SERVICE = "chat.ChatService"
# Streaming RPCs: routed to the sticky ring-hash cluster, never timed out, never retried.
STREAMING_METHODS: tuple[str, ...] = ("Subscribe", "StreamMessages")
UNARY_CLUSTER = "chat_unary"
STREAMS_CLUSTER = "chat_streams"
STATIC_CLUSTER = "web_static"
ADMIN_CLUSTER = "envoy_admin"
STATS_LISTENER = "envoy_stats"
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
    # Per connection to a pod (below the pods' GRPC_MAX_CONCURRENT_STREAMS of 4096).
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

_TYPE = "type.googleapis.com/"
_HCM_TYPE = _TYPE + "envoy.extensions.filters.network.http_connection_manager.v3"
_HCM_TYPE += ".HttpConnectionManager"
_HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_TLS_TYPE = _TYPE + "envoy.extensions.transport_sockets.tls.v3."


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


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _socket_address(host: str, port: int) -> JSON:
    return {"socket_address": {"address": host, "port_value": port}}


def _check_port(name: str, port: int) -> None:
    if not 0 <= port <= 65535:
        raise ValueError(f"{name} out of range: {port}")


def _cors_policy(allowed_origins: Sequence[str]) -> JSON:
    if not allowed_origins:
        raise ValueError("allowed_origins must not be empty (use '*' to allow any origin)")
    # The CORS filter treats a matcher that matches the literal "*" as "any origin"; it always
    # echoes the request's Origin back rather than sending "*".
    matchers: list[JSON] = [{"exact": origin} for origin in allowed_origins]
    return {
        "@type": _TYPE + "envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": matchers,
        "allow_methods": "GET, PUT, DELETE, POST, OPTIONS",
        "allow_headers": ",".join(ALLOW_HEADERS),
        "expose_headers": ",".join(EXPOSE_HEADERS),
        "max_age": "1728000",
        # Answer preflights from disallowed origins here (without CORS headers, so the browser
        # refuses) instead of forwarding an OPTIONS request to a gRPC server.
        "forward_not_matching_preflights": False,
    }


def _static_route() -> JSON:
    """Non-gRPC requests (no ``application/grpc*`` content type: page loads, assets)."""
    return {
        "name": "web_static",
        "match": {
            "prefix": "/",
            # A missing content-type (GET) counts as "" and so as "not gRPC".
            "headers": [
                {
                    "name": "content-type",
                    "string_match": {"prefix": "application/grpc"},
                    "invert_match": True,
                    "treat_missing_header_as_empty": True,
                }
            ],
        },
        "route": {"cluster": STATIC_CLUSTER, "timeout": UNARY_TIMEOUT},
    }


def _retry_policy() -> JSON:
    # Only failures where the request was not processed, or the server said UNAVAILABLE.
    # SendMessage is idempotent by client_msg_id, so replaying it is safe.
    return {
        "retry_on": "connect-failure,refused-stream,unavailable",
        "num_retries": 2,
        "retry_back_off": {"base_interval": "0.05s", "max_interval": "0.5s"},
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {
                    "@type": _TYPE
                    + "envoy.extensions.retry.host.previous_hosts.v3"
                    + ".PreviousHostsPredicate"
                },
            }
        ],
        "host_selection_retry_max_attempts": 3,
    }


def _unary_route(name: str, match: JSON) -> JSON:
    return {
        "name": name,
        "match": match,
        "route": {
            "cluster": UNARY_CLUSTER,
            "timeout": UNARY_TIMEOUT,
            "idle_timeout": LIMITS["unary_idle_timeout"],
            # gRPC requests: the grpc-timeout header wins, capped at UNARY_TIMEOUT (which is
            # also the deadline when the client sends none).
            "max_stream_duration": {"grpc_timeout_header_max": UNARY_TIMEOUT},
            "retry_policy": _retry_policy(),
        },
    }


def _routes(
    with_static: bool = False, public_health: bool = False, public_reflection: bool = False
) -> list[JSON]:
    routes: list[JSON] = []
    for method in STREAMING_METHODS:
        idle = (
            LIMITS["legacy_stream_idle_timeout"]
            if method == "StreamMessages"
            else LIMITS["stream_route_idle_timeout"]
        )
        routes.append(
            {
                "name": f"stream_{method}",
                "match": {"path": f"/{SERVICE}/{method}"},
                "route": {
                    "cluster": STREAMS_CLUSTER,
                    # Streams live as long as the client wants (no route timeout; a client-sent
                    # grpc-timeout is honoured without an upper bound), but one that carries
                    # no byte either way for `idle` is ended (Subscribe has heartbeats).
                    "timeout": "0s",
                    "idle_timeout": idle,
                    "max_stream_duration": {"grpc_timeout_header_max": "0s"},
                    # Sticky per user: same bearer token -> same pod (ring hash). Without the
                    # header, fall back to the client's address. No retry_policy: Envoy must not
                    # replay a stream.
                    "hash_policy": [
                        {"header": {"header_name": "authorization"}, "terminal": True},
                        {"connection_properties": {"source_ip": True}},
                    ],
                },
            }
        )
    for method in TRANSFER_METHODS:
        routes.append(
            {
                "name": f"transfer_{method}",
                "match": {"path": f"/{SERVICE}/{method}"},
                "route": {
                    "cluster": UNARY_CLUSTER,
                    "timeout": "0s",
                    "idle_timeout": LIMITS["stream_route_idle_timeout"],
                    "max_stream_duration": {"grpc_timeout_header_max": "0s"},
                },
            }
        )
    if with_static:
        routes.append(_static_route())
    if public_reflection:
        for version in ("v1", "v1alpha"):
            routes.append(
                {
                    "name": f"reflection_{version}",
                    "match": {"prefix": f"/grpc.reflection.{version}.ServerReflection/"},
                    "route": {
                        "cluster": UNARY_CLUSTER,
                        "timeout": UNARY_TIMEOUT,
                        "idle_timeout": LIMITS["unary_idle_timeout"],
                    },
                }
            )
    if public_health:
        # Check only (not Watch). Note: the service name is in the request body, so this also
        # answers per-dependency names ("redis", "postgres"); hence off by default.
        routes.append(_unary_route("health", {"path": "/grpc.health.v1.Health/Check"}))
    # Only the chat API; any other path gets 404 from Envoy (UNIMPLEMENTED for gRPC).
    routes.append(_unary_route("unary", {"prefix": f"/{SERVICE}/"}))
    return routes


def _http_connection_manager(
    allowed_origins: Sequence[str],
    with_static: bool = False,
    public_health: bool = False,
    public_reflection: bool = False,
    max_concurrent_streams: int = LIMITS["max_concurrent_streams"],
) -> JSON:
    return {
        "@type": _HCM_TYPE,
        "stat_prefix": "chat_gateway",
        "codec_type": "AUTO",
        # Slowloris: headers must be complete within this, or 408 and the connection closes.
        "request_headers_timeout": LIMITS["request_headers_timeout"],
        # Default for streams; every route sets its own idle_timeout (long-lived streams too).
        "stream_idle_timeout": LIMITS["stream_idle_timeout"],
        # No whole-request timeout here: streams are unbounded, unary routes have their own.
        "request_timeout": "0s",
        "use_remote_address": True,
        "max_request_headers_kb": LIMITS["max_request_headers_kb"],
        "common_http_protocol_options": {
            "idle_timeout": LIMITS["connection_idle_timeout"],
            "max_headers_count": LIMITS["max_headers_count"],
        },
        "http2_protocol_options": {
            # Detect vanished clients so their streams are released.
            "connection_keepalive": {"interval": "60s", "timeout": "20s"},
            # Per connection: a bounded number of streams and of unacknowledged bytes.
            "max_concurrent_streams": max_concurrent_streams,
            "initial_stream_window_size": LIMITS["initial_stream_window_size"],
            "initial_connection_window_size": LIMITS["initial_connection_window_size"],
        },
        "access_log": [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": _TYPE + "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
                },
            }
        ],
        "route_config": {
            "name": "chat_routes",
            "virtual_hosts": [
                {
                    "name": "chat",
                    "domains": ["*"],
                    "routes": _routes(with_static, public_health, public_reflection),
                    # When Envoy received the request (epoch ms): the pods refuse calls that
                    # already queued too long (MAX_QUEUE_MS). Overwritten, never trusted
                    # from the client.
                    "request_headers_to_add": [
                        {
                            "header": {"key": "x-request-start", "value": "t=%START_TIME(%s%3f)%"},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                        }
                    ],
                    "typed_per_filter_config": {
                        "envoy.filters.http.cors": _cors_policy(allowed_origins)
                    },
                    "rate_limits": TOKENLESS_RATE_LIMITS,
                }
            ],
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.grpc_web",
                "typed_config": {
                    "@type": _TYPE + "envoy.extensions.filters.http.grpc_web.v3.GrpcWeb"
                },
            },
            {
                "name": "envoy.filters.http.cors",
                "typed_config": {"@type": _TYPE + "envoy.extensions.filters.http.cors.v3.Cors"},
            },
            _tokenless_rate_limit_filter(),
            _router_filter(),
        ],
    }


# The virtual host's rate-limit action: a descriptor ("credential", "none") for requests
# without an `authorization` header; the local rate limit filter below limits only those.
TOKENLESS_RATE_LIMITS: list[JSON] = [
    {
        "actions": [
            {
                "header_value_match": {
                    "descriptor_key": "credential",
                    "descriptor_value": "none",
                    "expect_match": False,
                    "headers": [{"name": "authorization", "present_match": True}],
                }
            }
        ]
    }
]


def _tokenless_rate_limit_filter() -> JSON:
    unlimited = {"max_tokens": 1_000_000_000, "tokens_per_fill": 1_000_000_000,
                 "fill_interval": "1s"}
    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": _TYPE + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "tokenless_calls",
            # Only requests that match the descriptor are limited (the default bucket is
            # never the limit and is not consumed alongside the descriptor's).
            "token_bucket": unlimited,
            "always_consume_default_token_bucket": False,
            "descriptors": [
                {
                    "entries": [{"key": "credential", "value": "none"}],
                    "token_bucket": {
                        "max_tokens": LIMITS["tokenless_burst"],
                        "tokens_per_fill": LIMITS["tokenless_calls_per_second"],
                        "fill_interval": "1s",
                    },
                }
            ],
            "local_rate_limit_per_downstream_connection": True,
            "rate_limited_as_resource_exhausted": True,
            "filter_enabled": {
                "runtime_key": "tokenless_calls.enabled",
                "default_value": {"numerator": 100, "denominator": "HUNDRED"},
            },
            "filter_enforced": {
                "runtime_key": "tokenless_calls.enforced",
                "default_value": {"numerator": 100, "denominator": "HUNDRED"},
            },
        },
    }


def _router_filter() -> JSON:
    return {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": _TYPE + "envoy.extensions.filters.http.router.v3.Router"},
    }


def _listener(
    listen_host: str,
    listen_port: int,
    allowed_origins: Sequence[str],
    tls_cert_file: str | None,
    tls_key_file: str | None,
    with_static: bool = False,
    public_health: bool = False,
    public_reflection: bool = False,
    max_concurrent_streams: int = LIMITS["max_concurrent_streams"],
) -> JSON:
    hcm = _http_connection_manager(
        allowed_origins, with_static, public_health, public_reflection, max_concurrent_streams
    )
    chain: JSON = {
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]
    }
    if tls_cert_file is not None and tls_key_file is not None:
        chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": _TLS_TYPE + "DownstreamTlsContext",
                "common_tls_context": {
                    "alpn_protocols": ["h2", "http/1.1"],
                    "tls_certificates": [
                        {
                            "certificate_chain": {"filename": tls_cert_file},
                            "private_key": {"filename": tls_key_file},
                        }
                    ],
                },
            },
        }
    return {
        "name": "chat_gateway",
        "address": _socket_address(listen_host, listen_port),
        "per_connection_buffer_limit_bytes": LIMITS["per_connection_buffer_limit_bytes"],
        "filter_chains": [chain],
    }


def _stats_listener(host: str, port: int) -> JSON:
    """Kubelet probes and Prometheus: exactly GET /ready and /stats/prometheus of the admin."""
    routes: list[JSON] = [
        {
            "name": f"admin{path.replace('/', '_')}",
            "match": {
                "path": path,
                "headers": [{"name": ":method", "string_match": {"exact": "GET"}}],
            },
            "route": {"cluster": ADMIN_CLUSTER, "timeout": "5s"},
        }
        for path in ("/ready", "/stats/prometheus")
    ]
    hcm: JSON = {
        "@type": _HCM_TYPE,
        "stat_prefix": STATS_LISTENER,
        "codec_type": "HTTP1",
        "request_headers_timeout": LIMITS["request_headers_timeout"],
        "stream_idle_timeout": "10s",
        "request_timeout": "10s",
        "common_http_protocol_options": {"idle_timeout": "60s"},
        "route_config": {
            "name": "envoy_stats_routes",
            "virtual_hosts": [{"name": "envoy_stats", "domains": ["*"], "routes": routes}],
        },
        "http_filters": [_router_filter()],
    }
    return {
        "name": STATS_LISTENER,
        "address": _socket_address(host, port),
        "per_connection_buffer_limit_bytes": 32768,
        # Probes must still get through while the public listener is at its connection limit.
        "ignore_global_conn_limit": True,
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def _admin_cluster(admin_port: int) -> JSON:
    return {
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": ADMIN_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": _socket_address("127.0.0.1", admin_port)}}
                    ]
                }
            ],
        },
    }


def _overload_manager(max_heap_bytes: int, max_connections: int) -> JSON:
    heap = "envoy.resource_monitors.fixed_heap"

    def threshold(action: str, value: float) -> JSON:
        return {"name": action, "triggers": [{"name": heap, "threshold": {"value": value}}]}

    return {
        "refresh_interval": "0.25s",
        "resource_monitors": [
            {
                "name": heap,
                "typed_config": {
                    "@type": _TYPE
                    + "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig",
                    "max_heap_size_bytes": max_heap_bytes,
                },
            },
            {
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": _TYPE
                    + "envoy.extensions.resource_monitors.downstream_connections.v3"
                    + ".DownstreamConnectionsConfig",
                    "max_active_downstream_connections": max_connections,
                },
            },
        ],
        "actions": [
            threshold("envoy.overload_actions.shrink_heap", 0.90),
            threshold("envoy.overload_actions.disable_http_keepalive", 0.92),
            threshold("envoy.overload_actions.stop_accepting_requests", 0.95),
            {
                # Past 85 % of the budget, reset the streams holding the most buffered
                # memory, more of them the closer the heap gets to 95 %.
                "name": "envoy.overload_actions.reset_high_memory_stream",
                "triggers": [
                    {
                        "name": heap,
                        "scaled": {"scaling_threshold": 0.85, "saturation_threshold": 0.95},
                    }
                ],
            },
        ],
        # Track per-stream buffer memory for streams above 1 MiB (2^20), which is what
        # reset_high_memory_stream acts on.
        "buffer_factory_config": {"minimum_account_to_track_power_of_two": 20},
    }


def _cluster(
    name: str,
    lb_policy: str,
    upstreams: Sequence[Upstream] | None,
    dns_name: str | None,
    dns_port: int,
    upstream_tls: bool,
    upstream_ca_file: str | None,
) -> JSON:
    if dns_name is not None:
        # compose service / k8s headless service: every A record (pod IP) is an endpoint.
        hosts = [Upstream(dns_name, dns_port)]
        cluster_type = "STRICT_DNS"
    else:
        assert upstreams is not None
        hosts = list(upstreams)
        cluster_type = "STATIC" if all(_is_ip(u.host) for u in hosts) else "STRICT_DNS"

    cluster: JSON = {
        "name": name,
        "type": cluster_type,
        "connect_timeout": "1s",
        "lb_policy": lb_policy,
        "per_connection_buffer_limit_bytes": LIMITS["per_connection_buffer_limit_bytes"],
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": _socket_address(u.host, u.port)}} for u in hosts
                    ]
                }
            ],
        },
        "typed_extension_protocol_options": {
            _HTTP_OPTIONS_KEY: {
                "@type": _TYPE + _HTTP_OPTIONS_KEY,
                "explicit_http_config": {
                    "http2_protocol_options": {
                        # gRPC servers treat pings more frequent than every 5 minutes on a
                        # connection without data as abuse (GOAWAY "too_many_pings"), so ping
                        # rarely; TCP keepalive below catches dead peers sooner.
                        "connection_keepalive": {"interval": "300s", "timeout": "20s"},
                        # Envoy ignores the pods' advertised SETTINGS_MAX_CONCURRENT_STREAMS
                        # (GRPC_MAX_CONCURRENT_STREAMS, 4096) and would queue streams past it
                        # inside one connection (envoyproxy/envoy#13933): open another
                        # connection well before that.
                        "max_concurrent_streams": LIMITS["upstream_max_concurrent_streams"],
                    }
                },
            }
        },
        "upstream_connection_options": {
            "tcp_keepalive": {
                "keepalive_time": 60,
                "keepalive_interval": 10,
                "keepalive_probes": 3,
            }
        },
        "health_checks": [
            {
                "timeout": "1s",
                "interval": "2s",
                "no_traffic_interval": "2s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {"service_name": SERVICE},
            }
        ],
        # A pod that fails its health check gets its connections closed, so its streams end
        # and clients reconnect to a healthy pod.
        "close_connections_on_host_health_failure": True,
        "outlier_detection": {
            "consecutive_5xx": 5,
            "consecutive_gateway_failure": 3,
            "enforcing_consecutive_gateway_failure": 100,
            "interval": "5s",
            "base_ejection_time": "10s",
            "max_ejection_percent": 50,
        },
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": "DEFAULT",
                    "max_connections": 100000,
                    "max_pending_requests": 100000,
                    "max_requests": 100000,
                    "max_retries": 100,
                }
            ]
        },
    }
    if cluster_type == "STRICT_DNS":
        # Re-resolved every 5 s (Envoy's default), so scaled pods join quickly.
        cluster["dns_lookup_family"] = "V4_PREFERRED"
    if lb_policy == "RING_HASH":
        cluster["ring_hash_lb_config"] = {"minimum_ring_size": 1024}
    if upstream_tls:
        tls: JSON = {
            "@type": _TLS_TYPE + "UpstreamTlsContext",
            "common_tls_context": {"alpn_protocols": ["h2"]},
        }
        if dns_name is not None:
            tls["sni"] = dns_name
        if upstream_ca_file is not None:
            tls["common_tls_context"]["validation_context"] = {
                "trusted_ca": {"filename": upstream_ca_file}
            }
        cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": tls}
    return cluster


def _static_cluster(upstream: Upstream) -> JSON:
    """Plain HTTP/1.1 file server (the web demo); no health checks."""
    return {
        "name": STATIC_CLUSTER,
        "type": "STATIC" if _is_ip(upstream.host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": STATIC_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": _socket_address(upstream.host, upstream.port)}}
                    ]
                }
            ],
        },
    }


def build_config(
    *,
    listen_host: str = "0.0.0.0",
    listen_port: int = 8080,
    admin_port: int = 9901,
    probes_port: int = 9902,
    upstreams: Sequence[Upstream] | None = None,
    dns_name: str | None = None,
    dns_port: int = 50051,
    allowed_origins: Sequence[str] = ("*",),
    tls_cert_file: str | None = None,
    tls_key_file: str | None = None,
    upstream_tls: bool = False,
    upstream_ca_file: str | None = None,
    static_upstream: Upstream | None = None,
    public_health: bool = False,
    public_reflection: bool = False,
    max_heap_bytes: int = DEFAULT_MAX_HEAP_BYTES,
    max_connections: int = LIMITS["max_downstream_connections"],
    max_concurrent_streams: int = LIMITS["max_concurrent_streams"],
) -> JSON:
    """The Envoy bootstrap as a dict (see :func:`render`)."""
    if (upstreams is None) == (dns_name is None):
        raise ValueError("give exactly one of upstreams or dns_name")
    if upstreams is not None and not upstreams:
        raise ValueError("upstreams must not be empty")
    if (tls_cert_file is None) != (tls_key_file is None):
        raise ValueError("tls_cert_file and tls_key_file go together")
    if upstream_ca_file is not None and not upstream_tls:
        raise ValueError("upstream_ca_file needs upstream_tls")
    _check_port("listen_port", listen_port)
    _check_port("admin_port", admin_port)
    _check_port("probes_port", probes_port)
    _check_port("dns_port", dns_port)
    if admin_port == 0:
        raise ValueError("admin_port must be fixed: the probes listener forwards to it")
    if probes_port in (admin_port, listen_port) and probes_port != 0:
        raise ValueError("probes_port must differ from admin_port and listen_port")
    if max_heap_bytes < 16 * 1024 * 1024:
        raise ValueError(f"max_heap_bytes too small: {max_heap_bytes}")
    if max_connections < 1 or max_concurrent_streams < 1:
        raise ValueError("max_connections and max_concurrent_streams must be positive")
    for u in upstreams or ():
        _check_port(f"port of {u.host}", u.port)
    if static_upstream is not None:
        _check_port("static upstream port", static_upstream.port)

    def cluster(name: str, lb_policy: str) -> JSON:
        return _cluster(
            name, lb_policy, upstreams, dns_name, dns_port, upstream_tls, upstream_ca_file
        )

    clusters = [cluster(UNARY_CLUSTER, "LEAST_REQUEST"), cluster(STREAMS_CLUSTER, "RING_HASH")]
    if static_upstream is not None:
        clusters.append(_static_cluster(static_upstream))
    clusters.append(_admin_cluster(admin_port))
    return {
        # Loopback only, always: the admin API can stop (/quitquitquit) or drain Envoy and
        # dumps its config. Probes and Prometheus use the envoy_stats listener instead.
        "admin": {"address": _socket_address("127.0.0.1", admin_port)},
        "static_resources": {
            "listeners": [
                _listener(
                    listen_host,
                    listen_port,
                    allowed_origins,
                    tls_cert_file,
                    tls_key_file,
                    with_static=static_upstream is not None,
                    public_health=public_health,
                    public_reflection=public_reflection,
                    max_concurrent_streams=max_concurrent_streams,
                ),
                _stats_listener(listen_host, probes_port),
            ],
            "clusters": clusters,
        },
        "overload_manager": _overload_manager(max_heap_bytes, max_connections),
    }


def render(**kwargs: Any) -> str:
    """Render the Envoy bootstrap as JSON text (valid YAML, so Envoy loads it as ``.yaml``).

    Takes the keyword arguments of :func:`build_config`. Exactly one of ``upstreams`` (static
    ``host:port`` list, e.g. several local processes) or ``dns_name`` (resolved with STRICT_DNS
    on ``dns_port``; every address is an endpoint) must be given. ``allowed_origins`` holds
    exact origins or ``"*"``. ``tls_cert_file`` and ``tls_key_file`` enable downstream TLS
    (ALPN h2, http/1.1); ``upstream_tls`` makes Envoy speak h2 over TLS to the pods, verified
    against ``upstream_ca_file`` when given. ``static_upstream`` (HTTP/1.1) receives every
    request that is not gRPC (e.g. the web demo). ``public_health`` / ``public_reflection``
    route ``grpc.health.v1.Health/Check`` / server reflection on the public listener (off by
    default). The admin interface listens on ``127.0.0.1:admin_port``; ``probes_port`` (on
    ``listen_host``) serves only ``/ready`` and ``/stats/prometheus``.
    """
    return json.dumps(build_config(**kwargs), indent=2) + "\n"


def _upstream_arg(text: str) -> Upstream:
    try:
        return Upstream.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _without_out(argv: Sequence[str]) -> list[str]:
    """The command line minus ``--out FILE`` (the header must not depend on where it is written)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif not arg.startswith("--out="):
            kept.append(arg)
    return kept


def header(argv: Sequence[str]) -> str:
    """YAML comment block naming the command that generated a config."""
    command = shlex.join(["python", "-m", "chat_devstack.envoy_config", *_without_out(argv)])
    return (
        "# GENERATED FILE - do not edit by hand. Regenerate with:\n"
        f"#   {command} --out <this file>\n"
        "# (Envoy config as JSON, which is also YAML; see chat_devstack/envoy_config.py)\n"
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m chat_devstack.envoy_config",
        description="Write the Envoy gateway config for chat.ChatService.",
    )
    p.add_argument(
        "--out",
        required=True,
        help="file to write ('-' = stdout); gets a '# GENERATED' header unless it ends in .json",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--dns-name", help="DNS name of the service pods (STRICT_DNS)")
    target.add_argument(
        "--upstream",
        action="append",
        type=_upstream_arg,
        metavar="HOST:PORT",
        help="a static upstream; repeat for several",
    )
    p.add_argument("--dns-port", type=int, default=50051)
    p.add_argument("--listen-host", default="0.0.0.0")
    p.add_argument("--listen-port", type=int, default=8080)
    p.add_argument("--admin-port", type=int, default=9901, help="admin, on 127.0.0.1 only")
    p.add_argument(
        "--probes-port",
        type=int,
        default=9902,
        help="listener serving only /ready and /stats/prometheus (probes, Prometheus)",
    )
    p.add_argument(
        "--public-health",
        action="store_true",
        help="route grpc.health.v1.Health/Check on the public listener (also answers "
        "per-dependency names such as 'redis')",
    )
    p.add_argument(
        "--public-reflection",
        action="store_true",
        help="route gRPC server reflection on the public listener",
    )
    p.add_argument(
        "--max-heap-bytes",
        type=int,
        default=DEFAULT_MAX_HEAP_BYTES,
        help="overload manager heap budget (below the container's memory limit)",
    )
    p.add_argument(
        "--allowed-origin",
        action="append",
        metavar="ORIGIN",
        help="allowed CORS origin (exact, or '*'); repeat for several; default '*'",
    )
    p.add_argument("--tls-cert-file")
    p.add_argument("--tls-key-file")
    p.add_argument("--upstream-tls", action="store_true")
    p.add_argument("--upstream-ca-file")
    p.add_argument(
        "--static-upstream",
        type=_upstream_arg,
        metavar="HOST:PORT",
        help="HTTP/1.1 server for non-gRPC requests (e.g. the web demo's files)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        text = render(
            listen_host=args.listen_host,
            listen_port=args.listen_port,
            admin_port=args.admin_port,
            probes_port=args.probes_port,
            upstreams=args.upstream,
            dns_name=args.dns_name,
            dns_port=args.dns_port,
            allowed_origins=tuple(args.allowed_origin or ("*",)),
            tls_cert_file=args.tls_cert_file,
            tls_key_file=args.tls_key_file,
            upstream_tls=args.upstream_tls,
            upstream_ca_file=args.upstream_ca_file,
            static_upstream=args.static_upstream,
            public_health=args.public_health,
            public_reflection=args.public_reflection,
            max_heap_bytes=args.max_heap_bytes,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.out.endswith(".json"):
        text = header(argv) + text
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
