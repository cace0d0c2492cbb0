"""The gRPC server's connection options, from ServerSettings."""

from __future__ import annotations

from typing import Any

import grpc

from chat_service.api.server_settings import ServerSettings


def server_options(s: ServerSettings) -> list[tuple[str, Any]]:
    """grpc-core's connection limits. What a client can hold before it has authenticated is
    bounded here (streams per connection, idle connections, pings) and in the call gate
    (api/gate.py: calls waiting for their request)."""
    ms = 1000
    options: list[tuple[str, Any]] = [
        # A port already in use must be an error, not two servers silently sharing it.
        ("grpc.so_reuseport", 0),
        ("grpc.max_metadata_size", 16 * 1024),
        # Calls grpc-core holds before the application picks them up (~10 KiB each). The
        # default (1,000; hard limit 3,000) answered a reconnect storm with CANCELLED; the
        # gate answers or bounds every call it is handed, so these are only a burst buffer.
        ("grpc.server.max_pending_requests", s.max_pending_calls),
        ("grpc.server.max_pending_requests_hard_limit", 2 * s.max_pending_calls),
        ("grpc.max_concurrent_streams", s.max_concurrent_streams),
        ("grpc.max_receive_message_length", 4 * 1024 * 1024),
        ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Keepalive enforcement: pings more often than this are strikes; 2 strikes: GOAWAY.
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 2),
        # A connection with no call for this long is closed (GOAWAY).
        ("grpc.max_connection_idle_ms", int(s.max_connection_idle_seconds * ms)),
        # Every connection is renewed after this (+-10 % jitter); open streams get the grace
        # period to finish, then end and resume by position on a new connection.
        ("grpc.max_connection_age_ms", int(s.max_connection_age_seconds * ms)),
        ("grpc.max_connection_age_grace_ms", int(s.max_connection_age_grace_seconds * ms)),
    ]
    if s.compression == "gzip":
        # Responses are gzipped for clients that accept gzip (grpc-accept-encoding);
        # clients that do not (browsers through gRPC-Web) get them uncompressed.
        options.append(("grpc.default_compression_algorithm", grpc.Compression.Gzip.value))
    return options
