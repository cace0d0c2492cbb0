"""Threads, search, pins and mark-unread: the storage ports (domain/ports.py ThreadStore,
SearchStore, PinStore, ReceiptStore.mark_unread), one body over the memory twin and
PostgreSQL.

What the domain relies on: a thread reply takes the group's next seq and, in the same step,
the parent's next update_seq with its reply count and participants; thread-only replies stay
out of history and unread counts; a participant's unread replies count others' replies after
their position; search reaches the user's current groups only and never deleted, SYSTEM or
edited-away text; at most `max_pins` pins per group; mark-unread only moves a position back.
"""

from __future__ import annotations

import pytest

from chat_service.domain.conversation import ThreadLink
from chat_service.domain.errors import ResourceExhausted
from chat_service.domain.models import (
    MemberChange,
    Mention,
    Message,
    MessageKind,
    UserProfile,
)
from tests.contract.conftest import ChatStoreRig
from tests.contract.test_chat_store_contract import _group, _sent


async def _reply(
    stores: ChatStoreRig, parent: Message, sender: UserProfile, content: str = "re",
    also_in_group: bool = False,
) -> Message:
    result = await stores.repo.post_message(
        group_id=parent.group_id, sender=sender, content=content, kind=MessageKind.TEXT,
        client_msg_id="", thread=ThreadLink(parent.id, parent.sender.id, parent.seq,
                                            also_in_group),
    )
    assert result is not None and not result.duplicate
    return result.message


async def test_a_reply_takes_the_next_seq_and_updates_its_parent(
    chat_stores: ChatStoreRig,
) -> None:
    ann, bo = await chat_stores.users("Ann", "Bo")
    group = await _group(chat_stores, ann, bo)
    parent = await _sent(chat_stores, group.id, ann, "topic")
    first = await _reply(chat_stores, parent, bo)
    second = await _reply(chat_stores, parent, ann, also_in_group=True)
    assert (first.seq, second.seq) == (parent.seq + 1, parent.seq + 2)
    assert first.thread_parent_id == parent.id and not first.also_in_group
    summary = await chat_stores.repo.get_message(parent.id)
    assert summary is not None
    assert (summary.reply_count, summary.last_reply_at_ms) == (2, second.created_at_ms)
    assert summary.thread_participants == tuple(sorted((ann.id, bo.id)))
    assert summary.update_seq == 2  # one change of the parent per reply
    replies, more = await chat_stores.repo.thread_replies(parent.id, 0, 10, ann.id)
    assert [m.id for m in replies] == [first.id, second.id] and not more
    replies, more = await chat_stores.repo.thread_replies(parent.id, first.seq, 1, ann.id)
    assert [m.id for m in replies] == [second.id] and not more
    # replay carries every reply; history only those also sent to the group
    replay = await chat_stores.repo.messages_after(group.id, parent.seq, second.seq, 10)
    assert [m.id for m in replay] == [first.id, second.id]
    page = await chat_stores.repo.history(group.id, 0, 10)
    assert first.id not in [m.id for m in page.messages]
    assert second.id in [m.id for m in page.messages]


async def test_participants_count_unread_replies_by_others(chat_stores: ChatStoreRig) -> None:
    ann, bo, cy = await chat_stores.users("Ann", "Bo", "Cy")
    group = await _group(chat_stores, ann, bo, cy)
    parent = await _sent(chat_stores, group.id, ann, "topic")
    await _reply(chat_stores, parent, bo)
    last = await _reply(chat_stores, parent, bo)
    assert await chat_stores.repo.thread_position(parent.id, ann.id) == (parent.seq, 2)
    assert await chat_stores.repo.thread_position(parent.id, bo.id) == (last.seq, 0)
    assert await chat_stores.repo.thread_position(parent.id, cy.id) == (0, 0)
    shown = await chat_stores.repo.get_group(group.id, ann.id)
    assert shown is not None and (shown.thread_unread_count, shown.unread_count) == (2, 0)
    read = await chat_stores.repo.mark_thread_read(parent.id, ann.id, 0)
    assert (read.read_seq, read.unread_count, read.group_thread_unread) == (last.seq, 0, 0)
    back = await chat_stores.repo.mark_thread_read(parent.id, ann.id, parent.seq)
    assert back.read_seq == last.seq  # never back
    none = await chat_stores.repo.mark_thread_read(parent.id, cy.id, 0)
    assert (none.read_seq, none.unread_count) == (0, 0)


