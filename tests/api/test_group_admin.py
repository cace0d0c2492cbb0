"""Group administration (issue 15) through the real API: UpdateGroup by owners/admins and the
backend, archive (read-only), delete (streams told, data and attachments gone), members in
batches, messages from the backend (system, act_as)."""

from __future__ import annotations

import grpc

from chat_devstack.cluster import Cluster
from chat_service.gen import chat_backend_pb2 as bpb
from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.attachments import png, stack_db, start_upload, upload_unary
from tests.support.backend import BackendClient, backend  # noqa: F401 - fixture
from tests.support.chat_client import ChatClient, expect_status

# ruff: noqa: F811 - fixtures imported above
PD = grpc.StatusCode.PERMISSION_DENIED


async def update(client: ChatClient, group_id: int, **fields: object) -> pb.Group:
    return await client.stub.UpdateGroup(
        pb.UpdateGroupRequest(group_id=group_id, **fields),  # type: ignore[arg-type]
        metadata=client.metadata,
    )


async def make_admin(owner: ChatClient, group_id: int, user_id: int) -> None:
    await owner.stub.SetMemberRole(
        pb.SetMemberRoleRequest(group_id=group_id, user_id=user_id, role=pb.ROLE_ADMIN),
        metadata=owner.metadata,
    )


async def test_owners_and_admins_update_the_card_and_members_are_told(user: UserFactory
                                                                       ) -> None:
    owner, admin, member = user("Owner"), user("Admin"), user("Member")
    group = await owner.create_group(members=[admin.user_id, member.user_id])
    await make_admin(owner, group.id, admin.user_id)
    feed = await member.subscribe()
    renamed = await update(owner, group.id, name="Renamed", avatar="https://example.com/a.png")
    assert (renamed.name, renamed.avatar) == ("Renamed", "https://example.com/a.png")
    described = await update(admin, group.id, description="by the admin", invite_only=True)
    assert (described.name, described.description, described.invite_only) == (
        "Renamed", "by the admin", True)
    await feed.wait_until(lambda: len(feed.of_kind("group_updated")) == 2)
    last = feed.of_kind("group_updated")[-1].group_updated
    assert (last.group_id, last.actor_id, last.group.description) == (
        group.id, admin.user_id, "by the admin")
    await expect_status(PD, update(member, group.id, name="mine now"))
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, update(owner, group.id))
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT,
                        update(owner, group.id, avatar="javascript:alert(1)"))
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, update(owner, group.id, name=" "))


async def test_an_archived_group_is_read_only_with_its_history_kept(
    user: UserFactory, backend: BackendClient
) -> None:
    owner, admin, member = user("Owner"), user("Admin"), user("Member")
    group = await owner.create_group(members=[admin.user_id, member.user_id])
    await make_admin(owner, group.id, admin.user_id)
    await member.send(group.id, "before")
    await expect_status(PD, update(admin, group.id, archived=True))
    assert (await update(owner, group.id, archived=True)).archived
    error = await expect_status(PD, member.send(group.id, "after"))
    assert "archived" in (error.details() or "")
    before = (await member.history(group.id)).messages[-1]
    await expect_status(PD, member.stub.EditMessage(
        pb.EditMessageRequest(message_id=before.id, content="rewritten"), metadata=member.metadata))
    await expect_status(PD, owner.stub.AddReaction(
        pb.ReactionRequest(message_id=before.id, emoji="👍"), metadata=owner.metadata))
    await expect_status(PD, backend.post(group.id, "system notice"))
    await expect_status(PD, backend.post(group.id, "as member", act_as=member.user_id))
    assert "before" in [m.content for m in (await member.history(group.id)).messages]
    assert not (await update(owner, group.id, archived=False)).archived
    await member.send(group.id, "reopened")


async def test_the_backend_creates_and_updates_groups_without_being_a_member(
    user: UserFactory, backend: BackendClient
) -> None:
    owner, member = user("Owner"), user("Member")
    created = await backend.create_group(owner.user_id, [member.user_id], name="Team A",
                                         avatar="https://example.com/t.png")
    assert (created.name, created.member_count, created.created_by) == ("Team A", 2,
                                                                        owner.user_id)
    seen = await owner.get_group(created.id)
    assert (seen.my_role, seen.avatar, seen.invite_only) == (
        pb.ROLE_OWNER, "https://example.com/t.png", True)
    updated = await backend.call("UpdateGroup", bpb.BackendUpdateGroupRequest(
        group_id=created.id, name="Team B", archived=True))
    assert (updated.name, updated.archived) == ("Team B", True)
    await expect_status(grpc.StatusCode.NOT_FOUND, backend.call(
        "UpdateGroup", bpb.BackendUpdateGroupRequest(group_id=2**62, name="x")))


