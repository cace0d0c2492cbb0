"""Threads through the real API: replies in order, the parent's summary, per-user unread
thread replies (exact after reconnecting), live events, resume by position, tombstones."""

from __future__ import annotations

import asyncio
import uuid

import grpc

from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.chat_client import ChatClient, expect_status


async def reply(
    client: ChatClient, parent_id: int, content: str, also_in_group: bool = False
) -> pb.MessageResponse:
    return await client.stub.ReplyInThread(
        pb.ThreadReplyRequest(parent_id=parent_id, content=content,
                              client_msg_id=uuid.uuid4().hex, also_in_group=also_in_group),
        metadata=client.metadata,
    )


async def thread(client: ChatClient, parent_id: int, after_seq: int = 0,
                 limit: int = 0) -> pb.ThreadResponse:
    return await client.stub.GetThread(
        pb.GetThreadRequest(parent_id=parent_id, after_seq=after_seq, limit=limit),
        metadata=client.metadata,
    )


async def test_replies_come_back_in_order_under_a_parent_that_summarises_them(
    user: UserFactory,
) -> None:
    alice, bob, carol = user("Alice"), user("Bob"), user("Carol")
    group = await alice.create_group(members=[bob.user_id, carol.user_id])
    parent = await alice.send(group.id, "lunch?")
    first = await reply(bob, parent.id, "yes")
    second = await reply(carol, first.id, "me too")  # a reply to a reply joins the thread
    third = await reply(bob, parent.id, "12:30")

    page = await thread(carol, parent.id)
    assert [m.id for m in page.replies] == [first.id, second.id, third.id]
    assert all(m.thread_parent_id == parent.id for m in page.replies)
    assert [m.seq for m in page.replies] == sorted(m.seq for m in page.replies)
    assert page.parent.reply_count == 3
    assert page.parent.last_reply_at_ms == third.timestamp_ms
    assert sorted(page.parent.thread_participant_ids) == sorted(
        [alice.user_id, bob.user_id, carol.user_id]
    )
    paged = await thread(carol, parent.id, after_seq=first.seq, limit=1)
    assert [m.id for m in paged.replies] == [second.id] and paged.has_more


async def test_thread_only_replies_stay_out_of_the_timeline_unless_also_sent_to_the_group(
    user: UserFactory,
) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    parent = await alice.send(group.id, "question")
    await alice.stub.MarkRead(pb.MarkReadRequest(group_id=group.id), metadata=alice.metadata)
    hidden = await reply(bob, parent.id, "only in the thread")
    shown = await reply(bob, parent.id, "also in the group", also_in_group=True)

    timeline = [m.id for m in await alice.all_history(group.id)]
    assert parent.id in timeline and shown.id in timeline and hidden.id not in timeline
    mine = await alice.get_group(group.id)
    assert mine.unread_count == 1  # the reply also sent to the group
    assert mine.thread_unread_count == 2  # both replies, in alice's thread


async def test_unread_thread_replies_are_per_participant_and_exact_after_reconnecting(
    user: UserFactory, channel: grpc.aio.Channel,
) -> None:
    alice, bob, carol = user(), user(), user()
    group = await alice.create_group(members=[bob.user_id, carol.user_id])
    parent = await alice.send(group.id, "plan")
    await reply(bob, parent.id, "a")
    await reply(bob, parent.id, "b")
    # alice (the parent's author) has 2 unread replies; carol takes no part: none
    assert (await alice.get_group(group.id)).thread_unread_count == 2
    assert (await carol.get_group(group.id)).thread_unread_count == 0
    assert (await thread(alice, parent.id)).unread_count == 2
    # bob's own replies are never unread to him
    assert (await bob.get_group(group.id)).thread_unread_count == 0

    read = await alice.stub.MarkThreadRead(
        pb.MarkThreadReadRequest(parent_id=parent.id), metadata=alice.metadata
    )
    assert (read.unread_count, read.group_thread_unread) == (0, 0)
    await reply(carol, parent.id, "c")  # carol joins the thread
    # a fresh connection (a reconnecting client) reads the same counts from storage
    again = ChatClient(channel, alice.token, alice.user_id)
    assert (await again.get_group(group.id)).thread_unread_count == 1
    assert [g.thread_unread_count for g in await again.my_groups() if g.id == group.id] == [1]
    assert (await bob.get_group(group.id)).thread_unread_count == 1


