"""The chat use cases (domain/chat.py, receipts.py, message_changes.py) against the memory
twins: storage (storage/memory), the memory broker behind EventFanout, LocalPresence and a
memory RateLimiter, wired as backends.py wires them for BROKER=memory. No server, no I/O.

What each use case promises a caller: who may do what, what a stranger sees of a group
(an open group's public card; an invite-only group is answered like a missing one), and which
events the group hears.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import pytest

from chat_service.domain.chat import ChatService
from chat_service.domain.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from chat_service.domain.limits import Limits
from chat_service.domain.message_changes import MessageChanges
from chat_service.domain.models import (
    AttachmentInfo,
    Group,
    Message,
    MessageKind,
    Role,
    UserProfile,
)
from chat_service.domain.receipts import Receipts
from chat_service.fanout.broker import EventFanout
from chat_service.fanout.broker_memory import MemoryBroker
from chat_service.gen import chat_pb2
from chat_service.presence.local import LocalPresence
from chat_service.ratelimit.limiter import RateLimiter, RateRules
from chat_service.storage.memory import (
    MemoryChatRepository,
    MemoryMessageChanges,
    MemoryReceipts,
    MemoryState,
)


@dataclass
class Purged:
    ids: list[str] = field(default_factory=list)

    async def purge(self, attachment_id: str) -> None:
        self.ids.append(attachment_id)


@dataclass
class Chat:
    """The use cases over one memory world, and what its broker carried."""

    state: MemoryState
    service: ChatService
    receipts: Receipts
    changes: MessageChanges
    presence: LocalPresence
    purged: Purged
    published: list[tuple[int, chat_pb2.ChatEvent]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def sink(self, items: Iterable[tuple[int, bytes]]) -> None:
        self.published.extend((gid, chat_pb2.ChatEvent.FromString(p)) for gid, p in items)

    def heard(self) -> list[str]:
        """The kinds of event published since the last call, in order; then forget them."""
        kinds: list[str] = [e.WhichOneof("event") or "" for _, e in self.published]
        self.published.clear()
        return kinds

    async def user(self, name: str) -> UserProfile:
        profile = UserProfile(next(self._ids), name)
        await self.service.remember(profile)
        return profile

    async def group(self, owner: UserProfile, *members: UserProfile,
                    invite_only: bool = False) -> Group:
        group = await self.service.create_group(
            owner, name="Team", description="", member_ids=[m.id for m in members],
            invite_only=invite_only,
        )
        self.heard()
        return group

    async def post(self, caller: UserProfile, group_id: int, text: str = "hi", key: str = "",
                   *, kind: MessageKind = MessageKind.TEXT, reply_to_id: int = 0,
                   attachment_id: str = "") -> Message:
        result = await self.service.post_message(
            caller, group_id=group_id, content=text, kind=int(kind), client_msg_id=key,
            reply_to_id=reply_to_id, attachment_id=attachment_id,
        )
        return result.message


async def _chat(limits: Limits, rules: RateRules) -> Chat:
    state = MemoryState()
    repo = MemoryChatRepository(state)
    broker = MemoryBroker()
    fanout = EventFanout(broker)
    presence = LocalPresence(events=fanout, groups_of=repo.group_ids_for_user)
    rate = RateLimiter.memory(rules)
    purged = Purged()
    chat = Chat(
        state=state,
        service=ChatService(repo, fanout, presence, limits, rate),
        receipts=Receipts(MemoryReceipts(state), repo, fanout, rate),
        changes=MessageChanges(repo, MemoryMessageChanges(state), fanout, limits,
                               attachments=purged, rate=rate),
        presence=presence,
        purged=purged,
    )
    await broker.start(chat.sink)
    return chat


@pytest.fixture
async def chat() -> AsyncIterator[Chat]:
    yield await _chat(Limits(), RateRules())


async def _cast(chat: Chat) -> tuple[UserProfile, UserProfile, UserProfile]:
    return await chat.user("Ann"), await chat.user("Bo"), await chat.user("Zed")


# ---- groups and what strangers see ----


async def test_creating_a_group_announces_each_member_and_the_creation_message(
    chat: Chat,
) -> None:
    ann, bo, _ = await _cast(chat)
    group = await chat.service.create_group(
        ann, name="  Team  ", description="d", member_ids=[bo.id, ann.id], invite_only=False
    )
    assert (group.name, group.my_role, group.member_count) == ("Team", Role.OWNER, 2)
    assert chat.heard() == ["member", "member", "message"]
    with pytest.raises(InvalidArgument, match="name"):
        await chat.service.create_group(ann, name=" ", description="", member_ids=[],
                                        invite_only=False)


async def test_a_stranger_sees_an_open_groups_public_card_only(chat: Chat) -> None:
    ann, bo, zed = await _cast(chat)
    group = await chat.group(ann, bo)
    await chat.post(ann, group.id)
    card = await chat.service.get_group(zed, group.id)
    assert (card.name, card.member_count, card.my_role) == ("Team", 2, Role.NONE)
    assert (card.member_ids, card.last_seq) == ((), 0)
    mine = await chat.service.get_group(bo, group.id)
    assert (mine.last_seq, set(mine.member_ids)) == (2, {ann.id, bo.id})


async def test_an_invite_only_group_is_answered_to_strangers_like_a_missing_one(
    chat: Chat,
) -> None:
    ann, _, zed = await _cast(chat)
    hidden = await chat.group(ann, invite_only=True)
    missing = hidden.id + 1000
    for group_id in (hidden.id, missing):
        for call in (
            chat.service.get_group(zed, group_id),
            chat.service.join_group(zed, group_id, 0),
            chat.service.leave_group(zed, group_id, 0),
            chat.service.history(zed, group_id, 0, 10),
            chat.service.post_message(zed, group_id=group_id, content="x", kind=0,
                                      client_msg_id=""),
            chat.receipts.readers(zed, group_id, 1),
        ):
            with pytest.raises(NotFound, match=f"^group {group_id} not found$"):
                await call
    assert chat.heard() == []


# ---- membership ----


async def test_anyone_may_join_an_open_group_once(chat: Chat) -> None:
    ann, _, zed = await _cast(chat)
    group = await chat.group(ann)
    joined = await chat.service.join_group(zed, group.id, 0)
    assert joined.changed and joined.message is not None
    assert joined.message.content == "Zed joined"
    assert chat.heard() == ["member", "message"]
    again = await chat.service.join_group(zed, group.id, 0)
    assert not again.changed and chat.heard() == []


async def test_only_owners_and_admins_add_others_and_only_up_to_the_member_limit() -> None:
    chat = await _chat(Limits(members_per_group_max=3), RateRules())
    ann, bo, zed = await _cast(chat)
    cy = await chat.user("Cy")
    group = await chat.group(ann, bo)
    with pytest.raises(PermissionDenied, match="owners and admins"):
        await chat.service.join_group(bo, group.id, zed.id)
    await chat.service.set_role(ann, group.id, bo.id, Role.ADMIN)
    assert (await chat.service.join_group(bo, group.id, zed.id)).changed
    with pytest.raises(InvalidArgument, match="full"):
        await chat.service.join_group(cy, group.id, 0)
    listed = await chat.service.members(ann, group.id)
    assert {m.user.id for m, _ in listed} == {ann.id, bo.id, zed.id}


async def test_leaving_removing_and_who_may_remove_whom(chat: Chat) -> None:
    ann, bo, zed = await _cast(chat)
    cy = await chat.user("Cy")
    group = await chat.group(ann, bo, cy, zed)
    await chat.service.set_role(ann, group.id, bo.id, Role.ADMIN)
    with pytest.raises(PermissionDenied, match="only owners and admins"):
        await chat.service.leave_group(cy, group.id, zed.id)
    with pytest.raises(PermissionDenied, match="cannot remove a owner"):
        await chat.service.leave_group(bo, group.id, ann.id)
    removed = await chat.service.leave_group(bo, group.id, zed.id)
    assert removed.message is not None and removed.message.content == "Bo removed Zed"
    left = await chat.service.leave_group(cy, group.id, 0)
    assert left.message is not None and left.message.content == "Cy left"
    assert chat.heard() == ["member", "message", "member", "message"]
    with pytest.raises(NotFound, match="you are not a member"):
        await chat.service.leave_group(zed, group.id, 0)  # open group: said plainly
    with pytest.raises(NotFound, match=f"user {zed.id} is not a member"):
        await chat.service.leave_group(ann, group.id, zed.id)


async def test_only_the_owner_changes_roles_and_never_their_own(chat: Chat) -> None:
    ann, bo, zed = await _cast(chat)
    group = await chat.group(ann, bo)
    member = await chat.service.set_role(ann, group.id, bo.id, Role.ADMIN)
    assert member.role == Role.ADMIN
    with pytest.raises(PermissionDenied, match="only the owner"):
        await chat.service.set_role(bo, group.id, bo.id, Role.MEMBER)
    with pytest.raises(InvalidArgument, match="own role"):
        await chat.service.set_role(ann, group.id, ann.id, Role.ADMIN)
    with pytest.raises(InvalidArgument, match="ROLE_ADMIN or ROLE_MEMBER"):
        await chat.service.set_role(ann, group.id, bo.id, Role.OWNER)
    with pytest.raises(NotFound):
        await chat.service.set_role(ann, group.id, zed.id, Role.ADMIN)


async def test_members_are_listed_with_whether_they_are_online(chat: Chat) -> None:
    ann, bo, zed = await _cast(chat)
    group = await chat.group(ann, bo)
    await chat.presence.connected(bo.id)
    assert chat.heard() == ["presence"]
    listed = await chat.service.members(ann, group.id)
    assert [(m.user.id, online) for m, online in listed] == [(ann.id, False), (bo.id, True)]
    with pytest.raises(PermissionDenied):
        await chat.service.members(zed, group.id)


# ---- messages ----


async def test_posting_stores_at_the_next_seq_once_per_client_msg_id(chat: Chat) -> None:
    ann, bo, _ = await _cast(chat)
    group = await chat.group(ann, bo)
    first = await chat.post(ann, group.id, "hello", key="k1")
    assert (first.seq, first.content, first.sender.id) == (2, "hello", ann.id)
    assert chat.heard() == ["message"]
    retry = await chat.service.post_message(ann, group_id=group.id, content="hello", kind=0,
                                            client_msg_id="k1")
    assert retry.duplicate and retry.message.id == first.id
    assert chat.heard() == []  # a retry is not news
    assert (await chat.post(bo, group.id)).seq == 3


async def test_a_non_member_may_not_post_even_right_after_being_removed(chat: Chat) -> None:
    ann, bo, zed = await _cast(chat)
    group = await chat.group(ann, bo)
    with pytest.raises(PermissionDenied, match="not a member"):
        await chat.post(zed, group.id)
    await chat.post(bo, group.id)  # remembered as a sender for a while
    await chat.service.leave_group(ann, group.id, bo.id)
    with pytest.raises(PermissionDenied, match="not a member"):
        await chat.post(bo, group.id)
    chat.heard()
    assert chat.state.groups[group.id].last_seq == 3


async def test_mentions_are_resolved_against_members_and_announced(chat: Chat) -> None:
    ann, bo, _zed = await _cast(chat)
    group = await chat.group(ann, bo)
    message = await chat.post(ann, group.id, "@bo and @zed, look")
    assert [m.user_id for m in message.mentions] == [bo.id]  # Zed is no member
    assert chat.heard() == ["message", "mention"]
    await chat.post(bo, group.id, "@all plain text from a member")
    assert chat.heard() == ["message"]
    everyone = await chat.post(ann, group.id, "@all from the owner")
    assert [m.user_id for m in everyone.mentions] == [0]
    page = await chat.service.my_mentions(bo, 0, 10)
    assert [m.id for m in page.messages] == [everyone.id, message.id]


async def test_sends_are_checked_before_storage(chat: Chat) -> None:
    ann, bo, _ = await _cast(chat)
    group, other = await chat.group(ann, bo), await chat.group(ann)
    elsewhere = await chat.post(ann, other.id)
    with pytest.raises(InvalidArgument, match="is not in group"):
        await chat.post(ann, group.id, reply_to_id=elsewhere.id)
    with pytest.raises(InvalidArgument, match="attachment_id"):
        await chat.post(ann, group.id, kind=MessageKind.IMAGE)
    with pytest.raises(InvalidArgument, match="not a finished, unsent upload"):
        await chat.post(bo, group.id, kind=MessageKind.IMAGE, attachment_id="a1")
    with pytest.raises(InvalidArgument, match="empty"):
        await chat.post(ann, group.id, "   ")
    reply = await chat.post(bo, group.id, "re", reply_to_id=(await chat.post(ann, group.id)).id)
    assert reply.reply_quote is not None and reply.reply_quote.user_id == ann.id


async def test_history_pages_back_for_members_only(chat: Chat) -> None:
    ann, bo, zed = await _cast(chat)
    group = await chat.group(ann, bo)
    for i in range(4):
        await chat.post(ann, group.id, f"m{i}")
    page = await chat.service.history(bo, group.id, 0, 3)
    assert [m.content for m in page.messages] == ["m1", "m2", "m3"] and page.has_more
    rest = await chat.service.history(bo, group.id, page.messages[0].id, 3)
    assert [m.seq for m in rest.messages] == [1, 2] and not rest.has_more
    with pytest.raises(PermissionDenied):
        await chat.service.history(zed, group.id, 0, 3)


async def test_typing_is_announced_once_per_throttle_window_and_stopping_at_once(
    chat: Chat,
) -> None:
    ann, bo, zed = await _cast(chat)
    group = await chat.group(ann, bo)
    chat.service.typing_throttle_seconds = 3600.0  # no refresh can fall outside the window
    await chat.service.set_typing(bo, group.id, True)
    await chat.service.set_typing(bo, group.id, True)
    assert chat.heard() == ["typing"]
    await chat.service.set_typing(bo, group.id, False)
    await chat.service.set_typing(bo, group.id, True)  # a new burst after stopping
    assert [e.typing.is_typing for _, e in chat.published] == [False, True]
    with pytest.raises(PermissionDenied):
        await chat.service.set_typing(zed, group.id, True)


async def test_strangers_refused_sends_do_not_spend_the_groups_budget() -> None:
    chat = await _chat(Limits(), RateRules(user_send="100/hour", group_send="2/hour"))
    ann, bo, zed = await _cast(chat)
    group = await chat.group(ann, bo)
    for _ in range(5):
        with pytest.raises(PermissionDenied):
            await chat.post(zed, group.id)
    await chat.post(ann, group.id)
    await chat.post(bo, group.id)
    with pytest.raises(ResourceExhausted, match="per group"):
        await chat.post(ann, group.id)


# ---- receipts ----


async def test_reading_moves_the_position_counts_unread_and_tells_the_group(chat: Chat) -> None:
    ann, bo, zed = await _cast(chat)
    group = await chat.group(ann, bo)
    for _ in range(3):
        await chat.post(ann, group.id)
    chat.heard()
    [seen] = await chat.service.list_my_groups(bo)
    assert (seen.read_seq, seen.unread_count) == (0, 4)
    read = await chat.receipts.mark_read(bo, group.id, 2)
    assert (read.read_seq, read.unread_count, read.moved) == (2, 2, True)
    assert chat.heard() == ["receipt"]
    await chat.receipts.mark_read(bo, group.id, 1)  # never back, and nothing to tell
    assert chat.heard() == []
    await chat.receipts.private_receipts(bo, True)
    assert (await chat.receipts.mark_read(bo, group.id, 0)).read_seq == 4
    assert chat.heard() == []  # private receipts move silently
    with pytest.raises(PermissionDenied):
        await chat.receipts.mark_read(zed, group.id, 0)


async def test_readers_are_shown_to_members_only(chat: Chat) -> None:
    ann, bo, zed = await _cast(chat)
    group = await chat.group(ann, bo)
    message = await chat.post(ann, group.id)
    assert await chat.receipts.readers(ann, group.id, message.id) == ([], 1)
    await chat.receipts.mark_read(bo, group.id, 0)
    assert await chat.receipts.readers(ann, group.id, message.id) == ([bo], 0)
    with pytest.raises(PermissionDenied):
        await chat.receipts.readers(zed, group.id, message.id)  # open group, no member
    with pytest.raises(NotFound, match="is not in group"):
        await chat.receipts.readers(ann, group.id, message.id + 100)


# ---- edits, deletes, reactions ----


async def test_only_the_author_edits_and_the_group_hears_the_new_state(chat: Chat) -> None:
    ann, bo, zed = await _cast(chat)
    group = await chat.group(ann, bo)
    message = await chat.post(bo, group.id, "frist")
    chat.heard()
    edited = await chat.changes.edit(bo, message.id, "first @ann")
    assert (edited.content, [m.user_id for m in edited.mentions]) == ("first @ann", [ann.id])
    assert chat.heard() == ["updated"]
    with pytest.raises(PermissionDenied, match="only the author"):
        await chat.changes.edit(ann, message.id, "mine now")
    with pytest.raises(PermissionDenied, match="only the author"):
        await chat.changes.edit(ann, message.id - 1, "the creation message")  # SYSTEM
    with pytest.raises(NotFound):
        await chat.changes.edit(zed, message.id, "stranger")


async def test_authors_and_admins_delete_once_and_the_attachment_is_purged(
    chat: Chat,
) -> None:
    ann, bo, zed = await _cast(chat)
    cy = await chat.user("Cy")
    group = await chat.group(ann, bo, cy)
    chat.state.add_upload(AttachmentInfo("a1", "cat.png", "image/png", 10, 1, 1, "00"),
                          bo.id, group.id)
    image = await chat.post(bo, group.id, "", kind=MessageKind.IMAGE, attachment_id="a1")
    assert image.attachment is not None and image.attachment.id == "a1"
    with pytest.raises(PermissionDenied, match="author or an owner/admin"):
        await chat.changes.delete(cy, image.id)
    with pytest.raises(PermissionDenied, match="SYSTEM"):
        await chat.changes.delete(ann, image.id - 1)
    chat.heard()
    deleted = await chat.changes.delete(ann, image.id)  # the owner
    assert (deleted.deleted, deleted.content, deleted.attachment) == (True, "", None)
    assert chat.purged.ids == ["a1"] and chat.heard() == ["updated"]
    assert (await chat.changes.delete(bo, image.id)).deleted and chat.heard() == []
    with pytest.raises(InvalidArgument, match="was deleted"):
        await chat.changes.edit(bo, image.id, "too late")
    with pytest.raises(NotFound):
        await chat.changes.delete(zed, image.id)


async def test_reactions_toggle_per_user_and_only_changes_are_announced(chat: Chat) -> None:
    ann, bo, zed = await _cast(chat)
    group = await chat.group(ann, bo)
    message = await chat.post(ann, group.id)
    chat.heard()
    shown = await chat.changes.react(bo, message.id, "👍", True)
    assert [(r.emoji, r.count, r.mine) for r in shown.reactions] == [("👍", 1, True)]
    await chat.changes.react(bo, message.id, "👍", True)
    assert chat.heard() == ["updated"]
    assert (await chat.changes.react(bo, message.id, "👍", False)).reactions == ()
    with pytest.raises(InvalidArgument, match="single emoji"):
        await chat.changes.react(bo, message.id, "not an emoji", True)
    with pytest.raises(NotFound):
        await chat.changes.react(zed, message.id, "👍", True)
    await chat.changes.delete(ann, message.id)
    with pytest.raises(InvalidArgument, match="was deleted"):
        await chat.changes.react(bo, message.id, "👍", True)
