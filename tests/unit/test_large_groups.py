"""A large group's events of one loop turn go to each stream together; only while the pod is
behind are they held longer (up to the flush window), in order; an idle pod and small groups
add no delay (pure logic: hub and subscriber queues, no servers)."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import REGISTRY

from chat_service.fanout.delivery import Delivery
from chat_service.fanout.hub import Hub
from chat_service.fanout.subscriber import Subscriber
from chat_service.gen import chat_pb2 as pb
from tests.unit.test_hub import Store, msg

WINDOW = 0.2


def hub_with(
    subscribers: int, *, large: int = 3, busy_rate: float = 25.0
) -> tuple[Hub, list[Subscriber]]:
    hub = Hub(Store().messages_after, Store().group_heads, sweep_interval=0,
              large_group=large, large_group_flush=WINDOW, large_group_busy_rate=busy_rate)
    subs = [Subscriber(user_id=u, max_queue=1000) for u in range(1, subscribers + 1)]
    for sub in subs:
        hub.add(sub, [7])
    hub.set_heads({7: 0})
    return hub, subs


def send(hub: Hub, seq: int) -> None:
    hub.dispatch(Delivery.from_message(msg(7, seq)))


def queued(sub: Subscriber) -> list[int]:
    return [d.seq for d in sub.drain(10_000)]


async def test_an_idle_pod_sends_a_large_groups_event_on_the_next_loop_turn() -> None:
    hub, subs = hub_with(5)
    send(hub, 1)
    await asyncio.sleep(0)
    assert all(queued(s) == [1] for s in subs)
    started = time.monotonic()
    send(hub, 2)  # right after a flush: an idle pod does not hold it for a window
    await asyncio.sleep(0)
    assert all(queued(s) == [2] for s in subs)
    assert time.monotonic() - started < WINDOW / 2


async def test_the_events_of_one_loop_turn_reach_each_stream_as_one_batch() -> None:
    hub, subs = hub_with(5)
    for seq in range(1, 11):  # one broker read: ten events, no await between them
        send(hub, seq)
    assert all(s.pending == 0 for s in subs)
    await asyncio.sleep(0)
    assert all(queued(s) == list(range(1, 11)) for s in subs)


async def test_a_pod_that_runs_flushes_late_gathers_events_up_to_the_window() -> None:
    hub, subs = hub_with(5)
    send(hub, 1)
    time.sleep(WINDOW / 4)  # noqa: ASYNC251 -- a busy loop: the flush runs a quarter window late
    await asyncio.sleep(0)
    assert all(queued(s) == [1] for s in subs)
    for seq in range(2, 6):
        send(hub, seq)
        await asyncio.sleep(0)
    assert all(s.pending == 0 for s in subs)  # held: twice the lateness (half a window)
    await asyncio.wait_for(subs[0].wait(5), 5)
    assert all(queued(s) == [2, 3, 4, 5] for s in subs)


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


async def test_a_busy_large_group_is_written_once_per_window() -> None:
    hub, subs = hub_with(5, busy_rate=5)
    writes: list[list[int]] = []
    for seq in range(1, 21):  # 20 events, one per loop turn: far above 5 events/s
        send(hub, seq)
        await asyncio.sleep(0)
        if subs[0].pending:
            writes.append(queued(subs[0]))
    await asyncio.sleep(WINDOW * 1.5)
    writes.append(queued(subs[0]))
    assert [seq for batch in writes for seq in batch] == list(range(1, 21))  # all, in order
    assert writes[:5] == [[1], [2], [3], [4], [5]]  # not busy yet: each at once
    assert len(writes) <= 7 and writes[-1][-1] == 20  # then the rest gathered into one write



async def test_a_burst_stops_counting_as_busy_soon_after_it_ends() -> None:
    """A reconnect wave (hundreds of presence events at once) must not leave the group "busy"
    for as long as that count takes to decay: 1.5 s later, two events in a row go out at once."""
    hub, subs = hub_with(5, busy_rate=5)
    for seq in range(1, 201):  # the burst: 200 events in one loop turn
        send(hub, seq)
    await asyncio.sleep(0)
    assert queued(subs[0]) == list(range(1, 201))
    await asyncio.sleep(1.5)
    send(hub, 201)
    await asyncio.sleep(0)
    assert queued(subs[0]) == [201]
    busy_holds = REGISTRY.get_sample_value("chat_large_group_holds_total", {"reason": "busy"})
    send(hub, 202)  # within the window of the last flush: held for it only if still "busy"
    await asyncio.sleep(WINDOW * 1.5)  # (a loaded test machine may hold it briefly as "late")
    assert queued(subs[0]) == [202]
    assert REGISTRY.get_sample_value(
        "chat_large_group_holds_total", {"reason": "busy"}) == busy_holds
