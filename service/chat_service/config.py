"""The service's settings: one frozen dataclass composing each component's own.

Each field names its environment variable and its default once (envconfig.var); components
keep their settings next to their code (auth/settings.py, api/gate_settings.py,
ratelimit/limiter.py, attachments/settings.py) and `Settings` composes them. `load_settings`
reads and checks every variable once, at start, before any connection. README's
"Configuration" table is checked against these fields (tests/unit/test_settings_table.py).
Names follow the original plan's docker-compose (GRPC_PORT, DB_*, REDIS_*, JWT_SECRET).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from chat_service.api.gate_settings import GateSettings
from chat_service.attachments.settings import AttachmentSettings, load_attachment_settings
from chat_service.auth.settings import (
    BackendJwtSettings,
    JwtSettings,
    load_backend_jwt_settings,
    load_jwt_settings,
)
from chat_service.envconfig import GROUP, ConfigError, choice, load, lower, upper, var
from chat_service.ratelimit.limiter import RateRules

__all__ = ["ConfigError", "JwtSettings", "Limits", "Settings", "load_settings"]


@dataclass(frozen=True)
class Limits:
    """Input limits of the domain (INVALID_ARGUMENT names the one broken)."""

    group_name_max: int = var("LIMIT_GROUP_NAME_CHARS", 100)
    group_description_max: int = var("LIMIT_GROUP_DESCRIPTION_CHARS", 1000)
    message_max_chars: int = var("LIMIT_MESSAGE_CHARS", 4000)
    members_per_group_max: int = var("LIMIT_MEMBERS_PER_GROUP", 1000)
    history_page_default: int = var("HISTORY_PAGE_DEFAULT", 50)
    history_page_max: int = var("HISTORY_PAGE_MAX", 200)
    client_msg_id_max: int = 64
    replay_max_messages: int = var("REPLAY_MAX_MESSAGES", 2000)


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment; see README "Configuration"."""

    grpc_host: str = var("GRPC_HOST", "0.0.0.0")
    grpc_port: int = var("GRPC_PORT", 50051)
    metrics_port: int = var("METRICS_PORT", 9464)
    db_host: str = var("DB_HOST", "127.0.0.1")
    db_port: int = var("DB_PORT", 5432)
    db_database: str = var("DB_DATABASE", "chat")
    db_username: str = var("DB_USERNAME", "chat")
    db_password: str = var("DB_PASSWORD", "chat")
    db_pool_min: int = var("DB_POOL_MIN", 2)
    db_pool_max: int = var("DB_POOL_MAX", 20)
    redis_host: str = var("REDIS_HOST", "127.0.0.1")
    redis_port: int = var("REDIS_PORT", 6379)
    redis_password: str = var("REDIS_PASSWORD", "")
    broker: str = var("BROKER", "redis", choice("redis", "memory"))
    stream_shards: int = var("STREAM_SHARDS", 8)
    stream_maxlen: int = var("STREAM_MAXLEN", 100_000)
    # The host name when read from the process environment (load_settings()).
    pod_name: str = var("POD_NAME", "chat-local")
    migrate_on_start: bool = var("MIGRATE_ON_START", False)
    shutdown_grace_seconds: float = var("SHUTDOWN_GRACE_SECONDS", 20.0)
    shutdown_drain_seconds: float = var("SHUTDOWN_DRAIN_SECONDS", 2.0)
    subscriber_queue_max: int = var("SUBSCRIBER_QUEUE_MAX", 5000)
    subscriber_batch_max: int = var("SUBSCRIBER_BATCH_MAX", 500)
    recent_per_group: int = var("RECENT_MESSAGES_PER_GROUP", 500)
    recent_total: int = var("RECENT_MESSAGES_TOTAL", 50_000)
    large_group_subscribers: int = var("LARGE_GROUP_SUBSCRIBERS", 64)
    max_inflight_calls: int = var("MAX_INFLIGHT_CALLS", 500)
    max_inflight_calls_per_user: int = var("MAX_INFLIGHT_CALLS_PER_USER", 50)
    grpc_max_concurrent_streams: int = var("GRPC_MAX_CONCURRENT_STREAMS", 1024)
    grpc_max_connection_idle_seconds: float = var("GRPC_MAX_CONNECTION_IDLE_SECONDS", 300.0)
    grpc_max_connection_age_seconds: float = var("GRPC_MAX_CONNECTION_AGE_SECONDS", 3600.0)
    grpc_max_connection_age_grace_seconds: float = var(
        "GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS", 300.0
    )
    grpc_max_pending_calls: int = var("GRPC_MAX_PENDING_CALLS", 5000)
    shed_loop_lag_ms: float = var("SHED_LOOP_LAG_MS", 100.0)
    max_queue_ms: float = var("MAX_QUEUE_MS", 0.0)
    large_group_flush_ms: float = var("LARGE_GROUP_FLUSH_MS", 100.0)
    heartbeat_seconds: float = var("HEARTBEAT_SECONDS", 25.0)
    sweep_interval_seconds: float = var("SWEEP_INTERVAL_SECONDS", 2.0)
    presence_ttl_seconds: int = var("PRESENCE_TTL_SECONDS", 30)
    typing_ttl_seconds: float = var("TYPING_TTL_SECONDS", 6.0)
    max_streams_per_user: int = var("MAX_STREAMS_PER_USER", 20)
    expose_member_emails: bool = var("EXPOSE_MEMBER_EMAILS", False)
    batch_sends: bool = var("BATCH_SENDS", True)
    grpc_compression: str = var("GRPC_COMPRESSION", "none", choice("none", "gzip"))
    notify_webhook_url: str = var("NOTIFY_WEBHOOK_URL", "")
    notify_webhook_secret: str = var("NOTIFY_WEBHOOK_SECRET", "")
    notify_claim_idle_ms: int = var("NOTIFY_CLAIM_IDLE_MS", 30_000)
    otel_service_name: str = var("OTEL_SERVICE_NAME", "chat-service")
    log_level: str = var("LOG_LEVEL", "INFO", upper)
    log_format: str = var("LOG_FORMAT", "json", lower)
    tls_cert_file: str = var("TLS_CERT_FILE", "")
    tls_key_file: str = var("TLS_KEY_FILE", "")
    # Issue 15: what EraseUser does to the user's messages (tombstone: content removed, seq
    # kept; anonymise: content kept under the anonymised profile).
    erase_messages: str = var("ERASE_MESSAGES", "tombstone", choice("tombstone", "anonymise"))
    # How often each pod re-reads the backend-wide ban list (bans also reach pods at once).
    ban_refresh_seconds: float = var("BAN_REFRESH_SECONDS", 10.0)
    backend_jwt: BackendJwtSettings = field(default_factory=BackendJwtSettings, metadata=GROUP)
    jwt: JwtSettings = field(default_factory=JwtSettings, metadata=GROUP)
    limits: Limits = field(default_factory=Limits, metadata=GROUP)
    rates: RateRules = field(default_factory=RateRules, metadata=GROUP)
    gate: GateSettings = field(default_factory=GateSettings, metadata=GROUP)
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings, metadata=GROUP)

    @property
    def db_dsn(self) -> str:
        return (
            f"postgresql://{self.db_username}@{self.db_host}:{self.db_port}/{self.db_database}"
        )


def load_settings(env: Mapping[str, str] | None = None, *, for_serving: bool = True) -> Settings:
    """Read and check every variable, once, at start (before any connection); a bad value
    raises ConfigError naming the variable. Defaults are the fields' defaults.

    `for_serving=False` (the `migrate` command) does not require the token-verification keys.
    """
    e = os.environ if env is None else env
    settings = load(
        Settings,
        e,
        jwt=load_jwt_settings(e, for_serving=for_serving),
        backend_jwt=load_backend_jwt_settings(e, e.get("JWT_SECRET", "")),
        attachments=load_attachment_settings(e),
    )
    if env is None and "POD_NAME" not in e:
        settings = replace(settings, pod_name=os.uname().nodename)
    return settings
