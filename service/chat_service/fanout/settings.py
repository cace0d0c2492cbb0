"""Fan-out settings: the Redis connection every Redis backend shares, which broker carries
events between pods, and the per-pod delivery to streams (fanout/hub.py, subscribers)."""

from __future__ import annotations

from dataclasses import dataclass

from chat_service.envconfig import choice, integer, var


@dataclass(frozen=True)
class RedisSettings:
    """The one Redis client (built by the Redis broker, shared by presence, stream slots,
    the rate limiter and the webhook notifier; see backends.py)."""

    # standalone: REDIS_HOST/PORT; sentinel: the master named REDIS_SENTINEL_MASTER, found
    # through REDIS_SENTINELS (and followed across failovers); cluster: REDIS_CLUSTER_NODES.
    mode: str = var("REDIS_MODE", "standalone", choice("standalone", "sentinel", "cluster"))
    host: str = var("REDIS_HOST", "127.0.0.1")
    port: int = var("REDIS_PORT", 6379)
    password: str = var("REDIS_PASSWORD", "")
    sentinels: str = var("REDIS_SENTINELS", "")  # host:port,host:port,...
    sentinel_master: str = var("REDIS_SENTINEL_MASTER", "mymaster")
    sentinel_password: str = var("REDIS_SENTINEL_PASSWORD", "")
    cluster_nodes: str = var("REDIS_CLUSTER_NODES", "")  # host:port,... (any of the nodes)


@dataclass(frozen=True)
class BrokerSettings:
    # "redis": Redis Streams, any number of pods; "memory": one process.
    kind: str = var("BROKER", "redis", choice("redis", "memory"))
    # A pod reads only the shards its groups hash to: more shards, less to read per pod.
    stream_shards: int = var("STREAM_SHARDS", 256, integer(1))
    # Redis Cluster only: the shards are spread over this many hash slots (one XREAD each).
    stream_lanes: int = var("STREAM_LANES", 16, integer(1))
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
