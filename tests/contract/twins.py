"""The backend twins the contract suites run against, one factory per port and twin.

Each factory's return type is the port, so mypy (strict, over tests/) refuses a twin that no
longer satisfies its protocol: a method renamed, a parameter dropped, a sync/async mix-up.
That is the static half of the contract; the suites beside this file are the behavioural half.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections.abc import Callable, Iterable

import asyncpg

from chat_service.domain.ports import (
    ChatRepository,
    EventPublisher,
    GroupsOf,
    MessageChangeStore,
    Presence,
    ReceiptStore,
)
from chat_service.fanout.broker import Broker
from chat_service.fanout.broker_memory import MemoryBroker
from chat_service.fanout.broker_redis import RedisStreamsBroker
from chat_service.fanout.redis_connect import RedisConnector
from chat_service.fanout.settings import RedisSettings
from chat_service.fanout.stream_keys import StreamKeys
from chat_service.presence.local import LocalPresence
from chat_service.presence.redis_presence import RedisPresence
from chat_service.storage.memory import (
    MemoryChatRepository,
    MemoryMessageChanges,
    MemoryReceipts,
    MemoryState,
)
from chat_service.storage.postgres.changes import PostgresMessageChanges
from chat_service.storage.postgres.receipts import PostgresReceipts
from chat_service.storage.postgres.repository import PostgresChatRepository

TWINS = ("memory", "redis")
STORES = ("memory", "postgres")

ChatStores = tuple[ChatRepository, ReceiptStore, MessageChangeStore]

# Presence keys in Redis are global: each test takes user ids nobody else used.
_user_ids = itertools.count(random.randint(1_000, 1_000_000) * 1_000)


def new_user_id() -> int:
    return next(_user_ids)


def memory_broker() -> Broker:
    return MemoryBroker()


def redis_broker(port: int, *, shards: int = 4) -> Broker:
    # A prefix of its own: streams left by other tests are not this broker's business.
    return RedisStreamsBroker(
        RedisConnector(RedisSettings(port=port)),
        keys=StreamKeys(prefix=f"contract:{uuid.uuid4().hex}", shards=shards),
    )


def local_presence(events: EventPublisher, groups_of: GroupsOf) -> Presence:
    return LocalPresence(events=events, groups_of=groups_of)


def redis_presence(broker: Broker, events: EventPublisher, groups_of: GroupsOf) -> Presence:
    assert isinstance(broker, RedisStreamsBroker)
    return RedisPresence(
        broker.client,
        pod=f"contract-{uuid.uuid4().hex[:8]}",
        ttl_seconds=30,
        events=events,
        groups_of=groups_of,
    )


def memory_chat_stores() -> ChatStores:
    state = MemoryState()
    return MemoryChatRepository(state), MemoryReceipts(state), MemoryMessageChanges(state)


def postgres_chat_stores(pool: asyncpg.Pool) -> tuple[PostgresChatRepository, ReceiptStore,
                                                       MessageChangeStore]:
    """As app.py builds them: sends group-committed by the batcher (start() it first)."""
    repo: ChatRepository = PostgresChatRepository(pool, batch_sends=True)
    assert isinstance(repo, PostgresChatRepository)
    return repo, PostgresReceipts(pool), PostgresMessageChanges(pool)


class Received:
    """What a broker handed to its sink, in arrival order, and a bounded wait for more.

    The bound only turns a hang into a failure that names what never arrived; no test
    asserts how long anything took."""

    WAIT_LIMIT = 10.0

    def __init__(self) -> None:
        self.items: list[tuple[int, bytes]] = []
        self._grew = asyncio.Event()

    def sink(self, items: Iterable[tuple[int, bytes]]) -> None:
        self.items.extend(items)
        self._grew.set()

    def of_group(self, group_id: int) -> list[bytes]:
        return [payload for gid, payload in self.items if gid == group_id]

    async def until(self, done: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(self.WAIT_LIMIT):
                while not done():
                    self._grew.clear()
                    await self._grew.wait()
        except TimeoutError:
            raise AssertionError(f"never arrived: {what}; got {len(self.items)} items") from None
