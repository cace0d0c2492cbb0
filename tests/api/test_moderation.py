"""Moderation (issue 15) through the real API: group bans, mutes, reports, the moderation
log, and backend-wide bans."""

from __future__ import annotations

import asyncio

import grpc

from chat_service.gen import chat_backend_pb2 as bpb
from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.backend import BackendClient, backend  # noqa: F401 - fixture
from tests.support.chat_client import ChatClient, expect_status

# ruff: noqa: F811 - the `backend` fixture is imported above
PD = grpc.StatusCode.PERMISSION_DENIED
NF = grpc.StatusCode.NOT_FOUND
Kind = pb.ModerationAction


async def moderate(client: ChatClient, group_id: int, user_id: int, kind: int,
                   reason: str = "", duration_seconds: int = 0) -> pb.ModerationAction:
    return await client.stub.ModerateMember(pb.ModerateMemberRequest(
        group_id=group_id, user_id=user_id, kind=kind,  # type: ignore[arg-type]
        reason=reason, duration_seconds=duration_seconds), metadata=client.metadata)


async def log_of(client: ChatClient, group_id: int) -> list[pb.ModerationAction]:
    reply = await client.stub.ListModeration(pb.ListModerationRequest(group_id=group_id),
                                             metadata=client.metadata)
    return list(reply.actions)


async def scene(user: UserFactory, *, invite_only: bool = False
                ) -> tuple[pb.Group, ChatClient, ChatClient, ChatClient]:
    owner, admin, member = user("Owner"), user("Admin"), user("Member")
    group = await owner.create_group(members=[admin.user_id, member.user_id],
                                     invite_only=invite_only)
    await owner.stub.SetMemberRole(pb.SetMemberRoleRequest(
        group_id=group.id, user_id=admin.user_id, role=pb.ROLE_ADMIN), metadata=owner.metadata)
    return group, owner, admin, member


async def test_a_banned_member_is_removed_and_cannot_rejoin_post_or_be_added(
    user: UserFactory,
) -> None:
    group, owner, admin, troll = await scene(user)
    feed = await owner.subscribe()
    action = await moderate(admin, group.id, troll.user_id, Kind.BAN, reason="spam")
    assert (action.kind, action.reason, action.actor_id, action.expires_at_ms) == (
        Kind.BAN, "spam", admin.user_id, 0)
    await feed.wait_until(lambda: bool(feed.of_kind("moderation")))
    member_event = feed.of_kind("member")[-1].member
    assert (member_event.kind, member_event.user.id) == (pb.MemberEvent.BANNED, troll.user_id)
    assert feed.of_kind("moderation")[0].moderation.action.id == action.id
    error = await expect_status(PD, troll.join(group.id))
    assert "banned" in (error.details() or "")
    await expect_status(PD, owner.join(group.id, troll.user_id))
    await expect_status(PD, troll.send(group.id, "I'm back"))
    assert troll.user_id not in [m.id for m in await owner.members(group.id)]
    # Lifted: they may come back.
    await moderate(owner, group.id, troll.user_id, Kind.UNBAN)
    await troll.join(group.id)
    await troll.send(group.id, "behaving now")
    await expect_status(NF, moderate(owner, group.id, troll.user_id, Kind.UNBAN))
    kinds = [a.kind for a in await log_of(admin, group.id)]
    assert kinds == [Kind.UNBAN, Kind.BAN]  # newest first


async def test_a_ban_with_an_expiry_lapses_by_itself(user: UserFactory) -> None:
    group, owner, _, member = await scene(user)
    action = await moderate(owner, group.id, member.user_id, Kind.BAN, duration_seconds=1)
    assert action.expires_at_ms > action.created_at_ms
    await expect_status(PD, member.join(group.id))
    await asyncio.sleep(1.2)
    await member.join(group.id)


