"""The issue-15 user-facing RPCs against every role, as a table (the style and the scene of
tests/api/test_authorization_matrix.py: an invite-only group; each cell a fresh group). The
other direction, what the backend credential opens and what user tokens never reach, is
tests/api/test_backend_credential.py."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from chat_service.gen import chat_pb2 as pb
from tests.api.test_authorization_matrix import ROLES, Action, Scene, build
from tests.conftest import UserFactory


def _call(method: str, request: Any) -> Action:
    async def run(s: Scene) -> Any:
        return await getattr(s.actor.stub, method)(request(s), metadata=s.actor.metadata)

    return run


K = pb.ModerationAction
ACTIONS: dict[str, Action] = {
    "UpdateGroup(name)": _call(
        "UpdateGroup", lambda s: pb.UpdateGroupRequest(group_id=s.group.id, name="renamed")),
    "UpdateGroup(archive)": _call(
        "UpdateGroup", lambda s: pb.UpdateGroupRequest(group_id=s.group.id, archived=True)),
    "ModerateMember(mute member)": _call(
        "ModerateMember", lambda s: pb.ModerateMemberRequest(
            group_id=s.group.id, user_id=s.target.user_id, kind=K.MUTE)),
    "ModerateMember(ban member)": _call(
        "ModerateMember", lambda s: pb.ModerateMemberRequest(
            group_id=s.group.id, user_id=s.target.user_id, kind=K.BAN)),
    "ListModeration": _call(
        "ListModeration", lambda s: pb.ListModerationRequest(group_id=s.group.id)),
    "ReportMessage": _call(
        "ReportMessage", lambda s: pb.ReportMessageRequest(message_id=s.target_message.id)),
    "GetOrCreateDirect(with a member)": _call(
        "GetOrCreateDirect", lambda s: pb.GetOrCreateDirectRequest(user_id=s.target.user_id)),
}

OK, PD, NF = "OK", "PERMISSION_DENIED", "NOT_FOUND"
# A direct conversation needs no shared group: anyone may open one with anyone.
#                                     owner admin member stranger left removed
MATRIX: dict[str, list[str]] = {
    "UpdateGroup(name)":                [OK, OK, PD, NF, NF, NF],
    "UpdateGroup(archive)":             [OK, PD, PD, NF, NF, NF],
    "ModerateMember(mute member)":      [OK, OK, PD, NF, NF, NF],
    "ModerateMember(ban member)":       [OK, OK, PD, NF, NF, NF],
    "ListModeration":                   [OK, OK, PD, NF, NF, NF],
    "ReportMessage":                    [OK, OK, OK, NF, NF, NF],
    "GetOrCreateDirect(with a member)": [OK, OK, OK, OK, OK, OK],
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
