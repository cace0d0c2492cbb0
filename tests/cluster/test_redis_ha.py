"""The service on Redis's HA engines (REDIS_MODE): a Redis Cluster of three masters, and a
master + replica under three sentinels that fail over while messages flow.

Real redis-server processes on loopback (tests/support/redis_ha.py); two pods, no gateway,
clients attached to the pod the test names.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.domain.errors import ResourceExhausted
from chat_service.fanout.redis_connect import RedisConnector, parse_nodes
from chat_service.fanout.settings import RedisSettings
from chat_service.presence.redis_presence import RedisPresence
from chat_service.presence.stream_slots import RedisStreamSlots
from chat_service.ratelimit.limiter import RateLimiter, RateRules
from tests.support.chat_client import ChatClient
from tests.support.redis_ha import RedisClusterHarness, SentinelHarness, cli
from tests.support.resilient import (
    ResilientSubscriber,
    SteadyLoad,
    SteadySender,
    exactly_once_in_order,
)

POD_ENV = {"SWEEP_INTERVAL_SECONDS": "1", "PRESENCE_TTL_SECONDS": "5", "STREAM_SHARDS": "32",
           "STREAM_LANES": "8"}
_ids = iter(range(7_300_000, 7_400_000))


def user(cluster: Cluster, channel: grpc.aio.Channel) -> ChatClient:
    uid = next(_ids)
    return ChatClient(channel, mint(cluster.jwt_secret, uid), uid)


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterHarness]:
    harness = RedisClusterHarness(Path(tmp_path_factory.mktemp("redis-cluster"))).start()
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture(scope="module")
def on_redis_cluster(redis_cluster: RedisClusterHarness) -> Iterator[Cluster]:
    c = Cluster(pods=2, with_envoy=False,
                extra_env={**POD_ENV, **redis_cluster.env}).start()
    try:
        yield c
    finally:
        c.stop()


async def test_on_a_redis_cluster_members_on_both_pods_get_every_message_once_in_order(
    on_redis_cluster: Cluster, redis_cluster: RedisClusterHarness
) -> None:
    c = on_redis_cluster
    a_addr, b_addr = (s.address for s in c.services)
    async with grpc.aio.insecure_channel(a_addr) as ca, grpc.aio.insecure_channel(b_addr) as cb:
        alice, bob = user(c, ca), user(c, cb)
        groups = [await alice.create_group(members=[bob.user_id]) for _ in range(8)]
        on_a, on_b = await alice.subscribe(), await bob.subscribe()
        sent = await asyncio.gather(*(
            asyncio.gather(*(alice.send(g.id, f"a{i}") for i in range(10)),
                           *(bob.send(g.id, f"b{i}") for i in range(10)))
            for g in groups
        ))
        for g, replies in zip(groups, sent, strict=True):
            seqs = sorted(r.seq for r in replies)
            for stream in (on_a, on_b):
                got = await stream.wait_messages(20, g.id, timeout=15)
                ok, why = exactly_once_in_order([m.seq for m in got], seqs)
                assert ok, why
        await bob.typing(groups[0].id)
        await on_a.wait_until(lambda: any(e.typing.user_id == bob.user_id
                                          for e in on_a.of_kind("typing")))
        # the events of the eight groups are spread over more than one master
        holding = [n.port for n in redis_cluster.nodes
                   if int(cli(n.port, "dbsize").strip() or 0) > 0]
        assert len(holding) >= 2, holding
        await on_a.close()
        await on_b.close()


async def test_a_sentinel_failover_under_load_loses_no_acknowledged_message(
    tmp_path: Path,
) -> None:
    """The master is killed (SIGKILL) while two senders on pod A write to a group whose
    members read on pod B; the sentinels promote the replica, the pods follow it, and every
    acknowledged message reaches every subscriber once, in order."""
    ha = SentinelHarness(tmp_path / "sentinel").start()
    c = Cluster(pods=2, with_envoy=False, extra_env={**POD_ENV, **ha.env})
    try:
        c.start()
        a_addr, b_addr = (s.address for s in c.services)
        members = [(uid, mint(c.jwt_secret, uid)) for uid in (next(_ids) for _ in range(4))]
        async with grpc.aio.insecure_channel(a_addr) as ca:
            owner = user(c, ca)
            group = await owner.create_group(members=[m for m, _ in members])
        subs = [ResilientSubscriber(b_addr, tok, [group.id]) for _, tok in members]
        for s in subs:
            await s.start()
        senders = [SteadySender(a_addr, tok, group.id, rate=25) for _, tok in members[:2]]
        load = SteadyLoad(group.id, subs, senders, [asyncio.create_task(s.run()) for s in senders])
        await asyncio.sleep(1.5)
        old_master = ha.master_port()
        assert ha.master is not None and old_master == ha.master.port
        ha.master.kill()
        killed = time.monotonic()
        ha.wait_for(lambda: ha.master_port() != old_master, "the sentinels to fail over")
        promoted = time.monotonic() - killed
        acked_at_kill = load.acknowledged()
        await asyncio.sleep(3)
        acked = await load.stop_sending()
        assert load.acknowledged() > acked_at_kill  # sends kept being acknowledged
        recovered = await load.caught_up(acked[-1], timeout=30)
        load.assert_exactly_once(acked[-1])
        print(f"sentinel failover: promoted {promoted:.1f}s after the kill; every subscriber "
              f"had all {len(acked)} acknowledged messages {recovered:.1f}s after sending "
              f"stopped; send errors {dict(load.send_errors)}")
        await load.stop()
    finally:
        c.stop()
        ha.stop()


async def test_rate_limits_are_counted_in_the_redis_cluster(
    redis_cluster: RedisClusterHarness,
) -> None:
    """The limiter fails open when its storage fails, so refusing the fourth call proves the
    counters live in the cluster (limits' cluster storage, one key per counter)."""
    nodes = parse_nodes("REDIS_CLUSTER_NODES", redis_cluster.env["REDIS_CLUSTER_NODES"])
    limiter = RateLimiter.redis_cluster(nodes, "", RateRules(user_send="3/minute"))
    user = next(_ids)
    for _ in range(3):
        await limiter.check("user_send", user)
    with pytest.raises(ResourceExhausted):
        await limiter.check("user_send", user)


async def test_stream_slots_and_presence_work_on_the_redis_cluster(
    redis_cluster: RedisClusterHarness,
) -> None:
    """Stream slots admit fail-open too: a refused second stream proves the Lua admission runs
    in the cluster; presence marks and reads a user through the cluster client."""
    connector = RedisConnector(RedisSettings(mode="cluster",
                                             cluster_nodes=redis_cluster.env["REDIS_CLUSTER_NODES"]))
    client = connector.client(socket_timeout=2.0)
    slots = RedisStreamSlots(client, pod="p", max_per_user=1, ttl_seconds=30)
    uid = next(_ids)
    slot = await slots.acquire(uid)
    with pytest.raises(ResourceExhausted):
        await slots.acquire(uid)
    await slots.release(slot)
    await slots.release(await slots.acquire(uid))

    async def no_groups(user_id: int) -> list[int]:
        return []

    class NoEvents:
        async def publish(self, events: object) -> None:
            return None

    presence = RedisPresence(client, pod="p", ttl_seconds=30, events=NoEvents(),
                             groups_of=no_groups)
    await presence.connected(uid)
    assert await presence.online_users([uid, uid + 1]) == {uid}
    await presence.disconnected(uid)
    assert await presence.online_users([uid]) == set()
    await client.aclose()
