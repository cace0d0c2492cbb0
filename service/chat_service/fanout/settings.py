"""Fan-out settings: the Redis connection every Redis backend shares, which broker carries
events between pods, and the per-pod delivery to streams (fanout/hub.py, subscribers)."""

from __future__ import annotations

from dataclasses import dataclass

from chat_service.envconfig import choice, var


@dataclass(frozen=True)
class RedisSettings:
    """The one Redis client (built by the Redis broker, shared by presence, stream slots,
    the rate limiter and the webhook notifier; see backends.py)."""

    host: str = var("REDIS_HOST", "127.0.0.1")
    port: int = var("REDIS_PORT", 6379)
    password: str = var("REDIS_PASSWORD", "")


@dataclass(frozen=True)
class BrokerSettings:
    # "redis": Redis Streams, any number of pods; "memory": one process.
    kind: str = var("BROKER", "redis", choice("redis", "memory"))
    stream_shards: int = var("STREAM_SHARDS", 8)
    stream_maxlen: int = var("STREAM_MAXLEN", 100_000)


@dataclass(frozen=True)
class FanoutSettings:
    subscriber_queue_max: int = var("SUBSCRIBER_QUEUE_MAX", 5000)
    subscriber_batch_max: int = var("SUBSCRIBER_BATCH_MAX", 500)
    recent_per_group: int = var("RECENT_MESSAGES_PER_GROUP", 500)
    recent_total: int = var("RECENT_MESSAGES_TOTAL", 50_000)
    large_group_subscribers: int = var("LARGE_GROUP_SUBSCRIBERS", 64)
    large_group_flush_ms: float = var("LARGE_GROUP_FLUSH_MS", 100.0)
    large_group_busy_rate: float = var("LARGE_GROUP_BUSY_EVENTS_PER_SECOND", 25.0)
    heartbeat_seconds: float = var("HEARTBEAT_SECONDS", 25.0)
    sweep_interval_seconds: float = var("SWEEP_INTERVAL_SECONDS", 2.0)
