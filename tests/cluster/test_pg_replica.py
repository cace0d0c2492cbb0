"""History, member lists and mentions from a PostgreSQL streaming replica (DB_REPLICA_HOST),
with read-your-writes: a client that just sent sees its message in history, even while the
replica has stopped replaying (the read then goes to the primary).

A real replica: `pg_basebackup -R` from the cluster's PostgreSQL (tests/support/pg_replica.py).
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.postgres import PostgresServer
from chat_devstack.tokens import mint
from tests.support.chat_client import ChatClient
from tests.support.pg_replica import psql, start_replica


@pytest.fixture(scope="module")
def with_replica() -> Iterator[tuple[Cluster, PostgresServer]]:
    c = Cluster(pods=0, with_envoy=False, with_metrics=True).start()
    replica: PostgresServer | None = None
    try:
        assert c.postgres is not None
        replica = start_replica(c.postgres, Path(c.base_dir) / "replica")
        c.extra_env.update({"DB_REPLICA_HOST": "127.0.0.1", "DB_REPLICA_PORT": str(replica.port),
                            "DB_REPLICA_MAX_WAIT_MS": "100"})
        c.add_pod("pod-0")
        yield c, replica
    finally:
        c.stop()
        if replica is not None:
            replica.destroy()


def reads(cluster: Cluster, target: str) -> float:
    url = f"http://127.0.0.1:{cluster.services[0].metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    match = re.search(rf'^chat_db_reads_total\{{target="{target}"\}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_history_and_members_come_from_the_replica_and_show_the_callers_own_send(
    with_replica: tuple[Cluster, PostgresServer],
) -> None:
    c, _ = with_replica
    async with grpc.aio.insecure_channel(c.services[0].address) as ch:
        alice = ChatClient(ch, mint(c.jwt_secret, 8_100_001), 8_100_001)
        group = await alice.create_group(members=[8_100_002])
        before = reads(c, "replica")
        for i in range(30):
            sent = await alice.send(group.id, f"m{i}")
            page = await alice.history(group.id)
            assert page.messages[-1].id == sent.id, f"send {i} missing from history"
        await alice.join(group.id, 8_100_003)
        members = await alice.members(group.id)  # right after the change: it is there
        assert {m.id for m in members} == {8_100_001, 8_100_002, 8_100_003}
        assert reads(c, "replica") - before >= 25  # most reads were served by the replica


async def test_a_replica_that_stopped_replaying_is_not_read_for_newer_writes(
    with_replica: tuple[Cluster, PostgresServer],
) -> None:
    c, replica = with_replica
    async with grpc.aio.insecure_channel(c.services[0].address) as ch:
        bob = ChatClient(ch, mint(c.jwt_secret, 8_100_011), 8_100_011)
        group = await bob.create_group()
        psql(replica, "SELECT pg_wal_replay_pause()")
        try:
            fallback = reads(c, "primary_fallback")
            sent = await bob.send(group.id, "written while the replica is paused")
            page = await bob.history(group.id)
            assert page.messages[-1].id == sent.id
            assert reads(c, "primary_fallback") > fallback
        finally:
            psql(replica, "SELECT pg_wal_replay_resume()")
