"""Routes and CORS of the public listener: streams (sticky), file transfers, unary calls."""

from __future__ import annotations

from collections.abc import Sequence

from chat_devstack.envoy.options import (
    ALLOW_HEADERS,
    BACKEND_SERVICE,
    EXPOSE_HEADERS,
    JSON,
    LIMITS,
    SERVICE,
    STATIC_CLUSTER,
    STREAMING_METHODS,
    STREAMS_CLUSTER,
    TRANSFER_METHODS,
    TYPE,
    UNARY_CLUSTER,
    UNARY_TIMEOUT,
    EnvoyOptions,
)


def cors_policy(allowed_origins: Sequence[str]) -> JSON:
    """The virtual host's CORS policy (``allowed_origins`` is checked by EnvoyOptions)."""
    # The CORS filter treats a matcher that matches the literal "*" as "any origin"; it always
    # echoes the request's Origin back rather than sending "*".
    matchers: list[JSON] = [{"exact": origin} for origin in allowed_origins]
    return {
        "@type": TYPE + "envoy.extensions.filters.http.cors.v3.CorsPolicy",
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
                    "@type": TYPE
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


def routes(options: EnvoyOptions) -> list[JSON]:
    """The public listener's routes, in match order."""
    found: list[JSON] = []
    for method in STREAMING_METHODS:
        idle = (
            LIMITS["legacy_stream_idle_timeout"]
            if method == "StreamMessages"
            else LIMITS["stream_route_idle_timeout"]
        )
        found.append(
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
        found.append(
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
    if options.with_static:
        found.append(_static_route())
    if options.public_reflection:
        for version in ("v1", "v1alpha"):
            found.append(
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
    if options.public_health:
        # Check only (not Watch). Note: the service name is in the request body, so this also
        # answers per-dependency names ("redis", "postgres"); hence off by default.
        found.append(_unary_route("health", {"path": "/grpc.health.v1.Health/Check"}))
    if options.backend_api:
        # The app's backend API (issue 15): behind its own credential, but reachable only
        # where this switch is on (a listener only the backend reaches).
        found.extend(backend_routes())
    # Only the chat API; any other path gets 404 from Envoy (UNIMPLEMENTED for gRPC).
    found.append(_unary_route("unary", {"prefix": f"/{SERVICE}/"}))
    return found


def backend_routes() -> list[JSON]:
    """``chat.ChatBackend`` (the app backend's API): ExportUser streams (no route timeout, an
    idle timeout, never retried), every other method is unary."""
    return [
        {
            "name": "backend_ExportUser",
            "match": {"path": f"/{BACKEND_SERVICE}/ExportUser"},
            "route": {
                "cluster": UNARY_CLUSTER,
                "timeout": "0s",
                "idle_timeout": LIMITS["stream_route_idle_timeout"],
                "max_stream_duration": {"grpc_timeout_header_max": "0s"},
            },
        },
        _unary_route("backend", {"prefix": f"/{BACKEND_SERVICE}/"}),
    ]
