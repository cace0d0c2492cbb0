"""Subscribe: batches, replay from a position, then live with no gap and no duplicate."""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.chat_client import expect_status, gather_limited


async def test_resume_delivers_exactly_the_missed_messages_then_live(user: UserFactory) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    first = await bob.subscribe()
    for i in range(5):
        await alice.send(group.id, f"before {i}")
    got = await first.wait_messages(5, group.id)
    last_seen = got[-1].seq
    await first.close()

    missed = [await alice.send(group.id, f"missed {i}") for i in range(7)]
    resumed = await bob.subscribe(positions={group.id: last_seen})
    live = [await alice.send(group.id, f"live {i}") for i in range(3)]
    await resumed.wait_messages(10, group.id)
    await asyncio.sleep(0.3)  # anything extra (a duplicate) would arrive by now
    got = resumed.messages(group.id)
    assert [m.id for m in got] == [m.id for m in missed + live]
    assert [m.seq for m in got] == list(range(last_seen + 1, last_seen + 11))


async def test_resume_while_messages_keep_arriving_has_no_gap_or_duplicate(
    user: UserFactory,
) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    for i in range(50):
        await alice.send(group.id, f"history {i}")

    async def keep_sending() -> list[pb.MessageResponse]:
        return [await alice.send(group.id, f"during {i}") for i in range(60)]

    sender = asyncio.create_task(keep_sending())
    await asyncio.sleep(0.05)
    stream = await bob.subscribe(positions={group.id: 10})
    during = await sender
    head = during[-1].seq
    await stream.wait_messages(head - 10, group.id, timeout=15)
    await asyncio.sleep(0.3)
    seqs = [m.seq for m in stream.messages(group.id)]
    assert seqs == list(range(11, head + 1))


async def test_replay_and_live_events_arrive_in_batches(user: UserFactory) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    for i in range(300):
        await alice.send(group.id, f"m{i}")
    stream = await bob.subscribe(positions={group.id: 0})
    await stream.wait_messages(301, group.id)
    assert stream.batches < 20  # 301 replayed events came in a few writes, not 301


async def test_resume_of_several_groups_at_different_positions(user: UserFactory) -> None:
    alice, bob = user(), user()
    g1 = await alice.create_group(members=[bob.user_id])
    g2 = await alice.create_group(members=[bob.user_id])
    for i in range(4):
        await alice.send(g1.id, f"g1 {i}")
        await alice.send(g2.id, f"g2 {i}")
    stream = await bob.subscribe(positions={g1.id: 3, g2.id: 5})
    await stream.wait_messages(2, g1.id)
    await stream.wait_messages(0, g2.id)
    await alice.send(g2.id, "fresh")
    await stream.wait_messages(1, g2.id)
    assert [m.seq for m in stream.messages(g1.id)] == [4, 5]
    assert [m.content for m in stream.messages(g2.id)] == ["fresh"]


async def test_resume_too_far_behind_gets_a_gap_event(user: UserFactory, stack: object) -> None:
    # REPLAY_MAX_MESSAGES defaults to 2000; a client 2100 messages behind is told to reload.
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    await gather_limited(alice.send(group.id, f"m{i}") for i in range(2100))
    stream = await bob.subscribe(positions={group.id: 0})
    await stream.wait_until(lambda: bool(stream.of_kind("gap")))
    gap = stream.of_kind("gap")[0].gap
    assert (gap.group_id, gap.from_seq, gap.resume_seq) == (group.id, 1, 2102)
    await alice.send(group.id, "after the gap")
    got = await stream.wait_messages(1, group.id)
    assert got[0].seq == 2102


async def test_subscribe_rejects_bad_positions(user: UserFactory) -> None:
    alice = user()
    stream = alice.stub.Subscribe(
        pb.SubscribeRequest(positions=[pb.GroupPosition(group_id=-1, last_seq=0)]),
        metadata=alice.metadata,
    )

    async def first() -> object:
        async for item in stream:
            return item
        return None

    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, first())


async def test_typing_reaches_other_members_and_is_not_stored(user: UserFactory) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    stream = await bob.subscribe()
    await alice.typing(group.id, True)
    await stream.wait_until(lambda: bool(stream.of_kind("typing")))
    event = stream.of_kind("typing")[0].typing
    assert (event.group_id, event.user_id, event.is_typing) == (group.id, alice.user_id, True)
    history = await alice.all_history(group.id)
    assert [m.type for m in history] == [pb.SYSTEM]


async def test_a_resume_after_an_edit_and_a_delete_gets_the_current_messages(
    user: UserFactory,
) -> None:
    """The pod keeps recent messages in memory for resuming streams; a change evicts them."""
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    listener = await bob.subscribe()  # this pod now holds the group's messages as delivered
    sent = [await alice.send(group.id, f"original {i}") for i in range(5)]
    await listener.wait_messages(5, group.id)
    await alice.stub.EditMessage(
        pb.EditMessageRequest(message_id=sent[1].id, content="edited"), metadata=alice.metadata)
    await alice.stub.DeleteMessage(
        pb.DeleteMessageRequest(message_id=sent[3].id), metadata=alice.metadata)
    await listener.wait_until(lambda: len(listener.of_kind("updated")) >= 2)

    resumed = await bob.subscribe(positions={group.id: sent[0].seq - 1})
    got = await resumed.wait_messages(5, group.id)
    assert [m.content for m in got] == ["original 0", "edited", "original 2", "", "original 4"]
    assert got[1].edited_at_ms > 0
    assert got[3].deleted


async def test_a_wave_of_members_resuming_together_each_get_exactly_what_they_missed(
    user: UserFactory,
) -> None:
    owner = user()
    members = [user() for _ in range(30)]
    group = await owner.create_group(members=[m.user_id for m in members])
    sent = [await owner.send(group.id, f"m{i}") for i in range(40)]
    positions = [sent[i % 20].seq for i in range(len(members))]  # 20 different positions
    streams = await asyncio.gather(*(
        m.subscribe(positions={group.id: p}) for m, p in zip(members, positions, strict=True)))
    head = sent[-1].seq
    for stream, p in zip(streams, positions, strict=True):
        got = await stream.wait_messages(head - p, group.id)
        assert [m.seq for m in got] == list(range(p + 1, head + 1))
    await asyncio.sleep(0.3)
    assert all(len(s.messages(group.id)) == head - p
               for s, p in zip(streams, positions, strict=True))


async def test_a_resume_gets_the_changes_after_its_change_position_and_no_others(
    user: UserFactory,
) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    sent = [await alice.send(group.id, f"m{i}") for i in range(3)]
    for i, m in enumerate(sent):  # update_seq 1, 2, 3
        await alice.stub.EditMessage(
            pb.EditMessageRequest(message_id=m.id, content=f"m{i} edited"),
            metadata=alice.metadata)
    await alice.send(group.id, "after the edits")

    async def resume(update_position: int) -> list[pb.MessageResponse]:
        call = bob.stub.Subscribe(pb.SubscribeRequest(positions=[pb.GroupPosition(
            group_id=group.id, last_seq=sent[-1].seq, last_update_seq=update_position)]),
            metadata=bob.metadata)
        changes: list[pb.MessageResponse] = []

        async def read() -> None:  # the missed messages up to the marker, then the changes
            async for response in call:
                changes.extend(e.updated for e in response.events
                               if e.WhichOneof("event") == "updated")

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(read(), 1.0)
        return changes

    behind = await resume(1)
    assert [(c.id, c.content, c.update_seq) for c in behind] == [
        (sent[1].id, "m1 edited", 2), (sent[2].id, "m2 edited", 3)]
    assert await resume(3) == []
