"""Property-based tests against the real API: random valid and invalid requests and random
interleavings of send/edit/delete/react/leave/join/read never produce INTERNAL or UNKNOWN,
keep sequence numbers gap-free, keep history equal to what was acknowledged and unread counts
non-negative."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.domain.validation import unsafe_name_chars
from chat_service.gen import chat_pb2 as pb
from tests.support.chat_client import ChatClient

ACCEPTABLE = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAUTHENTICATED,
}

_next_id = iter(range(9_000_000, 9_900_000))

text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60)
ops = st.lists(
    st.tuples(
        st.sampled_from(["send", "edit", "delete", "react", "unreact", "leave", "join", "read",
                         "typing"]),
        st.integers(min_value=0, max_value=2),  # which user
        st.integers(min_value=0, max_value=30),  # which earlier message
        text,
        st.sampled_from(["👍", "🎉", "x", "", "👍🏽"]),
    ),
    min_size=5,
    max_size=40,
)


async def _run_interleaving(stack: Cluster, steps: list[tuple[str, int, int, str, str]]) -> None:
    async with grpc.aio.insecure_channel(stack.gateway) as channel:
        users = []
        for _ in range(3):
            uid = next(_next_id)
            users.append(ChatClient(channel, mint(stack.jwt_secret, uid, name=f"f{uid}"), uid))
        owner = users[0]
        group = await owner.create_group(members=[u.user_id for u in users[1:]])
        acked: dict[int, pb.MessageResponse] = {}
        deleted: set[int] = set()
        edited: dict[int, str] = {}
        ids: list[int] = []
        for op, who, pick, content, emoji in steps:
            actor = users[who]
            target = ids[pick % len(ids)] if ids else 1
            try:
                if op == "send":
                    m = await actor.send(group.id, content)
                    acked[m.id] = m
                    ids.append(m.id)
                elif op == "edit":
                    r = await actor.stub.EditMessage(
                        pb.EditMessageRequest(message_id=target, content=content),
                        metadata=actor.metadata)
                    edited[r.id] = r.content
                elif op == "delete":
                    await actor.stub.DeleteMessage(pb.DeleteMessageRequest(message_id=target),
                                                   metadata=actor.metadata)
                    deleted.add(target)
                elif op in ("react", "unreact"):
                    call = actor.stub.AddReaction if op == "react" else actor.stub.RemoveReaction
                    await call(pb.ReactionRequest(message_id=target, emoji=emoji),
                               metadata=actor.metadata)
                elif op == "leave":
                    await actor.leave(group.id)
                elif op == "join":
                    await owner.join(group.id, actor.user_id)
                elif op == "read":
                    read = await actor.stub.MarkRead(
                        pb.MarkReadRequest(group_id=group.id, seq=pick), metadata=actor.metadata)
                    assert read.unread_count >= 0
                elif op == "typing":
                    await actor.typing(group.id, bool(pick % 2))
            except grpc.aio.AioRpcError as exc:
                assert exc.code() in ACCEPTABLE, (op, exc.code(), exc.details())
        for u in users:  # whoever left comes back (an open group) to check what they see
            await u.join(group.id)
        history = await owner.all_history(group.id)
        assert [m.seq for m in history] == list(range(1, len(history) + 1))
        by_id = {m.id: m for m in history}
        for mid, m in acked.items():
            stored = by_id[mid]
            if mid in deleted:
                assert stored.deleted and stored.content == ""
            else:
                assert stored.content == edited.get(mid, m.content)
        for u in users:
            for g in await u.my_groups():
                assert g.unread_count >= 0 and g.mention_count >= 0


@pytest.mark.timeout(600)
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=ops)
def test_random_interleavings_keep_every_invariant(stack: Cluster, steps: Any) -> None:
    asyncio.run(_run_interleaving(stack, steps))


requests = st.one_of(
    st.builds(pb.SendMessageRequest, group_id=st.integers(-5, 2**62), content=text,
              type=st.integers(0, 7), client_msg_id=text, reply_to_id=st.integers(-3, 2**62),
              attachment_id=text),
    st.builds(pb.GetHistoryRequest, group_id=st.integers(-5, 2**62),
              limit=st.integers(-10, 100_000), before_id=st.integers(-5, 2**62)),
    st.builds(pb.CreateGroupRequest, name=text, description=text,
              member_ids=st.lists(st.integers(-5, 2**62), max_size=5),
              created_by=st.integers(0, 3)),
    st.builds(pb.JoinGroupRequest, group_id=st.integers(-5, 2**62), user_id=st.integers(-5, 99)),
    st.builds(pb.ReactionRequest, message_id=st.integers(-5, 2**62), emoji=text),
    st.builds(pb.MarkReadRequest, group_id=st.integers(-5, 2**62), seq=st.integers(-5, 2**62)),
    st.builds(pb.EditMessageRequest, message_id=st.integers(-5, 2**62), content=text),
    st.builds(pb.StartUploadRequest, group_id=st.integers(-5, 99), file_name=text,
              content_type=text, size=st.integers(-5, 2**40), sha256=text),
)

METHOD = {
    pb.SendMessageRequest: "SendMessage", pb.GetHistoryRequest: "GetMessageHistory",
    pb.CreateGroupRequest: "CreateGroup", pb.JoinGroupRequest: "JoinGroup",
    pb.ReactionRequest: "AddReaction", pb.MarkReadRequest: "MarkRead",
    pb.EditMessageRequest: "EditMessage", pb.StartUploadRequest: "StartUpload",
}


async def _call(stack: Cluster, batch: list[Any]) -> None:
    async with grpc.aio.insecure_channel(stack.gateway) as channel:
        uid = next(_next_id)
        client = ChatClient(channel, mint(stack.jwt_secret, uid), uid)
        for request in batch:
            try:
                await getattr(client.stub, METHOD[type(request)])(request,
                                                                  metadata=client.metadata)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() in ACCEPTABLE, (request, exc.code(), exc.details())


@pytest.mark.timeout(600)
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(requests, min_size=1, max_size=8))
def test_arbitrary_requests_get_a_clear_status_never_internal(stack: Cluster, batch: Any) -> None:
    asyncio.run(_call(stack, batch))


# ---- token claims, group metadata and file names (issue 12, item 7) ----

_odd = st.sampled_from(["\x00", "\x07", "\n", "\u202e", "\u2066", "\u200f", "\ud800", "\udfff",
                        "\ufeff", "\u00b2", "\u0667", "\u0301", "\U0001f44d", "\U0001f3fd", " "])
wild_text = st.one_of(
    st.text(alphabet=st.one_of(st.characters(), _odd), max_size=80),
    st.builds(lambda ch, n: ch * n, _odd, st.integers(0, 5000)),  # huge strings
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | wild_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=6,
)
# Plain text passes the other checks, so what follows it (a description, a name claim) is
# what gets exercised.
plain = st.text(alphabet=st.characters(exclude_categories=["Cc", "Cs"]), min_size=1,
                max_size=40)
subs = st.one_of(
    json_values,
    st.from_regex(r"[0-9]{1,21}", fullmatch=True),
    st.integers(1, 2**63 + 5),
    st.sampled_from(["\u00b2", "\u0667", " 7 ", "0007", "7\n", "+7", "7.0", "0"]),
    st.integers(1, 2**63 - 1).map(str),
)
display = st.one_of(wild_text, json_values)
claims = st.fixed_dictionaries(
    {"sub": subs},
    optional={"name": display, "email": display, "avatar": display, "picture": display,
              "nbf": json_values, "iat": json_values, "jti": json_values},
)


def _no_unsafe(value: str) -> bool:
    """No control characters (NUL included), lone surrogates or bidi controls."""
    return unsafe_name_chars(value) is None


async def _with_token(stack: Cluster, extra: dict[str, Any]) -> None:
    # The token travels in the request field: a huge claim must not hit the metadata limit
    # (that is the gRPC layer refusing, not the service).
    token = mint(stack.jwt_secret, 1, **extra)
    async with grpc.aio.insecure_channel(stack.gateway) as channel:
        client = ChatClient(channel, token, 0)
        try:
            await client.stub.ListMyGroups(pb.ListMyGroupsRequest(jwt_token=token))
            group = await client.stub.CreateGroup(pb.CreateGroupRequest(name="t",
                                                                        jwt_token=token))
            members = await client.stub.GetGroupMembers(
                pb.GetGroupMembersRequest(group_id=group.id, jwt_token=token))
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in ACCEPTABLE, (extra, exc.code(), exc.details())
            return
        (me,) = members.members
        assert len(me.name) <= 100 and _no_unsafe(me.name) and _no_unsafe(me.avatar)
        assert me.avatar == "" or me.avatar.startswith(("http://", "https://", "HTTP"))


@pytest.mark.timeout(600)
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(extra=claims)
def test_arbitrary_token_claims_never_give_internal(stack: Cluster, extra: Any) -> None:
    asyncio.run(_with_token(stack, extra))


async def _group_metadata(stack: Cluster, name: str, description: str) -> None:
    async with grpc.aio.insecure_channel(stack.gateway) as channel:
        uid = next(_next_id)
        client = ChatClient(channel, mint(stack.jwt_secret, uid), uid)
        try:
            group = await client.stub.CreateGroup(
                pb.CreateGroupRequest(name=name, description=description),
                metadata=client.metadata)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in ACCEPTABLE, (name, description, exc.code(), exc.details())
            return
        stored = await client.get_group(group.id)
        assert stored.name == name.strip() and _no_unsafe(stored.name)
        assert _no_unsafe(stored.description.replace("\n", "").replace("\t", ""))


@pytest.mark.timeout(600)
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.one_of(plain, wild_text), description=st.one_of(plain, wild_text))
def test_arbitrary_group_metadata_never_gives_internal(
    stack: Cluster, name: str, description: str
) -> None:
    # Lone surrogates cannot be sent in a protobuf string (not UTF-8): the client refuses.
    assume = "".join(ch for ch in name if not 0xD800 <= ord(ch) <= 0xDFFF)
    described = "".join(ch for ch in description if not 0xD800 <= ord(ch) <= 0xDFFF)
    asyncio.run(_group_metadata(stack, assume, described))


async def _start_upload(stack: Cluster, file_name: str, content_type: str, size: int) -> None:
    async with grpc.aio.insecure_channel(stack.gateway) as channel:
        uid = next(_next_id)
        client = ChatClient(channel, mint(stack.jwt_secret, uid), uid)
        group = await client.create_group()
        try:
            await client.stub.StartUpload(
                pb.StartUploadRequest(group_id=group.id, file_name=file_name,
                                      content_type=content_type, size=size, sha256="ab" * 32),
                metadata=client.metadata)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in ACCEPTABLE, (file_name, content_type, exc.code(), exc.details())


_no_surrogates = wild_text.map(lambda t: "".join(c for c in t if not 0xD800 <= ord(c) <= 0xDFFF))


@pytest.mark.timeout(600)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(file_name=st.one_of(_no_surrogates, st.sampled_from(
           ["a.png", "../../etc/passwd", "CON", "x\u202egnp.exe", ".", "", " a.pdf "])),
       content_type=st.one_of(_no_surrogates, st.sampled_from(
           ["image/png", "application/pdf", "text/plain; charset=utf-8", ""])),
       size=st.integers(1, 2048))
def test_arbitrary_file_names_never_give_internal(
    stack: Cluster, file_name: str, content_type: str, size: int
) -> None:
    asyncio.run(_start_upload(stack, file_name, content_type, size))
