"""Shared fixtures: a real PostgreSQL, a real Redis and the real service process.

The servers are started once per test session on free loopback ports in temporary
directories (see chat_devstack), exactly as `make dev` and `make cluster` start them.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable, Iterator

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from tests.support.chat_client import ChatClient

_ids = itertools.count(random.randint(10_000, 10_000_000) * 100)


@pytest.fixture(scope="session")
def stack() -> Iterator[Cluster]:
    """One service process with PostgreSQL and Redis (no Envoy)."""
    cluster = Cluster(pods=1, with_envoy=False).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def secret(stack: Cluster) -> str:
    return stack.jwt_secret


@pytest.fixture
def new_user_id() -> Callable[[], int]:
    return lambda: next(_ids)


@pytest.fixture
async def channel(stack: Cluster) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(stack.gateway) as ch:
        yield ch


UserFactory = Callable[..., ChatClient]


@pytest.fixture
async def user(
    channel: grpc.aio.Channel, secret: str
) -> AsyncIterator[UserFactory]:
    """`user("Alice")` returns a client authenticated as a fresh user id."""
    made: list[ChatClient] = []

    def make(name: str = "", user_id: int | None = None) -> ChatClient:
        uid = user_id if user_id is not None else next(_ids)
        client = ChatClient(channel, mint(secret, uid, name=name or f"user{uid}"), uid)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
