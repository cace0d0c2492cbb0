"""Typing, edits and deletes travel between pods; a resuming client receives the changes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.support.chat_client import ChatClient


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(pods=2, with_envoy=False, extra_env={"TYPING_TTL_SECONDS": "2"}).start()
    try:
        yield c
    finally:
        c.stop()


async def test_typing_on_pod_a_shows_on_pod_b_and_expires_by_itself(cluster: Cluster) -> None:
    a_addr, b_addr = (s.address for s in cluster.services)
    async with grpc.aio.insecure_channel(a_addr) as ca, grpc.aio.insecure_channel(b_addr) as cb:
        alice = ChatClient(ca, mint(cluster.jwt_secret, 901), 901)
        bob = ChatClient(cb, mint(cluster.jwt_secret, 902), 902)
        group = await alice.create_group(members=[902])
        stream = await bob.subscribe()
        await alice.typing(group.id, True)  # never sends "stopped typing"
        started = time.monotonic()
        await stream.wait_until(lambda: len(stream.of_kind("typing")) >= 2, timeout=10)
        expired_after = time.monotonic() - started
        first, second = (e.typing for e in stream.of_kind("typing")[:2])
        assert (first.user_id, first.is_typing, list(first.typing_user_ids)) == (901, True, [901])
        assert (second.user_id, second.is_typing, list(second.typing_user_ids)) == (901, False, [])
        assert 1.5 < expired_after < 5
        await stream.close()


async def test_edit_and_delete_reach_another_pod_and_a_resuming_subscriber(
    cluster: Cluster,
) -> None:
    a_addr, b_addr = (s.address for s in cluster.services)
    async with grpc.aio.insecure_channel(a_addr) as ca, grpc.aio.insecure_channel(b_addr) as cb:
        alice = ChatClient(ca, mint(cluster.jwt_secret, 911), 911)
        bob = ChatClient(cb, mint(cluster.jwt_secret, 912), 912)
        carol = ChatClient(cb, mint(cluster.jwt_secret, 913), 913)
        group = await alice.create_group(members=[912, 913])
        first = await alice.send(group.id, "first")
        second = await alice.send(group.id, "second")
        live = await bob.subscribe()
        # carol saw both messages and the change feed up to now, then went offline
        carol_position = (second.seq, 0)

        edited = await alice.stub.EditMessage(
            pb.EditMessageRequest(message_id=first.id, content="first (edited)"),
            metadata=alice.metadata)
        await alice.stub.DeleteMessage(pb.DeleteMessageRequest(message_id=second.id),
                                       metadata=alice.metadata)
        await alice.stub.AddReaction(pb.ReactionRequest(message_id=first.id, emoji="🔥"),
                                     metadata=alice.metadata)

        await live.wait_until(lambda: len(live.of_kind("updated")) >= 3)
        updates = [e.updated for e in live.of_kind("updated")]
        assert [(u.id, u.content, u.deleted) for u in updates] == [
            (first.id, "first (edited)", False),
            (second.id, "", True),
            (first.id, "first (edited)", False),
        ]
        assert updates[0].edited_at_ms == edited.edited_at_ms
        assert [(r.emoji, r.count, r.mine) for r in updates[2].reactions] == [("🔥", 1, False)]
        assert [u.update_seq for u in updates] == [1, 2, 3]

        request = pb.SubscribeRequest(positions=[pb.GroupPosition(
            group_id=group.id, last_seq=carol_position[0], last_update_seq=carol_position[1])])
        resumed = carol.stub.Subscribe(request, metadata=carol.metadata)
        changes: list[pb.MessageResponse] = []

        async def read() -> None:
            async for response in resumed:
                changes.extend(e.updated for e in response.events
                               if e.WhichOneof("event") == "updated")
                if len(changes) >= 2:
                    return

        await asyncio.wait_for(read(), 10)
        resumed.cancel()
        # the current state of each changed message, in change-feed order
        assert [(c.id, c.content, c.deleted, c.update_seq) for c in changes] == [
            (second.id, "", True, 2),
            (first.id, "first (edited)", False, 3),
        ]
        await live.close()
