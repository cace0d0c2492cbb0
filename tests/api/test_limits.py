"""Limits that protect everyone: shared across pods, clear about which limit and when to retry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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
    "RATE_LIMIT_TYPING": "4/30 seconds",
    "RATE_LIMIT_EDITS": "3/30 seconds",
    "RATE_LIMIT_DELETES": "3/30 seconds",
    "RATE_LIMIT_REACTIONS": "4/30 seconds",
    "RATE_LIMIT_MARK_READ": "3/30 seconds",
    "RATE_LIMIT_READS": "10/30 seconds",
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


# ---- other users' budgets (issue 12, item 6) ----


def _refusal(err: grpc.aio.AioRpcError, text: str) -> None:
    assert text in (err.details() or ""), err.details()
    retry = dict(err.trailing_metadata() or ()).get("retry-after-ms")
    assert retry is not None and 0 < int(retry) <= 30_000


async def test_strangers_flooding_a_group_cannot_spend_its_send_budget(
    stack: Cluster, channels: list[grpc.aio.Channel]
) -> None:
    """15 refused sends from 3 strangers (the group's budget is 8) leave the owner the whole
    group budget; each stranger's flood is bounded by their own budget."""
    owner = client(stack, channels[0])
    group = await owner.create_group()
    strangers = [client(stack, channels[i % 2]) for i in range(3)]
    for s in strangers:
        for _ in range(5):
            await expect_status(grpc.StatusCode.PERMISSION_DENIED, s.send(group.id, "spam"))
        err = await expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, s.send(group.id, "spam"))
        _refusal(err, "send rate limit per user (5/30 seconds)")
    for i in range(5):
        assert (await owner.send(group.id, f"still here {i}")).seq == i + 2


async def test_typing_floods_from_strangers_are_bounded_members_unaffected(
    stack: Cluster, channels: list[grpc.aio.Channel]
) -> None:
    owner, stranger = client(stack, channels[0]), client(stack, channels[1])
    group = await owner.create_group()
    for _ in range(4):
        await expect_status(grpc.StatusCode.PERMISSION_DENIED, stranger.typing(group.id))
    err = await expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, stranger.typing(group.id))
    _refusal(err, "typing indicator limit per user (4/30 seconds)")
    assert (await owner.typing(group.id)).success


async def _exhaust(
    call: Callable[[int], Awaitable[object]], budget: int, text: str
) -> None:
    """`budget` calls succeed (alternating pods is up to `call`), the next is refused."""
    for i in range(budget):
        await call(i)
    err = await expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, call(budget))
    _refusal(err, text)


async def test_edit_delete_reaction_and_mark_read_budgets_per_user_across_pods(
    stack: Cluster, channels: list[grpc.aio.Channel]
) -> None:
    uid = next(_ids)
    alice = [client(stack, channels[0], uid), client(stack, channels[1], uid)]
    bob = client(stack, channels[1])
    group = await alice[0].create_group(members=[bob.user_id])
    mine = [await alice[i % 2].send(group.id, f"m{i}") for i in range(3)]
    bobs = await bob.send(group.id, "bob's")

    def edit(who: ChatClient, mid: int, i: int) -> Awaitable[object]:
        return who.stub.EditMessage(
            pb.EditMessageRequest(message_id=mid, content=f"edit {i}"), metadata=who.metadata)

    def delete(who: ChatClient, mid: int) -> Awaitable[object]:
        return who.stub.DeleteMessage(
            pb.DeleteMessageRequest(message_id=mid), metadata=who.metadata)

    def react(who: ChatClient, mid: int, i: int) -> Awaitable[object]:
        call = who.stub.AddReaction if i % 2 == 0 else who.stub.RemoveReaction
        emoji = "👍" if i % 4 < 2 else "🎉"
        return call(
            pb.ReactionRequest(message_id=mid, emoji=emoji), metadata=who.metadata)

    def mark(who: ChatClient, seq: int) -> Awaitable[object]:
        return who.stub.MarkRead(
            pb.MarkReadRequest(group_id=group.id, seq=seq), metadata=who.metadata)

    await _exhaust(lambda i: edit(alice[i % 2], mine[0].id, i), 3,
                   "edit limit per user (3/30 seconds)")
    await edit(bob, bobs.id, 0)
    await _exhaust(lambda i: react(alice[i % 2], mine[1].id, i), 4,
                   "reaction limit per user (4/30 seconds)")
    await react(bob, mine[1].id, 0)
    await _exhaust(lambda i: mark(alice[i % 2], i + 1), 3,
                   "mark-read limit per user (3/30 seconds)")
    await mark(bob, 2)
    await _exhaust(lambda i: delete(alice[i % 2], mine[min(i, 2)].id), 3,
                   "delete limit per user (3/30 seconds)")
    await delete(bob, bobs.id)


async def test_reads_share_one_cost_weighted_budget_per_user(
    stack: Cluster, channels: list[grpc.aio.Channel]
) -> None:
    """Budget 10: group list, members, receipts and a mentions page of 50 cost 1 each, a
    history page of 200 costs 4 and one of 100 costs 2; the next read of any kind is refused."""
    uid = next(_ids)
    a, b = client(stack, channels[0], uid), client(stack, channels[1], uid)
    other = client(stack, channels[0])
    group = await a.create_group(members=[other.user_id])
    sent = await a.send(group.id, "hello")
    await a.my_groups()
    await b.members(group.id)
    await a.stub.GetReadReceipts(pb.GetReadReceiptsRequest(group_id=group.id,
                                                           message_id=sent.id),
                                 metadata=a.metadata)
    await b.stub.GetMyMentions(pb.GetMyMentionsRequest(limit=50), metadata=b.metadata)
    await a.history(group.id, limit=200)
    await b.history(group.id, limit=100)
    err = await expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, a.my_groups())
    _refusal(err, "read limit per user (10/30 seconds")
    err = await expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, b.history(group.id))
    _refusal(err, "read limit per user")
    # another user is unaffected
    assert len((await other.history(group.id, limit=200)).messages) == 2
    assert len(await other.members(group.id)) == 2
