"""Threads, search and pins (domain/threads.py, search.py, pins.py) against the memory twins:
who may do what, in which order budgets are spent, and which events the group hears.
No server, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from chat_service.domain.errors import InvalidArgument, NotFound, PermissionDenied
from chat_service.domain.limits import Limits
from chat_service.domain.models import (
    ChatEvent,
    Message,
    MessageKind,
    MessagePosted,
    MessageUpdated,
    PinChanged,
    ThreadReplied,
    UserProfile,
)
from chat_service.domain.pins import Pins
from chat_service.domain.search import (
    SNIPPET_MAX_CHARS,
    SNIPPET_START,
    SNIPPET_STOP,
    Search,
    offset_of,
    page_token,
    parse_snippet,
)
from chat_service.domain.threads import Threads
from chat_service.storage.memory import MemoryChatRepository, MemoryMessageChanges, MemoryState


@dataclass
class Events:
    seen: list[ChatEvent] = field(default_factory=list)

    async def publish(self, events: Sequence[ChatEvent]) -> None:
        self.seen.extend(events)


@dataclass
class Spent:
    rules: list[str] = field(default_factory=list)

    async def check(self, rule: str, *identifiers: int, cost: int = 1) -> None:
        self.rules.append(rule)


@dataclass
class World:
    repo: MemoryChatRepository
    events: Events
    spent: Spent
    threads: Threads
    search: Search
    pins: Pins
    ann: UserProfile
    bo: UserProfile
    zed: UserProfile
    group_id: int

    async def say(self, who: UserProfile, text: str) -> Message:
        result = await self.repo.post_message(
            group_id=self.group_id, sender=who, content=text, kind=MessageKind.TEXT,
            client_msg_id="")
        assert result is not None
        return result.message


@pytest.fixture
async def world() -> World:
    repo = MemoryChatRepository(MemoryState())
    events, spent, limits = Events(), Spent(), Limits()
    ann, bo, zed = UserProfile(1, "Ann"), UserProfile(2, "Bo"), UserProfile(3, "Zed")
    for u in (ann, bo, zed):
        await repo.upsert_user(u)
    group, _ = await repo.create_group(name="g", description="", creator=ann, member_ids=[bo.id],
                                       invite_only=True)
    return World(repo, events, spent, Threads(repo, events, limits, spent),
                 Search(repo, repo, limits, spent), Pins(repo, events, limits, spent),
                 ann, bo, zed, group.id)


# ---- threads ----


async def test_a_reply_is_announced_with_the_parents_new_summary_and_to_participants(
    world: World,
) -> None:
    parent = await world.say(world.ann, "topic")
    reply = await world.threads.reply(world.bo, parent.id, "hi @Ann", "", also_in_group=False)
    kinds = [type(e) for e in world.events.seen]
    assert kinds[:3] == [MessagePosted, MessageUpdated, ThreadReplied]
    summary = world.events.seen[1]
    assert isinstance(summary, MessageUpdated) and summary.message.reply_count == 1
    announced = world.events.seen[2]
    assert isinstance(announced, ThreadReplied)
    assert announced.participant_ids == (world.ann.id, world.bo.id)
    assert reply.thread_parent_id == parent.id and reply.mentions[0].user_id == world.ann.id
    assert world.spent.rules == ["user_send", "group_send"]


async def test_threads_refuse_system_parents_deleted_parents_and_strangers(world: World) -> None:
    system = (await world.repo.history(world.group_id, 0, 10)).messages[0]
    with pytest.raises(InvalidArgument, match="SYSTEM"):
        await world.threads.reply(world.ann, system.id, "no", "", also_in_group=False)
    parent = await world.say(world.ann, "soon gone")
    await MemoryMessageChanges(world.repo.state).delete(parent)
    with pytest.raises(InvalidArgument, match="deleted"):
        await world.threads.reply(world.bo, parent.id, "late", "", also_in_group=False)
    assert (await world.threads.thread(world.bo, parent.id, 0, 0)).parent.deleted
    with pytest.raises(NotFound):
        await world.threads.thread(world.zed, parent.id, 0, 0)
    with pytest.raises(InvalidArgument):
        await world.threads.thread(world.ann, parent.id, -1, 0)


async def test_a_reply_to_a_reply_joins_the_same_thread(world: World) -> None:
    parent = await world.say(world.ann, "topic")
    first = await world.threads.reply(world.bo, parent.id, "one", "", also_in_group=False)
    second = await world.threads.reply(world.ann, first.id, "two", "", also_in_group=True)
    assert second.thread_parent_id == parent.id and second.also_in_group
    page = await world.threads.thread(world.bo, first.id, 0, 0)
    assert page.parent.id == parent.id and [m.id for m in page.replies] == [first.id, second.id]
    assert (page.read_seq, page.unread_count) == (first.seq, 1)


# ---- pins ----


async def test_only_owners_and_admins_pin_and_the_group_hears_it(world: World) -> None:
    message = await world.say(world.bo, "rules")
    with pytest.raises(PermissionDenied):
        await world.pins.set_pin(world.bo, message.id, True)
    with pytest.raises(NotFound):  # a stranger learns nothing of the message
        await world.pins.set_pin(world.zed, message.id, True)
    pinned = await world.pins.set_pin(world.ann, message.id, True)
    assert pinned.pinned_by == world.ann.id
    assert [type(e) for e in world.events.seen] == [MessageUpdated, PinChanged]
    await world.pins.set_pin(world.ann, message.id, True)  # no change: no event
    assert len(world.events.seen) == 2
    assert [m.id for m in await world.pins.pinned(world.bo, world.group_id)] == [message.id]
    with pytest.raises(NotFound):  # invite-only: answered like a missing group
        await world.pins.pinned(world.zed, world.group_id)


# ---- search ----


def test_snippets_become_plain_text_and_highlight_ranges() -> None:
    marked = f"a {SNIPPET_START}zebra{SNIPPET_STOP} and <b>{SNIPPET_START}é🎉{SNIPPET_STOP}"
    assert parse_snippet(marked) == ("a zebra and <b>é🎉", ((2, 5), (15, 2)))
    long = f"{'x' * 298}{SNIPPET_START}word{SNIPPET_STOP}"
    text, marks = parse_snippet(long)
    assert len(text) == SNIPPET_MAX_CHARS and marks == ((298, 2),)


def test_page_tokens_round_trip_and_forged_ones_are_refused() -> None:
    assert page_token(0) == "" and offset_of("") == 0
    assert offset_of(page_token(40)) == 40
    for forged in ("nope!", "b2Zmc2V0", page_token(40)[:-2]):
        with pytest.raises(InvalidArgument, match="page_token"):
            offset_of(forged)


async def test_search_checks_input_before_spending_and_refuses_foreign_groups(
    world: World,
) -> None:
    for bad in ("  ", "x" * 300, "a\x00b"):
        with pytest.raises(InvalidArgument):
            await world.search.search(world.ann, bad, 0, 0, "")
    with pytest.raises(InvalidArgument, match="1000 deep"):
        await world.search.search(world.ann, "a", 0, 0, page_token(1000))
    assert world.spent.rules == []
    with pytest.raises(NotFound):
        await world.search.search(world.zed, "a", world.group_id, 0, "")
    assert world.spent.rules == ["user_search"]
    await world.say(world.bo, "quarterly zebra")
    page = await world.search.search(world.ann, "zebra", 0, 0, "")
    assert [h.snippet for h in page.hits] == ["quarterly zebra"] and page.next_offset == 0
