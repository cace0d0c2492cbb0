"""Search, pins and mark-unread through the real API, against PostgreSQL and Redis."""

from __future__ import annotations

import uuid

import grpc

from chat_service.domain.receipts import UNREAD_COUNT_MAX
from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.chat_client import ChatClient, expect_status, gather_limited


async def search(client: ChatClient, query: str, group_id: int = 0, limit: int = 0,
                 token: str = "") -> pb.SearchMessagesResponse:
    return await client.stub.SearchMessages(
        pb.SearchMessagesRequest(query=query, group_id=group_id, limit=limit, page_token=token),
        metadata=client.metadata,
    )


def found(reply: pb.SearchMessagesResponse) -> list[int]:
    return [h.message.id for h in reply.hits]


def word() -> str:
    """A word no other test wrote (the database is shared)."""
    return "w" + uuid.uuid4().hex[:10]


# ---- search ----


async def test_search_finds_only_what_the_caller_may_read(user: UserFactory) -> None:
    alice, bob, eve = user(), user(), user()
    term = word()
    ours = await alice.create_group(members=[bob.user_id])
    theirs = await eve.create_group()
    hit = await bob.send(ours.id, f"the {term} report is ready")
    await eve.send(theirs.id, f"secret {term} plans")
    assert found(await search(alice, term)) == [hit.id]
    assert found(await search(eve, term)) != [hit.id]
    # leaving a group takes its messages out of one's results
    await bob.leave(ours.id)
    assert found(await search(bob, term)) == []


async def test_search_never_returns_deleted_or_edited_away_text(user: UserFactory) -> None:
    alice = user()
    group = await alice.create_group()
    old, new, gone = word(), word(), word()
    edited = await alice.send(group.id, f"draft {old}")
    deleted = await alice.send(group.id, f"oops {gone}")
    await alice.stub.EditMessage(
        pb.EditMessageRequest(message_id=edited.id, content=f"final {new}"),
        metadata=alice.metadata,
    )
    await alice.stub.DeleteMessage(pb.DeleteMessageRequest(message_id=deleted.id),
                                   metadata=alice.metadata)
    assert found(await search(alice, old)) == []
    assert found(await search(alice, gone)) == []
    assert found(await search(alice, new)) == [edited.id]


async def test_results_are_ranked_highlighted_filtered_and_paged(user: UserFactory) -> None:
    alice = user()
    g1, g2 = await alice.create_group(), await alice.create_group()
    term = word()
    weak = await alice.send(g1.id, f"{term} once " + "filler " * 30)
    strong = await alice.send(g1.id, f"{term} {term} {term}")
    other = await alice.send(g2.id, f"<b>{term}</b> & more")
    reply = await search(alice, term)
    assert found(reply)[0] == strong.id and set(found(reply)) == {weak.id, strong.id, other.id}
    html = next(h for h in reply.hits if h.message.id == other.id)
    # plain text, not escaped (the client escapes it; markup-like tags are left out), and
    # highlight ranges over it
    assert "& more" in html.snippet and "<b>" not in html.snippet and html.highlights
    for h in html.highlights:
        assert html.snippet[h.offset:h.offset + h.length] == term
    assert found(await search(alice, term, group_id=g2.id)) == [other.id]
    assert found(await search(alice, f"{term} -once")) and weak.id not in found(
        await search(alice, f"{term} -once"))

    first = await search(alice, term, limit=2)
    assert len(first.hits) == 2 and first.next_page_token
    second = await search(alice, term, limit=2, token=first.next_page_token)
    assert found(second) and not second.next_page_token
    assert set(found(first)) | set(found(second)) == {weak.id, strong.id, other.id}


async def test_search_refuses_bad_input_and_foreign_groups(user: UserFactory) -> None:
    alice, eve = user(), user()
    closed = await eve.create_group(invite_only=True)
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, search(alice, "   "))
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, search(alice, "x" * 300))
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, search(alice, "a", token="nope!"))
    await expect_status(grpc.StatusCode.NOT_FOUND, search(alice, "a", group_id=closed.id))
    # query syntax is never an error: websearch syntax accepts anything
    assert found(await search(alice, '"unclosed & | ! :* (')) == []


# ---- pins ----


async def pin(client: ChatClient, message_id: int, pinned: bool = True) -> pb.MessageResponse:
    call = client.stub.PinMessage if pinned else client.stub.UnpinMessage
    return await call(pb.PinMessageRequest(message_id=message_id), metadata=client.metadata)


async def pinned(client: ChatClient, group_id: int) -> list[int]:
    reply = await client.stub.ListPinned(pb.ListPinnedRequest(group_id=group_id),
                                         metadata=client.metadata)
    return [m.id for m in reply.messages]


