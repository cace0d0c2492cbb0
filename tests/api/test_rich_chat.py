"""Receipts, unread counts, mentions, reactions, replies, edits and deletes (one pod)."""

from __future__ import annotations

import asyncio

import grpc

from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.chat_client import ChatClient, expect_status, gather_limited


async def mark_read(c: ChatClient, group_id: int, seq: int = 0) -> pb.MarkReadResponse:
    return await c.stub.MarkRead(pb.MarkReadRequest(group_id=group_id, seq=seq),
                                 metadata=c.metadata)


async def unread(c: ChatClient, group_id: int) -> tuple[int, int]:
    g = next(g for g in await c.my_groups() if g.id == group_id)
    return g.unread_count, g.mention_count


async def react(
    c: ChatClient, message_id: int, emoji: str, add: bool = True
) -> pb.ReactionResponse:
    request = pb.ReactionRequest(message_id=message_id, emoji=emoji)
    call = c.stub.AddReaction if add else c.stub.RemoveReaction
    return await call(request, metadata=c.metadata)


async def test_unread_counts_are_exact_after_a_burst_a_partial_read_and_a_reconnect(
    user: UserFactory,
) -> None:
    alice, bob = user("Alice"), user("Bob")
    group = await alice.create_group(members=[bob.user_id])
    await mark_read(bob, group.id)  # bob has seen the creation message
    sent = await gather_limited((alice.send(group.id, f"m{i}") for i in range(100)), 16)
    await bob.send(group.id, "my own message does not count")
    assert await unread(bob, group.id) == (100, 0)
    assert await unread(alice, group.id) == (1, 0)  # bob's message (the creation is hers)
    seq40 = sorted(m.seq for m in sent)[39]
    reply = await mark_read(bob, group.id, seq40)
    assert (reply.read_seq, reply.unread_count) == (seq40, 60)
    back = await mark_read(bob, group.id, 3)  # read positions never move back
    assert back.read_seq == seq40
    stream = await bob.subscribe(positions={group.id: seq40})
    await stream.wait_messages(61, group.id)
    await stream.close()
    again = await bob.subscribe()  # reconnect: counts come from the server, not the client
    assert await unread(bob, group.id) == (60, 0)
    await again.close()
    assert (await mark_read(bob, group.id)).unread_count == 0
    assert await unread(bob, group.id) == (0, 0)


async def test_receipts_reach_other_members_unless_private(user: UserFactory) -> None:
    alice, bob, carol = user("Alice"), user("Bob"), user("Carol")
    group = await alice.create_group(members=[bob.user_id, carol.user_id])
    msg = await alice.send(group.id, "did you read this?")
    stream = await alice.subscribe()
    await mark_read(bob, group.id, msg.seq)
    await stream.wait_until(lambda: bool(stream.of_kind("receipt")))
    receipt = stream.of_kind("receipt")[0].receipt
    assert (receipt.user_id, receipt.read_seq) == (bob.user_id, msg.seq)

    await carol.stub.UpdateMySettings(pb.UpdateMySettingsRequest(private_receipts=True),
                                      metadata=carol.metadata)
    await mark_read(carol, group.id, msg.seq)
    who = await alice.stub.GetReadReceipts(
        pb.GetReadReceiptsRequest(group_id=group.id, message_id=msg.id), metadata=alice.metadata
    )
    assert [u.id for u in who.readers] == [bob.user_id]  # carol's receipt is private
    assert who.unread_by == 0
    await alice.send(group.id, "marker")
    await stream.wait_messages(1, group.id)
    assert [e.receipt.user_id for e in stream.of_kind("receipt")] == [bob.user_id]
    await expect_status(
        grpc.StatusCode.PERMISSION_DENIED,
        user().stub.GetReadReceipts(pb.GetReadReceiptsRequest(group_id=group.id,
                                                              message_id=msg.id),
                                    metadata=user().metadata),
    )


