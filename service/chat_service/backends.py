"""Where the backends are chosen: Redis (any number of pods) or memory (one process).

`build_backends` is the only place that looks at `Settings.broker.kind`; everything else gets the
broker, presence, stream slots, rate limiter and notifier it returns. With Redis they share
ONE client (`Backends.redis`, the broker's publishing client): presence, stream slots and
the webhook notifier use it directly, the rate limiter through its connection pool. The
broker keeps a second connection of its own for the blocking XREAD of its tail reader
(a 10 s socket timeout that publishing must not share).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from chat_service.config import Settings
from chat_service.domain.ports import Presence
from chat_service.fanout.broker import Broker, EventFanout
from chat_service.fanout.broker_memory import MemoryBroker
from chat_service.fanout.broker_redis import RedisStreamsBroker
from chat_service.fanout.hub import Hub
from chat_service.notifications.webhook import WebhookNotifier
from chat_service.presence.local import LocalPresence
from chat_service.presence.redis_presence import RedisPresence
from chat_service.presence.stream_slots import LocalStreamSlots, RedisStreamSlots
from chat_service.ratelimit.limiter import RateLimiter

StreamSlotsImpl = LocalStreamSlots | RedisStreamSlots


@dataclass(frozen=True)
class Backends:
    broker: Broker
    fanout: EventFanout  # domain events -> broker
    presence: Presence
    stream_slots: StreamSlotsImpl
    rate: RateLimiter
    notifier: WebhookNotifier | None  # only with Redis and NOTIFY_WEBHOOK_URL
    redis: aioredis.Redis | None  # the shared client; None with BROKER=memory


def build_backends(
    s: Settings,
    hub: Hub,
    *,
    groups_of: Callable[[int], Awaitable[list[int]]],
    members_of: Callable[[int], Awaitable[list[int]]],
) -> Backends:
    """Construct (not start) the backends that `s.broker.kind` names. `groups_of` gives a user's
    group ids (presence events go to them), `members_of` a group's member ids (webhooks)."""
    if s.broker.kind == "memory":
        broker = MemoryBroker()
        memory_fanout = EventFanout(broker)
        # Presence and open streams per user are counted in this one process.
        return Backends(
            broker=broker,
            fanout=memory_fanout,
            presence=LocalPresence(events=memory_fanout, groups_of=groups_of),
            stream_slots=LocalStreamSlots(s.presence.max_streams_per_user),
            rate=RateLimiter.memory(s.rates),
            notifier=None,
            redis=None,
        )
    redis_broker = RedisStreamsBroker(
        host=s.redis.host,
        port=s.redis.port,
        password=s.redis.password,
        shards=s.broker.stream_shards,
        maxlen=s.broker.stream_maxlen,
        on_recovered=hub.resync,
    )
    client = redis_broker.client
    fanout = EventFanout(redis_broker)
    presence = RedisPresence(
        client,
        pod=s.server.pod_name,
        ttl_seconds=s.presence.ttl_seconds,
        events=fanout,
        groups_of=groups_of,
    )
    notifier = (
        WebhookNotifier(
            client,
            stream_keys=redis_broker.stream_keys,
            consumer=s.server.pod_name,
            url=s.notifications.webhook_url,
            secret=s.notifications.webhook_secret,
            members_of=members_of,
            online_of=presence.online_users,
            claim_idle_ms=s.notifications.claim_idle_ms,
        )
        if s.notifications.webhook_url
        else None
    )
    return Backends(
        broker=redis_broker,
        fanout=fanout,
        presence=presence,
        # Open streams per user, counted across pods (entries of a dead pod expire with the
        # presence TTL).
        stream_slots=RedisStreamSlots(
            client,
            pod=s.server.pod_name,
            max_per_user=s.presence.max_streams_per_user,
            ttl_seconds=s.presence.ttl_seconds,
        ),
        rate=RateLimiter.redis(client, s.rates),
        notifier=notifier,
        redis=client,
    )
