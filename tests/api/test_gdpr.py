"""GDPR (issue 15) through the real API: EraseUser and ExportUser, for the backend only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.ports import free_port
from chat_devstack.processes import ServiceProcess
from chat_devstack.tokens import mint, mint_backend
from chat_service.gen import chat_backend_pb2 as bpb
from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.attachments import download, png, stack_db, start_upload, upload_unary
from tests.support.backend import BackendClient, backend  # noqa: F401 - fixture
from tests.support.chat_client import ChatClient, Subscription, expect_status

# ruff: noqa: F811 - the `backend` fixture is imported above


async def export(backend: BackendClient, user_id: int) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    call: Any = backend.stub.ExportUser(bpb.BackendUserRef(user_id=user_id),
                                        metadata=backend.metadata, timeout=20)
    async for chunk in call:
        assert chunk.json_lines.endswith(b"\n")  # records never span chunks
        lines.extend(json.loads(line) for line in chunk.json_lines.splitlines())
    return lines


async def bob_leaves_traces(alice: ChatClient, bob: ChatClient) -> dict[str, Any]:
    g1 = await alice.create_group(members=[bob.user_id])
    g2 = await bob.create_group(members=[alice.user_id])
    hello = await alice.send(g1.id, "hello Bob")
    await bob.stub.AddReaction(pb.ReactionRequest(message_id=hello.id, emoji="👍"),
                               metadata=bob.metadata)
    texts = [await bob.send(g1.id, f"bob says {i}") for i in range(3)]
    await bob.send(g2.id, "my own group")
    data, _, _ = png(20_000)
    upload = await start_upload(bob, g1.id, data)
    done = await upload_unary(bob, upload.upload_id, data)
    picture = await bob.stub.SendMessage(pb.SendMessageRequest(
        group_id=g1.id, type=pb.IMAGE, attachment_id=done.attachment.id),
        metadata=bob.metadata)
    await alice.send(g1.id, "after Bob")
    return {"g1": g1, "g2": g2, "hello": hello, "texts": texts, "picture": picture,
            "attachment": done.attachment.id}


async def test_export_streams_everything_stored_about_the_user(
    user: UserFactory, backend: BackendClient
) -> None:
    alice, bob = user("Alice"), user("Bob")
    traces = await bob_leaves_traces(alice, bob)
    records = await export(backend, bob.user_id)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_type.setdefault(r["type"], []).append(r)
    assert by_type["profile"][0]["name"] == "Bob"
    assert {m["group_id"] for m in by_type["membership"]} == {traces["g1"].id,
                                                              traces["g2"].id}
    contents = [m["content"] for m in by_type["message"]]
    assert {"bob says 0", "bob says 2", "my own group"} <= set(contents)
    assert [r["emoji"] for r in by_type["reaction"]] == ["👍"]
    assert [a["id"] for a in by_type["attachment"]] == [traces["attachment"]]
    assert "hello Bob" not in contents  # Alice's, not Bob's


async def test_erase_removes_the_user_and_keeps_everyone_elses_history_consistent(
    user: UserFactory, backend: BackendClient, stack: Cluster
) -> None:
    alice, bob = user("Alice"), user("Bob")
    traces = await bob_leaves_traces(alice, bob)
    g1 = traces["g1"]
    before = [m.seq for m in (await alice.history(g1.id)).messages]
    bob_feed = await bob.subscribe()
    result = await backend.call("EraseUser", bpb.BackendUserRef(user_id=bob.user_id))
    assert (result.groups_left, result.messages, result.attachments) == (2, 5, 1)
    # Bob: disconnected and refused from now on.
    ended = await bob_feed.wait_ended()
    assert ended is not None and ended.code() == grpc.StatusCode.UNAVAILABLE
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, bob.my_groups())
    # Alice: the same seqs, Bob's messages tombstoned, his reaction and attachment gone.
    history = (await alice.history(g1.id)).messages
    assert [m.seq for m in history][: len(before)] == before
    assert [m.seq for m in history] == list(range(1, len(history) + 1))
    bobs = [m for m in history if m.user_id == bob.user_id and m.type != pb.SYSTEM]
    assert len(bobs) == 4 and all(m.deleted and m.content == "" for m in bobs)
    assert all(m.user_name == "Deleted user" for m in bobs)
    hello = next(m for m in history if m.id == traces["hello"].id)
    assert (hello.content, list(hello.reactions)) == ("hello Bob", [])
    assert history[-1].content == "Deleted user left"
    await expect_status(grpc.StatusCode.NOT_FOUND, download(alice, traces["attachment"]))
    async with stack_db(stack) as db:
        assert await db.fetchval("SELECT count(*) FROM attachments WHERE owner_id = $1",
                                 bob.user_id) == 0
        assert await db.fetchval("SELECT count(*) FROM group_members WHERE user_id = $1",
                                 bob.user_id) == 0
        row = await db.fetchrow("SELECT name, email, avatar FROM users WHERE id = $1",
                                bob.user_id)
        assert row is not None and tuple(row) == ("Deleted user", "", "")
    # Idempotent: a second erasure finds nothing left and changes nothing.
    again = await backend.call("EraseUser", bpb.BackendUserRef(user_id=bob.user_id))
    assert (again.groups_left, again.messages, again.attachments) == (0, 0, 0)
    assert [m.seq for m in (await alice.history(g1.id)).messages] == [m.seq for m in history]
    # Bob's own group lives on with Alice, who still reads it.
    assert [m.content for m in (await alice.history(traces["g2"].id)).messages][-1] == (
        "Deleted user left")


async def test_users_cannot_erase_or_export(user: UserFactory, stack: Cluster) -> None:
    """Only a backend token opens these (tests/api/test_backend_credential.py covers every
    method); here: a user's own token on their own data."""
    bob = user("Bob")
    async with grpc.aio.insecure_channel(stack.gateway) as channel:
        mine = BackendClient(channel, bob.token)
        await expect_status(grpc.StatusCode.UNAUTHENTICATED,
                            mine.call("EraseUser", bpb.BackendUserRef(user_id=bob.user_id)))