async def test_mentions_are_structured_counted_and_notified_even_when_muted(
    user: UserFactory,
) -> None:
    alice, bob, carol = user("Alice"), user("Bob Stone"), user("Carol")
    await bob.my_groups()
    await carol.my_groups()
    group = await alice.create_group(members=[bob.user_id, carol.user_id])
    await mark_read(bob, group.id)
    await bob.stub.UpdateMembership(pb.UpdateMembershipRequest(group_id=group.id, muted=True),
                                    metadata=bob.metadata)
    bob_stream = await bob.subscribe()
    carol_stream = await carol.subscribe()
    text = "hi @bob stone and @Mallory, mail me at x@bob.example"
    msg = await alice.send(group.id, text)
    assert [(m.user_id, m.offset, m.length) for m in msg.mentions] == [
        (bob.user_id, 3, len("@bob stone"))
    ]
    await bob_stream.wait_until(lambda: bool(bob_stream.of_kind("mention")))
    mention = bob_stream.of_kind("mention")[0].mention
    assert (mention.message_id, mention.from_user_id, mention.user_id) == (
        msg.id, alice.user_id, bob.user_id)
    groups = {g.id: g for g in await bob.my_groups()}
    assert groups[group.id].muted and groups[group.id].mention_count == 1
    mine = await bob.stub.GetMyMentions(pb.GetMyMentionsRequest(), metadata=bob.metadata)
    assert [m.id for m in mine.messages] == [msg.id]
    await carol_stream.wait_messages(1, group.id)
    assert carol_stream.of_kind("mention") == []  # nobody mentioned carol
    assert (await unread(carol, group.id))[1] == 0


async def test_at_all_is_for_owners_and_admins_only(user: UserFactory) -> None:
    alice, bob = user("Alice"), user("Bob")
    group = await alice.create_group(members=[bob.user_id])
    from_member = await bob.send(group.id, "@all look")
    assert list(from_member.mentions) == []
    stream = await bob.subscribe()
    from_owner = await alice.send(group.id, "@all meeting now")
    assert [(m.user_id, m.all) for m in from_owner.mentions] == [(0, True)]
    await stream.wait_until(lambda: bool(stream.of_kind("mention")))
    assert stream.of_kind("mention")[0].mention.user_id == 0
    assert (await unread(bob, group.id))[1] == 1


async def test_reactions_stay_exact_under_20_concurrent_users(user: UserFactory) -> None:
    owner = user()
    people = [user() for _ in range(20)]
    group = await owner.create_group(members=[p.user_id for p in people])
    msg = await owner.send(group.id, "react to me")
    await asyncio.gather(*(react(p, msg.id, "👍") for p in people))
    await asyncio.gather(*(react(p, msg.id, "👍") for p in people))  # twice: a no-op
    await asyncio.gather(*(react(p, msg.id, "🎉") for p in people[:7]))
    await asyncio.gather(*(react(p, msg.id, "🎉", add=False) for p in people[:3]))
    await asyncio.gather(*(react(p, msg.id, "😄", add=False) for p in people[:3]))  # absent
    seen_by_first = await react(people[0], msg.id, "👍")
    counts = {r.emoji: (r.count, r.mine) for r in seen_by_first.reactions}
    assert counts == {"👍": (20, True), "🎉": (4, False)}
    page = await owner.history(group.id)
    latest = page.messages[-1]
    assert {r.emoji: (r.count, r.mine) for r in latest.reactions} == {
        "👍": (20, False), "🎉": (4, False)}


async def test_reactions_must_be_real_emoji_and_are_capped_per_message(
    user: UserFactory,
) -> None:
    alice = user()
    group = await alice.create_group()
    msg = await alice.send(group.id, "hello")
    for bad in ("", "x", ":)", "👍👍", "a👍"):
        await expect_status(grpc.StatusCode.INVALID_ARGUMENT, react(alice, msg.id, bad))
    await react(alice, msg.id, "👩‍👩‍👧")  # a ZWJ family is one emoji
    await react(alice, msg.id, "👍🏽")  # with a skin tone
    emojis = ["😀", "😃", "😄", "😁", "😆", "😅", "😂", "🤣", "😊", "😇", "🙂", "🙃",
              "😉", "😌", "😍", "🥰", "😘", "😗"]
    for e in emojis:
        await react(alice, msg.id, e)
    err = await expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, react(alice, msg.id, "🤖"))
    assert "20" in (err.details() or "")
    await expect_status(grpc.StatusCode.NOT_FOUND, react(user(), msg.id, "👍"))


