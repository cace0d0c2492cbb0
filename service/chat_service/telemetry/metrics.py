"""Prometheus metrics. Names are part of the operator contract (dashboards, alert rules)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RPC_REQUESTS = Counter(
    "chat_rpc_requests", "RPCs handled, by method and final status code", ["method", "code"]
)
RPC_DURATION = Histogram(
    "chat_rpc_duration_seconds",
    "Time to handle a unary RPC (streams: time until the stream ended)",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
OPEN_STREAMS = Gauge("chat_open_streams", "Streams currently open on this pod", ["rpc"])
MESSAGES_ACCEPTED = Counter(
    "chat_messages_accepted", "Messages committed to storage (the acknowledgement)"
)
EVENTS_DELIVERED = Counter(
    "chat_events_delivered", "Events written to subscriber streams (one per recipient)"
)
STREAM_WRITES = Counter("chat_stream_writes", "Batched writes to subscriber streams")
LARGE_GROUP_HOLDS = Counter(
    "chat_large_group_holds",
    "Large groups' events held back to be written together, by why: the group is busy or "
    "the pod runs late",
    ["reason"],
)
DELIVERY_LATENCY = Histogram(
    "chat_delivery_latency_seconds",
    "From message commit to the write on a recipient's stream",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
FANOUT_LAG = Gauge(
    "chat_fanout_lag_seconds", "Age of the newest event this pod read from the broker"
)
SUBSCRIBERS_DROPPED = Counter(
    "chat_subscribers_dropped", "Streams ended by the server, by reason", ["reason"]
)
GAP_FILLS = Counter(
    "chat_gap_fills", "Messages read back from storage to fill a live gap", ["where"]
)
CALLS_SHED = Counter(
    "chat_calls_shed",
    "Calls refused by the call gate and admission control, by signal "
    "(queue: the call waited too long before reaching the pod's handler; inflight: too many "
    "calls in progress; user_inflight: too many of one user's calls in progress; lag: the "
    "event loop is behind; preauth: too many calls waiting to authenticate; no_request: the "
    "request or its token did not arrive in time)",
    ["signal"],
)
LOOP_LAG = Gauge("chat_event_loop_lag_seconds", "How late the event loop ran a timer (sampled)")
REPLAY_READS = Counter(
    "chat_replay_reads",
    "Ranges of missed messages read for resuming streams and gap fills, by source "
    "(memory: the pod's recent-messages cache; storage: PostgreSQL)",
    ["source"],
)
DB_ERRORS = Counter("chat_db_errors", "PostgreSQL calls that failed for lack of a connection")
REDIS_ERRORS = Counter("chat_redis_errors", "Redis calls that failed", ["op"])
DB_READS = Counter(
    "chat_db_reads", "History, member and mention reads by where they ran (replica configured)",
    ["target"],
)
DB_POOL_SIZE = Gauge("chat_db_pool_size", "Connections in the PostgreSQL pool")
DB_POOL_IDLE = Gauge("chat_db_pool_idle", "Idle connections in the PostgreSQL pool")
WEBHOOK_CALLS = Counter(
    "chat_webhook_calls", "Calls to the app's notification webhook, by result", ["result"]
)
BROKER_ENTRIES_READ = Counter(
    "chat_broker_entries_read", "Redis stream entries this pod read, by stream kind", ["stream"]
)
BROKER_BYTES_READ = Counter(
    "chat_broker_bytes_read", "Payload bytes of the Redis stream entries this pod read"
)
BROKER_SHARDS_FOLLOWED = Gauge(
    "chat_broker_shards_followed", "Event shards this pod reads (those its groups hash to)"
)
RATE_LIMITED = Counter("chat_rate_limited", "Calls refused by a rate limit", ["rule"])


def initialise(methods: list[str]) -> None:
    """Create the labelled series a dashboard reads, so they exist (at 0) before first use."""
    for method in methods:
        RPC_REQUESTS.labels(method, "OK")
        RPC_DURATION.labels(method)
    for op in ("publish", "read", "presence", "notifier", "ratelimit", "publish_skipped",
               "stream_slots"):
        REDIS_ERRORS.labels(op)
    for target in ("replica", "primary_fallback"):
        DB_READS.labels(target)
    for stream in ("shard", "broadcast"):
        BROKER_ENTRIES_READ.labels(stream)
    for reason in ("lagged", "closed"):
        SUBSCRIBERS_DROPPED.labels(reason)
    for rpc in ("Subscribe", "StreamMessages"):
        OPEN_STREAMS.labels(rpc)
    for source in ("memory", "storage"):
        REPLAY_READS.labels(source)
    for signal in ("queue", "inflight", "user_inflight", "lag", "preauth", "no_request"):
        CALLS_SHED.labels(signal)