async def test_search_reaches_current_groups_only_and_live_text_only(
    chat_stores: ChatStoreRig,
) -> None:
    ann, bo = await chat_stores.users("Ann", "Bo")
    mine = await _group(chat_stores, ann, bo)
    other = await _group(chat_stores, bo)
    kept = await _sent(chat_stores, mine.id, bo, "quarterly zebra report")
    await _sent(chat_stores, other.id, bo, "zebra elsewhere")
    edited = await _sent(chat_stores, mine.id, bo, "old zebra draft")
    gone = await _sent(chat_stores, mine.id, bo, "zebra to delete")
    await chat_stores.changes.edit(edited, "new text", ())
    await chat_stores.changes.delete(gone)
    hits = await chat_stores.repo.search(ann.id, 0, "zebra", 10, 0, 100)
    assert [h.message.id for h in hits] == [kept.id]
    assert hits[0].snippet[hits[0].highlights[0][0]:][:5] == "zebra"
    assert await chat_stores.repo.search(ann.id, 0, "draft", 10, 0, 100) == []
    assert [h.message.id for h in await chat_stores.repo.search(ann.id, 0, "new", 10, 0, 100)] == [
        edited.id]
    assert await chat_stores.repo.search(ann.id, other.id, "zebra", 10, 0, 100) == []
    assert await chat_stores.repo.search(ann.id, 0, "zebra -quarterly", 10, 0, 100) == []
    # SYSTEM messages ("... created the group") are not searched
    assert await chat_stores.repo.search(ann.id, 0, "created", 10, 0, 100) == []
    await chat_stores.repo.remove_member(mine.id, ann.id, ann, MemberChange.LEFT)
    assert await chat_stores.repo.search(ann.id, 0, "zebra", 10, 0, 100) == []


async def test_pins_are_bounded_per_group_and_ordered_newest_first(
    chat_stores: ChatStoreRig,
) -> None:
    ann = await chat_stores.user("Ann")
    group = await _group(chat_stores, ann)
    messages = [await _sent(chat_stores, group.id, ann, f"m{i}") for i in range(4)]
    for m in messages[:3]:
        shown, changed = await chat_stores.repo.set_pin(m, ann.id, True, 3)
        assert changed and shown.pinned_by == ann.id
    _, again = await chat_stores.repo.set_pin(messages[0], ann.id, True, 3)
    assert not again
    with pytest.raises(ResourceExhausted, match="unpin one first"):
        await chat_stores.repo.set_pin(messages[3], ann.id, True, 3)
    listed = await chat_stores.repo.pinned(group.id, ann.id)
    assert [m.id for m in listed] == [m.id for m in reversed(messages[:3])]
    unpinned, changed = await chat_stores.repo.set_pin(messages[1], ann.id, False, 3)
    assert changed and unpinned.pinned_by == 0
    await chat_stores.changes.delete(messages[2])  # deleting unpins
    assert [m.id for m in await chat_stores.repo.pinned(group.id, ann.id)] == [messages[0].id]
    shown_group = await chat_stores.repo.get_group(group.id, ann.id)
    assert shown_group is not None and shown_group.pinned_count == 1


async def test_mark_unread_moves_back_only_and_recounts(chat_stores: ChatStoreRig) -> None:
    ann, bo = await chat_stores.users("Ann", "Bo")
    group = await _group(chat_stores, ann, bo)
    sent = [await _sent(chat_stores, group.id, bo, f"m{i}") for i in range(3)]
    await _sent(chat_stores, group.id, bo, "@Ann", mentions=(Mention(ann.id, 0, 4),))
    await chat_stores.receipts.mark_read(group.id, ann.id, 0)
    result = await chat_stores.receipts.mark_unread(group.id, ann.id, sent[1].id)
    assert result is not None
    assert (result.read_seq, result.unread_count, result.mention_count) == (
        sent[1].seq - 1, 3, 1)
    later = await chat_stores.receipts.mark_unread(group.id, ann.id, sent[2].id)
    assert later is not None and later.read_seq == sent[1].seq - 1
    other = await _group(chat_stores, bo)
    foreign = await _sent(chat_stores, other.id, bo)
    assert await chat_stores.receipts.mark_unread(group.id, ann.id, foreign.id) is None


async def test_search_ranks_best_first_and_bounds_its_candidates(
    chat_stores: ChatStoreRig,
) -> None:
    ann = await chat_stores.user("Ann")
    group = await _group(chat_stores, ann)
    best_but_oldest = await _sent(chat_stores, group.id, ann, "yak yak yak yak")
    newer = [await _sent(chat_stores, group.id, ann, f"yak {i}") for i in range(4)]
    # a budget that covers every match ranks the best first
    hits = await chat_stores.repo.search(ann.id, 0, "yak", 2, 0, 100)
    assert hits[0].message.id == best_but_oldest.id and len(hits) == 2
    # a small budget still answers a full page of matches (which ones depends on the plan:
    # every match when few are expected, else the newest of each group)
    hits = await chat_stores.repo.search(ann.id, 0, "yak", 2, 0, 3)
    assert len(hits) == 2
    assert {h.message.id for h in hits} <= {best_but_oldest.id, *(m.id for m in newer)}
