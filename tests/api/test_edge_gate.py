"""Nothing is held for a caller that has not authenticated (issue 12, attacks 1 and 2).

Each test is an attack through the real server: calls that send headers and no body, upload
streams that never send, bad tokens, idle connections. What must hold: such calls are
answered (refused) within a bounded time, they never take the admission budget that
authenticated users need, and a bystander's calls keep working meanwhile.

Its own service process with small budgets, so the attacks stay small and fast.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc
from loadtest.attacks.h2flood import header_only_calls, idle_connection_lifetime
from tests.support.chat_client import ChatClient

_ids = itertools.count(93_000_000)

PREAUTH_MAX = 16
PREAUTH_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
PER_USER = 20


@pytest.fixture(scope="module")
def pod() -> Iterator[Cluster]:
    cluster = Cluster(pods=1, with_envoy=False, extra_env={
        "MAX_INFLIGHT_CALLS": "40",
        "MAX_INFLIGHT_CALLS_PER_USER": str(PER_USER),
        "PREAUTH_MAX_CALLS": str(PREAUTH_MAX),
        "PREAUTH_TIMEOUT_SECONDS": str(PREAUTH_TIMEOUT),
        "REQUEST_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "GRPC_MAX_CONNECTION_IDLE_SECONDS": "1",
    }).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _address(pod: Cluster) -> tuple[str, int]:
    host, port = pod.gateway.rsplit(":", 1)
    return host, int(port)


@pytest.fixture
async def channel(pod: Cluster) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(pod.gateway) as ch:
        yield ch


def _client(pod: Cluster, channel: grpc.aio.Channel) -> ChatClient:
    uid = next(_ids)
    return ChatClient(channel, mint(pod.jwt_secret, uid), uid)


async def _bystander_sends(client: ChatClient, group_id: int, count: int) -> list[float]:
    """Send `count` messages one after another; every one must be acknowledged."""
    took = []
    for i in range(count):
        started = time.perf_counter()
        await client.send(group_id, f"still here {i}")
        took.append(time.perf_counter() - started)
    return took


async def test_upload_streams_that_never_send_a_token_leave_admission_to_users(
    pod: Cluster, channel: grpc.aio.Channel
) -> None:
    """60 UploadFile streams with headers only (no token, no chunk) used to take 60 of the
    pod's 40 admission slots: every user's call was RESOURCE_EXHAUSTED until they left."""
    stub = pb_grpc.ChatServiceStub(channel)
    never = asyncio.Event()

    async def silence() -> AsyncIterator[pb.UploadChunkRequest]:
        await never.wait()
        yield pb.UploadChunkRequest()  # pragma: no cover - never reached

    attackers = [asyncio.ensure_future(stub.UploadFile(silence())) for _ in range(60)]
    await asyncio.sleep(0.5)  # all of them are at the server now
    alice = _client(pod, channel)
    group = await alice.create_group()
    took = await _bystander_sends(alice, group.id, 10)
    started = time.perf_counter()
    outcomes = await asyncio.gather(*attackers, return_exceptions=True)
    waited = time.perf_counter() - started
    codes = [o.code() for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(codes) == 60, outcomes
    assert set(codes) <= {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAUTHENTICATED}
    assert codes.count(grpc.StatusCode.UNAUTHENTICATED) <= PREAUTH_MAX
    assert waited < PREAUTH_TIMEOUT + 5
    print(f"bystander sends: max {max(took) * 1000:.0f} ms while 60 token-less uploads waited")


async def test_header_only_calls_without_a_token_are_answered_and_bystanders_served(
    pod: Cluster, channel: grpc.aio.Channel
) -> None:
    """2,000 unary calls that send headers and never a body used to be parked until the
    client left (~20 KiB each); now each is refused at once or after the pre-auth wait."""
    alice = _client(pod, channel)
    group = await alice.create_group()
    host, port = _address(pod)
    flood = asyncio.ensure_future(
        header_only_calls(host, port, 2000, connections=4, deadline=PREAUTH_TIMEOUT + 8)
    )
    await asyncio.sleep(0.2)
    took = await _bystander_sends(alice, group.id, 20)
    result = await flood
    print(result.summary(), f"; bystander max {max(took) * 1000:.0f} ms")
    assert result.sent == 2000
    assert result.unanswered == 0, result.summary()
    assert set(result.statuses) <= {"RESOURCE_EXHAUSTED", "UNAUTHENTICATED"}
    assert result.statuses["RESOURCE_EXHAUSTED"] > 0  # the pre-auth budget is small


async def test_a_bad_token_in_metadata_is_refused_before_any_body_is_awaited(
    pod: Cluster,
) -> None:
    host, port = _address(pod)
    result = await header_only_calls(host, port, 200, connections=2, token="not-a-jwt",
                                     deadline=PREAUTH_TIMEOUT)
    assert result.statuses == {"UNAUTHENTICATED": 200}, result.summary()


async def test_an_authenticated_call_whose_body_never_comes_is_ended_and_released(
    pod: Cluster, channel: grpc.aio.Channel
) -> None:
    """A user's header-only calls hold at most the per-user budget, for the body timeout."""
    mallory = _client(pod, channel)
    host, port = _address(pod)
    bob = _client(pod, channel)
    group = await bob.create_group()
    flood = asyncio.ensure_future(header_only_calls(
        host, port, PER_USER + 10, connections=1, token=mallory.token,
        path="/chat.ChatService/ListMyGroups", deadline=BODY_TIMEOUT + 8,
    ))
    await asyncio.sleep(0.3)
    await _bystander_sends(bob, group.id, 5)  # another user is not affected
    result = await flood
    assert result.statuses == {"RESOURCE_EXHAUSTED": 10, "DEADLINE_EXCEEDED": PER_USER}, (
        result.summary()
    )
    # Released: the same user is served again.
    assert await mallory.my_groups() == []


