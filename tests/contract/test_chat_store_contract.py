"""The chat storage ports (domain/ports.py), one body over the memory twin and PostgreSQL.

What the domain relies on from any store: a group's messages (SYSTEM ones included) take
gap-free seqs 1, 2, 3...; a send is stored once per (sender, client_msg_id); a send by a
non-member is refused with None, decided in the same step as the seq; membership changes are
SYSTEM messages at the group's next seq, within the member limit, and an owner who leaves
hands the group on; history pages go newest-first in pages returned oldest-first, with
has_more; mentions reach members only; read positions only move forward; edits, deletes and
reactions each take the group's next update_seq.
"""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from chat_service.domain.errors import InvalidArgument, NotFound, ResourceExhausted
from chat_service.domain.models import (
    Group,
    MemberChange,
    Mention,
    Message,
    MessageKind,
    PostResult,
    Role,
    UserProfile,
)
from chat_service.fanout.session import SessionStore
from tests.contract.conftest import ChatStoreRig


async def _group(
    stores: ChatStoreRig, owner: UserProfile, *members: UserProfile, invite_only: bool = False
) -> Group:
    group, _ = await stores.repo.create_group(
        name="Team", description="the team", creator=owner,
        member_ids=[m.id for m in members], invite_only=invite_only,
    )
    return group


async def _post(
    stores: ChatStoreRig, group_id: int, sender: UserProfile, content: str = "hi",
    key: str = "", mentions: tuple[Mention, ...] = (),
) -> PostResult | None:
    return await stores.repo.post_message(
        group_id=group_id, sender=sender, content=content, kind=MessageKind.TEXT,
        client_msg_id=key, mentions=mentions,
    )


async def _sent(
    stores: ChatStoreRig, group_id: int, sender: UserProfile, content: str = "hi",
    mentions: tuple[Mention, ...] = (),
) -> Message:
    result = await _post(stores, group_id, sender, content, mentions=mentions)
    assert result is not None and not result.duplicate
    return result.message


# ---- groups ----


async def test_a_new_group_starts_with_its_creation_message_at_seq_1(
    chat_stores: ChatStoreRig,
) -> None:
    ann, bo = await chat_stores.user("Ann"), await chat_stores.user("Bo")
    group, created = await chat_stores.repo.create_group(
        name="Team", description="the team", creator=ann, member_ids=[bo.id, ann.id],
        invite_only=True,
    )
    assert (created.group_id, created.seq, created.kind) == (group.id, 1, MessageKind.SYSTEM)
    assert created.content == 'Ann created "Team"'
    assert (group.name, group.description, group.created_by) == ("Team", "the team", ann.id)
    assert (group.invite_only, group.last_seq, group.member_count) == (True, 1, 2)
    assert group.my_role == Role.OWNER
    seen = await chat_stores.repo.get_group(group.id, bo.id)
    assert seen is not None
    assert (seen.my_role, seen.member_count, seen.last_seq) == (Role.MEMBER, 2, 1)
    assert sorted(seen.member_ids) == sorted([ann.id, bo.id])


async def test_get_group_answers_strangers_without_a_role_and_missing_groups_with_none(
    chat_stores: ChatStoreRig,
) -> None:
    ann, stranger = await chat_stores.user(), await chat_stores.user()
    group = await _group(chat_stores, ann)
    seen = await chat_stores.repo.get_group(group.id, stranger.id)
    assert seen is not None and seen.my_role == Role.NONE and seen.unread_count == 0
    assert await chat_stores.repo.role_of(group.id, stranger.id) == Role.NONE
    assert await chat_stores.repo.get_group(group.id + 10_000_000, ann.id) is None
    assert await chat_stores.repo.role_of(group.id + 10_000_000, ann.id) == Role.NONE


async def test_a_users_groups_and_heads_list_only_the_groups_they_belong_to(
    chat_stores: ChatStoreRig,
) -> None:
    ann, bo = await chat_stores.user(), await chat_stores.user()
    first = await _group(chat_stores, ann, bo)
    second = await _group(chat_stores, ann)
    await _sent(chat_stores, second.id, ann)
    assert [g.id for g in await chat_stores.repo.list_groups_for_user(ann.id)] == [
        first.id, second.id]
    assert await chat_stores.repo.group_ids_for_user(bo.id) == [first.id]
    heads = await chat_stores.repo.group_heads([first.id, second.id, second.id + 10_000_000])
    assert heads == {first.id: 1, second.id: 2}


# ---- membership ----


