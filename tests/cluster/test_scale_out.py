"""Several service processes behind Envoy, real Redis Streams and PostgreSQL.

Users attached to different pods see every event of their groups exactly once and in order,
browsers reach the service over gRPC-Web, and the system recovers from a killed pod, a Redis
restart and expired presence.
"""

from __future__ import annotations

import asyncio
import http.client
import signal
import struct
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc
from tests.support.chat_client import ChatClient
from tests.support.resilient import ResilientSubscriber, SteadyLoad, exactly_once_in_order

CLUSTER_ENV = {
    "PRESENCE_TTL_SECONDS": "3",
    "SWEEP_INTERVAL_SECONDS": "1",
    "HEARTBEAT_SECONDS": "5",
    "SHUTDOWN_GRACE_SECONDS": "3",
    "MAX_QUEUE_MS": "1000",
}


def start_cluster() -> Cluster:
    return Cluster(pods=3, with_envoy=True, extra_env=CLUSTER_ENV).start()


@pytest.fixture(scope="module")
def shared() -> Iterator[Cluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def own() -> Iterator[Cluster]:
    """A private cluster for tests that kill or stop its parts."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


_next = iter(range(5_000_000, 6_000_000, 1))


def token(cluster: Cluster, name: str = "") -> tuple[int, str]:
    uid = next(_next)
    return uid, mint(cluster.jwt_secret, uid, name=name or f"u{uid}")


@pytest.fixture
async def gateway_channel(shared: Cluster) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(shared.gateway) as channel:
        yield channel


async def test_members_on_different_pods_get_every_message_once_in_order(
    shared: Cluster, gateway_channel: grpc.aio.Channel
) -> None:
    owner_id, owner_token = token(shared)
    owner = ChatClient(gateway_channel, owner_token, owner_id)
    members = [token(shared) for _ in range(6)]
    groups = [await owner.create_group(members=[m for m, _ in members]) for _ in range(3)]
    gids = [g.id for g in groups]
    # two subscribers attached directly to each pod
    subs = [
        ResilientSubscriber(shared.services[i % 3].address, tok, gids)
        for i, (_, tok) in enumerate(members)
    ]
    for s in subs:
        await s.start()
    senders = [
        ChatClient(gateway_channel, tok, uid) for uid, tok in members[:3]
    ]

    async def burst(client: ChatClient, gid: int) -> list[pb.MessageResponse]:
        return [await client.send(gid, f"{client.user_id}:{i}") for i in range(40)]

    results = await asyncio.gather(*(burst(c, g) for c in senders for g in gids))
    acked = {g: sorted(m.seq for r in results for m in r if m.group_id == g) for g in gids}
    expected = {g: list(range(2, 2 + 120)) for g in gids}
    assert acked == expected

    async def all_arrived() -> None:
        while not all(len(s.received[g]) >= 120 for s in subs for g in gids):
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(all_arrived(), 20)
    except TimeoutError:
        counts = [(s.address, {g: len(s.received[g]) for g in gids}, s.errors) for s in subs]
        raise AssertionError(f"not every subscriber got every message: {counts}") from None
    await asyncio.sleep(0.5)  # a duplicate would show up by now
    for s in subs:
        for g in gids:
            # they subscribed after the groups were created: live from seq 2 on
            ok, why = exactly_once_in_order(s.received[g], expected[g])
            assert ok, why
    for s in subs:
        await s.stop()


async def test_envoy_stamps_when_it_received_a_call_and_pods_refuse_calls_that_queued_too_long(
    shared: Cluster, gateway_channel: grpc.aio.Channel
) -> None:
    """With MAX_QUEUE_MS set, pods shed calls that waited longer since Envoy received them; the
    stamp is Envoy's own (a client cannot make its calls look old or new)."""
    _, tok = token(shared)
    stale = (("authorization", f"Bearer {tok}"),
             ("x-request-start", f"t={int((time.time() - 60) * 1000)}"))
    through_envoy = pb_grpc.ChatServiceStub(gateway_channel)
    served = await through_envoy.ListMyGroups(pb.ListMyGroupsRequest(), metadata=stale)
    assert list(served.groups) == []
    async with grpc.aio.insecure_channel(shared.services[0].address) as direct:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pb_grpc.ChatServiceStub(direct).ListMyGroups(
                pb.ListMyGroupsRequest(), metadata=stale)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "waited 60" in (refused.value.details() or "")
    assert dict(refused.value.trailing_metadata() or ())["retry-after-ms"] == "2000"


def grpc_web_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


def parse_grpc_web(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    messages: list[bytes] = []
    trailers: dict[str, str] = {}
    pos = 0
    while pos + 5 <= len(body):
        flag = body[pos]
        (length,) = struct.unpack(">I", body[pos + 1 : pos + 5])
        chunk = body[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if flag & 0x80:
            for line in chunk.decode().split("\r\n"):
                if ":" in line:
                    k, v = line.split(":", 1)
                    trailers[k.strip().lower()] = v.strip()
        else:
            messages.append(chunk)
    return messages, trailers


def grpc_web_post(
    cluster: Cluster, method: str, message: bytes, tok: str
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", cluster.envoy_port, timeout=15)
    conn.request(
        "POST",
        f"/chat.ChatService/{method}",
        body=grpc_web_frame(message),
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "x-user-agent": "grpc-web-javascript/0.1",
            "origin": "http://localhost:5173",
            "authorization": f"Bearer {tok}",
        },
    )
    return conn.getresponse()


async def test_browser_grpc_web_unary_and_subscription_through_envoy(
    shared: Cluster, gateway_channel: grpc.aio.Channel
) -> None:
    uid, tok = token(shared, "Browser User")
    # unary, exactly as a browser sends it: HTTP/1.1 POST, application/grpc-web+proto
    response = await asyncio.to_thread(
        grpc_web_post, shared, "CreateGroup",
        pb.CreateGroupRequest(name="from the browser").SerializeToString(), tok,
    )
    assert response.status == 200
    assert response.getheader("access-control-allow-origin")
    assert response.getheader("content-type", "").startswith("application/grpc-web")
    messages, trailers = parse_grpc_web(response.read())
    assert trailers.get("grpc-status") == "0", trailers
    group = pb.Group.FromString(messages[0])
    assert group.name == "from the browser" and group.created_by == uid

    # server streaming: Subscribe with a position replays history, then delivers live events
    client = ChatClient(gateway_channel, tok, uid)
    await client.send(group.id, "before the stream")
    stream = await asyncio.to_thread(
        grpc_web_post, shared, "Subscribe",
        pb.SubscribeRequest(positions=[pb.GroupPosition(group_id=group.id, last_seq=0)])
        .SerializeToString(), tok,
    )
    assert stream.status == 200

    def read_frames(count: int) -> list[pb.ChatEvent]:
        events: list[pb.ChatEvent] = []
        while len([e for e in events if e.WhichOneof("event") == "message"]) < count:
            header = stream.read(5)
            assert len(header) == 5, "stream ended early"
            (length,) = struct.unpack(">I", header[1:])
            payload = stream.read(length)
            assert not header[0] & 0x80, payload
            events.extend(pb.SubscribeResponse.FromString(payload).events)
        return events

    replayed = await asyncio.to_thread(read_frames, 2)
    assert [e.message.content for e in replayed if e.WhichOneof("event") == "message"][1] == (
        "before the stream"
    )
    reader = asyncio.create_task(asyncio.to_thread(read_frames, 1))
    await asyncio.sleep(0.2)
    await client.send(group.id, "live over grpc-web")
    live = await asyncio.wait_for(reader, 15)
    assert [e.message.content for e in live if e.WhichOneof("event") == "message"] == [
        "live over grpc-web"
    ]
    stream.close()


async def test_kill_9_of_a_pod_under_load_loses_no_acknowledged_message(own: Cluster) -> None:
    owner_id, owner_token = token(own)
    members = [token(own) for _ in range(9)]
    async with grpc.aio.insecure_channel(own.gateway) as channel:
        owner = ChatClient(channel, owner_token, owner_id)
        group = await owner.create_group(members=[m for m, _ in members])
    load = await SteadyLoad.start(own.gateway, group.id, [t for _, t in members],
                                  senders=3, rate=40)
    await asyncio.sleep(1.5)
    victim = own.services[1]
    victim.kill()  # SIGKILL: no drain, no goodbye
    killed_at = time.monotonic()
    await asyncio.sleep(4)
    acked = await load.stop_sending()
    assert acked == list(range(2, 2 + len(acked))), "acknowledged seqs have holes"
    await load.caught_up(acked[-1])
    recovered_in = time.monotonic() - killed_at
    load.assert_exactly_once(acked[-1])
    for s in load.subscribers:
        assert set(s.errors) <= {"UNAVAILABLE", "CANCELLED", "INTERNAL"}, s.errors
    send_errors = load.send_errors
    assert set(send_errors) <= {"UNAVAILABLE", "CANCELLED", "DEADLINE_EXCEEDED"}, send_errors
    print(f"kill -9: {len(acked)} acked, send errors {dict(send_errors)}, "
          f"reconnects {sum(s.reconnects for s in load.subscribers)}, all caught up "
          f"{recovered_in:.1f}s after the kill")
    await load.stop()


async def test_redis_restart_under_load_every_acknowledged_message_is_delivered(
    own: Cluster,
) -> None:
    owner_id, owner_token = token(own)
    members = [token(own) for _ in range(6)]
    async with grpc.aio.insecure_channel(own.gateway) as channel:
        owner = ChatClient(channel, owner_token, owner_id)
        group = await owner.create_group(members=[m for m, _ in members])
    load = await SteadyLoad.start(own.gateway, group.id, [t for _, t in members],
                                  senders=2, rate=30)
    await asyncio.sleep(1)
    assert own.redis is not None
    own.redis.stop()
    acked_before_outage = load.acknowledged()
    await asyncio.sleep(3)
    acked_during_outage = load.acknowledged() - acked_before_outage
    own.redis.start()
    await asyncio.sleep(2)
    acked = await load.stop_sending()
    # PostgreSQL is the acknowledgement: sends keep succeeding while Redis is away.
    assert acked_during_outage > 0
    await load.caught_up(acked[-1])
    load.assert_exactly_once(acked[-1])
    assert set(load.send_errors) <= {"UNAVAILABLE"}, load.send_errors
    await load.stop()


async def test_presence_goes_offline_after_the_pod_is_killed(own: Cluster) -> None:
    alice_id, alice_token = token(own, "Alice")
    bob_id, bob_token = token(own, "Bob")
    async with grpc.aio.insecure_channel(own.services[0].address) as channel:
        alice = ChatClient(channel, alice_token, alice_id)
        group = await alice.create_group(members=[bob_id])
        watcher = ResilientSubscriber(own.services[0].address, alice_token, [group.id])
        await watcher.start()
        # Bob connects to pod 2 only
        bob_stream = ResilientSubscriber(own.services[2].address, bob_token, [group.id])
        await bob_stream.start()

        async def bob_online(expected: bool) -> None:
            while True:
                members = {m.id: m.online for m in await alice.members(group.id)}
                if members[bob_id] is expected:
                    return
                await asyncio.sleep(0.1)

        await asyncio.wait_for(bob_online(True), 10)
        await asyncio.sleep(0.5)
        assert any(p.user_id == bob_id and p.online for p in watcher.presence)
        own.services[2].kill()
        killed = time.monotonic()
        await asyncio.wait_for(bob_online(False), 10)
        offline_after = time.monotonic() - killed
        # expiry is 3 s; the janitor runs every ttl/3
        assert offline_after < 3 + 2, offline_after

        async def offline_event() -> None:
            while not any(p.user_id == bob_id and not p.online for p in watcher.presence):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(offline_event(), 5)
        await bob_stream.stop()
        await watcher.stop()


def test_sigterm_drain_moves_streams_to_other_pods(own: Cluster) -> None:
    """Graceful stop of one pod: clients get UNAVAILABLE and reconnect through Envoy."""

    async def scenario() -> None:
        uid, tok = token(own)
        async with grpc.aio.insecure_channel(own.gateway) as channel:
            client = ChatClient(channel, tok, uid)
            group = await client.create_group()
            sub = ResilientSubscriber(own.gateway, tok, [group.id])
            sub.positions[group.id] = group.last_seq  # it has seen the group's creation
            await sub.start()
            for svc in own.services:
                svc.signal(signal.SIGTERM)
                await asyncio.sleep(0.1)
                break
            await client.send(group.id, "after the drain")

            async def arrived() -> None:
                while sub.positions.get(group.id, 0) < 2:
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(arrived(), 20)
            await sub.stop()

    asyncio.run(scenario())


async def test_a_storm_of_resumes_announces_each_arrival_once_across_pods(
    shared: Cluster,
) -> None:
    """Many members resume at the same moment on every pod (their arrivals are marked and
    announced in batches): each one that was offline is announced online exactly once, one
    already online on another pod is not announced again, every resumer gets what it missed,
    and each goes offline when its last stream ends."""
    pods = [s.address for s in shared.services]
    alice_id, alice_token = token(shared, "Alice")
    bob_id, bob_token = token(shared, "Bob")
    crowd = [token(shared) for _ in range(30)]
    channels = [grpc.aio.insecure_channel(address) for address in pods]
    try:
        alice = ChatClient(channels[0], alice_token, alice_id)
        group = await alice.create_group(members=[bob_id, *(uid for uid, _ in crowd)])
        for i in range(3):
            await alice.send(group.id, f"missed {i}")
        head = (await alice.get_group(group.id)).last_seq
        watcher = await alice.subscribe({group.id: head})

        def announced(uid: int, online: bool) -> int:
            return sum(1 for e in watcher.of_kind("presence")
                       if e.presence.user_id == uid and e.presence.online is online)

        bob = ChatClient(channels[1], bob_token, bob_id)
        bob_first = await bob.subscribe({group.id: head})
        await watcher.wait_until(lambda: announced(bob_id, True) == 1)
        # The storm: everyone at once, spread over the pods; Bob's second stream among them.
        clients = [ChatClient(channels[i % 3], tok, uid) for i, (uid, tok) in enumerate(crowd)]
        bob_again = ChatClient(channels[2], bob_token, bob_id)
        streams = await asyncio.gather(
            *(c.subscribe({group.id: head - 3}) for c in [*clients, bob_again]))
        for stream in streams:
            await stream.wait_messages(3, group.id)
            assert [m.seq for m in stream.messages(group.id)][:3] == [head - 2, head - 1, head]
        await watcher.wait_until(lambda: all(announced(uid, True) for uid, _ in crowd))
        online = {m.id: m.online for m in await alice.members(group.id)}
        assert all(online[uid] for uid, _ in crowd) and online[bob_id]
        await asyncio.sleep(0.5)  # time for a repeated announcement to show
        assert [announced(uid, True) for uid, _ in crowd] == [1] * len(crowd)
        assert announced(bob_id, True) == 1
        # Bob's first stream ends: he is still online (the storm's stream) and not announced.
        await bob_first.close()
        for c in clients:
            await c.close()
        await watcher.wait_until(lambda: all(announced(uid, False) for uid, _ in crowd))
        online = {m.id: m.online for m in await alice.members(group.id)}
        assert not any(online[uid] for uid, _ in crowd)
        assert online[bob_id] and announced(bob_id, False) == 0
        await bob_again.close()
        await watcher.wait_until(lambda: announced(bob_id, False) == 1)
        await watcher.close()
    finally:
        for channel in channels:
            await channel.close()
