"""Overload through the real API: work beyond what the pod holds is refused early with
RESOURCE_EXHAUSTED and a retry hint, and nothing that was accepted is lost or doubled.

Its own service process with a small in-flight budget, so a burst of sends exceeds it."""

from __future__ import annotations

import asyncio
import itertools
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.support.chat_client import ChatClient

_ids = itertools.count(92_000_000)


@pytest.fixture(scope="module")
def small_pod() -> Iterator[Cluster]:
    cluster = Cluster(pods=1, with_envoy=False, with_metrics=True,
                      extra_env={"MAX_INFLIGHT_CALLS": "20"}).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def alice(small_pod: Cluster) -> AsyncIterator[ChatClient]:
    async with grpc.aio.insecure_channel(small_pod.gateway) as channel:
        uid = next(_ids)
        client = ChatClient(channel, mint(small_pod.jwt_secret, uid), uid)
        yield client
        await client.close()


async def test_a_burst_beyond_the_budget_is_shed_and_retried_sends_land_exactly_once(
    alice: ChatClient, small_pod: Cluster,
) -> None:
    group = await alice.create_group()
    keys = [f"burst-{uuid.uuid4()}" for _ in range(300)]
    shed: list[float] = []

    async def send_until_accepted(key: str) -> pb.MessageResponse:
        while True:
            try:
                return await alice.stub.SendMessage(
                    pb.SendMessageRequest(group_id=group.id, content=key, client_msg_id=key),
                    metadata=alice.metadata)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
                assert "retry shortly" in (exc.details() or "")
                hint = float(dict(exc.trailing_metadata() or ())["retry-after-ms"]) / 1000
                shed.append(hint)
                await asyncio.sleep(hint)

    sent = await asyncio.gather(*(send_until_accepted(k) for k in keys))
    assert shed, "300 concurrent sends against a budget of 20 must shed some"
    assert all(0 < h <= 2 for h in shed)
    history = await alice.all_history(group.id)
    texts = [m.content for m in history if m.type != pb.SYSTEM]
    assert sorted(texts) == sorted(keys)  # each accepted once, none lost
    assert sorted(m.seq for m in sent) == [m.seq for m in history if m.type != pb.SYSTEM]
    url = f"http://127.0.0.1:{small_pod.services[0].metrics_port}/metrics"
    metrics = await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
    counted = {line.split()[0]: float(line.split()[-1]) for line in metrics.splitlines()
               if line.startswith("chat_calls_shed_total{")}
    assert counted['chat_calls_shed_total{signal="inflight"}'] > 0  # the burst, mostly
    assert sum(counted.values()) == len(shed)
