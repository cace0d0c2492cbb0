"""The Broker port (fanout/broker.py), one body over the memory and the Redis Streams twin.

What every twin promises, as the Protocol's docstring states it: a started broker hands each
published (group, payload) pair of a followed group (or of group 0) to its sink unchanged; one
group's pairs arrive in the order they were published, however many are published at once and
however far the consumer is behind; a group followed `since` a position gets what was
published after it; nothing published before `start` is delivered.
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
    for group in (1, 2, 3, 2**40 + 3):
        broker.follow(group)
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
    for g in groups:
        broker.follow(g)

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
    broker.follow(7)
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
    broker.follow(5)
    await broker.publish([(5, b"heard")])
    await received.until(lambda: bool(received.of_group(5)), "the payload sent after start")
    assert received.of_group(5) == [b"heard"]


async def test_a_group_followed_since_a_position_gets_what_was_published_after_it(
    brokers: BrokerRig,
) -> None:
    """A subscriber takes the position, reads storage, then follows: what was published in
    between is not lost, and what was published before the position is not repeated."""
    received = Received()
    broker = brokers.make()
    await broker.start(received.sink)
    await broker.publish([(11, b"group 11 before")])
    since = await broker.position()
    await broker.publish([(11, b"between position and follow")])
    broker.follow(11, since)
    await broker.publish([(11, b"after follow")])
    await received.until(lambda: b"after follow" in received.of_group(11), "the last payload")
    assert received.of_group(11)[-2:] == [b"between position and follow", b"after follow"]


async def test_a_group_unfollowed_and_followed_again_loses_and_repeats_nothing_after_since(
    brokers: BrokerRig,
) -> None:
    """Positions are exact to the transport's clock tick (Redis: a millisecond), so an item
    published in the same tick as `position()` may be handed over again; the hub drops a
    message it delivered by sequence, and other events carry state, not increments."""
    received = Received()
    broker = brokers.make()
    await broker.start(received.sink)
    broker.follow(12)
    await broker.publish([(12, b"one")])
    await received.until(lambda: bool(received.of_group(12)), "the first payload")
    broker.unfollow(12)
    since = await broker.position()
    broker.follow(12, since)
    await broker.publish([(12, b"two")])
    await received.until(lambda: b"two" in received.of_group(12), "the second payload")
    got = received.of_group(12)
    assert got[0] == b"one" and got[-1] == b"two" and got.count(b"two") == 1
    assert set(got) == {b"one", b"two"}


async def test_positions_taken_at_once_each_precede_what_is_published_after(
    brokers: BrokerRig,
) -> None:
    """Many subscribers take a position at the same moment (a reconnect storm): whatever
    position each gets, what is published after it returned is handed over to a group
    followed since it."""
    received = Received()
    broker = brokers.make()
    await broker.start(received.sink)
    positions = await asyncio.gather(*(broker.position() for _ in range(100)))
    await broker.publish([(13, b"after every position")])
    for since in sorted(set(positions)):
        broker.follow(13, since)
    await received.until(lambda: bool(received.of_group(13)), "the payload")
    assert received.of_group(13) == [b"after every position"]
