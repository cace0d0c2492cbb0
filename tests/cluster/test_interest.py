"""Interest-based fan-out: each pod reads from Redis only the shards of the groups its own
subscribers are in, and a pod that starts following a group (a new subscriber, a member added
while connected) loses and repeats nothing.

Two pods, no gateway: each client talks to the pod the test names. Pods report what they read
in `chat_broker_entries_read_total` (fanout/broker_redis.py), scraped from their /metrics.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.support.chat_client import ChatClient

SHARDS = 64


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(pods=2, with_envoy=False, with_metrics=True,
                extra_env={"STREAM_SHARDS": str(SHARDS), "SWEEP_INTERVAL_SECONDS": "1"}).start()
    try:
        yield c
    finally:
        c.stop()


_ids = iter(range(7_100_000, 7_200_000))


def client(cluster: Cluster, channel: grpc.aio.Channel) -> ChatClient:
    uid = next(_ids)
    return ChatClient(channel, mint(cluster.jwt_secret, uid), uid)


def shard_entries_read(cluster: Cluster, pod: int) -> float:
    url = f"http://127.0.0.1:{cluster.services[pod].metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    match = re.search(r'^chat_broker_entries_read_total\{stream="shard"\} (\S+)$', text, re.M)
    assert match is not None, "the pod exports chat_broker_entries_read_total"
    return float(match.group(1))


async def test_a_pod_reads_only_the_shards_of_its_own_subscribers_groups(
    cluster: Cluster,
) -> None:
    a_addr, b_addr = (s.address for s in cluster.services)
    async with grpc.aio.insecure_channel(a_addr) as ca, grpc.aio.insecure_channel(b_addr) as cb:
        alice, bob = client(cluster, ca), client(cluster, cb)
        busy = await alice.create_group()
        quiet = await bob.create_group()
        assert busy.id % SHARDS != quiet.id % SHARDS  # consecutive ids: different shards
        on_a = await alice.subscribe()
        on_b = await bob.subscribe()
        await alice.send(busy.id, "warm-up")
        await on_a.wait_messages(1, busy.id)
        before_a, before_b = shard_entries_read(cluster, 0), shard_entries_read(cluster, 1)
        for i in range(50):
            await alice.send(busy.id, f"m{i}")
        await bob.send(quiet.id, "bob's own")
        await on_a.wait_messages(51, busy.id)
        await on_b.wait_messages(1, quiet.id)
        read_a = shard_entries_read(cluster, 0) - before_a
        read_b = shard_entries_read(cluster, 1) - before_b
        # pod A follows only `busy`'s shard, pod B only `quiet`'s
        assert read_a >= 50, read_a
        assert read_b < 5, f"pod B read {read_b} entries of groups it has no subscriber of"
        await on_a.close()
        await on_b.close()


async def test_a_member_added_on_a_pod_that_did_not_follow_the_group_gets_everything_once(
    cluster: Cluster,
) -> None:
    """Bob's stream is on pod B, which follows none of the group's shard; Alice (pod A)
    creates the group, adds Bob and sends at once: Bob gets the join and every message,
    once, in order (the join notice makes pod B follow the shard from the join on)."""
    a_addr, b_addr = (s.address for s in cluster.services)
    async with grpc.aio.insecure_channel(a_addr) as ca, grpc.aio.insecure_channel(b_addr) as cb:
        alice, bob = client(cluster, ca), client(cluster, cb)
        stream = await bob.subscribe()  # no groups yet
        group = await alice.create_group()
        on_a = await alice.subscribe()
        await alice.join(group.id, bob.user_id)
        sent = [await alice.send(group.id, f"m{i}") for i in range(30)]
        await stream.wait_messages(len(sent), group.id, timeout=15)
        await asyncio.sleep(1.5)  # a duplicate (or a late fill) would show by now
        seqs = [m.seq for m in stream.messages(group.id)]
        join_seq = sent[0].seq - 1
        assert seqs[0] in (join_seq, sent[0].seq), seqs[:3]
        assert seqs == list(range(seqs[0], sent[-1].seq + 1)), seqs
        joins = [e.member for e in stream.of_kind("member")
                 if e.member.group_id == group.id and e.member.user.id == bob.user_id]
        assert [j.kind for j in joins] == [pb.MemberEvent.JOINED]
        await stream.close()
        await on_a.close()


async def test_a_group_dropped_and_followed_again_resumes_without_loss(cluster: Cluster) -> None:
    """The last subscriber of a group on pod B leaves (pod B stops reading its shard) and a
    new one comes back while messages keep flowing: resuming by position loses nothing."""
    a_addr, b_addr = (s.address for s in cluster.services)
    async with grpc.aio.insecure_channel(a_addr) as ca, grpc.aio.insecure_channel(b_addr) as cb:
        alice, bob = client(cluster, ca), client(cluster, cb)
        group = await alice.create_group(members=[bob.user_id])
        first = await bob.subscribe()
        for i in range(10):
            await alice.send(group.id, f"a{i}")
        got = await first.wait_messages(10, group.id)
        await first.close()
        last = got[-1].seq
        for i in range(10):
            await alice.send(group.id, f"b{i}")
        second = await bob.subscribe({group.id: last})
        for i in range(10):
            await alice.send(group.id, f"c{i}")
        await second.wait_messages(20, group.id, timeout=15)
        await asyncio.sleep(1.0)
        seqs = [m.seq for m in second.messages(group.id)]
        assert seqs == list(range(last + 1, last + 21)), seqs
        await second.close()
