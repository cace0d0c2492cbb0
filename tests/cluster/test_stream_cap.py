"""The open-streams-per-user cap counts a user's streams on every pod together (Redis), frees a
slot when a stream closes, and forgets a killed pod's streams after the presence TTL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.support.chat_client import ChatClient

TTL = 3  # PRESENCE_TTL_SECONDS: slots are refreshed every TTL/3 and expire after TTL


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(
        pods=2,
        with_envoy=False,
        extra_env={"MAX_STREAMS_PER_USER": "2", "PRESENCE_TTL_SECONDS": str(TTL)},
    ).start()
    try:
        yield c
    finally:
        c.stop()


async def _never_ending() -> AsyncIterator[pb.MessageRequest]:
    await asyncio.Event().wait()
    yield pb.MessageRequest()  # pragma: no cover


async def _open(client: ChatClient, bidi: bool = False) -> Any:
    """Open a stream; the call when admitted, else the RpcError's status details."""
    call: Any = (
        client.stub.StreamMessages(_never_ending(), metadata=client.metadata)
        if bidi
        else client.stub.Subscribe(pb.SubscribeRequest(), metadata=client.metadata)
    )
    metadata = await call.initial_metadata()
    if dict(metadata or ()).get("chat-subscribed") == "1":
        return call
    assert await call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, await call.details()
    return await call.details()


async def _open_within(client: ChatClient, seconds: float) -> tuple[Any, float]:
    started = time.monotonic()
    while True:
        got = await _open(client)
        if not isinstance(got, str):
            return got, time.monotonic() - started
        assert time.monotonic() - started < seconds, f"still refused after {seconds} s: {got}"
        await asyncio.sleep(0.2)


async def test_streams_on_two_pods_count_together_and_closing_one_frees_a_slot(
    cluster: Cluster,
) -> None:
    a, b = (s.address for s in cluster.services)
    async with grpc.aio.insecure_channel(a) as ca, grpc.aio.insecure_channel(b) as cb:
        on_a = ChatClient(ca, mint(cluster.jwt_secret, 9301), 9301)
        on_b = ChatClient(cb, mint(cluster.jwt_secret, 9301), 9301)
        other = ChatClient(ca, mint(cluster.jwt_secret, 9302), 9302)
        first = await _open(on_a)
        second = await _open(on_b, bidi=True)  # StreamMessages counts too
        assert not isinstance(first, str) and not isinstance(second, str)
        for client in (on_a, on_b):
            refused = await _open(client)
            assert refused == (
                "at most 2 open streams per user across all servers; "
                "close one before opening another"
            )
        other_stream = await _open(other)  # another user is not affected
        assert not isinstance(other_stream, str)
        second.cancel()  # closing the stream on pod B frees a slot for pod A
        third, waited = await _open_within(on_a, 5)
        print(f"slot freed {waited:.2f} s after the close")
        for call in (first, third, other_stream):
            call.cancel()


async def test_a_killed_pods_streams_stop_counting_after_the_ttl(cluster: Cluster) -> None:
    a_svc, b_svc = cluster.services
    async with grpc.aio.insecure_channel(a_svc.address) as ca, \
            grpc.aio.insecure_channel(b_svc.address) as cb:
        on_a = ChatClient(ca, mint(cluster.jwt_secret, 9311), 9311)
        on_b = ChatClient(cb, mint(cluster.jwt_secret, 9311), 9311)
        held = [await _open(on_b), await _open(on_b)]
        assert not any(isinstance(h, str) for h in held)
        # Refreshed while the pod lives: still counted after more than a TTL.
        await asyncio.sleep(TTL + 1)
        assert isinstance(await _open(on_a), str)
        b_svc.kill()  # SIGKILL: no cleanup, its entries must expire by themselves
        killed = time.monotonic()
        assert isinstance(await _open(on_a), str)  # not yet
        stream, _ = await _open_within(on_a, TTL + 4)
        expired_after = time.monotonic() - killed
        print(f"a killed pod's slots expired {expired_after:.2f} s after the kill (TTL {TTL} s)")
        assert expired_after < TTL + 4
        stream.cancel()
        for h in held:
            h.cancel()
    cluster.restart_pod(b_svc)
