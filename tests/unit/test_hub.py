"""The fan-out hub orders messages per group and repairs gaps from storage (pure logic)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from chat_service.domain.models import GroupHead, Message, MessageKind, UserProfile
from chat_service.fanout.delivery import Delivery
from chat_service.fanout.hub import Hub
from chat_service.fanout.session import Session, SubscriberLagged
from chat_service.fanout.subscriber import Subscriber


def msg(group: int, seq: int) -> Message:
    return Message(id=group * 1000 + seq, group_id=group, seq=seq, sender=UserProfile(1),
                   content=f"{group}:{seq}", kind=MessageKind.TEXT, created_at_ms=0)


class Store:
    """Storage stand-in holding committed messages (the hub only reads from it)."""

    def __init__(self) -> None:
        self.messages: dict[int, list[Message]] = {}
        self.members: dict[int, list[int]] = {}
        self.range_reads = 0

    def commit(self, group: int, count: int = 1) -> list[Message]:
        have = self.messages.setdefault(group, [])
        new = [msg(group, len(have) + i + 1) for i in range(count)]
        have.extend(new)
        return new

    async def messages_after(self, g: int, after: int, upto: int, limit: int) -> list[Message]:
        self.range_reads += 1
        return [m for m in self.messages.get(g, []) if after < m.seq <= upto][:limit]

    async def updates_after(
        self, g: int, after: int, upto: int, limit: int, viewer: int
    ) -> list[Message]:
        return []

    async def group_heads(self, ids: Sequence[int]) -> dict[int, int]:
        known = self.messages.keys() | self.members.keys()
        return {g: len(self.messages.get(g, [])) for g in ids if g in known}

    async def heads_for_user(self, user_id: int) -> dict[int, GroupHead]:
        mine = [g for g, users in self.members.items() if user_id in users]
        return {g: GroupHead(seq) for g, seq in (await self.group_heads(mine)).items()}


def seqs(sub: Subscriber, group: int) -> list[int]:
    return [d.seq for d in sub.drain(10_000) if d.group_id == group]


def make_hub(store: Store, **kw: float) -> Hub:
    return Hub(store.messages_after, store.group_heads, reorder_wait=kw.get("wait", 0.01),
               sweep_interval=0)


async def test_out_of_order_arrivals_are_delivered_in_sequence() -> None:
    store = Store()
    store.commit(1, 1)
    hub = make_hub(store)
    sub = Subscriber(1, 100)
    hub.add(sub, [1])
    hub.set_heads({1: 1})
    new = store.commit(1, 3)  # seq 2, 3, 4
    for m in (new[2], new[0], new[1]):
        hub.dispatch(Delivery.from_message(m))
    assert seqs(sub, 1) == [2, 3, 4]
    assert store.range_reads == 0  # resolved without storage


async def test_a_lost_event_is_filled_from_storage_once_for_all_subscribers() -> None:
    store = Store()
    hub = make_hub(store)
    subs = [Subscriber(u, 100) for u in range(50)]
    for s in subs:
        hub.add(s, [7])
    hub.set_heads({7: 0})
    new = store.commit(7, 3)
    hub.dispatch(Delivery.from_message(new[0]))
    hub.dispatch(Delivery.from_message(new[2]))  # seq 2 never arrives
    await asyncio.sleep(0.1)
    assert all(seqs(s, 7) == [1, 2, 3] for s in subs)
    assert store.range_reads == 1


async def test_sweep_delivers_messages_whose_events_were_all_lost() -> None:
    store = Store()
    hub = make_hub(store)
    sub = Subscriber(1, 100)
    hub.add(sub, [3])
    hub.set_heads({3: 0})
    store.commit(3, 2)  # published nowhere (Redis was down)
    await hub.sweep_once()  # first sighting: could still be in flight
    assert seqs(sub, 3) == []
    await hub.sweep_once()
    await asyncio.sleep(0.05)
    assert seqs(sub, 3) == [1, 2]


async def test_resync_catches_up_immediately() -> None:
    store = Store()
    hub = make_hub(store)
    sub = Subscriber(1, 100)
    hub.add(sub, [3])
    hub.set_heads({3: 0})
    store.commit(3, 4)
    await hub.resync()
    await asyncio.sleep(0.05)
    assert seqs(sub, 3) == [1, 2, 3, 4]


async def test_slow_subscriber_is_marked_lagging_without_affecting_others() -> None:
    store = Store()
    hub = make_hub(store)
    slow, fast = Subscriber(1, 5), Subscriber(2, 1000)
    hub.add(slow, [1])
    hub.add(fast, [1])
    hub.set_heads({1: 0})
    for m in store.commit(1, 20):
        hub.dispatch(Delivery.from_message(m))
    assert slow.lagged and slow.pending == 0
    assert seqs(fast, 1) == list(range(1, 21))


async def test_session_replays_then_goes_live_without_duplicates() -> None:
    store = Store()
    store.members[5] = [1]
    store.commit(5, 10)
    hub = make_hub(store)
    session = Session(hub, store, 1, queue_max=100, batch_max=100, replay_max=1000)
    await session.start({5: 4})
    # Events for seq 8..12 arrive live while the replay reads 5..10 from storage.
    for m in store.commit(5, 2):
        hub.dispatch(Delivery.from_message(m))
    for m in store.messages[5][7:10]:
        hub.dispatch(Delivery.from_message(m))
    replayed = [d.seq async for batch in session.replay() for d in batch]
    live = [d.seq for d in await session.next_batch(0.1)]
    assert replayed + live == list(range(5, 13))


async def test_session_fills_its_own_gap_and_reports_lagging() -> None:
    store = Store()
    store.members[5] = [1]
    hub = make_hub(store)
    session = Session(hub, store, 1, queue_max=3, batch_max=100, replay_max=1000)
    await session.start({})
    new = store.commit(5, 3)
    session.sub.push(Delivery.from_message(new[2]))  # as if the hub skipped ahead
    assert [d.seq for d in await session.next_batch(0.1)] == [1, 2, 3]
    for m in store.commit(5, 10):
        session.sub.push(Delivery.from_message(m))
    try:
        await session.next_batch(0.1)
    except SubscriberLagged:
        pass
    else:
        raise AssertionError("an overflowing subscriber must be told to resume")



async def test_a_membership_change_from_before_the_stream_started_is_not_news() -> None:
    """A pod's broker reader may hand over a change committed before a stream started (the
    group's creation, others joining) after that stream registered: its SYSTEM message is
    already behind the stream's position, so the member event is dropped; a later one is
    delivered."""
    from chat_service.gen import chat_pb2 as pb

    def joined(user: int, seq: int) -> Delivery:
        return Delivery.from_event(pb.ChatEvent(member=pb.MemberEvent(
            group_id=5, kind=pb.MemberEvent.JOINED, user=pb.User(id=user), seq=seq)))

    store = Store()
    store.members[5] = [1, 2]
    store.commit(5, 3)
    session = Session(make_hub(store), store, 1, queue_max=100, batch_max=100,
                      replay_max=1000)
    await session.start({})
    session.sub.push(joined(2, 1))  # the creation's, read late
    new = store.commit(5, 1)[0]  # seq 4: the SYSTEM message of the next join
    session.sub.push(joined(3, 4))
    session.sub.push(Delivery.from_message(new))
    got = await session.next_batch(0.1)
    assert [(d.kind, d.seq if d.kind == "message" else d.event.member.seq) for d in got] == [
        ("member", 4), ("message", 4)]


def test_batch_is_a_valid_subscribe_response() -> None:
    from chat_service.gen import chat_pb2 as pb

    ds = [Delivery.from_message(msg(1, s)) for s in range(1, 4)] + [Delivery.heartbeat()]
    parsed = pb.SubscribeResponse.FromString(b"".join(d.entry for d in ds))
    assert [e.WhichOneof("event") for e in parsed.events] == ["message"] * 3 + ["heartbeat"]
    assert [e.message.seq for e in parsed.events[:3]] == [1, 2, 3]
    big = Delivery.from_message(
        Message(id=1, group_id=1, seq=1, sender=UserProfile(1), content="é" * 5000,
                kind=MessageKind.TEXT, created_at_ms=0)
    )
    assert pb.SubscribeResponse.FromString(big.entry).events[0].message.content == "é" * 5000
