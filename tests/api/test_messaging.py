"""Posting, live delivery and history through the real gRPC API."""

from __future__ import annotations

import asyncio

import grpc

from chat_devstack.cluster import Cluster
from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.chat_client import ChatClient, expect_status, gather_limited


async def test_two_users_on_separate_streams_receive_each_others_messages_in_order(
    user: UserFactory,
) -> None:
    alice, bob = user("Alice"), user("Bob")
    group = await alice.create_group("pair", members=[bob.user_id])
    a_stream, b_stream = await alice.subscribe(), await bob.subscribe()

    sent = []
    for i in range(10):
        sender = alice if i % 2 == 0 else bob
        sent.append(await sender.send(group.id, f"message {i} from {sender.user_id}"))

    for stream in (a_stream, b_stream):
        got = await stream.wait_messages(10, group.id)
        assert [m.content for m in got] == [m.content for m in sent]
        assert [m.seq for m in got] == [m.seq for m in sent]
        assert [m.seq for m in got] == list(range(2, 12))  # seq 1 is "created the group"

    history = await alice.all_history(group.id)
    assert [(m.id, m.seq, m.content) for m in history[1:]] == [
        (m.id, m.seq, m.content) for m in sent
    ]
    assert history[0].type == pb.SYSTEM


async def test_sender_learns_id_seq_and_timestamp_and_names_come_from_the_token(
    user: UserFactory,
) -> None:
    alice = user("Alice Liddell")
    group = await alice.create_group()
    reply = await alice.send(group.id, "hello")
    assert reply.id > 0 and reply.seq == 2
    assert reply.user_id == alice.user_id and reply.user_name == "Alice Liddell"
    assert reply.timestamp > 1_700_000_000 and reply.timestamp_ms // 1000 == reply.timestamp


async def test_250_messages_page_back_with_before_id_without_gap_or_repeat(
    user: UserFactory,
) -> None:
    alice = user()
    group = await alice.create_group()
    sent = [await alice.send(group.id, f"m{i}") for i in range(250)]

    seen: list[pb.MessageResponse] = []
    before = 0
    pages = 0
    while True:
        page = await alice.history(group.id, before_id=before, limit=40)
        pages += 1
        assert [m.seq for m in page.messages] == sorted(m.seq for m in page.messages)
        seen[:0] = list(page.messages)
        if not page.has_more:
            break
        before = page.messages[0].id
    assert pages == 7  # 251 messages (with the SYSTEM one) in pages of 40
    assert [m.id for m in seen[1:]] == [m.id for m in sent]
    assert [m.seq for m in seen] == list(range(1, 252))


async def test_history_pages_are_stable_while_new_messages_arrive(user: UserFactory) -> None:
    alice = user()
    group = await alice.create_group()
    for i in range(30):
        await alice.send(group.id, f"old {i}")
    first = await alice.history(group.id, limit=10)
    for i in range(5):
        await alice.send(group.id, f"new {i}")
    second = await alice.history(group.id, before_id=first.messages[0].id, limit=10)
    assert second.messages[-1].seq == first.messages[0].seq - 1
    assert all(m.content.startswith("old") for m in second.messages)


async def test_history_limit_defaults_to_50_and_is_capped(user: UserFactory) -> None:
    alice = user()
    group = await alice.create_group()
    await gather_limited(alice.send(group.id, f"m{i}") for i in range(260))
    assert len((await alice.history(group.id)).messages) == 50
    capped = await alice.history(group.id, limit=10_000)
    assert len(capped.messages) == 200 and capped.has_more


async def test_concurrent_sends_get_gap_free_sequence_numbers(user: UserFactory) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    stream = await bob.subscribe()
    replies = await asyncio.gather(
        *(c.send(group.id, f"c{i}") for i in range(100) for c in (alice, bob))
    )
    assert sorted(r.seq for r in replies) == list(range(2, 202))
    got = await stream.wait_messages(200, group.id)
    assert [m.seq for m in got] == list(range(2, 202))


async def test_idempotent_retry_of_send_message_stores_one_message(user: UserFactory) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    stream = await bob.subscribe()
    first = await alice.send(group.id, "only once", key="retry-key-1")
    again = await alice.send(group.id, "only once", key="retry-key-1")
    racing = await asyncio.gather(*(alice.send(group.id, "race", key="k2") for _ in range(10)))
    assert again.id == first.id and again.seq == first.seq
    assert again.client_msg_id == "retry-key-1"
    assert len({r.id for r in racing}) == 1
    history = await alice.all_history(group.id)
    assert [m.content for m in history[1:]] == ["only once", "race"]
    await stream.wait_messages(2, group.id)
    await asyncio.sleep(0.3)
    assert len(stream.messages(group.id)) == 2  # the retries produced no extra events


