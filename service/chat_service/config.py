"""Settings read from environment variables, in one place.

Every variable has a documented default (see README "Configuration"); names follow the
original plan's docker-compose (GRPC_PORT, DB_*, REDIS_*, JWT_SECRET).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """A setting is missing or malformed."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, default).strip().lower() or default
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, default)


@dataclass(frozen=True)
class JwtSettings:
    secret: str = ""
    public_key: str = ""
    algorithms: tuple[str, ...] = ("HS256",)
    issuer: str = ""
    audience: str = ""
    leeway_seconds: int = 30
    name_claims: tuple[str, ...] = ("name",)
    avatar_claims: tuple[str, ...] = ("avatar", "picture")
    email_claims: tuple[str, ...] = ("email",)


@dataclass(frozen=True)
class Limits:
    group_name_max: int = 100
    group_description_max: int = 1000
    message_max_chars: int = 4000
    members_per_group_max: int = 1000
    history_page_default: int = 50
    history_page_max: int = 200
    client_msg_id_max: int = 64
    replay_max_messages: int = 2000


@dataclass(frozen=True)
class Settings:
    grpc_host: str = "0.0.0.0"
    grpc_port: int = 50051
    metrics_port: int = 9464
    db_host: str = "127.0.0.1"
    db_port: int = 5432
    db_database: str = "chat"
    db_username: str = "chat"
    db_password: str = "chat"
    db_pool_min: int = 2
    db_pool_max: int = 20
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_password: str = ""
    broker: str = "redis"
    stream_shards: int = 8
    stream_maxlen: int = 100_000
    pod_name: str = "chat-local"
    migrate_on_start: bool = False
    shutdown_grace_seconds: float = 20.0
    shutdown_drain_seconds: float = 2.0
    subscriber_queue_max: int = 5000
    subscriber_batch_max: int = 500
    recent_per_group: int = 500
    recent_total: int = 50_000
    large_group_subscribers: int = 64
    max_inflight_calls: int = 500
    max_inflight_calls_per_user: int = 50
    preauth_max_calls: int = 64
    preauth_timeout_seconds: float = 5.0
    request_body_timeout_seconds: float = 10.0
    grpc_max_concurrent_streams: int = 4096
    grpc_max_connection_idle_seconds: float = 300.0
    grpc_max_connection_age_seconds: float = 3600.0
    grpc_max_connection_age_grace_seconds: float = 300.0
    grpc_max_pending_calls: int = 5000
    shed_loop_lag_ms: float = 100.0
    max_queue_ms: float = 0.0
    large_group_flush_ms: float = 100.0
    heartbeat_seconds: float = 25.0
    sweep_interval_seconds: float = 2.0
    presence_ttl_seconds: int = 30
    typing_ttl_seconds: float = 6.0
    rate_user_send: str = "20/5 seconds"
    rate_group_send: str = "200/5 seconds"
    rate_groups_created: str = "30/hour"
    rate_typing: str = "30/10 seconds"
    rate_edits: str = "20/10 seconds"
    rate_deletes: str = "30/10 seconds"
    rate_reactions: str = "30/10 seconds"
    rate_mark_read: str = "60/10 seconds"
    rate_reads: str = "120/10 seconds"
    max_streams_per_user: int = 20
    expose_member_emails: bool = False
    batch_sends: bool = True
    grpc_compression: str = "none"
    notify_webhook_url: str = ""
    notify_webhook_secret: str = ""
    notify_claim_idle_ms: int = 30_000
    log_level: str = "INFO"
    log_format: str = "json"
    tls_cert_file: str = ""
    tls_key_file: str = ""
    jwt: JwtSettings = field(default_factory=JwtSettings)
    limits: Limits = field(default_factory=Limits)

    @property
    def db_dsn(self) -> str:
        return (
            f"postgresql://{self.db_username}@{self.db_host}:{self.db_port}/{self.db_database}"
        )


