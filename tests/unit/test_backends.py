"""The composition root picks the backends in one place and shares one Redis client."""

from __future__ import annotations

import dataclasses

import pytest
from redis.asyncio import Redis

from chat_service.backends import build_backends
from chat_service.config import load_settings
from chat_service.domain.errors import ResourceExhausted
from chat_service.fanout.broker_memory import MemoryBroker
from chat_service.fanout.broker_redis import RedisStreamsBroker
from chat_service.fanout.hub import Hub
from chat_service.presence.local import LocalPresence
from chat_service.presence.redis_presence import RedisPresence
from chat_service.presence.stream_slots import LocalStreamSlots, RedisStreamSlots
from chat_service.ratelimit.limiter import RateLimiter, RateRules


async def _nothing(*_: object) -> list[int]:
    return []


def _build(**env: str):  # type: ignore[no-untyped-def]
    settings = load_settings({"JWT_SECRET": "x", **env})
    hub = Hub(_nothing, _nothing)  # type: ignore[arg-type]
    return build_backends(settings, hub, groups_of=_nothing, members_of=_nothing)


async def test_memory_backends_live_in_one_process() -> None:
    b = _build(BROKER="memory", NOTIFY_WEBHOOK_URL="http://app/hook")
    assert isinstance(b.broker, MemoryBroker)
    assert isinstance(b.presence, LocalPresence)
    assert isinstance(b.stream_slots, LocalStreamSlots)
    assert b.notifier is None and b.redis is None


async def test_redis_backends_share_the_brokers_client() -> None:
    """Nothing connects at construction; the rate limiter builds no connection pool of its
    own (limits' RedisStorage takes the shared client's pool)."""
    b = _build(REDIS_PORT="1", NOTIFY_WEBHOOK_URL="http://app/hook")
    assert isinstance(b.broker, RedisStreamsBroker)
    assert b.redis is b.broker.client
    assert isinstance(b.presence, RedisPresence) and b.presence._redis is b.redis
    assert isinstance(b.stream_slots, RedisStreamSlots) and b.stream_slots._redis is b.redis
    assert b.notifier is not None
    limiter_client = b.rate._limiter.storage.bridge.storage
    assert isinstance(b.redis, Redis)
    assert limiter_client.connection_pool is b.redis.connection_pool
    await b.redis.aclose()


async def test_without_a_webhook_url_there_is_no_notifier() -> None:
    b = _build()
    assert b.notifier is None
    assert b.redis is not None
    await b.redis.aclose()


async def test_rate_rules_name_their_limit_when_reached() -> None:
    limiter = RateLimiter.memory(RateRules(user_edit="1/10 seconds", user_reads="1/10 seconds"))
    await limiter.check("user_edit", 1)
    with pytest.raises(ResourceExhausted, match=r"edit limit per user \(1/10 seconds\)"):
        await limiter.check("user_edit", 1)
    await limiter.check("user_reads", 1)
    with pytest.raises(
        ResourceExhausted, match=r"read limit per user \(1/10 seconds; a history page costs 1"
    ):
        await limiter.check("user_reads", 1)


async def test_an_empty_rule_is_off() -> None:
    limiter = RateLimiter.memory(dataclasses.replace(RateRules(), user_typing=""))
    for _ in range(100):
        await limiter.check("user_typing", 1)