async def test_joining_and_adding_are_system_messages_at_the_next_seq(
    chat_stores: ChatStoreRig,
) -> None:
    ann, bo, cy = await chat_stores.users("Ann", "Bo", "Cy")
    group = await _group(chat_stores, ann)
    joined = await chat_stores.repo.add_member(group.id, bo.id, bo, 100)
    added = await chat_stores.repo.add_member(group.id, cy.id, ann, 100)
    assert joined.changed and joined.message is not None
    assert (joined.message.seq, joined.message.content) == (2, "Bo joined")
    assert added.changed and added.message is not None
    assert (added.message.seq, added.message.content) == (3, "Ann added Cy")
    again = await chat_stores.repo.add_member(group.id, bo.id, bo, 100)
    assert (again.changed, again.message) == (False, None)
    seen = await chat_stores.repo.get_group(group.id, bo.id)
    assert seen is not None and (seen.last_seq, seen.member_count) == (3, 3)
    with pytest.raises(NotFound):
        await chat_stores.repo.add_member(group.id + 10_000_000, bo.id, bo, 100)


async def test_a_full_group_refuses_newcomers_but_not_its_members(
    chat_stores: ChatStoreRig,
) -> None:
    ann, bo, cy = await chat_stores.users("", "", "")
    group = await _group(chat_stores, ann, bo)
    with pytest.raises(InvalidArgument, match="full"):
        await chat_stores.repo.add_member(group.id, cy.id, cy, 2)
    assert await chat_stores.repo.role_of(group.id, cy.id) == Role.NONE
    assert not (await chat_stores.repo.add_member(group.id, bo.id, bo, 2)).changed
    assert (await chat_stores.repo.add_member(group.id, cy.id, cy, 3)).changed


async def test_leaving_and_removal_are_recorded_and_counted(chat_stores: ChatStoreRig) -> None:
    ann, bo, cy = await chat_stores.users("Ann", "Bo", "Cy")
    group = await _group(chat_stores, ann, bo, cy)
    left = await chat_stores.repo.remove_member(group.id, bo.id, bo, MemberChange.LEFT)
    removed = await chat_stores.repo.remove_member(group.id, cy.id, ann, MemberChange.REMOVED)
    assert left.message is not None and (left.message.seq, left.message.content) == (
        2, "Bo left")
    assert removed.message is not None and removed.message.content == "Ann removed Cy"
    gone = await chat_stores.repo.remove_member(group.id, cy.id, ann, MemberChange.REMOVED)
    assert (gone.changed, gone.message) == (False, None)
    seen = await chat_stores.repo.get_group(group.id, ann.id)
    assert seen is not None and (seen.member_count, seen.last_seq) == (1, 3)
    assert await chat_stores.repo.role_of(group.id, bo.id) == Role.NONE


async def test_an_owner_who_leaves_hands_the_group_to_an_admin_else_the_oldest_member(
    chat_stores: ChatStoreRig,
) -> None:
    ann, bo, cy, di = await chat_stores.users("", "", "", "")
    group = await _group(chat_stores, ann, bo)
    await chat_stores.repo.add_member(group.id, cy.id, cy, 100)
    await chat_stores.repo.add_member(group.id, di.id, di, 100)
    assert await chat_stores.repo.set_role(group.id, di.id, Role.ADMIN) is not None
    await chat_stores.repo.remove_member(group.id, ann.id, ann, MemberChange.LEFT)
    assert await chat_stores.repo.role_of(group.id, di.id) == Role.OWNER  # the admin
    await chat_stores.repo.remove_member(group.id, di.id, di, MemberChange.LEFT)
    assert await chat_stores.repo.role_of(group.id, bo.id) == Role.OWNER  # a founder
    assert await chat_stores.repo.role_of(group.id, cy.id) == Role.MEMBER


async def test_roles_change_for_members_only_never_for_the_owner(
    chat_stores: ChatStoreRig,
) -> None:
    ann, bo, cy, stranger = await chat_stores.users("Ann", "Bo", "Cy", "Zed")
    group = await _group(chat_stores, ann, bo)
    await chat_stores.repo.add_member(group.id, cy.id, cy, 100)
    member = await chat_stores.repo.set_role(group.id, cy.id, Role.ADMIN)
    assert member is not None and (member.user, member.role) == (cy, Role.ADMIN)
    assert await chat_stores.repo.set_role(group.id, ann.id, Role.MEMBER) is None
    assert await chat_stores.repo.set_role(group.id, stranger.id, Role.ADMIN) is None
    listed = await chat_stores.repo.list_members(group.id)
    assert [(m.user, m.role) for m in listed] == [
        (ann, Role.OWNER), (cy, Role.ADMIN), (bo, Role.MEMBER)]
    assert sorted(await chat_stores.repo.member_names(group.id)) == sorted(
        [(ann.id, ann.name), (bo.id, bo.name), (cy.id, cy.name)])