async def test_same_key_from_another_user_is_another_message(user: UserFactory) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    a = await alice.send(group.id, "a", key="shared")
    b = await bob.send(group.id, "b", key="shared")
    assert a.id != b.id


async def test_bad_input_is_invalid_argument_and_other_streams_carry_on(
    user: UserFactory,
) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    stream = await bob.subscribe()
    cases = [
        pb.SendMessageRequest(group_id=group.id, content=""),
        pb.SendMessageRequest(group_id=group.id, content="x" * 4001),
        pb.SendMessageRequest(group_id=group.id, content="bell\x07"),
        pb.SendMessageRequest(group_id=group.id, content="hi", type=pb.SYSTEM),
        pb.SendMessageRequest(group_id=group.id, content="hi", type=99),  # type: ignore[arg-type]
        pb.SendMessageRequest(group_id=0, content="hi"),
        pb.SendMessageRequest(group_id=group.id, content="hi", client_msg_id="k" * 65),
    ]
    for request in cases:
        err = await expect_status(
            grpc.StatusCode.INVALID_ARGUMENT,
            alice.stub.SendMessage(request, metadata=alice.metadata),
        )
        assert err.details()
    too_long = await expect_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        alice.stub.SendMessage(
            pb.SendMessageRequest(group_id=group.id, content="x" * 4001),
            metadata=alice.metadata,
        ),
    )
    assert "4000" in (too_long.details() or "")
    ok = await alice.send(group.id, "still fine")
    got = await stream.wait_messages(1, group.id)
    assert got[0].id == ok.id and not stream.done


async def test_message_not_found_for_unknown_before_id(user: UserFactory) -> None:
    alice = user()
    group = await alice.create_group()
    await expect_status(grpc.StatusCode.NOT_FOUND, alice.history(group.id, before_id=1 << 60))


async def test_sends_committed_together_stay_exact(user: UserFactory) -> None:
    """Concurrent sends share commits (group commit); each still gets its own answer:
    gap-free seqs per group, one message per idempotency key, refusals for outsiders."""
    people = [user() for _ in range(6)]
    outsider = user()
    groups = [await people[0].create_group(members=[p.user_id for p in people[1:]])
              for _ in range(3)]
    calls = []
    for i in range(240):
        sender = people[i % 6]
        group = groups[i % 3]
        key = f"dup-{i // 2}" if i % 10 in (0, 1) else None  # some keys sent twice at once
        if key is not None:
            sender, group = people[0], groups[0]
        calls.append(sender.send(group.id, f"m{i}", key=key))
    calls.extend(outsider.send(groups[1].id, "let me in") for _ in range(5))
    results = await asyncio.gather(*calls, return_exceptions=True)
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 5
    assert all(r.code() == grpc.StatusCode.PERMISSION_DENIED for r in refused)
    acked = [r for r in results if isinstance(r, pb.MessageResponse)]
    by_key: dict[str, set[int]] = {}
    for r in acked:
        if r.client_msg_id.startswith("dup-"):
            by_key.setdefault(r.client_msg_id, set()).add(r.id)
    assert by_key and all(len(ids) == 1 for ids in by_key.values())
    for group in groups:
        seqs = sorted({r.seq for r in acked if r.group_id == group.id})
        assert seqs == list(range(2, 2 + len(seqs)))
        history = await people[0].all_history(group.id)
        assert [m.seq for m in history] == list(range(1, len(seqs) + 2))


async def test_a_burst_of_2000_concurrent_calls_is_served_or_shed_never_cancelled(
    user: UserFactory, stack: Cluster
) -> None:
    """grpc-core would CANCEL calls beyond 1,000 pending by default; the server raises that
    limit, and what its admission control refuses is RESOURCE_EXHAUSTED with a retry hint.
    (Over four channels, as a busy native client spreads its calls.)"""
    alice = user()
    group = await alice.create_group()
    channels = [grpc.aio.insecure_channel(stack.gateway,
                                          options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(4)]  # four connections (channels share one by default)
    clients = [ChatClient(ch, alice.token, alice.user_id) for ch in channels]
    try:
        results = await asyncio.gather(
            *(clients[i % 4].history(group.id, limit=1) for i in range(2000)),
            return_exceptions=True,
        )
    finally:
        for ch in channels:
            await ch.close()
    failures = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(f, grpc.aio.AioRpcError)
               and f.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
               and dict(f.trailing_metadata() or ()).get("retry-after-ms")
               for f in failures), {repr(f)[:160] for f in failures}
    assert len(failures) < len(results)
