"""Issue 12, items 7 and 8: no input reaches INTERNAL, and strangers learn nothing.

Through the real API: free text that others read refuses control and bidi characters; token
claims are checked (`sub`) or cleaned (name, email, avatar) so no token can break a user's
calls; a non-member sees only an open group's public card, and cannot tell an invite-only
group from a missing one; member e-mails stay private unless EXPOSE_MEMBER_EMAILS is on.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.ports import free_port
from chat_devstack.processes import ServiceProcess
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.chat_client import ChatClient, expect_status

# ---- free text others read ----


async def test_a_group_description_with_nul_is_invalid_argument(user: UserFactory) -> None:
    alice = user()
    err = await expect_status(grpc.StatusCode.INVALID_ARGUMENT,
                              alice.create_group("ok", description="line\x00two"))
    assert "group description" in (err.details() or "") and "U+0000" in (err.details() or "")
    group = await alice.create_group("ok", description="line one\n\tline two")
    assert group.description == "line one\n\tline two"  # descriptions keep \n and \t


async def test_bidi_controls_are_refused_in_names_and_descriptions_not_in_messages(
    user: UserFactory,
) -> None:
    alice = user()
    err = await expect_status(grpc.StatusCode.INVALID_ARGUMENT,
                              alice.create_group("invoice\u202efdp.exe"))
    assert "U+202E" in (err.details() or "")
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT,
                        alice.create_group("ok", description="see \u2067here\u2069"))
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, alice.create_group("tab\there"))
    shalom = "\u05e9\u05dc\u05d5\u05dd"
    group = await alice.create_group(shalom)  # right-to-left text needs no control
    # Hebrew/Arabic writers legitimately use marks and isolates in messages: kept.
    sent = await alice.send(group.id, f"\u2067{shalom}\u2069 and \u200fok")
    assert sent.content == f"\u2067{shalom}\u2069 and \u200fok"


# ---- token claims ----


async def test_a_token_name_with_nul_does_not_lock_its_user_out(
    channel: grpc.aio.Channel, secret: str, new_user_id: Callable[[], int]
) -> None:
    uid = new_user_id()
    odd = ChatClient(channel, mint(secret, uid, name="Ali\x00ce\u202e\n"), uid)
    await odd.my_groups()  # today: INTERNAL, on this and every later call
    group = await odd.create_group("team")
    (me,) = await odd.members(group.id)
    assert me.name == "Alice"


async def test_display_claims_are_cleaned_not_refused(
    channel: grpc.aio.Channel, secret: str, new_user_id: Callable[[], int]
) -> None:
    uid, other = new_user_id(), new_user_id()
    bob = ChatClient(channel, mint(secret, uid, name="  Bob\n\u202eSmith\x07 " + "x" * 300,
                                   avatar="javascript:alert(1)", email="\x00@"), uid)
    carol = ChatClient(channel, mint(secret, other, name="Carol",
                                     avatar="https://cdn.example.com/c.png"), other)
    await carol.my_groups()
    group = await bob.create_group(members=[other])
    members = {m.id: m for m in await bob.members(group.id)}
    assert members[uid].name == ("Bob Smith " + "x" * 300)[:100]
    assert members[uid].avatar == ""  # not an http(s) URL: dropped
    assert members[other].avatar == "https://cdn.example.com/c.png"


SUB_REFUSED: list[Any] = [
    "\u00b2", "\u0667", " 7 ", "0007", "+7", "7.0", "7\n", "0x7", "", "0", "-7",
    "9223372036854775808",
    7.5, 7.0, True, False, [7], {"id": 7}, 0, -7, 2**63, 10**40,
]


@pytest.mark.parametrize("sub", SUB_REFUSED, ids=[repr(s) for s in SUB_REFUSED])
async def test_sub_is_only_a_canonical_decimal(
    channel: grpc.aio.Channel, secret: str, sub: Any
) -> None:
    client = ChatClient(channel, mint(secret, 7, sub=sub), 7)
    err = await expect_status(grpc.StatusCode.UNAUTHENTICATED, client.my_groups())
    assert "sub" in (err.details() or "")


async def test_sub_as_json_integer_or_decimal_string_is_accepted(
    channel: grpc.aio.Channel, secret: str, new_user_id: Callable[[], int]
) -> None:
    for sub in (new_user_id(), str(new_user_id()), 2**63 - 1, str(2**63 - 1)):
        uid = int(sub)
        client = ChatClient(channel, mint(secret, uid, sub=sub), uid)
        group = await client.create_group()
        assert group.created_by == uid


# ---- what non-members see ----


async def test_non_members_get_only_the_public_card_of_an_open_group(user: UserFactory) -> None:
    alice, bob, left, removed, stranger = user(), user(), user(), user(), user()
    group = await alice.create_group("open", description="all welcome",
                                     members=[bob.user_id, left.user_id, removed.user_id])
    await alice.send(group.id, "hello")
    await left.leave(group.id)
    await alice.leave(group.id, removed.user_id)
    mine = await bob.get_group(group.id)
    assert len(mine.member_ids) == 2 and mine.last_seq == 4 and mine.last_update_seq == 0
    for outsider in (stranger, left, removed):
        card = await outsider.get_group(group.id)
        assert (card.id, card.name, card.description, card.invite_only) == (
            group.id, "open", "all welcome", False)
        assert card.created_by == alice.user_id and card.member_count == 2
        assert list(card.member_ids) == [] and card.last_seq == 0
        assert card.my_role == pb.ROLE_NONE and card.read_seq == 0 and card.unread_count == 0


def _outsider_calls(
    actor: ChatClient, group_id: int, message_id: int, member_id: int, outsider_id: int
) -> dict[str, Awaitable[Any]]:
    s, md = actor.stub, actor.metadata
    return {
        "GetGroup": s.GetGroup(pb.GetGroupRequest(group_id=group_id), metadata=md),
        "JoinGroup(self)": s.JoinGroup(pb.JoinGroupRequest(group_id=group_id), metadata=md),
        "JoinGroup(other)": s.JoinGroup(
            pb.JoinGroupRequest(group_id=group_id, user_id=outsider_id), metadata=md),
        "LeaveGroup(self)": s.LeaveGroup(pb.LeaveGroupRequest(group_id=group_id), metadata=md),
        "LeaveGroup(other)": s.LeaveGroup(
            pb.LeaveGroupRequest(group_id=group_id, user_id=member_id), metadata=md),
        "GetGroupMembers": s.GetGroupMembers(
            pb.GetGroupMembersRequest(group_id=group_id), metadata=md),
        "GetMessageHistory": s.GetMessageHistory(
            pb.GetHistoryRequest(group_id=group_id), metadata=md),
        "SendMessage": s.SendMessage(
            pb.SendMessageRequest(group_id=group_id, content="hi"), metadata=md),
        "SendTypingIndicator": s.SendTypingIndicator(
            pb.TypingRequest(group_id=group_id, is_typing=True), metadata=md),
        "SetMemberRole": s.SetMemberRole(pb.SetMemberRoleRequest(
            group_id=group_id, user_id=member_id, role=pb.ROLE_ADMIN), metadata=md),
        "GetReadReceipts": s.GetReadReceipts(
            pb.GetReadReceiptsRequest(group_id=group_id, message_id=message_id), metadata=md),
        "MarkRead": s.MarkRead(pb.MarkReadRequest(group_id=group_id, seq=1), metadata=md),
        "UpdateMembership": s.UpdateMembership(
            pb.UpdateMembershipRequest(group_id=group_id), metadata=md),
        "UpdateMembership(mute)": s.UpdateMembership(
            pb.UpdateMembershipRequest(group_id=group_id, muted=True), metadata=md),
    }


async def _answers(calls: dict[str, Awaitable[Any]], group_id: int) -> dict[str, str]:
    out = {}
    for name, call in calls.items():
        try:
            await call
            out[name] = "OK"
        except grpc.aio.AioRpcError as exc:
            details = (exc.details() or "").replace(str(group_id), "N")
            out[name] = f"{exc.code().name}: {details}"
    return out


async def test_an_invite_only_group_answers_outsiders_exactly_like_a_missing_one(
    user: UserFactory,
) -> None:
    alice, bob, removed, stranger, outsider = user(), user(), user(), user(), user()
    group = await alice.create_group("hidden", invite_only=True,
                                     members=[bob.user_id, removed.user_id])
    message = await bob.send(group.id, "secret")
    await alice.leave(group.id, removed.user_id)
    missing = random.randint(1 << 55, 1 << 56)
    for actor in (stranger, removed):
        hidden = await _answers(_outsider_calls(actor, group.id, message.id, bob.user_id,
                                                outsider.user_id), group.id)
        gone = await _answers(_outsider_calls(actor, missing, message.id, bob.user_id,
                                              outsider.user_id), missing)
        assert hidden == gone
        assert hidden["GetGroup"] == "NOT_FOUND: group N not found"
        assert hidden["JoinGroup(self)"] == "NOT_FOUND: group N not found"
        assert hidden["GetGroupMembers"] == "NOT_FOUND: group N not found"
    assert [m.content for m in await bob.all_history(group.id)][-1] != "hi"  # nothing got in


# ---- member e-mails ----


async def test_member_emails_are_private_by_default(
    channel: grpc.aio.Channel, secret: str, new_user_id: Callable[[], int]
) -> None:
    a, b = new_user_id(), new_user_id()
    alice = ChatClient(channel, mint(secret, a, name="Alice", email="alice@example.com"), a)
    bob = ChatClient(channel, mint(secret, b, name="Bob", email="bob@example.com"), b)
    await bob.my_groups()
    group = await alice.create_group(members=[b])
    message = await alice.send(group.id, "read me")
    await bob.stub.MarkRead(pb.MarkReadRequest(group_id=group.id, seq=message.seq),
                            metadata=bob.metadata)
    for viewer in (alice, bob):  # nobody sees an address, not even their own
        assert [m.email for m in await viewer.members(group.id)] == ["", ""]
    receipts = await alice.stub.GetReadReceipts(
        pb.GetReadReceiptsRequest(group_id=group.id, message_id=message.id),
        metadata=alice.metadata)
    assert [(u.id, u.email) for u in receipts.readers] == [(b, "")]


@pytest.fixture(scope="module")
def emails_service(stack: Cluster, tmp_path_factory: pytest.TempPathFactory,
                   ) -> Iterator[ServiceProcess]:
    """A second pod on the same database with EXPOSE_MEMBER_EMAILS on."""
    folder: Path = tmp_path_factory.mktemp("emails")
    env = {**stack.env, "EXPOSE_MEMBER_EMAILS": "true"}
    svc = ServiceProcess("emails", env, free_port(), folder).start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
async def emails_channel(emails_service: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(emails_service.address) as ch:
        yield ch


async def test_member_emails_are_shown_when_enabled_and_implausible_ones_dropped(
    emails_channel: grpc.aio.Channel, secret: str, new_user_id: Callable[[], int]
) -> None:
    a, b = new_user_id(), new_user_id()
    alice = ChatClient(emails_channel,
                       mint(secret, a, name="Alice", email=" alice@example.com "), a)
    bob = ChatClient(emails_channel, mint(secret, b, name="Bob", email="bob@@example"), b)
    await bob.my_groups()
    group = await alice.create_group(members=[b])
    emails = {m.id: m.email for m in await bob.members(group.id)}
    assert emails == {a: "alice@example.com", b: ""}
