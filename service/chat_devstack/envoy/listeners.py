"""Listeners (the public gateway, the optional backend one, the probes/stats one) and the
overload manager."""

from __future__ import annotations

from chat_devstack.envoy.options import (
    ADMIN_CLUSTER,
    BACKEND_LISTENER,
    HCM_TYPE,
    JSON,
    LIMITS,
    STATS_LISTENER,
    TLS_TYPE,
    TYPE,
    EnvoyOptions,
    socket_address,
)
from chat_devstack.envoy.routes import backend_routes, cors_policy, routes


def _edge_limits(options: EnvoyOptions, stat_prefix: str) -> JSON:
    """The HTTP connection manager's settings shared by the public and the backend listener."""
    return {
        "@type": HCM_TYPE,
        "stat_prefix": stat_prefix,
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
            "max_concurrent_streams": options.max_concurrent_streams,
            "initial_stream_window_size": LIMITS["initial_stream_window_size"],
            "initial_connection_window_size": LIMITS["initial_connection_window_size"],
        },
        "access_log": [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": TYPE + "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
                },
            }
        ],
    }


# When Envoy received the request (epoch ms): the pods refuse calls that already queued too
# long (MAX_QUEUE_MS). Overwritten, never trusted from the client.
REQUEST_START: list[JSON] = [
    {
        "header": {"key": "x-request-start", "value": "t=%START_TIME(%s%3f)%"},
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
    }
]


def _grpc_web_filter() -> JSON:
    return {
        "name": "envoy.filters.http.grpc_web",
        "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.grpc_web.v3.GrpcWeb"},
    }


def _http_connection_manager(options: EnvoyOptions) -> JSON:
    return {
        **_edge_limits(options, "chat_gateway"),
        "route_config": {
            "name": "chat_routes",
            "virtual_hosts": [
                {
                    "name": "chat",
                    "domains": ["*"],
                    "routes": routes(options),
                    "request_headers_to_add": REQUEST_START,
                    "typed_per_filter_config": {
                        "envoy.filters.http.cors": cors_policy(options.allowed_origins)
                    },
                    "rate_limits": TOKENLESS_RATE_LIMITS,
                }
            ],
        },
        "http_filters": [
            _grpc_web_filter(),
            {
                "name": "envoy.filters.http.cors",
                "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.cors.v3.Cors"},
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
            "@type": TYPE + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
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
        "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.router.v3.Router"},
    }


def listener(options: EnvoyOptions) -> JSON:
    """The public listener ``chat_gateway`` (gRPC, gRPC-Web, optional TLS)."""
    hcm = _http_connection_manager(options)
    tls_cert_file, tls_key_file = options.tls_cert_file, options.tls_key_file
    chain: JSON = {
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]
    }
    if tls_cert_file is not None and tls_key_file is not None:
        chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": TLS_TYPE + "DownstreamTlsContext",
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
        "address": socket_address(options.listen_host, options.listen_port),
        "per_connection_buffer_limit_bytes": LIMITS["per_connection_buffer_limit_bytes"],
        "filter_chains": [chain],
    }


def backend_listener(options: EnvoyOptions, port: int) -> JSON:
    """``chat_backend``: only ``chat.ChatBackend`` (gRPC-Web for clients/php, native gRPC),
    plain HTTP, for a port only the app's backend reaches (never published). No CORS (no
    browser calls it) and no token-less limit: the pods refuse calls without the backend
    credential."""
    hcm = {
        **_edge_limits(options, BACKEND_LISTENER),
        "route_config": {
            "name": "chat_backend_routes",
            "virtual_hosts": [
                {
                    "name": BACKEND_LISTENER,
                    "domains": ["*"],
                    "routes": backend_routes(),
                    "request_headers_to_add": REQUEST_START,
                }
            ],
        },
        "http_filters": [_grpc_web_filter(), _router_filter()],
    }
    return {
        "name": BACKEND_LISTENER,
        "address": socket_address(options.listen_host, port),
        "per_connection_buffer_limit_bytes": LIMITS["per_connection_buffer_limit_bytes"],
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def stats_listener(host: str, port: int) -> JSON:
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
        "@type": HCM_TYPE,
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
        "address": socket_address(host, port),
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



def overload_manager(max_heap_bytes: int, max_connections: int) -> JSON:
    heap = "envoy.resource_monitors.fixed_heap"

    def threshold(action: str, value: float) -> JSON:
        return {"name": action, "triggers": [{"name": heap, "threshold": {"value": value}}]}

    return {
        "refresh_interval": "0.25s",
        "resource_monitors": [
            {
                "name": heap,
                "typed_config": {
                    "@type": TYPE
                    + "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig",
                    "max_heap_size_bytes": max_heap_bytes,
                },
            },
            {
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": TYPE
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
