"""Resuming streams read recent messages from the pod's memory; storage only when the cache
cannot answer exactly (pure logic, with a storage stand-in that counts its reads)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from chat_service.domain.models import GroupHead, Message
from chat_service.fanout.delivery import Delivery
from chat_service.fanout.hub import Hub
from chat_service.fanout.recent import RecentMessages
from chat_service.fanout.session import Session
from chat_service.gen import chat_pb2 as pb
from tests.unit.test_hub import Store, make_hub, msg


def updated(m: Message) -> Delivery:
    """The `updated` event the service publishes after an edit, delete or reaction."""
    return Delivery.from_event(pb.ChatEvent(updated=pb.MessageResponse(
        id=m.id, group_id=m.group_id, seq=m.seq, content=m.content)))


async def resume(hub_store: tuple[Hub, Store], user: int, position: int) -> list[Delivery]:
    hub, store = hub_store
    session = Session(hub, store, user, queue_max=1000, batch_max=1000, replay_max=1000)
    await session.start({5: position})
    try:
        return [d async for batch in session.replay() for d in batch]
    finally:
        session.close()


async def hub_delivering_live(store: Store, messages: int) -> Hub:
    """Group 5 with members 1 and 2; user 1 is subscribed and `messages` arrive live."""
    store.members[5] = [1, 2]
    hub = make_hub(store)
    listener = Session(hub, store, 1, queue_max=100, batch_max=100, replay_max=1000)
    await listener.start({})
    for m in store.commit(5, messages):
        hub.dispatch(Delivery.from_message(m))
    return hub


async def test_a_wave_of_resumers_of_one_group_reads_storage_once() -> None:
    store = Store()
    store.members[5] = list(range(1, 101))
    store.commit(5, 150)
    hub = make_hub(store)
    got = await asyncio.gather(*(resume((hub, store), u, 50) for u in range(1, 101)))
    assert all([d.seq for d in batch] == list(range(51, 151)) for batch in got)
    assert all(d.event.message.content == f"5:{d.seq}" for d in got[0])
    assert store.range_reads == 1


async def test_messages_delivered_live_serve_a_resume_without_storage() -> None:
    store = Store()
    hub = await hub_delivering_live(store, 20)
    got = await resume((hub, store), 2, 8)
    assert [d.seq for d in got] == list(range(9, 21))
    assert store.range_reads == 0


async def test_a_changed_message_is_read_again_from_storage() -> None:
    store = Store()
    hub = await hub_delivering_live(store, 10)
    edited = store.messages[5][6] = replace(store.messages[5][6], content="edited")  # seq 7
    hub.dispatch(updated(edited))
    got = await resume((hub, store), 2, 0)
    assert [d.event.message.content for d in got][6] == "edited"
    assert store.range_reads == 1
    # ...and the fresh copy is what the next resumer gets from memory.
    again = await resume((hub, store), 2, 5)
    assert [d.event.message.content for d in again][1] == "edited"
    assert store.range_reads == 1


async def test_a_reply_quoting_a_changed_message_is_not_served_from_memory() -> None:
    recent = RecentMessages(Store().messages_after, per_group=100, total=1000)
    original = msg(5, 1)
    reply = replace(msg(5, 2), reply_to_id=original.id)
    for m in (original, reply, msg(5, 3)):
        recent.remember(Delivery.from_message(m))
    recent.changed(5, 1, original.id)
    assert recent.cached(5, 0, 1) is None
    assert recent.cached(5, 1, 2) is None
    assert recent.cached(5, 2, 3) is not None  # unrelated messages stay


async def test_a_change_during_a_storage_read_keeps_that_read_out_of_memory() -> None:
    store = Store()
    store.commit(5, 3)
    release = asyncio.Event()

    async def slow_read(g: int, after: int, upto: int, limit: int) -> list[Message]:
        await release.wait()
        return await store.messages_after(g, after, upto, limit)

    recent = RecentMessages(slow_read, per_group=100, total=1000)
    reading = asyncio.create_task(recent.read(5, 0, 3, 100))
    await asyncio.sleep(0)
    recent.changed(5, 2, store.messages[5][1].id)  # the edit commits while storage is read
    release.set()
    assert [d.seq for d in await reading] == [1, 2, 3]
    assert recent.cached(5, 0, 3) is None


def test_memory_stays_within_its_bounds() -> None:
    recent = RecentMessages(Store().messages_after, per_group=10, total=25)
    for group in (1, 2, 3):
        for seq in range(1, 31):
            recent.remember(Delivery.from_message(msg(group, seq)))
    assert len(recent) == 25
    assert recent.cached(3, 20, 30) is not None  # the newest of the most recent group
    assert recent.cached(3, 19, 30) is None  # older than the group's bound
    # the least recently used group gave way: its 5 oldest went
    assert recent.cached(1, 20, 30) is None
    assert recent.cached(1, 25, 30) is not None


async def test_a_message_the_hub_delivered_before_the_stream_attached_is_replayed() -> None:
    store = Store()
    store.members[5] = [1, 2]
    store.commit(5, 10)
    hub = make_hub(store)
    listener = Session(hub, store, 1, queue_max=100, batch_max=100, replay_max=1000)
    await listener.start({})
    stale_heads = store.heads_for_user

    async def heads_then_more_arrive(user_id: int) -> dict[int, GroupHead]:
        heads = await stale_heads(user_id)
        # Two messages commit and reach the hub between the read and the attach.
        for m in store.commit(5, 2):
            hub.dispatch(Delivery.from_message(m))
        return heads

    store.heads_for_user = heads_then_more_arrive  # type: ignore[method-assign]
    got = await resume((hub, store), 2, 10)
    assert [d.seq for d in got] == [11, 12]


async def test_without_a_cache_every_resume_reads_storage() -> None:
    store = Store()
    store.commit(5, 5)
    recent = RecentMessages(store.messages_after, per_group=0, total=0)
    for _ in range(3):
        assert [d.seq for d in await recent.read(5, 2, 5, 100)] == [3, 4, 5]
    assert store.range_reads == 3
    assert len(recent) == 0