async def test_replies_carry_a_quote_of_the_original(user: UserFactory) -> None:
    alice, bob = user("Alice"), user("Bob")
    group = await alice.create_group(members=[bob.user_id])
    original = await alice.send(group.id, "what time is the meeting? " + "x" * 200)
    reply = await bob.stub.SendMessage(
        pb.SendMessageRequest(group_id=group.id, content="at noon", reply_to_id=original.id,
                              client_msg_id="r1"), metadata=bob.metadata)
    assert reply.reply_to_id == original.id
    assert reply.reply_quote.user_id == alice.user_id and reply.reply_quote.user_name == "Alice"
    assert reply.reply_quote.content.startswith("what time") and len(
        reply.reply_quote.content) == 120
    other = await alice.create_group()
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, alice.stub.SendMessage(
        pb.SendMessageRequest(group_id=other.id, content="x", reply_to_id=original.id),
        metadata=alice.metadata))


async def test_edit_and_delete_rules_and_tombstones(user: UserFactory) -> None:
    alice, bob = user("Alice"), user("Bob")
    group = await alice.create_group(members=[bob.user_id])
    by_bob = await bob.send(group.id, "typo hree")
    edited = await bob.stub.EditMessage(
        pb.EditMessageRequest(message_id=by_bob.id, content="typo here"), metadata=bob.metadata)
    assert edited.content == "typo here" and edited.edited_at_ms > 0 and edited.update_seq > 0
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, alice.stub.EditMessage(
        pb.EditMessageRequest(message_id=by_bob.id, content="not yours"),
        metadata=alice.metadata))
    await react(alice, by_bob.id, "👍")
    by_alice = await alice.send(group.id, "owner's message")
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, bob.stub.DeleteMessage(
        pb.DeleteMessageRequest(message_id=by_alice.id), metadata=bob.metadata))
    gone = await alice.stub.DeleteMessage(pb.DeleteMessageRequest(message_id=by_bob.id),
                                          metadata=alice.metadata)  # owners may delete
    assert gone.deleted and gone.content == "" and list(gone.reactions) == []
    history = await bob.all_history(group.id)
    tomb = next(m for m in history if m.id == by_bob.id)
    assert tomb.deleted and tomb.content == "" and tomb.seq == by_bob.seq
    assert [m.seq for m in history] == list(range(1, len(history) + 1))  # no holes
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, bob.stub.EditMessage(
        pb.EditMessageRequest(message_id=by_bob.id, content="back"), metadata=bob.metadata))


async def test_typing_events_carry_the_current_set_and_repeats_are_throttled(
    user: UserFactory,
) -> None:
    alice, bob, carol = user(), user(), user()
    group = await alice.create_group(members=[bob.user_id, carol.user_id])
    stream = await carol.subscribe()
    for _ in range(5):
        await alice.typing(group.id, True)
    await bob.typing(group.id, True)
    await stream.wait_until(lambda: len(stream.of_kind("typing")) >= 2)
    await bob.typing(group.id, False)
    await stream.wait_until(lambda: len(stream.of_kind("typing")) >= 3)
    sets = [(e.typing.user_id, e.typing.is_typing, list(e.typing.typing_user_ids))
            for e in stream.of_kind("typing")]
    assert sets == [
        (alice.user_id, True, [alice.user_id]),
        (bob.user_id, True, sorted([alice.user_id, bob.user_id])),
        (bob.user_id, False, [alice.user_id]),
    ]
