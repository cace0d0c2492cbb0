"""The Redis broker's `position()` under a reconnect storm: callers that overlap share one
TIME call (single flight), a call that ended is never reused, and a caller cancelled while
waiting does not take the answer away from the others. (What a position means, on both
twins, is in test_broker_contract.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from chat_devstack.redis import RedisServer
from chat_service.fanout.broker_redis import RedisStreamsBroker
from chat_service.fanout.stream_keys import parse_id
from tests.contract import twins
from tests.contract.twins import Received


@pytest.fixture
async def broker(redis_server: RedisServer) -> AsyncIterator[RedisStreamsBroker]:
    made = twins.redis_broker(redis_server.port)
    assert isinstance(made, RedisStreamsBroker)
    await made.start(Received().sink)
    try:
        yield made
    finally:
        await made.close()


async def time_calls(port: int) -> int:
    client = aioredis.Redis(port=port)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_time", {}).get("calls", 0))


async def test_overlapping_positions_share_one_time_call(
    broker: RedisStreamsBroker, redis_server: RedisServer
) -> None:
    before = await time_calls(redis_server.port)
    positions = await asyncio.gather(*(broker.position() for _ in range(200)))
    assert await time_calls(redis_server.port) - before == 1
    assert len(set(positions)) == 1


async def test_a_position_is_never_older_than_the_end_of_the_previous_call(
    broker: RedisStreamsBroker, redis_server: RedisServer
) -> None:
    """Calls one after the other each ask Redis: an answer is not kept for later callers."""
    before = await time_calls(redis_server.port)
    first = await broker.position()
    await asyncio.sleep(0.005)
    second = await broker.position()
    assert await time_calls(redis_server.port) - before == 2
    assert parse_id(second) > parse_id(first)


async def test_a_cancelled_caller_does_not_cancel_the_shared_answer(
    broker: RedisStreamsBroker,
) -> None:
    first = asyncio.create_task(broker.position())
    others = [asyncio.create_task(broker.position()) for _ in range(5)]
    await asyncio.sleep(0)  # all six are waiting for the same TIME call
    first.cancel()
    answers = await asyncio.gather(*others)
    assert len(set(answers)) == 1 and answers[0] != "0-0"
    assert first.cancelled()
    assert await broker.position()  # the next caller gets its own answer
