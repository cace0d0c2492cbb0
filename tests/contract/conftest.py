"""Fixtures of the contract suites: each yields one twin per parameter, memory and Redis.

The Redis twin runs against a real redis-server that this package starts once (on a free
loopback port, in a temporary directory, as `make dev` does) and only when a Redis-
parametrised test runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chat_devstack.ports import free_port
from chat_devstack.redis import RedisServer
from chat_service.domain.ports import Presence
from chat_service.fanout.broker import Broker, EventFanout
from chat_service.gen import chat_pb2
from tests.contract import twins
from tests.contract.twins import Received


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("contract-redis")), free_port()).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class BrokerRig:
    """Makes brokers of one twin (not started) and closes them after the test."""

    twin: str
    port: int = 0
    made: list[Broker] = field(default_factory=list)

    def make(self) -> Broker:
        broker = twins.memory_broker() if self.twin == "memory" else twins.redis_broker(self.port)
        self.made.append(broker)
        return broker


@pytest.fixture(params=twins.TWINS)
async def brokers(request: pytest.FixtureRequest) -> AsyncIterator[BrokerRig]:
    twin: str = request.param
    port = request.getfixturevalue("redis_server").port if twin == "redis" else 0
    rig = BrokerRig(twin, port)
    try:
        yield rig
    finally:
        for broker in rig.made:
            await broker.close()


@dataclass
class PresenceRig:
    """One presence twin publishing through EventFanout over the broker twin it is deployed
    with (memory with MemoryBroker, Redis with RedisStreamsBroker), as backends.py wires them.
    `groups` is what the twin's group lookup answers; `received` what reached the broker's
    consumer."""

    presence: Presence
    received: Received
    groups: dict[int, list[int]]
    lookups: list[int] = field(default_factory=list)

    def announced(self, group_id: int) -> list[tuple[int, bool]]:
        """The presence events addressed to one group, in order: (user id, online)."""
        events = [chat_pb2.ChatEvent.FromString(p) for p in self.received.of_group(group_id)]
        return [(e.presence.user_id, e.presence.online) for e in events
                if e.WhichOneof("event") == "presence"]

    async def until_announced(self, group_id: int, count: int) -> list[tuple[int, bool]]:
        await self.received.until(
            lambda: len(self.announced(group_id)) >= count,
            f"{count} presence events in group {group_id}",
        )
        return self.announced(group_id)


@pytest.fixture(params=twins.TWINS)
async def presence(request: pytest.FixtureRequest) -> AsyncIterator[PresenceRig]:
    twin: str = request.param
    groups: dict[int, list[int]] = {}
    lookups: list[int] = []

    async def groups_of(user_id: int) -> list[int]:
        lookups.append(user_id)
        if user_id not in groups:
            raise LookupError(f"the store cannot answer for user {user_id}")
        return list(groups[user_id])

    received = Received()
    if twin == "memory":
        broker = twins.memory_broker()
    else:
        broker = twins.redis_broker(request.getfixturevalue("redis_server").port)
    await broker.start(received.sink)
    fanout = EventFanout(broker)
    tracker = (
        twins.local_presence(fanout, groups_of)
        if twin == "memory"
        else twins.redis_presence(broker, fanout, groups_of)
    )
    tracker.start()
    try:
        yield PresenceRig(tracker, received, groups, lookups)
    finally:
        await tracker.stop()
        await broker.close()
