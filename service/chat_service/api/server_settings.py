"""The gRPC server's settings (app.py: address, TLS, grpc-core's connection limits, shutdown)
and admission control's (api/admission.py), in a module that imports no grpc, so the root
settings (config.py) can compose them without pulling in the gRPC layer."""

from __future__ import annotations

from dataclasses import dataclass

from chat_service.envconfig import choice, var


@dataclass(frozen=True)
class ServerSettings:
    host: str = var("GRPC_HOST", "0.0.0.0")
    port: int = var("GRPC_PORT", 50051)
    # The host name when read from the process environment (load_settings()).
    pod_name: str = var("POD_NAME", "chat-local")
    tls_cert_file: str = var("TLS_CERT_FILE", "")
    tls_key_file: str = var("TLS_KEY_FILE", "")
    compression: str = var("GRPC_COMPRESSION", "none", choice("none", "gzip"))
    max_concurrent_streams: int = var("GRPC_MAX_CONCURRENT_STREAMS", 1024)
    max_connection_idle_seconds: float = var("GRPC_MAX_CONNECTION_IDLE_SECONDS", 300.0)
    max_connection_age_seconds: float = var("GRPC_MAX_CONNECTION_AGE_SECONDS", 3600.0)
    max_connection_age_grace_seconds: float = var(
        "GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS", 300.0
    )
    max_pending_calls: int = var("GRPC_MAX_PENDING_CALLS", 5000)
    shutdown_grace_seconds: float = var("SHUTDOWN_GRACE_SECONDS", 20.0)
    shutdown_drain_seconds: float = var("SHUTDOWN_DRAIN_SECONDS", 2.0)


@dataclass(frozen=True)
class AdmissionSettings:
    """Unary calls refused at once (RESOURCE_EXHAUSTED) when the pod is full; 0 turns a
    signal off."""

    max_inflight_calls: int = var("MAX_INFLIGHT_CALLS", 500)
    max_inflight_calls_per_user: int = var("MAX_INFLIGHT_CALLS_PER_USER", 50)
    shed_loop_lag_ms: float = var("SHED_LOOP_LAG_MS", 100.0)
    max_queue_ms: float = var("MAX_QUEUE_MS", 0.0)