async def test_members_in_batches_with_system_messages_and_events(
    user: UserFactory, backend: BackendClient
) -> None:
    owner, a, b, c = user("Owner"), user("Ann"), user("Ben"), user("Cy")
    # Never connected: their names come from the directory.
    await backend.upsert(*(bpb.BackendUser(id=x.user_id, name=n)
                           for x, n in ((a, "Ann"), (b, "Ben"), (c, "Cy"))))
    group = await backend.create_group(owner.user_id, [a.user_id])
    feed = await owner.subscribe()
    added = await backend.call("AddMembers", bpb.BackendMembersRequest(
        group_id=group.id, user_ids=[a.user_id, b.user_id, c.user_id]))
    assert sorted(added.changed_ids) == sorted([b.user_id, c.user_id])
    await feed.wait_until(lambda: len(feed.of_kind("member")) == 2)
    assert {e.member.actor_id for e in feed.of_kind("member")} == {0}
    removed = await backend.call("RemoveMembers", bpb.BackendMembersRequest(
        group_id=group.id, user_ids=[a.user_id, 999_999_999_999]))
    assert list(removed.changed_ids) == [a.user_id]
    texts = [m.content for m in (await owner.history(group.id)).messages if m.type == pb.SYSTEM]
    assert texts[-3:] == ["System added Ben", "System added Cy", "System removed Ann"]
    assert sorted(m.id for m in await owner.members(group.id)) == sorted(
        [owner.user_id, b.user_id, c.user_id])
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, backend.call(
        "AddMembers", bpb.BackendMembersRequest(group_id=group.id,
                                                user_ids=list(range(1, 102)))))


async def test_system_messages_and_messages_on_behalf_of_a_member(
    user: UserFactory, backend: BackendClient
) -> None:
    owner, member, outsider = user("Owner"), user("Member"), user("Outsider")
    group = await owner.create_group(members=[member.user_id])
    await member.my_groups()  # the service learns the member's name from their token
    feed = await owner.subscribe()
    notice = await backend.post(group.id, "Maintenance tonight", client_msg_id="notice-1")
    again = await backend.post(group.id, "Maintenance tonight", client_msg_id="notice-1")
    assert (again.id, again.duplicate, notice.duplicate) == (notice.id, True, False)
    on_behalf = await backend.post(group.id, "Sent from the app", act_as=member.user_id)
    await expect_status(PD, backend.post(group.id, "not mine", act_as=outsider.user_id))
    live = await feed.wait_messages(2, group.id)
    by_id = {m.id: m for m in (await owner.history(group.id)).messages}
    system = by_id[notice.id]
    assert (system.type, system.user_id, system.via_backend) == (pb.SYSTEM, 0, True)
    acted = by_id[on_behalf.id]
    assert (acted.type, acted.user_id, acted.via_backend, acted.user_name) == (
        pb.TEXT, member.user_id, True, "Member")
    assert [m.via_backend for m in live] == [True, True]
    normal = await member.send(group.id, "typed by hand")
    assert not normal.via_backend


async def test_deleting_a_group_tells_its_streams_and_removes_everything(
    user: UserFactory, backend: BackendClient, stack: Cluster
) -> None:
    owner, member = user("Owner"), user("Member")
    group = await owner.create_group(members=[member.user_id])
    data, _, _ = png(40_000)
    upload = await start_upload(owner, group.id, data)
    done = await upload_unary(owner, upload.upload_id, data)
    await owner.stub.SendMessage(pb.SendMessageRequest(
        group_id=group.id, type=pb.IMAGE, attachment_id=done.attachment.id),
        metadata=owner.metadata)
    feed = await member.subscribe()
    await backend.call("DeleteGroup", bpb.BackendGroupRef(group_id=group.id))
    await feed.wait_until(lambda: bool(feed.of_kind("group_deleted")))
    assert feed.of_kind("group_deleted")[0].group_deleted.group_id == group.id
    await expect_status(grpc.StatusCode.NOT_FOUND, owner.history(group.id))
    assert group.id not in [g.id for g in await member.my_groups()]
    async with stack_db(stack) as db:
        for table in ("messages", "group_members", "attachments", "moderation_actions"):
            assert await db.fetchval(
                f"SELECT count(*) FROM {table} WHERE group_id = $1", group.id) == 0, table
        assert await db.fetchval(
            "SELECT count(*) FROM attachment_chunks WHERE attachment_id = $1",
            done.attachment.id) == 0
    await expect_status(grpc.StatusCode.NOT_FOUND, backend.call(
        "DeleteGroup", bpb.BackendGroupRef(group_id=group.id)))