async def test_upserting_a_user_keeps_what_an_empty_field_would_erase(
    chat_stores: ChatStoreRig,
) -> None:
    ann = await chat_stores.user("Ann")
    await chat_stores.repo.upsert_user(UserProfile(ann.id, "Ann B", "ann@example.org"))
    await chat_stores.repo.upsert_user(UserProfile(ann.id, "", "", "a.png"))
    group = await _group(chat_stores, ann)
    [member] = await chat_stores.repo.list_members(group.id)
    assert member.user == UserProfile(ann.id, "Ann B", "ann@example.org", "a.png")



async def test_profiles_recorded_at_the_same_moment_end_as_one_at_a_time_would(
    chat_stores: ChatStoreRig,
) -> None:
    """A reconnect wave records thousands of profiles at once (PostgreSQL: in one statement)."""
    ann, bo = await chat_stores.user("Ann"), await chat_stores.user("Bo")
    repo = chat_stores.repo
    await asyncio.gather(
        repo.upsert_user(UserProfile(ann.id, "Ann B")),
        repo.upsert_user(UserProfile(bo.id, "Bo B", "bo@example.org")),
        repo.upsert_user(UserProfile(ann.id, "", "ann@example.org")),  # keeps "Ann B"
    )
    group = await _group(chat_stores, ann, bo)
    members = {m.user.id: m.user for m in await repo.list_members(group.id)}
    assert members[ann.id] == UserProfile(ann.id, "Ann B", "ann@example.org")
    assert members[bo.id] == UserProfile(bo.id, "Bo B", "bo@example.org")


async def test_the_heads_of_users_asking_at_the_same_moment_are_each_their_own(
    chat_stores: ChatStoreRig,
) -> None:
    """Every stream reads its user's groups as it opens (PostgreSQL: one statement for the
    users of one moment)."""
    users = [await chat_stores.user() for _ in range(4)]
    stranger = await chat_stores.user()
    # group i has the owner and users 1..i
    groups = [await _group(chat_stores, users[0], *users[1:i + 1]) for i in range(4)]
    await _sent(chat_stores, groups[2].id, users[0])
    seqs = await chat_stores.repo.group_heads([g.id for g in groups])
    sessions = cast(SessionStore, chat_stores.repo)  # the port the stream hand-over uses
    heads = await asyncio.gather(*(sessions.heads_for_user(u.id) for u in [*users, stranger]))
    for j, got in enumerate(heads[:4]):
        mine = [g.id for i, g in enumerate(groups) if j == 0 or j <= i]
        assert sorted(got) == sorted(mine)
        assert all(got[gid].seq == seqs[gid] for gid in mine)
    assert heads[4] == {}


# ---- messages ----


async def test_sends_take_gap_free_seqs_per_group_even_at_once(chat_stores: ChatStoreRig) -> None:
    ann, bo = await chat_stores.user(), await chat_stores.user()
    group, other = await _group(chat_stores, ann, bo), await _group(chat_stores, bo)
    sends = [_post(chat_stores, group.id, (ann, bo)[i % 2], f"m{i}") for i in range(20)]
    sends += [_post(chat_stores, other.id, bo, f"o{i}") for i in range(5)]
    results = await asyncio.gather(*sends)
    assert all(r is not None and not r.duplicate for r in results)
    seqs = [r.message.seq for r in results if r is not None]
    assert sorted(seqs[:20]) == list(range(2, 22))
    assert sorted(seqs[20:]) == list(range(2, 7))
    assert len({r.message.id for r in results if r is not None}) == 25
    assert await chat_stores.repo.group_heads([group.id, other.id]) == {
        group.id: 21, other.id: 6}


async def test_a_repeated_send_returns_the_first_and_takes_no_seq(
    chat_stores: ChatStoreRig,
) -> None:
    ann, bo = await chat_stores.user(), await chat_stores.user()
    group = await _group(chat_stores, ann, bo)
    first = await _post(chat_stores, group.id, ann, "once", key="k-1")
    again = await _post(chat_stores, group.id, ann, "once", key="k-1")
    assert first is not None and again is not None
    assert (first.duplicate, again.duplicate) == (False, True)
    assert (again.message.id, again.message.seq, again.message.content) == (
        first.message.id, 2, "once")
    others = await _post(chat_stores, group.id, bo, "same key, other sender", key="k-1")
    unkeyed = [await _post(chat_stores, group.id, ann, "no key") for _ in range(2)]
    assert others is not None and (others.duplicate, others.message.seq) == (False, 3)
    assert [(r.duplicate, r.message.seq) for r in unkeyed if r is not None] == [
        (False, 4), (False, 5)]