async def test_a_seed_stream_must_carry_its_token_within_the_preauth_wait(
    pod: Cluster, channel: grpc.aio.Channel
) -> None:
    """Clients of the original proto authenticate StreamMessages with the first request's
    jwt_token; a stream that sends nothing is ended, not kept."""
    stub = pb_grpc.ChatServiceStub(channel)
    never = asyncio.Event()

    async def silence() -> AsyncIterator[pb.MessageRequest]:
        await never.wait()
        yield pb.MessageRequest()  # pragma: no cover - never reached

    started = time.perf_counter()
    call = stub.StreamMessages(silence())
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        async for _ in call:
            pass
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "jwt_token" in (ended.value.details() or "")
    assert time.perf_counter() - started < PREAUTH_TIMEOUT + 3

    # The seed's way still works: the first request carries the token.
    alice = _client(pod, channel)
    group = await alice.create_group()
    outgoing: asyncio.Queue[pb.MessageRequest] = asyncio.Queue()
    await outgoing.put(pb.MessageRequest(group_id=group.id, content="hello",
                                         jwt_token=alice.token))

    async def requests() -> AsyncIterator[pb.MessageRequest]:
        while True:
            yield await outgoing.get()

    seed = stub.StreamMessages(requests())
    first = await asyncio.wait_for(seed.read(), 10)
    assert isinstance(first, pb.MessageResponse) and first.content == "hello"
    # ...and may then stay silent longer than the pre-auth wait without being ended.
    await asyncio.sleep(PREAUTH_TIMEOUT + 0.5)
    await outgoing.put(pb.MessageRequest(group_id=group.id, content="later"))
    second = await asyncio.wait_for(seed.read(), 10)
    assert isinstance(second, pb.MessageResponse) and second.content == "later"
    seed.cancel()


async def test_an_upload_stream_that_stops_sending_is_ended_and_can_resume(
    pod: Cluster, channel: grpc.aio.Channel
) -> None:
    alice = _client(pod, channel)
    group = await alice.create_group()
    data = b"%PDF-1.4\n" + b"x" * 2000
    started = await alice.stub.StartUpload(pb.StartUploadRequest(
        group_id=group.id, file_name="a.pdf", content_type="application/pdf", size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    ), metadata=alice.metadata)
    never = asyncio.Event()

    async def chunks() -> AsyncIterator[pb.UploadChunkRequest]:
        yield pb.UploadChunkRequest(upload_id=started.upload_id, offset=0, data=data[:1000])
        await never.wait()

    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await alice.stub.UploadFile(chunks(), metadata=alice.metadata)
    assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    status = await alice.stub.GetUpload(pb.GetUploadRequest(upload_id=started.upload_id),
                                        metadata=alice.metadata)
    assert status.received_bytes == 1000


async def test_a_connection_that_never_calls_is_closed(pod: Cluster) -> None:
    """An HTTP/2 connection that answers pings but starts no call is closed by the server
    (GRPC_MAX_CONNECTION_IDLE_SECONDS, 1 s here) instead of being kept for minutes."""
    host, port = _address(pod)
    lifetimes = await asyncio.gather(*(idle_connection_lifetime(host, port, 8.0)
                                       for _ in range(5)))
    assert all(t is not None for t in lifetimes), lifetimes
    print(f"idle connections closed after {max(t for t in lifetimes if t):.1f} s")
