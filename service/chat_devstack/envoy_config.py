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
* admin interface (``/stats/prometheus``, ``/clusters``, ...) on ``admin_host:admin_port``;
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
    "ALLOW_HEADERS",
    "EXPOSE_HEADERS",
    "STATIC_CLUSTER",
    "STREAMING_METHODS",
    "STREAMS_CLUSTER",
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
UNARY_TIMEOUT = "30s"

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


def _routes(with_static: bool = False) -> list[JSON]:
    routes: list[JSON] = []
    for method in STREAMING_METHODS:
        routes.append(
            {
                "name": f"stream_{method}",
                "match": {"path": f"/{SERVICE}/{method}"},
                "route": {
                    "cluster": STREAMS_CLUSTER,
                    # Streams live as long as the client wants: no route timeout, no idle
                    # timeout; a client-sent grpc-timeout is honoured without an upper bound.
                    "timeout": "0s",
                    "idle_timeout": "0s",
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
    if with_static:
        routes.append(_static_route())
    routes.append(
        {
            "name": "unary",
            "match": {"prefix": "/"},
            "route": {
                "cluster": UNARY_CLUSTER,
                "timeout": UNARY_TIMEOUT,
                # gRPC requests: the grpc-timeout header wins, capped at UNARY_TIMEOUT (which is
                # also the deadline when the client sends none).
                "max_stream_duration": {"grpc_timeout_header_max": UNARY_TIMEOUT},
                # Only failures where the request was not processed, or the server said
                # UNAVAILABLE. SendMessage is idempotent by client_msg_id, so replaying it is
                # safe.
                "retry_policy": {
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
                },
            },
        }
    )
    return routes


def _http_connection_manager(allowed_origins: Sequence[str], with_static: bool = False) -> JSON:
    return {
        "@type": _HCM_TYPE,
        "stat_prefix": "chat_gateway",
        "codec_type": "AUTO",
        # Long-lived streams must not be cut for being quiet.
        "stream_idle_timeout": "0s",
        "request_timeout": "0s",
        "use_remote_address": True,
        "http2_protocol_options": {
            # Detect vanished clients so their streams are released.
            "connection_keepalive": {"interval": "60s", "timeout": "20s"},
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
                    "routes": _routes(with_static),
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
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": _TYPE + "envoy.extensions.filters.http.router.v3.Router"},
            },
        ],
    }


def _listener(
    listen_host: str,
    listen_port: int,
    allowed_origins: Sequence[str],
    tls_cert_file: str | None,
    tls_key_file: str | None,
    with_static: bool = False,
) -> JSON:
    chain: JSON = {
        "filters": [
            {
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": _http_connection_manager(allowed_origins, with_static),
            }
        ]
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
        "filter_chains": [chain],
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
    admin_host: str = "127.0.0.1",
    admin_port: int = 9901,
    upstreams: Sequence[Upstream] | None = None,
    dns_name: str | None = None,
    dns_port: int = 50051,
    allowed_origins: Sequence[str] = ("*",),
    tls_cert_file: str | None = None,
    tls_key_file: str | None = None,
    upstream_tls: bool = False,
    upstream_ca_file: str | None = None,
    static_upstream: Upstream | None = None,
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
    _check_port("dns_port", dns_port)
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
    return {
        "admin": {"address": _socket_address(admin_host, admin_port)},
        "static_resources": {
            "listeners": [
                _listener(
                    listen_host,
                    listen_port,
                    allowed_origins,
                    tls_cert_file,
                    tls_key_file,
                    with_static=static_upstream is not None,
                )
            ],
            "clusters": clusters,
        },
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": _TYPE
                        + "envoy.extensions.resource_monitors.downstream_connections.v3"
                        + ".DownstreamConnectionsConfig",
                        "max_active_downstream_connections": 100000,
                    },
                }
            ]
        },
    }


def render(
    *,
    listen_host: str = "0.0.0.0",
    listen_port: int = 8080,
    admin_host: str = "127.0.0.1",
    admin_port: int = 9901,
    upstreams: Sequence[Upstream] | None = None,
    dns_name: str | None = None,
    dns_port: int = 50051,
    allowed_origins: Sequence[str] = ("*",),
    tls_cert_file: str | None = None,
    tls_key_file: str | None = None,
    upstream_tls: bool = False,
    upstream_ca_file: str | None = None,
    static_upstream: Upstream | None = None,
) -> str:
    """Render the Envoy bootstrap as JSON text (valid YAML, so Envoy loads it as ``.yaml``).

    Exactly one of ``upstreams`` (static ``host:port`` list, e.g. several local processes) or
    ``dns_name`` (resolved with STRICT_DNS on ``dns_port``; every address is an endpoint) must
    be given. ``allowed_origins`` holds exact origins or ``"*"``. ``tls_cert_file`` and
    ``tls_key_file`` enable downstream TLS (ALPN h2, http/1.1); ``upstream_tls`` makes Envoy
    speak h2 over TLS to the pods, verified against ``upstream_ca_file`` when given.
    ``static_upstream`` (HTTP/1.1) receives every request that is not gRPC (e.g. the web demo).
    """
    config = build_config(
        listen_host=listen_host,
        listen_port=listen_port,
        admin_host=admin_host,
        admin_port=admin_port,
        upstreams=upstreams,
        dns_name=dns_name,
        dns_port=dns_port,
        allowed_origins=allowed_origins,
        tls_cert_file=tls_cert_file,
        tls_key_file=tls_key_file,
        upstream_tls=upstream_tls,
        upstream_ca_file=upstream_ca_file,
        static_upstream=static_upstream,
    )
    return json.dumps(config, indent=2) + "\n"


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
    p.add_argument("--admin-host", default="127.0.0.1")
    p.add_argument("--admin-port", type=int, default=9901)
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
            admin_host=args.admin_host,
            admin_port=args.admin_port,
            upstreams=args.upstream,
            dns_name=args.dns_name,
            dns_port=args.dns_port,
            allowed_origins=tuple(args.allowed_origin or ("*",)),
            tls_cert_file=args.tls_cert_file,
            tls_key_file=args.tls_key_file,
            upstream_tls=args.upstream_tls,
            upstream_ca_file=args.upstream_ca_file,
            static_upstream=args.static_upstream,
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
