"""Faults under a steady load through Envoy against three pods: PostgreSQL restarted, a pod
paused (SIGSTOP), a subscriber that never reads. Nothing acknowledged is lost; errors during
an outage are clear statuses; the figures printed here go into HARDENING.md."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.support.chat_client import ChatClient
from tests.support.resilient import SteadyLoad

ENV = {
    "SWEEP_INTERVAL_SECONDS": "1",
    "HEARTBEAT_SECONDS": "1",
    "SHUTDOWN_GRACE_SECONDS": "3",
    "SUBSCRIBER_QUEUE_MAX": "300",
}

_ids = iter(range(8_000_000, 8_100_000))


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster(pods=3, with_envoy=True, extra_env=ENV).start()
    try:
        yield c
    finally:
        c.stop()


async def setup_group(c: Cluster, n: int) -> tuple[pb.Group, list[tuple[int, str]]]:
    members = [(uid, mint(c.jwt_secret, uid)) for uid in (next(_ids) for _ in range(n))]
    owner_id = next(_ids)
    async with grpc.aio.insecure_channel(c.gateway) as channel:
        owner = ChatClient(channel, mint(c.jwt_secret, owner_id), owner_id)
        group = await owner.create_group(members=[m for m, _ in members])
    return group, members


async def test_postgres_restart_under_load(cluster: Cluster) -> None:
    group, members = await setup_group(cluster, 6)
    load = await SteadyLoad.start(cluster.gateway, group.id, [t for _, t in members],
                                  senders=3, rate=25, idle_timeout=5)
    await asyncio.sleep(1.5)
    assert cluster.postgres is not None
    cluster.postgres.stop()
    down_at = time.monotonic()
    await asyncio.sleep(3)
    errors_during = load.send_errors
    cluster.postgres.start()
    up_at = time.monotonic()
    acked_at_restart = load.acknowledged()
    while load.acknowledged() == acked_at_restart:
        await asyncio.sleep(0.05)
    first_ack_after = time.monotonic() - up_at
    await asyncio.sleep(2)
    acked = await load.stop_sending()
    assert acked == list(range(2, 2 + len(acked))), "acknowledged seqs have holes/duplicates"
    recovery = await load.caught_up(acked[-1])
    load.assert_exactly_once(acked[-1])
    async with grpc.aio.insecure_channel(cluster.gateway) as channel:
        reader = ChatClient(channel, members[0][1], members[0][0])
        history = await reader.all_history(group.id)
    assert [m.seq for m in history] == list(range(1, acked[-1] + 1))
    assert set(errors_during) <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"}, errors_during
    assert errors_during, "sends during the outage must fail with a clear status"
    print(f"\nPOSTGRES RESTART: {len(acked)} acked, outage {up_at - down_at:.1f}s, errors "
          f"{dict(errors_during)}, first ack {first_ack_after:.2f}s after restart, all "
          f"subscribers caught up {recovery:.2f}s later")
    await load.stop()


async def test_a_paused_pod_sigstop_loses_nothing(cluster: Cluster) -> None:
    group, members = await setup_group(cluster, 9)
    load = await SteadyLoad.start(cluster.gateway, group.id, [t for _, t in members],
                                  senders=3, rate=25, idle_timeout=3)
    await asyncio.sleep(1.5)
    victim = cluster.services[1]
    assert victim.proc is not None
    os.kill(victim.proc.pid, signal.SIGSTOP)
    paused_at = time.monotonic()
    await asyncio.sleep(8)
    acked = await load.stop_sending()
    await load.caught_up(acked[-1])
    os.kill(victim.proc.pid, signal.SIGCONT)
    await asyncio.sleep(1)
    assert len(set(acked)) == len(acked)
    load.assert_exactly_once(acked[-1])
    errors = load.send_errors
    assert set(errors) <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"}, errors
    print(f"\nSIGSTOP: {len(acked)} acked, send errors {dict(errors)}, subscriber reconnects "
          f"{sum(s.reconnects for s in load.subscribers)}, every subscriber had every "
          f"acknowledged message {time.monotonic() - paused_at:.1f}s after the pause "
          "(8 s of it under load)")
    await load.stop()


async def test_a_subscriber_that_never_reads_is_cut_off_and_others_are_unaffected(
    cluster: Cluster,
) -> None:
    group, members = await setup_group(cluster, 3)
    pod = cluster.services[0]
    (slow_id, slow_tok), (fast_id, fast_tok), (sender_id, sender_tok) = members
    # No BDP probing: the slow client's flow-control window stays at 64 KiB, so a client that
    # does not read really stops the server's writes (instead of buffering megabytes).
    slow_options = [("grpc.http2.bdp_probe", 0)]
    async with grpc.aio.insecure_channel(pod.address, options=slow_options) as slow_ch, \
            grpc.aio.insecure_channel(pod.address) as fast_ch:
        slow = ChatClient(slow_ch, slow_tok, slow_id)
        never_read = slow.stub.Subscribe(pb.SubscribeRequest(), metadata=slow.metadata)
        await never_read.initial_metadata()  # registered; from now on it never reads
        fast = ChatClient(fast_ch, fast_tok, fast_id)
        fast_stream = await fast.subscribe()
        sender = ChatClient(fast_ch, sender_tok, sender_id)
        payload = "z" * 2000
        started = time.monotonic()
        for i in range(800):
            await sender.send(group.id, f"{i} {payload}")
        await fast_stream.wait_messages(800, group.id, timeout=60)
        fast_done = time.monotonic() - started
        # the slow stream ends with a status telling it to resume, once its buffers drain
        code = None

        async def drain() -> None:
            async for _ in never_read:
                pass

        try:
            await asyncio.wait_for(drain(), 30)
        except grpc.aio.AioRpcError as exc:
            code, details = exc.code(), exc.details() or ""
        assert code == grpc.StatusCode.UNAVAILABLE and "resume" in details
        await fast_stream.close()
    print(f"\nNEVER-READING SUBSCRIBER: 800 x 2 KB messages; the reading subscriber got all in "
          f"{fast_done:.1f}s; the stuck one was cut off with UNAVAILABLE")


async def test_rolling_restart_under_load_loses_nothing(cluster: Cluster) -> None:
    group, members = await setup_group(cluster, 9)
    load = await SteadyLoad.start(cluster.gateway, group.id, [t for _, t in members],
                                  senders=3, rate=20, idle_timeout=5)
    await asyncio.sleep(1)
    started = time.monotonic()
    for pod in cluster.services:  # SIGTERM one pod at a time, as a Deployment rollout does
        code = await asyncio.to_thread(pod.stop, 20)
        assert code == 0, f"{pod.name} exited with {code}"
        await asyncio.to_thread(pod.start)
        await asyncio.sleep(1)
    rollout = time.monotonic() - started
    await asyncio.sleep(1)
    acked = await load.stop_sending()
    assert acked == list(range(2, 2 + len(acked)))
    back = await load.caught_up(acked[-1])
    load.assert_exactly_once(acked[-1])
    errors = load.send_errors
    assert set(errors) <= {"UNAVAILABLE", "CANCELLED", "DEADLINE_EXCEEDED"}, errors
    print(f"\nROLLING RESTART: 3 pods in {rollout:.1f}s, {len(acked)} acked, send errors "
          f"{dict(errors)}, subscriber reconnects "
          f"{sum(s.reconnects for s in load.subscribers)}, all caught up {back:.1f}s after the "
          "last pod was back")
    await load.stop()