def pod_with(stack: Cluster, folder: Path, name: str, **env: str) -> Iterator[ServiceProcess]:
    """A pod with other settings, sharing the stack's PostgreSQL and Redis."""
    pod = ServiceProcess(name, {**stack.env, **env}, free_port(), folder).start()
    try:
        yield pod
    finally:
        pod.stop()


@pytest.fixture(scope="module")
def anonymising_pod(
    stack: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    yield from pod_with(stack, tmp_path_factory.mktemp("anonymise"), "anonymise",
                        ERASE_MESSAGES="anonymise")


@pytest.fixture(scope="module")
def two_live_updates_pod(
    stack: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    yield from pod_with(stack, tmp_path_factory.mktemp("live2"), "live2",
                        ERASE_LIVE_UPDATES="2")


@pytest.fixture
async def on_anonymising_pod(anonymising_pod: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(anonymising_pod.address) as channel:
        yield channel


def clients_on(channel: grpc.aio.Channel, stack: Cluster, new_user_id: Callable[[], int]
               ) -> tuple[ChatClient, ChatClient, BackendClient]:
    alice, bob = (ChatClient(channel, mint(stack.jwt_secret, uid, name=name), uid)
                  for uid, name in ((new_user_id(), "Alice"), (new_user_id(), "Bob")))
    return alice, bob, BackendClient(channel, mint_backend(stack.backend_jwt_secret))


def updated(feed: Any) -> dict[int, pb.MessageResponse]:
    return {e.updated.id: e.updated for e in feed.of_kind("updated")}


async def test_online_members_see_the_erased_users_messages_change_live(
    user: UserFactory, backend: BackendClient
) -> None:
    alice, bob = user("Alice"), user("Bob")
    traces = await bob_leaves_traces(alice, bob)
    feed = await alice.subscribe()
    await backend.call("EraseUser", bpb.BackendUserRef(user_id=bob.user_id))
    bobs = [m.id for m in traces["texts"]] + [traces["picture"].id]
    changed = {*bobs, traces["hello"].id}  # his tombstones; Alice's message lost his reaction
    await feed.wait_until(lambda: changed <= set(updated(feed)))
    live = updated(feed)
    assert all(live[i].deleted and live[i].content == "" for i in bobs)
    assert list(live[traces["hello"].id].reactions) == []
    # The same state, update_seq included, that the history now holds.
    stored = {m.id: m for m in (await alice.history(traces["g1"].id)).messages}
    assert all(live[i].update_seq == stored[i].update_seq for i in changed)
    mine = [m for m in (await alice.history(traces["g2"].id)).messages
            if m.user_id == bob.user_id and m.type != pb.SYSTEM]
    await feed.wait_until(lambda: mine[0].id in updated(feed))  # his own group too


async def test_live_updates_of_an_erasure_are_bounded_and_the_rest_come_on_resume(
    stack: Cluster, new_user_id: Callable[[], int], two_live_updates_pod: ServiceProcess
) -> None:
    async with grpc.aio.insecure_channel(two_live_updates_pod.address) as channel:
        alice, bob, backend = clients_on(channel, stack, new_user_id)
        traces = await bob_leaves_traces(alice, bob)
        g1 = traces["g1"]
        before = await alice.get_group(g1.id)
        (in_g2,) = [m.id for m in (await alice.history(traces["g2"].id)).messages
                    if m.content == "my own group"]
        feed = await alice.subscribe()
        await backend.call("EraseUser", bpb.BackendUserRef(user_id=bob.user_id))
        await feed.wait_until(lambda: len(updated(feed)) >= 2)
        marker = await alice.send(g1.id, "after the erasure")
        await feed.wait_until(lambda: marker.id in {m.id for m in feed.messages(g1.id)})
        # The two newest changed messages only: his message in g2, his picture in g1.
        assert set(updated(feed)) == {in_g2, traces["picture"].id}
        # Resuming with the update position held before gets every change in g1.
        resumed = Subscription(alice.stub.Subscribe(pb.SubscribeRequest(positions=[
            pb.GroupPosition(group_id=g1.id, last_seq=marker.seq,
                             last_update_seq=before.last_update_seq)]),
            metadata=alice.metadata))
        changed = {m.id for m in traces["texts"]} | {traces["picture"].id, traces["hello"].id}
        await resumed.wait_until(lambda: changed <= set(updated(resumed)))
        await resumed.close()
        await alice.close()


async def test_with_anonymise_the_erased_users_messages_stay_readable_under_deleted_user(
    new_user_id: Callable[[], int], stack: Cluster, on_anonymising_pod: grpc.aio.Channel
) -> None:
    alice, bob, backend = clients_on(on_anonymising_pod, stack, new_user_id)
    traces = await bob_leaves_traces(alice, bob)
    g1 = traces["g1"]
    before = (await alice.history(g1.id)).messages
    result = await backend.call("EraseUser", bpb.BackendUserRef(user_id=bob.user_id))
    assert (result.groups_left, result.messages, result.attachments) == (2, 5, 1)
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, bob.my_groups())
    history = (await alice.history(g1.id)).messages
    assert [m.seq for m in history][: len(before)] == [m.seq for m in before]
    bobs = [m for m in history if m.user_id == bob.user_id and m.type != pb.SYSTEM]
    # Kept, readable, not tombstoned; only the author's profile is gone.
    assert [m.content for m in bobs if m.type == pb.TEXT] == [
        "bob says 0", "bob says 1", "bob says 2"]
    assert len(bobs) == 4 and not any(m.deleted for m in bobs)
    assert {m.user_name for m in bobs} == {"Deleted user"}
    assert [m.content for m in (await alice.history(traces["g2"].id)).messages
            if m.user_id == bob.user_id and m.type != pb.SYSTEM] == ["my own group"]
    # What erasure removes in any mode: his attachment, his reaction, his memberships.
    await expect_status(grpc.StatusCode.NOT_FOUND, download(alice, traces["attachment"]))
    hello = next(m for m in history if m.id == traces["hello"].id)
    assert list(hello.reactions) == []
    assert bob.user_id not in [m.id for m in await alice.members(g1.id)]
    # The export still lists what is kept under his id (the messages), nothing else of his.
    records = await export(backend, bob.user_id)
    assert [r["name"] for r in records if r["type"] == "profile"] == ["Deleted user"]
    kept = {r["content"] for r in records if r["type"] == "message" and r["kind"] == pb.TEXT}
    assert kept == {"bob says 0", "bob says 1", "bob says 2", "my own group"}
    assert not [r for r in records if r["type"] in ("reaction", "attachment", "membership")]
