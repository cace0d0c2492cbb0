"""The service's settings: one frozen dataclass composing each component's own.

Each field names its environment variable and its default once (envconfig.var), in the
settings dataclass of the component that reads it, next to its code:

    api/server_settings.py       ServerSettings (GRPC_*, TLS_*, POD_NAME, SHUTDOWN_*),
                                 AdmissionSettings (MAX_INFLIGHT_*, SHED_*, MAX_QUEUE_MS)
    api/gate_settings.py         GateSettings (PREAUTH_*, REQUEST_BODY_TIMEOUT_SECONDS)
    auth/settings.py             JwtSettings (JWT_*), BackendJwtSettings (BACKEND_JWT_*,
                                 BAN_REFRESH_SECONDS)
    domain/erasure.py            ErasureSettings (ERASE_MESSAGES)
    domain/limits.py             Limits (LIMIT_*, HISTORY_PAGE_*, REPLAY_MAX_MESSAGES)
    domain/privacy.py            Privacy (EXPOSE_MEMBER_EMAILS)
    storage/postgres/settings.py DatabaseSettings (DB_*, MIGRATE_ON_START, BATCH_SENDS)
    fanout/settings.py           RedisSettings (REDIS_*), BrokerSettings (BROKER, STREAM_*),
                                 FanoutSettings (SUBSCRIBER_*, RECENT_*, LARGE_GROUP_*, ...)
    presence/settings.py         PresenceSettings (PRESENCE_TTL_SECONDS, TYPING_TTL_SECONDS,
                                 MAX_STREAMS_PER_USER)
    ratelimit/limiter.py         RateRules (RATE_LIMIT_*)
    attachments/settings.py      AttachmentSettings (ATTACHMENT_*, S3_*)
    notifications/settings.py    NotifySettings (NOTIFY_*)
    telemetry/settings.py        TelemetrySettings (METRICS_PORT, OTEL_SERVICE_NAME, LOG_*)

`Settings` only composes them. `load_settings` reads and checks every variable once, at
start, before any connection. README's "Configuration" tables are checked against these
fields (tests/unit/test_settings_table.py). Names follow the original plan's docker-compose
(GRPC_PORT, DB_*, REDIS_*, JWT_SECRET).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from chat_service.api.gate_settings import GateSettings
from chat_service.api.server_settings import AdmissionSettings, ServerSettings
from chat_service.attachments.settings import AttachmentSettings, load_attachment_settings
from chat_service.auth.settings import (
    BackendJwtSettings,
    JwtSettings,
    load_backend_jwt_settings,
    load_jwt_settings,
)
from chat_service.domain.erasure import ErasureSettings
from chat_service.domain.limits import Limits
from chat_service.domain.privacy import Privacy
from chat_service.envconfig import GROUP, ConfigError, load
from chat_service.fanout.settings import BrokerSettings, FanoutSettings, RedisSettings
from chat_service.notifications.settings import NotifySettings
from chat_service.presence.settings import PresenceSettings
from chat_service.ratelimit.limiter import RateRules
from chat_service.storage.postgres.settings import DatabaseSettings
from chat_service.telemetry.settings import TelemetrySettings

__all__ = ["ConfigError", "JwtSettings", "Limits", "Settings", "load_settings"]


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment; see README "Configuration"."""

    server: ServerSettings = field(default_factory=ServerSettings, metadata=GROUP)
    admission: AdmissionSettings = field(default_factory=AdmissionSettings, metadata=GROUP)
    gate: GateSettings = field(default_factory=GateSettings, metadata=GROUP)
    database: DatabaseSettings = field(default_factory=DatabaseSettings, metadata=GROUP)
    redis: RedisSettings = field(default_factory=RedisSettings, metadata=GROUP)
    broker: BrokerSettings = field(default_factory=BrokerSettings, metadata=GROUP)
    fanout: FanoutSettings = field(default_factory=FanoutSettings, metadata=GROUP)
    presence: PresenceSettings = field(default_factory=PresenceSettings, metadata=GROUP)
    jwt: JwtSettings = field(default_factory=JwtSettings, metadata=GROUP)
    backend_jwt: BackendJwtSettings = field(default_factory=BackendJwtSettings, metadata=GROUP)
    erasure: ErasureSettings = field(default_factory=ErasureSettings, metadata=GROUP)
    limits: Limits = field(default_factory=Limits, metadata=GROUP)
    privacy: Privacy = field(default_factory=Privacy, metadata=GROUP)
    rates: RateRules = field(default_factory=RateRules, metadata=GROUP)
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings, metadata=GROUP)
    notifications: NotifySettings = field(default_factory=NotifySettings, metadata=GROUP)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings, metadata=GROUP)


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
        server = replace(settings.server, pod_name=os.uname().nodename)
        settings = replace(settings, server=server)
    return settings