async def test_a_muted_member_reads_but_cannot_post_until_unmuted_or_expired(
    user: UserFactory,
) -> None:
    group, owner, admin, member = await scene(user)
    await moderate(admin, group.id, member.user_id, Kind.MUTE, reason="cool down")
    error = await expect_status(PD, member.send(group.id, "let me speak"))
    assert "muted" in (error.details() or "")
    await member.history(group.id)  # may read
    await moderate(admin, group.id, member.user_id, Kind.UNMUTE)
    await member.send(group.id, "thanks")
    await moderate(admin, group.id, member.user_id, Kind.MUTE, duration_seconds=1)
    await expect_status(PD, member.send(group.id, "too soon"))
    await asyncio.sleep(1.2)
    await member.send(group.id, "after the mute")
    await expect_status(NF, moderate(admin, group.id, owner.user_id + 10**9, Kind.MUTE))


async def test_who_may_moderate_follows_the_role_table(user: UserFactory) -> None:
    group, owner, admin, member = await scene(user, invite_only=True)
    stranger = user("Stranger")
    await expect_status(PD, moderate(admin, group.id, owner.user_id, Kind.BAN))
    await expect_status(PD, moderate(member, group.id, admin.user_id, Kind.MUTE))
    await expect_status(NF, moderate(stranger, group.id, member.user_id, Kind.BAN))
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT,
                        moderate(owner, group.id, owner.user_id, Kind.BAN))
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT,
                        moderate(owner, group.id, member.user_id, Kind.REPORT))
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT,
                        moderate(owner, group.id, member.user_id, Kind.BAN, reason="x" * 501))
    await expect_status(PD, log_of(member, group.id))
    await expect_status(NF, log_of(stranger, group.id))
    await moderate(owner, group.id, admin.user_id, Kind.MUTE)


async def test_a_report_reaches_the_moderators_log_but_not_the_groups_streams(
    user: UserFactory,
) -> None:
    group, owner, admin, member = await scene(user)
    bad = await owner.send(group.id, "something rude")
    feed = await admin.subscribe()
    report = await member.stub.ReportMessage(
        pb.ReportMessageRequest(message_id=bad.id, reason="rude"), metadata=member.metadata)
    assert (report.kind, report.user_id, report.actor_id, report.message_id) == (
        Kind.REPORT, owner.user_id, member.user_id, bad.id)
    await member.send(group.id, "a later message")
    await feed.wait_messages(1, group.id)
    assert feed.of_kind("moderation") == []
    assert [a.id for a in await log_of(admin, group.id)] == [report.id]
    outsider = user("Outsider")
    await expect_status(NF, outsider.stub.ReportMessage(
        pb.ReportMessageRequest(message_id=bad.id), metadata=outsider.metadata))


async def test_the_backend_moderates_anyone_and_bans_users_from_the_service(
    user: UserFactory, backend: BackendClient
) -> None:
    group, owner, _, member = await scene(user)
    banned = await backend.moderate(group.id, owner.user_id, bpb.BackendModeration.BAN,
                                    reason="account closed")
    assert banned.actor_id == 0
    assert owner.user_id not in [m.id for m in await member.members(group.id)]
    # Backend-wide: their open stream ends and every new call is refused.
    feed = await member.subscribe()
    ban = await backend.call("BanUser", bpb.BackendBanUserRequest(
        user_id=member.user_id, reason="fraud"))
    assert (ban.kind, ban.group_id) == (bpb.BackendModeration.USER_BAN, 0)
    error = await feed.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
    refused = await expect_status(PD, member.my_groups())
    assert "banned" in (refused.details() or "")
    await expect_status(PD, member.stub.GetGroup(pb.GetGroupRequest(
        group_id=group.id, jwt_token=member.token)))
    await backend.call("UnbanUser", bpb.BackendUserRef(user_id=member.user_id))
    await member.my_groups()
    listed = await backend.call("ListModeration", bpb.BackendListModerationRequest(group_id=0))
    mine = [a.kind for a in listed.actions if a.user_id == member.user_id]
    assert mine[:2] == [bpb.BackendModeration.USER_UNBAN, bpb.BackendModeration.USER_BAN]


async def test_a_timed_service_ban_lapses(user: UserFactory, backend: BackendClient) -> None:
    member = user("Member")
    await backend.call("BanUser", bpb.BackendBanUserRequest(user_id=member.user_id,
                                                            duration_seconds=1))
    await expect_status(PD, member.my_groups())
    await asyncio.sleep(1.2)
    await member.my_groups()