def _rate(env: Mapping[str, str], name: str, default: str) -> str:
    """A rate in `limits` notation ("20/5 seconds", "100 per minute"); "off" disables it."""
    raw = env.get(name, default).strip()
    if raw.lower() in {"", "off", "none", "0"}:
        return ""
    from limits import parse

    try:
        parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must look like '20/5 seconds', got {raw!r}") from exc
    return raw


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def load_settings(env: Mapping[str, str] | None = None, *, for_serving: bool = True) -> Settings:
    """Build Settings from the environment (or the given mapping).

    `for_serving=False` (the `migrate` command) skips the token-verification settings.
    """
    e = os.environ if env is None else env
    public_key = e.get("JWT_PUBLIC_KEY", "")
    key_file = e.get("JWT_PUBLIC_KEY_FILE", "").strip()
    if key_file:
        try:
            public_key = Path(key_file).read_text()
        except OSError as exc:
            raise ConfigError(f"JWT_PUBLIC_KEY_FILE {key_file!r} cannot be read: {exc}") from exc
    algorithms = _csv(e.get("JWT_ALGORITHMS", "")) or (("RS256",) if public_key and not
                                                         e.get("JWT_SECRET") else ("HS256",))
    allowed = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384"}
    unknown = [a for a in algorithms if a not in allowed]
    if unknown:
        raise ConfigError(f"JWT_ALGORITHMS has unsupported algorithms: {unknown}")
    jwt = JwtSettings(
        secret=e.get("JWT_SECRET", ""),
        public_key=public_key,
        algorithms=algorithms,
        issuer=e.get("JWT_ISSUER", ""),
        audience=e.get("JWT_AUDIENCE", ""),
        leeway_seconds=_int(e, "JWT_LEEWAY_SECONDS", 30),
    )
    if for_serving and any(a.startswith("HS") for a in algorithms) and not jwt.secret:
        raise ConfigError("JWT_SECRET is required when JWT_ALGORITHMS includes an HS algorithm")
    if for_serving and any(not a.startswith("HS") for a in algorithms) and not jwt.public_key:
        raise ConfigError(
            "JWT_PUBLIC_KEY or JWT_PUBLIC_KEY_FILE is required for RS/ES algorithms"
        )
    limits = Limits(
        group_name_max=_int(e, "LIMIT_GROUP_NAME_CHARS", 100),
        group_description_max=_int(e, "LIMIT_GROUP_DESCRIPTION_CHARS", 1000),
        message_max_chars=_int(e, "LIMIT_MESSAGE_CHARS", 4000),
        members_per_group_max=_int(e, "LIMIT_MEMBERS_PER_GROUP", 1000),
        history_page_default=_int(e, "HISTORY_PAGE_DEFAULT", 50),
        history_page_max=_int(e, "HISTORY_PAGE_MAX", 200),
        replay_max_messages=_int(e, "REPLAY_MAX_MESSAGES", 2000),
    )
    broker = _str(e, "BROKER", "redis").lower()
    if broker not in {"redis", "memory"}:
        raise ConfigError(f"BROKER must be 'redis' or 'memory', got {broker!r}")
    return Settings(
        grpc_host=_str(e, "GRPC_HOST", "0.0.0.0"),
        grpc_port=_int(e, "GRPC_PORT", 50051),
        metrics_port=_int(e, "METRICS_PORT", 9464),
        db_host=_str(e, "DB_HOST", "127.0.0.1"),
        db_port=_int(e, "DB_PORT", 5432),
        db_database=_str(e, "DB_DATABASE", "chat"),
        db_username=_str(e, "DB_USERNAME", "chat"),
        db_password=_str(e, "DB_PASSWORD", "chat"),
        db_pool_min=_int(e, "DB_POOL_MIN", 2),
        db_pool_max=_int(e, "DB_POOL_MAX", 20),
        redis_host=_str(e, "REDIS_HOST", "127.0.0.1"),
        redis_port=_int(e, "REDIS_PORT", 6379),
        redis_password=_str(e, "REDIS_PASSWORD", ""),
        broker=broker,
        stream_shards=_int(e, "STREAM_SHARDS", 8),
        stream_maxlen=_int(e, "STREAM_MAXLEN", 100_000),
        pod_name=_str(e, "POD_NAME", os.uname().nodename if env is None else "chat-local"),
        migrate_on_start=_bool(e, "MIGRATE_ON_START", False),
        shutdown_grace_seconds=_float(e, "SHUTDOWN_GRACE_SECONDS", 20.0),
        shutdown_drain_seconds=_float(e, "SHUTDOWN_DRAIN_SECONDS", 2.0),
        subscriber_queue_max=_int(e, "SUBSCRIBER_QUEUE_MAX", 5000),
        subscriber_batch_max=_int(e, "SUBSCRIBER_BATCH_MAX", 500),
        recent_per_group=_int(e, "RECENT_MESSAGES_PER_GROUP", 500),
        recent_total=_int(e, "RECENT_MESSAGES_TOTAL", 50_000),
        large_group_subscribers=_int(e, "LARGE_GROUP_SUBSCRIBERS", 64),
        max_inflight_calls=_int(e, "MAX_INFLIGHT_CALLS", 500),
        max_inflight_calls_per_user=_int(e, "MAX_INFLIGHT_CALLS_PER_USER", 50),
        preauth_max_calls=_int(e, "PREAUTH_MAX_CALLS", 64),
        preauth_timeout_seconds=_float(e, "PREAUTH_TIMEOUT_SECONDS", 5.0),
        request_body_timeout_seconds=_float(e, "REQUEST_BODY_TIMEOUT_SECONDS", 10.0),
        grpc_max_concurrent_streams=_int(e, "GRPC_MAX_CONCURRENT_STREAMS", 4096),
        grpc_max_connection_idle_seconds=_float(e, "GRPC_MAX_CONNECTION_IDLE_SECONDS", 300.0),
        grpc_max_connection_age_seconds=_float(e, "GRPC_MAX_CONNECTION_AGE_SECONDS", 3600.0),
        grpc_max_connection_age_grace_seconds=_float(
            e, "GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS", 300.0
        ),
        grpc_max_pending_calls=_int(e, "GRPC_MAX_PENDING_CALLS", 5000),
        shed_loop_lag_ms=_float(e, "SHED_LOOP_LAG_MS", 100.0),
        max_queue_ms=_float(e, "MAX_QUEUE_MS", 0.0),
        large_group_flush_ms=_float(e, "LARGE_GROUP_FLUSH_MS", 100.0),
        heartbeat_seconds=_float(e, "HEARTBEAT_SECONDS", 25.0),
        sweep_interval_seconds=_float(e, "SWEEP_INTERVAL_SECONDS", 2.0),
        presence_ttl_seconds=_int(e, "PRESENCE_TTL_SECONDS", 30),
        typing_ttl_seconds=_float(e, "TYPING_TTL_SECONDS", 6.0),
        rate_user_send=_rate(e, "RATE_LIMIT_USER_SEND", "20/5 seconds"),
        rate_group_send=_rate(e, "RATE_LIMIT_GROUP_SEND", "200/5 seconds"),
        rate_groups_created=_rate(e, "RATE_LIMIT_GROUPS_CREATED", "30/hour"),
        rate_typing=_rate(e, "RATE_LIMIT_TYPING", "30/10 seconds"),
        rate_edits=_rate(e, "RATE_LIMIT_EDITS", "20/10 seconds"),
        rate_deletes=_rate(e, "RATE_LIMIT_DELETES", "30/10 seconds"),
        rate_reactions=_rate(e, "RATE_LIMIT_REACTIONS", "30/10 seconds"),
        rate_mark_read=_rate(e, "RATE_LIMIT_MARK_READ", "60/10 seconds"),
        rate_reads=_rate(e, "RATE_LIMIT_READS", "120/10 seconds"),
        max_streams_per_user=_int(e, "MAX_STREAMS_PER_USER", 20),
        expose_member_emails=_bool(e, "EXPOSE_MEMBER_EMAILS", False),
        batch_sends=_bool(e, "BATCH_SENDS", True),
        grpc_compression=_choice(e, "GRPC_COMPRESSION", "none", ("none", "gzip")),
        notify_webhook_url=_str(e, "NOTIFY_WEBHOOK_URL", ""),
        notify_webhook_secret=_str(e, "NOTIFY_WEBHOOK_SECRET", ""),
        notify_claim_idle_ms=_int(e, "NOTIFY_CLAIM_IDLE_MS", 30_000),
        log_level=_str(e, "LOG_LEVEL", "INFO").upper(),
        log_format=_str(e, "LOG_FORMAT", "json").lower(),
        tls_cert_file=_str(e, "TLS_CERT_FILE", ""),
        tls_key_file=_str(e, "TLS_KEY_FILE", ""),
        jwt=jwt,
        limits=limits,
    )
