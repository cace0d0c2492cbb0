"""The Broker port (fanout/broker.py), one body over the memory and the Redis Streams twin.

What every twin promises, as the Protocol's docstring states it: a started broker hands each
published (group, payload) pair to its sink unchanged; one group's pairs arrive in the order
they were published, however many are published at once and however far the consumer is
behind; nothing published before `start` is delivered.
"""

from __future__ import annotations

import asyncio
import os

from tests.contract.conftest import BrokerRig
from tests.contract.twins import Received


async def test_a_started_broker_is_healthy(brokers: BrokerRig) -> None:
    broker = brokers.make()
    await broker.start(Received().sink)
    assert broker.healthy


async def test_payloads_reach_the_sink_byte_for_byte_with_their_group(
    brokers: BrokerRig,
) -> None:
    received = Received()
    broker = brokers.make()
    await broker.start(received.sink)
    sent = [
        (1, b"plain"),
        (2, b""),  # empty is a payload too
        (3, b"\x00\xff\x00e\x00g"),  # NUL bytes and the transport's own field names
        (0, b"group zero"),
        (2**40 + 3, os.urandom(64 * 1024)),
    ]
    await broker.publish(sent)
    await received.until(lambda: len(received.items) >= len(sent), f"{len(sent)} payloads")
    assert sorted(received.items) == sorted(sent)


async def test_each_groups_payloads_keep_publish_order(brokers: BrokerRig) -> None:
    """Concurrent publishers, groups interleaved (several per shard in the Redis twin):
    per group, the order is that of the publish calls, then of the items in a call."""
    received = Received()
    broker = brokers.make()
    await broker.start(received.sink)
    groups = range(1, 9)

    async def publisher(round_: int) -> None:
        await broker.publish([(g, f"{g}:{round_}:{i}".encode()) for i in range(3) for g in groups])

    await asyncio.gather(*(publisher(r) for r in range(20)))
    total = 20 * 3 * len(groups)
    await received.until(lambda: len(received.items) >= total, f"{total} payloads")
    for g in groups:
        expected = [f"{g}:{r}:{i}".encode() for r in range(20) for i in range(3)]
        assert received.of_group(g) == expected, f"group {g} out of order"


async def test_a_consumer_far_behind_catches_up_in_order_without_loss(
    brokers: BrokerRig,
) -> None:
    """A burst several times larger than one read of the consumer (the Redis twin reads
    1,000 entries per shard at a time) is delivered whole, in order."""
    received = Received()
    broker = brokers.make()
    await broker.start(received.sink)
    burst = [(7, str(i).encode()) for i in range(3_500)]
    await broker.publish(burst)
    await broker.publish([(7, b"after the burst")])
    await received.until(lambda: len(received.of_group(7)) >= 3_501, "the burst and one more")
    assert received.of_group(7) == [p for _, p in burst] + [b"after the burst"]


async def test_nothing_published_before_start_is_delivered(brokers: BrokerRig) -> None:
    """The broker is transport, not history: a consumer hears what is published while it
    listens. Publishing before then is allowed and lost (storage is the source of truth)."""
    received = Received()
    broker = brokers.make()
    await broker.publish([(5, b"too early")])
    await broker.start(received.sink)
    await broker.publish([(5, b"heard")])
    await received.until(lambda: bool(received.of_group(5)), "the payload sent after start")
    assert received.of_group(5) == [b"heard"]
