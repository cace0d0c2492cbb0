"""Every RPC against every role, as a table: each cell is the expected status.

The group is invite-only (the stricter case: to non-members it answers exactly like a missing
group). Open groups differ in that strangers may join themselves, see the public card and get
PERMISSION_DENIED where this table says NOT_FOUND (tests/api/test_groups.py,
tests/api/test_input_and_privacy.py). Each cell gets a fresh group so cells cannot influence
each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.chat_client import ChatClient

ROLES = ["owner", "admin", "member", "stranger", "left", "removed"]


@dataclass
class Scene:
    group: pb.Group
    actor: ChatClient
    target: ChatClient  # a plain member the actions can aim at
    target_message: pb.MessageResponse
    outsider: ChatClient  # never a member


async def build(user: UserFactory, role: str) -> Scene:
    owner, admin, member, target = user("Owner"), user("Admin"), user("Member"), user("Target")
    left, removed, stranger, outsider = user("Left"), user("Removed"), user(), user()
    group = await owner.create_group(
        invite_only=True,
        members=[admin.user_id, member.user_id, target.user_id, left.user_id, removed.user_id],
    )
    await owner.stub.SetMemberRole(
        pb.SetMemberRoleRequest(group_id=group.id, user_id=admin.user_id, role=pb.ROLE_ADMIN),
        metadata=owner.metadata,
    )
    await left.leave(group.id)
    await owner.leave(group.id, removed.user_id)
    target_message = await target.send(group.id, "target's message")
    actor = {"owner": owner, "admin": admin, "member": member, "stranger": stranger,
             "left": left, "removed": removed}[role]
    return Scene(group, actor, target, target_message, outsider)


Action = Callable[[Scene], Awaitable[Any]]


def _call(method: str, request: Any) -> Action:
    async def run(s: Scene) -> Any:
        return await getattr(s.actor.stub, method)(request(s), metadata=s.actor.metadata)

    return run


ACTIONS: dict[str, Action] = {
    "GetGroup": _call("GetGroup", lambda s: pb.GetGroupRequest(group_id=s.group.id)),
    "GetGroupMembers": _call(
        "GetGroupMembers", lambda s: pb.GetGroupMembersRequest(group_id=s.group.id)),
    "GetMessageHistory": _call(
        "GetMessageHistory", lambda s: pb.GetHistoryRequest(group_id=s.group.id)),
    "SendMessage": _call(
        "SendMessage", lambda s: pb.SendMessageRequest(group_id=s.group.id, content="hi")),
    "SendTypingIndicator": _call(
        "SendTypingIndicator", lambda s: pb.TypingRequest(group_id=s.group.id, is_typing=True)),
    "JoinGroup(self)": _call("JoinGroup", lambda s: pb.JoinGroupRequest(group_id=s.group.id)),
    "JoinGroup(add other)": _call(
        "JoinGroup",
        lambda s: pb.JoinGroupRequest(group_id=s.group.id, user_id=s.outsider.user_id)),
    "LeaveGroup(self)": _call("LeaveGroup", lambda s: pb.LeaveGroupRequest(group_id=s.group.id)),
    "LeaveGroup(remove member)": _call(
        "LeaveGroup",
        lambda s: pb.LeaveGroupRequest(group_id=s.group.id, user_id=s.target.user_id)),
    "SetMemberRole": _call(
        "SetMemberRole",
        lambda s: pb.SetMemberRoleRequest(group_id=s.group.id, user_id=s.target.user_id,
                                          role=pb.ROLE_ADMIN)),
    "MarkRead": _call("MarkRead", lambda s: pb.MarkReadRequest(group_id=s.group.id)),
    "GetReadReceipts": _call(
        "GetReadReceipts",
        lambda s: pb.GetReadReceiptsRequest(group_id=s.group.id,
                                            message_id=s.target_message.id)),
    "UpdateMembership(mute)": _call(
        "UpdateMembership", lambda s: pb.UpdateMembershipRequest(group_id=s.group.id,
                                                                 muted=True)),
    "EditMessage(others')": _call(
        "EditMessage",
        lambda s: pb.EditMessageRequest(message_id=s.target_message.id, content="hijack")),
    "DeleteMessage(others')": _call(
        "DeleteMessage", lambda s: pb.DeleteMessageRequest(message_id=s.target_message.id)),
    "AddReaction": _call(
        "AddReaction", lambda s: pb.ReactionRequest(message_id=s.target_message.id, emoji="👍")),
}

OK, PD, NF = "OK", "PERMISSION_DENIED", "NOT_FOUND"
# Non-members (stranger, left, removed) get NOT_FOUND wherever a missing group would: an
# invite-only group must not be told apart from a missing one (tests/api/
# test_input_and_privacy.py compares the two answer by answer). MarkRead and
# UpdateMembership(mute) answer PERMISSION_DENIED for missing and hidden groups alike.
#                              owner admin member stranger left removed
MATRIX: dict[str, list[str]] = {
    "GetGroup":                  [OK, OK, OK, NF, NF, NF],
    "GetGroupMembers":           [OK, OK, OK, NF, NF, NF],
    "GetMessageHistory":         [OK, OK, OK, NF, NF, NF],
    "SendMessage":               [OK, OK, OK, NF, NF, NF],
    "SendTypingIndicator":       [OK, OK, OK, NF, NF, NF],
    "JoinGroup(self)":           [OK, OK, OK, NF, NF, NF],
    "JoinGroup(add other)":      [OK, OK, PD, NF, NF, NF],
    "LeaveGroup(self)":          [OK, OK, OK, NF, NF, NF],
    "LeaveGroup(remove member)": [OK, OK, PD, NF, NF, NF],
    "SetMemberRole":             [OK, PD, PD, NF, NF, NF],
    "MarkRead":                  [OK, OK, OK, PD, PD, PD],
    "GetReadReceipts":           [OK, OK, OK, NF, NF, NF],
    "UpdateMembership(mute)":    [OK, OK, OK, PD, PD, PD],
    "EditMessage(others')":      [PD, PD, PD, NF, NF, NF],
    "DeleteMessage(others')":    [OK, OK, PD, NF, NF, NF],
    "AddReaction":               [OK, OK, OK, NF, NF, NF],
}  # fmt: skip

CELLS = [(action, role, MATRIX[action][i]) for action in MATRIX for i, role in enumerate(ROLES)]


def test_matrix_covers_every_action_and_role() -> None:
    assert set(MATRIX) == set(ACTIONS)
    assert all(len(row) == len(ROLES) for row in MATRIX.values())


@pytest.mark.parametrize(("action", "role", "expected"), CELLS,
                         ids=[f"{a}-{r}" for a, r, _ in CELLS])
async def test_cell(user: UserFactory, action: str, role: str, expected: str) -> None:
    scene = await build(user, role)
    try:
        await ACTIONS[action](scene)
        got = "OK"
    except grpc.aio.AioRpcError as exc:
        got = exc.code().name
    assert got == expected, f"{action} as {role}: expected {expected}, got {got}"
