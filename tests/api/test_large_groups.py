"""Large groups through the real API: events gathered per flush window still arrive exactly
once, in order, and membership changes cut in at the right place.

Its own service process, configured so that a group of 3 subscribers counts as large."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.support.chat_client import ChatClient

_ids = itertools.count(91_000_000)


@pytest.fixture(scope="module")
def large_stack() -> Iterator[Cluster]:
    cluster = Cluster(pods=1, with_envoy=False, extra_env={
        "LARGE_GROUP_SUBSCRIBERS": "3", "LARGE_GROUP_FLUSH_MS": "100"}).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def people(large_stack: Cluster) -> AsyncIterator[list[ChatClient]]:
    async with grpc.aio.insecure_channel(large_stack.gateway) as channel:
        clients = []
        for _ in range(6):
            uid = next(_ids)
            clients.append(ChatClient(channel, mint(large_stack.jwt_secret, uid), uid))
        yield clients
        for c in clients:
            await c.close()


async def test_a_burst_in_a_large_group_arrives_once_in_order_in_few_writes(
    people: list[ChatClient],
) -> None:
    owner, *members = people
    group = await owner.create_group(members=[m.user_id for m in members])
    streams = [await m.subscribe() for m in members]
    sent = await asyncio.gather(*(owner.send(group.id, f"burst {i}") for i in range(60)))
    head = max(m.seq for m in sent)
    for stream in streams:
        got = await stream.wait_messages(60, group.id)
        assert [m.seq for m in got] == list(range(head - 59, head + 1))
    await asyncio.sleep(0.3)
    assert all(len(s.messages(group.id)) == 60 for s in streams)
    assert all(s.batches < 30 for s in streams)  # gathered, not one write per message


async def test_a_member_leaving_a_large_group_stops_receiving_after_its_leave(
    people: list[ChatClient],
) -> None:
    owner, leaver, *others = people
    group = await owner.create_group(members=[m.user_id for m in (leaver, *others)])
    leaving = await leaver.subscribe()
    staying = [await m.subscribe() for m in others]
    before = [await owner.send(group.id, f"before {i}") for i in range(5)]
    await leaver.leave(group.id)
    after = [await owner.send(group.id, f"after {i}") for i in range(5)]
    for stream in staying:
        await stream.wait_messages(11, group.id)  # with the SYSTEM message of the leave
    await leaving.wait_until(lambda: bool(leaving.of_kind("member")))
    await asyncio.sleep(0.3)
    kinds = [(e.WhichOneof("event"), e.message.id) for e in leaving.events
             if e.WhichOneof("event") in ("message", "member")]
    assert kinds == [("message", m.id) for m in before] + [("member", 0)]
    for stream in staying:
        got = stream.messages(group.id)
        assert [m.id for m in got if m.type != pb.SYSTEM] == [m.id for m in before + after]
        assert [m.seq for m in got] == list(range(before[0].seq, after[-1].seq + 1))


async def test_typing_in_a_large_group_reaches_the_others(people: list[ChatClient]) -> None:
    owner, *members = people
    group = await owner.create_group(members=[m.user_id for m in members])
    streams = [await m.subscribe() for m in members]
    await owner.typing(group.id)
    for stream in streams:
        await stream.wait_until(lambda s=stream: any(  # type: ignore[misc]
            e.typing.user_id == owner.user_id for e in s.of_kind("typing")))
