"""The Envoy gateway's edge, against a real Envoy in front of a real pod (loopback only).

Specification (issue 12):
* a client that never finishes its request headers is disconnected within 15 s (slowloris);
* Envoy's admin API is bound to loopback and is not reachable through the public listener;
  the probes/stats port answers exactly GET /ready and GET /stats/prometheus;
* only the chat API is routed publicly: server reflection and gRPC health (e.g. the
  per-dependency name "redis") are refused by Envoy itself, chat calls and 1 MiB upload chunks
  work; the pod's own port still serves reflection;
* one HTTP/2 connection gets at most ``max_concurrent_streams`` streams at once: the others
  wait in the client until a stream ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chat_devstack import envoy_config
from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc
from loadtest.attacks.slowloris import slow_header_connections
from tests.support.chat_client import ChatClient

pytestmark = pytest.mark.timeout(120)

SLOW_CONNECTIONS = 200
CLOSE_WITHIN_S = 15.0
MAX_STREAMS = envoy_config.LIMITS["max_concurrent_streams"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(pods=1, with_envoy=True).start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
async def channel(cluster: Cluster) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(cluster.gateway) as ch:
        yield ch


def _http(port: int, method: str, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        status = conn.getresponse().status
        return status
    finally:
        conn.close()


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses with a listening TCP socket on ``port`` (from /proc/net)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table, encoding="ascii").read().splitlines()[1:]  # noqa: SIM115
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


async def test_slow_header_connections_are_closed_within_15_seconds(cluster: Cluster) -> None:
    started = time.monotonic()
    result = await slow_header_connections(
        "127.0.0.1", cluster.envoy_port, SLOW_CONNECTIONS, hold_seconds=CLOSE_WITHIN_S + 5
    )
    print(f"\n{result.summary()} (whole run {time.monotonic() - started:.1f}s)")
    assert result.opened == SLOW_CONNECTIONS, result.summary()
    assert result.still_open == 0, result.summary()
    last = result.max_close_seconds
    assert last is not None and last <= CLOSE_WITHIN_S, result.summary()
    assert result.sample_reply.startswith(b"HTTP/1.1 408"), result.sample_reply


async def test_admin_api_is_loopback_only_and_not_behind_the_public_listener(
    cluster: Cluster,
) -> None:
    # The admin socket listens on 127.0.0.1 only (0100007F in /proc/net/tcp), never 0.0.0.0.
    assert _listening_addresses(cluster.envoy_admin_port) == {"0100007F"}
    # Through the public listener the admin endpoints do not exist (Envoy answers 404).
    for method, path in (
        ("GET", "/config_dump"),
        ("POST", "/quitquitquit"),
        ("POST", "/healthcheck/fail"),
        ("GET", "/stats/prometheus"),
        ("GET", "/ready"),
    ):
        assert await asyncio.to_thread(_http, cluster.envoy_port, method, path) == 404, path
    # The probes/stats port forwards exactly GET /ready and GET /stats/prometheus.
    probes = cluster.envoy_probes_port
    assert await asyncio.to_thread(_http, probes, "GET", "/ready") == 200
    assert await asyncio.to_thread(_http, probes, "GET", "/stats/prometheus") == 200
    for method, path in (
        ("POST", "/quitquitquit"),
        ("GET", "/config_dump"),
        ("POST", "/healthcheck/fail"),
        ("GET", "/clusters"),
    ):
        assert await asyncio.to_thread(_http, probes, method, path) == 404, path
    # None of that stopped or drained Envoy.
    assert cluster.envoy is not None and cluster.envoy.poll() is None
    assert await asyncio.to_thread(_http, cluster.envoy_admin_port, "GET", "/ready") == 200


async def test_reflection_and_dependency_health_are_refused_while_chat_works(
    cluster: Cluster, channel: grpc.aio.Channel
) -> None:
    health: Any = health_pb2_grpc.HealthStub(channel)  # the stubs package omits methods
    for service in ("redis", "", "chat.ChatService"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED, service

    reflection: Any = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    )
    # No request message: Envoy answers on the headers alone, and a message racing that answer
    # would make the client report its own failed write (INTERNAL) instead of the status.
    call = reflection(timeout=10)
    assert await call.code() == grpc.StatusCode.UNIMPLEMENTED

    # The chat API works through Envoy, 1 MiB upload chunks included.
    owner = ChatClient(channel, mint(cluster.jwt_secret, 4_200_001, name="Edge"), 4_200_001)
    group = await owner.create_group("edge")
    sent = await owner.send(group.id, "through the gateway")
    assert sent.content == "through the gateway"
    data = (b"y" * 1023 + b"\n") * 1024  # 1 MiB of text
    stub = pb_grpc.ChatServiceStub(channel)
    upload = await stub.StartUpload(
        pb.StartUploadRequest(
            group_id=group.id,
            file_name="notes.txt",
            content_type="text/plain",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        ),
        metadata=owner.metadata,
        timeout=10,
    )
    status = await stub.UploadChunk(
        pb.UploadChunkRequest(upload_id=upload.upload_id, offset=0, data=data),
        metadata=owner.metadata,
        timeout=20,
    )
    assert status.complete and status.received_bytes == len(data)
    await owner.close()

    # The pod's own port still serves reflection (in-cluster grpcurl).
    async with grpc.aio.insecure_channel(cluster.services[0].address) as direct:
        direct_reflection: Any = direct.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        )
        replies = [r async for r in direct_reflection(iter([b"\x3a\x00"]), timeout=10)]
        assert replies and b"chat.ChatService" in replies[0]


async def test_one_connection_gets_at_most_max_concurrent_streams(
    cluster: Cluster, channel: grpc.aio.Channel
) -> None:
    stub = pb_grpc.ChatServiceStub(channel)
    token = mint(cluster.jwt_secret, 4_200_002, name="Streamer")
    metadata = (("authorization", f"Bearer {token}"),)
    extra = 20
    calls: list[Any] = [
        stub.Subscribe(pb.SubscribeRequest(), metadata=metadata) for _ in range(MAX_STREAMS + extra)
    ]
    started = [asyncio.ensure_future(call.initial_metadata()) for call in calls]
    try:
        # The pod answers every admitted stream at once (initial metadata chat-subscribed).
        deadline = time.monotonic() + 30
        while sum(f.done() for f in started) < MAX_STREAMS and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)  # time for any over-limit stream to (wrongly) get through
        admitted = [i for i, f in enumerate(started) if f.done()]
        print(f"\n{len(admitted)} of {len(calls)} streams admitted on one HTTP/2 connection")
        assert len(admitted) == MAX_STREAMS
        # The others are waiting, not failed: ending some admits as many of the waiting ones.
        for i in admitted[:extra]:
            calls[i].cancel()
        waiting = [started[i] for i in range(len(calls)) if i not in set(admitted)]
        done, _ = await asyncio.wait(waiting, timeout=20)
        assert len(done) == extra
        for f in done:
            assert not f.cancelled() and f.exception() is None
    finally:
        for call in calls:
            call.cancel()
        for f in started:
            f.cancel()
        await asyncio.gather(*started, return_exceptions=True)


async def test_token_less_calls_are_limited_per_connection_by_envoy(cluster: Cluster) -> None:
    """Header-only calls without an authorization header, many on one connection: Envoy
    answers all but its per-connection burst with RESOURCE_EXHAUSTED itself, so a flood from a
    few connections barely reaches the pods; the same flood WITH a token header is not limited
    by this rule (the pods' per-user limits apply to it)."""
    from loadtest.attacks.h2flood import header_only_calls

    host, port = cluster.gateway.rsplit(":", 1)
    burst = envoy_config.LIMITS["tokenless_burst"]
    flood = await header_only_calls(host, int(port), 600, connections=1, deadline=20)
    assert flood.unanswered == 0, flood.summary()
    assert flood.statuses["RESOURCE_EXHAUSTED"] >= 600 - burst - 2 * 20, flood.summary()
    # Of the calls Envoy let through, the pod's pre-auth budget answered each one.
    assert set(flood.statuses) <= {"RESOURCE_EXHAUSTED", "UNAUTHENTICATED"}

    token = mint(cluster.jwt_secret, 77_000_001)
    signed = await header_only_calls(host, int(port), 60, connections=1, token=token,
                                     path="/chat.ChatService/ListMyGroups", deadline=20)
    # Not refused by the token-less rule: each waits for its body at the pod, which ends it.
    assert "RESOURCE_EXHAUSTED" not in signed.statuses, signed.summary()
    assert signed.unanswered == 0 and signed.statuses == {"DEADLINE_EXCEEDED": 60}, (
        signed.summary()
    )
