"""Budgets of the issue-15 user-facing RPCs, on pods with tight limits (tests/api/
test_limits.py's): UpdateGroup and ModerateMember spend the edit budget; creating a direct
conversation spends the group-creation budget, reopening one only a read."""

from __future__ import annotations

import grpc

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint_backend
from chat_service.gen import chat_pb2 as pb
from tests.api.test_limits import channels, client, limited_pods  # noqa: F401 - fixtures
from tests.support.backend import BackendClient
from tests.support.chat_client import expect_status

# ruff: noqa: F811 - fixtures imported above
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_group_updates_and_moderation_share_the_edit_budget(
    stack: Cluster, channels: list[grpc.aio.Channel]
) -> None:
    owner, member = client(stack, channels[0]), client(stack, channels[1])
    group = await owner.create_group(members=[member.user_id])
    for i in range(2):
        await owner.stub.UpdateGroup(pb.UpdateGroupRequest(group_id=group.id, name=f"n{i}"),
                                     metadata=owner.metadata)
    await owner.stub.ModerateMember(pb.ModerateMemberRequest(
        group_id=group.id, user_id=member.user_id, kind=pb.ModerationAction.MUTE),
        metadata=owner.metadata)
    error = await expect_status(EXHAUSTED, owner.stub.UpdateGroup(
        pb.UpdateGroupRequest(group_id=group.id, name="one too many"), metadata=owner.metadata))
    assert "edit" in (error.details() or "").lower()


async def test_creating_direct_conversations_spends_the_creation_budget_reopening_does_not(
    stack: Cluster, channels: list[grpc.aio.Channel]
) -> None:
    me = client(stack, channels[0])
    peers = [client(stack, channels[1]) for _ in range(4)]

    async def direct(other: int) -> pb.Group:
        return await me.stub.GetOrCreateDirect(pb.GetOrCreateDirectRequest(user_id=other),
                                               metadata=me.metadata)

    first = await direct(peers[0].user_id)
    for peer in peers[1:3]:
        await direct(peer.user_id)
    for _ in range(3):
        assert (await direct(peers[0].user_id)).id == first.id  # reopening: reads only
    await expect_status(EXHAUSTED, direct(peers[3].user_id))


async def test_groups_the_backend_creates_do_not_spend_the_owners_budget(
    stack: Cluster, channels: list[grpc.aio.Channel]
) -> None:
    owner = client(stack, channels[0])
    backend = BackendClient(channels[0], mint_backend(stack.backend_jwt_secret))
    for i in range(5):  # the owner's own budget is 3 an hour on these pods
        await backend.create_group(owner.user_id, [], name=f"team {i}")
    await owner.create_group()
    await owner.create_group()