async def test_subscribers_see_replies_live_and_participants_get_thread_events(
    user: UserFactory,
) -> None:
    alice, bob, carol = user(), user(), user()
    group = await alice.create_group(members=[bob.user_id, carol.user_id])
    parent = await alice.send(group.id, "topic")
    alice_stream, carol_stream = await alice.subscribe(), await carol.subscribe()
    answer = await reply(bob, parent.id, "answer")

    for stream in (alice_stream, carol_stream):
        await stream.wait_until(lambda s=stream: any(  # type: ignore[misc]
            e.updated.id == parent.id for e in s.of_kind("updated")))
        assert [m.id for m in stream.messages(group.id)] == [answer.id]
        summary = [e.updated for e in stream.of_kind("updated") if e.updated.id == parent.id]
        assert summary[-1].reply_count == 1
    await alice_stream.wait_until(lambda: bool(alice_stream.of_kind("thread")))
    event = alice_stream.of_kind("thread")[0].thread
    assert (event.parent_id, event.message_id, event.from_user_id, event.reply_count) == (
        parent.id, answer.id, bob.user_id, 1)
    await asyncio.sleep(0.3)
    assert carol_stream.of_kind("thread") == []  # not a participant


async def test_a_resuming_client_gets_missed_replies_with_no_gap_or_duplicate(
    user: UserFactory,
) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    parent = await alice.send(group.id, "start")
    first = await bob.subscribe()
    await reply(alice, parent.id, "r0")
    got = await first.wait_messages(1, group.id)
    last_seen = got[-1].seq
    await first.close()

    missed = [await reply(alice, parent.id, f"r{i}", also_in_group=i % 2 == 0)
              for i in range(1, 6)]
    resumed = await bob.subscribe(positions={group.id: last_seen})
    live = [await reply(alice, parent.id, "live"), await alice.send(group.id, "plain")]
    await resumed.wait_messages(7, group.id)
    await asyncio.sleep(0.3)
    seen = resumed.messages(group.id)
    assert [m.id for m in seen] == [m.id for m in missed + live]
    assert [m.seq for m in seen] == list(range(last_seen + 1, last_seen + 8))


async def test_a_deleted_parent_keeps_its_thread_readable_but_closed(user: UserFactory) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    parent = await alice.send(group.id, "soon gone")
    kept = await reply(bob, parent.id, "still here")
    await alice.stub.DeleteMessage(pb.DeleteMessageRequest(message_id=parent.id),
                                   metadata=alice.metadata)
    page = await thread(bob, parent.id)
    assert page.parent.deleted and page.parent.content == ""
    assert page.parent.reply_count == 1 and [m.id for m in page.replies] == [kept.id]
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, reply(bob, parent.id, "late"))


async def test_outsiders_cannot_read_or_reply_and_bad_input_is_refused(
    user: UserFactory,
) -> None:
    alice, stranger = user(), user()
    group = await alice.create_group()
    parent = await alice.send(group.id, "private")
    await expect_status(grpc.StatusCode.NOT_FOUND, thread(stranger, parent.id))
    await expect_status(grpc.StatusCode.NOT_FOUND, reply(stranger, parent.id, "hi"))
    await expect_status(grpc.StatusCode.NOT_FOUND, thread(alice, 2**62))
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, thread(alice, 0))
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, reply(alice, parent.id, "  "))
    system = (await alice.all_history(group.id))[0]
    assert system.type == pb.SYSTEM
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, reply(alice, system.id, "no"))


async def test_a_retried_reply_is_stored_once(user: UserFactory) -> None:
    alice = user()
    group = await alice.create_group()
    parent = await alice.send(group.id, "p")
    request = pb.ThreadReplyRequest(parent_id=parent.id, content="once", client_msg_id="k-1")
    one = await alice.stub.ReplyInThread(request, metadata=alice.metadata)
    two = await alice.stub.ReplyInThread(request, metadata=alice.metadata)
    assert one.id == two.id
    assert (await thread(alice, parent.id)).parent.reply_count == 1


async def test_a_muted_member_cannot_reply_in_a_thread(user: UserFactory) -> None:
    owner, bob = user(), user()
    group = await owner.create_group(members=[bob.user_id])
    parent = await owner.send(group.id, "announcement")
    await owner.stub.ModerateMember(
        pb.ModerateMemberRequest(group_id=group.id, user_id=bob.user_id,
                                 kind=pb.ModerationAction.MUTE, reason="cool down"),
        metadata=owner.metadata,
    )
    error = await expect_status(grpc.StatusCode.PERMISSION_DENIED, reply(bob, parent.id, "but"))
    assert "muted" in (error.details() or "")
    assert (await thread(bob, parent.id)).parent.reply_count == 0  # reading is still allowed
