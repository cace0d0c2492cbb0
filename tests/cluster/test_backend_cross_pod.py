"""Issue 15 across pods: the backend calls pod A, users are connected to pod B (and pod C's
notifier may be the one telling the app). Profile changes, group updates and deletions,
backend-wide bans, direct conversations, erasure's live updates and the webhooks of moderation
all cross pods."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint, mint_backend
from chat_service.gen import chat_backend_pb2 as bpb
from chat_service.gen import chat_pb2 as pb
from tests.cluster.test_notifications import SECRET, Receiver, eventually
from tests.support.backend import BackendClient
from tests.support.chat_client import ChatClient, expect_status


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture(scope="module")
def cluster(receiver: Receiver) -> Iterator[Cluster]:
    c = Cluster(pods=2, with_envoy=False, extra_env={
        "NOTIFY_WEBHOOK_URL": receiver.url,
        "NOTIFY_WEBHOOK_SECRET": SECRET,
        # Far longer than the test: a ban must reach pod B by the broker, not the refresh.
        "BAN_REFRESH_SECONDS": "600",
    }).start()
    try:
        yield c
    finally:
        c.stop()


class Pods:
    def __init__(self, cluster: Cluster, a: grpc.aio.Channel, b: grpc.aio.Channel) -> None:
        self.cluster = cluster
        self.a, self.b = a, b
        self.backend = BackendClient(a, mint_backend(cluster.backend_jwt_secret))
        self._next = random.randint(10_000, 9_000_000) * 100

    def user_on(self, channel: grpc.aio.Channel, name: str) -> ChatClient:
        self._next += 1
        return ChatClient(channel, mint(self.cluster.jwt_secret, self._next, name=name),
                          self._next)


@pytest.fixture
async def pods(cluster: Cluster) -> AsyncIterator[Pods]:
    a_addr, b_addr = (s.address for s in cluster.services)
    async with grpc.aio.insecure_channel(a_addr) as a, grpc.aio.insecure_channel(b_addr) as b:
        yield Pods(cluster, a, b)


async def test_profile_and_group_changes_made_on_pod_a_reach_members_on_pod_b(pods: Pods
                                                                              ) -> None:
    alice, bob = pods.user_on(pods.a, "Alice"), pods.user_on(pods.b, "Bob")
    group = await pods.backend.create_group(alice.user_id, [bob.user_id])
    feed = await bob.subscribe()
    await pods.backend.upsert(bpb.BackendUser(id=alice.user_id, name="Alice B."))
    await pods.backend.call("UpdateGroup", bpb.BackendUpdateGroupRequest(
        group_id=group.id, name="Renamed on A"))
    await feed.wait_until(lambda: bool(feed.of_kind("user_updated"))
                          and bool(feed.of_kind("group_updated")))
    assert feed.of_kind("user_updated")[0].user_updated.user.name == "Alice B."
    assert feed.of_kind("group_updated")[0].group_updated.group.name == "Renamed on A"
    await pods.backend.call("DeleteGroup", bpb.BackendGroupRef(group_id=group.id))
    await feed.wait_until(lambda: bool(feed.of_kind("group_deleted")))
    await feed.close()


async def test_a_ban_on_pod_a_closes_streams_and_refuses_calls_on_pod_b_at_once(
    pods: Pods,
) -> None:
    mallory = pods.user_on(pods.b, "Mallory")
    await mallory.my_groups()
    feed = await mallory.subscribe()
    await pods.backend.call("BanUser", bpb.BackendBanUserRequest(user_id=mallory.user_id,
                                                                 reason="fraud"))
    error = await feed.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, mallory.my_groups())
    await pods.backend.call("UnbanUser", bpb.BackendUserRef(user_id=mallory.user_id))
    for _ in range(50):  # lifted on pod B within a broker hop, not the 600 s refresh
        try:
            await mallory.my_groups()
            break
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("the lifted ban did not reach pod B")


async def test_one_direct_conversation_when_both_sides_ask_on_different_pods(pods: Pods
                                                                             ) -> None:
    for _ in range(5):
        ann, ben = pods.user_on(pods.a, "Ann"), pods.user_on(pods.b, "Ben")
        calls = [
            client.stub.GetOrCreateDirect(pb.GetOrCreateDirectRequest(user_id=other),
                                          metadata=client.metadata)
            for client, other in ((ann, ben.user_id), (ben, ann.user_id)) * 5
        ]
        groups = await asyncio.gather(*calls)
        assert len({g.id for g in groups}) == 1


async def test_a_ban_or_erasure_on_pod_a_closes_direct_conversations_on_pod_b(pods: Pods
                                                                            ) -> None:
    ann, ben, cat = (pods.user_on(pods.b, name) for name in ("Ann", "Ben", "Cat"))

    async def direct(other: int) -> pb.Group:
        return await ann.stub.GetOrCreateDirect(pb.GetOrCreateDirectRequest(user_id=other),
                                                metadata=ann.metadata)

    await direct(ben.user_id)
    await pods.backend.call("BanUser", bpb.BackendBanUserRequest(user_id=ben.user_id))
    await pods.backend.call("EraseUser", bpb.BackendUserRef(user_id=cat.user_id))
    for other in (ben.user_id, cat.user_id):  # pod B learns both by the broker, not a refresh
        for _ in range(50):
            try:
                await direct(other)
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"pod B still opens a conversation with {other}")


async def test_an_erasure_on_pod_a_updates_the_messages_members_see_on_pod_b(pods: Pods
                                                                            ) -> None:
    alice, bob = pods.user_on(pods.b, "Alice"), pods.user_on(pods.b, "Bob")
    group = await pods.backend.create_group(alice.user_id, [bob.user_id])
    sent = [await bob.send(group.id, f"bob {i}") for i in range(3)]
    feed = await alice.subscribe()
    await pods.backend.call("EraseUser", bpb.BackendUserRef(user_id=bob.user_id))

    def updated() -> dict[int, pb.MessageResponse]:
        return {e.updated.id: e.updated for e in feed.of_kind("updated")}

    await feed.wait_until(lambda: {m.id for m in sent} <= set(updated()))
    assert all(updated()[m.id].deleted for m in sent)
    await feed.close()


async def test_bans_reports_and_group_changes_reach_the_app_by_webhook(
    pods: Pods, receiver: Receiver
) -> None:
    owner, member = pods.user_on(pods.a, "Owner"), pods.user_on(pods.b, "Member")
    group = await owner.create_group(members=[member.user_id])
    rude = await owner.send(group.id, "rude words")
    report = await member.stub.ReportMessage(
        pb.ReportMessageRequest(message_id=rude.id, reason="rude"), metadata=member.metadata)
    await owner.stub.ModerateMember(pb.ModerateMemberRequest(
        group_id=group.id, user_id=member.user_id, kind=pb.ModerationAction.BAN,
        reason="retaliation"), metadata=owner.metadata)
    await owner.stub.UpdateGroup(pb.UpdateGroupRequest(group_id=group.id, name="Quiet"),
                                 metadata=owner.metadata)

    def of(kind: str) -> list[dict[str, object]]:
        return [c for c in receiver.calls if c["type"] == kind]

    await eventually(lambda: bool(of("message.reported")) and bool(of("member.banned"))
                     and bool(of("group.updated")))
    reported = of("message.reported")[-1]["action"]
    assert isinstance(reported, dict)
    assert (reported["id"], reported["message_id"], reported["reason"]) == (
        report.id, rude.id, "rude")
    assert receiver.bad_signatures == 0
    keys = [c["idempotency_key"] for c in receiver.calls if c["type"] != "message.created"]
    assert len(keys) == len(set(keys))