async def test_a_send_by_a_non_member_is_refused_without_taking_a_seq(
    chat_stores: ChatStoreRig,
) -> None:
    ann, bo, stranger = await chat_stores.users("", "", "")
    group = await _group(chat_stores, ann, bo)
    assert await _post(chat_stores, group.id, stranger, key="s-1") is None
    await chat_stores.repo.remove_member(group.id, bo.id, bo, MemberChange.LEFT)
    assert await _post(chat_stores, group.id, bo) is None
    assert await _post(chat_stores, group.id + 10_000_000, ann) is None
    assert (await _sent(chat_stores, group.id, ann)).seq == 3  # 1 created, 2 Bo left


async def test_history_pages_back_from_the_newest_with_has_more(
    chat_stores: ChatStoreRig,
) -> None:
    ann = await chat_stores.user()
    group = await _group(chat_stores, ann)
    sent = [await _sent(chat_stores, group.id, ann, f"m{i}") for i in range(5)]
    newest = await chat_stores.repo.history(group.id, 0, 2, ann.id)
    assert [m.content for m in newest.messages] == ["m3", "m4"] and newest.has_more
    middle = await chat_stores.repo.history(group.id, newest.messages[0].id, 2, ann.id)
    assert [m.content for m in middle.messages] == ["m1", "m2"] and middle.has_more
    oldest = await chat_stores.repo.history(group.id, middle.messages[0].id, 2, ann.id)
    assert [m.seq for m in oldest.messages] == [1, 2] and not oldest.has_more
    exact = await chat_stores.repo.history(group.id, sent[2].id, 3, ann.id)
    assert [m.seq for m in exact.messages] == [1, 2, 3] and not exact.has_more
    first = oldest.messages[0]
    before_first = await chat_stores.repo.history(group.id, first.id, 2, ann.id)
    assert before_first.messages == [] and not before_first.has_more
    other = await _group(chat_stores, ann)
    with pytest.raises(NotFound):
        await chat_stores.repo.history(other.id, sent[0].id, 2, ann.id)


async def test_messages_after_replays_a_seq_range_in_order(chat_stores: ChatStoreRig) -> None:
    ann = await chat_stores.user()
    group = await _group(chat_stores, ann)
    for i in range(5):
        await _sent(chat_stores, group.id, ann, f"m{i}")
    replay = await chat_stores.repo.messages_after(group.id, 2, 5, 100)
    assert [(m.seq, m.content) for m in replay] == [(3, "m1"), (4, "m2"), (5, "m3")]
    assert [m.seq for m in await chat_stores.repo.messages_after(group.id, 0, 6, 2)] == [1, 2]
    message = await chat_stores.repo.get_message(replay[0].id)
    assert message is not None and (message.group_id, message.seq) == (group.id, 3)


async def test_mentions_reach_members_mentioned_by_others_newest_first(
    chat_stores: ChatStoreRig,
) -> None:
    ann, bo = await chat_stores.user(), await chat_stores.user()
    group = await _group(chat_stores, ann, bo)
    by_name = await _sent(chat_stores, group.id, ann, "@bo one", (Mention(bo.id, 0, 3),))
    await _sent(chat_stores, group.id, bo, "@bo myself", (Mention(bo.id, 0, 3),))
    to_all = await _sent(chat_stores, group.id, ann, "@all two", (Mention(0, 0, 4),))
    first = await chat_stores.repo.mentions_of(bo.id, 0, 1)
    assert [m.id for m in first.messages] == [to_all.id] and first.has_more
    rest = await chat_stores.repo.mentions_of(bo.id, to_all.id, 10)
    assert [m.id for m in rest.messages] == [by_name.id] and not rest.has_more
    seen = await chat_stores.repo.get_group(group.id, bo.id)
    assert seen is not None and seen.mention_count == 2
    await chat_stores.repo.remove_member(group.id, bo.id, bo, MemberChange.LEFT)
    assert (await chat_stores.repo.mentions_of(bo.id, 0, 10)).messages == []


# ---- receipts ----


