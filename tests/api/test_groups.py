"""Creating, joining, leaving groups, roles and member lists."""

from __future__ import annotations

import grpc

from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.chat_client import expect_status


async def test_creator_owns_the_group_and_initial_members_are_listed(user: UserFactory) -> None:
    alice, bob, carol = user("Alice"), user("Bob"), user("Carol")
    await bob.my_groups()  # Bob's profile is known once he has called the service
    group = await alice.create_group("team", members=[bob.user_id, carol.user_id, bob.user_id],
                                     description="our team")
    assert group.created_by == alice.user_id and group.name == "team"
    assert sorted(group.member_ids) == sorted([alice.user_id, bob.user_id, carol.user_id])
    assert group.my_role == pb.ROLE_OWNER and group.member_count == 3
    members = await bob.members(group.id)
    roles = {m.id: m.role for m in members}
    assert roles == {alice.user_id: pb.ROLE_OWNER, bob.user_id: pb.ROLE_MEMBER,
                     carol.user_id: pb.ROLE_MEMBER}
    names = {m.id: m.name for m in members}
    assert names[alice.user_id] == "Alice" and names[bob.user_id] == "Bob"


async def test_join_open_group_leave_and_list_my_groups(user: UserFactory) -> None:
    alice, bob = user(), user()
    group = await alice.create_group("open")
    reply = await bob.join(group.id)
    assert reply.success
    again = await bob.join(group.id)
    assert again.success and "already" in again.message
    assert group.id in [g.id for g in await bob.my_groups()]
    fetched = await bob.get_group(group.id)
    assert fetched.my_role == pb.ROLE_MEMBER and fetched.member_count == 2
    left = await bob.leave(group.id)
    assert left.success
    assert group.id not in [g.id for g in await bob.my_groups()]
    await expect_status(grpc.StatusCode.NOT_FOUND, bob.leave(group.id))


async def test_invite_only_group_needs_an_owner_or_admin(user: UserFactory) -> None:
    alice, bob, carol = user(), user(), user()
    group = await alice.create_group("private", invite_only=True, members=[carol.user_id])
    # outsiders cannot tell it from a missing group
    await expect_status(grpc.StatusCode.NOT_FOUND, bob.join(group.id))
    await expect_status(grpc.StatusCode.NOT_FOUND, bob.get_group(group.id))
    # a plain member cannot add others
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, carol.join(group.id, bob.user_id))
    assert (await alice.join(group.id, bob.user_id)).success
    assert bob.user_id in [m.id for m in await bob.members(group.id)]


async def test_owner_removes_a_member_who_then_loses_access(user: UserFactory) -> None:
    alice, bob, carol = user(), user(), user()
    group = await alice.create_group(members=[bob.user_id, carol.user_id])
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, bob.leave(group.id, carol.user_id))
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, bob.leave(group.id, alice.user_id))
    assert (await alice.leave(group.id, bob.user_id)).success
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, bob.send(group.id, "hi"))
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, bob.history(group.id))
    history = await alice.all_history(group.id)
    assert history[-1].type == pb.SYSTEM and "removed" in history[-1].content


async def test_ownership_passes_on_when_the_owner_leaves(user: UserFactory) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    await alice.leave(group.id)
    assert (await bob.get_group(group.id)).my_role == pb.ROLE_OWNER


async def test_group_limits_are_enforced_with_a_message_naming_the_limit(
    user: UserFactory,
) -> None:
    alice = user()
    err = await expect_status(grpc.StatusCode.INVALID_ARGUMENT, alice.create_group("x" * 101))
    assert "100" in (err.details() or "")
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, alice.create_group("   "))
    err = await expect_status(
        grpc.StatusCode.INVALID_ARGUMENT, alice.create_group("ok", description="d" * 1001)
    )
    assert "1000" in (err.details() or "")
    err = await expect_status(
        grpc.StatusCode.INVALID_ARGUMENT, alice.create_group("big", members=range(1, 1001))
    )
    assert "1000" in (err.details() or "")
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, alice.create_group("neg", members=[-5]))
    await expect_status(grpc.StatusCode.NOT_FOUND, alice.join(1 << 55))
    await expect_status(grpc.StatusCode.NOT_FOUND, alice.get_group(1 << 55))


async def test_non_member_can_neither_read_nor_post_nor_stream_nor_list(
    user: UserFactory,
) -> None:
    alice, mallory = user(), user()
    group = await alice.create_group("closed", invite_only=True)
    await alice.send(group.id, "secret")
    # invite-only: answered as if the group did not exist
    await expect_status(grpc.StatusCode.NOT_FOUND, mallory.send(group.id, "hi"))
    await expect_status(grpc.StatusCode.NOT_FOUND, mallory.history(group.id))
    await expect_status(grpc.StatusCode.NOT_FOUND, mallory.members(group.id))
    await expect_status(grpc.StatusCode.NOT_FOUND, mallory.typing(group.id))
    stream = await mallory.subscribe(positions={group.id: 0})
    await alice.send(group.id, "still secret")
    await stream.wait_until(lambda: stream.batches >= 0, timeout=1)
    await alice.typing(group.id)
    stream_of_alice = await alice.subscribe()
    await alice.send(group.id, "marker")
    await stream_of_alice.wait_messages(1, group.id)
    assert stream.messages(group.id) == [] and stream.of_kind("typing") == []


async def test_members_stream_sees_member_events_and_new_groups(user: UserFactory) -> None:
    alice, bob = user("Alice"), user("Bob")
    bob_stream = await bob.subscribe()
    group = await alice.create_group("later", members=[bob.user_id])
    await alice.send(group.id, "welcome")
    got = await bob_stream.wait_messages(2, group.id)
    assert [m.seq for m in got] == [1, 2]
    carol = user("Carol")
    await carol.join(group.id)
    await bob_stream.wait_until(
        lambda: any(e.member.user.id == carol.user_id for e in bob_stream.of_kind("member"))
    )
    joined = [e.member for e in bob_stream.of_kind("member") if e.member.user.id == carol.user_id]
    assert joined[0].kind == pb.MemberEvent.JOINED and joined[0].group_id == group.id
