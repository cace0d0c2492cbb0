"""Limits that protect everyone: shared across pods, clear about which limit and when to retry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.ports import free_port
from chat_devstack.processes import ServiceProcess
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.support.chat_client import ChatClient, expect_status

TIGHT = {
    "RATE_LIMIT_USER_SEND": "5/30 seconds",
    "RATE_LIMIT_GROUP_SEND": "8/30 seconds",
    "RATE_LIMIT_GROUPS_CREATED": "3/hour",
    "RATE_LIMIT_TYPING": "off",
    "MAX_STREAMS_PER_USER": "2",
}


@pytest.fixture(scope="module")
def limited_pods(
    stack: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServiceProcess]]:
    """Two pods sharing the stack's PostgreSQL and Redis, with tight limits."""
    folder: Path = tmp_path_factory.mktemp("limited")
    pods = [
        ServiceProcess(f"limited-{i}", {**stack.env, **TIGHT}, free_port(), folder).start()
        for i in range(2)
    ]
    try:
        yield pods
    finally:
        for pod in pods:
            pod.stop()


@pytest.fixture
async def channels(limited_pods: list[ServiceProcess]) -> AsyncIterator[list[grpc.aio.Channel]]:
    chans = [grpc.aio.insecure_channel(p.address) for p in limited_pods]
    yield chans
    for ch in chans:
        await ch.close()


_ids = iter(range(7_000_000, 7_100_000))


def client(stack: Cluster, channel: grpc.aio.Channel, uid: int | None = None) -> ChatClient:
    uid = uid if uid is not None else next(_ids)
    return ChatClient(channel, mint(stack.jwt_secret, uid), uid)


async def test_user_send_limit_is_shared_across_pods_and_names_the_limit(
    stack: Cluster, channels: list[grpc.aio.Channel]
) -> None:
    uid = next(_ids)
    on_a, on_b = client(stack, channels[0], uid), client(stack, channels[1], uid)
    other = client(stack, channels[0])
    group = await on_a.create_group(members=[other.user_id])
    for i in range(3):
        await on_a.send(group.id, f"a{i}")
    for i in range(2):
        await on_b.send(group.id, f"b{i}")
    err = await expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, on_b.send(group.id, "6th"))
    assert "send rate limit per user (5/30 seconds)" in (err.details() or "")
    retry = dict(err.trailing_metadata() or ()).get("retry-after-ms")
    assert retry is not None and 0 < int(retry) <= 30_000
    # nobody else is slowed down by it
    assert (await other.send(group.id, "I can still talk")).seq > 0


async def test_group_send_limit_and_group_creation_limit(
    stack: Cluster, channels: list[grpc.aio.Channel]
) -> None:
    owner = client(stack, channels[0])
    members = [client(stack, channels[i % 2]) for i in range(3)]
    group = await owner.create_group(members=[m.user_id for m in members])
    sent = 0
    for m in members:
        for _ in range(3):
            try:
                await m.send(group.id, "x")
                sent += 1
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "per group" in (exc.details() or "")
    assert sent == 8
    for _ in range(2):
        await owner.create_group()
    err = await expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, owner.create_group())
    assert "group creation limit" in (err.details() or "")


async def test_open_streams_per_user_are_capped(
    stack: Cluster, channels: list[grpc.aio.Channel]
) -> None:
    alice = client(stack, channels[0])
    await alice.create_group()
    first, second = await alice.subscribe(), await alice.subscribe()
    third = alice.stub.Subscribe(pb.SubscribeRequest(), metadata=alice.metadata)

    async def read_one() -> object:
        async for item in third:
            return item
        return None

    err = await expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, read_one())
    assert "at most 2 open streams" in (err.details() or "")
    await first.close()
    await second.close()


async def test_oversized_metadata_and_messages_are_refused(
    stack: Cluster, channels: list[grpc.aio.Channel]
) -> None:
    alice = client(stack, channels[0])
    group = await alice.create_group()
    huge = mint(stack.jwt_secret, alice.user_id, name="x" * 9000)
    err = await expect_status(
        grpc.StatusCode.UNAUTHENTICATED,
        alice.stub.ListMyGroups(pb.ListMyGroupsRequest(),
                                metadata=(("authorization", f"Bearer {huge}"),)),
    )
    assert "longer than" in (err.details() or "")
    try:
        await alice.stub.ListMyGroups(
            pb.ListMyGroupsRequest(), metadata=(*alice.metadata, ("x-padding", "p" * 40_000))
        )
    except grpc.aio.AioRpcError as exc:
        assert exc.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL,
                              grpc.StatusCode.UNAVAILABLE)
    else:
        raise AssertionError("40 KB of metadata must be refused")
    await expect_status(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        alice.stub.SendMessage(pb.SendMessageRequest(group_id=group.id, content="y" * 5_000_000),
                               metadata=alice.metadata),
    )
    assert (await alice.send(group.id, "still fine")).seq > 0
