"""Fixtures of the contract suites: each yields one twin per parameter, memory and Redis
(memory and PostgreSQL for the chat stores).

The Redis and PostgreSQL twins run against a real redis-server / PostgreSQL that this
package starts once (on a free loopback port, in a temporary directory, as `make dev` does)
and only when a test parametrised with that twin runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from chat_devstack.ports import free_port
from chat_devstack.postgres import PostgresServer
from chat_devstack.redis import RedisServer
from chat_service.domain.models import UserProfile
from chat_service.domain.ports import ChatRepository, MessageChangeStore, Presence, ReceiptStore
from chat_service.fanout.broker import Broker, EventFanout
from chat_service.gen import chat_pb2
from chat_service.storage.postgres.migrate import migrate
from chat_service.storage.postgres.pool import create_pool
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
    for group_id in range(1, 100):  # the groups these tests address (a pod's subscribers')
        broker.follow(group_id)
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


@dataclass
class PostgresDb:
    """A PostgreSQL server and, once a test asks for it, one pool over its migrated database.
    Tests share it: each takes user ids (so groups and messages) nobody else used, and asks
    only about those."""

    server: PostgresServer
    pool: asyncpg.Pool | None = None

    async def connect(self) -> asyncpg.Pool:
        if self.pool is None:
            s = self.server
            self.pool = await create_pool(
                f"postgresql://{s.user}@127.0.0.1:{s.port}/{s.database}", s.password, 1, 8
            )
            async with self.pool.acquire() as conn:
                await migrate(conn)
        return self.pool


@pytest.fixture(scope="session")
def postgres_db() -> Iterator[PostgresDb]:
    # Not under pytest's tmp_path: when we are root, PostgreSQL runs as the `postgres` user,
    # who must be able to enter the directory (as chat_devstack.cluster arranges).
    base = Path(tempfile.mkdtemp(prefix="contract-pg-"))
    os.chmod(base, 0o755)
    db = PostgresDb(PostgresServer(base / "pg", free_port()))
    try:
        db.server.setup()
        yield db
    finally:
        if db.pool is not None:
            db.pool.terminate()
        db.server.destroy()
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class ChatStoreRig:
    """The chat stores of one twin over one store state: the repository (users, groups,
    membership, messages), receipts and message changes, as the domain is given them."""

    twin: str
    repo: ChatRepository
    receipts: ReceiptStore
    changes: MessageChangeStore

    async def user(self, name: str = "") -> UserProfile:
        """A user nobody else used, known to the store (as ChatService.remember does)."""
        uid = twins.new_user_id()
        profile = UserProfile(uid, name or f"user{uid}")
        await self.repo.upsert_user(profile)
        return profile

    async def users(self, *names: str) -> list[UserProfile]:
        return [await self.user(name) for name in names]


@pytest.fixture(params=twins.STORES)
async def chat_stores(request: pytest.FixtureRequest) -> AsyncIterator[ChatStoreRig]:
    if request.param == "memory":
        yield ChatStoreRig("memory", *twins.memory_chat_stores())
        return
    db: PostgresDb = request.getfixturevalue("postgres_db")
    repo, receipts, changes = twins.postgres_chat_stores(await db.connect())
    repo.start()
    try:
        yield ChatStoreRig("postgres", repo, receipts, changes)
    finally:
        await repo.stop()
