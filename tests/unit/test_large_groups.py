"""A busy large group is written to each stream once per flush window, in order; quiet and
small groups are not delayed (pure logic: hub and subscriber queues, no servers)."""

from __future__ import annotations

import asyncio

from chat_service.fanout.delivery import Delivery
from chat_service.fanout.hub import Hub
from chat_service.fanout.subscriber import Subscriber
from chat_service.gen import chat_pb2 as pb
from tests.unit.test_hub import Store, msg

WINDOW = 0.2


def hub_with(subscribers: int, *, large: int = 3) -> tuple[Hub, list[Subscriber]]:
    hub = Hub(Store().messages_after, Store().group_heads, sweep_interval=0,
              large_group=large, large_group_flush=WINDOW)
    subs = [Subscriber(user_id=u, max_queue=1000) for u in range(1, subscribers + 1)]
    for sub in subs:
        hub.add(sub, [7])
    hub.set_heads({7: 0})
    return hub, subs


def send(hub: Hub, seq: int) -> None:
    hub.dispatch(Delivery.from_message(msg(7, seq)))


def queued(sub: Subscriber) -> list[int]:
    return [d.seq for d in sub.drain(10_000)]


async def test_the_first_event_of_a_quiet_large_group_goes_out_at_once() -> None:
    hub, subs = hub_with(5)
    send(hub, 1)
    assert all(queued(s) == [1] for s in subs)


async def test_a_busy_large_group_gathers_events_into_one_write_per_window() -> None:
    hub, subs = hub_with(5)
    send(hub, 1)
    for s in subs:
        queued(s)
    for seq in range(2, 12):
        send(hub, seq)
    assert all(s.pending == 0 for s in subs)  # held for the rest of the window
    await asyncio.wait_for(subs[0].wait(5), 5)
    assert all(queued(s) == list(range(2, 12)) for s in subs)


async def test_a_small_group_is_never_delayed() -> None:
    hub, subs = hub_with(2)
    for seq in range(1, 6):
        send(hub, seq)
        assert all(s.pending == seq for s in subs)
    assert all(queued(s) == [1, 2, 3, 4, 5] for s in subs)


async def test_a_member_leaving_gets_what_was_held_then_its_leave_then_nothing() -> None:
    hub, subs = hub_with(4)
    send(hub, 1)
    send(hub, 2)  # held
    leaver = subs[0]
    hub.dispatch(Delivery.from_event(pb.ChatEvent(member=pb.MemberEvent(
        group_id=7, kind=pb.MemberEvent.LEFT, user=pb.User(id=leaver.user_id), seq=3))))
    send(hub, 4)
    await asyncio.sleep(WINDOW * 1.5)
    got = leaver.drain(100)
    assert [(d.kind, d.seq) for d in got] == [("message", 1), ("message", 2), ("member", 0)]
    assert [(d.kind, d.seq) for d in subs[1].drain(100)] == [
        ("message", 1), ("message", 2), ("member", 0), ("message", 4)]


async def test_a_group_shrinking_below_the_threshold_keeps_its_order() -> None:
    hub, subs = hub_with(3)
    send(hub, 1)
    send(hub, 2)  # held: the group is large
    hub.remove(subs[2])  # now small
    send(hub, 3)  # still behind the held one
    await asyncio.sleep(WINDOW * 1.5)
    assert queued(subs[0]) == [1, 2, 3]
    send(hub, 4)
    assert queued(subs[0]) == [4]


async def test_a_flush_window_of_zero_turns_gathering_off() -> None:
    hub = Hub(Store().messages_after, Store().group_heads, sweep_interval=0,
              large_group=1, large_group_flush=0)
    sub = Subscriber(user_id=1, max_queue=100)
    hub.add(sub, [7])
    hub.set_heads({7: 0})
    for seq in (1, 2, 3):
        send(hub, seq)
        assert sub.pending == seq