async def test_read_positions_only_move_forward_and_count_what_others_wrote(
    chat_stores: ChatStoreRig,
) -> None:
    ann, bo, stranger = await chat_stores.users("", "", "")
    group = await _group(chat_stores, ann, bo)
    for _ in range(3):
        await _sent(chat_stores, group.id, ann)  # seqs 2..4
    await _sent(chat_stores, group.id, bo)  # seq 5
    moved = await chat_stores.receipts.mark_read(group.id, bo.id, 2)
    assert moved is not None
    assert (moved.read_seq, moved.unread_count, moved.moved, moved.private) == (
        2, 2, True, False)
    back = await chat_stores.receipts.mark_read(group.id, bo.id, 1)
    assert back is not None and (back.read_seq, back.moved) == (2, False)
    beyond = await chat_stores.receipts.mark_read(group.id, bo.id, 99)
    assert beyond is not None and (beyond.read_seq, beyond.unread_count) == (5, 0)
    assert await chat_stores.receipts.mark_read(group.id, stranger.id, 0) is None
    newest = await chat_stores.receipts.mark_read(group.id, ann.id, 0)
    assert newest is not None and (newest.read_seq, newest.unread_count) == (5, 0)
    seen = await chat_stores.repo.get_group(group.id, bo.id)
    assert seen is not None and (seen.read_seq, seen.unread_count) == (5, 0)


async def test_readers_are_members_past_the_message_unless_their_receipts_are_private(
    chat_stores: ChatStoreRig,
) -> None:
    ann, bo, cy, di = await chat_stores.users("", "", "", "")
    group = await _group(chat_stores, ann, bo, cy, di)
    message = await _sent(chat_stores, group.id, ann)
    await chat_stores.receipts.mark_read(group.id, bo.id, 0)
    await chat_stores.receipts.mark_read(group.id, cy.id, 0)
    assert await chat_stores.receipts.private_receipts(cy.id, True) is True
    assert await chat_stores.receipts.readers(group.id, message.id) == ([bo], 1)  # di unread
    other = await _group(chat_stores, ann)
    assert await chat_stores.receipts.readers(other.id, message.id) is None
    assert await chat_stores.receipts.set_muted(group.id, bo.id, True)
    assert not await chat_stores.receipts.set_muted(other.id, bo.id, True)


# ---- message changes ----


async def test_edits_and_deletes_take_the_groups_next_update_seq(
    chat_stores: ChatStoreRig,
) -> None:
    ann, bo = await chat_stores.user(), await chat_stores.user()
    group = await _group(chat_stores, ann, bo)
    message = await _sent(chat_stores, group.id, ann, "first")
    edited = await chat_stores.changes.edit(message, "@bo fixed", [Mention(bo.id, 0, 3)])
    assert (edited.content, edited.update_seq, edited.seq) == ("@bo fixed", 1, message.seq)
    assert edited.edited_at_ms > 0 and edited.mentions == (Mention(bo.id, 0, 3),)
    await chat_stores.changes.react(edited, bo.id, "👍", True, 20)
    deleted, attachment = await chat_stores.changes.delete(edited)
    assert (deleted.deleted, deleted.content, deleted.reactions, deleted.mentions) == (
        True, "", (), ())
    assert (deleted.seq, deleted.update_seq, attachment) == (message.seq, 3, "")
    assert (await chat_stores.repo.mentions_of(bo.id, 0, 10)).messages == []
    seen = await chat_stores.repo.get_group(group.id, ann.id)
    assert seen is not None and seen.last_update_seq == 3


async def test_reactions_count_per_emoji_once_per_user_within_the_distinct_cap(
    chat_stores: ChatStoreRig,
) -> None:
    ann, bo = await chat_stores.user(), await chat_stores.user()
    group = await _group(chat_stores, ann, bo)
    message = await _sent(chat_stores, group.id, ann)
    _, changed = await chat_stores.changes.react(message, ann.id, "👍", True, 2)
    shown, changed_again = await chat_stores.changes.react(message, bo.id, "👍", True, 2)
    assert changed and changed_again
    assert [(r.emoji, r.count, r.mine) for r in shown.reactions] == [("👍", 2, True)]
    same, repeated = await chat_stores.changes.react(message, bo.id, "👍", True, 2)
    assert not repeated and same.update_seq == shown.update_seq
    await chat_stores.changes.react(message, bo.id, "🎉", True, 2)
    with pytest.raises(ResourceExhausted):
        await chat_stores.changes.react(message, bo.id, "🚀", True, 2)
    removed, undone = await chat_stores.changes.react(message, ann.id, "👍", False, 2)
    assert undone
    assert [(r.emoji, r.count, r.mine) for r in removed.reactions] == [
        ("👍", 1, False), ("🎉", 1, False)]
    viewed = await chat_stores.repo.get_message(message.id, bo.id)
    assert viewed is not None and [r.mine for r in viewed.reactions] == [True, True]
