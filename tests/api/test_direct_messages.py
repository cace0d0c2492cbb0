"""Direct messages (GetOrCreateDirect) through the real API on PostgreSQL and Redis."""

from __future__ import annotations

import asyncio

import grpc

from chat_service.gen import chat_backend_pb2 as bpb
from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.backend import BackendClient, backend  # noqa: F401 - fixture
from tests.support.chat_client import ChatClient, expect_status

# ruff: noqa: F811 - the `backend` fixture is imported above


async def direct(client: ChatClient, other: int) -> pb.Group:
    return await client.stub.GetOrCreateDirect(
        pb.GetOrCreateDirectRequest(user_id=other), metadata=client.metadata
    )


async def test_exactly_one_conversation_per_pair_under_concurrent_calls_from_both_sides(
    user: UserFactory,
) -> None:
    alice, bob = user("Alice"), user("Bob")
    calls = [direct(alice, bob.user_id) for _ in range(15)]
    calls += [direct(bob, alice.user_id) for _ in range(15)]
    groups = await asyncio.gather(*calls)
    assert len({g.id for g in groups}) == 1
    group = groups[0]
    assert group.direct and group.invite_only and group.member_count == 2
    history = (await alice.history(group.id)).messages
    assert [m.seq for m in history] == [1]  # one creation, one SYSTEM message
    assert (await direct(alice, bob.user_id)).id == group.id


async def test_listed_with_the_other_users_profile(
    user: UserFactory, backend: BackendClient
) -> None:
    alice, bob = user("Alice"), user("Bob")
    await backend.upsert(bpb.BackendUser(id=bob.user_id, name="Bob Dylan",
                                         avatar="https://example.com/bob.png"))
    group = await direct(alice, bob.user_id)
    assert (group.direct_peer.id, group.direct_peer.name) == (bob.user_id, "Bob Dylan")
    mine = {g.id: g for g in await alice.my_groups()}
    assert mine[group.id].direct_peer.avatar == "https://example.com/bob.png"
    theirs = {g.id: g for g in await bob.my_groups()}
    assert theirs[group.id].direct_peer.id == alice.user_id
    await alice.send(group.id, "hi Bob")
    assert [m.content for m in (await bob.history(group.id)).messages][-1] == "hi Bob"


async def test_the_other_side_sees_a_new_conversation_live(user: UserFactory) -> None:
    alice, bob = user("Alice"), user("Bob")
    feed = await bob.subscribe()
    group = await direct(alice, bob.user_id)
    await alice.send(group.id, "are you there?")
    messages = await feed.wait_messages(2, group.id)
    assert messages[-1].content == "are you there?"


async def test_nobody_else_can_join_or_be_added(user: UserFactory, backend: BackendClient
                                                ) -> None:
    alice, bob, eve = user("Alice"), user("Bob"), user("Eve")
    group = await direct(alice, bob.user_id)
    await expect_status(grpc.StatusCode.NOT_FOUND, eve.join(group.id))
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, alice.join(group.id, eve.user_id))
    error = await expect_status(grpc.StatusCode.PERMISSION_DENIED, backend.call(
        "AddMembers", bpb.BackendMembersRequest(group_id=group.id, user_ids=[eve.user_id])))
    assert "exactly its two users" in (error.details() or "")
    await expect_status(grpc.StatusCode.NOT_FOUND, eve.history(group.id))


async def test_a_conversation_with_oneself_or_nobody_is_refused(user: UserFactory) -> None:
    alice = user("Alice")
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, direct(alice, alice.user_id))
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, direct(alice, 0))


async def refused_everywhere(client: ChatClient) -> None:
    """Until this pod's ban list has the user (one broker hop): their own calls are refused."""
    for _ in range(100):
        try:
            await client.my_groups()
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"user {client.user_id} is still let in")


async def test_nobody_opens_a_conversation_with_a_user_banned_from_the_service(
    user: UserFactory, backend: BackendClient
) -> None:
    alice, bob, carol = user("Alice"), user("Bob"), user("Carol")
    existing = await direct(alice, bob.user_id)
    await backend.call("BanUser", bpb.BackendBanUserRequest(user_id=bob.user_id, reason="spam"))
    await refused_everywhere(bob)
    for caller in (alice, carol):  # reopening the old one, or starting a new one
        error = await expect_status(grpc.StatusCode.NOT_FOUND, direct(caller, bob.user_id))
        assert error.details() == f"user {bob.user_id} cannot be messaged"  # not why
    assert carol.user_id not in [m.id for m in await alice.members(existing.id)]
    await backend.call("UnbanUser", bpb.BackendUserRef(user_id=bob.user_id))
    await bob.my_groups()  # the lift is applied on this pod
    assert (await direct(alice, bob.user_id)).id == existing.id
    assert (await direct(carol, bob.user_id)).direct


async def test_nobody_opens_a_conversation_with_an_erased_user(
    user: UserFactory, backend: BackendClient
) -> None:
    alice, bob, carol = user("Alice"), user("Bob"), user("Carol")
    existing = await direct(alice, bob.user_id)
    await backend.call("EraseUser", bpb.BackendUserRef(user_id=bob.user_id))
    await refused_everywhere(bob)
    for caller in (alice, carol):
        error = await expect_status(grpc.StatusCode.NOT_FOUND, direct(caller, bob.user_id))
        # The same words as for a ban: the caller cannot tell erased from banned.
        assert error.details() == f"user {bob.user_id} cannot be messaged"
    # Alice keeps the old conversation's history; nobody was added back to it.
    assert [m.id for m in await alice.members(existing.id)] == [alice.user_id]
    assert (await alice.history(existing.id)).messages[-1].content == "Deleted user left"