async def test_owners_and_admins_pin_members_list_and_everyone_hears(user: UserFactory) -> None:
    owner, admin, member, stranger = user(), user(), user(), user()
    group = await owner.create_group(members=[admin.user_id, member.user_id])
    await owner.stub.SetMemberRole(
        pb.SetMemberRoleRequest(group_id=group.id, user_id=admin.user_id, role=pb.ROLE_ADMIN),
        metadata=owner.metadata,
    )
    first = await member.send(group.id, "rules")
    second = await member.send(group.id, "agenda")
    stream = await member.subscribe()
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, pin(member, first.id))
    await expect_status(grpc.StatusCode.NOT_FOUND, pin(stranger, first.id))
    shown = await pin(owner, first.id)
    assert shown.pinned_by == owner.user_id and shown.pinned_at_ms > 0
    await pin(admin, second.id)
    await pin(admin, second.id)  # pinning twice changes nothing
    assert await pinned(member, group.id) == [second.id, first.id]  # newest pin first
    assert (await member.get_group(group.id)).pinned_count == 2
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, pinned(stranger, group.id))

    await stream.wait_until(lambda: len(stream.of_kind("pin")) >= 2)
    assert [(e.pin.message_id, e.pin.pinned) for e in stream.of_kind("pin")] == [
        (first.id, True), (second.id, True)]
    await pin(owner, first.id, pinned=False)
    await stream.wait_until(lambda: len(stream.of_kind("pin")) >= 3)
    assert stream.of_kind("pin")[2].pin.pinned is False
    assert await pinned(member, group.id) == [second.id]
    # deleting a pinned message unpins it
    await owner.stub.DeleteMessage(pb.DeleteMessageRequest(message_id=second.id),
                                   metadata=owner.metadata)
    assert await pinned(member, group.id) == []


async def test_a_group_holds_at_most_50_pins(user: UserFactory) -> None:
    owner = user()
    group = await owner.create_group()
    messages = [await owner.send(group.id, f"m{i}") for i in range(51)]
    for m in messages[:50]:
        await pin(owner, m.id)
    error = await expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, pin(owner, messages[50].id))
    assert "unpin one first" in (error.details() or "")
    await pin(owner, messages[0].id, pinned=False)
    await pin(owner, messages[50].id)
    assert len(await pinned(owner, group.id)) == 50


# ---- mark unread ----


async def test_mark_unread_moves_the_position_back_and_counts_follow(user: UserFactory) -> None:
    alice, bob = user("Alice"), user("Bob")
    group = await alice.create_group(members=[bob.user_id])
    sent = [await bob.send(group.id, f"m{i}") for i in range(3)]
    mention = await bob.send(group.id, "hey @Alice")
    sent.append(await bob.send(group.id, "last"))
    await alice.stub.MarkRead(pb.MarkReadRequest(group_id=group.id), metadata=alice.metadata)
    assert (await alice.get_group(group.id)).unread_count == 0

    result = await alice.stub.MarkUnread(
        pb.MarkUnreadRequest(group_id=group.id, message_id=sent[1].id), metadata=alice.metadata
    )
    assert result.read_seq == sent[1].seq - 1
    assert (result.unread_count, result.mention_count) == (4, 1)
    shown = await alice.get_group(group.id)
    assert (shown.read_seq, shown.unread_count, shown.mention_count) == (
        sent[1].seq - 1, 4, 1)
    # never forward: marking a later message unread keeps the earlier position
    later = await alice.stub.MarkUnread(
        pb.MarkUnreadRequest(group_id=group.id, message_id=mention.id), metadata=alice.metadata
    )
    assert later.read_seq == sent[1].seq - 1
    receipts = await alice.stub.GetReadReceipts(
        pb.GetReadReceiptsRequest(group_id=group.id, message_id=sent[2].id),
        metadata=alice.metadata,
    )
    assert alice.user_id not in [u.id for u in receipts.readers]


async def test_unread_and_mention_counts_stop_at_the_cap(user: UserFactory) -> None:
    """A member far behind costs a bounded count: the numbers stop at UNREAD_COUNT_MAX (a
    client shows "999+") in GetGroup, the group list and MarkRead alike; below it they are
    exact."""
    alice, bob = user("Alice"), user("Bob")
    group = await alice.create_group(members=[bob.user_id])
    sent = await gather_limited(
        [bob.send(group.id, f"@Alice {i}") for i in range(UNREAD_COUNT_MAX + 5)], 16)
    shown = await alice.get_group(group.id)
    assert (shown.unread_count, shown.mention_count) == (UNREAD_COUNT_MAX, UNREAD_COUNT_MAX)
    listed = {g.id: g for g in await alice.my_groups()}[group.id]
    assert (listed.unread_count, listed.mention_count) == (UNREAD_COUNT_MAX, UNREAD_COUNT_MAX)
    seqs = sorted(m.seq for m in sent)
    read = await alice.stub.MarkRead(
        pb.MarkReadRequest(group_id=group.id, seq=seqs[-8]), metadata=alice.metadata)
    assert read.unread_count == 7
    shown = await alice.get_group(group.id)
    assert (shown.unread_count, shown.mention_count) == (7, 7)


async def test_mark_unread_refuses_strangers_and_foreign_messages(user: UserFactory) -> None:
    alice, eve = user(), user()
    group = await alice.create_group()
    other = await eve.create_group()
    foreign = await eve.send(other.id, "elsewhere")
    await expect_status(grpc.StatusCode.NOT_FOUND, alice.stub.MarkUnread(
        pb.MarkUnreadRequest(group_id=group.id, message_id=foreign.id), metadata=alice.metadata))
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, eve.stub.MarkUnread(
        pb.MarkUnreadRequest(group_id=group.id, message_id=1), metadata=eve.metadata))
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, alice.stub.MarkUnread(
        pb.MarkUnreadRequest(group_id=group.id, message_id=0), metadata=alice.metadata))
