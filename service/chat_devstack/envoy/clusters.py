"""Clusters: the chat pods (unary and sticky streams), the static web server, Envoy's admin."""

from __future__ import annotations

from chat_devstack.envoy.options import (
    ADMIN_CLUSTER,
    HTTP_OPTIONS_KEY,
    JSON,
    LIMITS,
    SERVICE,
    STATIC_CLUSTER,
    TLS_TYPE,
    TYPE,
    EnvoyOptions,
    Upstream,
    is_ip,
    socket_address,
)


def cluster(name: str, lb_policy: str, options: EnvoyOptions) -> JSON:
    """A cluster of the chat pods (the unary and the streams clusters differ in lb_policy)."""
    dns_name = options.dns_name
    if dns_name is not None:
        # compose service / k8s headless service: every A record (pod IP) is an endpoint.
        hosts = [Upstream(dns_name, options.dns_port)]
        cluster_type = "STRICT_DNS"
    else:
        assert options.upstreams is not None
        hosts = list(options.upstreams)
        cluster_type = "STATIC" if all(is_ip(u.host) for u in hosts) else "STRICT_DNS"

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
                        {"endpoint": {"address": socket_address(u.host, u.port)}} for u in hosts
                    ]
                }
            ],
        },
        "typed_extension_protocol_options": {
            HTTP_OPTIONS_KEY: {
                "@type": TYPE + HTTP_OPTIONS_KEY,
                "explicit_http_config": {
                    "http2_protocol_options": {
                        # gRPC servers treat pings more frequent than every 5 minutes on a
                        # connection without data as abuse (GOAWAY "too_many_pings"), so ping
                        # rarely; TCP keepalive below catches dead peers sooner.
                        "connection_keepalive": {"interval": "300s", "timeout": "20s"},
                        # Envoy ignores the pods' advertised SETTINGS_MAX_CONCURRENT_STREAMS
                        # (GRPC_MAX_CONCURRENT_STREAMS, 1024) and would queue streams past it
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
    if options.upstream_tls:
        tls: JSON = {
            "@type": TLS_TYPE + "UpstreamTlsContext",
            "common_tls_context": {"alpn_protocols": ["h2"]},
        }
        if dns_name is not None:
            tls["sni"] = dns_name
        if options.upstream_ca_file is not None:
            tls["common_tls_context"]["validation_context"] = {
                "trusted_ca": {"filename": options.upstream_ca_file}
            }
        cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": tls}
    return cluster


def static_cluster(upstream: Upstream) -> JSON:
    """Plain HTTP/1.1 file server (the web demo); no health checks."""
    return {
        "name": STATIC_CLUSTER,
        "type": "STATIC" if is_ip(upstream.host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": STATIC_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": socket_address(upstream.host, upstream.port)}}
                    ]
                }
            ],
        },
    }



def admin_cluster(admin_port: int) -> JSON:
    return {
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": ADMIN_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": socket_address("127.0.0.1", admin_port)}}
                    ]
                }
            ],
        },
    }
