"""Thread replies and pins posted on one pod reach subscribers on another; a subscriber
resuming on the other pod gets the missed replies with no gap or duplicate."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.support.chat_client import ChatClient


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(pods=2, with_envoy=False).start()
    try:
        yield c
    finally:
        c.stop()


async def _reply(client: ChatClient, parent_id: int, text: str) -> pb.MessageResponse:
    return await client.stub.ReplyInThread(
        pb.ThreadReplyRequest(parent_id=parent_id, content=text, client_msg_id=uuid.uuid4().hex),
        metadata=client.metadata,
    )


async def test_thread_and_pin_events_cross_pods(cluster: Cluster) -> None:
    a_addr, b_addr = (s.address for s in cluster.services)
    async with grpc.aio.insecure_channel(a_addr) as ca, grpc.aio.insecure_channel(b_addr) as cb:
        alice = ChatClient(ca, mint(cluster.jwt_secret, 1601), 1601)
        bob = ChatClient(ca, mint(cluster.jwt_secret, 1602), 1602)
        alice_on_b = ChatClient(cb, alice.token, 1601)
        group = await alice.create_group(members=[1602])
        parent = await alice.send(group.id, "topic")
        stream = await alice_on_b.subscribe()

        answer = await _reply(bob, parent.id, "answer")  # on pod A
        await stream.wait_until(lambda: bool(stream.of_kind("thread")))
        assert [m.id for m in stream.messages(group.id)] == [answer.id]
        event = stream.of_kind("thread")[0].thread
        assert (event.parent_id, event.message_id, event.from_user_id) == (
            parent.id, answer.id, 1602)
        await stream.wait_until(lambda: any(
            e.updated.id == parent.id and e.updated.reply_count == 1
            for e in stream.of_kind("updated")))

        await alice.stub.PinMessage(pb.PinMessageRequest(message_id=answer.id),
                                    metadata=alice.metadata)
        await stream.wait_until(lambda: bool(stream.of_kind("pin")))
        pin = stream.of_kind("pin")[0].pin
        assert (pin.message_id, pin.pinned, pin.actor_id) == (answer.id, True, 1601)
        # the unread thread count is the same whichever pod answers
        assert (await alice_on_b.get_group(group.id)).thread_unread_count == 1
        assert (await alice.get_group(group.id)).thread_unread_count == 1
        await stream.close()


async def test_resuming_on_the_other_pod_replays_missed_replies(cluster: Cluster) -> None:
    a_addr, b_addr = (s.address for s in cluster.services)
    async with grpc.aio.insecure_channel(a_addr) as ca, grpc.aio.insecure_channel(b_addr) as cb:
        alice = ChatClient(ca, mint(cluster.jwt_secret, 1611), 1611)
        bob_a = ChatClient(ca, mint(cluster.jwt_secret, 1612), 1612)
        bob_b = ChatClient(cb, bob_a.token, 1612)
        group = await alice.create_group(members=[1612])
        parent = await alice.send(group.id, "start")
        first = await bob_a.subscribe()
        await _reply(alice, parent.id, "seen")
        seen = await first.wait_messages(1, group.id)
        await first.close()

        missed = [await _reply(alice, parent.id, f"missed {i}") for i in range(4)]
        resumed = await bob_b.subscribe(positions={group.id: seen[-1].seq})
        live = await _reply(alice, parent.id, "live")
        await resumed.wait_messages(5, group.id)
        await asyncio.sleep(0.3)
        got = resumed.messages(group.id)
        assert [m.id for m in got] == [m.id for m in [*missed, live]]
        assert [m.seq for m in got] == list(range(seen[-1].seq + 1, seen[-1].seq + 6))
        await resumed.close()
